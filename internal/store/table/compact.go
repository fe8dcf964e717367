package table

import (
	"cmp"
	"context"
	"fmt"
	"runtime"
	"slices"
	"sync"

	"github.com/veil-analytics/veil/internal/store/segment"
)

// MergeJobs lists the merges CompactAll runs: per day, each group of
// segments whose user ranges overlap (transitively) becomes one segment,
// and a day holding rows of erased users is merged whole. Segments with
// disjoint user ranges are already in (user, time) order across them, and
// no user's rows can repeat between them: merging them would rewrite every
// byte for nothing (an import of a user-ordered export overlaps only where
// a flush cut a user's events in two).
func (t *Table) MergeJobs() []CompactJob {
	t.mu.Lock()
	defer t.mu.Unlock()
	type span struct {
		lo, hi uint32
		file   string
	}
	spans := map[int32][]span{}
	erased := t.erasedDaysLocked()
	for _, r := range t.man.Segments {
		if us := t.segs[r.File].r.Users(); len(us) > 0 {
			spans[r.Day] = append(spans[r.Day], span{us[0].User, us[len(us)-1].User, r.File})
		}
	}
	var jobs []CompactJob
	for d, sp := range spans {
		if erased[d] {
			jobs = append(jobs, CompactJob{Day: d})
			continue
		}
		slices.SortFunc(sp, func(a, b span) int { return cmp.Compare(a.lo, b.lo) })
		for i := 0; i < len(sp); {
			j, hi := i+1, sp[i].hi
			for j < len(sp) && sp[j].lo <= hi {
				hi = max(hi, sp[j].hi)
				j++
			}
			if j-i > 1 {
				files := map[string]bool{}
				for _, x := range sp[i:j] {
					files[x.file] = true
				}
				jobs = append(jobs, CompactJob{Day: d, files: files})
			}
			i = j
		}
	}
	slices.SortFunc(jobs, func(a, b CompactJob) int { return cmp.Compare(a.Day, b.Day) })
	return jobs
}

// NeedsCompaction lists the days CompactAll would rewrite some of.
func (t *Table) NeedsCompaction() []int32 {
	var out []int32
	for _, j := range t.MergeJobs() {
		if len(out) == 0 || out[len(out)-1] != j.Day {
			out = append(out, j.Day)
		}
	}
	return out
}

// erasedDaysLocked lists the days with segments holding erased users' rows.
func (t *Table) erasedDaysLocked() map[int32]bool {
	days := map[int32]bool{}
	if len(t.erased) == 0 {
		return days
	}
	for _, r := range t.man.Segments {
		if days[r.Day] {
			continue
		}
		for _, u := range t.segs[r.File].r.Users() {
			if t.erased[u.User] {
				days[r.Day] = true
				break
			}
		}
	}
	return days
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
	return t.compact(ctx, day, nil)
}

// CompactJob is a merge that Plan proposes: some segments of one day.
type CompactJob struct {
	Day   int32
	files map[string]bool // nil: all of the day's segments
}

// tierWidth is how many segments of one level a tiered merge joins: each
// row is rewritten about log4(n) times as a day grows.
const tierWidth = 4

// Plan proposes the merges that keep reads fast as flushes add segments:
// per day, tierWidth or more segments of one level merge into one of the
// next level (smallest level first); a day holding erased users' rows is
// merged whole.
func (t *Table) Plan() []CompactJob {
	t.mu.Lock()
	defer t.mu.Unlock()
	type key struct {
		day   int32
		level int
	}
	byLevel := map[key][]string{}
	var jobs []CompactJob
	seen := t.erasedDaysLocked()
	for d := range seen {
		jobs = append(jobs, CompactJob{Day: d})
	}
	for _, r := range t.man.Segments {
		byLevel[key{r.Day, r.Level}] = append(byLevel[key{r.Day, r.Level}], r.File)
	}
	best := map[int32]key{}
	for k, files := range byLevel {
		if len(files) < tierWidth || seen[k.day] {
			continue
		}
		if b, ok := best[k.day]; !ok || k.level < b.level {
			best[k.day] = k
		}
	}
	for _, k := range best {
		files := map[string]bool{}
		for _, f := range byLevel[k] {
			files[f] = true
		}
		jobs = append(jobs, CompactJob{Day: k.day, files: files})
	}
	slices.SortFunc(jobs, func(a, b CompactJob) int { return int(a.Day - b.Day) })
	return jobs
}

