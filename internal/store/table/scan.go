package table

import (
	"cmp"
	"context"
	"runtime"
	"slices"
	"sort"
	"sync"
	"sync/atomic"

	"github.com/veil-analytics/veil/internal/store/enc"
	"github.com/veil-analytics/veil/internal/store/segment"
)

// Snapshot is a consistent view of a table: the segments committed when it
// was taken stay readable until Release, whatever flushes and compactions
// do meanwhile.
type Snapshot struct {
	parts  []snapPart // ascending by day
	events []string
	keys   []string
	erased map[uint32]bool
	users  int
	once   sync.Once
}

type snapPart struct {
	day  int32
	segs []*handle
}

// Snapshot takes a snapshot; the caller must Release it.
func (t *Table) Snapshot() *Snapshot {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := &Snapshot{events: slices.Clone(t.man.Events), keys: slices.Clone(t.man.Keys),
		erased: make(map[uint32]bool, len(t.erased)), users: t.ids.Len()}
	for u := range t.erased {
		s.erased[u] = true
	}
	for _, ref := range t.man.Segments { // sorted by day
		h := t.segs[ref.File]
		h.refs.Add(1)
		if n := len(s.parts); n == 0 || s.parts[n-1].day != ref.Day {
			s.parts = append(s.parts, snapPart{day: ref.Day})
		}
		p := &s.parts[len(s.parts)-1]
		p.segs = append(p.segs, h)
	}
	return s
}

// Release lets the snapshot's segments go.
func (s *Snapshot) Release() {
	s.once.Do(func() {
		for _, p := range s.parts {
			for _, h := range p.segs {
				h.release()
			}
		}
	})
}

// Events are the event names by code.
func (s *Snapshot) Events() []string { return s.events }

// Keys are the property keys by code.
func (s *Snapshot) Keys() []string { return s.keys }

// Users is one more than the largest user ordinal.
func (s *Snapshot) Users() int { return s.users }

// EventCode returns the code of an event name.
func (s *Snapshot) EventCode(name string) (uint32, bool) {
	i := slices.Index(s.events, name)
	return uint32(i), i >= 0
}

// KeyCode returns the code of a property key.
func (s *Snapshot) KeyCode(key string) (uint32, bool) {
	i := slices.Index(s.keys, key)
	return uint32(i), i >= 0
}

// Rows is the number of stored rows, erased users included.
func (s *Snapshot) Rows() int64 {
	var n int64
	for _, p := range s.parts {
		for _, h := range p.segs {
			n += int64(h.r.Rows())
		}
	}
	return n
}

// ScanSpec says what a scan reads.
type ScanSpec struct {
	// From and To bound the event time in Unix ms, [From, To); To == 0
	// means no upper bound.
	From, To int64
	// Keys are the property columns to read, by code.
	Keys []uint32
	// UserLo and UserHi bound the user ordinals, [UserLo, UserHi); UserHi
	// == 0 means no upper bound.
	UserLo, UserHi uint32
	// Events, when not nil, are the only event codes read: users with
	// none of them are not visited.
	Events []uint32

	// Codes reads property columns as codes into the scanner's own
	// dictionaries (Sequence.Codes and Dicts) instead of values: 4 bytes
	// a row, and a worker's codes stay the same for its whole scan.
	Codes bool

	// Details reads each row's $insert_id and receive time too
	// (Sequence.InsertIDs and Received): compaction and export need them,
	// reports do not.
	Details bool
}

// Sequence is one user's rows in time order. Its slices are reused for the
// next user: a visitor must copy what it keeps.
type Sequence struct {
	User   uint32
	Times  []int64
	Events []uint32
	// Props[k][i] is the value of ScanSpec.Keys[k] at row i, "" if absent.
	Props [][]segment.Atom
	// With ScanSpec.Codes, Codes[k][i] stands for that value instead: 0
	// when absent, else Dicts[k][code-1]. Dicts only grow during a scan.
	Codes [][]uint32
	Dicts [][]segment.Atom

	// With ScanSpec.Details, InsertIDs[i] is row i's $insert_id ("" for
	// none) and Received[i] its receive time in Unix ms.
	InsertIDs []string
	Received  []int64
}

// Len is the number of rows.
func (q *Sequence) Len() int { return len(q.Times) }

