// Package scantest provides an in-memory scan.Source for the report
// engines' tests: events given as plain values, served exactly as the
// interface promises (per user, in time order, in parallel).
package scantest

import (
	"context"
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

// Scan serves every user with events in the request, split among workers.
func (m *Mem) Scan(ctx context.Context, req scan.Request, visit func(worker int) func(*scan.Sequence) error) error {
	workers := req.Workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	code := map[string]uint32{}
	for i, n := range m.names {
		code[n] = uint32(i)
	}
	var want map[uint32]bool
	if req.Events != nil {
		want = map[uint32]bool{}
		for _, e := range req.Events {
			want[e] = true
		}
	}
	var wg sync.WaitGroup
	errs := make([]error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			fn := visit(w)
			q := &scan.Sequence{Props: make([][]uint32, len(req.Props)), Dicts: make([][]scan.Value, len(req.Props))}
			index := make([]map[scan.Value]uint32, len(req.Props))
			for k := range index {
				index[k] = map[scan.Value]uint32{}
			}
			for i := w; i < len(m.users); i += workers {
				if err := ctx.Err(); err != nil {
					errs[w] = err
					return
				}
				u := m.users[i]
				q.User = u
				q.Times, q.Events = q.Times[:0], q.Events[:0]
				for k := range q.Props {
					q.Props[k] = q.Props[k][:0]
				}
				for _, e := range m.byUser[u] {
					if e.Time < req.From || req.To != 0 && e.Time >= req.To {
						continue
					}
					if want != nil && !want[code[e.Name]] {
						continue
					}
					q.Times = append(q.Times, e.Time)
					q.Events = append(q.Events, code[e.Name])
					for k, p := range req.Props {
						var code uint32
						if x, ok := e.Props[p]; ok {
							v := scan.Of(x)
							if code, ok = index[k][v]; !ok {
								q.Dicts[k] = append(q.Dicts[k], v)
								code = uint32(len(q.Dicts[k]))
								index[k][v] = code
							}
						}
						q.Props[k] = append(q.Props[k], code)
					}
				}
				if len(q.Times) == 0 {
					continue
				}
				if err := fn(q); err != nil {
					errs[w] = err
					return
				}
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
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
