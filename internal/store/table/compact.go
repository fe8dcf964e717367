package table

import (
	"context"
	"fmt"
	"slices"

	"github.com/veil-analytics/veil/internal/store/segment"
)

// NeedsCompaction lists the days whose segments a Compact would rewrite:
// more than one segment, or rows of erased users.
func (t *Table) NeedsCompaction() []int32 {
	t.mu.Lock()
	defer t.mu.Unlock()
	count := map[int32]int{}
	erased := map[int32]bool{}
	for _, r := range t.man.Segments {
		count[r.Day]++
		if len(t.erased) > 0 && !erased[r.Day] {
			for _, u := range t.segs[r.File].r.Users() {
				if t.erased[u.User] {
					erased[r.Day] = true
					break
				}
			}
		}
	}
	var out []int32
	for d, n := range count {
		if n > 1 || erased[d] {
			out = append(out, d)
		}
	}
	slices.Sort(out)
	return out
}

// CompactStats say what a compaction did.
type CompactStats struct {
	Inputs     int
	RowsIn     int64
	RowsOut    int64
	Duplicates int64 // rows dropped for a repeated (event, time, $insert_id) of a user
	Erased     int64 // rows of erased users dropped
}

// Compact merges day's segments into one, in (user, time) order, keeping
// the first of rows with equal (user, time, event, $insert_id) and
// dropping erased users' rows. The new segment replaces the old ones in
// one manifest commit.
func (t *Table) Compact(ctx context.Context, day int32) (CompactStats, error) {
	t.compactMu.Lock()
	defer t.compactMu.Unlock()
	snap := t.daySnapshot(day)
	defer snap.Release()
	var st CompactStats
	if len(snap.parts) == 0 {
		return st, nil
	}
	inputs := snap.parts[0].segs
	keySet := map[uint32]bool{}
	remove := map[string]bool{}
	level := 0
	for _, h := range inputs {
		st.RowsIn += int64(h.r.Rows())
		for _, k := range h.r.Keys() {
			keySet[k] = true
		}
		remove[h.ref.File] = true
		level = max(level, h.ref.Level)
	}
	st.Inputs = len(inputs)
	keys := make([]uint32, 0, len(keySet))
	for k := range keySet {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	spec := ScanSpec{Keys: keys, InsertIDs: true}
	// Count what erasure drops: the scan skips those users.
	for _, h := range inputs {
		for _, u := range h.r.Users() {
			if snap.erased[u.User] {
				st.Erased += int64(u.N)
			}
		}
	}
	seq := t.reserveSeq(1)
	ref, err := t.writeSegment(day, seq, level+1, func(w *segment.Writer) error {
		var props []segment.Prop
		return snap.Scan(ctx, spec, func(q *Sequence) error {
			for i := range q.Times {
				if q.InsertIDs[i] != "" && dupBefore(q, i) {
					st.Duplicates++
					continue
				}
				props = props[:0]
				for k, key := range keys {
					if a := q.Props[k][i]; a != "" {
						props = append(props, segment.Prop{Key: key, Atom: string(a)})
					}
				}
				if err := w.Append(q.User, q.Times[i], q.Events[i], q.InsertIDs[i], props); err != nil {
					return err
				}
				st.RowsOut++
			}
			return nil
		})
	})
	if err != nil {
		return st, fmt.Errorf("table: compacting %s: %w", dayName(day), err)
	}
	if err := t.commitAdd([]segmentRef{ref}, remove); err != nil {
		return st, err
	}
	return st, nil
}

// dupBefore reports whether an earlier row of q at the same time has the
// same event and $insert_id as row i.
func dupBefore(q *Sequence, i int) bool {
	for j := i - 1; j >= 0 && q.Times[j] == q.Times[i]; j-- {
		if q.Events[j] == q.Events[i] && q.InsertIDs[j] == q.InsertIDs[i] {
			return true
		}
	}
	return false
}

// daySnapshot is a snapshot of one day's segments.
func (t *Table) daySnapshot(day int32) *Snapshot {
	s := t.Snapshot()
	kept := s.parts[:0]
	for _, p := range s.parts {
		if p.day == day {
			kept = append(kept, p)
		} else {
			for _, h := range p.segs {
				h.release()
			}
		}
	}
	s.parts = kept
	return s
}
