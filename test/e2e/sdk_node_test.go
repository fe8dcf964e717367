package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestSDKNode drives the official Node SDK (npm "mixpanel") with
// js/node_sdk.js against veil serve over HTTPS (the SDK sends the API
// secret, which /import needs, only over HTTPS), then checks what was
// stored, record by record.
func TestSDKNode(t *testing.T) {
	node := requireTool(t, "node", "nodejs")
	requireNodeModule(t, "mixpanel")
	// NewServer starts plain HTTP; restart the same project over HTTPS.
	s := NewServer(t)
	if err := s.Stop(); err != nil {
		t.Fatalf("stop: %v\n%s", err, s.Log())
	}
	s.TLS = true
	s.Start()

	host, port, err := net.SplitHostPort(s.Addr)
	if err != nil {
		t.Fatal(err)
	}
	base := time.Now().Truncate(time.Millisecond)
	ms := func(d time.Duration) int64 { return base.Add(-d).UnixMilli() }
	const hour, day = time.Hour, 24 * time.Hour

	ctx, cancel := context.WithTimeout(testContext(t), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, filepath.Join("js", "node_sdk.js"))
	// The SDK sends through HTTP(S)_PROXY when set; Veil is local.
	var env []string
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); !strings.EqualFold(k, "HTTP_PROXY") && !strings.EqualFold(k, "HTTPS_PROXY") {
			env = append(env, kv)
		}
	}
	cmd.Env = append(env,
		"MP_HOST="+host, "MP_PORT="+port, "MP_PROTOCOL=https",
		"MP_TOKEN="+s.Token, "MP_SECRET="+s.Secret,
		fmt.Sprintf("MP_BASE_MS=%d", base.UnixMilli()),
		"NODE_TLS_REJECT_UNAUTHORIZED=0", // the test's own self-signed certificate
		"NODE_NO_WARNINGS=1",
	)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	w := openRecvWindow()
	if err := cmd.Run(); err != nil {
		t.Fatalf("node js/node_sdk.js: %v\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
	}
	w.close()
	if stderr.Len() > 0 {
		t.Logf("node_sdk.js stderr:\n%s", stderr.String())
	}

	// Every callback got no error, and every call reported.
	var summary struct {
		Results []struct {
			Call  string  `json:"call"`
			Error *string `json:"error"`
		} `json:"results"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &summary); err != nil {
		t.Fatalf("node_sdk.js printed %q: %v", stdout.String(), err)
	}
	wantCalls := []string{
		"track", "track(time Date, $insert_id)", "track(time seconds)", "track($device_id)", "track($device_id, $user_id)",
		"track_batch(120)", "import", "import_batch",
		"people.set", "people.set($ignore_time)", "people.set_once", "people.increment", "people.append",
		"people.union", "people.remove", "people.unset", "people.track_charge", "people.delete_user",
		"groups.set", "alias",
	}
	var gotCalls []string
	for _, r := range summary.Results {
		gotCalls = append(gotCalls, r.Call)
		if r.Error != nil {
			t.Errorf("node SDK %s: callback error %q", r.Call, *r.Error)
		}
	}
	if jsonText(gotCalls) != jsonText(wantCalls) {
		t.Errorf("node SDK calls reported %v, want %v", gotCalls, wantCalls)
	}

	// One request per call, and 3 for the 120 batched events (50+50+20);
	// every /track record was stored (none dropped, none a duplicate).
	for ep, n := range map[string]float64{"track": 5 + 3 + 1, "import": 1 + 1, "engage": 10, "groups": 1} {
		if got := s.counter(t, fmt.Sprintf(`veil_ingest_requests_total{code="200",endpoint=%q}`, ep)); got != n {
			t.Errorf("/%s requests answered 200 = %v, want %v", ep, got, n)
		}
	}
	if got := s.counter(t, `veil_ingest_records_accepted_total{endpoint="track"}`); got != 5+120+1 {
		t.Errorf("/track records accepted = %v, want %d", got, 5+120+1)
	}

	// What was stored: what the privacy stage made of it (see TestSDKGo).
	events, profiles, links := splitRecords(t, s.Records("all"))
	id := s.DistinctID
	user := id("node-user-1")

	// Events. track and import add mp_lib and $lib_version; the batch calls
	// add only the token.
	ev := func(name string, props map[string]any) map[string]any {
		props["$veil_received_ms"] = w.within()
		return map[string]any{"event": name, "properties": props}
	}
	lib := func(props map[string]any) map[string]any {
		props["mp_lib"] = "node"
		props["$lib_version"] = "0.24.0"
		return props
	}
	want := []map[string]any{
		ev("node_signup", lib(map[string]any{
			"time": atReceipt, "distinct_id": user,
			"plan": "free", "emoji": "lift-off 🚀", "ratio": 1.5, "list": []any{1, "a"}, "nested": map[string]any{"k": "v"},
		})),
		ev("node_timed", lib(map[string]any{"time": ms(hour), "distinct_id": user, "$insert_id": "node-ins-0001"})),
		// A time in seconds is read as seconds.
		ev("node_timed_seconds", lib(map[string]any{"time": base.Add(-2*hour).Unix() * 1000, "distinct_id": user, "$insert_id": "node-ins-0002"})),
		ev("node_anonymous", lib(map[string]any{"time": atReceipt, "distinct_id": id("$device:node-dev-1"), "$device_id": id("node-dev-1")})),
		ev("node_login", lib(map[string]any{"time": atReceipt, "distinct_id": user, "$device_id": id("node-dev-1"), "$user_id": user})),
		ev("node_imported", lib(map[string]any{"time": ms(200 * day), "distinct_id": user, "$insert_id": "node-imp-0001", "source": "backfill", "$import": true})),
		ev("node_imported_batch", map[string]any{"time": ms(100 * day), "distinct_id": user, "$insert_id": "node-impb-0001", "$import": true}),
		ev("node_imported_batch", map[string]any{"time": base.Add(-101*day).Unix() * 1000, "distinct_id": user, "$insert_id": "node-impb-0002", "$import": true}),
		ev("node_imported_batch", map[string]any{"time": ms(102 * day), "distinct_id": user, "$insert_id": "node-impb-0003", "$import": true}),
		ev("$create_alias", lib(map[string]any{"time": atReceipt, "distinct_id": user, "alias": id("node-alias-1")})),
	}
	for i := range 120 {
		want = append(want, ev("node_bulk", map[string]any{
			"time": atReceipt, "distinct_id": user, "$insert_id": fmt.Sprintf("node-bulk-%d", i), "i": i,
		}))
	}
	matchRecords(t, "events", events, want)

	person := func(pid, op string, v any) map[string]any {
		return map[string]any{"kind": "profile", "$distinct_id": pid, "$time": w.within(), op: v}
	}
	ignoreTime := person(user, "$set", map[string]any{"last_seen_via": "cron"})
	ignoreTime["$ignore_time"] = true
	matchRecords(t, "profiles", profiles, []map[string]any{
		person(user, "$set", map[string]any{"plan": "pro", "motto": "to the moon 🚀"}), // $email dropped
		ignoreTime,
		person(user, "$set_once", map[string]any{"first_seen": "2024-01-01"}),
		person(user, "$add", map[string]any{"logins": 2}),
		person(user, "$append", map[string]any{"tags": "beta"}),
		person(user, "$union", map[string]any{"plans": []string{"free", "pro"}}),
		person(user, "$remove", map[string]any{"tags": "alpha"}),
		person(user, "$unset", []string{"old_prop"}),
		person(user, "$append", map[string]any{"$transactions": map[string]any{"sku": "sku-1", "$amount": 12.5}}),
		person(id("node-user-2"), "$delete", ""),
		// The group id is pseudonymised under its group key; name is dropped.
		{"kind": "profile", "$group_key": "company", "$group_id": s.GroupID("company", "acme-inc"), "$time": w.within(), "$set": map[string]any{"employees": 50}},
	})

	link := func(from, to, source string) map[string]any {
		return map[string]any{"kind": "identity", "from": from, "to": to, "source": source, "time": w.within()}
	}
	matchRecords(t, "identity links", links, []map[string]any{
		link(id("$device:node-dev-1"), user, "$device_id"),
		link(id("node-alias-1"), user, "$create_alias"),
	})
}
