// Package e2e runs the real veil binary against real clients: the official
// Mixpanel SDKs (Go, Node, browser in Chromium), a crash-test load
// generator, and the CLI. Tests that need Node or Chromium skip when they
// are missing, unless VEIL_E2E_REQUIRE=1 (set by scripts/test.sh), where a
// missing dependency fails the test.
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/veil-analytics/veil/internal/privacy/pseudonym"
)

// veilBin is the binary under test, built once by TestMain.
var veilBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "veil-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	// Every veil command the tests run that needs the master key is given
	// --master-key-file in a test's own temporary directory. Should one be
	// missed, veil's default (the user configuration directory) must not be
	// the developer's: point it at a guard directory, and fail the run if a
	// key appears there.
	guard := filepath.Join(dir, "config-guard")
	if err := os.Setenv("XDG_CONFIG_HOME", guard); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	veilBin = filepath.Join(dir, "veil")
	args := []string{"build", "-o", veilBin}
	if raceEnabled {
		args = append(args, "-race")
	}
	cmd := exec.Command("go", append(args, "../../cmd/veil")...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build veil:", err)
		os.Exit(1)
	}
	code := m.Run()
	if _, err := os.Stat(filepath.Join(guard, "veil", "master.key")); err == nil {
		fmt.Fprintln(os.Stderr, "FAIL: a veil command ran without --master-key-file and created a master key in the default location")
		code = 1
	}
	os.RemoveAll(dir)
	os.Exit(code)
}

// requireTool returns the path of a tool the test needs, skipping (or,
// under VEIL_E2E_REQUIRE=1, failing) when it is missing.
func requireTool(t *testing.T, name string, candidates ...string) string {
	t.Helper()
	for _, c := range append(candidates, name) {
		if p, err := exec.LookPath(c); err == nil {
			return p
		}
	}
	if os.Getenv("VEIL_E2E_REQUIRE") == "1" {
		t.Fatalf("%s is required (VEIL_E2E_REQUIRE=1) but not installed; scripts/test.sh installs it", name)
	}
	t.Skipf("%s not installed", name)
	return ""
}

// requireNodeModule returns test/e2e/js/node_modules/<name>, skipping or
// failing like requireTool when npm install has not run.
func requireNodeModule(t *testing.T, name string) string {
	t.Helper()
	p, _ := filepath.Abs(filepath.Join("js", "node_modules", name))
	if _, err := os.Stat(p); err != nil {
		if os.Getenv("VEIL_E2E_REQUIRE") == "1" {
			t.Fatalf("npm module %s is required but missing: run (cd test/e2e/js && npm install)", name)
		}
		t.Skipf("npm module %s not installed", name)
	}
	return p
}

