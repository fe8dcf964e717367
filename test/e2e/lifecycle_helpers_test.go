package e2e

// Helpers shared by crash_test.go and lifecycle_test.go.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// okVerbose is /track?verbose=1's answer when every record was accepted.
const okVerbose = `{"status":1,"error":null}`

// trackEvent is one event the tests send, and what they expect stored.
type trackEvent struct {
	Name       string
	DistinctID string
	TimeMS     int64
	InsertID   string
	Props      map[string]any // extra properties
}

// trackBody is a raw JSON array of events for /track, with token.
func trackBody(token string, events []trackEvent) []byte {
	items := make([]map[string]any, len(events))
	for i, e := range events {
		props := map[string]any{
			"token":       token,
			"distinct_id": e.DistinctID,
			"time":        e.TimeMS,
			"$insert_id":  e.InsertID,
		}
		for k, v := range e.Props {
			props[k] = v
		}
		items[i] = map[string]any{"event": e.Name, "properties": props}
	}
	b, err := json.Marshal(items)
	if err != nil {
		panic(err)
	}
	return b
}

// postBody sends body to path and returns the status and response body. An
// error means no complete answer arrived.
func postBody(ctx context.Context, c *http.Client, url, contentType string, body io.Reader) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, body)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", contentType)
	resp, err := c.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	rb, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, nil, err
	}
	return resp.StatusCode, rb, nil
}

// countByInsertID counts stored events per $insert_id, and returns the
// record of each (the last one seen).
func countByInsertID(recs []Record) (map[string]int, map[string]Record) {
	n := make(map[string]int, len(recs))
	last := make(map[string]Record, len(recs))
	for _, r := range recs {
		id, _ := r.Props()["$insert_id"].(string)
		n[id]++
		last[id] = r
	}
	return n, last
}

// checkStoredEvent reports how a stored record differs from what was sent,
// or "" if it matches. The distinct id is stored as its pseudonym, which
// s computes; the tests' other values pass the privacy stage unchanged.
func checkStoredEvent(s *Server, r Record, e trackEvent) string {
	p := r.Props()
	var diffs []string
	if r["event"] != e.Name {
		diffs = append(diffs, fmt.Sprintf("event %v, sent %q", r["event"], e.Name))
	}
	if want := s.DistinctID(e.DistinctID); p["distinct_id"] != want {
		diffs = append(diffs, fmt.Sprintf("distinct_id %v, sent %q (pseudonym %s)", p["distinct_id"], e.DistinctID, want))
	}
	if t, ok := p["time"].(float64); !ok || int64(t) != e.TimeMS {
		diffs = append(diffs, fmt.Sprintf("time %v, sent %d", p["time"], e.TimeMS))
	}
	for k, v := range e.Props {
		want, _ := json.Marshal(v)
		got, _ := json.Marshal(p[k])
		if !bytes.Equal(want, got) {
			diffs = append(diffs, fmt.Sprintf("%s %s, sent %s", k, got, want))
		}
	}
	return strings.Join(diffs, "; ")
}

// checkServerLog fails the test if a server log shows an error, a panic or
// a data race, or mentions torn-tail repair other than as a warning.
func checkServerLog(t *testing.T, what, log string) {
	t.Helper()
	for _, line := range strings.Split(log, "\n") {
		switch {
		case strings.Contains(line, "WARNING: DATA RACE"),
			strings.HasPrefix(line, "panic:"),
			strings.HasPrefix(line, "fatal error:"):
			t.Errorf("%s: server log shows a crash or race:\n%s", what, log)
			return
		case strings.Contains(line, "level=ERROR"), strings.Contains(line, `"level":"ERROR"`):
			t.Errorf("%s: server logged an error: %s", what, line)
		case strings.Contains(strings.ToLower(line), "torn") &&
			!strings.Contains(line, "level=WARN") && !strings.Contains(line, `"level":"WARN"`):
			t.Errorf("%s: torn-tail repair logged other than as a warning: %s", what, line)
		}
	}
}

// promSample is one Prometheus sample: a name, its labels and value.
type promSample struct {
	name   string
	labels map[string]string
	value  float64
}

