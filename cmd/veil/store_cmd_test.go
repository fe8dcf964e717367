package main

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/veil-analytics/veil/internal/privacy/pseudonym"
)

// TestImportEventsErase drives veil import, events and erase on one data
// directory: what import stores and refuses, that events reads it back
// pseudonymised, and that erase removes a person and refuses them later.
func TestImportEventsErase(t *testing.T) {
	env := newPrivEnv(t)
	base := []string{"--data", env.data, "--project", env.pid(), "--master-key-file", env.keyFile}
	const day = 1_700_000_000 // seconds, as exports carry it
	line := func(user, insert string, t int64, extra string) string {
		return fmt.Sprintf(`{"event":"page_view","properties":{"time":%d,"distinct_id":%q,"$insert_id":%q,"path":"/docs"%s}}`, t, user, insert, extra)
	}
	lines := []string{
		line("alice@example.com", "a1", day, ""),
		line("alice@example.com", "a2", day+60, `,"email":"alice@example.com"`),
		line("bob", "b1", day+86_400, ""),
		line("alice@example.com", "a3", day+2*86_400, ""),
		`{"event":"broken", "properties": {`, // not JSON
		`{"event":"no_time","properties":{"distinct_id":"bob","$insert_id":"b9"}}`,
		line("bob", "b1", day+86_400, ""), // a duplicate
	}
	file := filepath.Join(t.TempDir(), "export.jsonl.gz")
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write([]byte(strings.Join(lines, "\n") + "\n"))
	zw.Close()
	if err := os.WriteFile(file, gz.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	out, errOut, code := veil(t, "", append(append([]string{"import", "--json"}, base...), file)...)
	if code != 0 {
		t.Fatalf("import: %d %s", code, errOut)
	}
	var st importStats
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatal(err)
	}
	// The event without time is stamped with the import's time, as /import does.
	if st.Read != 7 || st.Stored != 5 || st.Duplicates != 1 || st.Refused["line is not valid JSON"] != 1 || len(st.Refused) != 1 {
		t.Fatalf("import summary %+v", st)
	}

	ring := env.ring.Project(env.project, 0)
	alice := ring.Pseudonym(pseudonym.FieldDistinctID, "alice@example.com")
	bob := ring.Pseudonym(pseudonym.FieldDistinctID, "bob")
	events := func() map[string]int {
		out, errOut, code := veil(t, "", "events", "--data", env.data, "--project", env.pid(), "--json")
		if code != 0 {
			t.Fatalf("events: %d %s", code, errOut)
		}
		if strings.Contains(out, "alice@example.com") {
			t.Fatalf("raw identity stored: %s", out)
		}
		n := map[string]int{}
		for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
			var e struct {
				Properties map[string]any `json:"properties"`
			}
			if err := json.Unmarshal([]byte(l), &e); err != nil {
				t.Fatalf("%q: %v", l, err)
			}
			n[e.Properties["distinct_id"].(string)]++
		}
		return n
	}
	if n := events(); n[alice] != 3 || n[bob] != 2 || len(n) != 2 {
		t.Fatalf("stored per pseudonym: %v", n)
	}

	out, errOut, code = veil(t, "", append([]string{"erase", "--id", "alice@example.com"}, base...)...)
	if code != 0 || !strings.Contains(out, "events removed     3") || !strings.Contains(out, alice) {
		t.Fatalf("erase: %d\n%s\n%s", code, out, errOut)
	}
	if n := events(); n[alice] != 0 || n[bob] != 2 {
		t.Fatalf("after erase: %v", n)
	}
	// Later events for her are refused; bob's are not.
	later := filepath.Join(t.TempDir(), "later.jsonl")
	os.WriteFile(later, []byte(line("alice@example.com", "a4", day+3*86_400, "")+"\n"+line("bob", "b2", day+3*86_400, "")+"\n"), 0o600)
	out, errOut, code = veil(t, "", append(append([]string{"import", "--json"}, base...), later)...)
	if code != 0 {
		t.Fatalf("import after erase: %d %s", code, errOut)
	}
	st = importStats{}
	json.Unmarshal([]byte(out), &st)
	if st.Suppressed != 1 || st.Stored != 1 {
		t.Fatalf("import after erase %+v", st)
	}
	if n := events(); n[alice] != 0 || n[bob] != 3 {
		t.Fatalf("after the second import: %v", n)
	}
	// Erasing needs one of --pseudonym and --id.
	if _, errOut, code := veil(t, "", append([]string{"erase"}, base...)...); code == 0 || !strings.Contains(errOut, "exactly one") {
		t.Fatalf("erase without a person: %d %s", code, errOut)
	}
}
