// Package meta owns Veil's metadata database: the small SQLite file that
// holds projects and their credentials, API tokens, cohorts and report
// settings (and, later, users). It owns the schema and its migrations; event data lives
// elsewhere.
//
// Several processes may open the same file at once (the server and a CLI
// command, say): the database runs in WAL mode with a busy timeout, and every
// write transaction takes the write lock up front.
package meta

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// ErrNotFound is returned (wrapped) when the looked-up record does not exist.
var ErrNotFound = errors.New("meta: not found")

// ErrSchemaTooNew is returned (wrapped) by Open when the database was
// migrated by a newer Veil than this binary.
var ErrSchemaTooNew = errors.New("meta: database schema is newer than this binary")

// ErrInvalid matches (with errors.Is) errors caused by unacceptable input,
// such as a bad project name. Their messages name the problem in words
// meant for the person who typed the input, without a "meta:" prefix, so a
// CLI or API can show them as they are.
var ErrInvalid = errors.New("meta: invalid input")

// ErrConflict matches (with errors.Is) errors caused by input that clashes
// with what is stored, such as a project name already taken. Like ErrInvalid
// errors, their messages can be shown as they are.
var ErrConflict = errors.New("meta: conflict")

// inputError is an ErrInvalid or ErrConflict error with a user-facing
// message and, when one input field is at fault, that field's name.
type inputError struct {
	kind  error
	field string
	msg   string
}

func (e *inputError) Error() string { return e.msg }
func (e *inputError) Unwrap() error { return e.kind }

// Field names the input field at fault ("name", "timezone", ...), or is
// empty when the error is not about one field. An API maps it to the
// field of its request.
func (e *inputError) Field() string { return e.field }

// invalidf returns an ErrInvalid error caused by input field ("" when no
// one field is at fault).
func invalidf(field, format string, args ...any) error {
	return &inputError{kind: ErrInvalid, field: field, msg: fmt.Sprintf(format, args...)}
}

// conflictf returns an ErrConflict error caused by input field ("" when no
// one field is at fault).
func conflictf(field, format string, args ...any) error {
	return &inputError{kind: ErrConflict, field: field, msg: fmt.Sprintf(format, args...)}
}

// busyTimeout is how long a statement waits for another process's lock.
const busyTimeout = 5 * time.Second

// timeFormat is how timestamps are stored (always UTC).
const timeFormat = time.RFC3339Nano

//go:embed migrations/*.sql
var migrationFiles embed.FS

// DB is an open metadata database. It is safe for concurrent use.
type DB struct {
	sql *sql.DB

	// writer serialises this process's write transactions. SQLite allows
	// one writer at a time anyway; queueing here rather than in SQLite's
	// busy handler (which polls with sleeps) keeps in-process writers fair
	// and quick, and leaves the busy timeout for other processes.
	writer chan struct{}
}

// Open opens the metadata database at path, creating it (mode 0600, parent
// directories 0700) if needed, and brings its schema up to date. A
// database whose schema is newer than this binary knows is refused with an
// error matching ErrSchemaTooNew.
func Open(ctx context.Context, path string) (*DB, error) {
	return open(ctx, path, migrationFiles)
}

func open(ctx context.Context, path string, migrationsFS fs.FS) (*DB, error) {
	migs, err := loadMigrations(migrationsFS)
	if err != nil {
		return nil, fmt.Errorf("meta: open: %w", err)
	}
	if path == "" {
		return nil, errors.New("meta: open: empty path")
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("meta: open %s: %w", path, err)
	}
	if err := os.MkdirAll(filepath.Dir(abs), 0o700); err != nil {
		return nil, fmt.Errorf("meta: open %s: %w", path, err)
	}
	// Create the file ourselves: SQLite would create it 0644, and it gives
	// the -wal and -shm files the main file's mode.
	f, err := os.OpenFile(abs, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("meta: open %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("meta: open %s: %w", path, err)
	}

	sqldb, err := sql.Open("sqlite", dsn(abs))
	if err != nil {
		return nil, fmt.Errorf("meta: open %s: %w", path, err)
	}
	db := &DB{sql: sqldb, writer: make(chan struct{}, 1)}
	if err := db.init(ctx, path, migs); err != nil {
		sqldb.Close()
		return nil, err
	}
	return db, nil
}

// dsn builds the driver's connection string. The pragmas are applied by the
// driver to every pooled connection (busy_timeout first), which matters
// because foreign_keys, busy_timeout and synchronous are per connection.
func dsn(abs string) string {
	q := url.Values{}
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", busyTimeout.Milliseconds()))
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "foreign_keys(ON)")
	q.Add("_pragma", "synchronous(FULL)")
	// BEGIN IMMEDIATE: a deferred transaction that reads and then writes
	// fails at once with SQLITE_BUSY if another process wrote in between,
	// whatever the busy timeout; taking the write lock up front waits instead.
	q.Set("_txlock", "immediate")
	// A file: URI, so that '?' or '#' in the path cannot be read as
	// parameters.
	u := url.URL{Scheme: "file", Path: filepath.ToSlash(abs), RawQuery: q.Encode()}
	return u.String()
}

