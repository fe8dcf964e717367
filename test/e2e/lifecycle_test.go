package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// slowBody streams a request body in chunks with a pause before each but
// the first, and says when the first chunk has been taken: by then the
// connection is open and the request has started.
type slowBody struct {
	chunks  [][]byte
	pause   time.Duration
	started chan struct{}
	once    sync.Once
	n       int
	cur     []byte
}

func (b *slowBody) Read(p []byte) (int, error) {
	if len(b.cur) == 0 {
		if b.n == len(b.chunks) {
			return 0, io.EOF
		}
		if b.n > 0 {
			time.Sleep(b.pause)
		}
		b.cur = b.chunks[b.n]
		b.n++
		b.once.Do(func() { close(b.started) })
	}
	n := copy(p, b.cur)
	b.cur = b.cur[n:]
	return n, nil
}

func splitChunks(b []byte, n int) [][]byte {
	var out [][]byte
	size := (len(b) + n - 1) / n
	for len(b) > 0 {
		k := min(size, len(b))
		out = append(out, b[:k])
		b = b[k:]
	}
	return out
}

// makeEvents returns n events with insert ids prefix-0, prefix-1, ...
func makeEvents(prefix string, n int, now int64) []trackEvent {
	evs := make([]trackEvent, n)
	for i := range evs {
		evs[i] = trackEvent{
			Name:       "drain_test",
			DistinctID: fmt.Sprintf("user-%d", i%37),
			TimeMS:     now - int64(i)*1000,
			InsertID:   fmt.Sprintf("%s-%d", prefix, i),
			Props:      map[string]any{"page": "/pricing", "filler": strings.Repeat("x", 64)},
		}
	}
	return evs
}

