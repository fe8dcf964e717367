package e2e

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/md5"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"math"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mixpanel/mixpanel-go"

	"github.com/veil-analytics/veil/internal/privacy/geo"
	"github.com/veil-analytics/veil/internal/privacy/geo/geotest"
	"github.com/veil-analytics/veil/internal/privacy/pseudonym"
)

// TestBreachDrill plays a breach: personal data and secrets (canaries,
// unique to the run) go through the real SDKs (mixpanel-go and
// mixpanel-browser in Chromium) into veil serve, with IP geolocation and a
// trusted proxy. Then, as an attacker who got the data directory, the logs
// and everything the server ever answered, it searches all of it, byte by
// byte, for every canary, its lower-cased form, its unkeyed MD5, SHA-1 and
// SHA-256 (hex and base64) and its base64: nothing may be found. Last, as
// the controller answering a data subject, it maps the user's id to its
// pseudonym with the master key and finds exactly that user's events,
// linked to the browser's anonymous ones.
func TestBreachDrill(t *testing.T) {
	begin := time.Now()
	phase := func(what string) { t.Logf("%v: %s", time.Since(begin).Round(time.Millisecond), what) }
	chrome := requireTool(t, "chromium", "/usr/bin/chromium", "chromium-browser", "google-chrome")
	requireNodeModule(t, "mixpanel-browser")
	c := newCanaries(t)

	// Geolocation on documentation networks only; a City database, so that
	// the default policy (country) visibly keeps nothing finer.
	geoDB := geotest.WriteDB(t, t.TempDir(), geotest.GeoLite2City, map[string]geo.Location{
		"192.0.2.0/24":    {CountryCode: "DE", Region: "Hessen", City: "Frankfurt"},
		"198.51.100.0/24": {CountryCode: "FR", Region: "Ile-de-France", City: "Paris"},
		"203.0.113.0/24":  {CountryCode: "GB", Region: "England", City: "London"},
		"2001:db8:1::/48": {CountryCode: "NL", Region: "Noord-Holland", City: "Amsterdam"},
		"2001:db8:2::/48": {CountryCode: "SE", Region: "Stockholm", City: "Stockholm"},
	})
	phase("canaries and geolocation database ready")
	s := NewServer(t, "--geoip", geoDB, "--trusted-proxies", "127.0.0.1/32", "--log-level", "debug")
	ctx, cancel := context.WithTimeout(testContext(t), 90*time.Second)
	defer cancel()
	w := openRecvWindow()

	// Every answer the test gets from Veil (headers and body), and every
	// request it sends: the control, where each canary must be seen, or
	// the search could not have seen it anywhere.
	var (
		respMu    sync.Mutex
		responses []capturedBody
		requests  []capturedBody
	)
	base := &http.Transport{}
	defer base.CloseIdleConnections()
	goClient := func(label string, forwardedFor string) *mixpanel.ApiClient {
		h := http.Header{"User-Agent": {c.userAgent}}
		if forwardedFor != "" {
			h.Set("X-Forwarded-For", forwardedFor)
		}
		tr := &capturingTransport{base: base, header: h, label: label, mu: &respMu, out: &responses, sent: &requests}
		return mixpanel.NewApiClient(s.Token, mixpanel.ProxyApiLocation(s.URL()), mixpanel.ApiSecret(s.Secret),
			mixpanel.HttpClient(&http.Client{Timeout: 20 * time.Second, Transport: tr}))
	}
	mpPlain := goClient("direct", "")
	mpXFF4 := goClient("via proxy (IPv4)", c.ipv4XFF)
	mpXFF6 := goClient("via proxy (IPv6)", c.ipv6XFF)
	check := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("mixpanel-go %s: %v", what, err)
		}
	}

	// mixpanel-go: track through a trusted proxy that names the client.
	ins := map[string]string{}
	newEvent := func(mp *mixpanel.ApiClient, name, distinctID string, props map[string]any) *mixpanel.Event {
		e := mp.NewEvent(name, distinctID, props)
		id := "d" + randHex(t, 20)
		ins[name] = id
		e.AddInsertID(id)
		return e
	}
	signup := newEvent(mpXFF4, "go_drill_signup", c.user, map[string]any{
		"contact":         "write to " + c.emailText + " or call " + c.phoneUS,
		"card_number":     c.cardNumber, // a JSON number
		"card_text":       "card " + c.cardSpaced,
		"iban":            c.iban,
		"$raw_user_agent": c.userAgent, "user_agent": c.userAgent, "agent": c.userAgent,
		"organization_id": c.org,
		"name":            c.fullName,
		"openai_key":      c.openAI, "aws_key": c.aws, "gh_token": c.github, "slack_token": c.slack, "stripe_key": c.stripe,
		"auth_jwt":    c.jwt,
		"auth_header": "Authorization: Bearer " + c.bearer,
		"reset_link":  c.resetLink, "creds_link": c.credsLink, "key_link": c.keyLink,
		"note_ip": "login from " + c.ipv4Text,
	})
	invite := newEvent(mpXFF4, "go_drill_invite "+c.emailKey, c.user, map[string]any{"channel": "email", c.emailKey: true})
	geo4 := newEvent(mpXFF4, "go_drill_geo4", c.user, map[string]any{"ip": c.ipv4Prop, "step": 1})
	geo6 := newEvent(mpXFF4, "go_drill_geo6", c.user, map[string]any{"$ip": c.ipv6Prop, "step": 2})
	anon := newEvent(mpXFF4, "go_drill_anon", "", map[string]any{"$device_id": c.device})
	login := newEvent(mpXFF4, "go_drill_login", "", map[string]any{"$device_id": c.device, "$user_id": c.user})
	keyed := mpXFF4.NewEvent("go_drill_keyed", c.user, map[string]any{"step": 3})
	keyed.AddInsertID(c.awsInsert) // an insert id made of a secret: it becomes a pseudonym
	check("Track", mpXFF4.Track(ctx, []*mixpanel.Event{signup, invite, geo4, geo6, anon, login, keyed}))

	// People and groups.
	pp := mixpanel.NewPeopleProperties(c.user, map[string]any{
		"$email": c.emailGo, "$name": c.fullName, "$first_name": c.firstName, "$last_name": c.lastName,
		"$phone": c.phoneUS, "phone": c.phoneUK, "plan": "pro", "bio": "reach me at " + c.emailGo,
	})
	pp.SetIp(net.ParseIP(c.ipv4Prop)) // in $set and as the request's $ip
	check("PeopleSet", mpXFF4.PeopleSet(ctx, []*mixpanel.PeopleProperties{pp}))
	check("PeopleDeleteProperty", mpXFF4.PeopleDeleteProperty(ctx, c.user, []string{"old_field", c.emailKey}))
	check("GroupSet", mpPlain.GroupSet(ctx, "company", c.org, map[string]any{"name": c.fullName, "domain_contact": c.emailGo, "employees": 12}))

	// Import with the project secret (strict, gzip), and alias through a
	// proxy that names an IPv6 client.
	importTime := time.Now().Add(-time.Hour).Truncate(time.Millisecond)
	imp := newEvent(mpPlain, "go_drill_import", c.user, map[string]any{"billing": c.ibanSpaced, "pan": c.card})
	imp.AddTime(importTime)
	if res, err := mpPlain.Import(ctx, []*mixpanel.Event{imp}, mixpanel.ImportOptionsRecommend); err != nil {
		t.Fatalf("mixpanel-go Import: %v", err)
	} else if res.NumRecordsImported != 1 {
		t.Fatalf("mixpanel-go Import: %+v; want 1 imported", *res)
	}
	check("Alias", mpXFF6.Alias(ctx, c.alias, c.user))

	phase("mixpanel-go done")
	// mixpanel-browser in Chromium, on a page whose URL carries a token in
	// its query and another in its fragment.
	pages := httptest.NewServer(http.FileServer(http.Dir("js")))
	defer pages.Close()
	pageURL := pages.URL + "/drill.html?api=" + url.QueryEscape(s.URL()) + "&token=" + s.Token +
		"&utm_source=newsletter&reset_token=" + c.pageToken + "#access_token=" + c.pageFragToken
	b := newBrowserSession(t, chrome, s.URL())
	b.open(pageURL)
	var anonIDs struct {
		DistinctID string `json:"distinct_id"`
		DeviceID   string `json:"device_id"`
	}
	b.eval("window.__anon", &anonIDs)
	if anonIDs.DeviceID == "" || anonIDs.DistinctID != "$device:"+anonIDs.DeviceID {
		t.Fatalf("before identify the SDK has distinct_id %q, $device_id %q; want $device:<device id>", anonIDs.DistinctID, anonIDs.DeviceID)
	}
	drillArgs, err := json.Marshal(map[string]string{
		"ip": c.ipv4Browser, "phone": c.phoneUK, "email": c.emailBrowser, "card": c.card, "card_spaced": c.cardSpaced,
		"iban": c.iban, "user_agent": c.userAgent, "user": c.user, "full_name": c.fullName, "first_name": c.firstName,
		"last_name": c.lastName, "openai_key": c.openAI, "aws_key": c.aws, "github_token": c.github, "slack_token": c.slack,
		"stripe_key": c.stripe, "jwt": c.jwt, "reset_link": c.resetLink, "creds_link": c.credsLink, "key_link": c.keyLink,
		"org_id": c.org, "ipv6_text": c.ipv6Text,
	})
	if err != nil {
		t.Fatal(err)
	}
	phase("page loaded")
	var ran bool
	if b.eval("window.__drill("+string(drillArgs)+")", &ran); !ran {
		t.Fatalf("the page's __drill did not run")
	}

	// Wait for what was sent: Go's 8 events on /track (7 and the alias), 1
	// on /import, 2 profile updates and a group's; the browser's page view,
	// 2 events and $identify, identify's $set_once and people.set. Then
	// until the SDK holds nothing more: it has had every answer.
	if !s.waitAccepted(t, map[string]int{"track": 8 + 4, "import": 1, "engage": 2 + 2, "groups": 1}, 20*time.Second) {
		t.Errorf("Veil did not accept everything sent within 20 s")
	}
	b.waitDrained(20 * time.Second)
	var cbs map[string]any
	b.eval("window.__callbacks", &cbs)
	diffCallbacks(t, cbs, map[string]any{"track drill_browse": 1, "people.set": 1, "track drill_checkout": 1})
	responses = append(responses, b.responseBodies()...)
	// A refused record: its answer names the record and field, and must not
	// echo a property name holding an e-mail or a key used as $insert_id.
	refused := fmt.Sprintf(`[{"event":"drill_refused","properties":{"time":%d,"distinct_id":"x","$insert_id":%q,%q:{"a":{"b":{"c":{"d":1}}}}}}]`,
		time.Now().Unix(), c.aws, c.emailKey)
	req, err := http.NewRequest("POST", s.URL()+"/import?strict=1", strings.NewReader(refused))
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth(s.Secret, "")
	if resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req); err != nil {
		t.Fatalf("POST a refused record: %v", err)
	} else {
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "failed_records") {
			t.Errorf("refused record: %d %s; want 400 with failed_records", resp.StatusCode, body)
		}
		responses = append(responses, capturedBody{source: "POST /import (refused record)", body: append(headerText(resp.Header), body...)})
	}
	for _, path := range []string{"/healthz", "/metrics"} {
		resp, err := (&http.Client{Timeout: 10 * time.Second}).Get(s.URL() + path)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %d %v", path, resp.StatusCode, err)
		}
		responses = append(responses, capturedBody{source: "GET " + path, body: append(headerText(resp.Header), body...)})
	}
	w.close()
	phase("everything sent and answered")

	// SIGTERM: the server drains, flushes the privacy counters and stops.
	if err := s.Stop(); err != nil {
		t.Errorf("stop: %v\n%s", err, s.Log())
	}
	log := s.Log()
	if !strings.Contains(log, "stopped cleanly") {
		t.Errorf("the server did not stop cleanly:\n%s", log)
	}
	checkServerLog(t, "drill server", log)

	// What an operator's tools print.
	project := strconv.FormatInt(s.ID, 10)
	cli := func(args ...string) cliResult {
		t.Helper()
		r := runCLI(t, time.Minute, nil, args...)
		if r.code != 0 {
			t.Fatalf("veil %s: exit %d\n%s", strings.Join(args, " "), r.code, r.stderr)
		}
		return r
	}
	outputs := []capturedBody{}
	addOutput := func(what string, r cliResult) {
		outputs = append(outputs, capturedBody{source: what + " (stdout)", body: []byte(r.stdout)},
			capturedBody{source: what + " (stderr)", body: []byte(r.stderr)})
	}
	evAll := cli("events", "--data", s.Data, "--project", project, "--kind", "all", "--json")
	addOutput("veil events --kind all --json", evAll)
	evOnly := cli("events", "--data", s.Data, "--project", project, "--json")
	addOutput("veil events --json", evOnly)
	report := cli("privacy", "report", "--data", s.Data, "--project", project)
	addOutput("veil privacy report", report)
	reportJSON := cli("privacy", "report", "--data", s.Data, "--project", project, "--json")
	addOutput("veil privacy report --json", reportJSON)
	// The controller's path: the user's id, through the master key, to the
	// pseudonym. Its output must be exactly that (checked below).
	pseudoOut := cli("pseudonym", "--data", s.Data, "--project", project, "--master-key-file", s.KeyFile, c.user)
	addOutput("veil pseudonym", pseudoOut)
	phase("server stopped, commands run")

	// The control: every canary went out, in a form the search sees.
	m := newCanaryMatcher(t, c.list)
	b.mu.Lock()
	requests = append(requests, b.rawSent...)
	b.mu.Unlock()
	sentForm := map[string]bool{}
	for _, src := range requests {
		for _, h := range m.scanAll(src) {
			sentForm[h.canary] = sentForm[h.canary] || h.form == "as sent"
		}
	}
	for _, x := range c.list {
		if !sentForm[x.name] {
			t.Errorf("control: canary %s (%q) is not in what the clients sent (%d requests): the search could not have found it", x.name, x.value, len(requests))
		}
	}

	// The breach: search everything for every canary in every form.
	var sources []capturedBody
	err = filepath.WalkDir(s.Data, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(s.Data, path)
		sources = append(sources, capturedBody{source: "data file " + rel, body: b})
		return nil
	})
	if err != nil {
		t.Fatalf("walk the data directory: %v", err)
	}
	files := len(sources)
	sources = append(sources, capturedBody{source: "server log", body: []byte(log)})
	sources = append(sources, responses...)
	sources = append(sources, outputs...)
	var searched int
	leaks := 0
	for _, src := range sources {
		searched += len(src.body)
		for _, h := range m.scanAll(src) {
			if leaks++; leaks <= 50 {
				t.Errorf("LEAK: canary %s (%q) found %s in %s at offset %d: …%q…", h.canary, h.value, h.form, h.where, h.offset, h.context)
			}
		}
	}
	if leaks > 50 {
		t.Errorf("... %d leaks in all", leaks)
	}
	t.Logf("searched %d bytes (%d data files, the server log, %d responses, %d command outputs) for %d canaries in %d forms: %d hits",
		searched, files, len(responses), len(outputs), len(c.list), len(m.needles), leaks)
	var metaDB, walSeg bool
	for _, src := range sources[:files] {
		metaDB = metaDB || src.source == "data file meta.db"
		walSeg = walSeg || strings.HasSuffix(src.source, ".wal")
	}
	if !metaDB || !walSeg {
		t.Errorf("the data directory holds no meta.db (%v) or no WAL segment (%v): the search missed the store", metaDB, walSeg)
	}

	phase("searched")
	// What was stored, as the stage left it.
	events, profiles, links := splitRecords(t, parseRecords(t, []byte(evAll.stdout)))
	id := s.DistinctID
	user := id(c.user)
	org := s.GroupID("organization_id", c.org) // a default group key
	var goEvents, webEvents []Record
	for _, e := range events {
		if e.Props()["mp_lib"] == "web" {
			webEvents = append(webEvents, e)
		} else {
			goEvents = append(goEvents, e)
		}
		for _, k := range []string{"ip", "$ip", "name", "$name", "$email", "$raw_user_agent", "user_agent", "$region", "$city"} {
			if v, ok := e.Props()[k]; ok {
				t.Errorf("stored event %v has %s = %v; the default policy drops it (country-level geo keeps no region or city)", e["event"], k, v)
			}
		}
	}
	// Go's requests came with a Chrome user agent (not a bot): the stage
	// adds its browser family; the proxy's client address became a country.
	goEv := func(name string, props map[string]any) map[string]any {
		props["$veil_received_ms"] = w.within()
		props["$browser"], props["$browser_version"], props["$os"] = "Chrome", 124, "Linux"
		if _, ok := props["time"]; !ok {
			props["time"] = atReceipt
		}
		if _, ok := props["mp_lib"]; !ok && name != "$create_alias" {
			props["mp_lib"], props["$lib_version"] = "go", "v1.2.0"
		}
		return map[string]any{"event": name, "properties": props}
	}
	matchRecords(t, "events sent by mixpanel-go", goEvents, []map[string]any{
		goEv("go_drill_signup", map[string]any{
			"distinct_id": user, "$insert_id": ins["go_drill_signup"],
			"contact": "write to [email] or call [phone]", "card_number": "[card]", "card_text": "card [card]", "iban": "[iban]",
			"agent": "Chrome 124 (Linux, desktop)", "organization_id": org,
			"openai_key": "[secret_key]", "aws_key": "[secret_key]", "gh_token": "[secret_key]", "slack_token": "[secret_key]",
			"stripe_key": "[secret_key]", "auth_jwt": "[jwt]", "auth_header": "Authorization: Bearer [bearer_token]",
			"reset_link": "https://app.example.com/reset?utm_source=mail", "creds_link": "https://files.example.com/export.csv",
			"key_link": "https://app.example.com/keys/:id", "note_ip": "login from [ipv4]",
			"mp_country_code": "FR",
		}),
		goEv("go_drill_invite [email]", map[string]any{"distinct_id": user, "$insert_id": ins["go_drill_invite "+c.emailKey], "channel": "email", "mp_country_code": "FR"}),
		// An ip property wins over the request's address.
		goEv("go_drill_geo4", map[string]any{"distinct_id": user, "$insert_id": ins["go_drill_geo4"], "step": 1, "mp_country_code": "DE"}),
		goEv("go_drill_geo6", map[string]any{"distinct_id": user, "$insert_id": ins["go_drill_geo6"], "step": 2, "mp_country_code": "NL"}),
		goEv("go_drill_anon", map[string]any{"distinct_id": id("$device:" + c.device), "$insert_id": ins["go_drill_anon"], "$device_id": id(c.device), "mp_country_code": "FR"}),
		goEv("go_drill_login", map[string]any{"distinct_id": user, "$insert_id": ins["go_drill_login"], "$device_id": id(c.device), "$user_id": user, "mp_country_code": "FR"}),
		goEv("go_drill_keyed", map[string]any{"distinct_id": user, "$insert_id": s.Pseudonyms().Pseudonym("insert_id", c.awsInsert), "step": 3, "mp_country_code": "FR"}),
		// The import came directly from 127.0.0.1, which has no location.
		goEv("go_drill_import", map[string]any{"time": importTime.UnixMilli(), "distinct_id": user, "$insert_id": ins["go_drill_import"], "billing": "[iban]", "pan": "[card]", "$import": true}),
		goEv("$create_alias", map[string]any{"distinct_id": user, "alias": id(c.alias), "mp_country_code": "SE"}),
	})

	// The browser's events: HeadlessChrome is a bot (flagged, kept); its
	// ip super property became a country.
	byName := map[string]Record{}
	for _, e := range webEvents {
		byName[e["event"].(string)] = e
	}
	pagesBase := strings.Replace(pages.URL, "//127.0.0.1:", "//[ipv4]:", 1)
	checkProps(t, byName, "$mp_web_page_view", map[string]any{
		"distinct_id": id(anonIDs.DistinctID), "$bot": true,
		"$current_url": pagesBase + "/drill.html?utm_source=newsletter", "current_url_search": "?utm_source=newsletter",
	})
	checkProps(t, byName, "drill_browse", map[string]any{
		"distinct_id": id(anonIDs.DistinctID), "$device_id": id(anonIDs.DeviceID), "$bot": true, "mp_country_code": "GB",
		"query": "mail [email] or card [card]", "agent": "Chrome 124 (Linux, desktop)", "support_line": "call [phone]",
		"$current_url": pagesBase + "/drill.html?utm_source=newsletter",
	})
	checkProps(t, byName, "$identify", map[string]any{
		"distinct_id": user, "$anon_distinct_id": id(anonIDs.DistinctID), "$user_id": user, "$bot": true, "mp_country_code": "GB",
	})
	checkProps(t, byName, "drill_checkout", map[string]any{
		"distinct_id": user, "$user_id": user, "$bot": true, "mp_country_code": "GB",
		"card": "[card]", "iban": "[iban]", "openai_key": "[secret_key]", "aws_key": "[secret_key]", "gh_token": "[secret_key]",
		"slack_token": "[secret_key]", "stripe_key": "[secret_key]", "auth_jwt": "[jwt]",
		"reset_link": "https://app.example.com/reset?utm_source=mail", "creds_link": "https://files.example.com/export.csv",
		"key_link": "https://app.example.com/keys/:id", "organization_id": org, "contact": "mail [email]",
		"client_ip_note": "seen at [ipv6]",
	})
	if len(webEvents) != 4 || len(byName) != 4 {
		t.Errorf("the browser's events stored: %d (%d names); want 4: $mp_web_page_view, drill_browse, $identify, drill_checkout", len(webEvents), len(byName))
	}

	// Profiles: personal fields gone, free text redacted, ids pseudonyms.
	var goProfiles, webProfiles []Record
	for _, p := range profiles {
		if set, ok := p["$set"].(map[string]any); ok && set["$browser"] != nil || p["$set_once"] != nil {
			webProfiles = append(webProfiles, p)
		} else {
			goProfiles = append(goProfiles, p)
		}
	}
	matchRecords(t, "profile updates sent by mixpanel-go", goProfiles, []map[string]any{
		{"kind": "profile", "$distinct_id": user, "$time": w.within(), "$set": map[string]any{"plan": "pro", "bio": "reach me at [email]"}},
		{"kind": "profile", "$distinct_id": user, "$time": w.within(), "$unset": []string{"old_field"}},
		{"kind": "profile", "$group_key": "company", "$group_id": s.GroupID("company", c.org), "$time": w.within(),
			"$set": map[string]any{"domain_contact": "[email]", "employees": 12}},
	})
	matchRecords(t, "profile updates sent by mixpanel-browser", webProfiles, []map[string]any{
		// The page's utm_source is kept, as URLs keep it.
		{"kind": "profile", "$distinct_id": user, "$time": w.within(), "$set_once": map[string]any{
			"$initial_referrer": "$direct", "$initial_referring_domain": "$direct", "initial_utm_source": "newsletter",
			"initial_utm_campaign": nil, "initial_utm_campaign_id": nil, "initial_utm_content": nil,
			"initial_utm_creative_format": nil, "initial_utm_id": nil, "initial_utm_marketing_tactic": nil,
			"initial_utm_medium": nil, "initial_utm_source_platform": nil, "initial_utm_term": nil,
		}},
		{"kind": "profile", "$distinct_id": user, "$time": w.within(),
			"$set": map[string]any{"bank": "[iban]", "$browser": "Chrome", "$browser_version": anyNumber, "$os": matchRE(`.`)}},
	})

	// The privacy report counts what the stage did, with names redacted.
	var rows []struct {
		Event, Property, Reason string
		Count                   int64
	}
	if err := json.Unmarshal([]byte(reportJSON.stdout), &rows); err != nil {
		t.Errorf("veil privacy report --json printed %q: %v", reportJSON.stdout, err)
	}
	counts := map[[3]string]int64{}
	for _, r := range rows {
		counts[[3]string{r.Event, r.Property, r.Reason}] += r.Count
	}
	for _, want := range []struct {
		event, property, reason string
		n                       int64
	}{
		{"go_drill_signup", "contact", "pii_email_redact", 1},
		{"go_drill_signup", "contact", "pii_phone_redact", 1},
		{"go_drill_signup", "card_number", "pii_card_redact", 1},
		{"go_drill_signup", "name", "dropped_personal_field", 1},
		{"go_drill_invite [email]", "$event", "pii_email_redact", 1},
		{"go_drill_invite [email]", "[email]", "dropped_pii_in_key", 1},
		{"go_drill_geo4", "ip", "ip_geolocated_and_dropped", 1},
		{"go_drill_geo6", "$ip", "ip_geolocated_and_dropped", 1},
		{"$profile", "$email", "dropped_personal_field", 2},
		{"$group", "$group_id", "pseudonymized", 1},
	} {
		if got := counts[[3]string{want.event, want.property, want.reason}]; got != want.n {
			t.Errorf("veil privacy report: %s / %s / %s counted %d; want %d", want.event, want.property, want.reason, got, want.n)
		}
	}

	// The controller's path: under the user's pseudonym, exactly the events
	// sent for the user.
	pseudo := strings.TrimSpace(pseudoOut.stdout)
	if pseudo != user || !pseudonym.IsPseudonym(pseudo) {
		t.Fatalf("veil pseudonym printed %q; want the user's distinct id pseudonym %s", pseudoOut.stdout, user)
	}
	perUser := map[string]map[string]int{}
	for _, e := range parseRecords(t, []byte(evOnly.stdout)) {
		d, _ := e.Props()["distinct_id"].(string)
		if perUser[d] == nil {
			perUser[d] = map[string]int{}
		}
		perUser[d][e["event"].(string)]++
	}
	wantUser := map[string]int{
		"go_drill_signup": 1, "go_drill_invite [email]": 1, "go_drill_geo4": 1, "go_drill_geo6": 1, "go_drill_login": 1,
		"go_drill_keyed": 1, "go_drill_import": 1, "$create_alias": 1, "$identify": 1, "drill_checkout": 1,
	}
	if jsonText(perUser[pseudo]) != jsonText(wantUser) {
		t.Errorf("events under the user's pseudonym %s: %v; want %v", pseudo, perUser[pseudo], wantUser)
	}
	wantAnon := map[string]int{"$mp_web_page_view": 1, "drill_browse": 1}
	if got := perUser[id(anonIDs.DistinctID)]; jsonText(got) != jsonText(wantAnon) {
		t.Errorf("events under the browser's anonymous pseudonym: %v; want %v", got, wantAnon)
	}
	linked := map[string]bool{}
	for _, l := range links {
		if l["to"] == pseudo {
			linked[fmt.Sprint(l["from"])] = true
		}
	}
	for what, from := range map[string]string{
		"the browser's anonymous id": id(anonIDs.DistinctID),
		"the Go device":              id("$device:" + c.device),
		"the alias":                  id(c.alias),
	} {
		if !linked[from] {
			t.Errorf("no identity link from %s (%s) to the user's pseudonym %s; links: %s", what, from, pseudo, jsonText(links))
		}
	}
	t.Logf("breach drill took %v", time.Since(begin).Round(time.Millisecond))
}

