package query

import (
	"context"
	"time"

	"github.com/veil-analytics/veil/internal/scan"
)

// RetentionCohort is the users born in one interval and how many of them
// came back in each period after. Null counts are suppressed.
type RetentionCohort struct {
	Cohort string     `json:"cohort"`
	Users  *int64     `json:"users"`
	Counts []*int64   `json:"counts"`
	Rates  []*float64 `json:"rates"`
	// Incomplete periods have not fully elapsed yet.
	Incomplete []bool `json:"incomplete"`
	Suppressed bool   `json:"suppressed,omitempty"`
}

// RetentionTable is the cohorts of one segment and their weighted average
// over complete periods.
type RetentionTable struct {
	Segment any               `json:"segment,omitempty"`
	Cohorts []RetentionCohort `json:"cohorts"`
	Average []*float64        `json:"average"`
}

// RetentionResult answers a RetentionSpec.
type RetentionResult struct {
	From     string `json:"from"`
	To       string `json:"to"`
	Type     string `json:"type"`
	Unit     string `json:"unit"`
	Mode     string `json:"mode"`
	Brackets string `json:"brackets"`
	RetentionTable
	Breakdown []RetentionTable `json:"breakdown,omitempty"`
}

type retention struct {
	spec      RetentionSpec
	w         window
	birth     *step
	ret       *step
	recurring bool
	onOrAfter bool
	calendar  bool
	unit      string
	unitMs    int64
	periods   int
	cohorts   *buckets
	global    conds
	bd        *breakdownSpec
}

// retAgg counts one segment's cohorts.
type retAgg struct {
	users  []int64   // per cohort
	counts [][]int64 // per cohort, per period
}

func newRetAgg(cohorts, periods int) *retAgg {
	a := &retAgg{users: make([]int64, cohorts), counts: make([][]int64, cohorts)}
	for i := range a.counts {
		a.counts[i] = make([]int64, periods)
	}
	return a
}

func (a *retAgg) merge(o *retAgg) {
	for i := range a.users {
		a.users[i] += o.users[i]
		for k := range a.counts[i] {
			a.counts[i][k] += o.counts[i][k]
		}
	}
}

// Retention runs a retention report.
func Retention(ctx context.Context, src scan.Source, env Env, spec RetentionSpec) (*RetentionResult, error) {
	s := newSession(ctx, src, &env)
	r := &retention{spec: spec}
	p := s.plan
	var err error
	if r.w, err = spec.Range.resolve(env.TimeZone, ""); err != nil {
		return nil, err
	}
	if r.birth, err = p.compileStep(spec.Birth, "/birth"); err != nil {
		return nil, err
	}
	ret := Step{Event: AnyEvent}
	if spec.Return != nil {
		ret = *spec.Return
	}
	if r.ret, err = p.compileStep(ret, "/return"); err != nil {
		return nil, err
	}
	switch spec.Type {
	case "", "first_time":
	case "recurring":
		r.recurring = true
	default:
		return nil, specErr("/type", "must be first_time or recurring, not %q", spec.Type)
	}
	switch spec.Mode {
	case "", "on":
	case "on_or_after":
		r.onOrAfter = true
	default:
		return nil, specErr("/mode", "must be on or on_or_after, not %q", spec.Mode)
	}
	switch spec.Brackets {
	case "", "rolling":
	case "calendar":
		r.calendar = true
	default:
		return nil, specErr("/brackets", "must be rolling or calendar, not %q", spec.Brackets)
	}
	r.unit = spec.Unit
	switch r.unit {
	case "day":
		r.unitMs = 86_400_000
	case "", "week":
		r.unit, r.unitMs = "week", 7*86_400_000
	case "month":
		r.unitMs = 30 * 86_400_000 // rolling months are 30 days, as Mixpanel's
	default:
		return nil, specErr("/unit", "must be day, week or month, not %q", spec.Unit)
	}
	r.periods = spec.Periods
	if r.periods == 0 {
		r.periods = 8
	}
	if r.periods < 1 || r.periods > 120 {
		return nil, specErr("/periods", "must be 1 to 120")
	}
	if r.cohorts, err = newBuckets(r.w, r.unit, "/unit"); err != nil {
		return nil, err
	}
	if r.global, err = p.compileFilters(spec.Filters, "/filters"); err != nil {
		return nil, err
	}
	if spec.Breakdown != nil {
		if r.bd, err = p.compileBreakdown(*spec.Breakdown, "/breakdown"); err != nil {
			return nil, err
		}
	}
	if spec.Limit < 0 || spec.Limit > 1000 {
		return nil, specErr("/limit", "must be 1 to 1000")
	}
	if cells := r.cohorts.n() * (r.periods + 1); cells > env.maxCells() {
		return nil, &TooLargeError{Cells: cells, Max: env.maxCells()}
	}
	if err := s.prepare(); err != nil {
		return nil, err
	}
	return r.run(s)
}

