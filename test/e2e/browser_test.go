package e2e

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// browserUMD is the official UMD build the test page loads, under js/.
const browserUMD = "node_modules/mixpanel-browser/dist/mixpanel.umd.js"

// TestBrowserSDK runs mixpanel-browser in headless Chromium against veil
// serve. The page comes from another origin (an httptest server on its own
// port), as on a real site, so every call is a cross-origin request.
func TestBrowserSDK(t *testing.T) {
	chrome := requireTool(t, "chromium", "/usr/bin/chromium", "chromium-browser", "google-chrome")
	requireNodeModule(t, "mixpanel-browser")
	if _, err := os.Stat(filepath.Join("js", browserUMD)); err != nil {
		t.Fatalf("mixpanel-browser has no UMD build at js/%s: %v", browserUMD, err)
	}
	pages := httptest.NewServer(http.FileServer(http.Dir("js")))
	t.Cleanup(pages.Close)

	for _, tc := range []struct {
		name    string
		mode    string // browser.html's mode
		flushMS int    // batch_flush_interval_ms; 0 for the SDK's default (5 s)
	}{
		{"BatchXHR", "batch", 0},
		{"NoBatchXHR", "nobatch", 0},
		// Short flushes so that what the unload beacon left in localStorage
		// is re-sent (after 2 flush intervals) within the test.
		{"SendBeacon", "beacon", 1500},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Each case has its own server and Chromium and mostly waits
			// for the SDK's flush timers, so they run side by side.
			t.Parallel()
			runBrowserCase(t, chrome, pages.URL, tc.mode, tc.flushMS)
		})
	}
}

// sentItem is one event or profile update the browser sent to Veil.
type sentItem struct {
	endpoint string // track, engage or groups
	item     map[string]any
}

// browserSession is one Chromium with a fresh profile and what it did.
type browserSession struct {
	t   *testing.T
	ctx context.Context
	api string

	mu       sync.Mutex
	sent     []sentItem
	formats  map[string]int // payload format (base64, json) -> requests
	log      []string       // console and page errors
	pageErr  []string
	rawSent  []capturedBody               // what the page POSTed to Veil: URL and body
	requests map[network.RequestID]string // requests to Veil: "METHOD URL"
	headers  map[network.RequestID]string // their response headers, as text
	finished []network.RequestID          // those whose response has fully arrived
}

func newBrowserSession(t *testing.T, chrome, api string) *browserSession {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chrome),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(testContext(t), opts...)
	b := &browserSession{t: t, api: api}
	ctx, cancel := chromedp.NewContext(actx, chromedp.WithErrorf(func(format string, args ...any) {
		b.logf("chromedp: "+format, args...)
	}))
	b.ctx = ctx
	t.Cleanup(func() {
		// Close Chromium and wait for it to exit before t.TempDir's
		// cleanup removes its profile.
		if err := chromedp.Cancel(ctx); err != nil {
			t.Logf("close chromium: %v", err)
		}
		cancel()
		cancelAlloc()
		if t.Failed() {
			b.mu.Lock()
			t.Logf("browser console:\n%s", strings.Join(b.log, "\n"))
			b.mu.Unlock()
		}
	})
	chromedp.ListenTarget(ctx, b.onEvent)
	if err := chromedp.Run(ctx, network.Enable()); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return b
}

func (b *browserSession) logf(format string, args ...any) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.log = append(b.log, fmt.Sprintf(format, args...))
}