// checkProps checks some properties of the stored event named name.
func checkProps(t *testing.T, byName map[string]Record, name string, want map[string]any) {
	t.Helper()
	e, ok := byName[name]
	if !ok {
		t.Errorf("no stored event %s", name)
		return
	}
	var d []string
	for k, v := range want {
		diffJSON(name+"."+k, e.Props()[k], v, &d)
	}
	sort.Strings(d)
	if len(d) > 0 {
		t.Errorf("stored %s differs:\n%s\nstored: %s", name, strings.Join(d, "\n"), jsonText(e))
	}
}

// capturingTransport sets headers on each request and keeps a copy of
// each answer.
type capturingTransport struct {
	base   http.RoundTripper
	header http.Header
	label  string
	mu     *sync.Mutex
	out    *[]capturedBody // answers
	sent   *[]capturedBody // requests
}

func (c *capturingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	for k, v := range c.header {
		r.Header[k] = v
	}
	var reqBody []byte
	if r.Body != nil {
		var err error
		if reqBody, err = io.ReadAll(r.Body); err != nil {
			return nil, err
		}
		r.Body.Close()
		r.Body = io.NopCloser(bytes.NewReader(reqBody))
	}
	var req bytes.Buffer
	fmt.Fprintf(&req, "%s %s\r\n", r.Method, r.URL)
	r.Header.Write(&req)
	req.WriteString("\r\n")
	c.mu.Lock()
	*c.sent = append(*c.sent, capturedBody{source: fmt.Sprintf("go request %s %s %s", c.label, r.Method, r.URL.Path), body: req.Bytes()})
	if len(reqBody) > 0 {
		// Separately, so that a gzip body is seen as one.
		*c.sent = append(*c.sent, capturedBody{source: fmt.Sprintf("go request body %s %s %s", c.label, r.Method, r.URL.Path), body: reqBody})
	}
	c.mu.Unlock()
	resp, err := c.base.RoundTrip(r)
	if err != nil {
		return nil, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	*c.out = append(*c.out, capturedBody{
		source: fmt.Sprintf("go %s %s %s (%d)", c.label, r.Method, r.URL.Path, resp.StatusCode),
		body:   append(headerText(resp.Header), body...),
	})
	c.mu.Unlock()
	resp.Body = io.NopCloser(bytes.NewReader(body))
	return resp, nil
}

func headerText(h http.Header) []byte {
	var b bytes.Buffer
	h.Write(&b)
	b.WriteString("\r\n")
	return b.Bytes()
}

// canary is one value that must never be found.
type canary struct {
	name  string
	value string
	more  map[string][]byte // further forms, by description
}

// canaries are one run's personal data and secrets.
type canaries struct {
	list []canary

	user, alias, device                                                   string
	emailGo, emailText, emailKey, emailBrowser                            string
	firstName, lastName, fullName                                         string
	phoneUS, phoneUK                                                      string
	ipv4Prop, ipv4XFF, ipv4Text, ipv4Browser, ipv6Prop, ipv6XFF, ipv6Text string
	card, cardSpaced, iban, ibanSpaced                                    string
	cardNumber                                                            int64
	openAI, aws, awsInsert, github, slack, stripe, bearer, jwt            string
	resetToken, urlUser, urlPass, pathKey, resetLink, credsLink, keyLink  string
	pageToken, pageFragToken, org, uaMarker, userAgent                    string
}

const (
	alnum  = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	upNum  = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	lowers = "abcdefghijklmnopqrstuvwxyz"
	digits = "0123456789"
)

func randFrom(t *testing.T, alphabet string, n int) string {
	t.Helper()
	b := make([]byte, n)
	for i := range b {
		k, err := rand.Int(rand.Reader, big.NewInt(int64(len(alphabet))))
		if err != nil {
			t.Fatal(err)
		}
		b[i] = alphabet[k.Int64()]
	}
	return string(b)
}

func randHex(t *testing.T, n int) string { return randFrom(t, "0123456789abcdef", n) }

// randInt is a random int in [lo, hi].
func randInt(t *testing.T, lo, hi int) int {
	t.Helper()
	k, err := rand.Int(rand.Reader, big.NewInt(int64(hi-lo+1)))
	if err != nil {
		t.Fatal(err)
	}
	return lo + int(k.Int64())
}

// withDigit makes sure s holds a digit, as key formats want.
func withDigit(t *testing.T, s string) string {
	if strings.ContainsAny(s, digits) {
		return s
	}
	return s[:len(s)-1] + randFrom(t, digits, 1)
}

func newCanaries(t *testing.T) *canaries {
	t.Helper()
	c := &canaries{}
	add := func(name, value string) string {
		c.list = append(c.list, canary{name: name, value: value})
		return value
	}
	tag := randHex(t, 10)
	c.user = add("user id", "cnry-user-"+tag)
	c.alias = add("alias", "cnry-alias-"+randHex(t, 10))
	c.device = add("device id", "cnry-dev-"+randHex(t, 10))
	c.emailGo = add("e-mail (people)", "cnry."+randHex(t, 8)+"@example.com")
	c.emailText = add("e-mail (mixed case, in text)", "Cnry.Mixed"+strings.ToUpper(randHex(t, 8))+"@Example.ORG")
	c.emailKey = add("e-mail (as a property name and in an event name)", "cnry.key."+randHex(t, 8)+"@example.net")
	c.emailBrowser = add("e-mail (browser, mixed case)", "Cnry.Browser"+strings.ToUpper(randHex(t, 6))+"@Example.COM")
	title := func(s string) string { return strings.ToUpper(s[:1]) + s[1:] }
	c.firstName = add("first name", "Zeph"+randFrom(t, lowers, 8))
	c.lastName = add("last name", title("vantorq"+randFrom(t, lowers, 8)))
	c.fullName = add("full name", c.firstName+" "+c.lastName)
	c.phoneUS = add("phone (US)", fmt.Sprintf("+1 415 555 0%03d", randInt(t, 0, 999)))
	c.phoneUK = add("phone (UK)", fmt.Sprintf("+44 20 7946 0%03d", randInt(t, 0, 999)))
	// IPv4 hosts in the documentation networks, distinct where they share one.
	hosts := map[int]bool{}
	host := func() int {
		for {
			if h := randInt(t, 1, 254); !hosts[h] {
				hosts[h] = true
				return h
			}
		}
	}
	c.ipv4Prop = add("IPv4 (ip property)", fmt.Sprintf("192.0.2.%d", host()))
	c.ipv4Text = add("IPv4 (in text)", fmt.Sprintf("192.0.2.%d", host()))
	c.ipv4XFF = add("IPv4 (X-Forwarded-For)", fmt.Sprintf("198.51.100.%d", randInt(t, 1, 254)))
	c.ipv4Browser = add("IPv4 (browser ip super property)", fmt.Sprintf("203.0.113.%d", randInt(t, 1, 254)))
	ipv6 := func(net uint16) string {
		var a [16]byte
		copy(a[:], []byte{0x20, 0x01, 0x0d, 0xb8, byte(net >> 8), byte(net)})
		for i := 6; i < 16; i += 2 {
			binary.BigEndian.PutUint16(a[i:], uint16(randInt(t, 0x1000, 0xffff))) // no zero group: no "::"
		}
		return netip.AddrFrom16(a).String()
	}
	c.ipv6Prop = add("IPv6 ($ip property)", ipv6(1))
	c.ipv6XFF = add("IPv6 (X-Forwarded-For)", ipv6(2))
	c.ipv6Text = add("IPv6 (in text)", ipv6(3))

	// A Visa number passing Luhn, sent as a string, spaced, and as a JSON number.
	pan := "4" + randFrom(t, digits, 14)
	sum := 0
	for i := len(pan) - 1; i >= 0; i-- {
		d := int(pan[i] - '0')
		if (len(pan)-1-i)%2 == 0 { // doubled: every second digit from the check digit's left
			if d *= 2; d > 9 {
				d -= 9
			}
		}
		sum += d
	}
	c.card = pan + strconv.Itoa((10-sum%10)%10)
	c.cardNumber, _ = strconv.ParseInt(c.card, 10, 64)
	f := math.Float64bits(float64(c.cardNumber))
	c.list = append(c.list, canary{name: "card", value: c.card, more: map[string][]byte{
		"as a little-endian float64": binary.LittleEndian.AppendUint64(nil, f),
		"as a big-endian float64":    binary.BigEndian.AppendUint64(nil, f),
	}})
	c.cardSpaced = add("card (spaced)", c.card[:4]+" "+c.card[4:8]+" "+c.card[8:12]+" "+c.card[12:])

	// A German IBAN: bank code and account number, check digits by mod-97.
	bban := randFrom(t, digits, 18)
	n, _ := new(big.Int).SetString(bban+"131400", 10) // "DE" is 13 14, then "00"
	check := 98 - new(big.Int).Mod(n, big.NewInt(97)).Int64()
	c.iban = add("IBAN", fmt.Sprintf("DE%02d%s", check, bban))
	var sp []string
	for i := 0; i < len(c.iban); i += 4 {
		sp = append(sp, c.iban[i:min(i+4, len(c.iban))])
	}
	c.ibanSpaced = add("IBAN (spaced)", strings.Join(sp, " "))

	c.openAI = add("OpenAI key", "sk-proj-"+withDigit(t, randFrom(t, alnum, 48)))
	c.aws = add("AWS key id", "AKIA"+withDigit(t, randFrom(t, upNum, 16)))
	c.awsInsert = add("AWS key id (as $insert_id)", "AKIA"+withDigit(t, randFrom(t, upNum, 16)))
	c.github = add("GitHub token", "ghp_"+randFrom(t, alnum, 36))
	c.slack = add("Slack token", "xoxb-"+randFrom(t, digits, 12)+"-"+randFrom(t, digits, 13)+"-"+randFrom(t, alnum, 24))
	c.stripe = add("Stripe key", "sk_live_"+randFrom(t, alnum, 24))
	c.bearer = add("bearer token", withDigit(t, randFrom(t, alnum, 32)))
	b64u := base64.RawURLEncoding.EncodeToString
	sig := make([]byte, 32)
	rand.Read(sig)
	jwtPayload := b64u([]byte(fmt.Sprintf(`{"sub":"cnry-jwt-%s","iat":%d}`, randHex(t, 10), time.Now().Unix())))
	c.jwt = add("JWT", b64u([]byte(`{"alg":"HS256","typ":"JWT"}`))+"."+jwtPayload+"."+b64u(sig))
	add("JWT payload", jwtPayload)
	add("JWT signature", b64u(sig))

	c.resetToken = add("reset token (URL query)", randFrom(t, alnum, 24))
	c.resetLink = add("reset link", "https://app.example.com/reset?token="+c.resetToken+"&utm_source=mail")
	c.urlUser = add("URL user name", "cnryuser"+randHex(t, 8))
	c.urlPass = add("URL password", "Pw"+randFrom(t, alnum, 16))
	c.credsLink = add("link with credentials", "https://"+c.urlUser+":"+c.urlPass+"@files.example.com/export.csv")
	c.pathKey = add("key in a URL path", "sk_abc9"+randHex(t, 15))
	c.keyLink = add("link with a key in its path", "https://app.example.com/keys/"+c.pathKey)
	c.pageToken = add("page URL query token", randFrom(t, alnum, 24))
	c.pageFragToken = add("page URL fragment token", randFrom(t, alnum, 24))
	c.org = add("organization id", "org-"+randHex(t, 12))
	c.uaMarker = add("user agent marker", "VeilUA/"+randHex(t, 12))
	c.userAgent = add("user agent", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36 "+c.uaMarker)
	for _, x := range c.list {
		t.Logf("canary %-50s %s", x.name, x.value)
	}
	return c
}

// needle is one form of a canary as bytes.
type needle struct {
	canary, value, form string
	b                   []byte
}

// canaryMatcher finds many needles in one pass: every needle is at least
// 8 bytes, so each position of a haystack is looked up by its next 8.
type canaryMatcher struct {
	needles []needle
	first2  [1 << 16]bool
	byKey   map[uint64][]int
}

// forms lists a canary's forms: as sent, lower-cased, its base64, and the
// unkeyed digests of both spellings in hex and base64.
func forms(c canary) []needle {
	var out []needle
	addForm := func(form string, b []byte) {
		for _, n := range out {
			if bytes.Equal(n.b, b) {
				return
			}
		}
		out = append(out, needle{canary: c.name, value: c.value, form: form, b: b})
	}
	encodings := []struct {
		name string
		enc  func([]byte) string
	}{
		{"in hex", hex.EncodeToString},
		{"in upper-case hex", func(b []byte) string { return strings.ToUpper(hex.EncodeToString(b)) }},
		{"in base64", base64.StdEncoding.EncodeToString},
		{"in unpadded base64", base64.RawStdEncoding.EncodeToString},
		{"in base64url", base64.URLEncoding.EncodeToString},
		{"in unpadded base64url", base64.RawURLEncoding.EncodeToString},
	}
	spellings := []struct{ name, v string }{{"", c.value}, {" of the lower-cased form", strings.ToLower(c.value)}}
	for _, sp := range spellings {
		if sp.name == "" {
			addForm("as sent", []byte(sp.v))
		} else {
			addForm("lower-cased", []byte(sp.v))
		}
		for _, e := range encodings[2:] {
			addForm(strings.TrimPrefix(e.name, "in ")+sp.name, []byte(e.enc([]byte(sp.v))))
		}
		for _, h := range []struct {
			name string
			sum  func([]byte) []byte
		}{
			{"MD5", func(b []byte) []byte { s := md5.Sum(b); return s[:] }},
			{"SHA-1", func(b []byte) []byte { s := sha1.Sum(b); return s[:] }},
			{"SHA-256", func(b []byte) []byte { s := sha256.Sum256(b); return s[:] }},
		} {
			sum := h.sum([]byte(sp.v))
			for _, e := range encodings {
				addForm(h.name+sp.name+" "+e.name, []byte(e.enc(sum)))
			}
		}
	}
	keys := make([]string, 0, len(c.more))
	for k := range c.more {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		addForm(k, c.more[k])
	}
	return out
}

func newCanaryMatcher(t *testing.T, list []canary) *canaryMatcher {
	t.Helper()
	m := &canaryMatcher{byKey: map[uint64][]int{}}
	for _, c := range list {
		for _, n := range forms(c) {
			if len(n.b) < 8 {
				t.Fatalf("canary %s: form %s is %d bytes; the matcher needs 8", n.canary, n.form, len(n.b))
			}
			i := len(m.needles)
			m.needles = append(m.needles, n)
			m.first2[binary.LittleEndian.Uint16(n.b)] = true
			k := binary.LittleEndian.Uint64(n.b)
			m.byKey[k] = append(m.byKey[k], i)
		}
	}
	return m
}

// hit is one needle found.
type hit struct {
	canary, value, form, where string
	offset                     int
	context                    string
}

// scanAll searches a source as it is and decoded: percent-decoded,
// base64 runs decoded, gunzipped. Each needle is reported once per view.
func (m *canaryMatcher) scanAll(src capturedBody) []hit {
	var out []hit
	for _, v := range views(src) {
		out = append(out, m.scan(v.body, v.source)...)
	}
	return out
}

func (m *canaryMatcher) scan(h []byte, where string) []hit {
	var out []hit
	seen := map[int]bool{}
	for i := 0; i+8 <= len(h); i++ {
		if !m.first2[binary.LittleEndian.Uint16(h[i:])] {
			continue
		}
		for _, k := range m.byKey[binary.LittleEndian.Uint64(h[i:])] {
			n := m.needles[k]
			if seen[k] || !bytes.HasPrefix(h[i:], n.b) {
				continue
			}
			seen[k] = true
			lo, hi := max(i-24, 0), min(i+len(n.b)+24, len(h))
			out = append(out, hit{canary: n.canary, value: n.value, form: n.form, where: where, offset: i, context: string(h[lo:hi])})
		}
	}
	return out
}

// views are the ways a source is read: as it is (or gunzipped), then
// percent-decoded or JSON-unescaped, and each of these with its base64
// runs decoded.
func views(src capturedBody) []capturedBody {
	out := []capturedBody{src}
	if len(src.body) > 2 && src.body[0] == 0x1f && src.body[1] == 0x8b {
		if zr, err := gzip.NewReader(bytes.NewReader(src.body)); err == nil {
			if d, err := io.ReadAll(zr); err == nil || len(d) > 0 {
				out = append(out, capturedBody{src.source + " (gunzipped)", d})
			}
		}
	}
	for _, v := range out[:len(out):len(out)] {
		if bytes.ContainsAny(v.body, "%+") {
			out = append(out, capturedBody{v.source + " (percent-decoded)", percentDecode(v.body)})
		}
		if bytes.IndexByte(v.body, '\\') >= 0 {
			out = append(out, capturedBody{v.source + " (JSON-unescaped)", jsonUnescape(v.body)})
		}
	}
	for _, v := range out[:len(out):len(out)] {
		if d := base64Runs(v.body); len(d) > 0 {
			out = append(out, capturedBody{v.source + " (base64 runs decoded)", d})
		}
	}
	return out
}

// jsonUnescape undoes the JSON escapes of ASCII characters ("\/",
// "\u0026") leniently, keeping what it does not know.
func jsonUnescape(b []byte) []byte {
	out := make([]byte, 0, len(b))
	for i := 0; i < len(b); i++ {
		switch {
		case b[i] == '\\' && i+1 < len(b) && b[i+1] == '/':
			out = append(out, '/')
			i++
		case b[i] == '\\' && i+5 < len(b) && b[i+1] == 'u' && b[i+2] == '0' && b[i+3] == '0' && isHexByte(b[i+4]) && isHexByte(b[i+5]):
			v, _ := strconv.ParseUint(string(b[i+4:i+6]), 16, 8)
			out = append(out, byte(v))
			i += 5
		default:
			out = append(out, b[i])
		}
	}
	return out
}

// percentDecode decodes %XX and '+' leniently, keeping what is not valid.
func percentDecode(b []byte) []byte {
	out := make([]byte, 0, len(b))
	for i := 0; i < len(b); i++ {
		switch {
		case b[i] == '%' && i+2 < len(b) && isHexByte(b[i+1]) && isHexByte(b[i+2]):
			v, _ := strconv.ParseUint(string(b[i+1:i+3]), 16, 8)
			out = append(out, byte(v))
			i += 2
		case b[i] == '+':
			out = append(out, ' ')
		default:
			out = append(out, b[i])
		}
	}
	return out
}

func isHexByte(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// base64Runs decodes every run of 12 or more base64 or base64url
// characters, each from its start, and joins the results.
func base64Runs(b []byte) []byte {
	isB64 := func(c byte) bool {
		return 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '+' || c == '/' || c == '-' || c == '_'
	}
	var out []byte
	for i := 0; i < len(b); {
		if !isB64(b[i]) {
			i++
			continue
		}
		j := i
		for j < len(b) && isB64(b[j]) {
			j++
		}
		if run := string(b[i:j]); len(run) >= 12 {
			if len(run)%4 == 1 {
				run = run[:len(run)-1]
			}
			enc := base64.RawStdEncoding
			if strings.ContainsAny(run, "-_") {
				enc = base64.RawURLEncoding
			}
			if d, err := enc.DecodeString(run); err == nil {
				out = append(append(out, d...), '\n')
			}
		}
		i = j
	}
	return out
}
