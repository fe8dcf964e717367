package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// runBenchIngest starts "veil serve" as a child process on a fresh data
// directory (fsync on, as always) and drives /track over loopback with
// mixpanel-browser-shaped batches from this process, then reports
// throughput, acknowledgement latency and the server's peak RSS.
func runBenchIngest(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("bench-ingest", "bench-ingest [--duration 30s] [--concurrency 16] [--batch 50]", stderr)
	duration := fs.Duration("duration", 30*time.Second, "measured run time")
	warmup := fs.Duration("warmup", 3*time.Second, "unmeasured run time before it")
	conc := fs.Int("concurrency", 16, "concurrent connections (each one request at a time)")
	batch := fs.Int("batch", 50, "events per request (mixpanel-browser sends up to 50)")
	users := fs.Int("users", 100000, "distinct users in the generated traffic")
	mixed := fs.Bool("mixed-batches", false, "a different user on every event of a batch (the worst case for the privacy stage); by default a batch is one browser's, as mixpanel-browser sends it")
	dir := fs.String("bench-dir", "", "data directory for the server (default: a new one under the temp dir, removed after)")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	cpuProfile := fs.String("cpuprofile", "", "write the load generator's CPU profile to this file")
	serverFlags := fs.String("server-flags", "", "extra flags for the veil serve child, space-separated (e.g. --debug-addr 127.0.0.1:6060)")
	if err := fs.parse(args); err != nil {
		return err
	}
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	data := *dir
	if data == "" {
		if data, err = os.MkdirTemp("", "veil-bench-ingest-"); err != nil {
			return err
		}
		defer os.RemoveAll(data)
	}
	out, err := exec.CommandContext(ctx, exe, "project", "create", "--data", data, "--name", "bench", "--json").Output()
	if err != nil {
		return fmt.Errorf("create project: %w", err)
	}
	var proj projectJSON
	if err := json.Unmarshal(out, &proj); err != nil {
		return err
	}
	addr, err := freeAddr()
	if err != nil {
		return err
	}
	srvLog, err := os.Create(filepath.Join(data, "bench-server.log"))
	if err != nil {
		return err
	}
	defer srvLog.Close()
	serveArgs := append([]string{"serve", "--data", data, "--addr", addr, "--rate-limit", "0", "--log-level", "warn"}, strings.Fields(*serverFlags)...)
	cmd := exec.Command(exe, serveArgs...)
	cmd.Stdout, cmd.Stderr = srvLog, srvLog
	if err := cmd.Start(); err != nil {
		return err
	}
	defer func() {
		cmd.Process.Signal(os.Interrupt)
		cmd.Wait()
	}()
	base := "http://" + addr
	if err := waitHealthy(ctx, base, 10*time.Second); err != nil {
		return err
	}

	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: *conc, MaxConnsPerHost: *conc, DisableCompression: true}}
	var (
		measuring atomic.Bool
		stop      atomic.Bool
		acked     atomic.Int64
		failed    atomic.Int64
		mu        sync.Mutex
		lat       []time.Duration
		firstErr  atomic.Value
	)
	var wg sync.WaitGroup
	for w := range *conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t := newBrowserTraffic(proj.Token, *users, uint64(w)+1)
			t.mixed = *mixed
			var mine []time.Duration
			for !stop.Load() && ctx.Err() == nil {
				now := time.Now()
				body := t.formBody(*batch, now.UnixMilli())
				url := base + "/track/?verbose=1&ip=1&_=" + strconv.FormatInt(now.UnixMilli(), 10)
				req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				start := time.Now()
				resp, err := client.Do(req)
				var rb []byte
				if err == nil {
					rb, _ = io.ReadAll(resp.Body)
					resp.Body.Close()
				}
				took := time.Since(start)
				if err != nil || resp.StatusCode != 200 || !bytes.HasPrefix(rb, []byte(`{"status":1`)) {
					failed.Add(1)
					if err == nil {
						err = fmt.Errorf("status %d: %s", resp.StatusCode, rb)
					}
					firstErr.CompareAndSwap(nil, err.Error())
					continue
				}
				if measuring.Load() {
					acked.Add(int64(*batch))
					mine = append(mine, took)
				}
			}
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		}()
	}
	sleepCtx(ctx, *warmup)
	measuring.Store(true)
	start := time.Now()
	sleepCtx(ctx, *duration)
	measuring.Store(false)
	elapsed := time.Since(start)
	stop.Store(true)
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return err
	}
	rss, _ := peakRSS(cmd.Process.Pid)
	fsyncs, fsyncSecs := scrapeFsyncs(base)
	slices.Sort(lat)
	pct := func(p float64) time.Duration {
		if len(lat) == 0 {
			return 0
		}
		return lat[min(len(lat)-1, int(float64(len(lat))*p))]
	}
	res := map[string]any{
		"events_per_second":  float64(acked.Load()) / elapsed.Seconds(),
		"requests":           len(lat),
		"failed_requests":    failed.Load(),
		"batch":              *batch,
		"concurrency":        *conc,
		"duration_s":         elapsed.Seconds(),
		"p50_ms":             float64(pct(0.50).Microseconds()) / 1000,
		"p99_ms":             float64(pct(0.99).Microseconds()) / 1000,
		"max_ms":             float64(pct(1).Microseconds()) / 1000,
		"server_peak_rss_mb": float64(rss) / (1 << 20),
		"fsyncs":             fsyncs,
	}
	if fsyncs > 0 {
		res["fsync_avg_ms"] = 1000 * fsyncSecs / fsyncs
	}
	if e := firstErr.Load(); e != nil {
		res["first_error"] = e
	}
	if *asJSON {
		return json.NewEncoder(stdout).Encode(res)
	}
	fmt.Fprintf(stdout, "bench-ingest: %d connections, %d-event batches, %.0fs measured (fsync on)\n", *conc, *batch, elapsed.Seconds())
	fmt.Fprintf(stdout, "  throughput     %.0f events/s (%d requests, %d failed)\n", res["events_per_second"], len(lat), failed.Load())
	fmt.Fprintf(stdout, "  ack latency    p50 %.2f ms   p99 %.2f ms   max %.2f ms\n", res["p50_ms"], res["p99_ms"], res["max_ms"])
	fmt.Fprintf(stdout, "  server peak RSS %.0f MiB\n", res["server_peak_rss_mb"])
	if fsyncs > 0 {
		fmt.Fprintf(stdout, "  WAL fsyncs     %.0f in the whole run, %.2f ms on average (group commit)\n", fsyncs, res["fsync_avg_ms"])
	}
	if e := firstErr.Load(); e != nil {
		fmt.Fprintf(stdout, "  first error: %v\n", e)
	}
	return nil
}

func sleepCtx(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// freeAddr picks a free loopback port.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

func waitHealthy(ctx context.Context, base string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/healthz", nil)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		time.Sleep(50 * time.Millisecond)
	}
	return errors.New("server did not become healthy in time")
}

// peakRSS reads a process's peak resident set size (VmHWM) in bytes.
func peakRSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10, err
		}
	}
	return 0, errors.New("no VmHWM")
}

// scrapeFsyncs reads the server's fsync count and total seconds from /metrics.
func scrapeFsyncs(base string) (count, seconds float64) {
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		return 0, 0
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "veil_wal_fsync_duration_seconds_count "); ok {
			count, _ = strconv.ParseFloat(v, 64)
		}
		if v, ok := strings.CutPrefix(line, "veil_wal_fsync_duration_seconds_sum "); ok {
			seconds, _ = strconv.ParseFloat(v, 64)
		}
	}
	return count, seconds
}