// TestSIGTERMDrainsInFlight sends SIGTERM while large, slowly streamed
// requests and a stream of small ones are in flight: every request already
// started is answered 200 and stored, every answer is a 200, the process
// exits 0 after "stopped cleanly", and a restart finds the data intact.
func TestSIGTERMDrainsInFlight(t *testing.T) {
	const (
		slowReqs   = 12
		slowEvents = 1000
		chunks     = 10
		pause      = 100 * time.Millisecond // the body takes ~0.9 s to send
		fastLoad   = 3
	)
	s := NewServer(t)
	ctx, cancel := context.WithCancel(testContext(t))
	client := &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: slowReqs + fastLoad}}
	trackURL := s.URL() + "/track?verbose=1"
	begin := time.Now()
	now := begin.UnixMilli()

	type outcome struct {
		events []trackEvent
		code   int
		body   string
		err    error
		at     time.Time
	}
	var (
		mu       sync.Mutex
		outcomes []*outcome
		sigtermd atomic.Bool
		wg       sync.WaitGroup
	)
	// Slow requests: all are started before SIGTERM.
	slow := make([]*outcome, slowReqs)
	started := make([]chan struct{}, slowReqs)
	for i := range slowReqs {
		o := &outcome{events: makeEvents(fmt.Sprintf("slow%d", i), slowEvents, now)}
		slow[i], started[i] = o, make(chan struct{})
		body := trackBody(s.Token, o.events)
		sb := &slowBody{chunks: splitChunks(body, chunks), pause: pause, started: started[i]}
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, err := http.NewRequestWithContext(ctx, http.MethodPost, trackURL, sb)
			if err != nil {
				panic(err)
			}
			req.ContentLength = int64(len(body))
			req.Header.Set("Content-Type", "application/json")
			resp, err := client.Do(req)
			if err == nil {
				var rb []byte
				rb, err = io.ReadAll(resp.Body)
				resp.Body.Close()
				o.code, o.body = resp.StatusCode, string(rb)
			}
			o.err, o.at = err, time.Now()
		}()
	}
	// Fast requests: a stream of 50-event batches through the shutdown.
	var fastWG sync.WaitGroup
	// If the test ends early, stop the clients before it completes.
	t.Cleanup(func() { cancel(); wg.Wait(); fastWG.Wait() })
	for w := range fastLoad {
		fastWG.Add(1)
		go func() {
			defer fastWG.Done()
			for n := 0; ctx.Err() == nil; n++ {
				o := &outcome{events: makeEvents(fmt.Sprintf("fast%d-%d", w, n), 50, now)}
				code, rb, err := postBody(ctx, client, trackURL, "application/json", bytes.NewReader(trackBody(s.Token, o.events)))
				o.code, o.body, o.err, o.at = code, string(rb), err, time.Now()
				mu.Lock()
				outcomes = append(outcomes, o)
				mu.Unlock()
				if err != nil {
					if !sigtermd.Load() && ctx.Err() == nil {
						t.Errorf("request failed before SIGTERM: %v", err)
					}
					return // the server is gone
				}
			}
		}()
	}
	for i, c := range started {
		select {
		case <-c:
		case <-time.After(30 * time.Second):
			t.Fatalf("slow request %d never started", i)
		}
	}
	// Give the server time to accept every connection and start reading.
	time.Sleep(2 * pause)

	sigtermd.Store(true)
	sigAt := time.Now()
	stopped := make(chan error, 1)
	go func() { stopped <- s.Stop() }()
	var stopErr error
	select {
	case stopErr = <-stopped:
	case <-time.After(90 * time.Second):
		t.Fatal("server did not exit within 90s of SIGTERM")
	}
	exitAt := time.Now()
	wg.Wait()
	fastWG.Wait()
	log := s.Log()
	if stopErr != nil {
		t.Errorf("exit after SIGTERM: %v; want status 0\n%s", stopErr, log)
	}
	for _, want := range []string{"shutting down", "stopped cleanly"} {
		if !strings.Contains(log, want) {
			t.Errorf("server log lacks %q:\n%s", want, log)
		}
	}
	checkServerLog(t, "after SIGTERM", log)

	// Every slow request was in flight at SIGTERM, so each must be answered.
	var lastSlow time.Time
	for i, o := range slow {
		switch {
		case o.err != nil:
			t.Errorf("slow request %d, in flight at SIGTERM, got no answer: %v", i, o.err)
		case o.code != http.StatusOK || o.body != okVerbose:
			t.Errorf("slow request %d: %d %s; want 200 %s", i, o.code, o.body, okVerbose)
		}
		if o.at.After(lastSlow) {
			lastSlow = o.at
		}
	}
	if lastSlow.Sub(sigAt) < pause {
		t.Errorf("the last slow request finished %v after SIGTERM: the test did not keep requests in flight across it", lastSlow.Sub(sigAt))
	}
	if exitAt.Before(lastSlow) {
		t.Errorf("process exited %v before the last in-flight request was answered", lastSlow.Sub(exitAt))
	}

	acked := append([]*outcome(nil), slow...)
	answeredFast, failedFast := 0, 0
	for _, o := range outcomes {
		switch {
		case o.err != nil:
			failedFast++
		case o.code != http.StatusOK || o.body != okVerbose:
			t.Errorf("request answered %d %s during shutdown; want 200 %s or no answer", o.code, o.body, okVerbose)
		default:
			answeredFast++
			acked = append(acked, o)
		}
	}
	t.Logf("SIGTERM %v after start of %d slow requests; last slow answer %v after SIGTERM, exit %v after SIGTERM; %d fast requests answered, %d got no answer",
		sigAt.Sub(begin).Round(time.Millisecond), slowReqs, lastSlow.Sub(sigAt).Round(time.Millisecond), exitAt.Sub(sigAt).Round(time.Millisecond), answeredFast, failedFast)

	checkStored := func(when string) int {
		t.Helper()
		recs := s.Records("event")
		count, stored := countByInsertID(recs)
		missing := 0
		for _, o := range acked {
			if o.err != nil || o.code != http.StatusOK {
				continue
			}
			for _, e := range o.events {
				if count[e.InsertID] != 1 {
					missing++
					if missing <= 10 {
						t.Errorf("%s: acknowledged event %s stored %d times; want 1", when, e.InsertID, count[e.InsertID])
					}
					continue
				}
				if diff := checkStoredEvent(s, stored[e.InsertID], e); diff != "" {
					t.Errorf("%s: event %s stored wrong: %s", when, e.InsertID, diff)
				}
			}
		}
		if missing > 10 {
			t.Errorf("%s: %d acknowledged events missing or duplicated in all", when, missing)
		}
		return len(recs)
	}
	before := checkStored("after SIGTERM")

	// Restart: the data is intact and the server works.
	restartServer(t, s)
	after := checkStored("after restart")
	if after != before {
		t.Errorf("restart changed the stored events: %d before, %d after", before, after)
	}
	again := makeEvents("after-restart", 5, time.Now().UnixMilli())
	code, body, err := postBody(ctx, s.Client(), trackURL, "application/json", bytes.NewReader(trackBody(s.Token, again)))
	if err != nil || code != http.StatusOK || string(body) != okVerbose {
		t.Errorf("track after restart: %d %s %v", code, body, err)
	}
	if err := s.Stop(); err != nil {
		t.Errorf("second stop: %v\n%s", err, s.Log())
	}
	checkServerLog(t, "after restart", s.Log())
	if n := len(s.Records("event")); n != before+len(again) {
		t.Errorf("after the second stop %d events stored; want %d", n, before+len(again))
	}
}

