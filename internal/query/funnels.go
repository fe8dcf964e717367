package query

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"math/bits"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/veil-analytics/veil/internal/scan"
)

// FunnelStep is one step of a funnel answer. Counts are null when the
// step is suppressed by the privacy threshold.
type FunnelStep struct {
	Step  int    `json:"step"`
	Event string `json:"event"`
	// Users reached the step (each user once, by their best attempt);
	// Total counts attempts (a user re-enters after leaving the last).
	Users *int64 `json:"users"`
	Total *int64 `json:"total"`
	// Conversion rates against the previous and the first step.
	ConversionFromPrevious *float64 `json:"conversion_from_previous"`
	ConversionOverall      *float64 `json:"conversion_overall"`
	// Times to convert, in seconds, of the users who reached the step.
	AvgSecondsFromPrevious    *float64 `json:"avg_seconds_from_previous"`
	MedianSecondsFromPrevious *float64 `json:"median_seconds_from_previous"`
	AvgSecondsFromStart       *float64 `json:"avg_seconds_from_start"`
	MedianSecondsFromStart    *float64 `json:"median_seconds_from_start"`
	Suppressed                bool     `json:"suppressed,omitempty"`
}

// TTCBucket is a bar of the time-to-convert histogram: users who reached
// the last step FromSeconds to ToSeconds (exclusive; null: no bound)
// after the first.
type TTCBucket struct {
	FromSeconds int64  `json:"from_seconds"`
	ToSeconds   *int64 `json:"to_seconds"`
	Users       *int64 `json:"users"`
}

// FunnelSegment is a funnel of one breakdown value.
type FunnelSegment struct {
	Segment any          `json:"segment"`
	Steps   []FunnelStep `json:"steps"`
}

// FunnelInterval is the funnel of the users who entered in one interval.
type FunnelInterval struct {
	Interval string       `json:"interval"`
	Steps    []FunnelStep `json:"steps"`
}

// FunnelResult answers a FunnelSpec.
type FunnelResult struct {
	From          string           `json:"from"`
	To            string           `json:"to"`
	WindowSeconds int64            `json:"window_seconds"`
	Order         string           `json:"order"`
	Steps         []FunnelStep     `json:"steps"`
	TimeToConvert []TTCBucket      `json:"time_to_convert"`
	Breakdown     []FunnelSegment  `json:"breakdown,omitempty"`
	OverTime      []FunnelInterval `json:"over_time,omitempty"`
}

// maxSteps is the most steps of a funnel.
const maxSteps = 20

// ttcEdges are the time-to-convert histogram's bucket starts, in seconds.
var ttcEdges = []int64{0, 10, 60, 300, 900, 3600, 4 * 3600, 86400, 3 * 86400, 7 * 86400, 14 * 86400, 30 * 86400}

// funnel is a compiled FunnelSpec.
type funnel struct {
	spec      FunnelSpec
	w         window
	window    int64 // ms
	order     byte  // 'o'rdered, 's'trict, 'a'ny
	steps     []*step
	excl      []exclusion
	hold      []int // event property columns
	global    conds
	bd        *breakdownSpec
	intervals *buckets
	stepOf    [][]int // event code -> steps it may match (nil: check every step)
	// plainOf, when no step has a filter, is by event code the mask of
	// the steps it matches: no per-step test per event.
	plainOf []uint32
	// walk: the funnel is ordered, its steps plain events, and nothing is
	// excluded, held constant, broken down or split by interval (see
	// visitWalk).
	walk    bool
	anyStep []int // steps matching any event
	exclOf  [][]int
}

type exclusion struct {
	*step
	after, before int // 0-based step indexes: between step after and step before
}

// Funnels runs a funnel report.
func Funnels(ctx context.Context, src scan.Source, env Env, spec FunnelSpec) (*FunnelResult, error) {
	s := newSession(ctx, src, &env)
	f, err := compileFunnel(s.plan, spec)
	if err != nil {
		return nil, err
	}
	if err := s.prepare(); err != nil {
		return nil, err
	}
	return f.run(s)
}

