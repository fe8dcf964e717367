package table

import (
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

	spareRows  []uint32
	spareEvs   []uint32
	spareTimes []int64
}

// load reads the events' rows of r.
func (x *rareRows) load(r *segment.Reader, s *segment.Scratch, events []uint32) error {
	x.rows, x.evs, x.times = x.rows[:0], x.evs[:0], x.times[:0]
	for _, e := range events {
		// Each event's rows ascend: merge them into the ones so far.
		n0 := len(x.rows)
		var err error
		if x.rows, x.times, err = r.EventIndex(s, e, x.rows, x.times); err != nil {
			return err
		}
		for range len(x.rows) - n0 {
			x.evs = append(x.evs, e)
		}
		if n0 > 0 && n0 < len(x.rows) && x.rows[n0] < x.rows[n0-1] {
			x.merge(n0)
		}
	}
	return nil
}

// merge merges the ascending entries [0, mid) and [mid, len) in place,
// through the spare buffers.
func (x *rareRows) merge(mid int) {
	n := len(x.rows)
	rows, evs, times := x.spareRows[:0], x.spareEvs[:0], x.spareTimes[:0]
	i, j := 0, mid
	for i < mid || j < n {
		k := i
		if i == mid || j < n && x.rows[j] < x.rows[i] {
			k = j
			j++
		} else {
			i++
		}
		rows, evs, times = append(rows, x.rows[k]), append(evs, x.evs[k]), append(times, x.times[k])
	}
	x.rows, x.spareRows = rows, x.rows
	x.evs, x.spareEvs = evs, x.evs
	x.times, x.spareTimes = times, x.times
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
