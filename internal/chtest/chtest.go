// Package chtest starts a throwaway ClickHouse server for tests: one
// server process per call of Start, on free loopback ports, with its data
// in the test's temporary directory, killed when the test ends. Tests
// talk to it over the HTTP interface with plain net/http (TabSeparated),
// which works on every ClickHouse version, Debian's 18.16 included.
//
// When ClickHouse is not installed, Start skips the test, unless
// VEIL_E2E_REQUIRE=1 (set by scripts/test.sh), where it fails it.
package chtest

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// startTimeout bounds how long a server may take to answer /ping.
const startTimeout = 20 * time.Second

// Server is a running ClickHouse server.
type Server struct {
	// URL is the HTTP interface, e.g. http://127.0.0.1:41234.
	URL string
	// TCPPort is the native protocol's port (for clickhouse-client).
	TCPPort int
	// Dir holds the configuration and data.
	Dir string

	cmd    *exec.Cmd
	exited chan struct{} // closed when the process has exited
	out    *tailBuffer
	client *http.Client
}

// binary finds the server: clickhouse-server, or the single clickhouse
// binary with its "server" subcommand.
func binary() (path string, args []string, ok bool) {
	for _, c := range []string{"clickhouse-server", "/usr/sbin/clickhouse-server", "/usr/bin/clickhouse-server"} {
		if p, err := exec.LookPath(c); err == nil {
			return p, nil, true
		}
	}
	for _, c := range []string{"clickhouse", "/usr/bin/clickhouse"} {
		if p, err := exec.LookPath(c); err == nil {
			return p, []string{"server"}, true
		}
	}
	return "", nil, false
}

// Start starts a server for the test and registers its shutdown.
func Start(t testing.TB) *Server {
	t.Helper()
	bin, pre, ok := binary()
	if !ok {
		if os.Getenv("VEIL_E2E_REQUIRE") == "1" {
			t.Fatal("ClickHouse is required (VEIL_E2E_REQUIRE=1) but not installed: " +
				"apt-get install -y clickhouse-server clickhouse-client (scripts/test.sh does this)")
		}
		t.Skip("ClickHouse not installed (apt-get install -y clickhouse-server clickhouse-client)")
	}
	dir := t.TempDir()
	// The ports are picked free, then released for the server: another
	// process may take one meanwhile, so a server that exits at once is
	// retried on new ports.
	var lastErr error
	for try := 0; try < 3; try++ {
		s, err := start(bin, pre, filepath.Join(dir, fmt.Sprintf("ch%d", try)))
		if err == nil {
			t.Cleanup(func() {
				s.stop()
				if t.Failed() {
					t.Logf("clickhouse server output (tail):\n%s", s.out.String())
				}
			})
			return s
		}
		lastErr = err
		if !errors.Is(err, errExited) {
			break
		}
	}
	t.Fatalf("chtest: %v", lastErr)
	return nil
}

var errExited = errors.New("clickhouse server exited")

