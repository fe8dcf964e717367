package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/veil-analytics/veil/internal/meta"
)

func TestTokenCommands(t *testing.T) {
	env := newPrivEnv(t)
	base := []string{"--data", env.data, "--project", env.pid()}

	out, errOut, code := veil(t, "", append([]string{"token", "create", "--scope", "read", "--name", "dashboards", "--json"}, base...)...)
	if code != 0 {
		t.Fatalf("token create: %d %s", code, errOut)
	}
	var created tokenCreatedJSON
	if err := json.Unmarshal([]byte(out), &created); err != nil {
		t.Fatalf("%q: %v", out, err)
	}
	if !regexp.MustCompile(`^vt_[A-Za-z0-9_-]{43}$`).MatchString(created.Token) || created.ID <= 0 ||
		created.Project != env.project || created.Scope != "read" {
		t.Fatalf("token create --json = %+v", created)
	}
	// Exactly the documented keys.
	var keys map[string]any
	json.Unmarshal([]byte(out), &keys)
	if len(keys) != 4 {
		t.Errorf("token create --json keys: %v", keys)
	}

	// Plain text, with the default scope: the token and the notice.
	out, errOut, code = veil(t, "", append([]string{"token", "create"}, base...)...)
	if code != 0 || !strings.Contains(out, "vt_") || !strings.Contains(out, "shown only now") || !strings.Contains(out, "Created read token 2") {
		t.Fatalf("token create: %d\n%s%s", code, out, errOut)
	}

	// The token works against the database.
	db, err := meta.Open(context.Background(), filepath.Join(env.data, "meta.db"))
	if err != nil {
		t.Fatal(err)
	}
	tok, err := db.TokenBySecret(context.Background(), created.Token)
	db.Close()
	if err != nil || tok.ID != created.ID {
		t.Fatalf("created token not found: %+v %v", tok, err)
	}

	out, errOut, code = veil(t, "", append([]string{"token", "list", "--json"}, base...)...)
	if code != 0 {
		t.Fatalf("token list: %d %s", code, errOut)
	}
	var list []tokenJSON
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].Name != "dashboards" || list[0].LastUsed == "" || list[1].LastUsed != "" || list[0].Revoked != "" {
		t.Fatalf("token list = %+v", list)
	}
	if strings.Contains(out, created.Token) {
		t.Fatal("token list prints a token")
	}

	if _, errOut, code := veil(t, "", append([]string{"token", "revoke", "--id", fmt.Sprint(created.ID)}, base...)...); code != 0 {
		t.Fatalf("token revoke: %d %s", code, errOut)
	}
	out, _, _ = veil(t, "", append([]string{"token", "list"}, base...)...)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "ID") || !regexp.MustCompile(`^1\s+dashboards\s+read\s+\S+\s+\S+\s+20\d\d-`).MatchString(lines[1]) ||
		!regexp.MustCompile(`^2\s+-\s+read\s+\S+\s+-\s+-$`).MatchString(lines[2]) {
		t.Fatalf("token list after revoke:\n%s", out)
	}

	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"token", "create", "--scope", "admin"}, `--scope: token scope "admin" is unknown`},
		{[]string{"token", "create", "--name", "a\tb"}, "--name: token name"},
		{[]string{"token", "revoke"}, "--id is required"},
		{[]string{"token", "revoke", "--id", "99"}, "has no token 99"},
	} {
		_, errOut, code := veil(t, "", append(c.args, base...)...)
		if code == 0 || !strings.Contains(errOut, c.want) {
			t.Errorf("%v: %d %q, want %q", c.args, code, errOut, c.want)
		}
	}
	if _, errOut, code := veil(t, "", "token", "list", "--data", env.data, "--project", "42"); code == 0 || !strings.Contains(errOut, "no project 42") {
		t.Errorf("unknown project: %d %q", code, errOut)
	}
	if _, errOut, code := veil(t, "", "token", "list", "--data", env.data); code == 0 || !strings.Contains(errOut, "--project") {
		t.Errorf("missing --project: %d %q", code, errOut)
	}
	if out, _, code := veil(t, "", "token"); code != 2 || out != "" {
		t.Errorf("token without a verb: %d", code)
	}
	// Flags come from the environment too.
	t.Setenv("VEIL_DATA", env.data)
	t.Setenv("VEIL_PROJECT", env.pid())
	if out, errOut, code := veil(t, "", "token", "create", "--json"); code != 0 || !strings.Contains(out, `"scope":"read"`) {
		t.Errorf("token create from the environment: %d %s %s", code, out, errOut)
	}
}