func compileFunnel(p *plan, spec FunnelSpec) (*funnel, error) {
	f := &funnel{spec: spec}
	var err error
	if f.w, err = spec.Range.resolve(p.env.TimeZone, ""); err != nil {
		return nil, err
	}
	if n := len(spec.Steps); n < 2 || n > maxSteps {
		return nil, specErr("/steps", "a funnel has 2 to %d steps, not %d", maxSteps, n)
	}
	for i, s := range spec.Steps {
		st, err := p.compileStep(s, fmt.Sprintf("/steps/%d", i))
		if err != nil {
			return nil, err
		}
		f.steps = append(f.steps, st)
	}
	win := Duration{Value: 7, Unit: "day"}
	if spec.Window != nil {
		win = *spec.Window
	}
	if f.window, err = win.millis("/window", 366*24*time.Hour); err != nil {
		return nil, err
	}
	switch spec.Order {
	case "", "ordered":
		f.order = 'o'
	case "strict":
		f.order = 's'
	case "any":
		f.order = 'a'
	default:
		return nil, specErr("/order", "must be ordered, strict or any, not %q", spec.Order)
	}
	for i, e := range spec.Exclusions {
		ptr := fmt.Sprintf("/exclusions/%d", i)
		st, err := p.compileStep(e.Step, ptr)
		if err != nil {
			return nil, err
		}
		after, before := e.After, e.Before
		if after == 0 {
			after = 1
		}
		if before == 0 {
			before = len(spec.Steps)
		}
		if after < 1 || after >= len(spec.Steps) {
			return nil, specErr(ptr+"/after", "must be a step number from 1 to %d", len(spec.Steps)-1)
		}
		if before <= after || before > len(spec.Steps) {
			return nil, specErr(ptr+"/before", "must be a step number after %d, at most %d", after, len(spec.Steps))
		}
		if f.order == 'a' {
			return nil, specErr(ptr, "exclusions need an ordered or strict funnel")
		}
		f.excl = append(f.excl, exclusion{st, after - 1, before - 1})
	}
	if len(spec.HoldConstant) > 3 {
		return nil, specErr("/hold_constant", "at most 3 properties")
	}
	for _, h := range spec.HoldConstant {
		if h == "" {
			return nil, specErr("/hold_constant", "empty property name")
		}
		f.hold = append(f.hold, p.eventProp(h))
	}
	if f.global, err = p.compileFilters(spec.Filters, "/filters"); err != nil {
		return nil, err
	}
	if spec.Breakdown != nil {
		if f.bd, err = p.compileBreakdown(*spec.Breakdown, "/breakdown"); err != nil {
			return nil, err
		}
	}
	if spec.Interval != "" {
		if spec.Interval == "hour" || spec.Interval == "none" {
			return nil, specErr("/interval", "must be day, week or month")
		}
		if f.intervals, err = newBuckets(f.w, spec.Interval, "/interval"); err != nil {
			return nil, err
		}
	}
	if spec.Limit < 0 || spec.Limit > 1000 {
		return nil, specErr("/limit", "must be 1 to 1000")
	}
	f.stepOf = make([][]int, len(p.events))
	for i, st := range f.steps {
		switch {
		case st.none:
		case st.any:
			f.anyStep = append(f.anyStep, i)
		default:
			f.stepOf[st.code] = append(f.stepOf[st.code], i)
		}
	}
	f.exclOf = make([][]int, len(p.events))
	var anyExcl []int
	for i, e := range f.excl {
		switch {
		case e.none:
		case e.any:
			anyExcl = append(anyExcl, i)
		default:
			f.exclOf[e.code] = append(f.exclOf[e.code], i)
		}
	}
	for c := range f.stepOf {
		if len(f.anyStep) > 0 {
			f.stepOf[c] = sortedUnion(f.stepOf[c], f.anyStep)
		}
		if len(anyExcl) > 0 {
			f.exclOf[c] = sortedUnion(f.exclOf[c], anyExcl)
		}
	}
	plain := true
	for _, st := range f.steps {
		plain = plain && len(st.ev) == 0 && len(st.user) == 0
	}
	f.walk = plain && f.order == 'o' && len(f.global.ev) == 0 && len(f.excl) == 0 && len(f.hold) == 0 &&
		f.bd == nil && f.intervals == nil && !p.env.generalOnly
	if plain {
		f.plainOf = make([]uint32, len(f.stepOf))
		for c, ks := range f.stepOf {
			for _, k := range ks {
				f.plainOf[c] |= 1 << k
			}
		}
	}
	return f, nil
}

