package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/veil-analytics/veil/internal/event"
	"github.com/veil-analytics/veil/internal/meta"
	"github.com/veil-analytics/veil/internal/privacy"
	"github.com/veil-analytics/veil/internal/privacy/pseudonym"
)

// privEnv is a data directory with one project and a master key kept
// outside it.
type privEnv struct {
	data    string
	project int64
	keyFile string
	ring    *pseudonym.Keyring
}

func newPrivEnv(t *testing.T) privEnv {
	t.Helper()
	ctx := context.Background()
	env := privEnv{data: t.TempDir(), keyFile: filepath.Join(t.TempDir(), "master.key")}
	db, err := meta.Open(ctx, filepath.Join(env.data, "meta.db"))
	if err != nil {
		t.Fatal(err)
	}
	p, _, err := db.CreateProject(ctx, "test")
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	env.project = p.ID
	key, created, err := pseudonym.LoadOrCreateMasterKey(env.keyFile, env.data)
	if err != nil || !created {
		t.Fatalf("master key: created=%v err=%v", created, err)
	}
	if fi, err := os.Stat(env.keyFile); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v %v", fi, err)
	}
	env.ring = pseudonym.NewKeyring(key)
	return env
}

func (e privEnv) pid() string { return itoa(e.project) }

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// veil runs a veil command in-process with in as stdin.
func veil(t *testing.T, in string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	old := stdin
	stdin = strings.NewReader(in)
	defer func() { stdin = old }()
	var o, e bytes.Buffer
	code = run(context.Background(), args, &o, &e)
	return o.String(), e.String(), code
}

func (e privEnv) setPolicy(t *testing.T, js string) {
	t.Helper()
	if _, errOut, code := veil(t, js, "policy", "set", "--data", e.data, "--project", e.pid()); code != 0 {
		t.Fatalf("policy set: %d %s", code, errOut)
	}
}