// periodEnd is the end of the last period of a birth at t, for the scan.
func (r *retention) horizon() int64 {
	return r.w.To + int64(r.periods+1)*r.unitMs + 31*86_400_000
}

// period returns which period after a birth at b (in cohort bucket c) an
// event at t falls in, or -1 beyond the last.
func (r *retention) period(b int64, t int64) int {
	var k int64
	if r.calendar {
		k = int64(calendarUnits(r.unit, b, t, r.w.Loc))
	} else {
		k = (t - b) / r.unitMs
	}
	if k < 0 || k >= int64(r.periods) {
		return -1
	}
	return int(k)
}

// calendarUnits counts calendar units (days, Monday weeks, months) from
// the one holding a to the one holding b.
func calendarUnits(unit string, a, b int64, loc *time.Location) int {
	ta, tb := time.UnixMilli(a).In(loc), time.UnixMilli(b).In(loc)
	switch unit {
	case "month":
		return (tb.Year()-ta.Year())*12 + int(tb.Month()) - int(ta.Month())
	}
	da := time.Date(ta.Year(), ta.Month(), ta.Day(), 12, 0, 0, 0, time.UTC)
	db := time.Date(tb.Year(), tb.Month(), tb.Day(), 12, 0, 0, 0, time.UTC)
	days := int(db.Sub(da).Round(24*time.Hour) / (24 * time.Hour))
	if unit == "week" {
		wa := (int(da.Weekday()) + 6) % 7
		return (days + wa) / 7
	}
	return days
}

func (r *retention) run(s *session) (*RetentionResult, error) {
	req := scan.Request{To: r.horizon()}
	if r.recurring {
		req.From = r.w.From
	}
	req.Events = eventFilter(r.birth, r.ret)
	nc := r.cohorts.n()
	type worker struct {
		all  *retAgg
		segs map[scan.Value]*retAgg
	}
	var workers perWorker[*worker]
	err := s.scan(req, func(int) func(*scan.Sequence, *userCtx) error {
		wk := &worker{all: newRetAgg(nc, r.periods), segs: map[scan.Value]*retAgg{}}
		workers.add(wk)
		hit := make([]bool, r.periods)
		var segs []scan.Value
		return func(q *scan.Sequence, u *userCtx) error {
			if !r.global.matchUser(u) {
				return nil
			}
			lastCohort := -1
			for b := 0; b < q.Len(); b++ {
				if !r.birth.matches(q, b, u) || !r.global.matchEvent(q, b) {
					continue
				}
				c := r.cohorts.index(q.Times[b])
				if r.recurring && (c < 0 || c == lastCohort) {
					continue // one birth per user and cohort: the first
				}
				lastCohort = c
				if c >= 0 {
					r.count(q, u, b, c, hit, wk.all)
					if r.bd != nil {
						segs = r.bd.values(q, b, u, segs[:0])
						for _, v := range segs {
							a := wk.segs[v]
							if a == nil {
								a = newRetAgg(nc, r.periods)
								wk.segs[v] = a
							}
							r.count(q, u, b, c, hit, a)
						}
					}
				}
				if !r.recurring {
					return nil // first time ever: only the user's first birth counts
				}
			}
			return nil
		}
	})
	if err != nil {
		return nil, err
	}
	all := newRetAgg(nc, r.periods)
	segs := map[scan.Value]*retAgg{}
	for _, wk := range workers.vals {
		all.merge(wk.all)
		for v, a := range wk.segs {
			if segs[v] == nil {
				segs[v] = newRetAgg(nc, r.periods)
			}
			segs[v].merge(a)
		}
	}
	res := &RetentionResult{From: r.spec.From, To: r.spec.To, Type: "first_time", Unit: r.unit, Mode: "on", Brackets: "rolling"}
	if r.recurring {
		res.Type = "recurring"
	}
	if r.onOrAfter {
		res.Mode = "on_or_after"
	}
	if r.calendar {
		res.Brackets = "calendar"
	}
	res.RetentionTable = r.table(s.env, all)
	if r.bd != nil {
		limit := r.spec.Limit
		if r.bd.cohorts != nil {
			limit = len(r.bd.cohorts) + 1 // chosen cohorts are never folded: a user may be in several
		}
		for _, g := range topSegments(segs, limit, func(a *retAgg) int64 {
			var n int64
			for _, u := range a.users {
				n += u
			}
			return n
		}, func(dst, src *retAgg) { dst.merge(src) }, func() *retAgg { return newRetAgg(nc, r.periods) }) {
			t := r.table(s.env, g.agg)
			t.Segment = g.label
			res.Breakdown = append(res.Breakdown, t)
		}
	}
	return res, nil
}