func sortedUnion(a, b []int) []int {
	out := append(slices.Clone(a), b...)
	slices.Sort(out)
	return slices.Compact(out)
}

// attempt is one entry into the funnel: the times its steps were reached.
type attempt struct {
	start    int // position of the first step's event
	level    int // steps reached
	times    []int64
	excluded bool
	exit     int64 // when the attempt is over (for re-entry)
}

// funnelAgg counts one group of users (all, a segment or an interval).
type funnelAgg struct {
	users  []int64
	totals []int64
	// Per step, the ms of each user who reached it since the previous
	// step, and since the first (from the third step on: at the second
	// they are the same).
	fromPrev, fromStart []durations
	ttc                 []int64 // histogram of first-to-last, by ttcEdges
}

func newFunnelAgg(n int) *funnelAgg {
	return &funnelAgg{users: make([]int64, n), totals: make([]int64, n),
		fromPrev: make([]durations, n), fromStart: make([]durations, n), ttc: make([]int64, len(ttcEdges))}
}

func (a *funnelAgg) addUser(at *attempt) { a.add(at.times, at.level) }

// add counts a user whose best attempt reached level steps at times.
func (a *funnelAgg) add(times []int64, level int) {
	for k := 0; k < level; k++ {
		a.users[k]++
		if k > 0 {
			a.fromPrev[k].add(times[k] - times[k-1])
		}
		if k > 1 { // at step 2, from the start is from the previous step
			a.fromStart[k].add(times[k] - times[0])
		}
	}
	if n := len(a.users); level == n {
		sec := (times[n-1] - times[0]) / 1000
		i := sort.Search(len(ttcEdges), func(i int) bool { return ttcEdges[i] > sec }) - 1
		a.ttc[max(i, 0)]++
	}
}

func (a *funnelAgg) merge(o *funnelAgg) {
	for k := range a.users {
		a.users[k] += o.users[k]
		a.totals[k] += o.totals[k]
		a.fromPrev[k].merge(&o.fromPrev[k])
		a.fromStart[k].merge(&o.fromStart[k])
	}
	for i := range a.ttc {
		a.ttc[i] += o.ttc[i]
	}
}

// funnelWorker is one scan worker's state.
type funnelWorker struct {
	f        *funnel
	all      *funnelAgg
	segs     map[scan.Value]*funnelAgg
	over     []*funnelAgg
	masks    []uint32 // per event of the user: steps it matches
	pos      [][]int32
	xpos     [][]int32
	atts     []attempt
	timesBuf []int64
	starts   []int32 // any order: every event matching a step
	walkBuf  [2][maxSteps]int64
	segBuf   []scan.Value
	segBuf2  []scan.Value
	until    map[scan.Value]int64 // per segment: when the user's last counted attempt ended
}

// segAgg is the worker's counts of a segment.
func (fw *funnelWorker) segAgg(seg scan.Value) *funnelAgg {
	a := fw.segs[seg]
	if a == nil {
		a = newFunnelAgg(len(fw.f.steps))
		fw.segs[seg] = a
	}
	return a
}

