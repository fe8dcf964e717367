package collector

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/veil-analytics/veil/internal/event"
	"github.com/veil-analytics/veil/internal/privacy"
)

const (
	testToken  = "0123456789abcdef0123456789abcdef"
	testSecret = "vs_secret"
)

// now is the fixed clock of these tests.
var now = time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC)

type fakeProjects struct{}

func (fakeProjects) ProjectIDByToken(_ context.Context, t string) (int64, error) {
	switch t {
	case testToken:
		return 1, nil
	case "other-token":
		return 2, nil
	}
	return 0, ErrUnknownProject
}

func (fakeProjects) ProjectIDBySecret(_ context.Context, s string) (int64, error) {
	if s == testSecret {
		return 1, nil
	}
	return 0, ErrUnknownProject
}

// memStore is an Appender that keeps batches in memory and dedups like the store.
type memStore struct {
	mu      sync.Mutex
	batches []event.Batch
	seen    map[string]bool
	fail    error
}

func (m *memStore) Append(_ context.Context, b *event.Batch) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail != nil {
		return 0, m.fail
	}
	if m.seen == nil {
		m.seen = map[string]bool{}
	}
	dups := 0
	var keep []event.Event
	for _, e := range b.Events {
		k := fmt.Sprint(e.Project, e.Name, e.DistinctID, e.Time/86400000, e.InsertID) // the store's key: UTC day
		if e.InsertID != "" && m.seen[k] {
			dups++
			continue
		}
		m.seen[k] = true
		keep = append(keep, e)
	}
	b.Events = keep
	m.batches = append(m.batches, *b)
	return dups, nil
}

func (m *memStore) events() []event.Event {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []event.Event
	for _, b := range m.batches {
		out = append(out, b.Events...)
	}
	return out
}

func (m *memStore) profiles() []event.ProfileUpdate {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []event.ProfileUpdate
	for _, b := range m.batches {
		out = append(out, b.Profiles...)
	}
	return out
}

func (m *memStore) links() []event.IdentityLink {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []event.IdentityLink
	for _, b := range m.batches {
		out = append(out, b.Links...)
	}
	return out
}

func newTestCollector(t *testing.T, cfg Config) (*Collector, *memStore) {
	t.Helper()
	cfg.Now = func() time.Time { return now }
	if cfg.RedirectHosts == nil {
		cfg.RedirectHosts = []string{"example.com"}
	}
	st := &memStore{}
	return New(cfg, fakeProjects{}, privacy.Passthrough{}, st), st
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func gz(s string) string {
	var b bytes.Buffer
	w := gzip.NewWriter(&b)
	w.Write([]byte(s))
	w.Close()
	return b.String()
}

func ev(name string, props string) string {
	return fmt.Sprintf(`{"event":%q,"properties":{%s}}`, name, props)
}

var (
	nowSec  = fmt.Sprint(now.Unix())
	tok     = `"token":"` + testToken + `"`
	okEvent = ev("signup", tok+`,"distinct_id":"u1","time":`+nowSec+`,"$insert_id":"abc123"`)
)

type handlerTest struct {
	name       string
	method     string
	target     string
	body       string
	header     map[string]string
	basicUser  string
	wantCode   int
	wantBody   string // exact, unless it starts with "~" (substring)
	wantStored int    // events + profile updates stored
}

func runHandlerTests(t *testing.T, tests []handlerTest) {
	t.Helper()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, st := newTestCollector(t, Config{})
			method := tt.method
			if method == "" {
				method = http.MethodPost
			}
			r := httptest.NewRequest(method, tt.target, strings.NewReader(tt.body))
			for k, v := range tt.header {
				r.Header.Set(k, v)
			}
			if tt.basicUser != "" {
				r.SetBasicAuth(tt.basicUser, "")
			}
			w := httptest.NewRecorder()
			c.ServeHTTP(w, r)
			body := w.Body.String()
			if w.Code != tt.wantCode {
				t.Errorf("status = %d, want %d (body %s)", w.Code, tt.wantCode, body)
			}
			if want, ok := strings.CutPrefix(tt.wantBody, "~"); ok {
				if !strings.Contains(body, want) {
					t.Errorf("body = %s, want it to contain %s", body, want)
				}
			} else if body != tt.wantBody {
				t.Errorf("body = %s, want %s", body, tt.wantBody)
			}
			if got := len(st.events()) + len(st.profiles()); got != tt.wantStored {
				t.Errorf("stored %d records, want %d", got, tt.wantStored)
			}
		})
	}
}

