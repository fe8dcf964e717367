package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/veil-analytics/veil/internal/query"
	"github.com/veil-analytics/veil/internal/store"
)

// benchQueries are the five anchor queries of ../shared/bench/sql as
// report specs over the generator's 30 days (2024-01-01 .. 2024-01-30).
var benchQueries = []struct {
	name, kind, spec string
}{
	{"Q1_insights", "insights", `{"from":"2024-01-01","to":"2024-01-30","interval":"day",
		"series":[{"event":"page_view","measure":"total"},{"event":"page_view","measure":"unique"}],
		"breakdowns":[{"property":"country"}],"limit":10}`},
	{"Q2_funnel", "funnels", `{"from":"2024-01-01","to":"2024-01-30","window":{"value":7,"unit":"day"},
		"steps":[{"event":"signup_started"},{"event":"signup_completed"},{"event":"api_key_created"},{"event":"first_api_call"}]}`},
	{"Q3_retention", "retention", `{"from":"2024-01-01","to":"2024-01-30","birth":{"event":"signup_completed"},
		"unit":"week","periods":8}`},
	{"Q4_flows", "flows", `{"from":"2024-01-01","to":"2024-01-30","anchor":{"event":"signup_completed"},
		"steps":3,"session_gap_minutes":-1,"top_paths":20}`},
	{"Q5_plan_users", "insights", `{"from":"2024-01-24","to":"2024-01-30","interval":"none",
		"series":[{"event":"$any_event","measure":"unique"}],
		"filters":[{"property":"country","op":"in","values":["US","DE","GB","IN","BR"]}],
		"breakdowns":[{"property":"plan"}],"limit":100}`},
}

type benchQueryRow struct {
	Query     string  `json:"query"`
	VeilMS    float64 `json:"veil_ms"`
	Runs      []int64 `json:"veil_runs_us"`
	CHMS      float64 `json:"clickhouse_ms,omitempty"`
	DuckMS    float64 `json:"duckdb_ms,omitempty"`
	Answer    string  `json:"answer"` // SAME, DIFF or "" without anchors
	AnswerTSV string  `json:"-"`
}

