package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestQueryCommand imports a small funnel and runs every report kind
// through veil query, as the API would answer them.
func TestQueryCommand(t *testing.T) {
	env := newPrivEnv(t)
	const t0 = 1_704_103_200 // 2024-01-01T10:00:00Z, seconds
	var lines []string
	add := func(user, event string, at int64) {
		lines = append(lines, fmt.Sprintf(`{"event":%q,"properties":{"time":%d,"distinct_id":%q,"$insert_id":"i%d","plan":"free"}}`,
			event, at, user, len(lines)))
	}
	for u := range 10 {
		id := fmt.Sprintf("user%d", u)
		add(id, "signup", t0+int64(u)*60)
		if u < 6 {
			add(id, "activate", t0+int64(u)*60+120)
		}
		if u < 3 {
			add(id, "pay", t0+int64(u)*60+86_400*8) // outside a 7-day window
			add(id, "pay", t0+int64(u)*60+3600)
		}
	}
	file := filepath.Join(t.TempDir(), "events.jsonl")
	if err := os.WriteFile(file, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, errOut, code := veil(t, "", "import", "--data", env.data, "--project", env.pid(), "--master-key-file", env.keyFile, file); code != 0 {
		t.Fatalf("import: %d %s", code, errOut)
	}
	spec := func(s string) string {
		f := filepath.Join(t.TempDir(), "spec.json")
		os.WriteFile(f, []byte(s), 0o600)
		return f
	}
	out, errOut, code := veil(t, "", "query", "funnels", "--data", env.data, "--project", env.pid(), "--spec",
		spec(`{"from":"2024-01-01","to":"2024-01-31","steps":[{"event":"signup"},{"event":"activate"},{"event":"pay"}]}`))
	if code != 0 {
		t.Fatalf("query funnels: %d %s", code, errOut)
	}
	var f struct {
		Steps []struct{ Users int64 } `json:"steps"`
	}
	if err := json.Unmarshal([]byte(out), &f); err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(f.Steps); got != "[{10} {6} {3}]" {
		t.Fatalf("funnel steps %s, want [{10} {6} {3}]\n%s", got, out)
	}
	for kind, s := range map[string]string{
		"insights":  `{"from":"2024-01-01","to":"2024-01-10","series":[{"event":"signup","measure":"unique"}],"breakdowns":[{"property":"plan"}]}`,
		"retention": `{"from":"2024-01-01","to":"2024-01-10","birth":{"event":"signup"},"unit":"day","periods":3}`,
		"flows":     `{"from":"2024-01-01","to":"2024-01-10","anchor":{"event":"signup"},"steps":2}`,
	} {
		out, errOut, code := veil(t, "", "query", kind, "--data", env.data, "--project", env.pid(), "--spec", spec(s))
		if code != 0 || !json.Valid([]byte(out)) {
			t.Fatalf("query %s: %d %s %s", kind, code, errOut, out)
		}
	}
	// A bad spec names its field.
	_, errOut, code = veil(t, "", "query", "funnels", "--data", env.data, "--project", env.pid(), "--spec",
		spec(`{"from":"2024-01-01","to":"2024-01-31","steps":[{"event":"signup"}]}`))
	if code == 0 || !strings.Contains(errOut, "/steps") {
		t.Fatalf("a one-step funnel: %d %s", code, errOut)
	}
	_, errOut, code = veil(t, "", "query", "sessions", "--data", env.data)
	if code == 0 || !strings.Contains(errOut, "insights|funnels|retention|flows") {
		t.Fatalf("an unknown kind: %d %s", code, errOut)
	}
}
