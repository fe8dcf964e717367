package meta

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// MaxProjectNameLen is the longest project name, in characters.
const MaxProjectNameLen = 100

// secretPrefix marks project secrets, so they are recognisable in configs
// and by secret scanners.
const secretPrefix = "vs_"

// Project is one tracked product.
type Project struct {
	ID      int64
	Name    string
	Token   string    // public ingest token (Mixpanel "project token"): 32 lowercase hex chars
	Created time.Time // UTC
}

// CreateProject creates a project named name (trimmed of surrounding
// space) with a fresh ingest token and /import secret. The secret is
// returned only here: the database keeps just its SHA-256.
//
// An unacceptable name gives an error matching ErrInvalid, a name already
// taken (ignoring case) one matching ErrConflict; both are returned without
// the "meta:" prefix, for showing as they are.
func (db *DB) CreateProject(ctx context.Context, name string) (p Project, secret string, err error) {
	name, err = cleanProjectName(name)
	if err != nil {
		return Project{}, "", err
	}
	key := foldName(name)

	var tok [16]byte
	rand.Read(tok[:]) // never fails since Go 1.24
	var sec [32]byte
	rand.Read(sec[:])
	secret = secretPrefix + base64.RawURLEncoding.EncodeToString(sec[:])
	hash := sha256.Sum256([]byte(secret))

	p = Project{
		Name:    name,
		Token:   hex.EncodeToString(tok[:]),
		Created: time.Now().UTC(),
	}
	err = db.write(ctx, func(tx *sql.Tx) error {
		// Checked here rather than left to the unique index so the error
		// can say which project holds the name. The write lock is held, so
		// no other writer can slip in between.
		var taken string
		err := tx.QueryRowContext(ctx, `SELECT name FROM projects WHERE name_key = ?`, key).Scan(&taken)
		switch {
		case err == nil:
			if taken == name {
				return conflictf("name", "project name %q is already taken", name)
			}
			return conflictf("name", "project name %q is already taken (by %q)", name, taken)
		case !errors.Is(err, sql.ErrNoRows):
			return err
		}
		res, err := tx.ExecContext(ctx,
			`INSERT INTO projects (name, name_key, token, secret_sha256, created_at) VALUES (?, ?, ?, ?, ?)`,
			name, key, p.Token, hash[:], p.Created.Format(timeFormat))
		if err != nil {
			return err
		}
		p.ID, err = res.LastInsertId()
		return err
	})
	if err != nil {
		if errors.Is(err, ErrConflict) {
			return Project{}, "", err
		}
		return Project{}, "", fmt.Errorf("meta: create project: %w", err)
	}
	return p, secret, nil
}

// cleanProjectName trims name and checks it is acceptable.
func cleanProjectName(name string) (string, error) {
	return cleanName("project name", name, MaxProjectNameLen, true)
}

// cleanName trims a name (what says which, as in "project name") and
// checks it is valid UTF-8, at most max characters long, free of control
// characters and, when required, not empty. Errors name the field "name".
func cleanName(what, name string, max int, required bool) (string, error) {
	if !utf8.ValidString(name) {
		return "", invalidf("name", "%s %q is not valid UTF-8", what, name)
	}
	name = strings.TrimSpace(name)
	if name == "" && required {
		return "", invalidf("name", "%s is empty", what)
	}
	if n := utf8.RuneCountInString(name); n > max {
		return "", invalidf("name", "%s is too long (%d characters, at most %d)", what, n, max)
	}
	for _, r := range name {
		if isControl(r) {
			return "", invalidf("name", "%s %q contains control character %U", what, name, r)
		}
	}
	return name, nil
}

// isControl reports control characters, counting also those that would
// garble a name on a terminal or a page: line and paragraph separators and
// bidirectional overrides.
func isControl(r rune) bool {
	switch {
	case unicode.IsControl(r), r == '\u2028', r == '\u2029':
		return true
	case r == '\u061c', r == '\u200e', r == '\u200f',
		r >= '\u202a' && r <= '\u202e', r >= '\u2066' && r <= '\u2069':
		return true
	}
	return false
}

// foldName is the key under which names must be unique. Lowering the
// upper case folds more pairs than lowering alone (e.g. 'ſ' and 's'); it
// is not full Unicode case folding ("ß" and "SS" stay distinct).
func foldName(name string) string {
	return strings.ToLower(strings.ToUpper(name))
}