// cursor walks one segment's users in order.
type cursor struct {
	h    *handle
	r    *segment.Reader
	part int
	idx  int // position in scanner.cursors (day order)
	ui   int // next entry of the user table
	// The segment's first and last user.
	first, last uint32
	uend        int

	block int  // decoded block, -1 for none
	none  bool // the block has none of the wanted events (only events decoded)
	// The decoded block, from a spare or new on the first load: a scan
	// of the event index alone never has one.
	*cursorBufs
	props []segment.PropBlock
	dicts [][]segment.Atom
	codes [][]uint32
	raws  [][]segment.Atom
	remap [][]uint32 // with ScanSpec.Codes: segment code -> scanner code
	// With an event filter the segment's index covers: the wanted rows,
	// read on first use.
	indexed bool
	rare    *rareRows
	rarePos int // the first entry of rare not yet taken
}

// loadRare reads the cursor's wanted rows from its segment's event index.
func (sc *scanner) loadRare(c *cursor) error {
	x := &rareRows{}
	if n := len(sc.spareRare); n > 0 {
		x, sc.spareRare = sc.spareRare[n-1], sc.spareRare[:n-1]
	}
	if err := x.load(c.r, !sc.bare); err != nil {
		return err
	}
	c.rare, c.rarePos = x, 0
	return nil
}

// release takes the cursor's decoded block buffers back for the next
// cursor that loads one, so that a scan over many segments holds the
// buffers of the few it is in, and allocates no more.
func (sc *scanner) release(c *cursor) {
	if c.cursorBufs != nil && len(sc.spare) < 4 {
		sc.spare = append(sc.spare, c.cursorBufs)
	}
	c.cursorBufs = nil
	c.block = -1
	// Every index is kept for reuse: no more are held than the scan
	// once had open together, and a chunk has one open per day or more.
	if c.rare != nil {
		sc.spareRare = append(sc.spareRare, c.rare)
	}
	c.rare, c.rarePos = nil, 0
	for k := range c.props {
		c.props[k], c.codes[k], c.raws[k] = segment.PropBlock{}, nil, nil
	}
}

// cursorBufs are a cursor's decoded columns and read buffer.
type cursorBufs struct {
	times    []int64
	events   []uint32
	inserts  []string
	received []int64
	scratch  segment.Scratch

	// With an event filter: the block's wanted rows and their events,
	// and the times to read them from.
	selector enc.Selector
	sel      []uint16
	selEv    []uint32
	selTimes []int64
	timeBlk  enc.Int64Block
}

// load decodes block b of the cursor's columns. With want (an event
// filter), a block holding none of the wanted events decodes only its
// events: c.none is set and the other columns are left stale.
func (c *cursor) load(b int, keys []uint32, details bool, want []uint8) error {
	var err error
	c.none = false
	if want != nil && c.indexed {
		// takeRare has the rows from the event index: only the
		// properties and details of the block are decoded.
		c.block = b
	} else if want != nil {
		// The block's wanted rows and their events; their times are read
		// one by one.
		if err := c.r.SelectEvents(&c.scratch, b, want, &c.selector); err != nil {
			return err
		}
		c.sel, c.selEv = c.selector.Idx, c.selector.Vals
		c.none = len(c.sel) == 0
		c.block = b
		if c.none {
			return nil
		}
		if err := c.r.TimeBlock(&c.scratch, b, &c.timeBlk); err != nil {
			return err
		}
		// All at once: the reads are independent, so their cache misses
		// overlap (a block's times are rarely in the cache).
		c.selTimes = slices.Grow(c.selTimes[:0], len(c.sel))[:len(c.sel)]
		for k, j := range c.sel {
			c.selTimes[k] = c.timeBlk.At(int(j))
		}
	}
	if details {
		if c.inserts, err = c.r.Inserts(&c.scratch, b, c.inserts); err != nil {
			return err
		}
		if c.received, err = c.r.Received(&c.scratch, b, c.received); err != nil {
			return err
		}
	}
	if want == nil {
		if c.times, err = c.r.Times(&c.scratch, b, c.times); err != nil {
			return err
		}
		if c.events, err = c.r.Events(&c.scratch, b, c.events); err != nil {
			return err
		}
	}
	for k, key := range keys {
		if c.props[k], err = c.r.Prop(&c.scratch, key, b, c.codes[k], c.raws[k]); err != nil {
			return err
		}
		if c.props[k].Codes != nil {
			c.codes[k] = c.props[k].Codes
		} else if c.props[k].Atoms != nil {
			c.raws[k] = c.props[k].Atoms
		}
	}
	c.block = b
	return nil
}

