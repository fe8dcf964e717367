package query_test

// Parity with ClickHouse 18.16: ordered funnels against windowFunnel and
// first-time rolling retention against retention(), on generated events
// loaded into both a test ClickHouse server and scantest.Mem.
//
// 18.16's windowFunnel takes DateTime (whole seconds, < 2^31) and orders
// rows of the same second by insertion, so the generated times are whole
// seconds in 2024, strictly increasing per user. Its retention() records
// only the first true condition of each row, so the conditions are made
// disjoint (the birth row, then one period per row), as in
// bench/sql/clickhouse/Q3_retention.sql.

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/veil-analytics/veil/internal/chtest"
	"github.com/veil-analytics/veil/internal/query"
	"github.com/veil-analytics/veil/internal/scan/scantest"
)

const (
	parityStart = 1704067200 // 2024-01-01T00:00:00Z, a Monday
	parityDays  = 60         // through 2024-02-29
	parityFrom  = "2024-01-01"
	parityTo    = "2024-02-29"
	parityUsers = 600
)

// pevent is one generated event; ts is in Unix seconds.
type pevent struct {
	user uint64
	ts   int64
	name string
}

var parityNames = []string{"a", "b", "c", "d", "e", "f"}

// paritySeed is fixed for CI; VEIL_PARITY_SEED explores others.
func paritySeed(t *testing.T) uint64 {
	if s := os.Getenv("VEIL_PARITY_SEED"); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("VEIL_PARITY_SEED: %v", err)
		}
		return n
	}
	return 20240101
}

// genParity makes users whose events drift through a..f in order (so
// that long funnels convert), with gaps from seconds to days and some
// round gaps that land exactly on window edges.
func genParity(rng *rand.Rand) []pevent {
	end := int64(parityStart + parityDays*86400)
	round := []int64{5, 10, 30, 60, 300, 600, 3600, 7200, 86400, 172800, 604800}
	var out []pevent
	for u := uint64(1); u <= parityUsers; u++ {
		n := 1 + rng.IntN(40)
		if rng.IntN(10) == 0 {
			n = 100 + rng.IntN(150)
		}
		ts := int64(parityStart) + rng.Int64N(int64(parityDays*86400*4/5))
		cur := rng.IntN(len(parityNames))
		for range n {
			if ts >= end {
				break
			}
			out = append(out, pevent{u, ts, parityNames[cur]})
			switch r := rng.IntN(100); {
			case r < 50:
				cur = (cur + 1) % len(parityNames)
			case r < 65:
			default:
				cur = rng.IntN(len(parityNames))
			}
			var gap int64
			switch r := rng.IntN(100); {
			case r < 30:
				gap = 1 + rng.Int64N(20)
			case r < 55:
				gap = 1 + rng.Int64N(900)
			case r < 75:
				gap = 1 + rng.Int64N(6*3600)
			case r < 90:
				gap = 1 + rng.Int64N(3*86400)
			default:
				gap = round[rng.IntN(len(round))]
			}
			ts += gap
		}
	}
	return out
}

func memSource(evs []pevent) *scantest.Mem {
	mem := make([]scantest.Event, len(evs))
	for i, e := range evs {
		mem[i] = scantest.Event{User: e.user, Time: e.ts * 1000, Name: e.name}
	}
	return scantest.New(mem, nil)
}

// chInline is a table expression holding evs, for probing one user.
func chInline(evs []pevent) string {
	var b strings.Builder
	b.WriteString("(SELECT toUInt64(tupleElement(x, 1)) AS user, toUInt32(tupleElement(x, 2)) AS ts, tupleElement(x, 3) AS event FROM (SELECT arrayJoin([")
	for i, e := range evs {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "(%d,%d,'%s')", e.user, e.ts, e.name)
	}
	b.WriteString("]) AS x))")
	return b.String()
}

var parityEnv = query.Env{TimeZone: "UTC", Workers: 2, Now: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}

