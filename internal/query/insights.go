package query

import (
	"cmp"
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"strconv"
	"time"

	"github.com/veil-analytics/veil/internal/scan"
)

// InsightsRow is one segment of a series: a value per interval and over
// the whole range. Null values are suppressed or undefined (an average
// of nothing, a division by zero).
type InsightsRow struct {
	// Segment holds the breakdown values ("$other" for the folded rest,
	// "$none" for absent); empty without breakdowns.
	Segment    []any      `json:"segment,omitempty"`
	Values     []*float64 `json:"values"`
	Total      *float64   `json:"total"`
	Suppressed bool       `json:"suppressed,omitempty"`
}

// InsightsSeries is one series (or formula) of an Insights answer.
type InsightsSeries struct {
	Name    string `json:"name"`
	Event   string `json:"event,omitempty"`
	Measure string `json:"measure,omitempty"`
	// Buckets label the values of a distribution (users by their number
	// of events); other measures have one value per interval.
	Buckets []string      `json:"buckets,omitempty"`
	Rows    []InsightsRow `json:"rows"`
}

// InsightsResult answers an InsightsSpec.
type InsightsResult struct {
	From      string           `json:"from"`
	To        string           `json:"to"`
	Interval  string           `json:"interval"`
	Intervals []string         `json:"intervals"`
	Series    []InsightsSeries `json:"series"`
	Formulas  []InsightsSeries `json:"formulas,omitempty"`
	// Previous is the same report over the period just before.
	Previous *InsightsResult `json:"previous,omitempty"`
}

// distEdges start the buckets of the distribution measure.
var distEdges = []int64{1, 2, 3, 4, 5, 6, 11, 21, 51, 101, 501, 1001}

type series struct {
	spec    Series
	st      *step
	measure string
	kind    measureKind
	agg     string // for per_user
	col     int    // numeric property column, -1 for none
	conds
}

type insights struct {
	spec     InsightsSpec
	interval string
	series   []*series
	global   conds
	bds      []*breakdownSpec
	limit    int
	formulas []*formula
}

// Insights runs an insights report.
func Insights(ctx context.Context, src scan.Source, env Env, spec InsightsSpec) (*InsightsResult, error) {
	s := newSession(ctx, src, &env)
	in, err := compileInsights(s.plan, spec)
	if err != nil {
		return nil, err
	}
	w, err := spec.Range.resolve(env.TimeZone, "")
	if err != nil {
		return nil, err
	}
	if err := s.prepare(); err != nil {
		return nil, err
	}
	res, err := in.run(s, w)
	if err != nil {
		return nil, err
	}
	if spec.ComparePrevious {
		// As many calendar days just before (days may be 23 or 25 hours).
		f0, t0 := timeIn(w.From, w.Loc), timeIn(w.To-1, w.Loc)
		days := int(time.Date(t0.Year(), t0.Month(), t0.Day(), 12, 0, 0, 0, time.UTC).Sub(
			time.Date(f0.Year(), f0.Month(), f0.Day(), 12, 0, 0, 0, time.UTC)).Hours()/24) + 1
		prev := window{Loc: w.Loc}
		from := time.Date(f0.Year(), f0.Month(), f0.Day()-days, 0, 0, 0, 0, w.Loc)
		prev.From, prev.To = from.UnixMilli(), w.From
		p, err := in.run(s, prev)
		if err != nil {
			return nil, err
		}
		p.From, p.To = from.Format(dateLayout), timeIn(w.From-1, w.Loc).Format(dateLayout)
		res.Previous = p
	}
	return res, nil
}