// scanner is one goroutine's state. It reads users a chunk at a time: a
// count pass over the cursors' user tables places every user's rows, a
// copy pass moves them from the decoded blocks (each cursor reading its
// blocks in order), and then each user's rows are one contiguous slice.
type scanner struct {
	s        *Snapshot
	spec     ScanSpec
	cursors  []*cursor
	multi    bool      // a day's segments overlap in users: a user's rows may need sorting
	clipping bool      // the time range cuts a segment: users' rows need clipping
	wait     []*cursor // runRange: cursors whose next user is beyond the chunk
	cur      []*cursor // runRange: cursors with users in the chunk
	spare    []*cursorBufs
	// Event index rows of finished cursors, for reuse.
	spareRare []*rareRows
	want      []uint8 // by event code, 1 for wanted, with ScanSpec.Events; the last entry is 0
	bare      bool    // times and events alone: no property or detail is read

	offs     []uint32 // per user of the chunk, where its rows start
	pos      []uint32
	times    []int64
	events   []uint32
	inserts  []string
	received []int64
	props    [][]segment.Atom
	codes    [][]uint32 // with ScanSpec.Codes, instead of props
	coder    coder      // with ScanSpec.Codes
	seq      Sequence

	// The filtered gather's rows in cursor order, before placing by user.
	tmp struct {
		users    []uint32
		times    []int64
		events   []uint32
		inserts  []string
		received []int64
		props    [][]segment.Atom
		codes    [][]uint32
	}
}

func (s *Snapshot) newScanner(spec ScanSpec) (*scanner, error) {
	sc := &scanner{s: s, spec: spec, bare: len(spec.Keys) == 0 && !spec.Details}
	if spec.Events != nil {
		// One entry past the codes stands for every code beyond them.
		sc.want = make([]uint8, len(s.events)+1)
		for _, e := range spec.Events {
			if int(e) < len(s.events) {
				sc.want[e] = 1
			}
		}
	}
	if spec.Codes {
		sc.seq.Codes = make([][]uint32, len(spec.Keys))
		sc.coder = newCoder(len(spec.Keys))
		sc.seq.Dicts = sc.coder.dicts // one slice: the coder's growth shows
		sc.codes = make([][]uint32, len(spec.Keys))
	} else {
		sc.seq.Props = make([][]segment.Atom, len(spec.Keys))
		sc.props = make([][]segment.Atom, len(spec.Keys))
	}
	for pi, p := range s.parts {
		dayLo, dayHi := int64(p.day)*86_400_000, int64(p.day+1)*86_400_000
		if dayHi <= spec.From || spec.To != 0 && dayLo >= spec.To {
			continue
		}
		n := 0
		for _, h := range p.segs {
			lo, hi := h.r.TimeRange()
			if hi < spec.From || spec.To != 0 && lo >= spec.To || h.r.Rows() == 0 {
				continue
			}
			// Users' rows need clipping only from segments the range cuts.
			sc.clipping = sc.clipping || lo < spec.From || spec.To != 0 && hi >= spec.To
			c := &cursor{h: h, r: h.r, part: pi, block: -1,
				props: make([]segment.PropBlock, len(spec.Keys)), dicts: make([][]segment.Atom, len(spec.Keys)),
				codes: make([][]uint32, len(spec.Keys)), raws: make([][]segment.Atom, len(spec.Keys)),
				remap: make([][]uint32, len(spec.Keys))}
			for k, key := range spec.Keys {
				d, err := c.r.Dict(key)
				if err != nil {
					return nil, err
				}
				c.dicts[k] = d
			}
			us := c.r.Users()
			c.first, c.last = us[0].User, us[len(us)-1].User
			c.idx = len(sc.cursors)
			c.indexed = spec.Events != nil && h.r.Indexed(spec.Events)
			sc.cursors = append(sc.cursors, c)
			n++
		}
		// A user's rows need sorting only where a day's segments overlap
		// in users; disjoint ones are in order across them.
		sc.multi = sc.multi || overlapping(sc.cursors[len(sc.cursors)-n:])
	}
	return sc, nil
}

// overlapping reports whether two of the cursors' segments share a user.
func overlapping(cs []*cursor) bool {
	if len(cs) < 2 {
		return false
	}
	type span struct{ lo, hi uint32 }
	sp := make([]span, len(cs))
	for i, c := range cs {
		us := c.r.Users()
		sp[i] = span{us[0].User, us[len(us)-1].User}
	}
	slices.SortFunc(sp, func(a, b span) int { return cmp.Compare(a.lo, b.lo) })
	for i := 1; i < len(sp); i++ {
		if sp[i].lo <= sp[i-1].hi {
			return true
		}
	}
	return false
}