func TestPolicyCommands(t *testing.T) {
	env := newPrivEnv(t)
	base := []string{"--data", env.data, "--project", env.pid()}

	out, errOut, code := veil(t, "", append([]string{"policy", "show"}, base...)...)
	if code != 0 || out != string(privacy.DefaultPolicy().JSON()) {
		t.Fatalf("show without a stored policy: %d %q %s", code, out, errOut)
	}
	out, _, code = veil(t, "", "policy", "default")
	if code != 0 || out != string(privacy.DefaultPolicy().JSON()) {
		t.Fatalf("policy default: %d %q", code, out)
	}

	file := filepath.Join(t.TempDir(), "policy.json")
	if err := os.WriteFile(file, []byte(`{"geo": "off", "group_keys": ["company"]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	set, errOut, code := veil(t, "", append([]string{"policy", "set", "--file", file}, base...)...)
	if code != 0 {
		t.Fatalf("policy set: %d %s", code, errOut)
	}
	shown, _, _ := veil(t, "", append([]string{"policy", "show"}, base...)...)
	if shown != set {
		t.Fatalf("show after set:\n%s\nset printed:\n%s", shown, set)
	}
	p, err := privacy.ParsePolicy([]byte(shown))
	if err != nil {
		t.Fatal(err)
	}
	if p.Geo != privacy.GeoOff || len(p.GroupKeys) != 1 || len(p.Drop) != len(privacy.DefaultPolicy().Drop) {
		t.Fatalf("effective policy lost a setting or a default: %+v", p)
	}

	for _, tc := range []struct{ in, want string }{
		{`{"classes": {"nope": "redact"}}`, `unknown class "nope"`},
		{`{"classes": {"email": "shout"}}`, `unknown action "shout"`},
		{`{"bogus": true}`, `unknown field "bogus"`},
		{`{"geo": "street"}`, `"street"`},
		{``, "not a JSON object"},
		{`[]`, "not a JSON object"},
	} {
		_, errOut, code := veil(t, tc.in, append([]string{"policy", "set"}, base...)...)
		if code == 0 || !strings.Contains(errOut, tc.want) {
			t.Errorf("set %s: code %d, stderr %q, want it to name %s", tc.in, code, errOut, tc.want)
		}
	}
	if again, _, _ := veil(t, "", append([]string{"policy", "show"}, base...)...); again != shown {
		t.Fatal("a refused policy changed the stored one")
	}

	if _, errOut, code := veil(t, `{}`, "policy", "set", "--data", env.data, "--project", "99"); code == 0 || !strings.Contains(errOut, "no project 99") {
		t.Errorf("unknown project: %d %q", code, errOut)
	}
	if _, errOut, code := veil(t, "", "policy", "show", "--data", env.data); code == 0 || !strings.Contains(errOut, "--project") {
		t.Errorf("missing --project: %d %q", code, errOut)
	}

	// After a rotation, leaving the epoch out must not silently undo it.
	env.setPolicy(t, `{"epoch": 3}`)
	if _, errOut, code := veil(t, `{"geo": "city"}`, append([]string{"policy", "set"}, base...)...); code == 0 || !strings.Contains(errOut, `"epoch"`) {
		t.Errorf("epoch reset: %d %q", code, errOut)
	}
	env.setPolicy(t, `{"epoch": 3, "geo": "city"}`)
}

func TestPseudonymCommand(t *testing.T) {
	env := newPrivEnv(t)
	args := func(extra ...string) []string {
		return append([]string{"pseudonym", "--data", env.data, "--project", env.pid(), "--master-key-file", env.keyFile}, extra...)
	}
	p0 := env.ring.Project(env.project, 0)

	out, errOut, code := veil(t, "", args("alice", "user-42")...)
	want := p0.Pseudonym(pseudonym.FieldDistinctID, "alice") + "\n" + p0.Pseudonym(pseudonym.FieldDistinctID, "user-42") + "\n"
	if code != 0 || out != want {
		t.Fatalf("pseudonym: %d %q %s, want %q", code, out, errOut, want)
	}
	// Flags after values, and values from stdin line by line.
	if out, _, _ := veil(t, "", append(args("alice"), "--field", "distinct_id")...); out != p0.Pseudonym(pseudonym.FieldDistinctID, "alice")+"\n" {
		t.Errorf("flag after value: %q", out)
	}
	out, _, code = veil(t, "alice\r\n\nuser-42\n", args("-")...)
	if code != 0 || out != p0.Pseudonym(pseudonym.FieldDistinctID, "alice")+"\n\n"+p0.Pseudonym(pseudonym.FieldDistinctID, "user-42")+"\n" {
		t.Errorf("stdin: %q", out)
	}

	env.setPolicy(t, `{"epoch": 2, "group_keys": ["Company"]}`)
	for _, tc := range []struct {
		field string
		want  pseudonym.Field
	}{
		{"distinct_id", pseudonym.FieldDistinctID},
		{"$device_id", pseudonym.FieldDistinctID},
		{"USER_ID", pseudonym.FieldDistinctID},
		{"customer_id", pseudonym.PropertyField("customer_id")},
		{"property:Org_ID", pseudonym.PropertyField("org_id")},
		{"email", pseudonym.FieldEmail},
		{"pii:phone", pseudonym.Field("pii:phone")},
		{"group:plan", pseudonym.GroupField("plan")},
		{"company", pseudonym.GroupField("Company")},
	} {
		out, errOut, code := veil(t, "", args("--field", tc.field, "V-1@Example.com")...)
		if want := env.ring.Project(env.project, 2).Pseudonym(tc.want, "V-1@Example.com") + "\n"; code != 0 || out != want {
			t.Errorf("--field %s: %d %q %s, want %q", tc.field, code, out, errOut, want)
		}
	}
	out, _, code = veil(t, "", args("--all-epochs", "alice", "bob")...)
	var lines []string
	for _, v := range []string{"alice", "bob"} {
		for e := uint32(0); e <= 2; e++ {
			lines = append(lines, itoa(int64(e))+"\t"+env.ring.Project(env.project, e).Pseudonym(pseudonym.FieldDistinctID, v))
		}
	}
	if code != 0 || out != strings.Join(lines, "\n")+"\n" {
		t.Errorf("--all-epochs: %q, want %q", out, lines)
	}
	if out, _, _ := veil(t, "", args("--epoch", "1", "alice")...); out != env.ring.Project(env.project, 1).Pseudonym(pseudonym.FieldDistinctID, "alice")+"\n" {
		t.Errorf("--epoch 1: %q", out)
	}

	for _, tc := range []struct {
		args []string
		want string
	}{
		{args(), "no values"},
		{args("a", "-"), "only argument"},
		{args("--field", "favourite_colour", "a"), `"favourite_colour"`},
		{args("--field", "pii:aura", "a"), "unknown class"},
		{args("--field", "group:", "a"), "no group key"},
		{args("--epoch", "1", "--all-epochs", "a"), "exclude"},
		{args("--epoch", "x", "a"), ""},
		{[]string{"pseudonym", "--data", env.data, "--project", "42", "--master-key-file", env.keyFile, "a"}, "no project 42"},
	} {
		_, errOut, code := veil(t, "", tc.args...)
		if code == 0 || !strings.Contains(errOut, tc.want) {
			t.Errorf("%v: code %d, stderr %q, want %q", tc.args[5:], code, errOut, tc.want)
		}
	}

	missing := filepath.Join(t.TempDir(), "nokey", "master.key")
	_, errOut, code = veil(t, "", "pseudonym", "--data", env.data, "--project", env.pid(), "--master-key-file", missing, "secret-person")
	if code == 0 || !strings.Contains(errOut, "no master key at "+missing) || strings.Contains(errOut, "secret-person") {
		t.Errorf("missing key: %d %q", code, errOut)
	}
	if _, err := os.Stat(filepath.Dir(missing)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a missing key created something: %v", err)
	}
}

// staticPolicy serves one policy to every project.
type staticPolicy []byte

func (s staticPolicy) PrivacyPolicy(context.Context, int64) ([]byte, error) { return s, nil }

// TestDistinctIDAliasesMatchStage checks that --field resolves a name to
// the domain the stage really uses: distinct-id properties in the
// distinct_id domain, other identifiers in their own.
func TestDistinctIDAliasesMatchStage(t *testing.T) {
	env := newPrivEnv(t)
	ids := privacy.DefaultPolicy().Identifiers
	ids = append(ids, "$device_id", "$user_id", "$anon_id", "alias", "$distinct_ids", "user_id", "userid", "distinct_id")
	ids = append(ids, "account_id", "userId2")
	pol, _ := json.Marshal(map[string]any{"identifiers": ids})
	st, err := privacy.NewStage(privacy.Config{Keys: env.ring, Policies: staticPolicy(pol)})
	if err != nil {
		t.Fatal(err)
	}
	p, err := privacy.ParsePolicy(pol)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range ids {
		e := event.Event{Project: env.project, Name: "x", Props: []event.Field{{Key: name, Value: event.StringValue("v-1")}}}
		if _, _, err := st.Explain(context.Background(), &privacy.Request{}, &e); err != nil {
			t.Fatal(err)
		}
		f, err := resolveField(name, p, env.project)
		if err != nil {
			t.Fatal(err)
		}
		want := env.ring.Project(env.project, 0).Pseudonym(f, "v-1")
		if len(e.Props) != 1 || e.Props[0].Value.Str != want {
			t.Errorf("%s: stage stored %+v, pseudonym prints %s (field %s)", name, e.Props, want, f)
		}
	}
}

func TestPrivacyReport(t *testing.T) {
	env := newPrivEnv(t)
	base := []string{"--data", env.data, "--project", env.pid()}
	out, _, code := veil(t, "", append([]string{"privacy", "report"}, base...)...)
	if code != 0 || !strings.Contains(out, "counts only, never values") || !strings.Contains(out, "No changes") {
		t.Fatalf("empty report: %d %q", code, out)
	}
	ctx := context.Background()
	db, err := meta.Open(ctx, filepath.Join(env.data, "meta.db"))
	if err != nil {
		t.Fatal(err)
	}
	first := time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC)
	err = db.AddPrivacyChanges(ctx, []meta.PrivacyChange{
		{ProjectID: env.project, Event: "Signed up", Property: "$email", Reason: privacy.ReasonPersonalField, Count: 3, FirstSeen: first, LastSeen: first},
		{ProjectID: env.project, Event: "Page view", Property: "distinct_id", Reason: privacy.ReasonPseudonymized, Count: 10, FirstSeen: first, LastSeen: first.Add(time.Hour)},
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	out, errOut, code := veil(t, "", append([]string{"privacy", "report"}, base...)...)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != 0 || len(lines) != 4 {
		t.Fatalf("report: %d %q %s", code, out, errOut)
	}
	if !strings.Contains(lines[0], "counts only, never values") || !strings.Contains(lines[0], "10 s") ||
		!strings.HasPrefix(lines[1], "EVENT") ||
		!strings.Contains(lines[2], "Page view") || !strings.Contains(lines[2], "pseudonymized") || !strings.Contains(lines[2], "10") ||
		!strings.Contains(lines[3], "$email") || !strings.Contains(lines[3], "dropped_personal_field") ||
		strings.Index(lines[2], "pseudonymized") != strings.Index(lines[1], "REASON") {
		t.Errorf("report table:\n%s", out)
	}
	out, _, code = veil(t, "", append([]string{"privacy", "report", "--json"}, base...)...)
	var rows []changeJSON
	if err := json.Unmarshal([]byte(out), &rows); err != nil || code != 0 {
		t.Fatalf("report --json: %v %q", err, out)
	}
	if len(rows) != 2 || rows[0].Count != 10 || rows[0].Property != "distinct_id" || rows[1].Reason != privacy.ReasonPersonalField ||
		rows[0].FirstSeen != "2025-03-01T10:00:00Z" || rows[0].LastSeen != "2025-03-01T11:00:00Z" {
		t.Errorf("report --json: %+v", rows)
	}
	if _, errOut, code := veil(t, "", "privacy", "report", "--data", env.data, "--project", "5"); code == 0 || !strings.Contains(errOut, "no project 5") {
		t.Errorf("unknown project: %d %q", code, errOut)
	}
}

const explainEvent = `{"event": "Signed up", "properties": {
	"token": "tok", "distinct_id": "user-42", "time": 1700000000, "$insert_id": "abc-123",
	"$email": "bob@example.com",
	"note": "please write to alice@example.com",
	"$current_url": "https://shop.example/cart?token=SECRET123&utm_source=news",
	"plan": "pro"}}`

func TestPrivacyExplain(t *testing.T) {
	env := newPrivEnv(t)
	args := func(extra ...string) []string {
		return append([]string{"privacy", "explain", "--data", env.data, "--project", env.pid(), "--master-key-file", env.keyFile}, extra...)
	}
	raw := []string{"user-42", "bob@example.com", "alice@example.com", "SECRET123"}
	wantReasons := []string{
		"distinct_id\t" + privacy.ReasonPseudonymized,
		"$email\t" + privacy.ReasonPersonalField,
		"note\tpii_email_redact",
		"$current_url\turl_query_removed",
	}

	out, errOut, code := veil(t, explainEvent, args("--ip", "203.0.113.9", "--user-agent", "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0")...)
	if code != 0 {
		t.Fatalf("explain: %d %s", code, errOut)
	}
	for _, v := range append(raw, "203.0.113.9") {
		if strings.Contains(out, v) {
			t.Errorf("raw value %q in the output:\n%s", v, out)
		}
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	var stored struct {
		Event      string         `json:"event"`
		Properties map[string]any `json:"properties"`
	}
	if err := json.Unmarshal([]byte(lines[0]), &stored); err != nil {
		t.Fatalf("first line is not the stored event: %v\n%s", err, out)
	}
	did := env.ring.Project(env.project, 0).Pseudonym(pseudonym.FieldDistinctID, "user-42")
	if stored.Event != "Signed up" || stored.Properties["distinct_id"] != did || stored.Properties["time"] != float64(1700000000000) ||
		stored.Properties["plan"] != "pro" || stored.Properties["$browser"] != "Firefox" || stored.Properties["token"] != nil {
		t.Errorf("stored event: %+v", stored)
	}
	for _, w := range wantReasons {
		if !contains(lines[1:], w) {
			t.Errorf("changes lack %q:\n%s", w, out)
		}
	}

	// --json, an array of two events, the second dropped by the policy.
	env.setPolicy(t, `{"classes": {"phone": "drop_event"}}`)
	out, errOut, code = veil(t, "["+explainEvent+`, {"event": "Call", "properties": {"distinct_id": "u", "memo": "call +44 20 7946 0958"}}]`, args("--json")...)
	if code != 0 {
		t.Fatalf("explain --json: %d %s", code, errOut)
	}
	for _, v := range append(raw, "7946") {
		if strings.Contains(out, v) {
			t.Errorf("raw value %q in the output:\n%s", v, out)
		}
	}
	var res []explainJSON
	dec := json.NewDecoder(strings.NewReader(out))
	for dec.More() {
		var r explainJSON
		if err := dec.Decode(&r); err != nil {
			t.Fatal(err)
		}
		res = append(res, r)
	}
	if len(res) != 2 || !res[0].Kept || res[1].Kept || string(res[1].Event) != "null" {
		t.Fatalf("explain --json: %s", out)
	}
	var got []string
	for _, c := range res[0].Changes {
		got = append(got, c.Property+"\t"+c.Reason)
	}
	for _, w := range wantReasons {
		if !contains(got, w) {
			t.Errorf("--json changes lack %q: %v", w, got)
		}
	}
	got = nil
	for _, c := range res[1].Changes {
		got = append(got, c.Property+"\t"+c.Reason)
	}
	if !contains(got, "memo\tpii_phone_drop_event") {
		t.Errorf("dropped event's changes: %+v", res[1].Changes)
	}
	out, _, _ = veil(t, `{"event": "Call", "properties": {"distinct_id": "u", "memo": "call +44 20 7946 0958"}}`, args()...)
	if !strings.HasPrefix(out, "dropped\n") || !strings.Contains(out, "memo\tpii_phone_drop_event") {
		t.Errorf("dropped event, text: %q", out)
	}

	for _, tc := range []struct{ in, want string }{
		{``, "no event on stdin"},
		{`{"event": `, "middle of a JSON value"},
		{`{"event": x}`, "not valid JSON (at byte"},
		{`[1]`, "event 1: not a JSON object"},
		{`{"properties": {"distinct_id": "person-7"}}`, "event must be a non-empty string"},
		{`{"event": "e", "properties": {"distinct_id": "person-7", "time": "yesterday"}}`, "properties.time"},
	} {
		_, errOut, code := veil(t, tc.in, args()...)
		if code == 0 || !strings.Contains(errOut, tc.want) || strings.Contains(errOut, "person-7") || strings.Contains(errOut, "yesterday") {
			t.Errorf("input %s: code %d, stderr %q, want %q", tc.in, code, errOut, tc.want)
		}
	}
	if _, errOut, code := veil(t, explainEvent, args("--ip", "not-an-ip")...); code == 0 || !strings.Contains(errOut, "--ip") {
		t.Errorf("bad --ip: %d %q", code, errOut)
	}

	missing := filepath.Join(t.TempDir(), "master.key")
	_, errOut, code = veil(t, explainEvent, "privacy", "explain", "--data", env.data, "--project", env.pid(), "--master-key-file", missing)
	if code == 0 || !strings.Contains(errOut, "no master key at") {
		t.Errorf("missing key: %d %q", code, errOut)
	}
	if _, err := os.Stat(missing); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("explain created a master key: %v", err)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