// Run carries out a job.
func (t *Table) Run(ctx context.Context, j CompactJob) (CompactStats, error) {
	return t.compact(ctx, j.Day, j.files)
}

// compact merges day's segments, or those of them named in files.
func (t *Table) compact(ctx context.Context, day int32, files map[string]bool) (CompactStats, error) {
	t.compactMu.RLock()
	defer t.compactMu.RUnlock()
	l, _ := t.dayLocks.LoadOrStore(day, new(sync.Mutex))
	l.(*sync.Mutex).Lock()
	defer l.(*sync.Mutex).Unlock()
	snap := t.daySnapshot(day)
	defer snap.Release()
	var st CompactStats
	if len(snap.parts) == 0 {
		return st, nil
	}
	var inputs []*handle
	for _, h := range snap.parts[0].segs {
		if files == nil || files[h.ref.File] {
			inputs = append(inputs, h)
		} else {
			h.release() // the snapshot only keeps the inputs
		}
	}
	snap.parts[0].segs = inputs
	if len(inputs) == 0 {
		return st, nil
	}
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
	spec := ScanSpec{Keys: keys, Details: true}
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
		var row segment.Row
		return snap.Scan(ctx, spec, func(q *Sequence) error {
			for i := range q.Times {
				if q.InsertIDs[i] != "" && dupBefore(q, i) {
					st.Duplicates++
					continue
				}
				row = segment.Row{User: q.User, Time: q.Times[i], Event: q.Events[i], Received: q.Received[i],
					InsertID: q.InsertIDs[i], Props: row.Props[:0]}
				for k, key := range keys {
					if a := q.Props[k][i]; a != "" {
						row.Props = append(row.Props, segment.Prop{Key: key, Atom: string(a)})
					}
				}
				if err := w.Append(&row); err != nil {
					return err
				}
				st.RowsOut++
			}
			return nil
		})
	})
	if err != nil {
		return st, fmt.Errorf("table: compacting %s: %w", DayName(day), err)
	}
	if err := t.commitAdd([]segmentRef{ref}, remove, 0); err != nil {
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

// MaxSegmentsPerDay is the most segments any one day holds.
func (t *Table) MaxSegmentsPerDay() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := map[int32]int{}
	most := 0
	for _, r := range t.man.Segments {
		n[r.Day]++
		most = max(most, n[r.Day])
	}
	return most
}

// CompactAll runs MergeJobs on all cores: afterwards no two segments of a
// day overlap in users, and no erased user's rows remain.
func (t *Table) CompactAll(ctx context.Context) (CompactStats, error) {
	jobs := t.MergeJobs()
	var mu sync.Mutex
	var total CompactStats
	err := parallel(ctx, len(jobs), func(i int) error {
		st, err := t.Run(ctx, jobs[i])
		mu.Lock()
		total.Inputs += st.Inputs
		total.RowsIn += st.RowsIn
		total.RowsOut += st.RowsOut
		total.Duplicates += st.Duplicates
		total.Erased += st.Erased
		mu.Unlock()
		return err
	})
	return total, err
}

// parallel runs fn(0..n-1) on GOMAXPROCS goroutines and returns the first
// error; after one, the remaining calls are skipped.
func parallel(ctx context.Context, n int, fn func(i int) error) error {
	var next int
	var mu sync.Mutex
	var first error
	var wg sync.WaitGroup
	for range min(n, runtime.GOMAXPROCS(0)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				mu.Lock()
				i := next
				next++
				stop := first != nil || ctx.Err() != nil
				mu.Unlock()
				if i >= n || stop {
					return
				}
				if err := fn(i); err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	if first == nil {
		first = ctx.Err()
	}
	return first
}
