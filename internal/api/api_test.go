package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/veil-analytics/veil/internal/meta"
)

// fakeReports answers with the functions it is given; nil ones echo.
type fakeReports struct {
	run      func(ctx context.Context, project int64, kind string, spec []byte) (any, error)
	validate func(ctx context.Context, project int64, definition []byte) error
}

func (f *fakeReports) Run(ctx context.Context, project int64, kind string, spec []byte) (any, error) {
	if f.run == nil {
		return map[string]any{"project": project, "kind": kind, "spec": json.RawMessage(spec)}, nil
	}
	return f.run(ctx, project, kind, spec)
}

func (f *fakeReports) ValidateCohort(ctx context.Context, project int64, definition []byte) error {
	if f.validate == nil {
		return nil
	}
	return f.validate(ctx, project, definition)
}

// specError is a refused field, as report engines return them.
type specError struct{ ptr, msg string }

func (e *specError) Error() string { return "spec " + e.ptr + ": " + e.msg }
func (e *specError) Field() string { return e.ptr }

// tooLarge is a result too large to compute.
type tooLarge struct{}

func (tooLarge) Error() string {
	return "the result would have 2000000 cells, more than the limit of 1000000"
}
func (tooLarge) TooLarge() bool { return true }

// syncBuffer is a log destination safe for the server's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// env is a handler on a real metadata database with two projects, each
// with a read token.
type env struct {
	t       *testing.T
	db      *meta.DB
	reports *fakeReports
	h       *Handler
	logs    *syncBuffer
	p1, p2  int64
	tok1    string // project p1's token
	tok2    string // project p2's token
	revoked string // project p1's revoked token
}