func TestTrackEncodings(t *testing.T) {
	form := "application/x-www-form-urlencoded"
	runHandlerTests(t, []handlerTest{
		{name: "form base64", target: "/track/?ip=1&_=123", body: "data=" + url.QueryEscape(b64(okEvent)),
			header: map[string]string{"Content-Type": form}, wantCode: 200, wantBody: "1", wantStored: 1},
		{name: "form json", target: "/track", body: "data=" + url.QueryEscape(okEvent),
			header: map[string]string{"Content-Type": form}, wantCode: 200, wantBody: "1", wantStored: 1},
		{name: "beacon text/plain", target: "/track/?verbose=1", body: "data=" + url.QueryEscape(b64("["+okEvent+"]")),
			header: map[string]string{"Content-Type": "text/plain;charset=UTF-8"}, wantCode: 200, wantBody: `{"status":1,"error":null}`, wantStored: 1},
		{name: "GET query base64", method: "GET", target: "/track?ip=0&verbose=0&data=" + url.QueryEscape(b64(okEvent)),
			wantCode: 200, wantBody: "1", wantStored: 1},
		{name: "raw json array", target: "/track?verbose=1", body: "[" + okEvent + "," + strings.Replace(okEvent, "abc123", "abc124", 1) + "]",
			header: map[string]string{"Content-Type": "application/json"}, wantCode: 200, wantBody: `{"status":1,"error":null}`, wantStored: 2},
		{name: "gzip json", target: "/track", body: gz("[" + okEvent + "]"),
			header: map[string]string{"Content-Encoding": "gzip"}, wantCode: 200, wantBody: "1", wantStored: 1},
		{name: "path prefix", target: "/mp/track", body: okEvent, wantCode: 200, wantBody: "1", wantStored: 1},
		{name: "img pixel", method: "GET", target: "/track?img=1&data=" + url.QueryEscape(b64(okEvent)), wantCode: 200, wantBody: string(gif), wantStored: 1},
		{name: "jsonp browser", target: "/track/?callback=mixpanel._jsc%5B42%5D", body: okEvent, wantCode: 200, wantBody: "mixpanel._jsc[42](1);", wantStored: 1},
		{name: "jsonp noop verbose", target: "/track/?verbose=1&callback=(function(){})", body: okEvent, wantCode: 200, wantBody: `(function(){})({"status":1,"error":null});`, wantStored: 1},
		{name: "jsonp injection refused", target: "/track/?callback=alert(1)//", body: okEvent, wantCode: 400, wantBody: "~callback must be", wantStored: 0},
		{name: "redirect allowed", method: "GET", target: "/track?redirect=" + url.QueryEscape("https://example.com/x") + "&data=" + url.QueryEscape(b64(okEvent)), wantCode: 302, wantBody: "~https://example.com/x", wantStored: 1},
		{name: "redirect refused", method: "GET", target: "/track?redirect=" + url.QueryEscape("https://evil.test/") + "&data=" + url.QueryEscape(b64(okEvent)), wantCode: 400, wantBody: "~redirect host is not allowed", wantStored: 0},
	})
}