// onEvent records the browser's console and what it sent to Veil. It runs
// on chromedp's event loop, so it must not block.
func (b *browserSession) onEvent(ev any) {
	switch e := ev.(type) {
	case *runtime.EventConsoleAPICalled:
		var parts []string
		for _, a := range e.Args {
			if len(a.Value) > 0 {
				parts = append(parts, string(a.Value))
			} else {
				parts = append(parts, a.Description)
			}
		}
		b.logf("console.%s: %s", e.Type, strings.Join(parts, " "))
	case *runtime.EventExceptionThrown:
		msg := e.ExceptionDetails.Text
		if e.ExceptionDetails.Exception != nil {
			msg += " " + e.ExceptionDetails.Exception.Description
		}
		b.logf("page error: %s", msg)
		b.mu.Lock()
		b.pageErr = append(b.pageErr, msg)
		b.mu.Unlock()
	case *network.EventResponseReceived:
		b.mu.Lock()
		if _, ok := b.requests[e.RequestID]; ok && e.Response != nil {
			if b.headers == nil {
				b.headers = map[network.RequestID]string{}
			}
			var h strings.Builder
			for k, v := range e.Response.Headers {
				fmt.Fprintf(&h, "%s: %v\n", k, v)
			}
			b.headers[e.RequestID] = h.String()
		}
		b.mu.Unlock()
	case *network.EventLoadingFinished:
		b.mu.Lock()
		if _, ok := b.requests[e.RequestID]; ok {
			b.finished = append(b.finished, e.RequestID)
		}
		b.mu.Unlock()
	case *network.EventRequestWillBeSent:
		if !strings.HasPrefix(e.Request.URL, b.api+"/") {
			return
		}
		b.mu.Lock()
		if b.requests == nil {
			b.requests = map[network.RequestID]string{}
		}
		b.requests[e.RequestID] = e.Request.Method + " " + e.Request.URL
		b.mu.Unlock()
		if e.Request.Method != http.MethodPost {
			return
		}
		u, err := url.Parse(e.Request.URL)
		if err != nil {
			return
		}
		var body bytes.Buffer
		for _, p := range e.Request.PostDataEntries {
			raw, err := base64.StdEncoding.DecodeString(p.Bytes)
			if err != nil {
				b.logf("request %s: undecodable post data entry: %v", e.Request.URL, err)
				continue
			}
			body.Write(raw)
		}
		endpoint := strings.Trim(u.Path, "/")
		b.mu.Lock()
		b.rawSent = append(b.rawSent, capturedBody{source: "browser request POST " + e.Request.URL, body: append([]byte(e.Request.URL+"\n"), body.Bytes()...)})
		b.mu.Unlock()
		items, format, err := decodeSDKPayload(body.Bytes())
		b.logf("sent %s %s (%d bytes, %s, %d items, type %s)", e.Request.Method, e.Request.URL, body.Len(), format, len(items), e.Type)
		b.mu.Lock()
		defer b.mu.Unlock()
		if b.formats == nil {
			b.formats = map[string]int{}
		}
		b.formats[format]++
		if err != nil {
			b.pageErr = append(b.pageErr, fmt.Sprintf("cannot read what the SDK sent to %s: %v (body %q)", e.Request.URL, err, body.String()))
			return
		}
		for _, it := range items {
			b.sent = append(b.sent, sentItem{endpoint: endpoint, item: it})
		}
	}
}

// decodeSDKPayload reads a mixpanel-browser request body: data=<base64 of
// JSON>, one object or an array. Go's JSON decoder turns the CESU-8 the SDK
// sends for non-BMP characters into U+FFFD, which is fine for reading ids.
func decodeSDKPayload(body []byte) (items []map[string]any, format string, err error) {
	form, err := url.ParseQuery(string(body))
	if err != nil {
		return nil, "", err
	}
	data := form.Get("data")
	if data == "" {
		return nil, "", fmt.Errorf("no data= in the body")
	}
	raw, format := []byte(data), "json"
	if data[0] != '{' && data[0] != '[' {
		format = "base64"
		if raw, err = base64.StdEncoding.DecodeString(data); err != nil {
			return nil, format, err
		}
	}
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return nil, format, err
	}
	switch x := v.(type) {
	case map[string]any:
		items = append(items, x)
	case []any:
		for _, it := range x {
			if m, ok := it.(map[string]any); ok {
				items = append(items, m)
			}
		}
	}
	return items, format, nil
}

// sentEvents counts, by $insert_id, the events the SDK sent to /track.
func (b *browserSession) sentEvents() (byInsertID map[string]int, names map[string]string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	byInsertID, names = map[string]int{}, map[string]string{}
	for _, s := range b.sent {
		if s.endpoint != "track" {
			continue
		}
		props, _ := s.item["properties"].(map[string]any)
		id, _ := props["$insert_id"].(string)
		byInsertID[id]++
		names[id], _ = s.item["event"].(string)
	}
	return byInsertID, names
}

