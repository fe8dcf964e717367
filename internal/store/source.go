package store

import (
	"context"
	"slices"

	"github.com/veil-analytics/veil/internal/event"
	"github.com/veil-analytics/veil/internal/scan"
	"github.com/veil-analytics/veil/internal/store/profiles"
	"github.com/veil-analytics/veil/internal/store/table"
)

// Source is a project's events as committed to its table when the source
// was opened (events still in the head arrive with the next flush), served
// through scan.Source.
type Source struct {
	project int64
	tb      *table.Table
	snap    *table.Snapshot
	prof    func(fn func(*profiles.State))
	close   func() error
}

var _ scan.Source = (*Source)(nil)

// Source opens project's events for the report engines.
func (s *Store) Source(project int64) (*Source, error) {
	tb, err := s.tables.get(project)
	if err != nil {
		return nil, err
	}
	return &Source{project: project, tb: tb, snap: tb.Snapshot(), prof: s.Profiles, close: func() error { return nil }}, nil
}

// OpenSource opens project's events in the data directory of a stopped
// (or running) server, read-only: what veil query reads.
func OpenSource(dataDir string, project int64) (*Source, error) {
	tb, err := table.Open(table.ProjectDir(dataDir, project), table.Options{ReadOnly: true})
	if err != nil {
		return nil, err
	}
	st, _, err := loadProfiles(dataDir)
	if err != nil {
		tb.Close()
		return nil, err
	}
	return &Source{project: project, tb: tb, snap: tb.Snapshot(),
		prof:  func(fn func(*profiles.State)) { fn(st) },
		close: tb.Close}, nil
}

// Events are the project's event names.
func (src *Source) Events() []string { return src.snap.Events() }

// Scan runs the report engines' per-user scan (see scan.Source).
func (src *Source) Scan(ctx context.Context, req scan.Request, visit func(worker int) func(*scan.Sequence) error) error {
	spec := table.ScanSpec{From: req.From, To: req.To, Events: req.Events, Codes: true}
	// A property the table never saw has no column: always absent.
	col := make([]int, len(req.Props)) // index into spec.Keys, -1 for none
	for i, p := range req.Props {
		col[i] = -1
		if code, ok := src.snap.KeyCode(p); ok {
			col[i] = len(spec.Keys)
			spec.Keys = append(spec.Keys, code)
		}
	}
	return src.snap.ParallelScan(ctx, spec, req.Workers, func(w int) func(*table.Sequence) error {
		fn := visit(w)
		out := &scan.Sequence{Props: make([][]uint32, len(req.Props)), Dicts: make([][]scan.Value, len(req.Props))}
		var absent []uint32
		return func(q *table.Sequence) error {
			out.User, out.Times, out.Events = uint64(q.User), q.Times, q.Events
			for i, c := range col {
				if c >= 0 {
					out.Props[i], out.Dicts[i] = q.Codes[c], q.Dicts[c]
					continue
				}
				if cap(absent) < len(q.Times) {
					absent = make([]uint32, len(q.Times))
				}
				out.Props[i] = absent[:len(q.Times)]
			}
			return fn(out)
		}
	})
}

// UserProps returns the profile properties keys of every user with a
// profile, by user ordinal (see scan.Source).
func (src *Source) UserProps(ctx context.Context, keys []string) (map[uint64][]scan.Value, error) {
	out := map[uint64][]scan.Value{}
	var err error
	src.prof(func(st *profiles.State) {
		st.EachUser(src.project, func(id string, props []event.Field) bool {
			if err = ctx.Err(); err != nil {
				return false
			}
			o, ok := src.tb.Ordinal(id)
			if !ok {
				return true // a profile without events
			}
			vals := make([]scan.Value, len(keys))
			for k, key := range keys {
				if i := slices.IndexFunc(props, func(f event.Field) bool { return f.Key == key }); i >= 0 {
					vals[k] = scan.Of(props[i].Value)
				}
			}
			// Merged ids share one person: the canonical id's profile wins.
			if _, seen := out[uint64(o)]; !seen || src.tb.User(o) == id {
				out[uint64(o)] = vals
			}
			return true
		})
	})
	return out, err
}

// Close releases the snapshot.
func (src *Source) Close() error {
	src.snap.Release()
	return src.close()
}