func TestTrackErrors(t *testing.T) {
	old := fmt.Sprint(now.Add(-6 * 24 * time.Hour).Unix())
	props256 := tok
	for i := range 256 {
		props256 += fmt.Sprintf(`,"p%d":%d`, i, i)
	}
	runHandlerTests(t, []handlerTest{
		{name: "bad base64", target: "/track", body: "data=%%%%", wantCode: 400, wantBody: `~"status":0`},
		{name: "bad base64 chars", target: "/track?verbose=1", body: "data=ab*cd", wantCode: 400, wantBody: "~base64"},
		{name: "bad json", target: "/track?verbose=1", body: `{"event":`, wantCode: 400, wantBody: "~JSON"},
		{name: "no data", target: "/track", wantCode: 400, wantBody: "~no data"},
		{name: "empty array", target: "/track", body: "[]", wantCode: 400, wantBody: "~no records"},
		{name: "missing token", target: "/track?verbose=1", body: ev("x", `"distinct_id":"u"`), wantCode: 401, wantBody: "~properties.token is required"},
		{name: "unknown token", target: "/track?verbose=1", body: ev("x", `"token":"nope"`), wantCode: 401, wantBody: "~not the token of any project"},
		{name: "too old", target: "/track?verbose=1", body: ev("x", tok+`,"time":`+old), wantCode: 400, wantBody: "~send historical events to /import"},
		{name: "bad time", target: "/track?verbose=1", body: ev("x", tok+`,"time":"soon"`), wantCode: 400, wantBody: "~properties.time"},
		{name: "too many properties", target: "/track?verbose=1", body: ev("x", props256), wantCode: 400, wantBody: "~256 properties; the limit is 255"},
		{name: "not an object", target: "/track?verbose=1", body: `[1]`, wantCode: 400, wantBody: "~record 0 is a JSON number"},
		{name: "no event name", target: "/track?verbose=1", body: `{"properties":{` + tok + `}}`, wantCode: 400, wantBody: "~event must be a non-empty string"},
		{name: "bad insert id", target: "/track?verbose=1", body: ev("x", tok+`,"$insert_id":"has space"`), wantCode: 400, wantBody: "~$insert_id"},
		{name: "too deep", target: "/track?verbose=1", body: ev("x", tok+`,"a":{"b":{"c":{"d":{"e":1}}}}`), wantCode: 400, wantBody: "~nested 4 levels"},
		{name: "merge on track", target: "/track?verbose=1", body: ev("$merge", tok+`,"$distinct_ids":["a","b"]`), wantCode: 400, wantBody: "~only accepted on /import"},
		{name: "wrong method", method: "PUT", target: "/track", body: okEvent, wantCode: 405, wantBody: "~method PUT"},
		{name: "bad content encoding", target: "/track", body: okEvent, header: map[string]string{"Content-Encoding": "br"}, wantCode: 400, wantBody: "~br"},
		{name: "ignored event", target: "/track", body: ev("x", tok+`,"$ignore":true`), wantCode: 200, wantBody: "1"},
		{name: "partial batch keeps good records", target: "/track?verbose=1", body: "[" + okEvent + `,` + ev("x", `"token":"nope"`) + "]", wantCode: 200,
			wantBody: `{"status":1,"error":null,"num_records_imported":1,"num_records_dropped":1,"failed_records":[{"index":1,"insert_id":"","field":"properties.token","message":"properties.token is not the token of any project"}]}`, wantStored: 1},
	})
}

func TestTooManyRecords(t *testing.T) {
	c, st := newTestCollector(t, Config{MaxBatch: 3})
	body := "[" + strings.Repeat(okEvent+",", 3) + okEvent + "]"
	w := httptest.NewRecorder()
	c.ServeHTTP(w, httptest.NewRequest("POST", "/track?verbose=1", strings.NewReader(body)))
	if w.Code != 413 || !strings.Contains(w.Body.String(), "more than 3 records") {
		t.Fatalf("got %d %s", w.Code, w.Body)
	}
	if len(st.events()) != 0 {
		t.Fatal("a refused request wrote events")
	}
}