func compileInsights(p *plan, spec InsightsSpec) (*insights, error) {
	in := &insights{spec: spec, interval: spec.Interval, limit: spec.Limit}
	if in.interval == "" {
		in.interval = "day"
	}
	if n := len(spec.Series); n < 1 || n > 26 {
		return nil, specErr("/series", "an insights report has 1 to 26 series, not %d", n)
	}
	for i, sp := range spec.Series {
		ptr := fmt.Sprintf("/series/%d", i)
		st, err := p.compileStep(sp.Step, ptr)
		if err != nil {
			return nil, err
		}
		se := &series{spec: sp, st: st, measure: sp.Measure, col: -1}
		if se.measure == "" {
			se.measure = "total"
		}
		switch se.measure {
		case "total", "unique", "distribution":
			if sp.Property != "" {
				return nil, specErr(ptr+"/property", "not used by measure %s", se.measure)
			}
		case "sum", "avg", "min", "max", "median", "p90":
			if sp.Property == "" {
				return nil, specErr(ptr+"/property", "required for measure %s (a numeric event property)", se.measure)
			}
			se.col = p.eventProp(sp.Property)
		case "per_user":
			if sp.Property != "" {
				se.col = p.eventProp(sp.Property)
			}
			se.agg = sp.PerUser
			switch se.agg {
			case "avg", "median", "min", "max", "p90", "sum":
			case "":
				return nil, specErr(ptr+"/per_user", "required for measure per_user (avg, median, min, max, p90 or sum)")
			default:
				return nil, specErr(ptr+"/per_user", "must be avg, median, min, max, p90 or sum, not %q", se.agg)
			}
		default:
			return nil, specErr(ptr+"/measure", "must be total, unique, sum, avg, min, max, median, p90, per_user or distribution, not %q", se.measure)
		}
		se.kind = kindOf(se.measure)
		if se.measure != "per_user" && sp.PerUser != "" {
			return nil, specErr(ptr+"/per_user", "only for measure per_user")
		}
		in.series = append(in.series, se)
	}
	var err error
	if in.global, err = p.compileFilters(spec.Filters, "/filters"); err != nil {
		return nil, err
	}
	if len(spec.Breakdowns) > 2 {
		return nil, specErr("/breakdowns", "at most 2 breakdowns")
	}
	for i, b := range spec.Breakdowns {
		bd, err := p.compileBreakdown(b, fmt.Sprintf("/breakdowns/%d", i))
		if err != nil {
			return nil, err
		}
		in.bds = append(in.bds, bd)
	}
	if in.limit == 0 {
		in.limit = 25
	}
	if in.limit < 1 || in.limit > 1000 {
		return nil, specErr("/limit", "must be 1 to 1000")
	}
	for i, f := range spec.Formulas {
		fm, err := parseFormula(f, len(spec.Series), fmt.Sprintf("/formulas/%d", i))
		if err != nil {
			return nil, err
		}
		in.formulas = append(in.formulas, fm)
	}
	switch in.interval {
	case "hour", "day", "week", "month", "none":
	default:
		return nil, specErr("/interval", "must be hour, day, week, month or none, not %q", in.interval)
	}
	return in, nil
}

func timeIn(ms int64, loc *time.Location) time.Time { return time.UnixMilli(ms).In(loc) }

// cell aggregates one segment of one series, per bucket (the last index
// is the whole range).
type cell struct {
	key    string
	id     int // the worker's number for the cell, for user masks
	events []int64
	users  []int64
	single []int64 // users who touched no other cell of the series in the bucket
	sum    []float64
	min    []float64
	max    []float64
	vals   [][]float64 // median, p90, per_user: the values
	stamp  []uint64    // the user who last touched each bucket
	cur    []float64   // that user's running count or sum
	dist   []int64     // distribution buckets
	// The row pass's users: a worker's sets, and after merging, every
	// worker's sets per bucket.
	sets  []idSet
	parts [][]*idSet
	gen   uint64 // the row pass's run that last touched the cell
}

func newCell(key string, nb int, se *series) *cell {
	c := &cell{key: key, events: make([]int64, nb), users: make([]int64, nb), single: make([]int64, nb), stamp: make([]uint64, nb)}
	switch se.measure {
	case "sum", "avg":
		c.sum = make([]float64, nb)
	case "min", "max":
		c.min, c.max = make([]float64, nb), make([]float64, nb)
		for i := range c.min {
			c.min[i], c.max[i] = math.Inf(1), math.Inf(-1)
		}
	case "median", "p90":
		c.vals = make([][]float64, nb)
	case "per_user":
		c.vals = make([][]float64, nb)
		c.cur = make([]float64, nb)
	case "distribution":
		c.cur = make([]float64, nb)
		c.dist = make([]int64, len(distEdges))
	}
	return c
}

