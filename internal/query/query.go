// Package query owns Veil's report engines: Insights, Funnels, Retention
// and Flows, and the cohorts they filter and break down by. Each report
// is one parallel pass (two for cohorts and "$other" uniques) over a
// scan.Source, one user at a time in time order, so that behavioural
// reports need no joins; answers are exact (no sampling). The JSON specs
// and answers are documented in docs/REPORTS.md.
package query

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime"
	"sort"
	"sync"
	"time"

	"github.com/veil-analytics/veil/internal/scan"
)

// Cohorts gives the saved cohorts of the project a report runs on.
type Cohorts interface {
	// Cohort returns the name and JSON definition of a saved cohort.
	Cohort(ctx context.Context, id int64) (name string, definition []byte, err error)
}

// Env is what a report runs with besides its spec.
type Env struct {
	// TimeZone is the project's zone, for ranges and buckets without
	// their own ("UTC" when empty).
	TimeZone string
	// MinGroupSize is the privacy threshold k: a breakdown cell, funnel
	// step or cohort of fewer users is suppressed (1 or less: off).
	MinGroupSize int
	// Cohorts resolves cohort references (nil: none exist).
	Cohorts Cohorts
	// Now is the time "last N days" and incomplete periods are measured
	// against (zero: the wall clock).
	Now time.Time
	// Workers is the scan parallelism (0: all cores).
	Workers int
	// MaxCells bounds a result's size in cells (0: 1,000,000).
	MaxCells int

	// generalOnly keeps reports on their general paths: Insights off the
	// row pass, funnels off the walk of plain ones (tests compare both).
	generalOnly bool
}

func (e *Env) now() time.Time {
	if e.Now.IsZero() {
		return time.Now()
	}
	return e.Now
}

func (e *Env) maxCells() int {
	if e.MaxCells <= 0 {
		return 1_000_000
	}
	return e.MaxCells
}

func (e *Env) workers() int {
	if e.Workers <= 0 {
		return runtime.GOMAXPROCS(0)
	}
	return e.Workers
}

// TooLargeError is a result beyond Env.MaxCells.
type TooLargeError struct{ Cells, Max int }

func (e *TooLargeError) Error() string {
	return fmt.Sprintf("the result would have %d cells, more than the limit of %d: narrow the range, interval or breakdown", e.Cells, e.Max)
}

// TooLarge marks the error for the API.
func (e *TooLargeError) TooLarge() bool { return true }

// Kinds are the report kinds Run knows.
var Kinds = []string{"insights", "funnels", "retention", "flows"}

// Run decodes a spec of the report kind and runs it on src.
func Run(ctx context.Context, src scan.Source, env Env, kind string, spec []byte) (any, error) {
	switch kind {
	case "insights":
		var s InsightsSpec
		if err := decodeSpec(spec, &s); err != nil {
			return nil, err
		}
		return Insights(ctx, src, env, s)
	case "funnels":
		var s FunnelSpec
		if err := decodeSpec(spec, &s); err != nil {
			return nil, err
		}
		return Funnels(ctx, src, env, s)
	case "retention":
		var s RetentionSpec
		if err := decodeSpec(spec, &s); err != nil {
			return nil, err
		}
		return Retention(ctx, src, env, s)
	case "flows":
		var s FlowsSpec
		if err := decodeSpec(spec, &s); err != nil {
			return nil, err
		}
		return Flows(ctx, src, env, s)
	}
	return nil, specErr("", "unknown report kind %q (insights, funnels, retention, flows)", kind)
}

// userSet is a set of user keys: a bitmap for the dense ordinals of the
// embedded store, a map beyond.
type userSet struct {
	bits []uint64
	more map[uint64]bool
}

const denseUsers = 1 << 28

func (s *userSet) add(u uint64) {
	if u < denseUsers {
		w := int(u >> 6)
		if w >= len(s.bits) {
			s.bits = append(s.bits, make([]uint64, w+1-len(s.bits)+len(s.bits)/4)...)
		}
		s.bits[w] |= 1 << (u & 63)
		return
	}
	if s.more == nil {
		s.more = map[uint64]bool{}
	}
	s.more[u] = true
}

func (s *userSet) has(u uint64) bool {
	if s == nil {
		return false
	}
	if u < denseUsers {
		w := int(u >> 6)
		return w < len(s.bits) && s.bits[w]&(1<<(u&63)) != 0
	}
	return s.more[u]
}

// merge adds o's users to s.
func (s *userSet) merge(o *userSet) {
	if len(o.bits) > len(s.bits) {
		s.bits = append(s.bits, make([]uint64, len(o.bits)-len(s.bits))...)
	}
	for i, w := range o.bits {
		s.bits[i] |= w
	}
	for u := range o.more {
		if s.more == nil {
			s.more = map[uint64]bool{}
		}
		s.more[u] = true
	}
}

// buckets are consecutive time intervals in a zone.
type buckets struct {
	starts []int64 // len(labels)+1: the last is the end
	labels []string
}