// capturedBody is one HTTP response a client received: its headers and body.
type capturedBody struct {
	source string // what was requested, e.g. "browser POST http://.../track/"
	body   []byte
}

// responseBodies fetches from Chromium the headers and body of every answer
// Veil gave the page. It fails the test if that of a POST cannot be had.
func (b *browserSession) responseBodies() []capturedBody {
	b.t.Helper()
	b.mu.Lock()
	ids := append([]network.RequestID(nil), b.finished...)
	headers := make(map[network.RequestID]string, len(b.headers))
	for id, h := range b.headers {
		headers[id] = h
	}
	reqs := make(map[network.RequestID]string, len(b.requests))
	posts := 0
	for id, r := range b.requests {
		reqs[id] = r
		if strings.HasPrefix(r, http.MethodPost+" ") {
			posts++
		}
	}
	b.mu.Unlock()
	var out []capturedBody
	got := 0
	for _, id := range ids {
		var body []byte
		err := chromedp.Run(b.ctx, chromedp.ActionFunc(func(ctx context.Context) error {
			ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			var err error
			body, err = network.GetResponseBody(id).Do(ctx)
			return err
		}))
		isPost := strings.HasPrefix(reqs[id], http.MethodPost+" ")
		switch {
		case err == nil:
			out = append(out, capturedBody{source: "browser " + reqs[id], body: append([]byte(headers[id]+"\n"), body...)})
			if isPost {
				got++
			}
		case isPost:
			b.t.Errorf("response body of %s: %v", reqs[id], err)
		}
	}
	if got != posts {
		b.t.Errorf("fetched the response bodies of %d of the %d POSTs the page sent to Veil", got, posts)
	}
	return out
}

func (b *browserSession) run(what string, actions ...chromedp.Action) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	if err := chromedp.Run(ctx, actions...); err != nil {
		b.t.Fatalf("%s: %v", what, err)
	}
}

// eval evaluates a JavaScript expression in the page into out.
func (b *browserSession) eval(expr string, out any) {
	b.t.Helper()
	b.run("evaluate "+expr, chromedp.Evaluate(expr, out))
}

// open navigates to url and waits until its script has run.
func (b *browserSession) open(url string) {
	b.t.Helper()
	b.run("open "+url, chromedp.Navigate(url), chromedp.Poll("window.__done === true || typeof window.__storedEvents === 'function'", nil, chromedp.WithPollingTimeout(10*time.Second)))
}

// waitDrained waits until the SDK's localStorage queues are empty: it has
// had an answer for everything it batched.
func (b *browserSession) waitDrained(timeout time.Duration) {
	b.t.Helper()
	var q map[string]int
	if !pollUntil(timeout, func() bool {
		b.eval("window.__queued()", &q)
		return q["_ev"]+q["_pp"]+q["_gr"] == 0
	}) {
		b.t.Fatalf("the SDK still queues %v after %v", q, timeout)
	}
}