func (f *funnel) run(s *session) (*FunnelResult, error) {
	n := len(f.steps)
	req := scan.Request{From: f.w.From, To: f.w.To + f.window}
	if f.order != 's' { // strict funnels see every event: any other one breaks a chain
		all := append(slices.Clone(f.steps), excludedSteps(f.excl)...)
		req.Events = eventFilter(all...)
	}
	var workers perWorker[*funnelWorker]
	err := s.scan(req, func(int) func(*scan.Sequence, *userCtx) error {
		fw := &funnelWorker{f: f, all: newFunnelAgg(n), segs: map[scan.Value]*funnelAgg{}, until: map[scan.Value]int64{},
			pos: make([][]int32, n), xpos: make([][]int32, len(f.excl))}
		if f.intervals != nil {
			fw.over = make([]*funnelAgg, f.intervals.n())
			for i := range fw.over {
				fw.over[i] = newFunnelAgg(n)
			}
		}
		workers.add(fw)
		return fw.visit
	})
	if err != nil {
		return nil, err
	}
	all := newFunnelAgg(n)
	segs := map[scan.Value]*funnelAgg{}
	var over []*funnelAgg
	for _, fw := range workers.vals {
		all.merge(fw.all)
		for v, a := range fw.segs {
			if segs[v] == nil {
				segs[v] = newFunnelAgg(n)
			}
			segs[v].merge(a)
		}
		if over == nil {
			over = fw.over
		} else {
			for i := range over {
				over[i].merge(fw.over[i])
			}
		}
	}
	res := &FunnelResult{From: f.spec.From, To: f.spec.To, WindowSeconds: f.window / 1000,
		Order: map[byte]string{'o': "ordered", 's': "strict", 'a': "any"}[f.order]}
	res.Steps = f.answer(s.env, all)
	last := all.users[n-1]
	for i, e := range ttcEdges {
		b := TTCBucket{FromSeconds: e}
		if i+1 < len(ttcEdges) {
			b.ToSeconds = ptr(ttcEdges[i+1])
		}
		if !s.env.suppressed(all.ttc[i]) || last == 0 {
			b.Users = ptr(all.ttc[i])
		}
		res.TimeToConvert = append(res.TimeToConvert, b)
	}
	if f.bd != nil {
		limit := f.spec.Limit
		if f.bd.cohorts != nil {
			limit = len(f.bd.cohorts) + 1 // chosen cohorts are never folded: a user may be in several
		}
		for _, g := range topSegments(segs, limit, func(a *funnelAgg) int64 { return a.users[0] },
			func(dst, src *funnelAgg) { dst.merge(src) }, func() *funnelAgg { return newFunnelAgg(n) }) {
			res.Breakdown = append(res.Breakdown, FunnelSegment{Segment: g.label, Steps: f.answer(s.env, g.agg)})
		}
	}
	for i, a := range over {
		res.OverTime = append(res.OverTime, FunnelInterval{Interval: f.intervals.labels[i], Steps: f.answer(s.env, a)})
	}
	return res, nil
}

func excludedSteps(ex []exclusion) []*step {
	out := make([]*step, len(ex))
	for i, e := range ex {
		out[i] = e.step
	}
	return out
}

func ptr[T any](v T) *T { return &v }

// answer renders one group's steps, applying the privacy threshold.
func (f *funnel) answer(env *Env, a *funnelAgg) []FunnelStep {
	out := make([]FunnelStep, len(f.steps))
	for k := range out {
		st := FunnelStep{Step: k + 1, Event: f.spec.Steps[k].Event}
		if env.suppressed(a.users[k]) {
			st.Suppressed = true
			out[k] = st
			continue
		}
		st.Users, st.Total = ptr(a.users[k]), ptr(a.totals[k])
		if k > 0 && a.users[k-1] > 0 {
			st.ConversionFromPrevious = ptr(float64(a.users[k]) / float64(a.users[k-1]))
		}
		if a.users[0] > 0 {
			st.ConversionOverall = ptr(float64(a.users[k]) / float64(a.users[0]))
		}
		out[k] = st
	}
	// The times to convert: every converted user's per step, the steps'
	// lists in parallel.
	var wg sync.WaitGroup
	for k := 1; k < len(out); k++ {
		if out[k].Suppressed || a.fromPrev[k].n == 0 {
			continue
		}
		st := &out[k]
		wg.Add(1)
		go func() {
			defer wg.Done()
			st.AvgSecondsFromPrevious, st.MedianSecondsFromPrevious = a.fromPrev[k].meanMedianSeconds()
		}()
		if k > 1 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				st.AvgSecondsFromStart, st.MedianSecondsFromStart = a.fromStart[k].meanMedianSeconds()
			}()
		}
	}
	wg.Wait()
	if len(out) > 1 && out[1].MedianSecondsFromPrevious != nil {
		out[1].AvgSecondsFromStart = ptr(*out[1].AvgSecondsFromPrevious)
		out[1].MedianSecondsFromStart = ptr(*out[1].MedianSecondsFromPrevious)
	}
	return out
}

// durations is a list of times in ms, kept in chunks that are never
// copied: a funnel adds one per converted user and step, and growing one
// slice would copy them over and over.
type durations struct {
	chunks [][]int64
	n      int
	sum    int64 // exact, unlike a float64 past 2^53, whatever the order
	lo, hi int64 // the least and the greatest
}

const durationChunk = 4096