func TestGzipBomb(t *testing.T) {
	c, st := newTestCollector(t, Config{MaxBodyBytes: 1 << 20})
	var b bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&b, gzip.BestCompression)
	zeros := make([]byte, 1<<20)
	for range 64 { // 64 MiB of zeros, about 64 KiB compressed
		zw.Write(zeros)
	}
	zw.Close()
	r := httptest.NewRequest("POST", "/track", &b)
	r.Header.Set("Content-Encoding", "gzip")
	w := httptest.NewRecorder()
	c.ServeHTTP(w, r)
	if w.Code != 413 || !strings.Contains(w.Body.String(), "exceeds max limit of 1048576 bytes") {
		t.Fatalf("got %d %s", w.Code, w.Body)
	}
	if len(st.events()) != 0 {
		t.Fatal("stored events")
	}
}

func TestTrackStoredShape(t *testing.T) {
	c, st := newTestCollector(t, Config{})
	body := `[` +
		ev("page", tok+`,"time":`+fmt.Sprint(now.Unix()-1)+`.909,"$insert_id":"a1","distinct_id":"$device:d1","$device_id":"d1","$browser":"Chrome","nested":{"k":[1,"x"]}`) + `,` +
		ev("ms", tok+`,"time":`+fmt.Sprint(now.UnixMilli()-1500)+`,"distinct_id":42`) + `,` +
		ev("future", tok+`,"time":`+fmt.Sprint(now.Unix()+3600)+`,"distinct_id":"u"`) + `,` +
		ev("notime", tok+`,"$user_id":"alice","$device_id":"d1"`) + `,` +
		ev("long", tok+`,"s":"`+strings.Repeat("é", 300)+`"`) +
		`]`
	c.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("POST", "/track", strings.NewReader(body)))
	evs := st.events()
	if len(evs) != 5 {
		t.Fatalf("stored %d events, want 5", len(evs))
	}
	// The browser's float seconds become ms; the test clock is "now".
	if evs[0].Time != now.UnixMilli()-91 { // float seconds with ms precision
		t.Errorf("float seconds time = %d", evs[0].Time)
	}
	if evs[0].DistinctID != "$device:d1" || evs[0].InsertID != "a1" || evs[0].Project != 1 {
		t.Errorf("event 0 = %+v", evs[0])
	}
	for _, f := range evs[0].Props {
		if f.Key == "token" || f.Key == "time" || f.Key == "distinct_id" || f.Key == "$insert_id" {
			t.Errorf("reserved property %s kept in props", f.Key)
		}
	}
	if v, _ := event.Get(evs[0].Props, "nested"); string(v.AppendJSON(nil)) != `{"k":[1,"x"]}` {
		t.Errorf("nested = %s", v.AppendJSON(nil))
	}
	if evs[1].Time != now.UnixMilli()-1500 || evs[1].DistinctID != "42" {
		t.Errorf("ms time/numeric id: %+v", evs[1])
	}
	if evs[2].Time != now.UnixMilli() {
		t.Errorf("future time not clamped: %d", evs[2].Time)
	}
	if evs[3].Time != now.UnixMilli() || evs[3].DistinctID != "alice" {
		t.Errorf("simplified id merge / receive time: %+v", evs[3])
	}
	if v, _ := event.Get(evs[4].Props, "s"); len([]rune(v.Str)) != 255 {
		t.Errorf("string not truncated to 255 characters: %d", len([]rune(v.Str)))
	}
	links := st.links()
	if len(links) != 1 || links[0].From != "$device:d1" || links[0].To != "alice" || links[0].Source != "$device_id" {
		t.Errorf("links = %+v", links)
	}
}