// Projects returns all projects, ordered by id.
func (db *DB) Projects(ctx context.Context) ([]Project, error) {
	rows, err := db.sql.QueryContext(ctx, `SELECT id, name, token, created_at FROM projects ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("meta: projects: %w", err)
	}
	defer rows.Close()
	ps := []Project{} // non-nil, so it encodes as [] rather than null
	for rows.Next() {
		p, err := scanProject(rows)
		if err != nil {
			return nil, fmt.Errorf("meta: projects: %w", err)
		}
		ps = append(ps, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("meta: projects: %w", err)
	}
	return ps, nil
}

// ProjectByID returns the project with the given id.
func (db *DB) ProjectByID(ctx context.Context, id int64) (Project, error) {
	row := db.sql.QueryRowContext(ctx, `SELECT id, name, token, created_at FROM projects WHERE id = ?`, id)
	p, err := scanProject(row)
	if errors.Is(err, sql.ErrNoRows) {
		return Project{}, fmt.Errorf("%w: project %d", ErrNotFound, id)
	}
	if err != nil {
		return Project{}, fmt.Errorf("meta: project %d: %w", id, err)
	}
	return p, nil
}

// ProjectByToken returns the project whose ingest token is token.
func (db *DB) ProjectByToken(ctx context.Context, token string) (Project, error) {
	row := db.sql.QueryRowContext(ctx, `SELECT id, name, token, created_at FROM projects WHERE token = ?`, token)
	p, err := scanProject(row)
	if errors.Is(err, sql.ErrNoRows) {
		return Project{}, fmt.Errorf("%w: no project with that token", ErrNotFound)
	}
	if err != nil {
		return Project{}, fmt.Errorf("meta: project by token: %w", err)
	}
	return p, nil
}

// ProjectBySecret returns the project whose /import secret is secret.
func (db *DB) ProjectBySecret(ctx context.Context, secret string) (Project, error) {
	// A plain, unsalted hash is right here: the secret is 256 random bits,
	// so there is no dictionary to attack, and the hash must be indexable.
	hash := sha256.Sum256([]byte(secret))
	row := db.sql.QueryRowContext(ctx,
		`SELECT id, name, token, created_at, secret_sha256 FROM projects WHERE secret_sha256 = ?`, hash[:])
	var stored []byte
	p, err := scanProject(row, &stored)
	if err == nil && subtle.ConstantTimeCompare(stored, hash[:]) != 1 {
		// The index lookup already matched; this guards against any
		// collation or type surprise turning "=" into something looser.
		err = sql.ErrNoRows
	}
	if errors.Is(err, sql.ErrNoRows) {
		return Project{}, fmt.Errorf("%w: no project with that secret", ErrNotFound)
	}
	if err != nil {
		return Project{}, fmt.Errorf("meta: project by secret: %w", err)
	}
	return p, nil
}

// scanner is a *sql.Row or *sql.Rows.
type scanner interface{ Scan(dest ...any) error }

// scanProject scans id, name, token and created_at, then any extra columns
// into extra.
func scanProject(s scanner, extra ...any) (Project, error) {
	var (
		p       Project
		created string
	)
	dest := append([]any{&p.ID, &p.Name, &p.Token, &created}, extra...)
	if err := s.Scan(dest...); err != nil {
		return Project{}, err
	}
	t, err := time.Parse(timeFormat, created)
	if err != nil {
		return Project{}, fmt.Errorf("project %d: bad created_at %q", p.ID, created)
	}
	p.Created = t.UTC()
	return p, nil
}

// RetentionDays returns how many days of events project keeps (0: all).
func (db *DB) RetentionDays(ctx context.Context, project int64) (int, error) {
	var days int
	err := db.sql.QueryRowContext(ctx, `SELECT retention_days FROM projects WHERE id = ?`, project).Scan(&days)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, ErrNotFound
	}
	return days, err
}

// SetRetentionDays sets how many days of events project keeps (0: all).
func (db *DB) SetRetentionDays(ctx context.Context, project int64, days int) error {
	if days < 0 {
		return errors.New("retention must be 0 (keep everything) or a number of days")
	}
	res, err := db.sql.ExecContext(ctx, `UPDATE projects SET retention_days = ? WHERE id = ?`, days, project)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrNotFound
	}
	return nil
}

// Retentions returns the retention of every project that has one.
func (db *DB) Retentions(ctx context.Context) (map[int64]int, error) {
	rows, err := db.sql.QueryContext(ctx, `SELECT id, retention_days FROM projects WHERE retention_days > 0`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[int64]int{}
	for rows.Next() {
		var id int64
		var days int
		if err := rows.Scan(&id, &days); err != nil {
			return nil, err
		}
		out[id] = days
	}
	return out, rows.Err()
}
