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

var _ scan.RowSource = (*Source)(nil)

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

// scanSpec is the table scan of a request: its property columns by code,
// and where each requested property is among them (-1: the table never
// saw the property, which is then always absent).
func (src *Source) scanSpec(req scan.Request) (table.ScanSpec, []int) {
	spec := table.ScanSpec{From: req.From, To: req.To, Events: req.Events, Codes: true}
	col := make([]int, len(req.Props))
	for i, p := range req.Props {
		col[i] = -1
		if code, ok := src.snap.KeyCode(p); ok {
			col[i] = len(spec.Keys)
			spec.Keys = append(spec.Keys, code)
		}
	}
	return spec, col
}

// setProps points props and dicts at the table's columns, and at absent
// for the properties without one.
func setProps(props [][]uint32, dicts [][]scan.Value, col []int, codes [][]uint32, tdicts [][]scan.Value, n int, absent *[]uint32) {
	for i, c := range col {
		if c >= 0 {
			props[i], dicts[i] = codes[c], tdicts[c]
			continue
		}
		if cap(*absent) < n {
			*absent = make([]uint32, n)
		}
		props[i] = (*absent)[:n]
	}
}

// Scan runs the report engines' per-user scan (see scan.Source).
func (src *Source) Scan(ctx context.Context, req scan.Request, visit func(worker int) func(*scan.Sequence) error) error {
	spec, col := src.scanSpec(req)
	return src.snap.ParallelScan(ctx, spec, req.Workers, func(w int) func(*table.Sequence) error {
		fn := visit(w)
		out := &scan.Sequence{Props: make([][]uint32, len(req.Props)), Dicts: make([][]scan.Value, len(req.Props))}
		var absent []uint32
		return func(q *table.Sequence) error {
			out.User, out.Times, out.Events = uint64(q.User), q.Times, q.Events
			setProps(out.Props, out.Dicts, col, q.Codes, q.Dicts, len(q.Times), &absent)
			return fn(out)
		}
	})
}

// ScanRows hands out the project's events block by block, in user runs
// (see scan.RowSource).
func (src *Source) ScanRows(ctx context.Context, req scan.Request, visit func(worker int) func(*scan.Rows) error) error {
	spec, col := src.scanSpec(req)
	return src.snap.ParallelBlocks(ctx, spec, req.Workers, func(w int) func(*table.Block) error {
		fn := visit(w)
		out := &scan.Rows{Seq: scan.Sequence{Props: make([][]uint32, len(req.Props)), Dicts: make([][]scan.Value, len(req.Props))}}
		var absent []uint32
		var blk *table.Block
		out.LoadTimes = func() error {
			times, err := blk.Times()
			out.Seq.Times = times
			return err
		}
		return func(b *table.Block) error {
			blk = b
			out.Users, out.Ends = out.Users[:0], out.Ends[:0]
			for r, u := range b.Users {
				out.Users = append(out.Users, uint64(u))
				out.Ends = append(out.Ends, int(b.Ends[r]))
			}
			out.Seq.Times, out.Seq.Events = nil, b.Events
			out.Lo, out.Hi = b.Lo, b.Hi
			setProps(out.Seq.Props, out.Seq.Dicts, col, b.Codes, b.Dicts, b.Len(), &absent)
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