func TestIdentityEvents(t *testing.T) {
	c, st := newTestCollector(t, Config{})
	body := `[` +
		ev("$identify", tok+`,"distinct_id":"user-42","$anon_distinct_id":"$device:d9","$user_id":"user-42"`) + `,` +
		ev("$create_alias", tok+`,"distinct_id":"user-42","alias":"alias-1"`) + `,` +
		ev("$identify", tok+`,"$identified_id":"u7","$anon_id":"anon-7"`) +
		`]`
	c.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("POST", "/track", strings.NewReader(body)))
	merge := ev("$merge", `"$distinct_ids":["u7","u8"]`)
	r := httptest.NewRequest("POST", "/import", strings.NewReader("data="+url.QueryEscape(merge)))
	r.SetBasicAuth(testSecret, "")
	w := httptest.NewRecorder()
	c.ServeHTTP(w, r)
	if w.Body.String() != "1" {
		t.Fatalf("legacy /import answer = %q, want 1", w.Body)
	}
	var got []string
	for _, l := range st.links() {
		got = append(got, l.Source+":"+l.From+"->"+l.To)
	}
	want := []string{"$identify:$device:d9->user-42", "$create_alias:alias-1->user-42", "$identify:anon-7->u7", "$merge:u8->u7"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("links = %v, want %v", got, want)
	}
	if n := len(st.events()); n != 4 {
		t.Errorf("identity events stored = %d, want 4", n)
	}
}

func TestImport(t *testing.T) {
	old := fmt.Sprint(now.Add(-400 * 24 * time.Hour).Unix())
	good := ev("old", `"time":`+old+`,"distinct_id":"u1","$insert_id":"i-1"`)
	noInsert := ev("x", `"time":`+old+`,"distinct_id":"u1"`)
	tooEarly := ev("x", `"time":1000,"distinct_id":"u1","$insert_id":"i-2"`)
	placeholder := ev("x", `"time":`+old+`,"distinct_id":"undefined","$insert_id":"i-3"`)
	runHandlerTests(t, []handlerTest{
		{name: "strict ok", target: "/import?strict=1", body: "[" + good + "]", basicUser: testSecret, wantCode: 200,
			wantBody: `{"code":200,"num_records_imported":1,"status":"OK"}`, wantStored: 1},
		{name: "ndjson gzip", target: "/import?strict=1", body: gz(good + "\n" + strings.Replace(good, "i-1", "i-9", 1) + "\n"), basicUser: testSecret,
			header: map[string]string{"Content-Type": "application/x-ndjson", "Content-Encoding": "gzip"}, wantCode: 200,
			wantBody: `{"code":200,"num_records_imported":2,"status":"OK"}`, wantStored: 2},
		{name: "strict failed records", target: "/import?strict=1&verbose=1", body: "[" + good + "," + noInsert + "," + tooEarly + "," + placeholder + "]", basicUser: testSecret, wantCode: 400,
			wantBody: `{"code":400,"error":"some data points in the request failed validation","failed_records":[` +
				`{"index":1,"insert_id":"","field":"properties.$insert_id","message":"properties.$insert_id is required"},` +
				`{"index":2,"insert_id":"i-2","field":"properties.time","message":"properties.time is before 1971-01-01"},` +
				`{"index":3,"insert_id":"i-3","field":"properties.distinct_id","message":"properties.distinct_id is a placeholder value that would merge unrelated users"}],` +
				`"num_records_imported":1,"status":"Bad Request"}`, wantStored: 1},
		{name: "non-strict keeps lenient records", target: "/import?strict=0&verbose=1", body: "[" + good + "," + noInsert + "]", basicUser: testSecret, wantCode: 200,
			wantBody: `{"code":200,"num_records_imported":2,"status":"OK"}`, wantStored: 2},
		{name: "no auth", target: "/import?strict=1", body: "[" + good + "]", wantCode: 401, wantBody: `~{"code":401,"error":"Invalid credentials`},
		{name: "token is not enough", target: "/import?strict=1", body: "[" + good + "]", basicUser: testToken, wantCode: 401, wantBody: "~public project token"},
		{name: "wrong secret", target: "/import?strict=1", body: "[" + good + "]", basicUser: "nope", wantCode: 401, wantBody: "~matches no project"},
		{name: "legacy form answer", target: "/import", body: "data=" + url.QueryEscape(b64(good)), basicUser: testSecret, wantCode: 200, wantBody: "1", wantStored: 1},
		{name: "malformed ndjson", target: "/import?strict=1", body: good + "\n{oops\n", basicUser: testSecret, wantCode: 400, wantBody: `~{"code":400,"error":"invalid JSON`},
	})
}