// seek positions the cursors with users in [lo, hi) on their first user
// at or after lo, and lists them in sc.wait. A segment's user bounds are
// kept in its cursor: most segments lie wholly outside a worker's range,
// and searching their user tables would miss the cache at every step.
func (sc *scanner) seek(lo, hi uint32) {
	sc.wait = sc.wait[:0]
	for _, c := range sc.cursors {
		if c.last < lo || c.first >= hi {
			continue
		}
		c.ui = 0
		if c.first < lo {
			us := c.r.Users()
			c.ui = sort.Search(len(us), func(i int) bool { return us[i].User >= lo })
		}
		sc.wait = append(sc.wait, c)
	}
}

// runRange visits the users [lo, hi) in chunks of step users.
//
// A chunk looks only at the cursors with users in it: a day may hold many
// segments of disjoint user ranges (an import writes one per flush), and
// visiting them all for every chunk would cost segments × chunks. Cursors
// wait, by their next user, until a chunk reaches it, and leave once they
// have no user left in the range.
func (sc *scanner) runRange(ctx context.Context, lo, hi, step uint32, fn func(*Sequence) error) error {
	sc.seek(lo, hi)
	next := func(c *cursor) uint32 { return c.r.Users()[c.ui].User }
	slices.SortFunc(sc.wait, func(a, b *cursor) int { return cmp.Compare(next(a), next(b)) })
	sc.cur = sc.cur[:0]
	wi := 0
	for a := uint64(lo); a < uint64(hi); a += uint64(step) {
		if err := ctx.Err(); err != nil {
			return err
		}
		b := uint32(min(a+uint64(step), uint64(hi)))
		added := false
		for wi < len(sc.wait) && next(sc.wait[wi]) < b {
			sc.cur = append(sc.cur, sc.wait[wi])
			wi++
			added = true
		}
		if added { // cursors in day order: a user's rows then come in time order
			slices.SortFunc(sc.cur, func(x, y *cursor) int { return cmp.Compare(x.idx, y.idx) })
		}
		if len(sc.cur) == 0 {
			continue
		}
		if err := sc.chunk(uint32(a), b, fn); err != nil {
			return err
		}
		live := sc.cur[:0]
		for _, c := range sc.cur {
			if c.ui < len(c.r.Users()) && next(c) < hi {
				live = append(live, c)
			}
		}
		clear(sc.cur[len(live):])
		sc.cur = live
	}
	return nil
}

// chunk visits the users [lo, hi); cursors must be positioned at lo.
func (sc *scanner) chunk(lo, hi uint32, fn func(*Sequence) error) error {
	if sc.want != nil {
		return sc.chunkFiltered(lo, hi, fn)
	}
	n := int(hi - lo)
	sc.offs = slices.Grow(sc.offs[:0], n+1)[:n+1]
	clear(sc.offs)
	for _, c := range sc.cur {
		us := c.r.Users()
		i := c.ui
		for i < len(us) && us[i].User < hi {
			sc.offs[us[i].User-lo+1] += us[i].N
			i++
		}
		c.uend = i
	}
	if sc.place(n) == 0 {
		return nil
	}
	for _, c := range sc.cur {
		us := c.r.Users()
		for i := c.ui; i < c.uend; i++ {
			run := us[i]
			u := run.User - lo
			if err := sc.copyRows(c, int(run.Start), int(run.N), int(sc.pos[u])); err != nil {
				return err
			}
			sc.pos[u] += run.N
		}
		c.ui = c.uend
		if c.ui == len(us) && c.block >= 0 {
			sc.release(c) // done with this segment: a worker's ranges ascend
		}
	}
	return sc.visitChunk(lo, n, fn)
}

// place turns the chunk's per-user row counts in offs into offsets,
// sizes the chunk's columns and sets pos to each user's first row; it
// returns the chunk's row count.
func (sc *scanner) place(n int) int {
	for u := 1; u <= n; u++ {
		sc.offs[u] += sc.offs[u-1]
	}
	total := int(sc.offs[n])
	if total == 0 {
		return 0
	}
	sc.times = slices.Grow(sc.times[:0], total)[:total]
	sc.events = slices.Grow(sc.events[:0], total)[:total]
	if sc.spec.Details {
		sc.inserts = slices.Grow(sc.inserts[:0], total)[:total]
		sc.received = slices.Grow(sc.received[:0], total)[:total]
	}
	for k := range sc.props {
		sc.props[k] = slices.Grow(sc.props[k][:0], total)[:total]
	}
	for k := range sc.codes {
		sc.codes[k] = slices.Grow(sc.codes[k][:0], total)[:total]
	}
	sc.pos = append(sc.pos[:0], sc.offs[:n]...)
	return total
}

