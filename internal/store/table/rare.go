package table

import (
	"cmp"
	"slices"
	"sort"

	"github.com/veil-analytics/veil/internal/store/segment"
)

// rareRows are a segment's rows of some events, read from its event
// index: ascending row numbers with their events and times. A scan of
// rare events reads them instead of the segment's event and time columns.
type rareRows struct {
	rows  []uint32
	evs   []uint32
	times []int64
	perm  []int32
}

// load reads the events' rows of r.
func (x *rareRows) load(r *segment.Reader, s *segment.Scratch, events []uint32) error {
	x.rows, x.evs, x.times = x.rows[:0], x.evs[:0], x.times[:0]
	sorted := true
	for _, e := range events {
		n0 := len(x.rows)
		var err error
		if x.rows, x.times, err = r.EventIndex(s, e, x.rows, x.times); err != nil {
			return err
		}
		for range len(x.rows) - n0 {
			x.evs = append(x.evs, e)
		}
		if n0 > 0 && n0 < len(x.rows) && x.rows[n0] < x.rows[n0-1] {
			sorted = false
		}
	}
	if sorted {
		return nil
	}
	// Several events: put their rows in order (each list already is).
	x.perm = x.perm[:0]
	for i := range x.rows {
		x.perm = append(x.perm, int32(i))
	}
	slices.SortFunc(x.perm, func(a, b int32) int { return cmp.Compare(x.rows[a], x.rows[b]) })
	rows, evs, times := slices.Clone(x.rows), slices.Clone(x.evs), slices.Clone(x.times)
	for i, p := range x.perm {
		x.rows[i], x.evs[i], x.times[i] = rows[p], evs[p], times[p]
	}
	return nil
}

// block is the range [lo, hi) of the entries in block b.
func (x *rareRows) block(b int) (lo, hi int) {
	base := uint32(b * segment.BlockRows)
	lo = sort.Search(len(x.rows), func(i int) bool { return x.rows[i] >= base })
	hi = lo
	for hi < len(x.rows) && x.rows[hi] < base+segment.BlockRows {
		hi++
	}
	return lo, hi
}