// count adds the user born at position b (cohort c) to a.
func (r *retention) count(q *scan.Sequence, u *userCtx, b, c int, hit []bool, a *retAgg) {
	clear(hit)
	bt := q.Times[b]
	last := -1
	for j := b + 1; j < q.Len(); j++ {
		if !r.calendar && q.Times[j]-bt >= int64(r.periods)*r.unitMs {
			break
		}
		if !r.ret.matches(q, j, u) || !r.global.matchEvent(q, j) {
			continue
		}
		k := r.period(bt, q.Times[j])
		if k < 0 {
			if r.calendar && q.Times[j] > bt {
				break
			}
			continue
		}
		hit[k] = true
		last = max(last, k)
	}
	a.users[c]++
	for k := range hit {
		if hit[k] || r.onOrAfter && k <= last {
			a.counts[c][k]++
		}
	}
}

// table renders a segment's cohorts with the threshold and the average.
func (r *retention) table(env *Env, a *retAgg) RetentionTable {
	now := env.now().UnixMilli()
	t := RetentionTable{}
	sumW := make([]float64, r.periods)
	sumC := make([]float64, r.periods)
	for c := range a.users {
		if a.users[c] == 0 {
			continue
		}
		rc := RetentionCohort{Cohort: r.cohorts.labels[c], Counts: make([]*int64, r.periods),
			Rates: make([]*float64, r.periods), Incomplete: make([]bool, r.periods)}
		end := r.cohorts.starts[c+1] // the last birth of the cohort is before this
		for k := 0; k < r.periods; k++ {
			var periodEnd int64
			if r.calendar { // period k is the k-th calendar unit after the birth's
				periodEnd = addUnits(r.unit, unitStart(r.unit, r.cohorts.starts[c], r.w.Loc), k+1, r.w.Loc)
			} else {
				periodEnd = end + int64(k+1)*r.unitMs
			}
			rc.Incomplete[k] = periodEnd > now
		}
		if env.suppressed(a.users[c]) {
			rc.Suppressed = true
			t.Cohorts = append(t.Cohorts, rc)
			continue
		}
		rc.Users = ptr(a.users[c])
		for k := 0; k < r.periods; k++ {
			n := a.counts[c][k]
			if env.suppressed(n) {
				continue
			}
			rc.Counts[k] = ptr(n)
			rc.Rates[k] = ptr(float64(n) / float64(a.users[c]))
			if !rc.Incomplete[k] {
				sumW[k] += float64(a.users[c])
				sumC[k] += float64(n)
			}
		}
		t.Cohorts = append(t.Cohorts, rc)
	}
	t.Average = make([]*float64, r.periods)
	for k := range t.Average {
		if sumW[k] > 0 {
			t.Average[k] = ptr(sumC[k] / sumW[k])
		}
	}
	return t
}

// unitStart is the start of the calendar unit (day, Monday week, month)
// holding t, in loc.
func unitStart(unit string, t int64, loc *time.Location) int64 {
	tt := time.UnixMilli(t).In(loc)
	switch unit {
	case "week":
		return time.Date(tt.Year(), tt.Month(), tt.Day()-(int(tt.Weekday())+6)%7, 0, 0, 0, 0, loc).UnixMilli()
	case "month":
		return time.Date(tt.Year(), tt.Month(), 1, 0, 0, 0, 0, loc).UnixMilli()
	}
	return time.Date(tt.Year(), tt.Month(), tt.Day(), 0, 0, 0, 0, loc).UnixMilli()
}

// addUnits adds n calendar units to t (ms) in loc.
func addUnits(unit string, t int64, n int, loc *time.Location) int64 {
	tt := time.UnixMilli(t).In(loc)
	switch unit {
	case "day":
		return time.Date(tt.Year(), tt.Month(), tt.Day()+n, tt.Hour(), tt.Minute(), 0, 0, loc).UnixMilli()
	case "week":
		return time.Date(tt.Year(), tt.Month(), tt.Day()+7*n, tt.Hour(), tt.Minute(), 0, 0, loc).UnixMilli()
	}
	return time.Date(tt.Year(), tt.Month()+time.Month(n), tt.Day(), tt.Hour(), tt.Minute(), 0, 0, loc).UnixMilli()
}