// --- funnels

type parityFunnel struct {
	steps  []string
	value  int
	unit   string
	window int64 // seconds
}

func (f parityFunnel) String() string {
	return fmt.Sprintf("%s within %d %s", strings.Join(f.steps, "→"), f.value, f.unit)
}

var unitSeconds = map[string]int64{"second": 1, "minute": 60, "hour": 3600, "day": 86400, "week": 7 * 86400}

func newParityFunnel(steps []string, value int, unit string) parityFunnel {
	return parityFunnel{steps: steps, value: value, unit: unit, window: int64(value) * unitSeconds[unit]}
}

func genFunnels(rng *rand.Rand, n int) []parityFunnel {
	// Fixed shapes first: repeats of a step's event, the full chain.
	out := []parityFunnel{
		newParityFunnel([]string{"a", "a"}, 10, "minute"),
		newParityFunnel([]string{"a", "b", "a"}, 1, "hour"),
		newParityFunnel([]string{"a", "a", "a"}, 1, "day"),
		newParityFunnel([]string{"b", "a", "b", "a"}, 2, "day"),
		newParityFunnel([]string{"a", "b", "c", "d", "e", "f"}, 7, "day"),
		newParityFunnel([]string{"c", "d"}, 60, "second"),
	}
	windows := map[string][]int{
		"second": {1, 5, 10, 30, 60, 90, 600},
		"minute": {1, 5, 10, 30, 60, 90},
		"hour":   {1, 2, 6, 24},
		"day":    {1, 2, 7, 14, 30},
	}
	units := []string{"second", "minute", "hour", "day"}
	for len(out) < n {
		k := 2 + rng.IntN(5)
		var steps []string
		if rng.IntN(10) < 4 { // a run of the drift order: converts often
			s := rng.IntN(len(parityNames))
			for i := range k {
				steps = append(steps, parityNames[(s+i)%len(parityNames)])
			}
		} else {
			for range k {
				if len(steps) > 0 && rng.IntN(4) == 0 {
					steps = append(steps, steps[rng.IntN(len(steps))])
				} else {
					steps = append(steps, parityNames[rng.IntN(len(parityNames))])
				}
			}
		}
		unit := units[len(out)%len(units)]
		vs := windows[unit]
		out = append(out, newParityFunnel(steps, vs[rng.IntN(len(vs))], unit))
	}
	return out
}

// chFunnel is the users reaching each step by windowFunnel over table.
func chFunnel(ctx context.Context, ch *chtest.Server, table string, f parityFunnel) ([]int64, error) {
	conds := make([]string, len(f.steps))
	counts := make([]string, len(f.steps))
	for i, s := range f.steps {
		conds[i] = fmt.Sprintf("event = '%s'", s)
		counts[i] = fmt.Sprintf("countIf(level >= %d)", i+1)
	}
	sql := fmt.Sprintf("SELECT %s FROM (SELECT user, windowFunnel(%d)(toDateTime(ts), %s) AS level FROM %s GROUP BY user)",
		strings.Join(counts, ", "), f.window, strings.Join(conds, ", "), table)
	rows, err := ch.Query(ctx, sql)
	if err != nil {
		return nil, err
	}
	if len(rows) != 1 || len(rows[0]) != len(f.steps) {
		return nil, fmt.Errorf("unexpected answer %q to %s", rows, sql)
	}
	return parseInts(rows[0])
}

// ourFunnel is the users reaching each step by query.Funnels.
func ourFunnel(ctx context.Context, src *scantest.Mem, f parityFunnel) ([]int64, error) {
	spec := query.FunnelSpec{
		Range:  query.Range{From: parityFrom, To: parityTo},
		Window: &query.Duration{Value: f.value, Unit: f.unit},
		Order:  "ordered",
	}
	for _, s := range f.steps {
		spec.Steps = append(spec.Steps, query.Step{Event: s})
	}
	res, err := query.Funnels(ctx, src, parityEnv, spec)
	if err != nil {
		return nil, err
	}
	out := make([]int64, len(res.Steps))
	for i, st := range res.Steps {
		if st.Users == nil {
			return nil, fmt.Errorf("step %d suppressed", i+1)
		}
		out[i] = *st.Users
	}
	return out, nil
}