// TestHealthzAndMetrics checks /healthz, the ingestion and WAL metrics after
// accepted, refused and duplicate events, and that no property value sent
// reaches the server's log, even at debug level.
func TestHealthzAndMetrics(t *testing.T) {
	const canary = "canary-7f3a@example.com"
	s := NewServer(t, "--log-level", "debug")
	ctx := testContext(t)
	c := s.Client()

	resp, err := c.Get(s.URL() + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	hb, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || strings.TrimSpace(string(hb)) != "ok" {
		t.Errorf("/healthz: %d %q; want 200 ok", resp.StatusCode, hb)
	}

	scrape := func() []promSample {
		t.Helper()
		resp, err := c.Get(s.URL() + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("/metrics: %d %s", resp.StatusCode, b)
		}
		if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
			t.Errorf("/metrics Content-Type %q; want the Prometheus text format", ct)
		}
		if strings.Contains(string(b), canary) {
			t.Errorf("/metrics shows a property value sent (%s)", canary)
		}
		return parseMetrics(t, string(b))
	}
	initial := scrape()
	size0, ok := promValue(initial, "veil_wal_size_bytes", nil)
	if !ok || size0 <= 0 {
		t.Errorf("veil_wal_size_bytes before any event = %v (present %v); want > 0 (the segment header)", size0, ok)
	}

	now := time.Now().UnixMilli()
	withCanary := func(evs []trackEvent) []trackEvent {
		for i := range evs {
			evs[i].Props = map[string]any{"email": canary, "note": "contact " + canary}
		}
		return evs
	}
	type step struct {
		name     string
		body     string
		wantCode int
		wantBody string // prefix
	}
	good := withCanary(makeEvents("metrics-good", 7, now))
	mixed := withCanary(makeEvents("metrics-mixed", 3, now))
	mixedBody := trackBody(s.Token, mixed)
	// Add one event too old for /track and one with a bad time.
	var mixedItems []any
	json.Unmarshal(mixedBody, &mixedItems)
	mixedItems = append(mixedItems,
		map[string]any{"event": "old", "properties": map[string]any{"token": s.Token, "distinct_id": canary, "time": now - 6*24*3600*1000, "$insert_id": "metrics-old", "email": canary}},
		map[string]any{"event": "badtime", "properties": map[string]any{"token": s.Token, "distinct_id": "u1", "time": canary, "$insert_id": "metrics-badtime", "email": canary}},
	)
	mixedJSON, _ := json.Marshal(mixedItems)
	badToken := withCanary(makeEvents("metrics-badtoken", 2, now))
	steps := []step{
		{"accepted", string(trackBody(s.Token, good)), 200, okVerbose},
		{"duplicate", string(trackBody(s.Token, good)), 200, okVerbose},
		{"mixed", string(mixedJSON), 200, `{"status":1,"error":null,"num_records_imported":3,"num_records_dropped":2`},
		{"bad token", string(trackBody(canary, badToken)), 401, `{"status":0`},
		{"no token", `[{"event":"e","properties":{"distinct_id":"u1","email":"` + canary + `"}}]`, 401, `{"status":0`},
		{"malformed", `[{"event":"e","properties":{"token":"` + s.Token + `","email":"` + canary + `"}`, 400, `{"status":0`},
	}
	for _, st := range steps {
		code, body, err := postBody(ctx, c, s.URL()+"/track?verbose=1", "application/json", strings.NewReader(st.body))
		if err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		if code != st.wantCode || !strings.HasPrefix(string(body), st.wantBody) {
			t.Errorf("%s: %d %s; want %d %s...", st.name, code, body, st.wantCode, st.wantBody)
		}
	}
	// A form-encoded request with the canary in the data and the query.
	form := url.Values{"data": {string(trackBody(s.Token, withCanary(makeEvents("metrics-form", 1, now))))}}.Encode()
	code, body, err := postBody(ctx, c, s.URL()+"/track?verbose=1&ref="+canary, "application/x-www-form-urlencoded", strings.NewReader(form))
	if err != nil || code != 200 || string(body) != okVerbose {
		t.Errorf("form request: %d %s %v", code, body, err)
	}

	m := scrape()
	track := map[string]string{"endpoint": "track"}
	expect := []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"veil_ingest_records_accepted_total", track, 7 + 3 + 1},
		{"veil_ingest_events_deduplicated_total", track, 7},
		{"veil_ingest_records_rejected_total", map[string]string{"endpoint": "track", "reason": "too_old"}, 1},
		{"veil_ingest_records_rejected_total", map[string]string{"endpoint": "track", "reason": "bad_time"}, 1},
		{"veil_ingest_records_rejected_total", map[string]string{"endpoint": "track", "reason": "unknown_token"}, 2},
		{"veil_ingest_records_rejected_total", map[string]string{"endpoint": "track", "reason": "missing_token"}, 1},
		{"veil_ingest_records_rejected_total", map[string]string{"endpoint": "track", "reason": "malformed"}, 1},
		{"veil_ingest_requests_total", map[string]string{"endpoint": "track", "code": "200"}, 4},
		{"veil_ingest_requests_total", map[string]string{"endpoint": "track", "code": "401"}, 2},
		{"veil_ingest_requests_total", map[string]string{"endpoint": "track", "code": "400"}, 1},
		{"veil_ingest_request_duration_seconds_count", track, 7},
		{"veil_ingest_request_duration_seconds_bucket", map[string]string{"endpoint": "track", "le": "+Inf"}, 7},
		// One group commit per request that wrote something: accepted, mixed, form.
		{"veil_wal_fsync_duration_seconds_count", nil, 3},
		{"veil_wal_fsync_duration_seconds_bucket", map[string]string{"le": "+Inf"}, 3},
	}
	for _, e := range expect {
		got, ok := promValue(m, e.name, e.labels)
		if !ok || got != e.want {
			t.Errorf("%s%v = %v (present %v); want %v; series: %s", e.name, e.labels, got, ok, e.want, seriesOf(m, e.name))
		}
	}
	var rejected float64
	for _, smp := range m {
		if smp.name == "veil_ingest_records_rejected_total" {
			rejected += smp.value
		}
	}
	if rejected != 6 {
		t.Errorf("veil_ingest_records_rejected_total sums to %v; want 6: %s", rejected, seriesOf(m, "veil_ingest_records_rejected_total"))
	}
	// Histograms: buckets are cumulative, and the sums are positive.
	for _, h := range []struct {
		name   string
		labels map[string]string
	}{
		{"veil_ingest_request_duration_seconds", track},
		{"veil_wal_fsync_duration_seconds", nil},
	} {
		var buckets []promSample
		for _, smp := range m {
			if smp.name == h.name+"_bucket" && (h.labels == nil || smp.labels["endpoint"] == h.labels["endpoint"]) {
				buckets = append(buckets, smp)
			}
		}
		if len(buckets) < 2 {
			t.Errorf("%s has %d buckets", h.name, len(buckets))
		}
		for i := 1; i < len(buckets); i++ {
			if buckets[i].value < buckets[i-1].value {
				t.Errorf("%s buckets not cumulative: %v", h.name, seriesOf(m, h.name+"_bucket"))
				break
			}
		}
		if sum, ok := promValue(m, h.name+"_sum", h.labels); !ok || sum <= 0 {
			t.Errorf("%s_sum = %v (present %v); want > 0", h.name, sum, ok)
		}
	}
	size, ok := promValue(m, "veil_wal_size_bytes", nil)
	if !ok || size <= size0 {
		t.Errorf("veil_wal_size_bytes = %v after writes (present %v); want more than %v before", size, ok, size0)
	}
	if _, ok := promValue(m, "go_goroutines", nil); !ok {
		t.Errorf("go_goroutines missing: the Go collector is not registered")
	}

	// The events behind the counts are stored.
	recs := s.Records("event")
	if len(recs) != 11 {
		t.Errorf("%d events stored; want 11 (7 + 3 + 1)", len(recs))
	}
	// The privacy stage dropped "email" and redacted the address in "note".
	for _, r := range recs {
		if txt := jsonText(r); strings.Contains(txt, "canary-7f3a") || r.Props()["note"] != "contact [email]" {
			t.Errorf("stored event keeps the e-mail address sent: %s", txt)
			break
		}
	}
	if err := s.Stop(); err != nil {
		t.Errorf("stop: %v", err)
	}
	log := s.Log()
	checkServerLog(t, "metrics server", log)
	if strings.Contains(log, canary) || strings.Contains(log, "canary-7f3a") {
		t.Errorf("the server log contains a property value sent (%s):\n%s", canary, log)
	}
}