// visitChunk calls fn for each user of the gathered chunk.
func (sc *scanner) visitChunk(lo uint32, n int, fn func(*Sequence) error) error {
	q := &sc.seq
	for u := range n {
		a, b := sc.offs[u], sc.offs[u+1]
		if a == b || len(sc.s.erased) > 0 && sc.s.erased[lo+uint32(u)] {
			continue
		}
		q.User = lo + uint32(u)
		q.Times, q.Events = sc.times[a:b], sc.events[a:b]
		if sc.spec.Details {
			q.InsertIDs, q.Received = sc.inserts[a:b], sc.received[a:b]
		}
		for k := range q.Props {
			q.Props[k] = sc.props[k][a:b]
		}
		for k := range q.Codes {
			q.Codes[k] = sc.codes[k][a:b]
		}
		if sc.multi && !slices.IsSorted(q.Times) {
			sc.sortSeq()
		}
		if sc.clipping {
			sc.clip()
		}
		if len(q.Times) == 0 {
			continue
		}
		if err := fn(q); err != nil {
			return err
		}
	}
	return nil
}

// chunkFiltered is chunk with an event filter: rows of other events are
// never copied, and blocks without a wanted event are not decoded past
// their event column. Rows are first collected in cursor order with their
// user, then placed by a counting sort, which keeps each user's rows in
// cursor order as chunk does.
func (sc *scanner) chunkFiltered(lo, hi uint32, fn func(*Sequence) error) error {
	n := int(hi - lo)
	sc.offs = slices.Grow(sc.offs[:0], n+1)[:n+1]
	clear(sc.offs)
	t := &sc.tmp
	t.users, t.times, t.events = t.users[:0], t.times[:0], t.events[:0]
	t.inserts, t.received = t.inserts[:0], t.received[:0]
	if len(t.props) != len(sc.spec.Keys) {
		t.props = make([][]segment.Atom, len(sc.spec.Keys))
	}
	for k := range t.props {
		t.props[k] = t.props[k][:0]
	}
	if sc.spec.Codes {
		if len(t.codes) != len(sc.spec.Keys) {
			t.codes = make([][]uint32, len(sc.spec.Keys))
		}
		for k := range t.codes {
			t.codes[k] = t.codes[k][:0]
		}
	}
	for _, c := range sc.cur {
		us := c.r.Users()
		i := c.ui
		if c.indexed && sc.bare {
			var err error
			if c.ui, err = sc.takeRareRuns(c, us, lo, hi); err != nil {
				return err
			}
			if c.ui == len(us) && c.rare != nil {
				sc.release(c)
			}
			continue
		}
		e := i
		for e < len(us) && us[e].User < hi {
			e++
		}
		if e > i {
			// The chunk's rows of this segment are [rowLo, rowHi): walk the
			// selected rows of their blocks, and the runs alongside to
			// find each row's user. Runs without a selected row cost a
			// comparison.
			rowLo := int(us[i].Start)
			rowHi := int(us[e-1].Start + us[e-1].N)
			ri := i
			if c.indexed {
				if err := sc.takeRare(c, us, ri, rowLo, rowHi, lo); err != nil {
					return err
				}
			}
			for b := rowLo / segment.BlockRows; !c.indexed && b*segment.BlockRows < rowHi; b++ {
				if c.block != b {
					if err := sc.loadBlock(c, b); err != nil {
						return err
					}
				}
				base := b * segment.BlockRows
				for k, j16 := range c.sel {
					j := int(j16)
					row := base + j
					if row < rowLo {
						continue
					}
					if row >= rowHi {
						break
					}
					for int(us[ri].Start+us[ri].N) <= row {
						ri++
					}
					sc.take(c, us[ri].User-lo, c.selTimes[k], c.selEv[k], j)
				}
			}
		}
		c.ui = e
		if c.ui == len(us) && (c.block >= 0 || c.rare != nil) {
			sc.release(c)
		}
	}
	if sc.place(n) == 0 {
		return nil
	}
	if sc.bare {
		pos, times, events := sc.pos, sc.times, sc.events
		tt, te := t.times[:len(t.users)], t.events[:len(t.users)]
		for r, u := range t.users {
			d := pos[u]
			pos[u]++
			times[d], events[d] = tt[r], te[r]
		}
		return sc.visitChunk(lo, n, fn)
	}
	for r, u := range t.users {
		d := sc.pos[u]
		sc.pos[u]++
		sc.times[d], sc.events[d] = t.times[r], t.events[r]
		if sc.spec.Details {
			sc.inserts[d], sc.received[d] = t.inserts[r], t.received[r]
		}
		for k := range sc.props {
			sc.props[k][d] = t.props[k][r]
		}
		for k := range sc.codes {
			sc.codes[k][d] = t.codes[k][r]
		}
	}
	return sc.visitChunk(lo, n, fn)
}