// --- retention

type parityRetention struct {
	birth   string
	ret     string // "" (any event, Return unset) or an event or query.AnyEvent
	unit    string // day or week
	periods int
}

func (r parityRetention) String() string {
	ret := r.ret
	if ret == "" {
		ret = "(default: any)"
	}
	return fmt.Sprintf("birth %s, return %s, %d %ss", r.birth, ret, r.periods, r.unit)
}

func genRetentions(rng *rand.Rand, n int) []parityRetention {
	var out []parityRetention
	for i := 0; len(out) < n; i++ {
		r := parityRetention{birth: parityNames[rng.IntN(len(parityNames))], unit: []string{"day", "week"}[i%2]}
		switch i % 4 {
		case 0:
		case 1:
			r.ret = query.AnyEvent
		case 2:
			r.ret = r.birth
		default:
			r.ret = parityNames[rng.IntN(len(parityNames))]
		}
		if r.unit == "day" {
			r.periods = []int{1, 3, 7, 14, 30}[rng.IntN(5)]
		} else {
			r.periods = []int{1, 2, 4, 8}[rng.IntN(4)]
		}
		out = append(out, r)
	}
	return out
}

// chRetention is one row per cohort, "cohort users n0 n1 …", by the query
// of bench Q3: birth is the user's first birth event, period k holds the
// return events at birth + [k, k+1) units.
func chRetention(ctx context.Context, ch *chtest.Server, table string, r parityRetention) ([]string, error) {
	unit := unitSeconds[r.unit]
	cohort := "toDate(toDateTime(birth_ts))"
	if r.unit == "week" {
		cohort = "toMonday(toDate(toDateTime(birth_ts)))"
	}
	ret := "1"
	if r.ret != "" && r.ret != query.AnyEvent {
		ret = fmt.Sprintf("event = '%s'", r.ret)
	}
	conds := []string{"ts = birth"}
	sums := []string{"count()"}
	for k := range r.periods {
		conds = append(conds, fmt.Sprintf("p = %d", k))
		sums = append(sums, fmt.Sprintf("sum(r[%d])", k+2))
	}
	sql := fmt.Sprintf(`SELECT toString(%s) AS cohort, %s
FROM (
    SELECT user, any(birth) AS birth_ts, retention(%s) AS r
    FROM (
        SELECT user, ts, birth, if(ts > birth AND %s, intDiv(ts - birth, %d), 999999) AS p
        FROM %s
        ANY INNER JOIN (SELECT user, min(ts) AS birth FROM %s WHERE event = '%s' GROUP BY user) USING user
        WHERE ts >= birth AND ts < birth + %d
    )
    GROUP BY user
)
GROUP BY cohort ORDER BY cohort`,
		cohort, strings.Join(sums, ", "), strings.Join(conds, ", "), ret, unit, table, table, r.birth, int64(r.periods)*unit)
	rows, err := ch.Query(ctx, sql)
	if err != nil {
		return nil, err
	}
	out := make([]string, len(rows))
	for i, row := range rows {
		out[i] = strings.Join(row, " ")
	}
	return out, nil
}