func newEnv(t *testing.T, mod func(*Config)) *env {
	t.Helper()
	ctx := context.Background()
	db, err := meta.Open(ctx, filepath.Join(t.TempDir(), "meta.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	e := &env{t: t, db: db, reports: &fakeReports{}, logs: &syncBuffer{}}
	for i, p := range []*int64{&e.p1, &e.p2} {
		pr, _, err := db.CreateProject(ctx, fmt.Sprintf("p%d", i+1))
		if err != nil {
			t.Fatal(err)
		}
		*p = pr.ID
	}
	if _, e.tok1, err = db.CreateToken(ctx, e.p1, meta.ScopeRead, "one"); err != nil {
		t.Fatal(err)
	}
	if _, e.tok2, err = db.CreateToken(ctx, e.p2, meta.ScopeRead, "two"); err != nil {
		t.Fatal(err)
	}
	rt, revoked, err := db.CreateToken(ctx, e.p1, meta.ScopeRead, "old")
	if err != nil {
		t.Fatal(err)
	}
	if err := db.RevokeToken(ctx, e.p1, rt.ID); err != nil {
		t.Fatal(err)
	}
	e.revoked = revoked
	cfg := Config{
		Reports: e.reports,
		Meta:    db,
		Logger:  slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	if mod != nil {
		mod(&cfg)
	}
	e.h, err = New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// do serves one request in-process. Header pairs follow the body.
func (e *env) do(method, path, token, body string, header ...string) *httptest.ResponseRecorder {
	e.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req := httptest.NewRequest(method, path, rd)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	w := httptest.NewRecorder()
	e.h.ServeHTTP(w, req)
	return w
}

func (e *env) reportPath(project int64, kind string) string {
	return fmt.Sprintf("/api/v1/projects/%d/reports/%s", project, kind)
}

// wantProblem checks that w is a problem document of kind and returns it.
func wantProblem(t *testing.T, w *httptest.ResponseRecorder, kind problemKind) problem {
	t.Helper()
	if w.Code != kind.status() {
		t.Errorf("status %d, want %d; body %s", w.Code, kind.status(), w.Body)
	}
	if ct := w.Header().Get("Content-Type"); ct != "application/problem+json" {
		t.Errorf("Content-Type %q, want application/problem+json", ct)
	}
	var p problem
	dec := json.NewDecoder(bytes.NewReader(w.Body.Bytes()))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		t.Fatalf("problem body %q: %v", w.Body, err)
	}
	if p.Type != problemBase+string(kind) || p.Title != kind.title() || p.Status != kind.status() || p.Detail == "" {
		t.Errorf("problem %+v, want type %s, title %q, status %d and a detail", p, kind, kind.title(), kind.status())
	}
	return p
}

func TestNewConfigErrors(t *testing.T) {
	db, err := meta.Open(context.Background(), filepath.Join(t.TempDir(), "meta.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, c := range []struct {
		cfg   Config
		field string
	}{
		{Config{Meta: db}, "Reports"},
		{Config{Reports: &fakeReports{}}, "Meta"},
		{Config{Reports: &fakeReports{}, Meta: db, QueryTimeout: -1}, "QueryTimeout"},
		{Config{Reports: &fakeReports{}, Meta: db, MaxBodyBytes: -1}, "MaxBodyBytes"},
		{Config{Reports: &fakeReports{}, Meta: db, MaxResultBytes: -1}, "MaxResultBytes"},
	} {
		if _, err := New(c.cfg); err == nil || !strings.Contains(err.Error(), c.field) {
			t.Errorf("New without %s: %v", c.field, err)
		}
	}
}

// scopedMeta changes what the database answers, for cases the database
// cannot produce yet.
type scopedMeta struct {
	*meta.DB
	scope          meta.Scope // reported for every token
	projectMissing bool
}

func (m scopedMeta) TokenBySecret(ctx context.Context, secret string) (meta.Token, error) {
	t, err := m.DB.TokenBySecret(ctx, secret)
	if err == nil && m.scope != "" {
		t.Scope = m.scope
	}
	return t, err
}

func (m scopedMeta) ProjectByID(ctx context.Context, id int64) (meta.Project, error) {
	if m.projectMissing {
		return meta.Project{}, fmt.Errorf("%w: project %d", meta.ErrNotFound, id)
	}
	return m.DB.ProjectByID(ctx, id)
}

func TestAuth(t *testing.T) {
	e := newEnv(t, nil)
	spec := `{"events":[]}`
	ok := e.reportPath(e.p1, "insights")

	if w := e.do("POST", ok, e.tok1, spec); w.Code != http.StatusOK {
		t.Fatalf("valid token: %d %s", w.Code, w.Body)
	}
	// The scheme is case-insensitive.
	if w := e.do("POST", ok, "", spec, "Authorization", "bearer "+e.tok1); w.Code != http.StatusOK {
		t.Fatalf("lower-case scheme: %d %s", w.Code, w.Body)
	}

	for _, c := range []struct {
		name, auth string
		challenge  string
	}{
		{"no header", "", `Bearer realm="veil"`},
		{"basic auth", "Basic dXNlcjpwYXNz", `Bearer realm="veil"`},
		{"empty bearer", "Bearer ", `Bearer realm="veil"`},
		{"bearer without space", "Bearer" + e.tok1, `Bearer realm="veil"`},
		{"unknown token", "Bearer vt_" + strings.Repeat("A", 43), `Bearer realm="veil", error="invalid_token"`},
		{"revoked token", "Bearer " + e.revoked, `Bearer realm="veil", error="invalid_token"`},
		{"project secret", "Bearer vs_" + strings.Repeat("A", 43), `Bearer realm="veil", error="invalid_token"`},
	} {
		var hdr []string
		if c.auth != "" {
			hdr = []string{"Authorization", c.auth}
		}
		w := e.do("POST", ok, "", spec, hdr...)
		wantProblem(t, w, problemUnauthorized)
		if got := w.Header().Get("WWW-Authenticate"); got != c.challenge {
			t.Errorf("%s: WWW-Authenticate %q, want %q", c.name, got, c.challenge)
		}
		// Nothing about the token is revealed past authentication.
		if w := e.do("GET", fmt.Sprintf("/api/v1/projects/%d/cohorts", e.p1), "", "", hdr...); w.Code != http.StatusUnauthorized {
			t.Errorf("%s: cohorts answered %d", c.name, w.Code)
		}
	}

	// Another project's token, whether or not that project exists.
	for _, path := range []string{e.reportPath(e.p2, "insights"), e.reportPath(999, "insights"), fmt.Sprintf("/api/v1/projects/%d/cohorts", e.p2)} {
		method := "POST"
		if strings.HasSuffix(path, "cohorts") {
			method = "GET"
		}
		p := wantProblem(t, e.do(method, path, e.tok1, spec), problemForbidden)
		if !strings.Contains(p.Detail, fmt.Sprintf("project %d", e.p1)) {
			t.Errorf("403 detail %q does not say which project the token is for", p.Detail)
		}
	}
	// Malformed project ids are not found, after authentication.
	for _, id := range []string{"abc", "0", "-1", "01", "1e3", "99999999999999999999"} {
		wantProblem(t, e.do("POST", "/api/v1/projects/"+id+"/reports/insights", e.tok1, spec), problemNotFound)
		wantProblem(t, e.do("POST", "/api/v1/projects/"+id+"/reports/insights", "", spec), problemUnauthorized)
	}

	// A token without the scope: 403 with an insufficient_scope challenge.
	e2 := newEnv(t, nil)
	h, err := New(Config{Reports: e2.reports, Meta: scopedMeta{DB: e2.db, scope: "export"}})
	if err != nil {
		t.Fatal(err)
	}
	e2.h = h
	w := e2.do("POST", e2.reportPath(e2.p1, "insights"), e2.tok1, spec)
	p := wantProblem(t, w, problemForbidden)
	if got := w.Header().Get("WWW-Authenticate"); got != `Bearer realm="veil", error="insufficient_scope", scope="read"` {
		t.Errorf("insufficient scope challenge %q", got)
	}
	if !strings.Contains(p.Detail, `"export"`) || !strings.Contains(p.Detail, `"read"`) {
		t.Errorf("scope detail %q", p.Detail)
	}
	// A project gone from the database.
	if e2.h, err = New(Config{Reports: e2.reports, Meta: scopedMeta{DB: e2.db, projectMissing: true}}); err != nil {
		t.Fatal(err)
	}
	wantProblem(t, e2.do("POST", e2.reportPath(e2.p1, "insights"), e2.tok1, spec), problemNotFound)

	// The OpenAPI document needs no token.
	if w := e.do("GET", "/api/v1/openapi.json", "", ""); w.Code != http.StatusOK || !json.Valid(w.Body.Bytes()) {
		t.Errorf("openapi.json without a token: %d", w.Code)
	}
}

func TestReport(t *testing.T) {
	e := newEnv(t, nil)
	var got struct {
		project int64
		kind    string
		spec    string
	}
	e.reports.run = func(ctx context.Context, project int64, kind string, spec []byte) (any, error) {
		got.project, got.kind, got.spec = project, kind, string(spec)
		if _, ok := ctx.Deadline(); !ok {
			t.Error("report context has no deadline")
		}
		return json.RawMessage(`{"series":[1,2,3]}`), nil
	}
	for _, kind := range ReportKinds() {
		spec := `{ "events": [{"event": "signup"}], "kind": "` + kind + `" }`
		w := e.do("POST", e.reportPath(e.p1, kind), e.tok1, spec)
		if w.Code != http.StatusOK || w.Body.String() != `{"series":[1,2,3]}`+"\n" {
			t.Fatalf("%s: %d %q", kind, w.Code, w.Body)
		}
		if ct := w.Header().Get("Content-Type"); ct != "application/json" {
			t.Errorf("Content-Type %q", ct)
		}
		if w.Header().Get("Cache-Control") != "no-store" || w.Header().Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("headers %v", w.Header())
		}
		if got.project != e.p1 || got.kind != kind || got.spec != spec {
			t.Errorf("Run got %+v, want project %d, %s, the body as sent", got, e.p1, kind)
		}
	}
	// charset=utf-8 is fine.
	if w := e.do("POST", e.reportPath(e.p1, "funnels"), e.tok1, `{}`, "Content-Type", "application/json; charset=UTF-8"); w.Code != http.StatusOK {
		t.Errorf("charset=UTF-8: %d %s", w.Code, w.Body)
	}
}

func TestRequestProblems(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.MaxBodyBytes = 100 })
	called := false
	e.reports.run = func(context.Context, int64, string, []byte) (any, error) {
		called = true
		return nil, nil
	}
	path := e.reportPath(e.p1, "insights")
	for _, c := range []struct {
		name   string
		method string
		path   string
		body   string
		header []string
		kind   problemKind
		detail string
	}{
		{"unknown kind", "POST", e.reportPath(e.p1, "segmentation"), `{}`, nil, problemNotFound, `no report kind "segmentation"`},
		{"no content type", "POST", path, `{}`, []string{"Content-Type", ""}, problemUnsupportedMedia, "Content-Type: application/json"},
		{"text/plain", "POST", path, `{}`, []string{"Content-Type", "text/plain"}, problemUnsupportedMedia, "Content-Type: application/json"},
		{"form", "POST", path, `a=b`, []string{"Content-Type", "application/x-www-form-urlencoded"}, problemUnsupportedMedia, "application/json"},
		{"latin-1", "POST", path, `{}`, []string{"Content-Type", "application/json; charset=latin1"}, problemUnsupportedMedia, `charset "latin1"`},
		{"gzip", "POST", path, `{}`, []string{"Content-Encoding", "gzip"}, problemUnsupportedMedia, `"gzip"`},
		{"too large", "POST", path, `{"a":"` + strings.Repeat("x", 100) + `"}`, nil, problemBodyTooLarge, "larger than 100 bytes"},
		{"not JSON", "POST", path, `{"a":`, nil, problemInvalidRequest, "not valid JSON"},
		{"empty", "POST", path, ` `, nil, problemInvalidRequest, "empty"},
		{"array", "POST", path, `[1]`, nil, problemInvalidRequest, "must be a JSON object"},
		{"two values", "POST", path, `{} {}`, nil, problemInvalidRequest, "not valid JSON"},
		{"GET a report", "GET", path, ``, nil, problemMethodNotAllowed, "use POST"},
		{"PATCH cohorts", "PATCH", fmt.Sprintf("/api/v1/projects/%d/cohorts", e.p1), `{}`, nil, problemMethodNotAllowed, "use GET or POST"},
		{"unknown path", "GET", "/api/v1/projects", ``, nil, problemNotFound, "no API route"},
		{"trailing slash", "GET", fmt.Sprintf("/api/v1/projects/%d/cohorts/", e.p1), ``, nil, problemNotFound, "no API route"},
	} {
		w := e.do(c.method, c.path, e.tok1, c.body, c.header...)
		p := wantProblem(t, w, c.kind)
		if !strings.Contains(p.Detail, c.detail) {
			t.Errorf("%s: detail %q, want it to say %q", c.name, p.Detail, c.detail)
		}
		if c.kind == problemInvalidRequest && (len(p.Errors) != 1 || p.Errors[0].Field != "") {
			t.Errorf("%s: errors %+v, want one about the whole body", c.name, p.Errors)
		}
		if c.kind == problemMethodNotAllowed && w.Header().Get("Allow") == "" {
			t.Errorf("%s: no Allow header", c.name)
		}
	}
	if called {
		t.Error("a refused request reached Reports.Run")
	}
}

func TestReportErrors(t *testing.T) {
	e := newEnv(t, nil)
	path := e.reportPath(e.p1, "funnels")
	run := func(err error) *httptest.ResponseRecorder {
		t.Helper()
		e.reports.run = func(context.Context, int64, string, []byte) (any, error) { return nil, err }
		return e.do("POST", path, e.tok1, `{"steps":[{}]}`)
	}

	p := wantProblem(t, run(&specError{"/steps/1/event", "required"}), problemInvalidSpec)
	if p.Detail != "/steps/1/event: required" || len(p.Errors) != 1 || p.Errors[0] != (fieldProblem{"/steps/1/event", "required"}) {
		t.Errorf("one spec error: %+v", p)
	}
	p = wantProblem(t, run(fmt.Errorf("funnels: %w", errors.Join(
		&specError{"/steps/0/event", "required"},
		&specError{"steps[2].filters[0].op", `unknown operator "like"`},
		errors.New("not a field error"),
	))), problemInvalidSpec)
	want := []fieldProblem{{"/steps/0/event", "required"}, {"/steps/2/filters/0/op", `spec steps[2].filters[0].op: unknown operator "like"`}}
	if fmt.Sprint(p.Errors) != fmt.Sprint(want) || p.Detail != "/steps/0/event: required (and 1 more)" {
		t.Errorf("joined spec errors: %+v, want errors %+v", p, want)
	}
	p = wantProblem(t, run(&specError{"", "malformed JSON at byte 3"}), problemInvalidSpec)
	if len(p.Errors) != 1 || p.Errors[0].Field != "" {
		t.Errorf("whole-spec error: %+v", p)
	}

	p = wantProblem(t, run(fmt.Errorf("insights: %w", tooLarge{})), problemResultTooLarge)
	if !strings.Contains(p.Detail, "2000000 cells") {
		t.Errorf("too large detail %q", p.Detail)
	}

	// Anything else is a 500 that tells the client nothing, and logs no
	// quoted value.
	p = wantProblem(t, run(fmt.Errorf(`segment 7: value "alice@example.com" is corrupt`)), problemInternal)
	if strings.Contains(p.Detail, "segment") || strings.Contains(p.Detail, "alice") {
		t.Errorf("500 detail reveals the error: %q", p.Detail)
	}
	logs := e.logs.String()
	if strings.Contains(logs, "alice@example.com") || !strings.Contains(logs, "segment 7") || !strings.Contains(logs, "report failed") {
		t.Errorf("log of a failed report:\n%s", logs)
	}
	// An internal cancellation while the client is still there is a 500
	// too, not an empty answer.
	wantProblem(t, run(context.Canceled), problemInternal)

	// A panicking engine costs one 500.
	e.reports.run = func(context.Context, int64, string, []byte) (any, error) { panic("boom") }
	wantProblem(t, e.do("POST", path, e.tok1, `{}`), problemInternal)
	if !strings.Contains(e.logs.String(), "panic") {
		t.Errorf("panic not logged:\n%s", e.logs)
	}
	// A result that does not encode.
	e.reports.run = func(context.Context, int64, string, []byte) (any, error) { return map[string]any{"x": func() {}}, nil }
	wantProblem(t, e.do("POST", path, e.tok1, `{}`), problemInternal)
}

func TestQueryTimeout(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.QueryTimeout = 50 * time.Millisecond })
	for name, run := range map[string]func(ctx context.Context, project int64, kind string, spec []byte) (any, error){
		"returns ctx.Err()": func(ctx context.Context, _ int64, _ string, _ []byte) (any, error) {
			<-ctx.Done()
			return nil, ctx.Err()
		},
		"returns its own error": func(ctx context.Context, _ int64, _ string, _ []byte) (any, error) {
			<-ctx.Done()
			return nil, errors.New("scan stopped")
		},
	} {
		e.reports.run = run
		start := time.Now()
		p := wantProblem(t, e.do("POST", e.reportPath(e.p1, "retention"), e.tok1, `{}`), problemQueryTimeout)
		if p.Detail != "query timed out after 0.05s: narrow the range, filters or breakdowns" {
			t.Errorf("%s: detail %q", name, p.Detail)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("%s: took %v", name, d)
		}
	}
	// Cohort validation runs under the same timeout.
	e.reports.validate = func(ctx context.Context, _ int64, _ []byte) error {
		<-ctx.Done()
		return ctx.Err()
	}
	wantProblem(t, e.do("POST", fmt.Sprintf("/api/v1/projects/%d/cohorts", e.p1), e.tok1, `{"name":"x","definition":{}}`), problemQueryTimeout)
}