// newBuckets cuts w into intervals (hour, day, week, month or none).
func newBuckets(w window, interval, ptr string) (*buckets, error) {
	b := &buckets{}
	t := time.UnixMilli(w.From).In(w.Loc)
	end := w.To
	switch interval {
	case "none":
		b.starts = []int64{w.From, w.To}
		b.labels = []string{t.Format(dateLayout)}
		return b, nil
	case "hour", "day", "week", "month":
	default:
		return nil, specErr(ptr, "must be hour, day, week, month or none, not %q", interval)
	}
	if interval == "week" { // weeks start on Monday; the first may be partial
		t = time.Date(t.Year(), t.Month(), t.Day()-(int(t.Weekday())+6)%7, 0, 0, 0, 0, w.Loc)
	}
	if interval == "month" {
		t = time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, w.Loc)
	}
	for t.UnixMilli() < end {
		ms := max(t.UnixMilli(), w.From)
		b.starts = append(b.starts, ms)
		var next time.Time
		switch interval {
		case "hour":
			b.labels = append(b.labels, t.Format("2006-01-02T15:04"))
			next = t.Add(time.Hour)
		case "day":
			b.labels = append(b.labels, t.Format(dateLayout))
			next = time.Date(t.Year(), t.Month(), t.Day()+1, 0, 0, 0, 0, w.Loc)
		case "week":
			b.labels = append(b.labels, t.Format(dateLayout))
			next = time.Date(t.Year(), t.Month(), t.Day()+7, 0, 0, 0, 0, w.Loc)
		case "month":
			b.labels = append(b.labels, t.Format("2006-01"))
			next = time.Date(t.Year(), t.Month()+1, 1, 0, 0, 0, 0, w.Loc)
		}
		t = next
		if len(b.labels) > 100_000 {
			return nil, specErr(ptr, "more than 100000 intervals: use a longer interval")
		}
	}
	b.starts = append(b.starts, end)
	return b, nil
}

func (b *buckets) n() int { return len(b.labels) }

// index is the bucket of t, or -1 outside all of them.
func (b *buckets) index(t int64) int {
	if t < b.starts[0] || t >= b.starts[len(b.starts)-1] {
		return -1
	}
	return sort.Search(len(b.starts), func(i int) bool { return b.starts[i] > t }) - 1
}

// bucketCursor finds the buckets of ascending times without searching.
type bucketCursor struct {
	b      *buckets
	i      int
	lo, hi int64 // bounds of bucket i; empty before the first call
}

// at is the bucket of t, or -1 outside all of them.
func (c *bucketCursor) at(t int64) int {
	if t >= c.lo && t < c.hi {
		return c.i
	}
	st := c.b.starts
	if t < st[0] || t >= st[len(st)-1] {
		return -1
	}
	if c.hi != 0 && t >= c.hi && c.i+2 < len(st) && t < st[c.i+2] {
		c.i++ // the next bucket: the common case of ascending times
	} else {
		c.i = c.b.index(t)
	}
	c.lo, c.hi = st[c.i], st[c.i+1]
	return c.i
}

// session is one report's scan with what every visitor needs: the plan,
// the users' profile values and the evaluated cohorts.
type session struct {
	ctx  context.Context
	src  scan.Source
	env  *Env
	plan *plan
	prof map[uint64][]scan.Value
}

func newSession(ctx context.Context, src scan.Source, env *Env) *session {
	s := &session{ctx: ctx, src: src, env: env, plan: newPlan(env, src.Events())}
	s.plan.ctx = ctx
	return s
}

// prepare loads profile properties and evaluates cohorts the plan needs.
func (s *session) prepare() error {
	// Profiles first: cohorts may test profile properties.
	if len(s.plan.userKeys) > 0 {
		prof, err := s.src.UserProps(s.ctx, s.plan.userKeys)
		if err != nil {
			return err
		}
		s.prof = prof
	}
	return s.evalCohorts()
}

// scan runs one parallel pass; visit(w) gives worker w's per-user
// function, called with the user's context.
func (s *session) scan(req scan.Request, visit func(w int) func(q *scan.Sequence, u *userCtx) error) error {
	req.Props = s.plan.props
	if req.Workers == 0 {
		req.Workers = s.env.workers()
	}
	return s.src.Scan(s.ctx, req, func(w int) func(*scan.Sequence) error {
		fn := visit(w)
		u := &userCtx{}
		return func(q *scan.Sequence) error {
			u.key = q.User
			u.props = nil
			if s.prof != nil {
				u.props = s.prof[q.User]
			}
			return fn(q, u)
		}
	})
}

// perWorker keeps one value per scan worker.
type perWorker[T any] struct {
	mu   sync.Mutex
	vals []T
}

func (p *perWorker[T]) add(v T) {
	p.mu.Lock()
	p.vals = append(p.vals, v)
	p.mu.Unlock()
}

// eventFilter is the scan's event push-down for steps (nil: every event).
func eventFilter(steps ...*step) []uint32 {
	set := map[uint32]bool{}
	for _, st := range steps {
		if !st.eventCodes(set) {
			return nil
		}
	}
	out := make([]uint32, 0, len(set))
	for c := range set {
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	if len(out) == 0 {
		out = []uint32{^uint32(0)} // no such event: read nothing
	}
	return out
}

// suppressed reports whether a group of users is below the threshold.
func (e *Env) suppressed(users int64) bool {
	return e.MinGroupSize > 1 && users > 0 && users < int64(e.MinGroupSize)
}

// Segment values in answers: a breakdown value as JSON, "$other" for the
// folded rest, "$none" for absent.
const (
	OtherSegment = "$other"
	NoneSegment  = "$none"
)

// segmentLabel renders a breakdown value for an answer.
func segmentLabel(v scan.Value) any {
	if v == "" {
		return NoneSegment
	}
	d, err := v.Decode()
	if err != nil {
		return NoneSegment
	}
	switch d.Kind {
	case 0:
		return NoneSegment
	}
	var out any
	if err := json.Unmarshal(d.AppendJSON(nil), &out); err != nil {
		return NoneSegment
	}
	return out
}
