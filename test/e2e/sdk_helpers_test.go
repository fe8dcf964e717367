package e2e

// Helpers shared by the SDK tests (sdk_go_test.go, sdk_node_test.go,
// browser_test.go): comparing stored records with what a test expects,
// where some values (receive times, random ids) can only be checked by
// shape, and reading the server's Prometheus counters.

import (
	"bufio"
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// recvWindow is the span of wall-clock time in which the server may have
// received what a test sent, in Unix milliseconds.
type recvWindow struct{ from, to int64 }

// openRecvWindow starts a recvWindow now; close it once the server has answered.
func openRecvWindow() *recvWindow { return &recvWindow{from: time.Now().UnixMilli()} }

func (w *recvWindow) close() { w.to = time.Now().UnixMilli() }

// valueMatcher checks a value a test cannot know exactly.
type valueMatcher struct {
	desc string
	ok   func(v any) bool
}

func (m valueMatcher) String() string { return "<" + m.desc + ">" }

// MarshalJSON shows a matcher in messages as its description.
func (m valueMatcher) MarshalJSON() ([]byte, error) { return json.Marshal(m.String()) }

// within matches a JSON number in [w.from, w.to].
func (w *recvWindow) within() valueMatcher {
	return valueMatcher{fmt.Sprintf("ms in [%d, %d]", w.from, w.to), func(v any) bool {
		f, ok := v.(float64)
		return ok && f == math.Trunc(f) && int64(f) >= w.from && int64(f) <= w.to
	}}
}

// atReceipt in an event's expected "time" means the server stamped the
// receive time: time must equal $veil_received_ms.
var atReceipt = valueMatcher{desc: "the receive time"}

// matchRE matches a string against a regular expression.
func matchRE(expr string) valueMatcher {
	re := regexp.MustCompile(expr)
	return valueMatcher{"string matching " + expr, func(v any) bool {
		s, ok := v.(string)
		return ok && re.MatchString(s)
	}}
}

// anyNumber matches a JSON number.
var anyNumber = valueMatcher{"a number", func(v any) bool { _, ok := v.(float64); return ok }}

// canonJSON turns v into what encoding/json decodes its JSON as, so that Go
// literals (ints, []string, structs) compare equal to decoded records.
func canonJSON(v any) any {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("canonJSON %#v: %v", v, err))
	}
	var out any
	if err := json.Unmarshal(b, &out); err != nil {
		panic(err)
	}
	return out
}

// diffJSON appends to out a line for each way got differs from want. Maps in
// want must hold exactly got's keys; matchers in want check by shape.
func diffJSON(path string, got, want any, out *[]string) {
	if path == "" {
		path = "."
	}
	switch w := want.(type) {
	case valueMatcher:
		if w.ok == nil || !w.ok(got) {
			*out = append(*out, fmt.Sprintf("%s: got %s, want %s", path, jsonText(got), w))
		}
		return
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			*out = append(*out, fmt.Sprintf("%s: got %s, want an object", path, jsonText(got)))
			return
		}
		keys := make([]string, 0, len(w)+len(g))
		for k := range w {
			keys = append(keys, k)
		}
		for k := range g {
			if _, ok := w[k]; !ok {
				keys = append(keys, k)
			}
		}
		sort.Strings(keys)
		for _, k := range keys {
			p := strings.TrimSuffix(path, ".") + "." + k
			gv, gok := g[k]
			wv, wok := w[k]
			switch {
			case !gok:
				*out = append(*out, fmt.Sprintf("%s: missing, want %s", p, jsonText(wv)))
			case !wok:
				*out = append(*out, fmt.Sprintf("%s: unexpected, got %s", p, jsonText(gv)))
			default:
				diffJSON(p, gv, wv, out)
			}
		}
		return
	case []any:
		g, ok := got.([]any)
		if !ok || len(g) != len(w) {
			*out = append(*out, fmt.Sprintf("%s: got %s, want %d items", path, jsonText(got), len(w)))
			return
		}
		for i := range w {
			diffJSON(fmt.Sprintf("%s[%d]", path, i), g[i], w[i], out)
		}
		return
	}
	if cw := canonJSON(want); !reflect.DeepEqual(got, cw) {
		*out = append(*out, fmt.Sprintf("%s: got %s, want %s", path, jsonText(got), jsonText(cw)))
	}
}