// TestDemo runs "veil demo --exit" twice on one data directory.
func TestDemo(t *testing.T) {
	data := t.TempDir()
	keyFile := filepath.Join(t.TempDir(), "master.key")
	urlRE := regexp.MustCompile(`Veil demo is running at (http://127\.0\.0\.1:(\d+))`)
	for run := 1; run <= 2; run++ {
		r := runCLI(t, 3*time.Minute, nil, "demo", "--data", data, "--addr", "127.0.0.1:0", "--exit", "--events", "500", "--master-key-file", keyFile)
		if r.code != 0 {
			t.Fatalf("run %d: veil demo exited %d\nstdout:\n%s\nstderr:\n%s", run, r.code, r.stdout, r.stderr)
		}
		checkServerLog(t, fmt.Sprintf("demo run %d", run), r.stderr)
		mURL := urlRE.FindStringSubmatch(r.stdout)
		if mURL == nil || mURL[2] == "0" {
			t.Errorf("run %d: no URL with a real port in the output:\n%s", run, r.stdout)
		} else {
			for _, want := range []string{mURL[1] + "/healthz", mURL[1] + "/metrics", mURL[1] + "/track?verbose=1"} {
				if !strings.Contains(r.stdout, want) {
					t.Errorf("run %d: output lacks %q:\n%s", run, want, r.stdout)
				}
			}
		}
		for _, want := range []string{
			"events --data " + data + " --project 1 --json",
			"curl ",
			"Sent 5", // 500 events (520 with the first run's /import batch)
			`Project 1 "Demo"`,
		} {
			if !strings.Contains(r.stdout, want) {
				t.Errorf("run %d: output lacks %q:\n%s", run, want, r.stdout)
			}
		}
		if !strings.Contains(r.stderr, "stopped cleanly") {
			t.Errorf("run %d: demo did not stop cleanly:\n%s", run, r.stderr)
		}

		out := veil(t, "events", "--data", data, "--project", "1", "--kind", "all", "--json")
		kinds := map[string]int{}
		for _, line := range bytes.Split(bytes.TrimSpace(out), []byte("\n")) {
			var rec map[string]any
			if err := json.Unmarshal(line, &rec); err != nil {
				t.Fatalf("veil events printed %q: %v", line, err)
			}
			k, _ := rec["kind"].(string)
			kinds[k]++
		}
		if want := 500 * run; kinds["event"] < want {
			t.Errorf("run %d: %d events stored for project 1; want at least %d", run, kinds["event"], want)
		}
		if want := 2 * run; kinds["profile"] < want {
			t.Errorf("run %d: %d profile records; want at least %d", run, kinds["profile"], want)
		}
		t.Logf("run %d: %v", run, kinds)
	}
	var ps []map[string]any
	if err := json.Unmarshal(veil(t, "project", "list", "--data", data, "--json"), &ps); err != nil {
		t.Fatal(err)
	}
	if len(ps) != 1 || ps[0]["name"] != "Demo" {
		t.Errorf("after two demo runs the projects are %v; want one \"Demo\"", ps)
	}
}