func TestEngageAndGroups(t *testing.T) {
	pt := `"$token":"` + testToken + `"`
	runHandlerTests(t, []handlerTest{
		{name: "all ops", target: "/engage?verbose=1", wantCode: 200, wantBody: `{"status":1,"error":null}`, wantStored: 8, body: `[` +
			`{` + pt + `,"$distinct_id":"u1","$set":{"plan":"pro"},"$ip":"0"},` +
			`{` + pt + `,"$distinct_id":"u1","$set_once":{"first":"x"}},` +
			`{` + pt + `,"$distinct_id":"u1","$add":{"n":1}},` +
			`{` + pt + `,"$distinct_id":"u1","$append":{"$transactions":{"$amount":12.5}}},` +
			`{` + pt + `,"$distinct_id":"u1","$union":{"tags":["a"]}},` +
			`{` + pt + `,"$distinct_id":"u1","$remove":{"tags":"a"}},` +
			`{` + pt + `,"$distinct_id":"u1","$unset":["plan"]},` +
			`{` + pt + `,"$distinct_id":"u1","$delete":"null","$ignore_alias":"true"}]`},
		{name: "add needs numbers", target: "/engage?verbose=1", body: `{` + pt + `,"$distinct_id":"u1","$add":{"n":"one"}}`, wantCode: 400, wantBody: "~$add.n must be a number"},
		{name: "unknown op", target: "/engage?verbose=1", body: `{` + pt + `,"$distinct_id":"u1","$bump":{"n":1}}`, wantCode: 400, wantBody: "~$bump is not a known operation"},
		{name: "no op", target: "/engage?verbose=1", body: `{` + pt + `,"$distinct_id":"u1"}`, wantCode: 400, wantBody: "~has no operation"},
		{name: "engage token", target: "/engage?verbose=1", body: `{"$token":"x","$distinct_id":"u1","$set":{"a":1}}`, wantCode: 401, wantBody: "~$token is not the token"},
		{name: "group set", target: "/groups", body: `[{` + pt + `,"$group_key":"company","$group_id":"acme","$set":{"size":10}}]`, wantCode: 200, wantBody: "1", wantStored: 1},
		{name: "group append refused", target: "/groups?verbose=1", body: `{` + pt + `,"$group_key":"company","$group_id":"acme","$append":{"x":1}}`, wantCode: 400, wantBody: "~not supported on group profiles"},
		{name: "group needs key", target: "/groups?verbose=1", body: `{` + pt + `,"$group_id":"acme","$set":{"x":1}}`, wantCode: 400, wantBody: "~$group_key"},
	})
}

func TestCORS(t *testing.T) {
	c, _ := newTestCollector(t, Config{})
	r := httptest.NewRequest("OPTIONS", "/flags/", nil)
	r.URL.Path = "/track/"
	r.Header.Set("Origin", "https://app.example.com")
	r.Header.Set("Access-Control-Request-Headers", "authorization,traceparent")
	w := httptest.NewRecorder()
	c.ServeHTTP(w, r)
	h := w.Header()
	if w.Code != 200 || h.Get("Access-Control-Allow-Origin") != "https://app.example.com" ||
		h.Get("Access-Control-Allow-Credentials") != "true" || h.Get("Access-Control-Allow-Headers") != "authorization,traceparent" {
		t.Fatalf("preflight: %d %v", w.Code, h)
	}
	r = httptest.NewRequest("POST", "/track/", strings.NewReader("garbage"))
	r.Header.Set("Origin", "https://app.example.com")
	w = httptest.NewRecorder()
	c.ServeHTTP(w, r)
	if w.Code != 400 || w.Header().Get("Access-Control-Allow-Origin") != "https://app.example.com" {
		t.Fatalf("CORS headers missing on an error: %d %v", w.Code, w.Header())
	}
}

