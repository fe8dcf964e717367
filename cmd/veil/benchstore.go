package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/veil-analytics/veil/internal/store/table"
)

// scanResult is what bench-scan measures.
type scanResult struct {
	Rows        int64   `json:"rows"`
	Users       int64   `json:"users"`
	Runs        []int64 `json:"runs_ns"`
	MedianNS    int64   `json:"median_ns"`
	RowsPerSec  float64 `json:"rows_per_second"`
	Workers     int     `json:"workers"`
	Checksum    uint64  `json:"checksum"`
	TableBytes  int64   `json:"table_bytes"`
	TableRows   int64   `json:"table_rows"`
	Segments    int     `json:"segments"`
	PeakRSSKiB  int64   `json:"peak_rss_kib"`
	BytesPerRow float64 `json:"bytes_per_row"`
}

// runBenchScan times full scans of (user, time, event) over a project's
// event table: the read primitive every report engine runs on.
func runBenchScan(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("bench-scan", "bench-scan --data DIR --project ID [--runs 5] [--workers N] [--json]", stderr)
	data := fs.String("data", "", "data directory (of a stopped server or a finished import)")
	project := fs.Int64("project", 0, "project id")
	runs := fs.Int("runs", 5, "timed scans (after one warm-up scan)")
	workers := fs.Int("workers", 0, "scanning goroutines (default GOMAXPROCS)")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	cpuprofile := fs.String("cpuprofile", "", "write a CPU profile of the scans to this file")
	if err := fs.parse(args); err != nil {
		return err
	}
	stopProfile, err := startCPUProfile(*cpuprofile)
	if err != nil {
		return err
	}
	defer stopProfile()
	if err := requireData(*data); err != nil {
		return err
	}
	if *project <= 0 {
		return errors.New("--project is required")
	}
	if *workers <= 0 {
		*workers = runtime.GOMAXPROCS(0)
	}
	tb, err := table.Open(table.ProjectDir(*data, *project), table.Options{})
	if err != nil {
		return err
	}
	defer tb.Close()
	snap := tb.Snapshot()
	defer snap.Release()
	res := scanResult{Workers: *workers}
	for i := 0; i <= *runs; i++ {
		type tally struct {
			rows, users int64
			sum         uint64
			_           [40]byte // own cache line per worker
		}
		tallies := make([]tally, *workers)
		start := time.Now()
		err := snap.ParallelScan(ctx, table.ScanSpec{}, *workers, func(w int) func(*table.Sequence) error {
			t := &tallies[w]
			return func(q *table.Sequence) error {
				// Touch every value so that the scan cannot be skipped.
				x := t.sum
				for j, tm := range q.Times {
					x += uint64(tm) ^ uint64(q.Events[j])<<40 ^ uint64(q.User)
				}
				t.sum = x
				t.rows += int64(len(q.Times))
				t.users++
				return nil
			}
		})
		if err != nil {
			return err
		}
		res.Rows, res.Users, res.Checksum = 0, 0, 0
		for _, t := range tallies {
			res.Rows += t.rows
			res.Users += t.users
			res.Checksum += t.sum
		}
		d := time.Since(start)
		if i > 0 {
			res.Runs = append(res.Runs, int64(d))
		}
	}
	sorted := append([]int64(nil), res.Runs...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i] < sorted[j] })
	res.MedianNS = sorted[len(sorted)/2]
	st := tb.Stats()
	res.TableBytes, res.TableRows, res.Segments = st.Bytes, st.Rows, st.Segments
	res.RowsPerSec = float64(res.Rows) / (float64(res.MedianNS) / 1e9)
	res.BytesPerRow = float64(st.Bytes) / float64(max(st.Rows, 1))
	if rss, err := peakRSS(os.Getpid()); err == nil {
		res.PeakRSSKiB = rss >> 10
	}
	if *asJSON {
		return json.NewEncoder(stdout).Encode(res)
	}
	fmt.Fprintf(stdout, "full scan of (user, time, event): %d rows, median %.1f ms over %d runs, %.0fM rows/s (%d workers)\n",
		st.Rows, float64(res.MedianNS)/1e6, len(res.Runs), res.RowsPerSec/1e6, *workers)
	fmt.Fprintf(stdout, "table: %d bytes in %d segments, %.2f bytes/row; peak RSS %d MiB\n",
		st.Bytes, st.Segments, res.BytesPerRow, res.PeakRSSKiB>>10)
	return nil
}

