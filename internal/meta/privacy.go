package meta

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// PrivacyPolicy returns a project's stored privacy policy (JSON), or nil
// when the project uses the default.
func (db *DB) PrivacyPolicy(ctx context.Context, projectID int64) ([]byte, error) {
	var policy string
	err := db.sql.QueryRowContext(ctx, `SELECT policy FROM privacy_policies WHERE project_id = ?`, projectID).Scan(&policy)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("meta: privacy policy of project %d: %w", projectID, err)
	}
	return []byte(policy), nil
}

// SetPrivacyPolicy stores a project's privacy policy (JSON the caller has
// validated).
func (db *DB) SetPrivacyPolicy(ctx context.Context, projectID int64, policy []byte) error {
	if _, err := db.ProjectByID(ctx, projectID); err != nil {
		return err
	}
	now := time.Now().UTC().Format(time.RFC3339)
	err := db.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO privacy_policies (project_id, policy, updated_at) VALUES (?, ?, ?)
			ON CONFLICT (project_id) DO UPDATE SET policy = excluded.policy, updated_at = excluded.updated_at`,
			projectID, string(policy), now)
		return err
	})
	if err != nil {
		return fmt.Errorf("meta: set privacy policy of project %d: %w", projectID, err)
	}
	return nil
}

// PrivacyChange is one counter of what the privacy stage changed.
type PrivacyChange struct {
	ProjectID int64
	Event     string
	Property  string
	Reason    string
	Count     int64
	FirstSeen time.Time
	LastSeen  time.Time
}

// AddPrivacyChanges adds counts to the stored counters in one transaction.
func (db *DB) AddPrivacyChanges(ctx context.Context, changes []PrivacyChange) error {
	if len(changes) == 0 {
		return nil
	}
	err := db.write(ctx, func(tx *sql.Tx) error {
		stmt, err := tx.PrepareContext(ctx, `INSERT INTO privacy_changes (project_id, event, property, reason, count, first_seen, last_seen)
			VALUES (?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (project_id, event, property, reason) DO UPDATE SET
				count = count + excluded.count, last_seen = excluded.last_seen`)
		if err != nil {
			return err
		}
		defer stmt.Close()
		for _, c := range changes {
			if _, err := stmt.ExecContext(ctx, c.ProjectID, c.Event, c.Property, c.Reason, c.Count,
				c.FirstSeen.UTC().Format(time.RFC3339), c.LastSeen.UTC().Format(time.RFC3339)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("meta: add privacy changes: %w", err)
	}
	return nil
}

// PrivacyChanges returns a project's counters, most frequent first.
func (db *DB) PrivacyChanges(ctx context.Context, projectID int64) ([]PrivacyChange, error) {
	rows, err := db.sql.QueryContext(ctx, `SELECT event, property, reason, count, first_seen, last_seen
		FROM privacy_changes WHERE project_id = ? ORDER BY count DESC, event, property, reason`, projectID)
	if err != nil {
		return nil, fmt.Errorf("meta: privacy changes: %w", err)
	}
	defer rows.Close()
	var out []PrivacyChange
	for rows.Next() {
		c := PrivacyChange{ProjectID: projectID}
		var first, last string
		if err := rows.Scan(&c.Event, &c.Property, &c.Reason, &c.Count, &first, &last); err != nil {
			return nil, fmt.Errorf("meta: privacy changes: %w", err)
		}
		c.FirstSeen, _ = time.Parse(time.RFC3339, first)
		c.LastSeen, _ = time.Parse(time.RFC3339, last)
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("meta: privacy changes: %w", err)
	}
	return out, nil
}
