package table

import (
	"sort"

	"github.com/veil-analytics/veil/internal/store/segment"
)

// rareRows are a segment's event index: ascending row numbers with their
// events and times. A scan of rare events reads them instead of the
// segment's event and time columns, skipping the rows of events it does
// not want.
type rareRows struct {
	rows  []uint32
	evs   []uint32
	times []int64
}

// load reads r's event index; without rows, its events and times alone.
func (x *rareRows) load(r *segment.Reader, rows bool) error {
	var err error
	if !rows {
		x.rows = x.rows[:0]
		x.evs, x.times, err = r.RareEvents(x.evs[:0], x.times[:0])
		return err
	}
	x.rows, x.evs, x.times, err = r.RareIndex(x.rows[:0], x.evs[:0], x.times[:0])
	return err
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