// parseMetrics reads the Prometheus text exposition format.
func parseMetrics(t *testing.T, text string) []promSample {
	t.Helper()
	var out []promSample
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 1<<16), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		s := promSample{labels: map[string]string{}}
		rest := line
		if i := strings.IndexByte(line, '{'); i >= 0 {
			j := strings.LastIndexByte(line, '}')
			if j < i {
				t.Fatalf("bad metrics line %q", line)
			}
			s.name = line[:i]
			for _, pair := range splitLabels(line[i+1 : j]) {
				k, v, ok := strings.Cut(pair, "=")
				if !ok {
					t.Fatalf("bad label %q in metrics line %q", pair, line)
				}
				uq, err := strconv.Unquote(v)
				if err != nil {
					t.Fatalf("bad label value %q in metrics line %q", v, line)
				}
				s.labels[k] = uq
			}
			rest = strings.TrimSpace(line[j+1:])
		} else {
			name, r, ok := strings.Cut(line, " ")
			if !ok {
				t.Fatalf("bad metrics line %q", line)
			}
			s.name, rest = name, r
		}
		fields := strings.Fields(rest)
		if len(fields) == 0 {
			t.Fatalf("metrics line without a value: %q", line)
		}
		v, err := strconv.ParseFloat(fields[0], 64)
		if err != nil {
			t.Fatalf("bad value in metrics line %q: %v", line, err)
		}
		s.value = v
		out = append(out, s)
	}
	return out
}

// splitLabels splits `a="x",b="y,z"` on the commas between pairs.
func splitLabels(s string) []string {
	var out []string
	start, inQuote := 0, false
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++
		case '"':
			inQuote = !inQuote
		case ',':
			if !inQuote {
				out = append(out, s[start:i])
				start = i + 1
			}
		}
	}
	if start < len(s) {
		out = append(out, s[start:])
	}
	return out
}

// promValue returns the value of the sample with this name and exactly these
// labels, and whether it exists.
func promValue(samples []promSample, name string, labels map[string]string) (float64, bool) {
	for _, s := range samples {
		if s.name != name || len(s.labels) != len(labels) {
			continue
		}
		match := true
		for k, v := range labels {
			if s.labels[k] != v {
				match = false
				break
			}
		}
		if match {
			return s.value, true
		}
	}
	return 0, false
}

// seriesOf lists the label sets of every sample named name, for messages.
func seriesOf(samples []promSample, name string) string {
	var out []string
	for _, s := range samples {
		if s.name != name {
			continue
		}
		var kv []string
		for k, v := range s.labels {
			kv = append(kv, fmt.Sprintf("%s=%q", k, v))
		}
		sort.Strings(kv)
		out = append(out, fmt.Sprintf("{%s} %g", strings.Join(kv, ","), s.value))
	}
	if len(out) == 0 {
		return "(none)"
	}
	return strings.Join(out, " ")
}

// cliResult is what one veil command did.
type cliResult struct {
	stdout, stderr string
	code           int
}

// runCLI runs veil with args and extra environment variables, and returns
// its output and exit code. It fails the test only if veil cannot be run
// or does not finish within timeout.
func runCLI(t *testing.T, timeout time.Duration, env []string, args ...string) cliResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, veilBin, args...)
	cmd.Env = append(cleanEnv(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("veil %s did not finish within %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), timeout, stdout.String(), stderr.String())
	}
	code := 0
	if err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			t.Fatalf("run veil %s: %v", strings.Join(args, " "), err)
		}
		code = ee.ExitCode()
	}
	return cliResult{stdout.String(), stderr.String(), code}
}

// cleanEnv is this process's environment without VEIL_* variables, so a
// developer's settings cannot leak into the CLI under test.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "VEIL_") {
			env = append(env, kv)
		}
	}
	return env
}

// waitHealthy polls base/healthz until it answers 200 or timeout passes;
// exited, if not nil, reports an early exit of the process.
func waitHealthy(t *testing.T, base string, timeout time.Duration, exited <-chan error, log func() string) {
	t.Helper()
	c := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(timeout)
	for {
		resp, err := c.Get(base + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case err := <-exited:
			t.Fatalf("server exited before it was healthy: %v\n%s", err, log())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s/healthz not healthy after %v\n%s", base, timeout, log())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// restartServer is s.Start that, when start-up fails, leaves s stopped. The
// harness's Start fails the test after it has taken the child's exit
// status, but keeps s.cmd set, so the harness's own cleanup (Stop, which
// waits for that exit status again) would then block until the test
// binary's -timeout instead of letting the test fail.
func restartServer(t *testing.T, s *Server) {
	t.Helper()
	ok := false
	defer func() {
		if ok || s.cmd == nil {
			return
		}
		// Signal 0 fails with ErrProcessDone once the child was reaped;
		// otherwise it is running but never got healthy: kill it.
		if err := s.cmd.Process.Signal(syscall.Signal(0)); !errors.Is(err, os.ErrProcessDone) {
			s.cmd.Process.Kill()
			select {
			case <-s.waitErr:
			case <-time.After(10 * time.Second):
			}
		}
		s.cmd = nil
	}()
	s.Start()
	ok = true
}
