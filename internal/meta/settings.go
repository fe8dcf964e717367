package meta

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
	_ "time/tzdata" // time zones the same on every host, whatever its zoneinfo
)

// Settings are a project's report settings.
type Settings struct {
	// TimeZone is the IANA time zone ("Europe/Paris", "UTC") in which
	// reports cut days, weeks and months.
	TimeZone string
	// MinGroupSize is the privacy threshold k: report groups of fewer than
	// k people are suppressed. 1 shows every group.
	MinGroupSize int
}

// DefaultSettings are what a project starts with.
func DefaultSettings() Settings { return Settings{TimeZone: "UTC", MinGroupSize: 1} }

// Location loads the settings' time zone.
func (s Settings) Location() (*time.Location, error) {
	return loadTimeZone(s.TimeZone)
}

// Validate checks the settings. Errors match ErrInvalid and carry the Field
// ("timezone" or "min_group_size") at fault.
func (s Settings) Validate() error {
	if _, err := s.Location(); err != nil {
		return err
	}
	if s.MinGroupSize < 1 {
		return invalidf("min_group_size", "minimum group size %d is below 1 (1 shows every group)", s.MinGroupSize)
	}
	return nil
}

// loadTimeZone loads an IANA time zone name, refusing "Local", which means
// whatever the host is set to.
func loadTimeZone(name string) (*time.Location, error) {
	switch name {
	case "":
		return nil, invalidf("timezone", "time zone is empty: want an IANA name such as UTC or Europe/Paris")
	case "Local":
		return nil, invalidf("timezone", "time zone %q depends on the host: want an IANA name such as UTC or Europe/Paris", name)
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		return nil, invalidf("timezone", "time zone %q is not an IANA time zone name such as UTC or Europe/Paris", name)
	}
	return loc, nil
}

// ProjectSettings returns a project's report settings; an unknown project
// gives an error matching ErrNotFound.
func (db *DB) ProjectSettings(ctx context.Context, projectID int64) (Settings, error) {
	var s Settings
	err := db.sql.QueryRowContext(ctx, `SELECT timezone, min_group_size FROM projects WHERE id = ?`, projectID).
		Scan(&s.TimeZone, &s.MinGroupSize)
	if errors.Is(err, sql.ErrNoRows) {
		return Settings{}, fmt.Errorf("%w: project %d", ErrNotFound, projectID)
	}
	if err != nil {
		return Settings{}, fmt.Errorf("meta: settings of project %d: %w", projectID, err)
	}
	return s, nil
}

// SetProjectSettings replaces a project's report settings. Invalid
// settings give Validate's error; an unknown project one matching
// ErrNotFound.
func (db *DB) SetProjectSettings(ctx context.Context, projectID int64, s Settings) error {
	if err := s.Validate(); err != nil {
		return err
	}
	err := db.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE projects SET timezone = ?, min_group_size = ? WHERE id = ?`,
			s.TimeZone, s.MinGroupSize, projectID)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return fmt.Errorf("%w: project %d", ErrNotFound, projectID)
		}
		return nil
	})
	if err != nil && !errors.Is(err, ErrNotFound) {
		return fmt.Errorf("meta: set settings of project %d: %w", projectID, err)
	}
	return err
}