func (c *cell) merge(o *cell) {
	for b := range c.events {
		c.events[b] += o.events[b]
		c.users[b] += o.users[b]
		c.single[b] += o.single[b]
		if c.sum != nil {
			c.sum[b] += o.sum[b]
		}
		if c.min != nil {
			c.min[b] = min(c.min[b], o.min[b])
			c.max[b] = max(c.max[b], o.max[b])
		}
		if c.vals != nil {
			c.vals[b] = append(c.vals[b], o.vals[b]...)
		}
	}
	for i := range c.dist {
		c.dist[i] += o.dist[i]
	}
	if o.sets != nil || o.parts != nil {
		if c.parts == nil {
			c.parts = make([][]*idSet, len(c.events))
		}
		for b := range c.parts {
			if o.sets != nil {
				c.parts[b] = append(c.parts[b], &o.sets[b])
			}
			if o.parts != nil {
				c.parts[b] = append(c.parts[b], o.parts[b]...)
			}
		}
	}
}

// insWorker is one scan worker's cells.
type insWorker struct {
	in     *insights
	bk     *buckets
	byCode [][]*cell       // per series, with one event-property breakdown: cells by value code
	fold   map[string]bool // with a second pass: the kept segments
	series []*series       // copies with the worker's own steps
	global conds
	cells  []map[string]*cell
	byID   [][]*cell
	// multi counts, per series and bucket, the users who touched several
	// cells, by the mask of their cell ids: what $other's uniques need
	// besides the cells' single users. overflow marks a series with more
	// than 64 cells, whose $other needs a second pass.
	multi    [][]map[uint64]int64
	overflow []bool

	touched []touch
	gen     uint64
	segs    [][]scan.Value
	keyBuf  []byte
	mask    []uint64
	maskN   []int32
	maskC   []*cell
	maskGen []uint64
	maskBs  []int

	// The row pass (see insights_rows.go): the current user and their
	// context; per batch, the rows passing the global event conditions,
	// and per run, the user's profile and whether they pass the global
	// user conditions.
	simple   bool // one breakdown, by an event property (see addEvent)
	rows     bool
	same     []int // per series, an earlier one with the same cells, or -1
	user     uint64
	uc       userCtx
	pass     []bool
	runOK    []bool
	runProps [][]scan.Value
	// countRows's per-code counts, run stamps and lists, and codes of
	// zeros for series without breakdowns.
	hist         []int64
	seen         []uint64
	touchedCodes []uint32
	runCodes     []uint32
	zeros        []uint32
}

type touch struct {
	c *cell
	b int
}

// passResult is one scan's cells merged by key, and the workers' masks
// (or, from a row pass, the cells' user sets).
type passResult struct {
	cells   []map[string]*cell
	workers []*insWorker
	rows    bool
}

func (in *insights) run(s *session, w window) (*InsightsResult, error) {
	bk, err := newBuckets(w, in.interval, "/interval")
	if err != nil {
		return nil, err
	}
	if cells := bk.n() * len(in.series); cells > s.env.maxCells() {
		return nil, &TooLargeError{Cells: cells, Max: s.env.maxCells()}
	}
	var pr passResult
	if in.rowsFit(s) {
		pr, err = in.rowPass(s, w, bk)
	} else {
		pr, err = in.pass(s, w, bk, nil)
	}
	if err != nil {
		return nil, err
	}
	cells := pr.cells
	union := map[string]bool{}
	for _, m := range cells {
		for k := range m {
			union[k] = true
		}
	}
	if len(in.bds) > 0 && len(union) > in.limit {
		// Keep the top segments of all series by the first series over
		// the range and fold the rest into $other.
		keys := make([]string, 0, len(union))
		for k := range union {
			keys = append(keys, k)
		}
		first := in.series[0]
		empty := newCell("", bk.n()+1, first)
		rank := func(k string) float64 {
			if c := cells[0][k]; c != nil {
				return orZero(first.value(c, bk.n()))
			}
			return orZero(first.value(empty, bk.n())) // no events: a sum of 0, an average of nothing
		}
		slices.SortFunc(keys, func(a, b string) int {
			if c := cmp.Compare(rank(b), rank(a)); c != 0 {
				return c
			}
			return cmp.Compare(a, b)
		})
		keep := map[string]bool{}
		for _, k := range keys[:in.limit] {
			keep[k] = true
		}
		if in.foldable(pr) {
			cells = in.foldOther(pr, keep, bk.n()+1)
		} else if pr, err = in.pass(s, w, bk, keep); err != nil {
			return nil, err
		} else {
			cells = pr.cells
		}
	}
	if len(cells[0])*bk.n()*len(in.series) > s.env.maxCells() {
		return nil, &TooLargeError{Cells: len(cells[0]) * bk.n() * len(in.series), Max: s.env.maxCells()}
	}
	return in.answer(s.env, w, bk, cells), nil
}

