package meta

import (
	"context"
	"errors"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
	"time"
)

func TestCohorts(t *testing.T) {
	ctx := context.Background()
	db := openTest(t, filepath.Join(t.TempDir(), "meta.db"))
	p1, _, err := db.CreateProject(ctx, "one")
	if err != nil {
		t.Fatal(err)
	}
	p2, _, err := db.CreateProject(ctx, "two")
	if err != nil {
		t.Fatal(err)
	}
	if cs, err := db.Cohorts(ctx, p1.ID); err != nil || cs == nil || len(cs) != 0 {
		t.Fatalf("Cohorts on a new project = %v, %v; want empty, non-nil", cs, err)
	}

	def := []byte(`{"op":"and","conditions":[]}`)
	c, err := db.CreateCohort(ctx, p1.ID, " Power users ", "did 10 things\nlast week", def)
	if err != nil {
		t.Fatal(err)
	}
	if c.ID <= 0 || c.ProjectID != p1.ID || c.Name != "Power users" || c.Description != "did 10 things\nlast week" ||
		string(c.Definition) != string(def) || c.Created.IsZero() || !c.Updated.Equal(c.Created) {
		t.Fatalf("created %+v", c)
	}
	got, err := db.Cohort(ctx, p1.ID, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !sameCohort(got, c) {
		t.Fatalf("Cohort = %+v, want %+v", got, c)
	}
	// Another project neither sees it nor clashes with its name.
	if _, err := db.Cohort(ctx, p2.ID, c.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("cohort seen through another project: %v", err)
	}
	if _, err := db.CreateCohort(ctx, p2.ID, "power users", "", def); err != nil {
		t.Fatalf("same name in another project: %v", err)
	}

	for _, c := range []struct {
		name, desc string
		def        string
		want       error
		field      string
		message    string
	}{
		{"POWER USERS", "", `{}`, ErrConflict, "name", `cohort name "POWER USERS" is already taken (by cohort 1, "Power users")`},
		{"Power users", "", `{}`, ErrConflict, "name", `cohort name "Power users" is already taken (by cohort 1)`},
		{"", "", `{}`, ErrInvalid, "name", "cohort name is empty"},
		{"  ", "", `{}`, ErrInvalid, "name", "cohort name is empty"},
		{strings.Repeat("n", MaxCohortNameLen+1), "", `{}`, ErrInvalid, "name", "cohort name is too long (101 characters, at most 100)"},
		{"tab\tname", "", `{}`, ErrInvalid, "name", `cohort name "tab\tname" contains control character U+0009`},
		{"x", strings.Repeat("d", MaxCohortDescriptionLen+1), `{}`, ErrInvalid, "description", "cohort description is too long (1001 characters, at most 1000)"},
		{"x", "bell\a", `{}`, ErrInvalid, "description", "cohort description contains control character U+0007"},
		{"x", "bad\xff", `{}`, ErrInvalid, "description", "cohort description is not valid UTF-8"},
		{"x", "", ``, ErrInvalid, "definition", "cohort definition is empty"},
		{"x", "", `{"op":`, ErrInvalid, "definition", "cohort definition is not valid JSON"},
		{"x", "", `{"a":` + strings.Repeat(" ", MaxCohortDefinitionBytes) + `1}`, ErrInvalid, "definition", "cohort definition is too large (1048583 bytes, at most 1048576)"},
	} {
		_, err := db.CreateCohort(ctx, p1.ID, c.name, c.desc, []byte(c.def))
		if !errors.Is(err, c.want) || fieldOf(err) != c.field || err.Error() != c.message {
			t.Errorf("CreateCohort(%.20q, %.20q, %.20q) = %v (field %q), want %v %q on %s", c.name, c.desc, c.def, err, fieldOf(err), c.want, c.message, c.field)
		}
	}
	if _, err := db.CreateCohort(ctx, 999, "x", "", def); !errors.Is(err, ErrNotFound) {
		t.Errorf("cohort in an unknown project: %v", err)
	}

	// Update: renaming to its own name in another case is fine, to another
	// cohort's name is not.
	second, err := db.CreateCohort(ctx, p1.ID, "Churned", "", []byte(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Millisecond)
	up, err := db.UpdateCohort(ctx, p1.ID, c.ID, "power USERS", "", []byte(`{"v":2}`))
	if err != nil {
		t.Fatal(err)
	}
	if up.Name != "power USERS" || string(up.Definition) != `{"v":2}` || !up.Created.Equal(c.Created) || !up.Updated.After(c.Updated) {
		t.Fatalf("updated %+v from %+v", up, c)
	}
	if got, _ := db.Cohort(ctx, p1.ID, c.ID); !sameCohort(got, up) {
		t.Fatalf("after update: %+v, want %+v", got, up)
	}
	if _, err := db.UpdateCohort(ctx, p1.ID, second.ID, "Power Users", "", []byte(`{}`)); !errors.Is(err, ErrConflict) {
		t.Errorf("rename onto a taken name: %v", err)
	}
	if _, err := db.UpdateCohort(ctx, p2.ID, c.ID, "x", "", []byte(`{}`)); !errors.Is(err, ErrNotFound) {
		t.Errorf("update through another project: %v", err)
	}
	if _, err := db.UpdateCohort(ctx, p1.ID, c.ID, "x", "", []byte(`nope`)); !errors.Is(err, ErrInvalid) {
		t.Errorf("update with bad JSON: %v", err)
	}

	cs, err := db.Cohorts(ctx, p1.ID)
	if err != nil || len(cs) != 2 || cs[0].ID != c.ID || cs[1].ID != second.ID {
		t.Fatalf("Cohorts = %+v, %v", cs, err)
	}

	// Delete.
	if err := db.DeleteCohort(ctx, p2.ID, c.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("delete through another project: %v", err)
	}
	if err := db.DeleteCohort(ctx, p1.ID, c.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Cohort(ctx, p1.ID, c.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("deleted cohort found: %v", err)
	}
	if err := db.DeleteCohort(ctx, p1.ID, c.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("deleting twice: %v", err)
	}
	// Its name is free again.
	if _, err := db.CreateCohort(ctx, p1.ID, "Power users", "", def); err != nil {
		t.Errorf("name of a deleted cohort: %v", err)
	}
}

func sameCohort(a, b Cohort) bool {
	return a.ID == b.ID && a.ProjectID == b.ProjectID && a.Name == b.Name && a.Description == b.Description &&
		string(a.Definition) == string(b.Definition) && a.Created.Equal(b.Created) && a.Updated.Equal(b.Updated)
}

func TestProjectSettings(t *testing.T) {
	ctx := context.Background()
	db := openTest(t, filepath.Join(t.TempDir(), "meta.db"))
	p, _, err := db.CreateProject(ctx, "p")
	if err != nil {
		t.Fatal(err)
	}
	s, err := db.ProjectSettings(ctx, p.ID)
	if err != nil || s != DefaultSettings() || s != (Settings{TimeZone: "UTC", MinGroupSize: 1}) {
		t.Fatalf("new project's settings = %+v, %v", s, err)
	}
	want := Settings{TimeZone: "Europe/Paris", MinGroupSize: 5}
	if err := db.SetProjectSettings(ctx, p.ID, want); err != nil {
		t.Fatal(err)
	}
	if s, err := db.ProjectSettings(ctx, p.ID); err != nil || s != want {
		t.Fatalf("settings = %+v, %v; want %+v", s, err, want)
	}
	loc, err := want.Location()
	if err != nil || loc.String() != "Europe/Paris" {
		t.Fatalf("Location = %v, %v", loc, err)
	}

	for _, c := range []struct {
		s     Settings
		field string
	}{
		{Settings{TimeZone: "", MinGroupSize: 1}, "timezone"},
		{Settings{TimeZone: "Local", MinGroupSize: 1}, "timezone"},
		{Settings{TimeZone: "Mars/Olympus", MinGroupSize: 1}, "timezone"},
		{Settings{TimeZone: "europe/paris", MinGroupSize: 1}, "timezone"},
		{Settings{TimeZone: "../../etc/passwd", MinGroupSize: 1}, "timezone"},
		{Settings{TimeZone: "UTC", MinGroupSize: 0}, "min_group_size"},
		{Settings{TimeZone: "UTC", MinGroupSize: -3}, "min_group_size"},
	} {
		err := db.SetProjectSettings(ctx, p.ID, c.s)
		if !errors.Is(err, ErrInvalid) || fieldOf(err) != c.field {
			t.Errorf("SetProjectSettings(%+v) = %v (field %q), want ErrInvalid on %s", c.s, err, fieldOf(err), c.field)
		}
	}
	if s, _ := db.ProjectSettings(ctx, p.ID); s != want {
		t.Fatalf("a refused change changed the settings: %+v", s)
	}
	if _, err := db.ProjectSettings(ctx, 999); !errors.Is(err, ErrNotFound) {
		t.Errorf("settings of an unknown project: %v", err)
	}
	if err := db.SetProjectSettings(ctx, 999, want); !errors.Is(err, ErrNotFound) {
		t.Errorf("setting an unknown project: %v", err)
	}
	// The schema refuses what Validate would, too.
	if _, err := db.sql.Exec(`UPDATE projects SET min_group_size = 0 WHERE id = ?`, p.ID); err == nil {
		t.Error("schema accepted min_group_size 0")
	}
}

// TestMigrateFromOldSchema opens a database made by a binary that knew
// only migrations 1-3 and checks that its data survives migration 4 with
// the new defaults.
func TestMigrateFromOldSchema(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "meta.db")
	old := fstest.MapFS{}
	names, err := fs.Glob(migrationFiles, "migrations/*.sql")
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		if filepath.Base(n) >= "0004" {
			continue
		}
		b, err := fs.ReadFile(migrationFiles, n)
		if err != nil {
			t.Fatal(err)
		}
		old[n] = &fstest.MapFile{Data: b}
	}
	if len(old) != 3 {
		t.Fatalf("%d old migrations, want 3", len(old))
	}
	db, err := open(ctx, path, old)
	if err != nil {
		t.Fatal(err)
	}
	p, secret, err := db.CreateProject(ctx, "Old")
	if err != nil {
		t.Fatal(err)
	}
	if err := db.SetRetentionDays(ctx, p.ID, 30); err != nil {
		t.Fatal(err)
	}
	if err := db.SetPrivacyPolicy(ctx, p.ID, []byte(`{"geo":"off"}`)); err != nil {
		t.Fatal(err)
	}
	db.Close()

	db = openTest(t, path)
	if got := appliedVersions(t, db); len(got) != 4 || got[3] != 4 {
		t.Fatalf("applied versions after upgrade = %v", got)
	}
	if got, err := db.ProjectBySecret(ctx, secret); err != nil || got != p {
		t.Fatalf("project after upgrade = %+v, %v; want %+v", got, err, p)
	}
	if days, err := db.RetentionDays(ctx, p.ID); err != nil || days != 30 {
		t.Fatalf("retention after upgrade = %d, %v", days, err)
	}
	if pol, err := db.PrivacyPolicy(ctx, p.ID); err != nil || string(pol) != `{"geo":"off"}` {
		t.Fatalf("policy after upgrade = %s, %v", pol, err)
	}
	if s, err := db.ProjectSettings(ctx, p.ID); err != nil || s != DefaultSettings() {
		t.Fatalf("settings after upgrade = %+v, %v; want the defaults", s, err)
	}
	_, tokSecret, err := db.CreateToken(ctx, p.ID, ScopeRead, "after upgrade")
	if err != nil {
		t.Fatal(err)
	}
	if tok, err := db.TokenBySecret(ctx, tokSecret); err != nil || tok.ProjectID != p.ID {
		t.Fatalf("token after upgrade: %+v, %v", tok, err)
	}
	if _, err := db.CreateCohort(ctx, p.ID, "c", "", []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
}
