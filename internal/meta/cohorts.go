package meta

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"
)

// Limits on cohorts.
const (
	MaxCohortNameLen         = 100     // characters
	MaxCohortDescriptionLen  = 1000    // characters
	MaxCohortDefinitionBytes = 1 << 20 // bytes of JSON
)

// Cohort is a saved set of people, defined by a JSON definition that the
// report engines parse; this package only checks that it is JSON.
type Cohort struct {
	ID          int64
	ProjectID   int64
	Name        string
	Description string
	Definition  []byte    // JSON
	Created     time.Time // UTC
	Updated     time.Time // UTC
}

// CreateCohort saves a cohort in project. name is trimmed and must be
// unique in the project, ignoring case.
//
// Unacceptable input gives an error matching ErrInvalid, a name already
// taken one matching ErrConflict (both with Field "name", "description"
// or "definition", and messages that can be shown as they are); an unknown
// project one matching ErrNotFound.
func (db *DB) CreateCohort(ctx context.Context, projectID int64, name, description string, definition []byte) (Cohort, error) {
	c, err := cleanCohort(projectID, name, description, definition)
	if err != nil {
		return Cohort{}, err
	}
	c.Created = time.Now().UTC()
	c.Updated = c.Created
	err = db.write(ctx, func(tx *sql.Tx) error {
		if err := projectExists(ctx, tx, projectID); err != nil {
			return err
		}
		if err := cohortNameFree(ctx, tx, projectID, 0, c.Name); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `INSERT INTO cohorts (project_id, name, name_key, description, definition, created_at, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?)`,
			projectID, c.Name, foldName(c.Name), c.Description, string(c.Definition),
			c.Created.Format(timeFormat), c.Updated.Format(timeFormat))
		if err != nil {
			return err
		}
		c.ID, err = res.LastInsertId()
		return err
	})
	if err != nil {
		return Cohort{}, cohortError(err, "create cohort in project %d", projectID)
	}
	return c, nil
}

// UpdateCohort replaces the name, description and definition of the
// project's cohort id, with CreateCohort's checks; a cohort that does not
// exist gives an error matching ErrNotFound.
func (db *DB) UpdateCohort(ctx context.Context, projectID, id int64, name, description string, definition []byte) (Cohort, error) {
	c, err := cleanCohort(projectID, name, description, definition)
	if err != nil {
		return Cohort{}, err
	}
	c.ID = id
	c.Updated = time.Now().UTC()
	err = db.write(ctx, func(tx *sql.Tx) error {
		var created string
		err := tx.QueryRowContext(ctx, `SELECT created_at FROM cohorts WHERE id = ? AND project_id = ?`, id, projectID).Scan(&created)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("%w: project %d has no cohort %d", ErrNotFound, projectID, id)
		}
		if err != nil {
			return err
		}
		if c.Created, err = parseTime(created); err != nil {
			return fmt.Errorf("cohort %d: %w", id, err)
		}
		if err := cohortNameFree(ctx, tx, projectID, id, c.Name); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `UPDATE cohorts SET name = ?, name_key = ?, description = ?, definition = ?, updated_at = ?
			WHERE id = ? AND project_id = ?`,
			c.Name, foldName(c.Name), c.Description, string(c.Definition), c.Updated.Format(timeFormat), id, projectID)
		return err
	})
	if err != nil {
		return Cohort{}, cohortError(err, "update cohort %d of project %d", id, projectID)
	}
	return c, nil
}