func TestProjectSettingsCommand(t *testing.T) {
	env := newPrivEnv(t)
	base := []string{"project", "settings", "--data", env.data, "--project", env.pid()}

	out, errOut, code := veil(t, "", base...)
	if code != 0 || out != fmt.Sprintf("project %d: time zone UTC, minimum group size 1\n", env.project) {
		t.Fatalf("settings: %d %q %s", code, out, errOut)
	}
	out, errOut, code = veil(t, "", append(base, "--timezone", "Europe/Paris", "--min-group-size", "5", "--json")...)
	if code != 0 || out != fmt.Sprintf(`{"project":%d,"timezone":"Europe/Paris","min_group_size":5}`+"\n", env.project) {
		t.Fatalf("set settings: %d %q %s", code, out, errOut)
	}
	// Changing one keeps the other.
	out, _, code = veil(t, "", append(base, "--min-group-size", "10")...)
	if code != 0 || !strings.Contains(out, "time zone Europe/Paris, minimum group size 10") {
		t.Fatalf("set k only: %d %q", code, out)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--timezone", "Mars/Olympus"}, `--timezone: time zone "Mars/Olympus" is not an IANA time zone name`},
		{[]string{"--timezone", ""}, "--timezone: time zone is empty"},
		{[]string{"--timezone", "Local"}, "--timezone: "},
		{[]string{"--min-group-size", "0"}, "--min-group-size: minimum group size 0 is below 1"},
	} {
		_, errOut, code := veil(t, "", append(base, c.args...)...)
		if code == 0 || !strings.Contains(errOut, c.want) {
			t.Errorf("%v: %d %q, want %q", c.args, code, errOut, c.want)
		}
	}
	if _, _, code := veil(t, "", append(base, "--min-group-size", "many")...); code != 2 {
		t.Errorf("non-integer k: exit %d, want 2", code)
	}
	out, _, _ = veil(t, "", base...)
	if !strings.Contains(out, "time zone Europe/Paris, minimum group size 10") {
		t.Fatalf("a refused change changed the settings: %q", out)
	}
}

// TestServeAPI starts veil serve and checks the API is mounted beside the
// collector: the OpenAPI document, authentication, cohorts validated by
// the engines, and reports.
func TestServeAPI(t *testing.T) {
	env := newPrivEnv(t)
	out, errOut, code := veil(t, "", "token", "create", "--data", env.data, "--project", env.pid(), "--json")
	if code != 0 {
		t.Fatalf("token create: %d %s", code, errOut)
	}
	var tok tokenCreatedJSON
	if err := json.Unmarshal([]byte(out), &tok); err != nil {
		t.Fatal(err)
	}

	var cfg serveConfig
	fs := newFlagSet("serve", "serve", io.Discard)
	cfg.register(fs)
	if err := fs.parse([]string{"--data", env.data, "--addr", "127.0.0.1:0", "--master-key-file", env.keyFile, "--query-timeout", "5s"}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := startServer(ctx, cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		cancel()
		if err := srv.wait(ctx); err != nil {
			t.Error(err)
		}
	}()

	do := func(method, path, token, body string) (int, string, http.Header) {
		t.Helper()
		req, err := http.NewRequest(method, srv.URL()+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		c := &http.Client{Timeout: 10 * time.Second}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), resp.Header
	}

	if code, body, _ := do("GET", "/api/v1/openapi.json", "", ""); code != 200 || !strings.Contains(body, `"openapi": "3.1`) {
		t.Fatalf("openapi.json: %d %.100s", code, body)
	}
	if code, _, h := do("GET", "/api/v1/projects/"+env.pid()+"/cohorts", "", ""); code != 401 || h.Get("WWW-Authenticate") == "" {
		t.Fatalf("cohorts without a token: %d", code)
	}
	code, body, _ := do("POST", "/api/v1/projects/"+env.pid()+"/cohorts", tok.Token, `{"name":"None","definition":{}}`)
	if code != 400 || !strings.Contains(body, "/definition/conditions") {
		t.Fatalf("create cohort without conditions: %d %s", code, body)
	}
	code, body, h := do("POST", "/api/v1/projects/"+env.pid()+"/cohorts", tok.Token,
		`{"name":"All","definition":{"conditions":[{"type":"event","event":"$any_event"}]}}`)
	if code != 201 || h.Get("Location") == "" {
		t.Fatalf("create cohort: %d %s", code, body)
	}
	code, body, h = do("POST", "/api/v1/projects/"+env.pid()+"/reports/insights", tok.Token, `{}`)
	if code != 400 || h.Get("Content-Type") != "application/problem+json" || !strings.Contains(body, `"/series"`) {
		t.Fatalf("report without series: %d %s", code, body)
	}
	code, body, _ = do("POST", "/api/v1/projects/"+env.pid()+"/reports/insights", tok.Token,
		`{"from":"2024-01-01","to":"2024-01-02","series":[{"event":"$any_event"}],"filters":[{"op":"in_cohort","cohort":1}]}`)
	if code != 200 || !strings.Contains(body, `"intervals":["2024-01-01","2024-01-02"]`) {
		t.Fatalf("insights: %d %s", code, body)
	}
	// The collector still answers beside it.
	if code, _, _ := do("GET", "/healthz", "", ""); code != 200 {
		t.Fatalf("healthz: %d", code)
	}
	if code, _, _ := do("GET", "/track?data=e30=", "", ""); code == 404 {
		t.Fatal("/track is not served")
	}
}