// runBenchStore is the event-store benchmark of issue 5: it generates the
// shared benchmark's events as Mixpanel export JSON lines, optionally runs
// the ClickHouse/DuckDB anchor script on the same events first, then
// imports them into a fresh data directory with veil import and scans them
// with veil bench-scan, each a child process whose peak RSS it reads.
func runBenchStore(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("bench-store", "bench-store --events N [--dir DIR] [--anchors PATH] [--json]", stderr)
	events := fs.Int64("events", 10_000_000, "approximate number of events (users are 1%, 30 days, seed 1: the anchors' data)")
	dir := fs.String("dir", filepath.Join(os.TempDir(), "veil-bench-store"), "work directory for the generated file and the data directory")
	gen := fs.String("gen", filepath.Join("..", "shared", "bench", "gen"), "directory of the benchmark generator (go build'able)")
	anchors := fs.String("anchors", "", "path of run-anchors.sh: run it first on the same events and compare (ClickHouse and DuckDB)")
	runs := fs.Int("runs", 5, "timed scans")
	keep := fs.Bool("keep", false, "keep the data directory afterwards")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	if err := fs.parse(args); err != nil {
		return err
	}
	if *events <= 0 {
		return errors.New("--events must be positive")
	}
	if err := os.MkdirAll(*dir, 0o755); err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	res := benchStoreResult{Events: *events}
	var anchor anchorFigures
	if *anchors != "" {
		fmt.Fprintf(stderr, "bench-store: running the anchor script (ClickHouse, DuckDB) on %d events\n", *events)
		start := time.Now()
		if anchor, err = runAnchors(ctx, *anchors, *events, filepath.Join(*dir, "anchors"), stderr); err != nil {
			return err
		}
		fmt.Fprintf(stderr, "bench-store: anchors done in %s\n", time.Since(start).Round(time.Second))
		res.Anchors = &anchor
	}
	jsonl := filepath.Join(*dir, fmt.Sprintf("events_%d.jsonl", *events))
	if st, err := os.Stat(jsonl); err != nil || st.Size() == 0 {
		if err := generateEvents(ctx, *gen, *dir, *events, jsonl, stderr); err != nil {
			return err
		}
	}
	data := filepath.Join(*dir, "data")
	os.RemoveAll(data)
	if !*keep {
		defer os.RemoveAll(data)
	}
	env := append(os.Environ(), "VEIL_MASTER_KEY_FILE="+filepath.Join(*dir, "master.key"))
	if _, err := childJSON(ctx, self, env, nil, "project", "create", "--data", data, "--name", "bench", "--json"); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "bench-store: importing\n")
	var imp importStats
	rss, err := childJSON(ctx, self, env, &imp, "import", "--data", data, "--project", "1", "--json", jsonl)
	if err != nil {
		return err
	}
	res.Import = benchImport{Read: imp.Read, Stored: imp.Stored, Seconds: imp.Elapsed.Seconds(), EventsPerSec: imp.Rate,
		PeakRSSMiB: rss >> 20, DiskBytes: imp.DiskBytes, BytesPerEvent: float64(imp.DiskBytes) / float64(max(imp.Stored, 1))}
	fmt.Fprintf(stderr, "bench-store: scanning\n")
	var scan scanResult
	if rss, err = childJSON(ctx, self, env, &scan, "bench-scan", "--data", data, "--project", "1", "--json",
		"--runs", strconv.Itoa(*runs)); err != nil {
		return err
	}
	res.Scan = benchScan{Rows: scan.Rows, MedianMS: float64(scan.MedianNS) / 1e6, RowsPerSec: scan.RowsPerSec, PeakRSSMiB: rss >> 20}
	if *asJSON {
		return json.NewEncoder(stdout).Encode(res)
	}
	printBenchStore(stdout, res)
	return nil
}

