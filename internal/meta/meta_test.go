package meta

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"
)

func openTest(t *testing.T, path string) *DB {
	t.Helper()
	db, err := Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func appliedVersions(t *testing.T, db *DB) []int {
	t.Helper()
	rows, err := db.sql.Query(`SELECT version, applied_at FROM schema_migrations ORDER BY version`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var vs []int
	for rows.Next() {
		var (
			v  int
			at string
		)
		if err := rows.Scan(&v, &at); err != nil {
			t.Fatal(err)
		}
		if _, err := time.Parse(time.RFC3339Nano, at); err != nil {
			t.Errorf("version %d: applied_at %q: %v", v, at, err)
		}
		vs = append(vs, v)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return vs
}

func TestOpenFreshAndReopen(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "state", "veil")
	path := filepath.Join(dir, "meta.db")

	db, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	migs, err := loadMigrations(migrationFiles)
	if err != nil {
		t.Fatal(err)
	}
	want := len(migs)
	if got := appliedVersions(t, db); len(got) != want || got[len(got)-1] != want {
		t.Fatalf("applied versions = %v, want 1..%d", got, want)
	}
	for _, c := range []struct{ pragma, want string }{
		{"journal_mode", "wal"},
		{"foreign_keys", "1"},
		{"busy_timeout", "5000"},
		{"synchronous", "2"}, // FULL
	} {
		var got string
		if err := db.sql.QueryRow("PRAGMA " + c.pragma).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != c.want {
			t.Errorf("PRAGMA %s = %q, want %q", c.pragma, got, c.want)
		}
	}
	p, _, err := db.CreateProject(ctx, "Shop")
	if err != nil {
		t.Fatal(err)
	}

	for name, want := range map[string]os.FileMode{dir: 0o700, path: 0o600, path + "-wal": 0o600, path + "-shm": 0o600} {
		fi, err := os.Stat(name)
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != want {
			t.Errorf("%s: mode %v, want %v", name, got, want)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	// Reopening applies nothing again and keeps the data.
	db = openTest(t, path)
	if got := appliedVersions(t, db); len(got) != want {
		t.Fatalf("after reopen: applied versions = %v, want 1..%d", got, want)
	}
	got, err := db.ProjectByID(ctx, p.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got != p {
		t.Errorf("after reopen: project = %+v, want %+v", got, p)
	}
}

func TestOpenRefusesNewerSchema(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "meta.db")
	db, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.sql.Exec(`INSERT INTO schema_migrations (version, applied_at) VALUES (999, '2030-01-01T00:00:00Z')`); err != nil {
		t.Fatal(err)
	}
	db.Close()

	_, err = Open(ctx, path)
	if !errors.Is(err, ErrSchemaTooNew) {
		t.Fatalf("Open = %v, want ErrSchemaTooNew", err)
	}
	if !strings.Contains(err.Error(), "999") || !strings.Contains(err.Error(), path) {
		t.Errorf("error %q should name the version and the file", err)
	}
	t.Log(err)
}

func TestMigrations(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "meta.db")
	fsys := fstest.MapFS{
		"migrations/0001_a.sql": {Data: []byte("CREATE TABLE a (id INTEGER PRIMARY KEY);")},
		"migrations/0002_b.sql": {Data: []byte(`-- b refers to a
CREATE TABLE b (a_id INTEGER NOT NULL REFERENCES a (id));
CREATE INDEX b_a ON b (a_id);`)},
	}
	db, err := open(ctx, path, fsys)
	if err != nil {
		t.Fatal(err)
	}
	if got := appliedVersions(t, db); fmt.Sprint(got) != "[1 2]" {
		t.Errorf("applied versions = %v, want [1 2]", got)
	}
	// foreign_keys is on, on every connection.
	if _, err := db.sql.Exec(`INSERT INTO b (a_id) VALUES (42)`); err == nil {
		t.Error("insert violating a foreign key succeeded")
	}
	db.Close()

	// A failing migration is rolled back whole and Open fails.
	fsys["migrations/0003_c.sql"] = &fstest.MapFile{Data: []byte("CREATE TABLE c (x); INSERT INTO nosuch VALUES (1);")}
	if _, err := open(ctx, path, fsys); err == nil || !strings.Contains(err.Error(), "0003_c.sql") {
		t.Fatalf("open with a failing migration = %v, want error naming 0003_c.sql", err)
	}
	delete(fsys, "migrations/0003_c.sql")
	db, err = open(ctx, path, fsys)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if got := appliedVersions(t, db); fmt.Sprint(got) != "[1 2]" {
		t.Errorf("applied versions = %v, want [1 2]", got)
	}
	var n int
	if err := db.sql.QueryRow(`SELECT count(*) FROM sqlite_schema WHERE name = 'c'`).Scan(&n); err != nil || n != 0 {
		t.Errorf("table c left behind by failed migration (n=%d, err=%v)", n, err)
	}
}

func TestLoadMigrationsBadNames(t *testing.T) {
	for _, names := range [][]string{
		{"0001_a.sql", "0003_c.sql"},    // gap
		{"0002_b.sql"},                  // does not start at 1
		{"0001_a.sql", "0001_b.sql"},    // duplicate version
		{"init.sql"},                    // no number
		{"0001_a.sql", "x_0002.sql"},    // not a number
		{"0000_zero.sql", "0001_a.sql"}, // zero
	} {
		fsys := fstest.MapFS{}
		for _, n := range names {
			fsys["migrations/"+n] = &fstest.MapFile{Data: []byte("SELECT 1;")}
		}
		if _, err := loadMigrations(fsys); err == nil {
			t.Errorf("loadMigrations(%v) succeeded", names)
		}
	}
}

var (
	tokenRE  = regexp.MustCompile(`^[0-9a-f]{32}$`)
	secretRE = regexp.MustCompile(`^vs_[A-Za-z0-9_-]{43}$`)
)

func TestProjects(t *testing.T) {
	ctx := context.Background()
	db := openTest(t, filepath.Join(t.TempDir(), "meta.db"))

	if ps, err := db.Projects(ctx); err != nil || ps == nil || len(ps) != 0 {
		t.Fatalf("Projects on empty db = %v, %v; want empty, non-nil", ps, err)
	}

	before := time.Now()
	p1, s1, err := db.CreateProject(ctx, "  Web shop\t")
	if err != nil {
		t.Fatal(err)
	}
	p2, s2, err := db.CreateProject(ctx, "Mobile app")
	if err != nil {
		t.Fatal(err)
	}

	if p1.Name != "Web shop" {
		t.Errorf("name = %q, want it trimmed to %q", p1.Name, "Web shop")
	}
	if p1.ID <= 0 || p2.ID <= p1.ID {
		t.Errorf("ids = %d, %d; want positive and increasing", p1.ID, p2.ID)
	}
	for _, p := range []Project{p1, p2} {
		if !tokenRE.MatchString(p.Token) {
			t.Errorf("token %q is not 32 lowercase hex chars", p.Token)
		}
		if p.Created.Location() != time.UTC || p.Created.Before(before.Add(-time.Second)) || p.Created.After(time.Now()) {
			t.Errorf("created = %v, want about now, UTC", p.Created)
		}
	}
	for _, s := range []string{s1, s2} {
		if !secretRE.MatchString(s) {
			t.Errorf("secret %q does not look like vs_ + 43 base64url chars", s)
		}
	}
	if p1.Token == p2.Token || s1 == s2 {
		t.Error("tokens or secrets repeat")
	}

	ps, err := db.Projects(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(ps) != 2 || ps[0] != p1 || ps[1] != p2 {
		t.Errorf("Projects = %+v, want [%+v %+v]", ps, p1, p2)
	}

	for _, c := range []struct {
		name string
		get  func() (Project, error)
		want Project
	}{
		{"by id", func() (Project, error) { return db.ProjectByID(ctx, p2.ID) }, p2},
		{"by token", func() (Project, error) { return db.ProjectByToken(ctx, p1.Token) }, p1},
		{"by secret", func() (Project, error) { return db.ProjectBySecret(ctx, s2) }, p2},
	} {
		got, err := c.get()
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
		} else if got != c.want {
			t.Errorf("%s = %+v, want %+v", c.name, got, c.want)
		}
	}

	for _, c := range []struct {
		name string
		get  func() (Project, error)
	}{
		{"unknown id", func() (Project, error) { return db.ProjectByID(ctx, 999) }},
		{"unknown token", func() (Project, error) { return db.ProjectByToken(ctx, strings.Repeat("0", 32)) }},
		{"empty token", func() (Project, error) { return db.ProjectByToken(ctx, "") }},
		{"mangled token", func() (Project, error) { return db.ProjectByToken(ctx, "X"+strings.ToUpper(p1.Token[1:])) }},
		{"wrong secret", func() (Project, error) { return db.ProjectBySecret(ctx, otherLastChar(s1)) }},
		{"empty secret", func() (Project, error) { return db.ProjectBySecret(ctx, "") }},
		{"token as secret", func() (Project, error) { return db.ProjectBySecret(ctx, p1.Token) }},
	} {
		p, err := c.get()
		if !errors.Is(err, ErrNotFound) {
			t.Errorf("%s: got %+v, %v; want ErrNotFound", c.name, p, err)
		}
	}
}

// otherLastChar returns s with its last character changed.
func otherLastChar(s string) string {
	c := byte('A')
	if s[len(s)-1] == c {
		c = 'B'
	}
	return s[:len(s)-1] + string(c)
}

func TestProjectNameValidation(t *testing.T) {
	ctx := context.Background()
	db := openTest(t, filepath.Join(t.TempDir(), "meta.db"))
	for _, name := range []string{"Shop", "Ärger", "Straße"} {
		if _, _, err := db.CreateProject(ctx, name); err != nil {
			t.Fatal(err)
		}
	}

	for _, c := range []struct {
		name    string
		want    error // nil: accepted
		message string
	}{
		{"", ErrInvalid, "project name is empty"},
		{" \t\n ", ErrInvalid, "project name is empty"},
		{strings.Repeat("a", 101), ErrInvalid, "project name is too long (101 characters, at most 100)"},
		{strings.Repeat("é", 101), ErrInvalid, "project name is too long (101 characters, at most 100)"},
		{strings.Repeat("a", 100), nil, ""},
		{"  " + strings.Repeat("é", 100) + "  ", nil, ""}, // 200 bytes, but 100 characters after trimming
		{"a\x00b", ErrInvalid, `project name "a\x00b" contains control character U+0000`},
		{"tab\there", ErrInvalid, `project name "tab\there" contains control character U+0009`},
		{"two\nlines", ErrInvalid, `project name "two\nlines" contains control character U+000A`},
		{"del\x7f", ErrInvalid, `project name "del\x7f" contains control character U+007F`},
		{"c1\u0085x", ErrInvalid, `project name "c1\u0085x" contains control character U+0085`},
		{"evil\u202egnp.exe", ErrInvalid, `project name "evil\u202egnp.exe" contains control character U+202E`},
		{"bad\xffutf8", ErrInvalid, `project name "bad\xffutf8" is not valid UTF-8`},
		{"Shop", ErrConflict, `project name "Shop" is already taken`},
		{"shop", ErrConflict, `project name "shop" is already taken (by "Shop")`},
		{"  SHOP ", ErrConflict, `project name "SHOP" is already taken (by "Shop")`},
		{"äRGER", ErrConflict, `project name "äRGER" is already taken (by "Ärger")`},
		{"STRAẞE", ErrConflict, `project name "STRAẞE" is already taken (by "Straße")`},
		{"Shop 2", nil, ""},
		{"日本語のプロジェクト", nil, ""},
	} {
		p, secret, err := db.CreateProject(ctx, c.name)
		if c.want == nil {
			if err != nil {
				t.Errorf("CreateProject(%q): %v", c.name, err)
			} else if p.Name != strings.TrimSpace(c.name) || secret == "" {
				t.Errorf("CreateProject(%q) = %+v, %q", c.name, p, secret)
			}
			continue
		}
		if !errors.Is(err, c.want) {
			t.Errorf("CreateProject(%q) error = %v, want %v", c.name, err, c.want)
			continue
		}
		if err.Error() != c.message {
			t.Errorf("CreateProject(%q) error = %q, want %q", c.name, err, c.message)
		}
		if p != (Project{}) || secret != "" {
			t.Errorf("CreateProject(%q) returned %+v, %q along with an error", c.name, p, secret)
		}
	}
}

// TestSecretNotStored greps every file of the database for the raw secret.
func TestSecretNotStored(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "meta.db")
	db, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	var secrets []string
	for i := range 5 {
		_, s, err := db.CreateProject(ctx, fmt.Sprintf("p%d", i))
		if err != nil {
			t.Fatal(err)
		}
		secrets = append(secrets, s)
	}
	if _, err := db.ProjectBySecret(ctx, secrets[0]); err != nil {
		t.Fatal(err)
	}

	check := func(when string, wantWAL bool) {
		t.Helper()
		files, err := filepath.Glob(path + "*")
		if err != nil {
			t.Fatal(err)
		}
		sawWAL := false
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			if strings.HasSuffix(f, "-wal") && len(b) > 0 {
				sawWAL = true
			}
			for _, s := range secrets {
				// Also the part after the prefix, in case it were stored
				// split or without it.
				for _, needle := range []string{s, strings.TrimPrefix(s, secretPrefix)} {
					if bytes.Contains(b, []byte(needle)) {
						t.Errorf("%s: %s contains a raw secret", when, filepath.Base(f))
					}
				}
			}
		}
		if wantWAL && !sawWAL {
			t.Errorf("%s: no non-empty -wal file among %v; the check did not cover it", when, files)
		}
	}
	check("while open", true)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	check("after close", false)
}

// TestTwoHandles opens one file twice, as the server and a CLI command
// would in two processes.
func TestTwoHandles(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "meta.db")
	server := openTest(t, path)
	cli := openTest(t, path)

	p, secret, err := cli.CreateProject(ctx, "From CLI")
	if err != nil {
		t.Fatal(err)
	}
	for _, get := range []func() (Project, error){
		func() (Project, error) { return server.ProjectByToken(ctx, p.Token) },
		func() (Project, error) { return server.ProjectBySecret(ctx, secret) },
		func() (Project, error) { return server.ProjectByID(ctx, p.ID) },
	} {
		if got, err := get(); err != nil || got != p {
			t.Errorf("server sees %+v, %v; want %+v", got, err, p)
		}
	}

	q, _, err := server.CreateProject(ctx, "From server")
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := server.CreateProject(ctx, "from cli"); !errors.Is(err, ErrConflict) {
		t.Errorf("server created a name the CLI had taken: %v", err)
	}
	ps, err := cli.Projects(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(ps) != 2 || ps[0] != p || ps[1] != q {
		t.Errorf("cli sees %+v, want [%+v %+v]", ps, p, q)
	}
}

// TestConcurrentCreate creates projects from goroutines on two handles at
// once; run with -race. Handles contend through SQLite's locks (as two
// processes would), goroutines of one handle also through its writer queue.
func TestConcurrentCreate(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "meta.db")
	dbs := []*DB{openTest(t, path), openTest(t, path)}

	const perHandle = 10
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		created  []Project
		dupWins  int
		failures []error
	)
	for h, db := range dbs {
		for i := range perHandle {
			wg.Go(func() {
				p, _, err := db.CreateProject(ctx, fmt.Sprintf("project %d/%d", h, i))
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					failures = append(failures, err)
					return
				}
				created = append(created, p)
			})
			// Everyone also races for one shared name: exactly one may win.
			wg.Go(func() {
				_, _, err := db.CreateProject(ctx, "Contested")
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil:
					dupWins++
				case !errors.Is(err, ErrConflict):
					failures = append(failures, err)
				}
			})
			// And readers run alongside the writers.
			wg.Go(func() {
				if _, err := db.Projects(ctx); err != nil {
					mu.Lock()
					failures = append(failures, err)
					mu.Unlock()
				}
			})
		}
	}
	wg.Wait()

	for _, err := range failures {
		t.Error(err)
	}
	if dupWins != 1 {
		t.Errorf("%d creations of the contested name succeeded, want 1", dupWins)
	}
	ps, err := dbs[0].Projects(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := 2*perHandle + 1; len(ps) != want {
		t.Errorf("%d projects, want %d", len(ps), want)
	}
	ids := map[int64]bool{}
	tokens := map[string]bool{}
	for _, p := range ps {
		if ids[p.ID] || tokens[p.Token] {
			t.Errorf("duplicate id or token in %+v", p)
		}
		ids[p.ID], tokens[p.Token] = true, true
	}
	for _, p := range created {
		if got, err := dbs[1].ProjectByToken(ctx, p.Token); err != nil || got != p {
			t.Errorf("ProjectByToken(%s) = %+v, %v; want %+v", p.Token, got, err, p)
		}
	}
}