func (d *durations) add(ms int64) {
	if len(d.chunks) == 0 || len(d.chunks[len(d.chunks)-1]) == cap(d.chunks[len(d.chunks)-1]) {
		// Chunks grow with the list: a breakdown has many short ones.
		d.chunks = append(d.chunks, make([]int64, 0, min(max(d.n, 8), durationChunk)))
	}
	last := &d.chunks[len(d.chunks)-1]
	*last = append(*last, ms)
	if d.n == 0 {
		d.lo, d.hi = ms, ms
	}
	d.n++
	d.sum += ms
	d.lo, d.hi = min(d.lo, ms), max(d.hi, ms)
}

// merge moves o's chunks to d.
func (d *durations) merge(o *durations) {
	if o.n == 0 {
		return
	}
	if d.n == 0 {
		d.lo, d.hi = o.lo, o.hi
	}
	d.chunks = append(d.chunks, o.chunks...)
	d.n += o.n
	d.sum += o.sum
	d.lo, d.hi = min(d.lo, o.lo), max(d.hi, o.hi)
	*o = durations{}
}

// meanMedianSeconds summarises the times as seconds: their mean, and
// their median (the mean of the two middle ones for an even count).
//
// The median is found without copying the list: a histogram of the high
// bits of the values in a range narrows it to the bucket holding the
// middle rank, a pass each, until few values are left in it; only those
// are copied and selected.
func (d *durations) meanMedianSeconds() (*float64, *float64) {
	n, lo, hi := d.n, d.lo, d.hi
	k := n / 2 // the middle rank; with an even count also k-1
	// [lo, hi] holds rank k; below is the count of smaller values.
	below, in := 0, n
	var hist []uint32
	for first := true; in > radixDirect && hi > lo; first = false {
		span := uint64(hi - lo)
		shift := uint(max(0, bits.Len64(span)-radixBits))
		if hist == nil {
			hist = make([]uint32, 1<<radixBits)
		} else {
			clear(hist)
		}
		for _, c := range d.chunks {
			if first { // every value is in range
				for _, v := range c {
					hist[uint64(v-lo)>>shift]++
				}
				continue
			}
			for _, v := range c {
				if x := uint64(v - lo); x <= span {
					hist[x>>shift]++
				}
			}
		}
		for b, h := range hist {
			if below+int(h) > k {
				in = int(h)
				off := uint64(b) << shift
				lo, hi = lo+int64(off), lo+int64(off+min(span-off, 1<<shift-1))
				break
			}
			below += int(h)
		}
	}
	// Copy the range's values, and find the greatest one below it,
	// without a branch per value: a branch would guess wrong about half
	// the time. (Times are differences of event times, far from
	// overflowing v-lo.)
	mid := make([]int64, in+1)
	m, span := 0, uint64(hi-lo)
	prev := int64(math.MinInt64)
	for _, c := range d.chunks {
		for _, v := range c {
			mid[m] = v
			_, out := bits.Sub64(span, uint64(v-lo), 0)
			m += int(1 - out)
			under := (v - lo) >> 63 // all ones when v < lo
			prev = max(prev, v&under|math.MinInt64&^under)
		}
	}
	mid = mid[:m]
	med := float64(nth(mid, k-below))
	if n%2 == 0 { // and rank k-1
		if k > below {
			prev = slices.Max(mid[:k-below])
		}
		med = (float64(prev) + med) / 2
	}
	return ptr(float64(d.sum) / float64(n) / 1000), ptr(med / 1000)
}

const (
	radixBits   = 16      // a pass narrows a week of ms to 16 s buckets
	radixDirect = 1 << 13 // few enough values to copy and select
)

// nth reorders v so that v[k] is the value a sort would put there, with
// no larger value before it, and returns it (quickselect, median of three
// pivots): linear time, where sorting is not.
func nth(v []int64, k int) int64 {
	lo, hi := 0, len(v)-1
	for hi-lo > 16 {
		mid := lo + (hi-lo)/2
		if v[mid] < v[lo] {
			v[mid], v[lo] = v[lo], v[mid]
		}
		if v[hi] < v[lo] {
			v[hi], v[lo] = v[lo], v[hi]
		}
		if v[hi] < v[mid] {
			v[hi], v[mid] = v[mid], v[hi]
		}
		p := v[mid]
		i, j := lo, hi
		for i <= j {
			for v[i] < p {
				i++
			}
			for v[j] > p {
				j--
			}
			if i <= j {
				v[i], v[j] = v[j], v[i]
				i++
				j--
			}
		}
		switch {
		case k <= j:
			hi = j
		case k >= i:
			lo = i
		default:
			return v[k]
		}
	}
	slices.Sort(v[lo : hi+1])
	return v[k]
}