// foldable reports whether $other can be made of the first pass's cells:
// its uniques come from the user masks, and no measure needs a user's
// values across segments.
func (in *insights) foldable(pr passResult) bool {
	if pr.rows {
		return true // users from sets; no per-user measures
	}
	for si, se := range in.series {
		if se.measure == "per_user" || se.measure == "distribution" {
			return false
		}
		for _, iw := range pr.workers {
			if iw.overflow[si] {
				return false
			}
		}
	}
	return true
}

// foldOther merges the cells not kept into $other; its users are those
// who touched only folded cells in a bucket plus those of several cells
// one of which is folded.
func (in *insights) foldOther(pr passResult, keep map[string]bool, nb int) []map[string]*cell {
	out := make([]map[string]*cell, len(pr.cells))
	for si, m := range pr.cells {
		other := newCell(otherKey, nb, in.series[si])
		out[si] = map[string]*cell{}
		for k, c := range m {
			if keep[k] {
				out[si][k] = c
				continue
			}
			other.merge(c)
		}
		if pr.rows {
			var dc distinctCounter
			countUsers(&dc, other, nb-1)
			out[si][otherKey] = other
			continue
		}
		copy(other.users, other.single)
		for _, iw := range pr.workers {
			var folded uint64
			for id, c := range iw.byID[si] {
				if !keep[c.key] {
					folded |= 1 << id
				}
			}
			for b, masks := range iw.multi[si] {
				for mask, n := range masks {
					if mask&folded != 0 {
						other.users[b] += n
					}
				}
			}
		}
		out[si][otherKey] = other
	}
	return out
}

func orZero(p *float64) float64 {
	if p == nil {
		return math.Inf(-1)
	}
	return *p
}

// pass scans once and returns every series' cells by segment key.
func (in *insights) pass(s *session, w window, bk *buckets, keep map[string]bool) (passResult, error) {
	steps := make([]*step, len(in.series))
	for i, se := range in.series {
		steps[i] = se.st
	}
	req := scan.Request{From: w.From, To: w.To, Events: eventFilter(steps...)}
	var workers perWorker[*insWorker]
	err := s.scan(req, func(int) func(*scan.Sequence, *userCtx) error {
		iw := in.newWorker(bk, keep)
		workers.add(iw)
		return iw.visit
	})
	if err != nil {
		return passResult{}, err
	}
	return in.merge(workers.vals, bk.n()+1), nil
}

// newWorker makes a scan worker's state; keep, when not nil, folds the
// segments it does not hold into $other.
func (in *insights) newWorker(bk *buckets, keep map[string]bool) *insWorker {
	nb := bk.n() + 1
	iw := &insWorker{in: in, bk: bk, fold: keep, global: in.global.clone(),
		simple: len(in.bds) == 1 && !in.bds[0].perUser(),
		cells:  make([]map[string]*cell, len(in.series)), byID: make([][]*cell, len(in.series)),
		multi: make([][]map[uint64]int64, len(in.series)), overflow: make([]bool, len(in.series)),
		segs: make([][]scan.Value, len(in.bds)), byCode: make([][]*cell, len(in.series)),
		mask: make([]uint64, nb), maskN: make([]int32, nb), maskC: make([]*cell, nb), maskGen: make([]uint64, nb)}
	for i, se := range in.series {
		cp := *se
		cp.st = se.st.clone()
		iw.series = append(iw.series, &cp)
		iw.cells[i] = map[string]*cell{}
		iw.multi[i] = make([]map[uint64]int64, nb)
		for b := range iw.multi[i] {
			iw.multi[i][b] = map[uint64]int64{}
		}
	}
	return iw
}

