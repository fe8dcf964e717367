package privacy_test

import (
	"context"
	"encoding/json"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/veil-analytics/veil/internal/event"
	"github.com/veil-analytics/veil/internal/privacy"
	"github.com/veil-analytics/veil/internal/privacy/geo"
	"github.com/veil-analytics/veil/internal/privacy/geo/geotest"
	"github.com/veil-analytics/veil/internal/privacy/pii"
	"github.com/veil-analytics/veil/internal/privacy/pseudonym"
	"github.com/veil-analytics/veil/internal/wire"
)

const testKeyFile = "veil-master-key-v1\nAAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n"

func testKeys(t testing.TB) *pseudonym.Keyring {
	t.Helper()
	k, err := pseudonym.ParseMasterKey([]byte(testKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	return pseudonym.NewKeyring(k)
}

// policies is a PolicySource over a map of JSON policies.
type policies struct {
	mu sync.Mutex
	m  map[int64]string
}

func (p *policies) PrivacyPolicy(_ context.Context, id int64) ([]byte, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if s, ok := p.m[id]; ok {
		return []byte(s), nil
	}
	return nil, nil
}

func (p *policies) set(id int64, s string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.m == nil {
		p.m = map[int64]string{}
	}
	p.m[id] = s
}

func newStage(t testing.TB, policy string, cfg privacy.Config) *privacy.Stage {
	t.Helper()
	src := &policies{}
	if policy != "" {
		if _, err := privacy.ParsePolicy([]byte(policy)); err != nil {
			t.Fatalf("test policy: %v", err)
		}
		src.set(1, policy)
	}
	cfg.Keys = testKeys(t)
	cfg.Policies = src
	s, err := privacy.NewStage(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// props parses a JSON object into event fields.
func props(t testing.TB, js string) []event.Field {
	t.Helper()
	items, err := wire.ParseItems([]byte(js), wire.ParseOptions{})
	if err != nil || len(items) != 1 || items[0].Value.Kind != event.Object {
		t.Fatalf("bad test JSON %s: %v", js, err)
	}
	return items[0].Value.Fields
}

func propsJSON(fields []event.Field) string {
	return string(event.Value{Kind: event.Object, Fields: fields}.AppendJSON(nil))
}

func pseudo(t testing.TB, epoch uint32, field pseudonym.Field, v string) string {
	return testKeys(t).Project(1, epoch).Pseudonym(field, v)
}

// sameJSON compares two JSON texts as values, ignoring key order.
func sameJSON(t *testing.T, got, want string) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal([]byte(got), &g); err != nil {
		t.Fatalf("got invalid JSON %s: %v", got, err)
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatalf("want invalid JSON %s: %v", want, err)
	}
	gb, _ := json.Marshal(g)
	wb, _ := json.Marshal(w)
	if string(gb) != string(wb) {
		t.Errorf("stored properties\n got: %s\nwant: %s", gb, wb)
	}
}

func TestEventDefaultPolicy(t *testing.T) {
	s := newStage(t, "", privacy.Config{})
	e := &event.Event{
		Project:    1,
		Name:       "Signed up",
		DistinctID: "user-42",
		InsertID:   "a1b2c3d4e5",
		Props: props(t, `{
			"$device_id": "dev-9",
			"$user_id": "user-42",
			"organization_id": "org-7",
			"$email": "Alice@Example.com",
			"name": "Alice Example",
			"plan": "pro",
			"note": "write to alice@example.com or +1 415 555 0100",
			"$current_url": "https://app.example.com/keys/sk_abc123def456?utm_source=news&token=s3cr3t#frag",
			"$referrer": "https://www.google.com/search?q=alice",
			"price": 12.5,
			"cart": [{"sku": "A-1", "buyer": "bob@example.org"}, "4111 1111 1111 1111"],
			"version": "1.2.3.4",
			"uuid": "123e4567-e89b-12d3-a456-426614174000"
		}`),
	}
	keep, err := s.Event(context.Background(), nil, e)
	if err != nil || !keep {
		t.Fatalf("Event = %v, %v", keep, err)
	}
	if want := pseudo(t, 0, pseudonym.FieldDistinctID, "user-42"); e.DistinctID != want {
		t.Errorf("distinct_id = %q, want %q", e.DistinctID, want)
	}
	if e.InsertID != "a1b2c3d4e5" {
		t.Errorf("random $insert_id changed to %q", e.InsertID)
	}
	sameJSON(t, propsJSON(e.Props), `{
		"$device_id": "`+pseudo(t, 0, pseudonym.FieldDistinctID, "dev-9")+`",
		"$user_id": "`+pseudo(t, 0, pseudonym.FieldDistinctID, "user-42")+`",
		"organization_id": "`+pseudo(t, 0, pseudonym.GroupField("organization_id"), "org-7")+`",
		"plan": "pro",
		"note": "write to [email] or [phone]",
		"$current_url": "https://app.example.com/keys/:id?utm_source=news",
		"$referrer": "www.google.com",
		"price": 12.5,
		"cart": [{"sku": "A-1", "buyer": "[email]"}, "[card]"],
		"version": "1.2.3.4",
		"uuid": "123e4567-e89b-12d3-a456-426614174000"
	}`)

	counts := map[string]int64{}
	for _, c := range s.Counts() {
		if c.Project != 1 || c.Event != "Signed up" {
			t.Errorf("count for %d/%q", c.Project, c.Event)
		}
		counts[c.Property+" "+c.Reason] += c.Count
	}
	for _, want := range []string{
		"distinct_id pseudonymized", "$device_id pseudonymized", "$user_id pseudonymized",
		"organization_id pseudonymized", "$email dropped_personal_field", "name dropped_personal_field",
		"note pii_email_redact", "note pii_phone_redact", "$current_url url_query_removed",
		"$current_url url_fragment_removed", "$current_url url_path_templated",
		"$referrer url_reduced_to_host", "cart pii_email_redact", "cart pii_card_redact",
	} {
		if counts[want] != 1 {
			t.Errorf("count %q = %d, want 1 (all: %v)", want, counts[want], counts)
		}
	}
	if len(counts) != 14 {
		t.Errorf("unexpected counters: %v", counts)
	}
	if len(s.Counts()) != 0 {
		t.Error("Counts did not reset")
	}
}

func TestClassActions(t *testing.T) {
	for _, tc := range []struct {
		action string
		keep   bool
		want   string
	}{
		{"redact", true, `{"a": "mail [email] now", "b": "ok"}`},
		{"pseudonymize", true, `{"a": "mail ` + pseudo(t, 0, pseudonym.FieldEmail, "X@Example.com") + ` now", "b": "ok"}`},
		{"drop_property", true, `{"b": "ok"}`},
		{"drop_event", false, ``},
	} {
		t.Run(tc.action, func(t *testing.T) {
			s := newStage(t, `{"classes": {"email": "`+tc.action+`", "phone": "redact", "ipv4": "redact", "ipv6": "redact",
				"card": "redact", "iban": "redact", "jwt": "redact", "secret_key": "redact", "bearer_token": "redact", "url_credential": "redact"}}`, privacy.Config{})
			e := &event.Event{Project: 1, Name: "x", Props: props(t, `{"a": "mail X@Example.com now", "b": "ok"}`)}
			keep, err := s.Event(context.Background(), nil, e)
			if err != nil || keep != tc.keep {
				t.Fatalf("Event = %v, %v; want keep %v", keep, err, tc.keep)
			}
			if keep {
				sameJSON(t, propsJSON(e.Props), tc.want)
			}
		})
	}
}

func TestEventName(t *testing.T) {
	s := newStage(t, "", privacy.Config{})
	e := &event.Event{Project: 1, Name: "Invited bob@example.com"}
	if keep, _ := s.Event(context.Background(), nil, e); !keep || e.Name != "Invited [email]" {
		t.Errorf("name = %q (keep %v)", e.Name, keep)
	}
	for _, c := range s.Counts() {
		if strings.Contains(c.Event, "bob") {
			t.Errorf("count names the raw event: %+v", c)
		}
	}
	s2 := newStage(t, `{"classes": {"email": "drop_event", "phone": "redact", "ipv4": "redact", "ipv6": "redact",
		"card": "redact", "iban": "redact", "jwt": "redact", "secret_key": "redact", "bearer_token": "redact", "url_credential": "redact"}}`, privacy.Config{})
	e = &event.Event{Project: 1, Name: "Invited bob@example.com"}
	if keep, _ := s2.Event(context.Background(), nil, e); keep {
		t.Error("event kept despite drop_event")
	}
}

func TestKeysWithPII(t *testing.T) {
	s := newStage(t, "", privacy.Config{})
	e := &event.Event{Project: 1, Name: "x", Props: props(t, `{"carol@example.com": 1, "ok": {"dave@example.com": true, "n": 1}}`)}
	if keep, _ := s.Event(context.Background(), nil, e); !keep {
		t.Fatal("dropped")
	}
	sameJSON(t, propsJSON(e.Props), `{"ok": {"n": 1}}`)
	for _, c := range s.Counts() {
		if strings.Contains(c.Property, "@") {
			t.Errorf("count names a raw key: %+v", c)
		}
	}
}

func TestIdentifierShapes(t *testing.T) {
	s := newStage(t, `{"group_keys": ["company"], "identifiers": ["user_id", "customer"]}`, privacy.Config{})
	e := &event.Event{Project: 1, Name: "x", Props: props(t, `{
		"company": ["acme", "globex"], "User_ID": 42, "customer": {"id": 1}, "$distinct_ids": ["a", "b"]}`)}
	if keep, _ := s.Event(context.Background(), nil, e); !keep {
		t.Fatal("dropped")
	}
	g := pseudonym.GroupField("company")
	d := pseudonym.FieldDistinctID
	sameJSON(t, propsJSON(e.Props), `{
		"company": ["`+pseudo(t, 0, g, "acme")+`", "`+pseudo(t, 0, g, "globex")+`"],
		"User_ID": "`+pseudo(t, 0, d, "42")+`",
		"$distinct_ids": ["`+pseudo(t, 0, d, "a")+`", "`+pseudo(t, 0, d, "b")+`"]}`)
}

func TestCardAsNumberAndInsertID(t *testing.T) {
	s := newStage(t, "", privacy.Config{})
	e := &event.Event{Project: 1, Name: "x", InsertID: "eve@example.com",
		Props: props(t, `{"cc": 4111111111111111, "ts": 1763900000000, "n": 12}`)}
	if keep, _ := s.Event(context.Background(), nil, e); !keep {
		t.Fatal("dropped")
	}
	sameJSON(t, propsJSON(e.Props), `{"cc": "[card]", "ts": 1763900000000, "n": 12}`)
	if !pseudonym.IsPseudonym(e.InsertID) {
		t.Errorf("$insert_id with an e-mail kept as %q", e.InsertID)
	}
}

func TestEpoch(t *testing.T) {
	s := newStage(t, `{"epoch": 3}`, privacy.Config{})
	e := &event.Event{Project: 1, Name: "x", DistinctID: "u"}
	s.Event(context.Background(), nil, e)
	if want := pseudo(t, 3, pseudonym.FieldDistinctID, "u"); e.DistinctID != want || !strings.HasPrefix(want, "p3_") {
		t.Errorf("distinct_id = %q, want %q", e.DistinctID, want)
	}
	if e.DistinctID == pseudo(t, 0, pseudonym.FieldDistinctID, "u") {
		t.Error("epochs share pseudonyms")
	}
}

func TestPolicyReload(t *testing.T) {
	src := &policies{}
	now := time.Unix(1_800_000_000, 0)
	s, err := privacy.NewStage(privacy.Config{Keys: testKeys(t), Policies: src, PolicyTTL: 5 * time.Second,
		Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	run := func() []event.Field {
		e := &event.Event{Project: 1, Name: "x", Props: props(t, `{"plan": "pro"}`)}
		s.Event(context.Background(), nil, e)
		return e.Props
	}
	if p := run(); len(p) != 1 {
		t.Fatalf("default policy dropped plan: %v", p)
	}
	src.set(1, `{"drop": ["plan"]}`)
	if p := run(); len(p) != 1 {
		t.Fatal("policy reloaded before its TTL")
	}
	now = now.Add(6 * time.Second)
	if p := run(); len(p) != 0 {
		t.Fatalf("new policy not applied after the TTL: %v", p)
	}
	src.set(1, `{"classes": {"email": "burn"}}`)
	s.Forget(1)
	if _, err := s.Event(context.Background(), nil, &event.Event{Project: 1}); err == nil {
		t.Error("invalid stored policy accepted")
	}
}

func TestGeo(t *testing.T) {
	path := geotest.WriteDB(t, t.TempDir(), geotest.GeoLite2City, map[string]geo.Location{
		"192.0.2.0/24":  {CountryCode: "DE", Region: "Bavaria", City: "Munich"},
		"2001:db8::/32": {CountryCode: "FR", Region: "Brittany", City: "Rennes"},
	})
	db, err := geo.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, tc := range []struct {
		name, policy, props string
		req                 *privacy.Request
		want                string
	}{
		{"ip property", "", `{"ip": "192.0.2.9", "$city": "Spoofed"}`, nil, `{"mp_country_code": "DE"}`},
		{"request ip", "", `{}`, &privacy.Request{IP: netip.MustParseAddr("2001:db8::1"), Geolocate: true}, `{"mp_country_code": "FR"}`},
		{"ip=0", "", `{}`, &privacy.Request{IP: netip.MustParseAddr("2001:db8::1")}, `{}`},
		{"city opt-in", `{"geo": "city"}`, `{"ip": "192.0.2.9"}`, nil, `{"mp_country_code": "DE", "$region": "Bavaria", "$city": "Munich"}`},
		{"geo off", `{"geo": "off"}`, `{"ip": "192.0.2.9"}`, nil, `{}`},
		{"unknown address", "", `{"ip": "198.51.100.1"}`, nil, `{}`},
		{"not an address", "", `{"ip": "nope"}`, nil, `{}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newStage(t, tc.policy, privacy.Config{Geo: db})
			e := &event.Event{Project: 1, Name: "x", Props: props(t, tc.props)}
			if keep, err := s.Event(context.Background(), tc.req, e); !keep || err != nil {
				t.Fatal(keep, err)
			}
			sameJSON(t, propsJSON(e.Props), tc.want)
		})
	}
}

func TestUserAgents(t *testing.T) {
	const chrome = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/142.0.0.0 Safari/537.36"
	const headless = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/142.0.0.0 Safari/537.36"
	s := newStage(t, "", privacy.Config{})
	e := &event.Event{Project: 1, Name: "x", Props: props(t, `{"ua": "`+chrome+`", "$os": "Windows"}`)}
	s.Event(context.Background(), &privacy.Request{UserAgent: chrome}, e)
	sameJSON(t, propsJSON(e.Props), `{"ua": "Chrome 142 (Windows, desktop)", "$os": "Windows", "$browser": "Chrome", "$browser_version": 142}`)

	e = &event.Event{Project: 1, Name: "x"}
	if keep, _ := s.Event(context.Background(), &privacy.Request{UserAgent: headless}, e); !keep {
		t.Fatal("bot dropped by default")
	}
	sameJSON(t, propsJSON(e.Props), `{"$bot": true}`)
	s = newStage(t, `{"drop_bots": true}`, privacy.Config{})
	if keep, _ := s.Event(context.Background(), &privacy.Request{UserAgent: headless}, &event.Event{Project: 1, Name: "x"}); keep {
		t.Error("bot kept with drop_bots")
	}
}

func TestContract(t *testing.T) {
	s := newStage(t, `{"contract": {"events": {"Purchase": {"properties": {"amount": "number", "sku": "string", "meta": "any"}}},
		"common_properties": {"$current_url": "string"}}}`, privacy.Config{})
	e := &event.Event{Project: 1, Name: "Purchase", Props: props(t,
		`{"amount": "12", "sku": "A", "meta": [1], "coupon": "X", "$current_url": "https://a.example/p", "gone": null}`)}
	if keep, _ := s.Event(context.Background(), nil, e); !keep {
		t.Fatal("declared event dropped")
	}
	sameJSON(t, propsJSON(e.Props), `{"sku": "A", "meta": [1], "$current_url": "https://a.example/p", "gone": null}`)
	if keep, _ := s.Event(context.Background(), nil, &event.Event{Project: 1, Name: "Other"}); keep {
		t.Error("undeclared event kept")
	}
	reasons := map[string]bool{}
	for _, c := range s.Counts() {
		reasons[c.Property+" "+c.Reason] = true
	}
	for _, want := range []string{"amount contract_wrong_type", "coupon contract_undeclared_property", "$event contract_undeclared_event"} {
		if !reasons[want] {
			t.Errorf("no count %q in %v", want, reasons)
		}
	}
}

func TestProfilesAndLinks(t *testing.T) {
	s := newStage(t, "", privacy.Config{})
	u := &event.ProfileUpdate{Project: 1, DistinctID: "user-42", Ops: []event.ProfileOp{
		{Op: "$set", Value: event.Value{Kind: event.Object, Fields: props(t, `{"$email": "a@example.com", "plan": "pro", "bio": "call +44 20 7946 0018"}`)}},
		{Op: "$unset", Value: event.Value{Kind: event.Array, Items: []event.Value{event.StringValue("x@example.com"), event.StringValue("plan")}}},
		{Op: "$delete", Value: event.Value{Kind: event.String, Str: ""}},
	}}
	if keep, _ := s.Profile(context.Background(), nil, u); !keep {
		t.Fatal("profile dropped")
	}
	if u.DistinctID != pseudo(t, 0, pseudonym.FieldDistinctID, "user-42") {
		t.Errorf("distinct id %q", u.DistinctID)
	}
	sameJSON(t, propsJSON(u.Ops[0].Value.Fields), `{"plan": "pro", "bio": "call [phone]"}`)
	if got := string(u.Ops[1].Value.AppendJSON(nil)); got != `["plan"]` {
		t.Errorf("$unset = %s", got)
	}
	g := &event.ProfileUpdate{Project: 1, GroupKey: "company", GroupID: "acme"}
	s.Profile(context.Background(), nil, g)
	if g.GroupID != pseudo(t, 0, pseudonym.GroupField("company"), "acme") || g.GroupKey != "company" {
		t.Errorf("group %q/%q", g.GroupKey, g.GroupID)
	}
	l := &event.IdentityLink{Project: 1, From: "dev-9", To: "user-42"}
	s.Link(context.Background(), l)
	if l.From != pseudo(t, 0, pseudonym.FieldDistinctID, "dev-9") || l.To != pseudo(t, 0, pseudonym.FieldDistinctID, "user-42") {
		t.Errorf("link %q → %q", l.From, l.To)
	}
}

func TestExplain(t *testing.T) {
	s := newStage(t, "", privacy.Config{})
	e := &event.Event{Project: 1, Name: "x", DistinctID: "u", Props: props(t, `{"a": {"b": ["ok", "frank@example.com"]}, "$name": "Frank"}`)}
	keep, changes, err := s.Explain(context.Background(), nil, e)
	if err != nil || !keep {
		t.Fatal(keep, err)
	}
	want := []privacy.Change{
		{Property: "distinct_id", Reason: privacy.ReasonPseudonymized},
		{Property: "a.b[1]", Reason: "pii_email_redact"},
		{Property: "$name", Reason: privacy.ReasonPersonalField},
	}
	if !slices.Equal(changes, want) {
		t.Errorf("changes = %v, want %v", changes, want)
	}
	if len(s.Counts()) != 0 {
		t.Error("Explain counted")
	}
}

// FuzzStage checks the stage's promise on arbitrary strings: whatever it
// keeps holds nothing the scanner recognises, and it never panics.
func FuzzStage(f *testing.F) {
	for _, s := range []string{"plain", "a@b.co", "https://u:p@h.example/x?token=abc", "+1 415 555 0100",
		"4111 1111 1111 1111", "Mozilla/5.0 (X11) Gecko", "sk-proj-abcdefghijklmnopqrstuvwxyz012345", "::1"} {
		f.Add(s, s)
	}
	keys := testKeys(f)
	st, err := privacy.NewStage(privacy.Config{Keys: keys})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, key, val string) {
		mk := func() *event.Event {
			return &event.Event{Project: 1, Name: val, DistinctID: val, Props: []event.Field{
				{Key: key, Value: event.StringValue(val)},
				{Key: "$current_url", Value: event.StringValue(val)},
				{Key: "$referrer", Value: event.StringValue(val)},
				{Key: "n", Value: event.Value{Kind: event.Object, Fields: []event.Field{{Key: key, Value: event.Value{Kind: event.Array, Items: []event.Value{event.StringValue(val)}}}}}},
			}}
		}
		e := mk()
		keep, err := st.Event(context.Background(), nil, e)
		if err != nil {
			t.Fatal(err)
		}
		// Within one request the stage reuses work between events: the
		// outcome must be the same as without.
		req := &privacy.Request{}
		for i := 0; i < 3; i++ {
			e2 := mk()
			keep2, _ := st.Event(context.Background(), req, e2)
			if keep2 != keep || keep && (e2.Name != e.Name || e2.DistinctID != e.DistinctID || propsJSON(e2.Props) != propsJSON(e.Props)) {
				t.Fatalf("event %d of a request: kept %v %s, alone: kept %v %s", i, keep2, propsJSON(e2.Props), keep, propsJSON(e.Props))
			}
		}
		if !keep {
			return
		}
		check := func(s string) {
			if m := scanner.Find(s); len(m) > 0 {
				t.Fatalf("stored %q still holds %v", s, m)
			}
		}
		check(e.Name)
		var walk func(v event.Value)
		walk = func(v event.Value) {
			switch v.Kind {
			case event.String:
				check(v.Str)
			case event.Array:
				for _, it := range v.Items {
					walk(it)
				}
			case event.Object:
				for _, f := range v.Fields {
					check(f.Key)
					walk(f.Value)
				}
			}
		}
		walk(event.Value{Kind: event.Object, Fields: e.Props})
	})
}

var scanner = pii.NewScanner()

// TestRequestReuse: within one request the stage replays its work on
// repeated URLs and ids; the outcome and the counts must be as if it had not.
func TestRequestReuse(t *testing.T) {
	s := newStage(t, "", privacy.Config{})
	req := &privacy.Request{}
	for i := 0; i < 3; i++ {
		e := &event.Event{Project: 1, Name: "x", DistinctID: "u", Props: props(t,
			`{"$current_url": "https://a.example/p/123?token=abc&utm_source=x", "$referrer": "https://b.example/q?x=1", "link": "https://c.example/?mail=joe@example.com"}`)}
		if keep, err := s.Event(context.Background(), req, e); !keep || err != nil {
			t.Fatal(keep, err)
		}
		sameJSON(t, propsJSON(e.Props), `{"$current_url": "https://a.example/p/:id?utm_source=x", "$referrer": "b.example", "link": "https://c.example/"}`)
		if e.DistinctID != pseudo(t, 0, pseudonym.FieldDistinctID, "u") {
			t.Fatalf("distinct_id %q", e.DistinctID)
		}
	}
	got := map[string]int64{}
	for _, c := range s.Counts() {
		got[c.Property+" "+c.Reason] = c.Count
	}
	want := map[string]int64{"distinct_id pseudonymized": 3, "$current_url url_query_removed": 3, "$current_url url_path_templated": 3,
		"$referrer url_reduced_to_host": 3, "link url_query_removed": 3}
	for k, n := range want {
		if got[k] != n {
			t.Errorf("%s = %d, want %d (all %v)", k, got[k], n, got)
		}
	}
	if len(got) != len(want) {
		t.Errorf("counts %v, want %v", got, want)
	}
	// A drop_property outcome is replayed as a drop.
	s = newStage(t, `{"classes": {"email": "redact", "phone": "redact", "ipv4": "redact", "ipv6": "redact", "card": "redact", "iban": "redact",
		"jwt": "redact", "secret_key": "redact", "bearer_token": "redact", "url_credential": "drop_property"}}`, privacy.Config{})
	req = &privacy.Request{}
	for i := 0; i < 2; i++ {
		e := &event.Event{Project: 1, Name: "x", Props: props(t, `{"u": "https://joe:pw@c.example/"}`)}
		s.Event(context.Background(), req, e)
		if len(e.Props) != 1 || e.Props[0].Value.Str != "https://c.example/" {
			t.Errorf("event %d: %s", i, propsJSON(e.Props))
		}
	}
}
