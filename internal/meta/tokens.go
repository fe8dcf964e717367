package meta

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"
)

// tokenPrefix marks API tokens, so they are recognisable in configs and by
// secret scanners, and told apart from project secrets ("vs_").
const tokenPrefix = "vt_"

// MaxTokenNameLen is the longest token name, in characters.
const MaxTokenNameLen = 100

// tokenTouchInterval is how stale a token's last use may get before a use
// writes it again: authentication reads, and writes at most this often.
const tokenTouchInterval = time.Minute

// Scope is what a token may do.
type Scope string

// ScopeRead runs reports and manages cohorts. Later scopes (write, export,
// admin) are added here, in validScope and, by a migration, as rows of the
// token_scopes table.
const ScopeRead Scope = "read"

// validScope reports whether s is a scope this binary knows.
func validScope(s Scope) bool {
	switch s {
	case ScopeRead:
		return true
	}
	return false
}

// Token is an API token: a bearer credential for one project and scope.
type Token struct {
	ID        int64
	ProjectID int64
	Name      string
	Scope     Scope
	Created   time.Time // UTC
	Revoked   time.Time // UTC; zero while the token is active
	LastUsed  time.Time // UTC; zero if never used; updated at most once a minute
}

// Active reports whether the token has not been revoked.
func (t Token) Active() bool { return t.Revoked.IsZero() }

// Allows reports whether the token may do what scope needs. Each scope
// allows exactly itself for now.
func (t Token) Allows(scope Scope) bool { return t.Active() && t.Scope == scope }

// CreateToken creates a token for project with the given scope and name
// (trimmed; may be empty). The secret, "vt_" and 43 base64url characters,
// is returned only here: the database keeps just its SHA-256.
//
// An unknown scope or unacceptable name gives an error matching ErrInvalid
// (with Field "scope" or "name"), an unknown project one matching
// ErrNotFound.
func (db *DB) CreateToken(ctx context.Context, projectID int64, scope Scope, name string) (t Token, secret string, err error) {
	if !validScope(scope) {
		return Token{}, "", invalidf("scope", "token scope %q is unknown: want %q", scope, ScopeRead)
	}
	name, err = cleanName("token name", name, MaxTokenNameLen, false)
	if err != nil {
		return Token{}, "", err
	}
	var sec [32]byte
	rand.Read(sec[:]) // never fails since Go 1.24
	secret = tokenPrefix + base64.RawURLEncoding.EncodeToString(sec[:])
	hash := sha256.Sum256([]byte(secret))

	t = Token{ProjectID: projectID, Name: name, Scope: scope, Created: time.Now().UTC()}
	err = db.write(ctx, func(tx *sql.Tx) error {
		if err := projectExists(ctx, tx, projectID); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx,
			`INSERT INTO tokens (project_id, name, scope, secret_sha256, created_at) VALUES (?, ?, ?, ?, ?)`,
			projectID, name, string(scope), hash[:], t.Created.Format(timeFormat))
		if err != nil {
			return err
		}
		t.ID, err = res.LastInsertId()
		return err
	})
	if err != nil {
		if errors.Is(err, ErrNotFound) {
			return Token{}, "", err
		}
		return Token{}, "", fmt.Errorf("meta: create token for project %d: %w", projectID, err)
	}
	return t, secret, nil
}