// merge adds up the workers' cells by key.
func (in *insights) merge(workers []*insWorker, nb int) passResult {
	out := make([]map[string]*cell, len(in.series))
	for i := range out {
		out[i] = map[string]*cell{}
		for _, iw := range workers {
			for k, c := range iw.cells[i] {
				if k != c.key {
					continue // a value folded into $other
				}
				if o := out[i][k]; o != nil {
					o.merge(c)
				} else {
					cp := newCell(k, nb, in.series[i])
					cp.merge(c)
					out[i][k] = cp
				}
			}
		}
	}
	return passResult{cells: out, workers: workers}
}

// segKey encodes breakdown values as one map key.
func segKey(dst []byte, vals []scan.Value) []byte {
	if len(vals) == 1 {
		return append(dst, vals[0]...)
	}
	for _, v := range vals {
		dst = binary.AppendUvarint(dst, uint64(len(v)))
		dst = append(dst, v...)
	}
	return dst
}

func (iw *insWorker) visit(q *scan.Sequence, u *userCtx) error {
	if !iw.global.matchUser(u) {
		return nil
	}
	nb := iw.bk.n()
	for si, se := range iw.series {
		if len(se.st.user) > 0 && !se.st.matchUser(u) {
			continue
		}
		iw.gen++
		cur := bucketCursor{b: iw.bk}
		for i, t := range q.Times {
			if se.st.none || !se.st.any && q.Events[i] != se.st.code ||
				!se.st.matchEvent(q, i) || !iw.global.matchEvent(q, i) {
				continue
			}
			b := cur.at(t)
			if b < 0 {
				continue
			}
			iw.addEvent(si, se, q, i, u, b, nb)
		}
		iw.closeUser(si, nb)
	}
	return nil
}

// addEvent adds event i of q, in bucket b, to its cells: the one cell
// without breakdowns; with one breakdown by an event property, the cell
// of its value code (events of a user mostly repeat a value, which then
// finds its cell without hashing); else the cell of every combination of
// its breakdown values.
func (iw *insWorker) addEvent(si int, se *series, q *scan.Sequence, i int, u *userCtx, b, nb int) {
	switch {
	case len(iw.in.bds) == 0:
		iw.add(se, iw.codeCell(si, se, q, -1, 0), q, i, b, nb)
	case iw.simple:
		col := iw.in.bds[0].col
		iw.add(se, iw.codeCell(si, se, q, col, q.Props[col][i]), q, i, b, nb)
	default:
		iw.eachSegment(si, se, q, i, u, b, nb)
	}
}

// codeCell is the series' cell of value code h of event property column
// col (-1: the one cell without breakdowns).
func (iw *insWorker) codeCell(si int, se *series, q *scan.Sequence, col int, h uint32) *cell {
	byCode := iw.byCode[si]
	if int(h) >= len(byCode) {
		byCode = append(byCode, make([]*cell, int(h)+1-len(byCode))...)
		iw.byCode[si] = byCode
	}
	if c := byCode[h]; c != nil {
		return c
	}
	key := ""
	if col >= 0 {
		var v scan.Value // absent for code 0
		if h != 0 {
			v = q.Dicts[col][h-1]
		}
		key = string(segmentValue(v))
	}
	c := iw.cellFor(si, se, key)
	byCode[h] = c
	return c
}

