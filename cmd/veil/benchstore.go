package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"sort"
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