func TestRateLimit(t *testing.T) {
	c, st := newTestCollector(t, Config{RateLimit: 1, RateBurst: 3, MaxBatch: 3})
	send := func() *httptest.ResponseRecorder {
		w := httptest.NewRecorder()
		c.ServeHTTP(w, httptest.NewRequest("POST", "/track?verbose=1", strings.NewReader("["+okEvent+","+okEvent+"]")))
		return w
	}
	if w := send(); w.Code != 200 {
		t.Fatalf("first: %d %s", w.Code, w.Body)
	}
	w := send()
	if w.Code != 429 || w.Header().Get("Retry-After") == "" || !strings.Contains(w.Body.String(), "rate limits") {
		t.Fatalf("second: %d %v %s", w.Code, w.Header(), w.Body)
	}
	if n := len(st.events()); n != 1 { // the duplicate in the first batch is deduplicated
		t.Fatalf("stored %d events, want 1", n)
	}
}

func TestDuplicatesAreAcknowledged(t *testing.T) {
	c, st := newTestCollector(t, Config{})
	for range 3 {
		w := httptest.NewRecorder()
		c.ServeHTTP(w, httptest.NewRequest("POST", "/track", strings.NewReader(okEvent)))
		if w.Body.String() != "1" {
			t.Fatalf("answer %q", w.Body)
		}
	}
	if n := len(st.events()); n != 1 {
		t.Fatalf("stored %d copies, want 1", n)
	}
}

func TestStoreFailureIs503(t *testing.T) {
	c, st := newTestCollector(t, Config{})
	st.fail = errors.New("disk on fire")
	w := httptest.NewRecorder()
	c.ServeHTTP(w, httptest.NewRequest("POST", "/track?verbose=1", strings.NewReader(okEvent)))
	if w.Code != 503 || strings.Contains(w.Body.String(), "fire") {
		t.Fatalf("got %d %s", w.Code, w.Body)
	}
	var v map[string]any
	if err := json.Unmarshal(w.Body.Bytes(), &v); err != nil || v["status"] != float64(0) {
		t.Fatalf("body %s", w.Body)
	}
}

func TestEndpointOf(t *testing.T) {
	f := func(path string, want endpoint, wantOK bool) {
		t.Helper()
		got, ok := endpointOf(path)
		if got != want || ok != wantOK {
			t.Errorf("endpointOf(%q) = %q, %v", path, got, ok)
		}
	}
	f("/track", epTrack, true)
	f("/track/", epTrack, true)
	f("/mp/engage", epEngage, true)
	f("/groups/", epGroups, true)
	f("/import", epImport, true)
	f("/decide", "", false)
	f("/", "", false)
}

func TestLinksOncePerBatch(t *testing.T) {
	c, st := newTestCollector(t, Config{})
	e1 := ev("a", tok+`,"$device_id":"d1","$user_id":"u1","$insert_id":"l1"`)
	e2 := ev("b", tok+`,"$device_id":"d1","$user_id":"u1","$insert_id":"l2"`)
	c.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("POST", "/track", strings.NewReader("["+e1+","+e2+"]")))
	c.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("POST", "/track", strings.NewReader("["+e1+"]")))
	if n := len(st.links()); n != 1 {
		t.Fatalf("stored %d links, want 1", n)
	}
}