// closeUser counts the user once per bucket of every cell they touched,
// records their per-user values, and their mask where they touched
// several cells.
func (iw *insWorker) closeUser(si, nb int) {
	masks := len(iw.in.bds) > 0
	iw.maskBs = iw.maskBs[:0]
	for _, t := range iw.touched {
		c, b := t.c, t.b
		c.users[b]++
		if c.dist != nil && b == nb {
			n := int64(c.cur[b])
			j, _ := slices.BinarySearch(distEdges, n+1)
			c.dist[j-1]++
		}
		if c.cur != nil {
			if c.vals != nil {
				c.vals[b] = append(c.vals[b], c.cur[b])
			}
			c.cur[b] = 0
		}
		if !masks {
			c.single[b]++
			continue
		}
		if iw.maskGen[b] != iw.gen {
			iw.maskGen[b], iw.mask[b], iw.maskN[b], iw.maskC[b] = iw.gen, 0, 0, c
			iw.maskBs = append(iw.maskBs, b)
		}
		iw.maskN[b]++
		if c.id < 64 {
			iw.mask[b] |= 1 << c.id
		} else {
			iw.overflow[si] = true
		}
	}
	for _, b := range iw.maskBs {
		if iw.maskN[b] == 1 {
			iw.maskC[b].single[b]++
		} else {
			iw.multi[si][b][iw.mask[b]]++
		}
	}
	iw.touched = iw.touched[:0]
}

// eachSegment adds event i to the cell of every combination of its
// breakdown values.
func (iw *insWorker) eachSegment(si int, se *series, q *scan.Sequence, i int, u *userCtx, b, nb int) {
	for k, bd := range iw.in.bds {
		iw.segs[k] = bd.values(q, i, u, iw.segs[k][:0])
	}
	var combo [2]scan.Value
	var rec func(k int)
	rec = func(k int) {
		if k == len(iw.segs) {
			iw.keyBuf = segKey(iw.keyBuf[:0], combo[:k])
			iw.add(se, iw.cellForBytes(si, se, iw.keyBuf), q, i, b, nb)
			return
		}
		for _, v := range iw.segs[k] {
			combo[k] = v
			rec(k + 1)
		}
	}
	rec(0)
}

// otherKey is the segment key of $other: no real key starts with 0xff.
const otherKey = "\xff$other"

func (iw *insWorker) cellFor(si int, se *series, key string) *cell {
	if c := iw.cells[si][key]; c != nil {
		return c
	}
	return iw.newCellFor(si, se, key)
}

// cellForBytes is cellFor without allocating a key that exists.
func (iw *insWorker) cellForBytes(si int, se *series, key []byte) *cell {
	if c := iw.cells[si][string(key)]; c != nil {
		return c
	}
	return iw.newCellFor(si, se, string(key))
}

func (iw *insWorker) newCellFor(si int, se *series, key string) *cell {
	if iw.fold != nil && key != otherKey && !iw.fold[key] {
		if c := iw.cells[si][otherKey]; c != nil {
			iw.cells[si][key] = c // later events of the value find it at once
			return c
		}
		c := iw.newCellFor(si, se, otherKey)
		iw.cells[si][key] = c
		return c
	}
	c := newCell(key, iw.bk.n()+1, se)
	if iw.rows {
		c.sets = make([]idSet, iw.bk.n()+1)
	}
	c.id = len(iw.byID[si])
	iw.byID[si] = append(iw.byID[si], c)
	iw.cells[si][key] = c
	return c
}

// measureKind is Series.Measure for the per-event loop.
type measureKind uint8

const (
	mCount measureKind = iota // total, unique
	mSum                      // sum, avg
	mMinMax
	mValues // median, p90
	mPerUser
	mDist
)

func kindOf(measure string) measureKind {
	switch measure {
	case "sum", "avg":
		return mSum
	case "min", "max":
		return mMinMax
	case "median", "p90":
		return mValues
	case "per_user":
		return mPerUser
	case "distribution":
		return mDist
	}
	return mCount
}