// DeleteCohort deletes the project's cohort id; one that does not exist
// gives an error matching ErrNotFound.
func (db *DB) DeleteCohort(ctx context.Context, projectID, id int64) error {
	err := db.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM cohorts WHERE id = ? AND project_id = ?`, id, projectID)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return fmt.Errorf("%w: project %d has no cohort %d", ErrNotFound, projectID, id)
		}
		return nil
	})
	if err != nil {
		return cohortError(err, "delete cohort %d of project %d", id, projectID)
	}
	return nil
}

// Cohort returns the project's cohort id; one that does not exist (or
// belongs to another project) gives an error matching ErrNotFound.
func (db *DB) Cohort(ctx context.Context, projectID, id int64) (Cohort, error) {
	row := db.sql.QueryRowContext(ctx, `SELECT `+cohortColumns+` FROM cohorts WHERE id = ? AND project_id = ?`, id, projectID)
	c, err := scanCohort(row)
	if errors.Is(err, sql.ErrNoRows) {
		return Cohort{}, fmt.Errorf("%w: project %d has no cohort %d", ErrNotFound, projectID, id)
	}
	if err != nil {
		return Cohort{}, fmt.Errorf("meta: cohort %d of project %d: %w", id, projectID, err)
	}
	return c, nil
}

// Cohorts returns the project's cohorts, by id.
func (db *DB) Cohorts(ctx context.Context, projectID int64) ([]Cohort, error) {
	rows, err := db.sql.QueryContext(ctx, `SELECT `+cohortColumns+` FROM cohorts WHERE project_id = ? ORDER BY id`, projectID)
	if err != nil {
		return nil, fmt.Errorf("meta: cohorts of project %d: %w", projectID, err)
	}
	defer rows.Close()
	cs := []Cohort{}
	for rows.Next() {
		c, err := scanCohort(rows)
		if err != nil {
			return nil, fmt.Errorf("meta: cohorts of project %d: %w", projectID, err)
		}
		cs = append(cs, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("meta: cohorts of project %d: %w", projectID, err)
	}
	return cs, nil
}

// cleanCohort checks a cohort's input and returns it cleaned.
func cleanCohort(projectID int64, name, description string, definition []byte) (Cohort, error) {
	name, err := cleanName("cohort name", name, MaxCohortNameLen, true)
	if err != nil {
		return Cohort{}, err
	}
	if !utf8.ValidString(description) {
		return Cohort{}, invalidf("description", "cohort description is not valid UTF-8")
	}
	if n := utf8.RuneCountInString(description); n > MaxCohortDescriptionLen {
		return Cohort{}, invalidf("description", "cohort description is too long (%d characters, at most %d)", n, MaxCohortDescriptionLen)
	}
	for _, r := range description {
		if r != '\n' && r != '\t' && isControl(r) {
			return Cohort{}, invalidf("description", "cohort description contains control character %U", r)
		}
	}
	switch {
	case len(definition) == 0:
		return Cohort{}, invalidf("definition", "cohort definition is empty")
	case len(definition) > MaxCohortDefinitionBytes:
		return Cohort{}, invalidf("definition", "cohort definition is too large (%d bytes, at most %d)", len(definition), MaxCohortDefinitionBytes)
	case !json.Valid(definition):
		return Cohort{}, invalidf("definition", "cohort definition is not valid JSON")
	}
	return Cohort{
		ProjectID:   projectID,
		Name:        name,
		Description: description,
		Definition:  append([]byte(nil), definition...),
	}, nil
}

// cohortNameFree checks, inside a write transaction, that no cohort of the
// project other than self has name (ignoring case). Checked here rather
// than left to the unique index so the error can name the holder.
func cohortNameFree(ctx context.Context, tx *sql.Tx, projectID, self int64, name string) error {
	var (
		id    int64
		taken string
	)
	err := tx.QueryRowContext(ctx, `SELECT id, name FROM cohorts WHERE project_id = ? AND name_key = ? AND id <> ?`,
		projectID, foldName(name), self).Scan(&id, &taken)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return nil
	case err != nil:
		return err
	case taken == name:
		return conflictf("name", "cohort name %q is already taken (by cohort %d)", name, id)
	}
	return conflictf("name", "cohort name %q is already taken (by cohort %d, %q)", name, id, taken)
}

// cohortError wraps err unless it is one to pass on as it is.
func cohortError(err error, format string, args ...any) error {
	if errors.Is(err, ErrNotFound) || errors.Is(err, ErrConflict) || errors.Is(err, ErrInvalid) {
		return err
	}
	return fmt.Errorf("meta: "+format+": %w", append(args, err)...)
}

const cohortColumns = `id, project_id, name, description, definition, created_at, updated_at`

func scanCohort(s scanner) (Cohort, error) {
	var (
		c                Cohort
		def              string
		created, updated string
	)
	if err := s.Scan(&c.ID, &c.ProjectID, &c.Name, &c.Description, &def, &created, &updated); err != nil {
		return Cohort{}, err
	}
	c.Definition = []byte(def)
	var err1, err2 error
	c.Created, err1 = parseTime(created)
	c.Updated, err2 = parseTime(updated)
	if err := errors.Join(err1, err2); err != nil {
		return Cohort{}, fmt.Errorf("cohort %d: %w", c.ID, err)
	}
	return c, nil
}