func TestHugeContainersRefusedWhileParsing(t *testing.T) {
	c, st := newTestCollector(t, Config{})
	body := "[" + strings.Repeat("0,", 5000) + "0]"
	w := httptest.NewRecorder()
	c.ServeHTTP(w, httptest.NewRequest("POST", "/track?verbose=1", strings.NewReader(body)))
	if w.Code != 413 {
		t.Fatalf("top-level: %d %s", w.Code, w.Body)
	}
	body = ev("x", tok+`,"a":[`+strings.Repeat("0,", 5000)+`0]`)
	w = httptest.NewRecorder()
	c.ServeHTTP(w, httptest.NewRequest("POST", "/track?verbose=1", strings.NewReader(body)))
	if w.Code != 400 || !strings.Contains(w.Body.String(), "more than 2000 members") {
		t.Fatalf("nested: %d %s", w.Code, w.Body)
	}
	if len(st.events()) != 0 {
		t.Fatal("stored events")
	}
}

func TestImportAllFailedKeepsFailedRecords(t *testing.T) {
	c, _ := newTestCollector(t, Config{})
	body := "[" + ev("a", `"time":1700000000,"distinct_id":"u"`) + "," + ev("b", `"time":1700000000,"distinct_id":"u"`) + "]"
	r := httptest.NewRequest("POST", "/import?strict=1", strings.NewReader(body))
	r.SetBasicAuth(testSecret, "")
	w := httptest.NewRecorder()
	c.ServeHTTP(w, r)
	want := `{"code":400,"error":"some data points in the request failed validation","failed_records":[` +
		`{"index":0,"insert_id":"","field":"properties.$insert_id","message":"properties.$insert_id is required"},` +
		`{"index":1,"insert_id":"","field":"properties.$insert_id","message":"properties.$insert_id is required"}],"num_records_imported":0,"status":"Bad Request"}`
	if w.Code != 400 || w.Body.String() != want {
		t.Fatalf("got %d %s", w.Code, w.Body)
	}
}

func TestImportAuthBeforeBody(t *testing.T) {
	c, _ := newTestCollector(t, Config{})
	w := httptest.NewRecorder()
	c.ServeHTTP(w, httptest.NewRequest("POST", "/import?strict=1", strings.NewReader("not even json")))
	if w.Code != 401 {
		t.Fatalf("got %d %s", w.Code, w.Body)
	}
}

// dropAll is a privacy stage that drops every event.
type dropAll struct{ privacy.Passthrough }

func (dropAll) Event(context.Context, *privacy.Request, *event.Event) (bool, error) {
	return false, nil
}

func TestNoLinkFromDroppedEvent(t *testing.T) {
	st := &memStore{}
	c := New(Config{Now: func() time.Time { return now }}, fakeProjects{}, dropAll{}, st)
	w := httptest.NewRecorder()
	c.ServeHTTP(w, httptest.NewRequest("POST", "/track", strings.NewReader(ev("a", tok+`,"$device_id":"d1","$user_id":"u1"`))))
	if w.Code != 200 || len(st.links()) != 0 {
		t.Fatalf("got %d, %d links", w.Code, len(st.links()))
	}
}

// A refusal must not echo personal data the privacy stage would never
// store: a property named by an e-mail, or a key used as $insert_id.
func TestRefusalsRedactPersonalData(t *testing.T) {
	c, _ := newTestCollector(t, Config{})
	deep := `{"a":{"b":{"c":{"d":1}}}}`
	body := "[" + ev("a", `"time":1700000000,"distinct_id":"u","$insert_id":"AKIA2OGYBAH6TPCZ7QWX","alice.leak@example.com":`+deep) + "]"
	r := httptest.NewRequest("POST", "/import?strict=1", strings.NewReader(body))
	r.SetBasicAuth(testSecret, "")
	w := httptest.NewRecorder()
	c.ServeHTTP(w, r)
	answer := w.Body.String() + strings.Join(w.Header().Values("X-Veil-Error"), " ")
	if w.Code != 400 || !strings.Contains(answer, "[email]") {
		t.Fatalf("got %d %s", w.Code, answer)
	}
	for _, leak := range []string{"alice.leak", "AKIA2OGYBAH6TPCZ7QWX"} {
		if strings.Contains(answer, leak) {
			t.Errorf("answer echoes %q: %s", leak, answer)
		}
	}
}