// TokenBySecret returns the active token whose secret is secret. An
// unknown or revoked secret gives an error matching ErrNotFound (the same
// for both, so a caller cannot tell them apart). A use more than a minute
// after the recorded last use records this one.
func (db *DB) TokenBySecret(ctx context.Context, secret string) (Token, error) {
	notFound := fmt.Errorf("%w: no active token with that secret", ErrNotFound)
	if !strings.HasPrefix(secret, tokenPrefix) {
		return Token{}, notFound
	}
	// As for project secrets: 256 random bits need no salt, and the hash
	// must be indexable. The lookup is by hash, so its timing says nothing
	// about how much of a guessed secret was right.
	hash := sha256.Sum256([]byte(secret))
	var stored []byte
	row := db.sql.QueryRowContext(ctx, `SELECT `+tokenColumns+`, secret_sha256 FROM tokens WHERE secret_sha256 = ?`, hash[:])
	t, err := scanToken(row, &stored)
	if err == nil && subtle.ConstantTimeCompare(stored, hash[:]) != 1 {
		err = sql.ErrNoRows
	}
	if errors.Is(err, sql.ErrNoRows) || err == nil && !t.Active() {
		return Token{}, notFound
	}
	if err != nil {
		return Token{}, fmt.Errorf("meta: token by secret: %w", err)
	}
	now := time.Now().UTC()
	if now.Sub(t.LastUsed) < tokenTouchInterval {
		return t, nil
	}
	err = db.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `UPDATE tokens SET last_used_at = ? WHERE id = ?`, now.Format(timeFormat), t.ID)
		return err
	})
	if err != nil {
		return Token{}, fmt.Errorf("meta: record use of token %d: %w", t.ID, err)
	}
	t.LastUsed = now
	return t, nil
}

// Tokens returns the project's tokens, revoked ones included, by id.
func (db *DB) Tokens(ctx context.Context, projectID int64) ([]Token, error) {
	rows, err := db.sql.QueryContext(ctx, `SELECT `+tokenColumns+` FROM tokens WHERE project_id = ? ORDER BY id`, projectID)
	if err != nil {
		return nil, fmt.Errorf("meta: tokens of project %d: %w", projectID, err)
	}
	defer rows.Close()
	ts := []Token{}
	for rows.Next() {
		t, err := scanToken(rows)
		if err != nil {
			return nil, fmt.Errorf("meta: tokens of project %d: %w", projectID, err)
		}
		ts = append(ts, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("meta: tokens of project %d: %w", projectID, err)
	}
	return ts, nil
}

// RevokeToken revokes the project's token id: TokenBySecret no longer
// finds it. Revoking a revoked token keeps its first revocation time. A
// token of another project, or none, gives an error matching ErrNotFound.
func (db *DB) RevokeToken(ctx context.Context, projectID, id int64) error {
	now := time.Now().UTC().Format(timeFormat)
	err := db.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE tokens SET revoked_at = COALESCE(revoked_at, ?) WHERE id = ? AND project_id = ?`,
			now, id, projectID)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return fmt.Errorf("%w: project %d has no token %d", ErrNotFound, projectID, id)
		}
		return nil
	})
	if err != nil && !errors.Is(err, ErrNotFound) {
		return fmt.Errorf("meta: revoke token %d of project %d: %w", id, projectID, err)
	}
	return err
}

const tokenColumns = `id, project_id, name, scope, created_at, revoked_at, last_used_at`

// scanToken scans tokenColumns, then any extra columns into extra.
func scanToken(s scanner, extra ...any) (Token, error) {
	var (
		t                      Token
		scope, created         string
		revoked, used          sql.NullString
		errCreated, errRevoked error
	)
	dest := append([]any{&t.ID, &t.ProjectID, &t.Name, &scope, &created, &revoked, &used}, extra...)
	if err := s.Scan(dest...); err != nil {
		return Token{}, err
	}
	t.Scope = Scope(scope)
	t.Created, errCreated = parseTime(created)
	if revoked.Valid {
		t.Revoked, errRevoked = parseTime(revoked.String)
		if errRevoked == nil && t.Revoked.IsZero() {
			errRevoked = errors.New("zero time")
		}
	}
	if used.Valid {
		// A garbled last use only costs a rewrite of it.
		t.LastUsed, _ = parseTime(used.String)
	}
	if err := errors.Join(errCreated, errRevoked); err != nil {
		return Token{}, fmt.Errorf("token %d: %w", t.ID, err)
	}
	return t, nil
}

// parseTime parses a stored timestamp.
func parseTime(s string) (time.Time, error) {
	t, err := time.Parse(timeFormat, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("bad timestamp %q", s)
	}
	return t.UTC(), nil
}

// projectExists checks, inside a transaction, that project exists.
func projectExists(ctx context.Context, tx *sql.Tx, project int64) error {
	var one int
	err := tx.QueryRowContext(ctx, `SELECT 1 FROM projects WHERE id = ?`, project).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("%w: project %d", ErrNotFound, project)
	}
	return err
}