// add counts event i of q in bucket b and in the range total of c.
func (iw *insWorker) add(se *series, c *cell, q *scan.Sequence, i, b, nb int) {
	if iw.rows {
		iw.addRow(se, c, q, i, b)
		return
	}
	if se.kind == mCount {
		if c.stamp[b] != iw.gen {
			c.stamp[b] = iw.gen
			iw.touched = append(iw.touched, touch{c, b})
		}
		if c.stamp[nb] != iw.gen {
			c.stamp[nb] = iw.gen
			iw.touched = append(iw.touched, touch{c, nb})
		}
		c.events[b]++
		c.events[nb]++
		return
	}
	var x float64
	hasX := false
	if se.col >= 0 {
		x, hasX = q.Value(se.col, i).Num()
		if !hasX && se.measure != "per_user" {
			return // aggregates of a property skip events without a number
		}
	}
	for _, bb := range [2]int{b, nb} {
		if c.stamp[bb] != iw.gen {
			c.stamp[bb] = iw.gen
			iw.touched = append(iw.touched, touch{c, bb})
		}
		c.addValue(se.kind, bb, x)
		switch se.kind {
		case mPerUser:
			if se.col < 0 {
				c.cur[bb]++
			} else if hasX {
				c.cur[bb] += x
			}
		case mDist:
			c.cur[bb]++
		}
	}
}

// addValue counts an event of value x (0 without a property) in bucket
// b, for the measures of values across events.
func (c *cell) addValue(kind measureKind, b int, x float64) {
	c.events[b]++
	switch kind {
	case mSum:
		c.sum[b] += x
	case mMinMax:
		c.min[b] = min(c.min[b], x)
		c.max[b] = max(c.max[b], x)
	case mValues:
		c.vals[b] = append(c.vals[b], x)
	}
}

// value is the series' measure of a cell's bucket b.
func (se *series) value(c *cell, b int) *float64 {
	switch se.measure {
	case "total":
		return ptr(float64(c.events[b]))
	case "unique":
		return ptr(float64(c.users[b]))
	case "sum":
		return ptr(c.sum[b])
	case "avg":
		if c.events[b] == 0 {
			return nil
		}
		return ptr(c.sum[b] / float64(c.events[b]))
	case "min":
		if c.events[b] == 0 {
			return nil
		}
		return ptr(c.min[b])
	case "max":
		if c.events[b] == 0 {
			return nil
		}
		return ptr(c.max[b])
	case "median":
		return quantile(c.vals[b], 0.5)
	case "p90":
		return quantile(c.vals[b], 0.9)
	case "per_user":
		v := c.vals[b]
		switch se.agg {
		case "sum":
			var s float64
			for _, x := range v {
				s += x
			}
			return ptr(s)
		case "avg":
			if len(v) == 0 {
				return nil
			}
			var s float64
			for _, x := range v {
				s += x
			}
			return ptr(s / float64(len(v)))
		case "min", "max":
			if len(v) == 0 {
				return nil
			}
			m := v[0]
			for _, x := range v[1:] {
				if se.agg == "min" {
					m = min(m, x)
				} else {
					m = max(m, x)
				}
			}
			return ptr(m)
		case "median":
			return quantile(v, 0.5)
		case "p90":
			return quantile(v, 0.9)
		}
	case "distribution":
		return ptr(float64(c.users[b]))
	}
	return nil
}

// quantile is the q-quantile of v with linear interpolation between
// closest ranks (ClickHouse's quantileExact uses the lower one; we
// interpolate as PostgreSQL's percentile_cont). It sorts v.
func quantile(v []float64, q float64) *float64 {
	if len(v) == 0 {
		return nil
	}
	slices.Sort(v)
	pos := q * float64(len(v)-1)
	lo := int(pos)
	if lo+1 >= len(v) {
		return ptr(v[lo])
	}
	f := pos - float64(lo)
	return ptr(v[lo] + (v[lo+1]-v[lo])*f)
}