// visit evaluates one user.
func (fw *funnelWorker) visit(q *scan.Sequence, u *userCtx) error {
	f := fw.f
	if !f.global.matchUser(u) {
		return nil
	}
	n := q.Len()
	if f.walk && n <= walkMax {
		fw.visitWalk(q)
		return nil
	}
	fw.masks = slices.Grow(fw.masks[:0], n)[:n]
	for k := range fw.pos {
		fw.pos[k] = fw.pos[k][:0]
	}
	var any uint32
	for i, e := range q.Events {
		var m uint32
		if f.plainOf != nil {
			if m = f.plainOf[e]; m != 0 && len(f.global.ev) > 0 && !f.global.matchEvent(q, i) {
				m = 0
			}
			for mm := m; mm != 0; mm &= mm - 1 {
				k := bits.TrailingZeros32(mm)
				fw.pos[k] = append(fw.pos[k], int32(i))
			}
		} else {
			for _, k := range f.stepOf[e] {
				if f.steps[k].matches(q, i, u) && f.global.matchEvent(q, i) {
					m |= 1 << k
					fw.pos[k] = append(fw.pos[k], int32(i))
				}
			}
		}
		fw.masks[i] = m
		any |= m
	}
	if any == 0 {
		return nil
	}
	if len(f.excl) > 0 {
		for k := range fw.xpos {
			fw.xpos[k] = fw.xpos[k][:0]
		}
		for i, e := range q.Events {
			for _, k := range f.exclOf[e] {
				if f.excl[k].matches(q, i, u) {
					fw.xpos[k] = append(fw.xpos[k], int32(i))
				}
			}
		}
	}
	fw.attempts(q)
	if len(fw.atts) == 0 {
		return nil
	}
	// Totals: attempts in start order, each after the previous one ended.
	var until int64 = -1 << 62
	for i := range fw.atts {
		at := &fw.atts[i]
		if at.excluded || at.times[0] <= until {
			continue
		}
		until = at.exit
		for k := 0; k < at.level; k++ {
			fw.all.totals[k]++
		}
	}
	b := fw.bestOf(0, len(fw.atts))
	if b < 0 {
		return nil
	}
	best := &fw.atts[b]
	fw.all.addUser(best)
	if f.bd != nil {
		// Users: the segments of their best attempt.
		fw.segBuf = f.bd.values(q, best.start, u, fw.segBuf[:0])
		for _, seg := range fw.segBuf {
			fw.segAgg(seg).addUser(best)
		}
		// Totals: every attempt in the segments of its first step, each
		// after the previous one of that segment ended.
		clear(fw.until)
		for i := range fw.atts {
			at := &fw.atts[i]
			if at.excluded {
				continue
			}
			fw.segBuf2 = f.bd.values(q, at.start, u, fw.segBuf2[:0])
			for _, seg := range fw.segBuf2 {
				if until, ok := fw.until[seg]; ok && at.times[0] <= until {
					continue
				}
				fw.until[seg] = at.exit
				a := fw.segAgg(seg)
				for k := 0; k < at.level; k++ {
					a.totals[k]++
				}
			}
		}
	}
	if f.intervals != nil {
		lo := 0
		for lo < len(fw.atts) {
			bk := f.intervals.index(fw.atts[lo].times[0])
			hi := lo + 1
			for hi < len(fw.atts) && f.intervals.index(fw.atts[hi].times[0]) == bk {
				hi++
			}
			if bi := fw.bestOf(lo, hi); bi >= 0 && bk >= 0 {
				a := fw.over[bk]
				a.addUser(&fw.atts[bi])
				var until int64 = -1 << 62
				for i := lo; i < hi; i++ {
					at := &fw.atts[i]
					if at.excluded || at.times[0] <= until {
						continue
					}
					until = at.exit
					for k := 0; k < at.level; k++ {
						a.totals[k]++
					}
				}
			}
			lo = hi
		}
	}
	return nil
}

// walkMax is the most events of a user visitWalk takes: it walks the
// events after each start, which for a user with many starts could cost
// events squared.
const walkMax = 128