func TestContextCanceled(t *testing.T) {
	db := openTest(t, filepath.Join(t.TempDir(), "meta.db"))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := db.CreateProject(ctx, "late"); !errors.Is(err, context.Canceled) {
		t.Errorf("CreateProject with canceled context: %v", err)
	}
	if _, err := db.Projects(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Projects with canceled context: %v", err)
	}
}

func TestOpenErrors(t *testing.T) {
	ctx := context.Background()
	if _, err := Open(ctx, ""); err == nil {
		t.Error("Open(\"\") succeeded")
	}
	// Not a database.
	path := filepath.Join(t.TempDir(), "junk.db")
	if err := os.WriteFile(path, bytes.Repeat([]byte("junk"), 1024), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(ctx, path); err == nil || !strings.HasPrefix(err.Error(), "meta: open ") {
		t.Errorf("Open(junk) = %v, want a meta: open error", err)
	}
	// Odd characters in the path are not taken as URI syntax.
	odd := filepath.Join(t.TempDir(), "a dir?x=1#frag%20", "meta.db")
	db, err := Open(ctx, odd)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := db.CreateProject(ctx, "odd"); err != nil {
		t.Fatal(err)
	}
	db.Close()
	// Open creates the file itself, so check SQLite wrote to that file and
	// not to one named by a misread URI.
	if fi, err := os.Stat(odd); err != nil || fi.Size() == 0 {
		t.Errorf("database not written at %q (%v)", odd, err)
	}
	entries, err := os.ReadDir(filepath.Dir(filepath.Dir(odd)))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Errorf("stray files next to the odd directory: %v", entries)
	}
}