// generateEvents builds the benchmark generator in gen and writes the
// anchors' events (seed 1, 30 days) as JSON lines to jsonl.
func generateEvents(ctx context.Context, gen, dir string, events int64, jsonl string, stderr io.Writer) error {
	bin := filepath.Join(dir, "benchgen")
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, ".")
	build.Dir, build.Stdout, build.Stderr = gen, stderr, stderr
	if err := build.Run(); err != nil {
		return fmt.Errorf("building the generator in %s: %w", gen, err)
	}
	fmt.Fprintf(stderr, "generating %s\n", jsonl)
	g := exec.CommandContext(ctx, bin, "-events", strconv.FormatInt(events, 10), "-days", "30", "-seed", "1",
		"-format", "jsonl", "-out", jsonl)
	g.Stdout, g.Stderr = stderr, stderr
	if err := g.Run(); err != nil {
		os.Remove(jsonl)
		return fmt.Errorf("generating events: %w", err)
	}
	return nil
}

type benchStoreResult struct {
	Events  int64          `json:"events"`
	Import  benchImport    `json:"import"`
	Scan    benchScan      `json:"scan"`
	Anchors *anchorFigures `json:"anchors,omitempty"`
}

type benchImport struct {
	Read          int64   `json:"read"`
	Stored        int64   `json:"stored"`
	Seconds       float64 `json:"seconds"`
	EventsPerSec  float64 `json:"events_per_second"`
	PeakRSSMiB    int64   `json:"peak_rss_mib"`
	DiskBytes     int64   `json:"disk_bytes"`
	BytesPerEvent float64 `json:"bytes_per_event"`
}

type benchScan struct {
	Rows       int64   `json:"rows"`
	MedianMS   float64 `json:"median_ms"`
	RowsPerSec float64 `json:"rows_per_second"`
	PeakRSSMiB int64   `json:"peak_rss_mib"`
}

// anchorFigures are what the anchor script measured in this run.
type anchorFigures struct {
	Rows             int64   `json:"rows"`
	ClickHouseLoadMS float64 `json:"clickhouse_load_ms"`
	ClickHouseBytes  int64   `json:"clickhouse_bytes"`
	DuckDBLoadMS     float64 `json:"duckdb_load_ms"`
	DuckDBBytes      int64   `json:"duckdb_bytes"`
}

func printBenchStore(w io.Writer, r benchStoreResult) {
	fmt.Fprintf(w, "bench-store: %d events generated, %d stored\n", r.Import.Read, r.Import.Stored)
	fmt.Fprintf(w, "  import      %.0f events/s (%.1f s), peak RSS %d MiB\n", r.Import.EventsPerSec, r.Import.Seconds, r.Import.PeakRSSMiB)
	fmt.Fprintf(w, "  on disk     %d bytes, %.2f bytes/event\n", r.Import.DiskBytes, r.Import.BytesPerEvent)
	fmt.Fprintf(w, "  full scan   (user, time, event) %.0fM rows/s (median %.1f ms), peak RSS %d MiB\n", r.Scan.RowsPerSec/1e6, r.Scan.MedianMS, r.Scan.PeakRSSMiB)
	if a := r.Anchors; a != nil {
		chRate := float64(a.Rows) / (a.ClickHouseLoadMS / 1e3)
		duckRate := float64(a.Rows) / (a.DuckDBLoadMS / 1e3)
		fmt.Fprintf(w, "  same run    ClickHouse load %.0f events/s (Veil %.2fx), %.2f bytes/event\n", chRate, r.Import.EventsPerSec/chRate, float64(a.ClickHouseBytes)/float64(a.Rows))
		fmt.Fprintf(w, "              DuckDB load %.0f events/s, %.2f bytes/event (Veil %.2fx its size)\n", duckRate, float64(a.DuckDBBytes)/float64(a.Rows), r.Import.BytesPerEvent/(float64(a.DuckDBBytes)/float64(a.Rows)))
	}
}