// visitWalk is visit for the plainest funnel (funnel.walk) and a user with
// few events: each attempt walks the events after its start, with no
// per-step lists and no attempt kept but the best. It gives what visit
// gives: windowFunnel's greedy steps, totals of attempts each after the
// previous one counted ended, and the user's best attempt (most steps,
// then the earliest last step, then the earliest start).
func (fw *funnelWorker) visitWalk(q *scan.Sequence) {
	f := fw.f
	n := len(f.steps)
	plain, evs, times := f.plainOf, q.Events, q.Times
	// The attempt being walked and the best so far: two buffers that swap
	// roles, neither cleared (only reached steps are read).
	cur, best := &fw.walkBuf[0], &fw.walkBuf[1]
	bestLevel := 0
	until := int64(-1 << 62)
	for i, e := range evs {
		if plain[e]&1 == 0 {
			continue
		}
		s := times[i]
		if s < f.w.From || s >= f.w.To {
			continue
		}
		cur[0] = s
		level := 1
		for j := i + 1; j < len(evs) && level < n; j++ {
			t := times[j]
			if t-s > f.window {
				break
			}
			if plain[evs[j]]&(1<<level) != 0 {
				cur[level] = t
				level++
			}
		}
		if s > until {
			until = s + f.window
			if level == n {
				until = cur[n-1]
			}
			for k := range level {
				fw.all.totals[k]++
			}
		}
		if level > bestLevel || level == bestLevel && cur[level-1] < best[level-1] {
			best, cur, bestLevel = cur, best, level
		}
	}
	if bestLevel > 0 {
		fw.all.add(best[:n], bestLevel)
	}
}

// bestOf picks the user's attempt among atts[lo:hi]: the most steps, then
// the earliest arrival at the last of them, then the earliest start.
func (fw *funnelWorker) bestOf(lo, hi int) int {
	b := -1
	for i := lo; i < hi; i++ {
		at := &fw.atts[i]
		if at.excluded {
			continue
		}
		if b < 0 {
			b = i
			continue
		}
		cur := &fw.atts[b]
		if at.level > cur.level || at.level == cur.level && at.times[at.level-1] < cur.times[cur.level-1] {
			b = i
		}
	}
	return b
}

// attempts fills fw.atts with every attempt starting in the range.
func (fw *funnelWorker) attempts(q *scan.Sequence) {
	f := fw.f
	n := len(f.steps)
	fw.atts = fw.atts[:0]
	starts := fw.pos[0]
	if f.order == 'a' {
		starts = fw.starts[:0]
		for i, m := range fw.masks {
			if m != 0 {
				starts = append(starts, int32(i))
			}
		}
		fw.starts = starts
	}
	// Sized once per user, so that attempts are built in place and their
	// times never move.
	if need := len(starts) * n; cap(fw.timesBuf) < need {
		fw.timesBuf = make([]int64, need)
	}
	if cap(fw.atts) < len(starts) {
		fw.atts = make([]attempt, 0, len(starts))
	}
	for _, p0 := range starts {
		s := q.Times[p0]
		if s < f.w.From || s >= f.w.To {
			continue
		}
		off := len(fw.atts) * n
		fw.atts = append(fw.atts, attempt{start: int(p0), times: fw.timesBuf[off : off+n : off+n]})
		at := &fw.atts[len(fw.atts)-1]
		clear(at.times)
		switch f.order {
		case 'o':
			fw.ordered(q, at)
		case 's':
			fw.strict(q, at)
		case 'a':
			fw.anyOrder(q, at)
		}
		at.exit = s + f.window
		if at.level == n {
			at.exit = at.times[n-1]
		}
		fw.exclude(q, at)
	}
}

// held reports whether event j carries the held properties of event i.
func (f *funnel) held(q *scan.Sequence, i, j int) bool {
	for _, c := range f.hold {
		if q.Props[c][i] != q.Props[c][j] {
			return false
		}
	}
	return true
}

// ordered follows windowFunnel: from the first step, each next step is
// its earliest later event within the window (the earliest choice leaves
// the most room for the steps after it).
func (fw *funnelWorker) ordered(q *scan.Sequence, at *attempt) {
	f := fw.f
	p, s := at.start, q.Times[at.start]
	at.times[0], at.level = s, 1
	for k := 1; k < len(f.steps); k++ {
		list := fw.pos[k]
		j := after(list, p)
		found := -1
		for ; j < len(list); j++ {
			c := int(list[j])
			if q.Times[c]-s > f.window {
				break
			}
			if len(f.hold) == 0 || f.held(q, at.start, c) {
				found = c
				break
			}
		}
		if found < 0 {
			return
		}
		p = found
		at.times[k], at.level = q.Times[p], k+1
	}
}