// bufs gives the cursor block buffers, a spare one if there is.
func (sc *scanner) bufs(c *cursor) {
	if c.cursorBufs != nil {
		return
	}
	if n := len(sc.spare); n > 0 {
		c.cursorBufs, sc.spare = sc.spare[n-1], sc.spare[:n-1]
		return
	}
	c.cursorBufs = &cursorBufs{}
}

// loadBlock decodes block b of the cursor for a filtered scan.
func (sc *scanner) loadBlock(c *cursor, b int) error {
	sc.bufs(c)
	return c.load(b, sc.spec.Keys, sc.spec.Details, sc.want)
}

// takeRare is chunkFiltered's walk over the rows [rowLo, rowHi) of an
// indexed cursor: straight from its event index entries, decoding blocks
// only for the properties (and details) asked for. ri is the user table
// entry of rowLo.
func (sc *scanner) takeRare(c *cursor, us []segment.UserRun, ri, rowLo, rowHi int, lo uint32) error {
	if c.rare == nil {
		if err := sc.loadRare(c); err != nil {
			return err
		}
	}
	x := c.rare
	k := c.rarePos
	// Chunks ascend and mostly follow each other: search only after a
	// jump (a worker's next user range) or a step back.
	if k < len(x.rows) && int(x.rows[k]) < rowLo || k > 0 && int(x.rows[k-1]) >= rowLo {
		k = sort.Search(len(x.rows), func(i int) bool { return int(x.rows[i]) >= rowLo })
	}
	want, last := sc.want, uint32(len(sc.want)-1)
	// From here on x.rows[k] >= rowLo.
	for ; k < len(x.rows) && int(x.rows[k]) < rowHi; k++ {
		row := int(x.rows[k])
		if want[min(x.evs[k], last)] == 0 {
			continue
		}
		for int(us[ri].Start+us[ri].N) <= row {
			ri++
		}
		b := row / segment.BlockRows
		if c.block != b {
			if err := sc.loadBlock(c, b); err != nil {
				return err
			}
		}
		sc.take(c, us[ri].User-lo, x.times[k], x.evs[k], row-b*segment.BlockRows)
	}
	c.rarePos = k
	return nil
}

// takeRareRuns is chunkFiltered's walk over an indexed cursor for a scan
// of times and events alone: the wanted index rows of the chunk's users
// [lo, hi), from the cursor's position on, with the users the segment
// found for them at open (segment.Reader.IndexUsers): no user run is
// read. It returns the user table entry of the first row past the chunk,
// or the end of the table.
func (sc *scanner) takeRareRuns(c *cursor, us []segment.UserRun, lo, hi uint32) (int, error) {
	if c.ui == len(us) || us[c.ui].User >= hi {
		return c.ui, nil
	}
	if c.rare == nil {
		if err := sc.loadRare(c); err != nil {
			return c.ui, err
		}
	}
	x := c.rare
	users := c.r.IndexUsers()
	k := c.rarePos
	ui := uint32(c.ui)
	if k < len(users) && users[k].Run < ui || k > 0 && users[k-1].Run >= ui {
		k = sort.Search(len(users), func(i int) bool { return users[i].Run >= ui })
	}
	// Rows of unwanted events are written too, and overwritten: no
	// branch that guesses wrong at every seventh row or so.
	want, last := sc.want, uint32(len(sc.want)-1)
	t := &sc.tmp
	m, rest := len(t.users), len(users)-k // room for every remaining row
	tu := slices.Grow(t.users, rest)[:m+rest]
	times := slices.Grow(t.times, rest)[:m+rest]
	events := slices.Grow(t.events, rest)[:m+rest]
	offs := sc.offs
	for ; k < len(users); k++ {
		u := users[k].User
		if u >= hi {
			break
		}
		e := x.evs[k]
		w := want[min(e, last)]
		u -= lo
		tu[m], times[m], events[m] = u, x.times[k], e
		offs[u+1] += uint32(w)
		m += int(w)
	}
	t.users, t.times, t.events = tu[:m], times[:m], events[:m]
	c.rarePos = k
	if k == len(users) {
		return len(us), nil
	}
	return int(users[k].Run), nil
}