// TestClientGone cancels a request mid-query over a real connection: the
// query's context must end, and nothing is answered.
func TestClientGone(t *testing.T) {
	e := newEnv(t, nil)
	started := make(chan struct{})
	ended := make(chan error, 1)
	e.reports.run = func(ctx context.Context, _ int64, _ string, _ []byte) (any, error) {
		close(started)
		select {
		case <-ctx.Done():
			ended <- ctx.Err()
			return nil, ctx.Err()
		case <-time.After(10 * time.Second):
			ended <- nil
			return "too late", nil
		}
	}
	srv := httptest.NewServer(e.h)
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, "POST", srv.URL+e.reportPath(e.p1, "flows"), strings.NewReader(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+e.tok1)
	done := make(chan error, 1)
	go func() {
		resp, err := srv.Client().Do(req)
		if err == nil {
			resp.Body.Close()
		}
		done <- err
	}()
	<-started
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("client: %v", err)
	}
	if err := <-ended; !errors.Is(err, context.Canceled) {
		t.Fatalf("query context ended with %v, want context.Canceled", err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(e.logs.String(), "client went away") {
		if time.Now().After(deadline) {
			t.Fatalf("no log of the client going away:\n%s", e.logs)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestResultSize(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.MaxResultBytes = 1000 })
	var size int
	e.reports.run = func(context.Context, int64, string, []byte) (any, error) {
		return map[string]string{"s": strings.Repeat("x", size)}, nil
	}
	size = 900
	if w := e.do("POST", e.reportPath(e.p1, "insights"), e.tok1, `{}`); w.Code != http.StatusOK || w.Body.Len() != 900+len(`{"s":""}`)+1 {
		t.Fatalf("900-byte result: %d, %d bytes", w.Code, w.Body.Len())
	}
	size = 1000
	p := wantProblem(t, e.do("POST", e.reportPath(e.p1, "insights"), e.tok1, `{}`), problemResultTooLarge)
	if !strings.Contains(p.Detail, "larger than 1000 bytes") {
		t.Errorf("detail %q", p.Detail)
	}
}

func TestJSONPointer(t *testing.T) {
	for in, want := range map[string]string{
		"":                       "",
		"/steps/0":               "/steps/0",
		"name":                   "/name",
		"steps[2].filters[0].op": "/steps/2/filters/0/op",
		"a/b.c~d":                "/a~1b/c~0d",
	} {
		if got := jsonPointer(in); got != want {
			t.Errorf("jsonPointer(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestRedact(t *testing.T) {
	for in, want := range map[string]string{
		`value "alice@example.com" is bad`: `value "…" is bad`,
		`a 'b' and "c \" d" e`:             `a "…" and "…" e`,
		`no quotes: 42`:                    `no quotes: 42`,
	} {
		if got := redact(in); got != want {
			t.Errorf("redact(%q) = %q, want %q", in, got, want)
		}
	}
}