// TestCLI checks help, environment variables, flag errors and project list.
func TestCLI(t *testing.T) {
	const short = 60 * time.Second

	// Top-level help: every command, and how flags map to VEIL_* variables.
	r := runCLI(t, short, nil, "--help")
	if r.code != 0 {
		t.Errorf("veil --help exited %d", r.code)
	}
	for _, want := range []string{"serve", "project", "events", "demo", "version", "VEIL_DATA", "VEIL_RATE_LIMIT"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("veil --help lacks %q:\n%s", want, r.stdout)
		}
	}
	if r := runCLI(t, short, nil); r.code == 0 {
		t.Errorf("veil with no command exited 0")
	}
	if r := runCLI(t, short, nil, "no-such-command"); r.code == 0 || !strings.Contains(r.stderr, "unknown command") {
		t.Errorf("veil no-such-command: exit %d, stderr %q", r.code, r.stderr)
	}

	// Each command's help lists every flag with its variable.
	serveFlags := []string{"data", "addr", "tls-cert", "tls-key", "max-body-bytes", "rate-limit", "rate-burst",
		"redirect-hosts", "trusted-proxies", "dedup-window", "dedup-max-keys", "shutdown-timeout", "log-level", "log-format",
		"master-key-file", "geoip"}
	helpFlag := regexp.MustCompile(`(?m)^\s*--([a-z0-9-]+)(.*)$`)
	helpVar := regexp.MustCompile(`\[(VEIL_[A-Z0-9_]+)\]`)
	for _, c := range []struct {
		args  []string
		flags []string
	}{
		{[]string{"serve"}, serveFlags},
		{[]string{"demo"}, append([]string{"events", "exit"}, serveFlags...)},
		{[]string{"events"}, []string{"data", "project", "kind", "json"}},
		{[]string{"project", "create"}, []string{"data", "name", "json"}},
		{[]string{"project", "list"}, []string{"data", "json"}},
	} {
		name := strings.Join(c.args, " ")
		r := runCLI(t, short, nil, append(c.args, "--help")...)
		if r.code != 0 {
			t.Errorf("veil %s --help exited %d", name, r.code)
		}
		help := r.stdout + r.stderr
		listed := map[string]string{}
		for _, m := range helpFlag.FindAllStringSubmatch(help, -1) {
			v := helpVar.FindStringSubmatch(m[2])
			if v == nil {
				t.Errorf("veil %s --help lists --%s without its VEIL_* variable: %q", name, m[1], m[0])
				continue
			}
			listed[m[1]] = v[1]
		}
		for _, f := range c.flags {
			want := "VEIL_" + strings.ToUpper(strings.ReplaceAll(f, "-", "_"))
			if got, ok := listed[f]; !ok || got != want {
				t.Errorf("veil %s --help: --%s listed with %q (listed %v); want [%s]:\n%s", name, f, got, ok, want, help)
			}
		}
		// Flags added since this test was written need a variable too.
		for f, v := range listed {
			if want := "VEIL_" + strings.ToUpper(strings.ReplaceAll(f, "-", "_")); v != want {
				t.Errorf("veil %s --help: --%s listed with [%s]; want [%s]", name, f, v, want)
			}
		}
	}

	// Missing required flags: a clear message and a non-zero exit.
	data := t.TempDir()
	keyFile := filepath.Join(t.TempDir(), "master.key")
	for _, c := range []struct {
		args []string
		want string
	}{
		// The master key must not live in the data directory.
		{[]string{"serve", "--data", data, "--addr", "127.0.0.1:0", "--master-key-file", filepath.Join(data, "master.key")}, "inside the data directory"},
		{[]string{"project", "create", "--data", data}, "--name is required"},
		{[]string{"project", "create", "--name", "x"}, "--data is required"},
		{[]string{"events", "--data", data}, "--project is required"},
		{[]string{"events", "--project", "1"}, "--data is required"},
		{[]string{"events", "--data", data, "--project", "1", "--kind", "bogus"}, "--kind"},
		{[]string{"serve"}, "--data is required"},
	} {
		r := runCLI(t, short, nil, c.args...)
		if r.code == 0 || !strings.Contains(r.stderr, c.want) {
			t.Errorf("veil %s: exit %d, stderr %q; want non-zero and %q", strings.Join(c.args, " "), r.code, r.stderr, c.want)
		}
	}
	r = runCLI(t, short, []string{"VEIL_RATE_LIMIT=fast"}, "serve", "--data", data, "--addr", "127.0.0.1:0")
	if r.code == 0 || !strings.Contains(r.stderr, "VEIL_RATE_LIMIT") {
		t.Errorf("serve with VEIL_RATE_LIMIT=fast: exit %d, stderr %q; want non-zero naming the variable", r.code, r.stderr)
	}

	// project create / list: list --json shows every project and no secret.
	type proj struct {
		ID     int64  `json:"id"`
		Name   string `json:"name"`
		Token  string `json:"token"`
		Secret string `json:"secret"`
	}
	var created []proj
	for _, name := range []string{"alpha", "beta"} {
		var p proj
		if err := json.Unmarshal(veil(t, "project", "create", "--data", data, "--name", name, "--json"), &p); err != nil {
			t.Fatal(err)
		}
		if p.ID == 0 || p.Token == "" || p.Secret == "" || p.Name != name {
			t.Errorf("project create --json printed %+v", p)
		}
		created = append(created, p)
	}
	text := veil(t, "project", "create", "--data", data, "--name", "gamma")
	secretRE := regexp.MustCompile(`secret:\s+(\S+)`)
	if m := secretRE.FindSubmatch(text); m == nil {
		t.Errorf("project create printed no secret:\n%s", text)
	} else {
		created = append(created, proj{Name: "gamma", Secret: string(m[1])})
	}
	listJSON := veil(t, "project", "list", "--data", data, "--json")
	var raw []map[string]any
	if err := json.Unmarshal(listJSON, &raw); err != nil {
		t.Fatalf("project list --json printed %s: %v", listJSON, err)
	}
	if len(raw) != 3 {
		t.Errorf("project list --json shows %d projects; want 3: %s", len(raw), listJSON)
	}
	for i, p := range raw {
		if _, ok := p["secret"]; ok {
			t.Errorf("project list --json has a secret field: %v", p)
		}
		if i < len(created) && (p["name"] != created[i].Name || (created[i].Token != "" && p["token"] != created[i].Token)) {
			t.Errorf("project %d listed as %v; want name %q token %q", i, p, created[i].Name, created[i].Token)
		}
		for _, k := range []string{"id", "name", "token", "created"} {
			if _, ok := p[k]; !ok {
				t.Errorf("project list --json entry lacks %q: %v", k, p)
			}
		}
	}
	listText := veil(t, "project", "list", "--data", data)
	for _, p := range created {
		if strings.Contains(string(listJSON), p.Secret) || strings.Contains(string(listText), p.Secret) {
			t.Errorf("project list prints the secret of %s", p.Name)
		}
	}
	if !strings.Contains(string(listText), "alpha") || !strings.Contains(string(listText), "gamma") {
		t.Errorf("project list (text) lacks projects:\n%s", listText)
	}

	// serve reads VEIL_ADDR and VEIL_DATA; a flag beats its variable.
	envAddr, flagAddr := freeAddr(t), freeAddr(t)
	for _, c := range []struct {
		name string
		env  []string
		args []string
		addr string
	}{
		{"env only", []string{"VEIL_ADDR=" + envAddr, "VEIL_DATA=" + data, "VEIL_RATE_LIMIT=0", "VEIL_MASTER_KEY_FILE=" + keyFile}, nil, envAddr},
		{"flag over env", []string{"VEIL_ADDR=" + envAddr, "VEIL_DATA=" + data, "VEIL_MASTER_KEY_FILE=" + filepath.Join(data, "master.key")},
			[]string{"--addr", flagAddr, "--master-key-file", keyFile}, flagAddr},
	} {
		log := &syncBuffer{}
		cmd := exec.Command(veilBin, append([]string{"serve"}, c.args...)...)
		cmd.Env = append(cleanEnv(), c.env...)
		cmd.Stdout, cmd.Stderr = log, log
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		waitHealthy(t, "http://"+c.addr, 30*time.Second, exited, log.String)
		// It serves the data directory from VEIL_DATA: project alpha's token works.
		body := trackBody(created[0].Token, makeEvents("cli-"+strings.ReplaceAll(c.name, " ", "-"), 1, time.Now().UnixMilli()))
		code, rb, err := postBody(testContext(t), &http.Client{Timeout: 10 * time.Second}, "http://"+c.addr+"/track?verbose=1", "application/json", bytes.NewReader(body))
		if err != nil || code != 200 || string(rb) != okVerbose {
			t.Errorf("%s: track with a project of VEIL_DATA: %d %s %v", c.name, code, rb, err)
		}
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-exited:
			if err != nil {
				t.Errorf("%s: serve exit after SIGTERM: %v\n%s", c.name, err, log.String())
			}
		case <-time.After(60 * time.Second):
			cmd.Process.Kill()
			t.Fatalf("%s: serve did not stop after SIGTERM", c.name)
		}
		if !strings.Contains(log.String(), "url=http://"+c.addr) {
			t.Errorf("%s: serve did not log listening on %s:\n%s", c.name, c.addr, log.String())
		}
		checkServerLog(t, c.name, log.String())
		// The first run creates the master key (mode 0600) and says so;
		// the second loads it.
		created := strings.Contains(log.String(), "created a new master key")
		if want := c.name == "env only"; created != want {
			t.Errorf("%s: serve logged the creation of a master key: %v; want %v\n%s", c.name, created, want, log.String())
		}
		if fi, err := os.Stat(keyFile); err != nil {
			t.Errorf("%s: master key file: %v", c.name, err)
		} else if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: master key file %s has mode %v; want 0600", c.name, keyFile, fi.Mode().Perm())
		}
	}
	if n := len(veil(t, "events", "--data", data, "--project", fmt.Sprint(created[0].ID), "--json")); n == 0 {
		t.Errorf("events sent to the VEIL_DATA server are not in %s", data)
	}
}