// take adds row j of the cursor's block, of chunk user u, to the
// filtered gather.
func (sc *scanner) take(c *cursor, u uint32, time int64, ev uint32, j int) {
	t := &sc.tmp
	t.users = append(t.users, u)
	t.times = append(t.times, time)
	t.events = append(t.events, ev)
	if sc.spec.Details {
		t.inserts = append(t.inserts, c.inserts[j])
		t.received = append(t.received, c.received[j])
	}
	if sc.spec.Codes {
		for k := range t.codes {
			t.codes[k] = append(t.codes[k], sc.code(c, k, j))
		}
	} else {
		for k := range t.props {
			t.props[k] = append(t.props[k], c.atom(k, j))
		}
	}
	sc.offs[u+1]++
}

// code is row j of the cursor's property column k as a scanner code.
func (sc *scanner) code(c *cursor, k, j int) uint32 {
	pb := c.props[k]
	switch {
	case pb.Codes != nil:
		return sc.remapOf(c, k)[pb.Codes[j]]
	case pb.Atoms != nil:
		return sc.coder.intern(k, pb.Atoms[j])
	}
	return 0
}

// remapOf maps the cursor's segment dictionary of column k to scanner
// codes, on first use.
func (sc *scanner) remapOf(c *cursor, k int) []uint32 {
	if c.remap[k] == nil {
		c.remap[k] = sc.coder.remap(k, c.dicts[k])
	}
	return c.remap[k]
}

// atom is row j of the cursor's decoded property column k.
func (c *cursor) atom(k, j int) segment.Atom {
	pb := c.props[k]
	switch {
	case pb.Codes != nil:
		if code := pb.Codes[j]; code != 0 {
			return c.dicts[k][code-1]
		}
	case pb.Atoms != nil:
		return pb.Atoms[j]
	}
	return ""
}

// copyRows copies rows [start, start+n) of c's segment to position dst of
// the chunk's columns.
func (sc *scanner) copyRows(c *cursor, start, n, dst int) error {
	for n > 0 {
		b := start / segment.BlockRows
		if c.block != b {
			sc.bufs(c)
			if err := c.load(b, sc.spec.Keys, sc.spec.Details, nil); err != nil {
				return err
			}
		}
		i := start - b*segment.BlockRows
		m := min(n, len(c.times)-i)
		copy(sc.times[dst:dst+m], c.times[i:i+m])
		copy(sc.events[dst:dst+m], c.events[i:i+m])
		if sc.spec.Details {
			copy(sc.inserts[dst:dst+m], c.inserts[i:i+m])
			copy(sc.received[dst:dst+m], c.received[i:i+m])
		}
		if sc.spec.Codes {
			for k := range sc.spec.Keys {
				out := sc.codes[k][dst : dst+m]
				pb := c.props[k]
				switch {
				case pb.Codes != nil:
					remap := sc.remapOf(c, k)
					for j, code := range pb.Codes[i : i+m] {
						out[j] = remap[code]
					}
				case pb.Atoms != nil:
					for j, a := range pb.Atoms[i : i+m] {
						out[j] = sc.coder.intern(k, a)
					}
				default:
					clear(out)
				}
			}
		}
		for k := range sc.props {
			out := sc.props[k][dst : dst+m]
			pb := c.props[k]
			switch {
			case pb.Codes != nil:
				d := c.dicts[k]
				for j, code := range pb.Codes[i : i+m] {
					if code == 0 {
						out[j] = ""
					} else {
						out[j] = d[code-1]
					}
				}
			case pb.Atoms != nil:
				copy(out, pb.Atoms[i:i+m])
			default:
				clear(out)
			}
		}
		start += m
		dst += m
		n -= m
	}
	return nil
}