func runBrowserCase(t *testing.T, chrome, pagesURL, mode string, flushMS int) {
	s := NewServer(t)
	b := newBrowserSession(t, chrome, s.URL())
	page := func(phase string) string {
		q := url.Values{"token": {s.Token}, "api": {s.URL()}, "mode": {mode}, "phase": {phase}}
		if flushMS > 0 {
			q.Set("flush_ms", fmt.Sprint(flushMS))
		}
		return pagesURL + "/browser.html?" + q.Encode()
	}
	batched := mode != "nobatch"
	w := openRecvWindow()
	mainPage := page("main")
	b.open(mainPage)
	var anon struct {
		DistinctID string `json:"distinct_id"`
		DeviceID   string `json:"device_id"`
	}
	b.eval("window.__anon", &anon)
	if anon.DeviceID == "" || anon.DistinctID != "$device:"+anon.DeviceID {
		t.Fatalf("before identify the SDK has distinct_id %q, $device_id %q; want $device:<device id>", anon.DistinctID, anon.DeviceID)
	}

	// Wait for the page view, signup_started, $identify and checkout; the
	// $set_once identify sends, two $set (people.set, set_group) and a
	// group $set. Batch mode sends them after its first flush interval.
	if !s.waitAccepted(t, map[string]int{"track": 4, "engage": 3, "groups": 1}, 30*time.Second) {
		t.Errorf("Veil did not store 4 events, 3 profile and 1 group updates within 30 s")
	}
	if batched {
		b.waitDrained(30 * time.Second)
	}
	var cbs map[string]any
	b.eval("window.__callbacks", &cbs)
	diffCallbacks(t, cbs, map[string]any{
		"track signup_started": 1, "track checkout": 1, "people.set": 1, "set_group": 1, "group.set": 1,
	})

	// Beacon case: track, then leave the page at once. The SDK flushes its
	// event queue with sendBeacon on the way out, and leaves the items in
	// localStorage (a beacon reports nothing); the next page load on the
	// origin re-sends them, and Veil must drop the copy.
	unloaded := false
	if mode == "beacon" {
		b.eval("window.__trackBeforeUnload()", nil)
		b.open(pagesURL + "/blank.html")
		if !s.waitAccepted(t, map[string]int{"track": 5}, 20*time.Second) {
			t.Fatalf("before_unload_event, tracked just before navigating away, was not stored within 20 s")
		}
		var left []string
		b.eval(fmt.Sprintf("window.__storedEvents(%q)", s.Token), &left)
		for _, name := range left {
			unloaded = unloaded || name == "before_unload_event"
		}
		if !unloaded {
			// A regular flush sent it just before the unload and the SDK
			// had its answer: there is nothing to re-send.
			t.Logf("before_unload_event went out in a regular flush before the unload (localStorage holds %v); the re-send is not exercised", left)
		}
		b.open(page("reopen"))
		b.waitDrained(30 * time.Second)
		if unloaded {
			dups := func() bool { return s.counter(t, `veil_ingest_events_deduplicated_total{endpoint="track"}`) >= 1 }
			if !pollUntil(20*time.Second, dups) {
				t.Errorf("the reopened page re-sent before_unload_event but Veil deduplicated no event")
			}
		}
	}
	w.close()

	// Every event the SDK sent is stored exactly once, however often it was
	// sent. (Chromium does not report the unload beacon of a page it is
	// leaving, so sent undercounts that one; the dedup counter above is the
	// check there.)
	nEvents := 4
	if mode == "beacon" {
		nEvents++
	}
	events, profiles, links := splitRecords(t, s.WaitRecords("all", nEvents+4+2, 10*time.Second))
	sent, names := b.sentEvents()
	stored := map[string]int{}
	for _, r := range events {
		id, _ := r.Props()["$insert_id"].(string)
		stored[id]++
		if name, seen := names[id]; seen && name != r["event"] {
			t.Errorf("stored %v with $insert_id %q, which the SDK sent for %q", r["event"], id, name)
		}
	}
	for id, n := range sent {
		if stored[id] != 1 {
			t.Errorf("the SDK sent %s ($insert_id %q) %d times; Veil stored it %d times, want once", names[id], id, n, stored[id])
		}
		if n > 1 {
			t.Logf("the SDK sent %s %d times", names[id], n)
		}
	}
	// Exactly these records, as the privacy stage stores them: identities
	// are pseudonyms, the page URL loses its query (and the IP address of
	// its host, as any string does), $email and the group's name are
	// dropped, and HeadlessChrome is a bot: its events are flagged.
	id := s.DistinctID
	user := id("user-42")
	pagesBase := strings.Replace(pagesURL, "//127.0.0.1:", "//[ipv4]:", 1)
	if pagesBase == pagesURL {
		t.Fatalf("the page server is not on 127.0.0.1: %s", pagesURL)
	}
	// Every event carries the SDK's properties.
	sdkProps := func(rawDistinctID string, props map[string]any) map[string]any {
		base := map[string]any{
			"time":                      w.within(), // the browser's clock: float seconds, stored as ms
			"$veil_received_ms":         w.within(),
			"distinct_id":               id(rawDistinctID),
			"$insert_id":                matchRE(`^[0-9a-z]{1,36}$`), // random: kept as sent
			"mp_lib":                    "web",
			"$lib_version":              "2.83.0",
			"$browser":                  "Chrome",
			"$browser_version":          anyNumber,
			"$os":                       matchRE(`.`),
			"$current_url":              pagesBase + "/browser.html",
			"$screen_height":            anyNumber,
			"$screen_width":             anyNumber,
			"$device_id":                id(anon.DeviceID),
			"$initial_referrer":         "$direct",
			"$initial_referring_domain": "$direct",
			"$bot":                      true,
		}
		if batched {
			base["mp_sent_by_lib_version"] = "2.83.0"
		}
		if rawDistinctID == "user-42" {
			base["$user_id"] = user
		}
		for k, v := range props {
			base[k] = v
		}
		return base
	}
	ev := func(name string, props map[string]any) map[string]any {
		return map[string]any{"event": name, "properties": props}
	}
	acme := s.GroupID("company", "acme-inc")
	wantEvents := []map[string]any{
		ev("$mp_web_page_view", sdkProps(anon.DistinctID, map[string]any{
			"$mp_autocapture": true, "current_domain": "[ipv4]", "current_page_title": "veil e2e: mixpanel-browser",
			"current_url_path": "/browser.html", "current_url_protocol": "http:", "current_url_search": "",
		})),
		ev("signup_started", sdkProps(anon.DistinctID, map[string]any{
			"plan": "free", "emoji": "lift-off 🚀", "ratio": 1.5, "tags": []string{"a", "b"}, "nested": map[string]any{"k": "v"},
		})),
		ev("$identify", sdkProps("user-42", map[string]any{"$anon_distinct_id": id(anon.DistinctID)})),
		// "company" is a default group key: its ids are pseudonymised as /groups' are.
		ev("checkout", sdkProps("user-42", map[string]any{"amount": 9.99, "currency": "EUR", "company": []string{acme}})),
	}
	if mode == "beacon" {
		wantEvents = append(wantEvents, ev("before_unload_event", sdkProps("user-42", map[string]any{"n": 1, "company": []string{acme}})))
	}
	matchRecords(t, "events", events, wantEvents)

	browserSet := func(props map[string]any) map[string]any {
		props["$browser"], props["$browser_version"], props["$os"] = "Chrome", anyNumber, matchRE(`.`)
		return props
	}
	person := func(op string, v any) map[string]any {
		return map[string]any{"kind": "profile", "$distinct_id": user, "$time": w.within(), op: v}
	}
	matchRecords(t, "profiles", profiles, []map[string]any{
		person("$set_once", map[string]any{"$initial_referrer": "$direct", "$initial_referring_domain": "$direct"}),
		person("$set", browserSet(map[string]any{"motto": "to the moon 🚀"})), // $email dropped
		person("$set", browserSet(map[string]any{"company": []string{acme}})),
		{"kind": "profile", "$group_key": "company", "$group_id": s.GroupID("company", "acme-inc"), "$time": w.within(), "$set": map[string]any{"employees": 50}},
	})

	// Links: identify binds the device to the user twice over ($identify,
	// and $device_id with $user_id on the event). Veil may store a link more
	// than once (every event of a batch declares it); the set must be exact.
	seen := map[string]bool{}
	var uniq []Record
	for _, r := range links {
		k := jsonText([]any{r["from"], r["to"], r["source"]})
		if !seen[k] {
			seen[k] = true
			uniq = append(uniq, r)
		}
	}
	link := func(source string) map[string]any {
		return map[string]any{"kind": "identity", "from": id(anon.DistinctID), "to": user, "source": source, "time": w.within()}
	}
	matchRecords(t, "identity links (distinct)", uniq, []map[string]any{link("$device_id"), link("$identify")})

	b.mu.Lock()
	defer b.mu.Unlock()
	// The SDK sends base64 to hosts other than mixpanel.com: that is the
	// encoding that turns 🚀 into CESU-8, which Veil must repair.
	if b.formats["json"] > 0 || b.formats["base64"] == 0 {
		t.Errorf("payload formats the SDK sent: %v; want base64 only", b.formats)
	}
	for _, e := range b.pageErr {
		t.Errorf("page: %s", e)
	}
}

// diffCallbacks checks what the SDK's callbacks got: 1 is success (the
// request was answered 1, or the item was queued for a batch).
func diffCallbacks(t *testing.T, got map[string]any, want map[string]any) {
	t.Helper()
	var d []string
	diffJSON("callbacks", got, want, &d)
	if len(d) > 0 {
		t.Errorf("SDK callbacks:\n%s", strings.Join(d, "\n"))
	}
}