// after is the index of the first position in list (ascending) past p.
func after(list []int32, p int) int {
	if len(list) <= 16 { // most users: a few events, a walk beats a search
		for j, c := range list {
			if int(c) > p {
				return j
			}
		}
		return len(list)
	}
	return sort.Search(len(list), func(i int) bool { return int(list[i]) > p })
}

// strict needs each next step to be the user's very next event.
func (fw *funnelWorker) strict(q *scan.Sequence, at *attempt) {
	f := fw.f
	p, s := at.start, q.Times[at.start]
	at.times[0], at.level = s, 1
	for k := 1; k < len(f.steps); k++ {
		c := p + 1
		if c >= q.Len() || fw.masks[c]&(1<<k) == 0 || q.Times[c]-s > f.window ||
			len(f.hold) > 0 && !f.held(q, at.start, c) {
			return
		}
		p = c
		at.times[k], at.level = q.Times[p], k+1
	}
}

// anyOrder counts the distinct steps done within the window from the
// attempt's first event, in whatever order. An event serves one step; an
// event that could be several steps is matched so that the most steps
// are done (augmenting paths over at most 20 steps), and step k is
// reached when k events can be matched to distinct steps.
func (fw *funnelWorker) anyOrder(q *scan.Sequence, at *attempt) {
	f := fw.f
	s := q.Times[at.start]
	var owner [20]int // step -> event position matched to it, -1 for none
	for k := range f.steps {
		owner[k] = -1
	}
	var try func(c int, seen *uint32) bool
	try = func(c int, seen *uint32) bool {
		for m := fw.masks[c] &^ *seen; m != 0; m &= m - 1 {
			k := bits.TrailingZeros32(m)
			*seen |= 1 << k
			if owner[k] < 0 || try(owner[k], seen) {
				owner[k] = c
				return true
			}
		}
		return false
	}
	for c := at.start; c < q.Len() && q.Times[c]-s <= f.window; c++ {
		if fw.masks[c] == 0 || len(f.hold) > 0 && !f.held(q, at.start, c) {
			continue
		}
		var seen uint32
		if try(c, &seen) {
			at.times[at.level] = q.Times[c]
			at.level++
			if at.level == len(f.steps) {
				return
			}
		}
	}
}

// exclude marks an attempt with an excluded event between its bracketing
// steps (before the window's end when the later step was not reached).
func (fw *funnelWorker) exclude(q *scan.Sequence, at *attempt) {
	if len(fw.f.excl) == 0 {
		return
	}
	// Positions of the attempt's steps: recover them from the times.
	for xi, e := range fw.f.excl {
		if at.level <= e.after {
			continue
		}
		lo := at.times[e.after]
		hi := at.times[0] + fw.f.window
		inclusive := true
		if at.level > e.before {
			hi, inclusive = at.times[e.before], false
		}
		for _, x := range fw.xpos[xi] {
			t := q.Times[x]
			if t <= lo {
				continue
			}
			if t < hi || inclusive && t == hi {
				at.excluded = true
				at.exit = t
				return
			}
			break
		}
	}
}

// topSegments orders segments by size, keeping limit (default 25) and
// folding the rest into $other.
type segGroup[A any] struct {
	label any
	agg   A
}

func topSegments[A any](segs map[scan.Value]A, limit int, size func(A) int64, merge func(dst, src A), fresh func() A) []segGroup[A] {
	if limit <= 0 {
		limit = 25
	}
	keys := make([]scan.Value, 0, len(segs))
	for k := range segs {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b scan.Value) int {
		if c := cmp.Compare(size(segs[b]), size(segs[a])); c != 0 {
			return c
		}
		return cmp.Compare(a, b)
	})
	var out []segGroup[A]
	for i, k := range keys {
		if i < limit {
			out = append(out, segGroup[A]{segmentLabel(k), segs[k]})
			continue
		}
		if i == limit {
			out = append(out, segGroup[A]{OtherSegment, fresh()})
		}
		merge(out[limit].agg, segs[k])
	}
	return out
}