// ourRetention renders query.Retention's cohorts like chRetention.
func ourRetention(ctx context.Context, src *scantest.Mem, r parityRetention) ([]string, error) {
	spec := query.RetentionSpec{
		Range:    query.Range{From: parityFrom, To: parityTo},
		Birth:    query.Step{Event: r.birth},
		Type:     "first_time",
		Unit:     r.unit,
		Periods:  r.periods,
		Brackets: "rolling",
	}
	if r.ret != "" {
		spec.Return = &query.Step{Event: r.ret}
	}
	res, err := query.Retention(ctx, src, parityEnv, spec)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, c := range res.Cohorts {
		if c.Users == nil {
			return nil, fmt.Errorf("cohort %s suppressed", c.Cohort)
		}
		row := []string{c.Cohort, strconv.FormatInt(*c.Users, 10)}
		for k, n := range c.Counts {
			if n == nil {
				return nil, fmt.Errorf("cohort %s period %d suppressed", c.Cohort, k)
			}
			row = append(row, strconv.FormatInt(*n, 10))
		}
		out = append(out, strings.Join(row, " "))
	}
	return out, nil
}

// --- the test

func TestParityWithClickHouse(t *testing.T) {
	ch := chtest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	seed := paritySeed(t)
	rng := rand.New(rand.NewPCG(seed, 1))
	evs := genParity(rng)
	t.Logf("seed %d: %d events of %d users", seed, len(evs), parityUsers)

	if err := ch.Exec(ctx, "CREATE TABLE ev (user UInt64, ts UInt32, event String) ENGINE = MergeTree ORDER BY (user, ts)"); err != nil {
		t.Fatal(err)
	}
	// Three inserts in shuffled order: three parts, none sorted as loaded.
	shuffled := slices.Clone(evs)
	rng.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	for part := range 3 {
		var b []byte
		for _, e := range shuffled[part*len(shuffled)/3 : (part+1)*len(shuffled)/3] {
			b = fmt.Appendf(b, "%d\t%d\t%s\n", e.user, e.ts, e.name)
		}
		if err := ch.Insert(ctx, "ev", b); err != nil {
			t.Fatal(err)
		}
	}
	if rows, err := ch.Query(ctx, "SELECT count(), uniqExact(user), max(ts) < 2147483648 FROM ev"); err != nil {
		t.Fatal(err)
	} else if want := []string{strconv.Itoa(len(evs)), strconv.Itoa(parityUsers), "1"}; len(rows) != 1 || !slices.Equal(rows[0], want) {
		t.Fatalf("ClickHouse holds %q, want %q", rows, want)
	}
	src := memSource(evs)
	byUser := map[uint64][]pevent{}
	for _, e := range evs {
		byUser[e.user] = append(byUser[e.user], e)
	}

	t.Run("funnels", func(t *testing.T) {
		var deep int64 // users through the last step, summed: the data must convert
		diagnosed := 0
		for i, f := range genFunnels(rand.New(rand.NewPCG(seed, 2)), 40) {
			want, err := chFunnel(ctx, ch, "ev", f)
			if err != nil {
				t.Fatal(err)
			}
			got, err := ourFunnel(ctx, src, f)
			if err != nil {
				t.Fatal(err)
			}
			deep += want[len(want)-1]
			if slices.Equal(got, want) {
				t.Logf("funnel %2d %-40s users per step %v", i, f, got)
				continue
			}
			t.Errorf("funnel %d %s: users per step: ours %v, ClickHouse windowFunnel %v", i, f, got, want)
			if diagnosed++; diagnosed > maxDiagnosed {
				continue
			}
			diagnose(t, byUser, func(evs []pevent) (string, string) {
				w, err := chFunnel(ctx, ch, chInline(evs), f)
				if err != nil {
					t.Fatal(err)
				}
				g, err := ourFunnel(ctx, memSource(evs), f)
				if err != nil {
					t.Fatal(err)
				}
				return fmt.Sprint(w), fmt.Sprint(g)
			})
		}
		if deep == 0 {
			t.Error("no user completed any funnel: the comparison proves little")
		}
	})

	t.Run("retention", func(t *testing.T) {
		diagnosed := 0
		for i, r := range genRetentions(rand.New(rand.NewPCG(seed, 3)), 12) {
			want, err := chRetention(ctx, ch, "ev", r)
			if err != nil {
				t.Fatal(err)
			}
			got, err := ourRetention(ctx, src, r)
			if err != nil {
				t.Fatal(err)
			}
			if len(want) == 0 {
				t.Errorf("retention %d %s: ClickHouse has no cohorts (ours: %d)", i, r, len(got))
				continue
			}
			if slices.Equal(got, want) {
				t.Logf("retention %d %s: %d cohorts, first %q", i, r, len(got), got[0])
				continue
			}
			t.Errorf("retention %d %s: cohorts differ (cohort users period0 period1 …):\n%s", i, r, diffRows(got, want))
			if diagnosed++; diagnosed > maxDiagnosed {
				continue
			}
			diagnose(t, byUser, func(evs []pevent) (string, string) {
				w, err := chRetention(ctx, ch, chInline(evs), r)
				if err != nil {
					t.Fatal(err)
				}
				g, err := ourRetention(ctx, memSource(evs), r)
				if err != nil {
					t.Fatal(err)
				}
				return strings.Join(w, "; "), strings.Join(g, "; ")
			})
		}
	})
}