// childJSON runs veil with args, decodes its standard output as JSON into
// out (if not nil), and returns the child's peak RSS in bytes.
func childJSON(ctx context.Context, self string, env []string, out any, args ...string) (int64, error) {
	cmd := exec.CommandContext(ctx, self, args...)
	cmd.Env = env
	var stdout bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		return 0, fmt.Errorf("veil %s: %w", args[0], err)
	}
	if out != nil {
		if err := json.Unmarshal(stdout.Bytes(), out); err != nil {
			return 0, fmt.Errorf("veil %s printed %q: %w", args[0], stdout.String(), err)
		}
	}
	var rss int64
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		rss = ru.Maxrss << 10 // KiB on Linux
	}
	return rss, nil
}

// runScript runs the anchor script for n events with its work directory
// under root, then stops the ClickHouse server it leaves running, so that
// it takes no CPU or memory from what is measured next.
func runScript(ctx context.Context, script string, n int64, root string, env []string, log io.Writer) error {
	cmd := exec.CommandContext(ctx, "bash", script, strconv.FormatInt(n, 10))
	cmd.Env = append(append(os.Environ(), "ROOT="+root), env...)
	cmd.Stdout, cmd.Stderr = log, log
	err := cmd.Run()
	stop := exec.CommandContext(ctx, "bash", filepath.Join(filepath.Dir(script), "ch", "ch-stop.sh"), filepath.Join(root, "ch"))
	stop.Stdout, stop.Stderr = log, log
	if serr := stop.Run(); serr != nil {
		fmt.Fprintf(log, "stopping the anchors' ClickHouse: %v\n", serr)
	}
	if err != nil {
		return fmt.Errorf("anchor script: %w", err)
	}
	return nil
}

// runAnchors runs the shared anchor script for n events with its work
// directory under root and reads back what it recorded for this run.
func runAnchors(ctx context.Context, script string, n int64, root string, log io.Writer) (anchorFigures, error) {
	script, err := filepath.Abs(script)
	if err != nil {
		return anchorFigures{}, err
	}
	results := filepath.Join(filepath.Dir(script), "results", "results.tsv")
	before := 0
	if b, err := os.ReadFile(results); err == nil {
		before = bytes.Count(b, []byte{'\n'})
	}
	if err := runScript(ctx, script, n, root, nil, log); err != nil {
		return anchorFigures{}, err
	}
	b, err := os.ReadFile(results)
	if err != nil {
		return anchorFigures{}, err
	}
	var a anchorFigures
	lines := strings.Split(string(b), "\n")
	for _, line := range lines[min(before, len(lines)):] {
		f := strings.Split(line, "\t")
		if len(f) < 10 || f[1] != strconv.FormatInt(n, 10) {
			continue
		}
		ms, _ := strconv.ParseFloat(f[4], 64)
		switch f[2] + " " + f[3] {
		case "clickhouse load_insert":
			a.ClickHouseLoadMS = ms
			if rows, ok := strings.CutPrefix(strings.Split(f[9], ";")[0], "rows="); ok {
				a.Rows, _ = strconv.ParseInt(rows, 10, 64)
			}
		case "clickhouse disk_bytes":
			a.ClickHouseBytes = int64(ms)
		case "duckdb load_insert_sorted":
			a.DuckDBLoadMS = ms
		case "duckdb disk_bytes":
			a.DuckDBBytes = int64(ms)
		}
	}
	if a.ClickHouseLoadMS == 0 || a.DuckDBBytes == 0 || a.Rows == 0 {
		return a, fmt.Errorf("anchor script recorded no load figures for %d events in %s", n, results)
	}
	return a, nil
}