func start(bin string, pre []string, dir string) (*Server, error) {
	for _, d := range []string{"data", "tmp", "user_files", "format_schemas"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return nil, err
		}
	}
	ports, err := freePorts(2)
	if err != nil {
		return nil, err
	}
	tcp, httpPort := ports[0], ports[1]
	config := filepath.Join(dir, "config.xml")
	if err := os.WriteFile(config, []byte(configXML(dir, tcp, httpPort)), 0o644); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "users.xml"), []byte(usersXML), 0o644); err != nil {
		return nil, err
	}
	s := &Server{
		URL:     "http://127.0.0.1:" + strconv.Itoa(httpPort),
		TCPPort: tcp,
		Dir:     dir,
		out:     &tailBuffer{max: 64 << 10},
		client:  &http.Client{},
	}
	s.cmd = exec.Command(bin, append(pre, "--config-file="+config)...)
	s.cmd.Dir = dir
	s.cmd.Stdout, s.cmd.Stderr = s.out, s.out
	if err := s.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	exited := make(chan struct{})
	s.exited = exited
	go func() {
		s.cmd.Wait()
		close(exited)
	}()
	deadline := time.Now().Add(startTimeout)
	for {
		select {
		case <-exited:
			return nil, fmt.Errorf("%w during start-up (%v); its output:\n%s", errExited, s.cmd.ProcessState, s.out.String())
		default:
		}
		if s.ping() {
			return s, nil
		}
		if time.Now().After(deadline) {
			s.cmd.Process.Kill()
			<-exited
			return nil, fmt.Errorf("clickhouse server did not answer /ping within %v; its output:\n%s", startTimeout, s.out.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (s *Server) ping() bool {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.URL+"/ping", nil)
	if err != nil {
		return false
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode == http.StatusOK && strings.HasPrefix(string(b), "Ok")
}

// stop kills the server and waits for it.
func (s *Server) stop() {
	s.cmd.Process.Kill()
	select {
	case <-s.exited:
	case <-time.After(10 * time.Second):
	}
	s.client.CloseIdleConnections()
}

// freePorts returns n distinct free TCP ports on 127.0.0.1.
func freePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	var out []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		out = append(out, l.Addr().(*net.TCPAddr).Port)
	}
	return out, nil
}

// Exec runs a statement that returns no rows.
func (s *Server) Exec(ctx context.Context, sql string) error {
	_, err := s.post(ctx, nil, strings.NewReader(sql))
	return err
}

// Query runs a SELECT and returns its rows, each a slice of unescaped
// TabSeparated fields.
func (s *Server) Query(ctx context.Context, sql string) ([][]string, error) {
	body, err := s.post(ctx, nil, strings.NewReader(sql+"\nFORMAT TabSeparated"))
	if err != nil {
		return nil, err
	}
	if len(body) == 0 {
		return nil, nil
	}
	var rows [][]string
	for _, line := range strings.Split(strings.TrimSuffix(string(body), "\n"), "\n") {
		fields := strings.Split(line, "\t")
		for i, f := range fields {
			fields[i] = unescapeTSV(f)
		}
		rows = append(rows, fields)
	}
	return rows, nil
}

// Insert loads TabSeparated rows (one per line, fields escaped as
// ClickHouse's TabSeparated format wants) into table.
func (s *Server) Insert(ctx context.Context, table string, rows []byte) error {
	q := url.Values{"query": {"INSERT INTO " + table + " FORMAT TabSeparated"}}
	_, err := s.post(ctx, q, bytes.NewReader(rows))
	return err
}

func (s *Server) post(ctx context.Context, params url.Values, body io.Reader) ([]byte, error) {
	u := s.URL + "/"
	if len(params) > 0 {
		u += "?" + params.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, body)
	if err != nil {
		return nil, err
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("clickhouse: HTTP %d: %s", resp.StatusCode, strings.TrimSpace(string(b)))
	}
	return b, nil
}

// unescapeTSV undoes TabSeparated's backslash escapes.
func unescapeTSV(f string) string {
	if !strings.Contains(f, `\`) {
		return f
	}
	var b strings.Builder
	for i := 0; i < len(f); i++ {
		c := f[i]
		if c != '\\' || i+1 == len(f) {
			b.WriteByte(c)
			continue
		}
		i++
		switch f[i] {
		case 'n':
			b.WriteByte('\n')
		case 't':
			b.WriteByte('\t')
		case 'r':
			b.WriteByte('\r')
		case 'b':
			b.WriteByte('\b')
		case 'f':
			b.WriteByte('\f')
		case '0':
			b.WriteByte(0)
		default:
			b.WriteByte(f[i])
		}
	}
	return b.String()
}

// EscapeTSV escapes a field for TabSeparated input.
func EscapeTSV(f string) string {
	return tsvEscaper.Replace(f)
}

var tsvEscaper = strings.NewReplacer(`\`, `\\`, "\t", `\t`, "\n", `\n`, "\r", `\r`, "\x00", `\0`)

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (w *tailBuffer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.b = append(w.b, p...)
	if len(w.b) > w.max {
		w.b = append(w.b[:0], w.b[len(w.b)-w.max:]...)
	}
	return len(p), nil
}

func (w *tailBuffer) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return string(w.b)
}

// configXML is a minimal server configuration: loopback only, no
// interserver port, warnings logged to the console (captured), all paths
// under dir.
func configXML(dir string, tcp, httpPort int) string {
	var esc strings.Builder
	xml.EscapeText(&esc, []byte(dir))
	dir = esc.String()
	return `<?xml version="1.0"?>
<yandex>
    <logger>
        <level>warning</level>
        <console>1</console>
    </logger>
    <listen_host>127.0.0.1</listen_host>
    <tcp_port>` + strconv.Itoa(tcp) + `</tcp_port>
    <http_port>` + strconv.Itoa(httpPort) + `</http_port>
    <max_connections>64</max_connections>
    <keep_alive_timeout>3</keep_alive_timeout>
    <max_concurrent_queries>20</max_concurrent_queries>
    <uncompressed_cache_size>67108864</uncompressed_cache_size>
    <mark_cache_size>67108864</mark_cache_size>
    <path>` + dir + `/data/</path>
    <tmp_path>` + dir + `/tmp/</tmp_path>
    <user_files_path>` + dir + `/user_files/</user_files_path>
    <format_schema_path>` + dir + `/format_schemas/</format_schema_path>
    <users_config>` + dir + `/users.xml</users_config>
    <default_profile>default</default_profile>
    <default_database>default</default_database>
    <timezone>UTC</timezone>
    <mlock_executable>false</mlock_executable>
</yandex>
`
}

const usersXML = `<?xml version="1.0"?>
<yandex>
    <profiles>
        <default>
            <max_memory_usage>2000000000</max_memory_usage>
            <use_uncompressed_cache>0</use_uncompressed_cache>
        </default>
    </profiles>
    <users>
        <default>
            <password></password>
            <networks><ip>127.0.0.1</ip><ip>::1</ip></networks>
            <profile>default</profile>
            <quota>default</quota>
        </default>
    </users>
    <quotas>
        <default>
            <interval>
                <duration>3600</duration>
                <queries>0</queries><errors>0</errors><result_rows>0</result_rows>
                <read_rows>0</read_rows><execution_time>0</execution_time>
            </interval>
        </default>
    </quotas>
</yandex>
`