// runBenchQuery times the anchor queries on the event store, and on
// ClickHouse and DuckDB through the anchor script in the same run.
func runBenchQuery(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("bench-query", "bench-query --events N [--dir DIR] [--anchors PATH] [--runs 5] [--json]", stderr)
	events := fs.Int64("events", 10_000_000, "approximate number of events (the anchors' data: users 1%, 30 days, seed 1)")
	dir := fs.String("dir", filepath.Join(os.TempDir(), "veil-bench-store"), "work directory (generated file, data directories, anchors)")
	gen := fs.String("gen", filepath.Join("..", "shared", "bench", "gen"), "directory of the benchmark generator")
	anchors := fs.String("anchors", "", "path of run-anchors.sh: time the same queries on ClickHouse and DuckDB and compare answers")
	queriesOnly := fs.Bool("anchors-queries-only", false, "the anchors reuse data an earlier run loaded (QUERIES_ONLY=1)")
	runs := fs.Int("runs", 5, "timed runs per query (after one warm-up)")
	only := fs.String("only", "", "run only these queries (comma-separated names, e.g. Q2_funnel)")
	cpuprofile := fs.String("cpuprofile", "", "write a CPU profile of the query runs to this file")
	memprofile := fs.String("memprofile", "", "write a profile of the query runs' allocations to this file")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	if err := fs.parse(args); err != nil {
		return err
	}
	if *events <= 0 || *runs <= 0 {
		return errors.New("--events and --runs must be positive")
	}
	data := filepath.Join(*dir, fmt.Sprintf("query_data_%d", *events))
	if _, err := os.Stat(filepath.Join(data, "events", "1", "MANIFEST")); err != nil {
		if err := benchImportData(ctx, *dir, *gen, *events, data, stderr); err != nil {
			return err
		}
	}
	var rows []*benchQueryRow
	for _, q := range benchQueries {
		if *only == "" || slices.Contains(strings.Split(*only, ","), q.name) {
			rows = append(rows, &benchQueryRow{Query: q.name})
		}
	}
	root := filepath.Join(*dir, "anchors")
	if *anchors != "" {
		fmt.Fprintf(stderr, "bench-query: timing the anchor queries on ClickHouse and DuckDB (%d events)\n", *events)
		if err := runAnchorQueries(ctx, *anchors, *events, root, *queriesOnly, rows, stderr); err != nil {
			return err
		}
	}
	src, err := store.OpenSource(data, 1)
	if err != nil {
		return err
	}
	defer src.Close()
	// The profile covers the warm-ups too: a query's first run is not
	// different work, only colder caches.
	stopProfile, err := startCPUProfile(*cpuprofile)
	if err != nil {
		return err
	}
	if *memprofile != "" {
		// Allocations since the source opened: every query run's.
		runtime.MemProfileRate = 64 << 10
		defer func() {
			if f, err := os.Create(*memprofile); err == nil {
				pprof.Lookup("allocs").WriteTo(f, 0)
				f.Close()
			}
		}()
	}
	env := query.Env{TimeZone: "UTC", Now: time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC)}
	for _, row := range rows {
		i := slices.IndexFunc(benchQueries, func(b struct{ name, kind, spec string }) bool { return b.name == row.Query })
		q := benchQueries[i]
		var res any
		for r := 0; r <= *runs; r++ {
			start := time.Now()
			res, err = query.Run(ctx, src, env, q.kind, []byte(q.spec))
			if err != nil {
				return fmt.Errorf("%s: %w", q.name, err)
			}
			if r > 0 {
				row.Runs = append(row.Runs, time.Since(start).Microseconds())
			}
		}
		sorted := slices.Clone(row.Runs)
		slices.Sort(sorted)
		row.VeilMS = float64(sorted[len(sorted)/2]) / 1000
		row.AnswerTSV = anchorTSV(q.name, res)
		// The answers of the anchors (this run's, or an earlier run's).
		if want, err := os.ReadFile(filepath.Join(root, "results", fmt.Sprintf("ch_%d", *events), q.name+".tsv")); err == nil {
			switch {
			case string(want) == row.AnswerTSV:
				row.Answer = "SAME"
			default:
				row.Answer = "DIFF"
				diff := filepath.Join(*dir, fmt.Sprintf("veil_%d_%s.tsv", *events, q.name))
				os.WriteFile(diff, []byte(row.AnswerTSV), 0o644)
				fmt.Fprintf(stderr, "bench-query: %s differs from ClickHouse's answer: ours in %s\n", q.name, diff)
			}
		}
	}
	stopProfile()
	if *asJSON {
		return json.NewEncoder(stdout).Encode(rows)
	}
	fmt.Fprintf(stdout, "bench-query: %d events, median of %d runs (ms)\n", *events, *runs)
	fmt.Fprintf(stdout, "%-14s %10s %12s %10s %8s %8s  %s\n", "query", "veil", "clickhouse", "duckdb", "CH/veil", "DDB/veil", "answer")
	for _, r := range rows {
		fmt.Fprintf(stdout, "%-14s %10.1f %12s %10s %8s %8s  %s\n", r.Query, r.VeilMS, msOrDash(r.CHMS), msOrDash(r.DuckMS),
			ratio(r.CHMS, r.VeilMS), ratio(r.DuckMS, r.VeilMS), r.Answer)
	}
	return nil
}

func msOrDash(ms float64) string {
	if ms == 0 {
		return "-"
	}
	return strconv.FormatFloat(ms, 'f', 1, 64)
}

func ratio(a, b float64) string {
	if a == 0 || b == 0 {
		return "-"
	}
	return strconv.FormatFloat(a/b, 'f', 1, 64) + "x"
}

// benchImportData generates the anchors' events and imports them.
func benchImportData(ctx context.Context, dir, gen string, events int64, data string, stderr io.Writer) error {
	jsonl := filepath.Join(dir, fmt.Sprintf("events_%d.jsonl", events))
	if st, err := os.Stat(jsonl); err != nil || st.Size() == 0 {
		if err := generateEvents(ctx, gen, dir, events, jsonl, stderr); err != nil {
			return err
		}
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	os.RemoveAll(data)
	env := append(os.Environ(), "VEIL_MASTER_KEY_FILE="+filepath.Join(dir, "master.key"))
	if _, err := childJSON(ctx, self, env, nil, "project", "create", "--data", data, "--name", "bench", "--json"); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "bench-query: importing %s\n", jsonl)
	_, err = childJSON(ctx, self, env, nil, "import", "--data", data, "--project", "1", "--json", jsonl)
	return err
}