// veil runs a veil CLI command and returns its stdout.
func veil(t *testing.T, args ...string) []byte {
	t.Helper()
	var stderr bytes.Buffer
	cmd := exec.Command(veilBin, args...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("veil %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return out
}

// Server is a "veil serve" child process on its own data directory.
type Server struct {
	t       *testing.T
	Data    string
	KeyFile string // --master-key-file: in its own temporary directory, outside Data
	Addr    string
	ID      int64
	Token   string
	Secret  string
	Args    []string // extra serve flags
	TLS     bool     // serve HTTPS with a self-signed certificate
	cmd     *exec.Cmd
	waitErr chan error
	log     *syncBuffer

	pseudoOnce sync.Once
	pseudo     *pseudonym.Pseudonymizer
}

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

// NewServer creates a data directory with one project and starts veil serve.
func NewServer(t *testing.T, extraArgs ...string) *Server {
	t.Helper()
	s := &Server{t: t, Data: t.TempDir(), KeyFile: filepath.Join(t.TempDir(), "master.key"), Args: extraArgs}
	var p struct {
		ID     int64  `json:"id"`
		Token  string `json:"token"`
		Secret string `json:"secret"`
	}
	if err := json.Unmarshal(veil(t, "project", "create", "--data", s.Data, "--name", "e2e", "--json"), &p); err != nil {
		t.Fatal(err)
	}
	s.ID, s.Token, s.Secret = p.ID, p.Token, p.Secret
	s.Start()
	t.Cleanup(func() { s.Stop() })
	return s
}

// Start starts (or restarts) the server on the same address and data.
func (s *Server) Start() {
	s.t.Helper()
	if s.Addr == "" {
		s.Addr = freeAddr(s.t)
	}
	args := append([]string{"serve", "--data", s.Data, "--addr", s.Addr, "--rate-limit", "0", "--master-key-file", s.KeyFile}, s.Args...)
	if s.TLS {
		cert, key := selfSignedCert(s.t, filepath.Join(s.Data, "tls"))
		args = append(args, "--tls-cert", cert, "--tls-key", key)
	}
	s.log = &syncBuffer{}
	s.cmd = exec.Command(veilBin, args...)
	s.cmd.Stdout, s.cmd.Stderr = s.log, s.log
	if err := s.cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	s.waitErr = make(chan error, 1)
	go func(c *exec.Cmd, ch chan error) { ch <- c.Wait() }(s.cmd, s.waitErr)
	deadline := time.Now().Add(30 * time.Second)
	client := s.Client()
	for {
		resp, err := client.Get(s.URL() + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		select {
		case err := <-s.waitErr:
			s.cmd = nil // already reaped: Stop must not wait for it again
			s.t.Fatalf("veil serve exited during start-up: %v\n%s", err, s.log.String())
		default:
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("veil serve not healthy after 30s:\n%s", s.log.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// URL is the server's base URL.
func (s *Server) URL() string {
	if s.TLS {
		return "https://" + s.Addr
	}
	return "http://" + s.Addr
}

// Client is an HTTP client that trusts the server's certificate.
func (s *Server) Client() *http.Client {
	if !s.TLS {
		return &http.Client{Timeout: 30 * time.Second}
	}
	return &http.Client{Timeout: 30 * time.Second, Transport: insecureTransport()}
}

// Kill SIGKILLs the server and waits for it to die.
func (s *Server) Kill() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	s.cmd.Process.Signal(syscall.SIGKILL)
	<-s.waitErr
	s.cmd = nil
}

// Stop sends SIGTERM and waits for a clean exit; it returns the exit error.
func (s *Server) Stop() error {
	if s.cmd == nil || s.cmd.Process == nil {
		return nil
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	var err error
	select {
	case err = <-s.waitErr:
	case <-time.After(60 * time.Second):
		s.cmd.Process.Kill()
		err = <-s.waitErr
		err = fmt.Errorf("did not stop within 60s after SIGTERM (%v)", err)
	}
	s.cmd = nil
	return err
}

// Pseudonyms is the project's pseudonymizer under the key the server
// created in KeyFile, for the default policy's key epoch (0): what the
// privacy stage stores in place of an identity.
func (s *Server) Pseudonyms() *pseudonym.Pseudonymizer {
	s.t.Helper()
	s.pseudoOnce.Do(func() {
		key, created, err := pseudonym.LoadOrCreateMasterKey(s.KeyFile, s.Data)
		if err != nil {
			s.t.Fatalf("master key: %v", err)
		}
		if created {
			s.t.Fatalf("the server did not create its master key %s", s.KeyFile)
		}
		s.pseudo = pseudonym.NewKeyring(key).Project(s.ID, 0)
	})
	if s.pseudo == nil {
		s.t.Fatalf("no pseudonymizer (loading the master key failed before)")
	}
	return s.pseudo
}

// DistinctID is what the server stores for the distinct id raw: its
// pseudonym. $device_id, $user_id, alias and the like share the domain.
func (s *Server) DistinctID(raw string) string {
	s.t.Helper()
	return s.Pseudonyms().Pseudonym(pseudonym.FieldDistinctID, raw)
}

// GroupID is what the server stores for the id of a group of group key key.
func (s *Server) GroupID(key, raw string) string {
	s.t.Helper()
	return s.Pseudonyms().Pseudonym(pseudonym.GroupField(key), raw)
}

// Log is what the server printed.
func (s *Server) Log() string { return s.log.String() }

// Record is one line of "veil events --kind all".
type Record map[string]any

// Props returns an event record's properties.
func (r Record) Props() map[string]any {
	p, _ := r["properties"].(map[string]any)
	return p
}

// Records reads what the data directory stores for the project: kind is
// event, profile, identity or all.
func (s *Server) Records(kind string) []Record {
	s.t.Helper()
	return parseRecords(s.t, veil(s.t, "events", "--data", s.Data, "--project", fmt.Sprint(s.ID), "--kind", kind, "--json"))
}

// parseRecords reads what "veil events" printed: one JSON object a line.
func parseRecords(t *testing.T, out []byte) []Record {
	t.Helper()
	var recs []Record
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var r Record
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("veil events printed a bad line %q: %v", sc.Text(), err)
		}
		recs = append(recs, r)
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("read what veil events printed: %v", err)
	}
	return recs
}

// WaitRecords polls until at least n records of kind are stored.
func (s *Server) WaitRecords(kind string, n int, timeout time.Duration) []Record {
	s.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		recs := s.Records(kind)
		if len(recs) >= n || time.Now().After(deadline) {
			return recs
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// testContext is a context bounded by the test's deadline.
func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

var _ = runtime.NumCPU