// maxDiagnosed bounds the specs per report whose difference is
// minimised (each takes a few seconds).
const maxDiagnosed = 2

// diagnose finds the users on whom ClickHouse and we disagree (answer
// gives both answers for a set of events), then shrinks the smallest
// one's events while the answers still differ, and logs the result.
func diagnose(t *testing.T, byUser map[uint64][]pevent, answer func([]pevent) (ch, ours string)) {
	t.Helper()
	users := make([]uint64, 0, len(byUser))
	for u := range byUser {
		users = append(users, u)
	}
	slices.Sort(users)
	var bad []uint64
	for _, u := range users {
		if ch, ours := answer(byUser[u]); ch != ours {
			bad = append(bad, u)
		}
	}
	if len(bad) == 0 {
		t.Logf("no single user differs: the difference needs several users")
		return
	}
	slices.SortStableFunc(bad, func(a, b uint64) int { return len(byUser[a]) - len(byUser[b]) })
	evs := slices.Clone(byUser[bad[0]])
	for i := 0; i < len(evs); {
		try := slices.Delete(slices.Clone(evs), i, i+1)
		if ch, ours := answer(try); len(try) > 0 && ch != ours {
			evs = try
			continue
		}
		i++
	}
	ch, ours := answer(evs)
	var lines []string
	for _, e := range evs {
		lines = append(lines, fmt.Sprintf("%s %s (+%ds)", time.Unix(e.ts, 0).UTC().Format(time.DateTime), e.name, e.ts-evs[0].ts))
	}
	t.Errorf("%d of %d users differ; minimal case from user %d (%d events):\n  %s\nClickHouse: %s\nours:       %s",
		len(bad), len(users), bad[0], len(byUser[bad[0]]), strings.Join(lines, "\n  "), ch, ours)
}

// diffRows lists the cohort rows (keyed by their first field) that differ.
func diffRows(ours, ch []string) string {
	key := func(row string) string { k, _, _ := strings.Cut(row, " "); return k }
	o, c := map[string]string{}, map[string]string{}
	var keys []string
	for _, r := range ours {
		o[key(r)] = r
		keys = append(keys, key(r))
	}
	for _, r := range ch {
		c[key(r)] = r
		keys = append(keys, key(r))
	}
	slices.Sort(keys)
	var b strings.Builder
	for _, k := range slices.Compact(keys) {
		if o[k] != c[k] {
			fmt.Fprintf(&b, "  ours:       %s\n  ClickHouse: %s\n", o[k], c[k])
		}
	}
	return b.String()
}

func parseInts(fields []string) ([]int64, error) {
	out := make([]int64, len(fields))
	for i, f := range fields {
		n, err := strconv.ParseInt(f, 10, 64)
		if err != nil {
			return nil, err
		}
		out[i] = n
	}
	return out, nil
}