func (db *DB) init(ctx context.Context, path string, migs []migration) error {
	var mode string
	if err := db.sql.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		return fmt.Errorf("meta: open %s: %w", path, err)
	}
	// SQLite silently keeps the old mode if it cannot switch (e.g. no
	// shared memory on this file system); without WAL, readers and the
	// writer in other processes would block each other.
	if !strings.EqualFold(mode, "wal") {
		return fmt.Errorf("meta: open %s: journal_mode is %q, want wal", path, mode)
	}
	if err := db.migrate(ctx, migs); err != nil {
		if tn, ok := errors.AsType[*schemaTooNewError](err); ok {
			return fmt.Errorf("%w: %s is at schema version %d, this binary knows up to %d; upgrade Veil",
				ErrSchemaTooNew, path, tn.have, tn.known)
		}
		return fmt.Errorf("meta: open %s: %w", path, err)
	}
	return nil
}

// Close closes the database.
func (db *DB) Close() error {
	if err := db.sql.Close(); err != nil {
		return fmt.Errorf("meta: close: %w", err)
	}
	return nil
}

// write runs fn in a write transaction and commits it if fn returns nil.
func (db *DB) write(ctx context.Context, fn func(tx *sql.Tx) error) error {
	select {
	case db.writer <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-db.writer }()

	tx, err := db.sql.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback() // no-op after Commit
	if err := fn(tx); err != nil {
		return err
	}
	return tx.Commit()
}

// migration is one embedded schema change.
type migration struct {
	version int
	name    string
	sql     string
}

// loadMigrations reads NNNN_name.sql files, which must be numbered 1, 2, 3,
// ... without gaps.
func loadMigrations(fsys fs.FS) ([]migration, error) {
	names, err := fs.Glob(fsys, "migrations/*.sql")
	if err != nil {
		return nil, fmt.Errorf("migrations: %w", err)
	}
	var migs []migration
	for _, name := range names {
		base := path.Base(name)
		num, _, ok := strings.Cut(base, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v <= 0 {
			return nil, fmt.Errorf("migrations: bad file name %q, want NNNN_name.sql", base)
		}
		b, err := fs.ReadFile(fsys, name)
		if err != nil {
			return nil, fmt.Errorf("migrations: %w", err)
		}
		migs = append(migs, migration{version: v, name: base, sql: string(b)})
	}
	slices.SortFunc(migs, func(a, b migration) int { return a.version - b.version })
	for i, m := range migs {
		if m.version != i+1 {
			return nil, fmt.Errorf("migrations: %s: want version %d", m.name, i+1)
		}
	}
	return migs, nil
}

// migrate applies the migrations the database lacks, each in its own
// transaction. Another process may be migrating the same file at the same
// time, so the version is re-read inside every transaction.
func (db *DB) migrate(ctx context.Context, migs []migration) error {
	latest := len(migs)
	var current int
	err := db.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
			version    INTEGER PRIMARY KEY,
			applied_at TEXT NOT NULL
		) STRICT`)
		if err != nil {
			return err
		}
		current, err = schemaVersion(ctx, tx, latest)
		return err
	})
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}

	for _, m := range migs[current:] {
		err := db.write(ctx, func(tx *sql.Tx) error {
			v, err := schemaVersion(ctx, tx, latest)
			if err != nil {
				return err
			}
			if v >= m.version {
				return nil // applied by another process meanwhile
			}
			if _, err := tx.ExecContext(ctx, m.sql); err != nil {
				return err
			}
			_, err = tx.ExecContext(ctx,
				`INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)`,
				m.version, time.Now().UTC().Format(timeFormat))
			return err
		})
		if err != nil {
			return fmt.Errorf("migrate %s: %w", m.name, err)
		}
	}
	return nil
}

// schemaVersion returns the highest applied migration, refusing one beyond
// latest.
func schemaVersion(ctx context.Context, tx *sql.Tx, latest int) (int, error) {
	var v int
	err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&v)
	if err != nil {
		return 0, err
	}
	if v > latest {
		return 0, &schemaTooNewError{have: v, known: latest}
	}
	return v, nil
}

// schemaTooNewError carries the versions to Open, which words the error.
type schemaTooNewError struct{ have, known int }

func (e *schemaTooNewError) Error() string {
	return fmt.Sprintf("schema version %d is newer than %d", e.have, e.known)
}

func (e *schemaTooNewError) Unwrap() error { return ErrSchemaTooNew }