func jsonText(v any) string {
	if m, ok := v.(valueMatcher); ok {
		return m.String()
	}
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return fmt.Sprintf("%#v", v)
	}
	return strings.TrimSuffix(b.String(), "\n")
}

// resolveReceipt replaces atReceipt in want's properties.time by the
// record's own $veil_received_ms, after checking that exists.
func resolveReceipt(got Record, want map[string]any) map[string]any {
	props, ok := want["properties"].(map[string]any)
	if !ok {
		return want
	}
	if m, ok := props["time"].(valueMatcher); !ok || m.desc != atReceipt.desc {
		return want
	}
	cp := make(map[string]any, len(props))
	for k, v := range props {
		cp[k] = v
	}
	if r, ok := got.Props()["$veil_received_ms"].(float64); ok {
		cp["time"] = r
	} else {
		cp["time"] = valueMatcher{"the receive time, but $veil_received_ms is missing", func(any) bool { return false }}
	}
	w := make(map[string]any, len(want))
	for k, v := range want {
		w[k] = v
	}
	w["properties"] = cp
	return w
}

// recordDiff lists how got differs from want.
func recordDiff(got Record, want map[string]any) []string {
	var out []string
	diffJSON("", map[string]any(got), resolveReceipt(got, want), &out)
	return out
}

// matchRecords checks that got and want hold the same records, in any
// order, each exactly once. It reports a missing record with its
// differences from the closest stored one.
func matchRecords(t *testing.T, what string, got []Record, want []map[string]any) {
	t.Helper()
	used := make([]bool, len(got))
	var problems []string
	for _, w := range want {
		found := -1
		best, bestDiff := -1, []string(nil)
		for i, g := range got {
			if used[i] {
				continue
			}
			d := recordDiff(g, w)
			if len(d) == 0 {
				found = i
				break
			}
			if best < 0 || len(d) < len(bestDiff) {
				best, bestDiff = i, d
			}
		}
		if found >= 0 {
			used[found] = true
			continue
		}
		msg := fmt.Sprintf("missing %s", jsonText(w))
		if best >= 0 {
			msg += fmt.Sprintf("\n\tclosest stored record differs:\n\t\t%s", strings.Join(bestDiff, "\n\t\t"))
		}
		problems = append(problems, msg)
	}
	for i, g := range got {
		if !used[i] {
			problems = append(problems, fmt.Sprintf("unexpected %s", jsonText(g)))
		}
	}
	if len(problems) > 0 {
		t.Errorf("%s: stored records differ from the expected %d (stored %d):\n%s",
			what, len(want), len(got), strings.Join(problems, "\n"))
	}
}

// splitRecords sorts what "veil events --kind all" printed into events
// (without their "kind", as --kind event prints them), profile updates and
// identity links.
func splitRecords(t *testing.T, recs []Record) (events, profiles, links []Record) {
	t.Helper()
	for _, r := range recs {
		switch r["kind"] {
		case "event":
			delete(r, "kind")
			events = append(events, r)
		case "profile":
			profiles = append(profiles, r)
		case "identity":
			links = append(links, r)
		default:
			t.Errorf("veil events printed a record of unknown kind: %s", jsonText(r))
		}
	}
	return events, profiles, links
}

// counter reads one series of the server's /metrics (0 when absent).
// series is the name with its labels as Prometheus prints them, such as
// `veil_ingest_events_deduplicated_total{endpoint="track"}`.
func (s *Server) counter(t *testing.T, series string) float64 {
	t.Helper()
	resp, err := s.Client().Get(s.URL() + "/metrics")
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<16), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, series+" "); ok {
			v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			if err != nil {
				t.Fatalf("/metrics line %q: %v", line, err)
			}
			return v
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("read /metrics: %v", err)
	}
	return 0
}

// waitAccepted polls the server's counters (cheaper than listing the
// records) until each endpoint has accepted at least n records; it reports
// whether they did within timeout.
func (s *Server) waitAccepted(t *testing.T, want map[string]int, timeout time.Duration) bool {
	t.Helper()
	return pollUntil(timeout, func() bool {
		for ep, n := range want {
			if s.counter(t, fmt.Sprintf(`veil_ingest_records_accepted_total{endpoint=%q}`, ep)) < float64(n) {
				return false
			}
		}
		return true
	})
}

// pollUntil polls cond until it holds or timeout passes; it reports whether
// cond held.
func pollUntil(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(100 * time.Millisecond)
	}
}