func (in *insights) answer(env *Env, w window, bk *buckets, cells []map[string]*cell) *InsightsResult {
	res := &InsightsResult{From: timeIn(w.From, w.Loc).Format(dateLayout), To: timeIn(w.To-1, w.Loc).Format(dateLayout),
		Interval: in.interval, Intervals: bk.labels}
	nb := bk.n()
	// Rows are ordered by the first series over the range.
	keys := map[string]bool{}
	for _, m := range cells {
		for k := range m {
			keys[k] = true
		}
	}
	if len(in.bds) == 0 {
		keys[""] = true // without breakdowns there is one row, zeros included
	}
	order := make([]string, 0, len(keys))
	for k := range keys {
		order = append(order, k)
	}
	first := in.series[0]
	empty := newCell("", nb+1, first)
	total := func(k string) float64 {
		if c := cells[0][k]; c != nil {
			return orZero(first.value(c, nb))
		}
		return orZero(first.value(empty, nb))
	}
	slices.SortFunc(order, func(a, b string) int {
		if (a == otherKey) != (b == otherKey) {
			if a == otherKey {
				return 1
			}
			return -1
		}
		if c := cmp.Compare(total(b), total(a)); c != 0 {
			return c
		}
		return cmp.Compare(a, b)
	})
	rowVals := make([]map[string][]*float64, len(in.series)) // for formulas
	for si, se := range in.series {
		out := InsightsSeries{Name: letter(si), Event: se.spec.Event, Measure: se.measure}
		rowVals[si] = map[string][]*float64{}
		if se.measure == "distribution" {
			for i, e := range distEdges {
				label := strconv.FormatInt(e, 10)
				if i+1 < len(distEdges) && distEdges[i+1] > e+1 {
					label += "-" + strconv.FormatInt(distEdges[i+1]-1, 10)
				} else if i+1 == len(distEdges) {
					label += "+"
				}
				out.Buckets = append(out.Buckets, label)
			}
		}
		for _, k := range order {
			c := cells[si][k]
			row := InsightsRow{Segment: in.segmentLabels(k)}
			if c == nil {
				c = newCell(k, nb+1, se)
			}
			if env.suppressed(c.users[nb]) {
				row.Suppressed = true
				row.Values = make([]*float64, nb)
				if se.measure == "distribution" {
					row.Values = make([]*float64, len(distEdges))
				}
				out.Rows = append(out.Rows, row)
				rowVals[si][k] = make([]*float64, nb+1)
				continue
			}
			vals := make([]*float64, nb+1)
			for b := 0; b <= nb; b++ {
				if env.suppressed(c.users[b]) {
					continue
				}
				vals[b] = se.value(c, b)
			}
			rowVals[si][k] = vals
			if se.measure == "distribution" {
				for i := range distEdges {
					if env.suppressed(c.dist[i]) {
						row.Values = append(row.Values, nil)
						continue
					}
					row.Values = append(row.Values, ptr(float64(c.dist[i])))
				}
			} else {
				row.Values = vals[:nb]
			}
			row.Total = vals[nb]
			out.Rows = append(out.Rows, row)
		}
		res.Series = append(res.Series, out)
	}
	for fi, fm := range in.formulas {
		out := InsightsSeries{Name: fm.name, Measure: "formula"}
		if out.Name == "" {
			out.Name = "F" + strconv.Itoa(fi+1)
		}
		for _, k := range order {
			row := InsightsRow{Segment: in.segmentLabels(k), Values: make([]*float64, nb)}
			for b := 0; b <= nb; b++ {
				v := fm.eval(func(s int) *float64 {
					if vals := rowVals[s][k]; vals != nil {
						return vals[b]
					}
					return nil
				})
				if b < nb {
					row.Values[b] = v
				} else {
					row.Total = v
				}
			}
			out.Rows = append(out.Rows, row)
		}
		res.Formulas = append(res.Formulas, out)
	}
	return res
}

func letter(i int) string { return string(rune('A' + i)) }

// segmentLabels decodes a segment key for the answer.
func (in *insights) segmentLabels(key string) []any {
	if len(in.bds) == 0 {
		return nil
	}
	if key == otherKey {
		out := make([]any, len(in.bds))
		for i := range out {
			out[i] = OtherSegment
		}
		return out
	}
	if len(in.bds) == 1 {
		return []any{segmentLabel(scan.Value(key))}
	}
	var out []any
	b := []byte(key)
	for len(b) > 0 {
		n, k := binary.Uvarint(b)
		if k <= 0 || int(n) > len(b)-k {
			break
		}
		out = append(out, segmentLabel(scan.Value(b[k:k+int(n)])))
		b = b[k+int(n):]
	}
	return out
}