// runAnchorQueries runs the anchor script and reads its query medians of
// this run into rows.
func runAnchorQueries(ctx context.Context, script string, n int64, root string, queriesOnly bool, rows []*benchQueryRow, log io.Writer) error {
	script, err := filepath.Abs(script)
	if err != nil {
		return err
	}
	results := filepath.Join(filepath.Dir(script), "results", "results.tsv")
	before := 0
	if b, err := os.ReadFile(results); err == nil {
		before = strings.Count(string(b), "\n")
	}
	var extra []string
	if queriesOnly {
		extra = append(extra, "QUERIES_ONLY=1")
	}
	if err := runScript(ctx, script, n, root, extra, log); err != nil {
		return err
	}
	b, err := os.ReadFile(results)
	if err != nil {
		return err
	}
	lines := strings.Split(string(b), "\n")
	for _, line := range lines[min(before, len(lines)):] {
		f := strings.Split(line, "\t")
		if len(f) < 5 || f[1] != strconv.FormatInt(n, 10) {
			continue
		}
		ms, _ := strconv.ParseFloat(f[4], 64)
		for _, r := range rows {
			if r.Query != f[3] {
				continue
			}
			switch f[2] {
			case "clickhouse":
				r.CHMS = ms
			case "duckdb":
				r.DuckMS = ms
			}
		}
	}
	return nil
}

// anchorTSV renders a report answer as the anchor query's TSV output.
func anchorTSV(name string, res any) string {
	var b strings.Builder
	num := func(p *float64) string {
		if p == nil {
			return "0"
		}
		return strconv.FormatFloat(*p, 'f', -1, 64)
	}
	switch name {
	case "Q1_insights":
		r := res.(*query.InsightsResult)
		type line struct {
			day, country string
			views, users float64
		}
		var ls []line
		for i, row := range r.Series[0].Rows {
			if row.Segment[0] == query.OtherSegment {
				continue
			}
			for d, v := range row.Values {
				if v == nil || *v == 0 {
					continue
				}
				u := r.Series[1].Rows[i].Values[d]
				ls = append(ls, line{r.Intervals[d], fmt.Sprint(row.Segment[0]), *v, *u})
			}
		}
		slices.SortFunc(ls, func(a, b line) int {
			if c := strings.Compare(a.day, b.day); c != 0 {
				return c
			}
			if a.views != b.views {
				return int(math.Copysign(1, b.views-a.views))
			}
			return strings.Compare(a.country, b.country)
		})
		for _, l := range ls {
			fmt.Fprintf(&b, "%s\t%s\t%s\t%s\n", l.day, l.country, strconv.FormatFloat(l.views, 'f', -1, 64), strconv.FormatFloat(l.users, 'f', -1, 64))
		}
	case "Q2_funnel":
		r := res.(*query.FunnelResult)
		var cols []string
		for _, s := range r.Steps {
			cols = append(cols, strconv.FormatInt(*s.Users, 10))
		}
		b.WriteString(strings.Join(cols, "\t") + "\n")
	case "Q3_retention":
		r := res.(*query.RetentionResult)
		for _, c := range r.Cohorts {
			cols := []string{c.Cohort, strconv.FormatInt(*c.Users, 10)}
			for _, n := range c.Counts {
				if n == nil {
					cols = append(cols, "0")
				} else {
					cols = append(cols, strconv.FormatInt(*n, 10))
				}
			}
			b.WriteString(strings.Join(cols, "\t") + "\n")
		}
	case "Q4_flows":
		r := res.(*query.FlowsResult)
		for _, p := range r.TopPaths {
			fmt.Fprintf(&b, "%s\t%d\n", strings.Join(p.Events, "\t"), *p.Users)
		}
	case "Q5_plan_users":
		r := res.(*query.InsightsResult)
		type line struct {
			plan  string
			users string
		}
		var ls []line
		for _, row := range r.Series[0].Rows {
			ls = append(ls, line{fmt.Sprint(row.Segment[0]), num(row.Total)})
		}
		slices.SortFunc(ls, func(a, b line) int { return strings.Compare(a.plan, b.plan) })
		for _, l := range ls {
			fmt.Fprintf(&b, "%s\t%s\n", l.plan, l.users)
		}
	}
	return b.String()
}
