// Package scantest provides an in-memory scan.Source for the report
// engines' tests: events given as plain values, served exactly as the
// interface promises (per user, in time order, in parallel).
package scantest

import (
	"context"
	"errors"
	"runtime"
	"slices"
	"sort"
	"sync"

	"github.com/veil-analytics/veil/internal/event"
	"github.com/veil-analytics/veil/internal/scan"
)

// Event is one event of a Mem source.
type Event struct {
	User  uint64
	Time  int64 // Unix ms
	Name  string
	Props map[string]event.Value
}

// Mem is an in-memory scan.Source.
type Mem struct {
	names    []string
	users    []uint64 // ascending
	byUser   map[uint64][]Event
	profiles map[uint64]map[string]event.Value
}

// New builds a source from events (any order; a user's events are sorted
// by time, stably) and profiles by user.
func New(events []Event, profiles map[uint64]map[string]event.Value) *Mem {
	m := &Mem{byUser: map[uint64][]Event{}, profiles: profiles}
	seen := map[string]bool{}
	for _, e := range events {
		if !seen[e.Name] {
			seen[e.Name] = true
			m.names = append(m.names, e.Name)
		}
		m.byUser[e.User] = append(m.byUser[e.User], e)
	}
	for u, evs := range m.byUser {
		sort.SliceStable(evs, func(i, j int) bool { return evs[i].Time < evs[j].Time })
		m.users = append(m.users, u)
	}
	slices.Sort(m.users)
	return m
}

// Events are the event names in order of first appearance.
func (m *Mem) Events() []string { return m.names }

// filter is a request's event test.
type filter struct {
	req  scan.Request
	code map[string]uint32
	want map[uint32]bool
}

func (m *Mem) filter(req scan.Request) *filter {
	f := &filter{req: req, code: map[string]uint32{}}
	for i, n := range m.names {
		f.code[n] = uint32(i)
	}
	if req.Events != nil {
		f.want = map[uint32]bool{}
		for _, e := range req.Events {
			f.want[e] = true
		}
	}
	return f
}

func (f *filter) keep(e Event) bool {
	if e.Time < f.req.From || f.req.To != 0 && e.Time >= f.req.To {
		return false
	}
	return f.want == nil || f.want[f.code[e.Name]]
}

// coder appends events to a Sequence with one worker's dictionaries.
type coder struct {
	f     *filter
	index []map[scan.Value]uint32
}

func newCoder(f *filter, q *scan.Sequence) *coder {
	c := &coder{f: f, index: make([]map[scan.Value]uint32, len(f.req.Props))}
	for k := range c.index {
		c.index[k] = map[scan.Value]uint32{}
	}
	q.Props, q.Dicts = make([][]uint32, len(f.req.Props)), make([][]scan.Value, len(f.req.Props))
	return c
}

func (c *coder) append(q *scan.Sequence, e Event) {
	q.Times = append(q.Times, e.Time)
	q.Events = append(q.Events, c.f.code[e.Name])
	for k, p := range c.f.req.Props {
		var code uint32
		if x, ok := e.Props[p]; ok {
			v := scan.Of(x)
			if code, ok = c.index[k][v]; !ok {
				q.Dicts[k] = append(q.Dicts[k], v)
				code = uint32(len(q.Dicts[k]))
				c.index[k][v] = code
			}
		}
		q.Props[k] = append(q.Props[k], code)
	}
}

func reset(q *scan.Sequence) {
	q.Times, q.Events = q.Times[:0], q.Events[:0]
	for k := range q.Props {
		q.Props[k] = q.Props[k][:0]
	}
}

func workersOf(req scan.Request) int {
	if req.Workers <= 0 {
		return runtime.GOMAXPROCS(0)
	}
	return req.Workers
}

// run runs fn on workers goroutines and returns the first error.
func run(workers int, fn func(w int) error) error {
	var wg sync.WaitGroup
	errs := make([]error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[w] = fn(w)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// Scan serves every user with events in the request, split among workers.
func (m *Mem) Scan(ctx context.Context, req scan.Request, visit func(worker int) func(*scan.Sequence) error) error {
	workers := workersOf(req)
	f := m.filter(req)
	return run(workers, func(w int) error {
		fn := visit(w)
		q := &scan.Sequence{}
		c := newCoder(f, q)
		for i := w; i < len(m.users); i += workers {
			if err := ctx.Err(); err != nil {
				return err
			}
			u := m.users[i]
			q.User = u
			reset(q)
			for _, e := range m.byUser[u] {
				if f.keep(e) {
					c.append(q, e)
				}
			}
			if len(q.Times) == 0 {
				continue
			}
			if err := fn(q); err != nil {
				return err
			}
		}
		return nil
	})
}

// ScanRows serves the request's events in batches of runs, as a store of
// many segments would: each user's events are cut into pieces that come
// in different batches, on different workers, away from each other.
func (m *Mem) ScanRows(ctx context.Context, req scan.Request, visit func(worker int) func(*scan.Rows) error) error {
	workers := workersOf(req)
	f := m.filter(req)
	type piece struct {
		user uint64
		nth  int
		evs  []Event
	}
	perWorker := make([][]piece, workers)
	for i, u := range m.users {
		var evs []Event
		for _, e := range m.byUser[u] {
			if f.keep(e) {
				evs = append(evs, e)
			}
		}
		for nth := 0; len(evs) > 0; nth++ {
			n := 1 + int((u*31+uint64(nth)*17)%5) // deterministic, uneven cuts
			n = min(n, len(evs))
			w := (i + nth) % workers
			perWorker[w] = append(perWorker[w], piece{u, nth, evs[:n]})
			evs = evs[n:]
		}
	}
	return run(workers, func(w int) error {
		ps := perWorker[w]
		slices.SortStableFunc(ps, func(a, b piece) int { return a.nth - b.nth })
		fn := visit(w)
		rs := &scan.Rows{}
		c := newCoder(f, &rs.Seq)
		var times []int64
		rs.LoadTimes = func() error { rs.Seq.Times = times; return nil }
		for len(ps) > 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
			batch := ps[:min(3, len(ps))]
			ps = ps[len(batch):]
			reset(&rs.Seq)
			rs.Users, rs.Ends = rs.Users[:0], rs.Ends[:0]
			rs.Lo, rs.Hi = batch[0].evs[0].Time, batch[0].evs[0].Time+1
			for _, p := range batch {
				for _, e := range p.evs {
					c.append(&rs.Seq, e)
					rs.Lo, rs.Hi = min(rs.Lo, e.Time), max(rs.Hi, e.Time+1)
				}
				rs.Users = append(rs.Users, p.user)
				rs.Ends = append(rs.Ends, len(rs.Seq.Events))
			}
			times = rs.Seq.Times
			rs.Seq.Times = nil // until LoadTimes
			if err := fn(rs); err != nil {
				return err
			}
			rs.Seq.Times = times[:0]
		}
		return nil
	})
}

// UserProps returns the requested profile properties by user.
func (m *Mem) UserProps(ctx context.Context, keys []string) (map[uint64][]scan.Value, error) {
	out := map[uint64][]scan.Value{}
	for u, props := range m.profiles {
		vals := make([]scan.Value, len(keys))
		for i, k := range keys {
			if v, ok := props[k]; ok {
				vals[i] = scan.Of(v)
			}
		}
		out[u] = vals
	}
	return out, nil
}

// Close does nothing.
func (m *Mem) Close() error { return nil }