// sortSeq puts the sequence in time order (stable: within a millisecond,
// rows keep segment order).
func (sc *scanner) sortSeq() {
	q := &sc.seq
	perm := make([]int, len(q.Times))
	for i := range perm {
		perm[i] = i
	}
	sort.SliceStable(perm, func(a, b int) bool { return q.Times[perm[a]] < q.Times[perm[b]] })
	times := slices.Clone(q.Times)
	events := slices.Clone(q.Events)
	for i, j := range perm {
		q.Times[i], q.Events[i] = times[j], events[j]
	}
	if len(q.InsertIDs) > 0 {
		ins := slices.Clone(q.InsertIDs)
		rec := slices.Clone(q.Received)
		for i, j := range perm {
			q.InsertIDs[i], q.Received[i] = ins[j], rec[j]
		}
	}
	for k := range q.Props {
		vals := slices.Clone(q.Props[k])
		for i, j := range perm {
			q.Props[k][i] = vals[j]
		}
	}
	for k := range q.Codes {
		vals := slices.Clone(q.Codes[k])
		for i, j := range perm {
			q.Codes[k][i] = vals[j]
		}
	}
}

// clip drops the rows outside [From, To).
func (sc *scanner) clip() {
	q := &sc.seq
	lo, _ := slices.BinarySearch(q.Times, sc.spec.From)
	hi := len(q.Times)
	if sc.spec.To != 0 {
		hi, _ = slices.BinarySearch(q.Times, sc.spec.To)
	}
	if lo == 0 && hi == len(q.Times) {
		return
	}
	q.Times = q.Times[lo:hi]
	q.Events = q.Events[lo:hi]
	if len(q.InsertIDs) > 0 {
		q.InsertIDs, q.Received = q.InsertIDs[lo:hi], q.Received[lo:hi]
	}
	for k := range q.Props {
		q.Props[k] = q.Props[k][lo:hi]
	}
	for k := range q.Codes {
		q.Codes[k] = q.Codes[k][lo:hi]
	}
}

// chunkRows is about how many rows a scanner gathers at a time: few
// enough that the chunk's time and event columns stay in the L2 cache
// while the copy pass scatters runs into them (measured with bench-scan on
// 10M events: 2^16 rows 396M rows/s, 2^18 338M, 2^20 128M). Cursors keep
// their decoded block across chunks, so small chunks decode nothing twice.
const chunkRows = 1 << 16

// step is the number of users of a chunk.
func (s *Snapshot) step() uint32 {
	rows := s.Rows()
	if rows == 0 || s.users == 0 {
		return 1 << 16
	}
	return uint32(max(256, min(int64(s.users), int64(s.users)*chunkRows/rows)))
}

// bounds resolves a spec's user range.
func (s *Snapshot) bounds(spec ScanSpec) (lo, hi uint32) {
	lo, hi = spec.UserLo, spec.UserHi
	if hi == 0 || hi > uint32(s.users) {
		hi = uint32(s.users)
	}
	return lo, hi
}

// Scan calls fn for every user of the spec's range with rows in its time
// range, in ascending user order.
func (s *Snapshot) Scan(ctx context.Context, spec ScanSpec, fn func(*Sequence) error) error {
	lo, hi := s.bounds(spec)
	if hi <= lo {
		return nil
	}
	sc, err := s.newScanner(spec)
	if err != nil {
		return err
	}
	return sc.runRange(ctx, lo, hi, s.step(), fn)
}

// ParallelScan scans with workers goroutines (0 = GOMAXPROCS), each over
// its own user ranges; visit(w) gives worker w's function, called by that
// worker alone. The first error stops every worker.
func (s *Snapshot) ParallelScan(ctx context.Context, spec ScanSpec, workers int, visit func(worker int) func(*Sequence) error) error {
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	lo, hi := s.bounds(spec)
	if hi <= lo {
		return nil
	}
	// Each worker takes contiguous ranges, so that its cursors read their
	// blocks in order; a few ranges per worker even out skewed users.
	ranges := uint32(workers * 4)
	size := max((hi-lo+ranges-1)/ranges, 1)
	step := s.step()
	var next atomic.Uint32
	return runWorkers(ctx, workers, func(ctx context.Context, w int) error {
		fn := visit(w)
		sc, err := s.newScanner(spec)
		if err != nil {
			return err
		}
		for {
			i := next.Add(1) - 1
			from := uint64(lo) + uint64(i)*uint64(size)
			if from >= uint64(hi) {
				return nil
			}
			to := min(from+uint64(size), uint64(hi))
			if err := sc.runRange(ctx, uint32(from), uint32(to), step, fn); err != nil {
				return err
			}
		}
	})
}
