package query

import (
	"maps"
	"math/bits"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/veil-analytics/veil/internal/scan"
)

// The row pass answers Insights without gathering each user's events: it
// reads batches of stored rows (scan.RowSource) and adds every event to
// its cells at once. Distinct users are kept as sets per cell and bucket
// (a user's run of events adds them once), counted after the scan; the
// sets also give $other's users exactly. Measures that need a user's
// events together (per_user, distribution) take the per-user pass.

// idSet is the users of one cell and bucket, from one worker: a list
// while short, a bitmap once the list would be larger.
type idSet struct {
	last uint64 // the user added last, plus one (0: none yet)
	max  uint64 // the largest dense key (see userSet) of ids
	ids  []uint64
	bits *userSet
}

// idSetListMin is the length below which a set stays a list.
const idSetListMin = 4096

func (s *idSet) add(u uint64) {
	if s.last == u+1 {
		return
	}
	s.last = u + 1
	if s.bits != nil {
		s.bits.add(u)
		return
	}
	s.ids = append(s.ids, u)
	if u < denseUsers {
		s.max = max(s.max, u)
	}
	if len(s.ids) >= idSetListMin && uint64(len(s.ids)) > s.max/64 {
		s.bits = &userSet{}
		for _, v := range s.ids {
			s.bits.add(v)
		}
		s.ids = nil
	}
}

// distinctCounter counts the users of a union of sets; it keeps its
// scratch bitmap between counts.
type distinctCounter struct {
	bits []uint64
	more map[uint64]bool // keys beyond the dense range
}

// fit sizes the bitmap for the sets' dense keys.
func (d *distinctCounter) fit(sets []*idSet) {
	words := 0
	for _, s := range sets {
		if s.bits != nil {
			words = max(words, len(s.bits.bits))
		} else if len(s.ids) > 0 {
			words = max(words, int(s.max>>6)+1)
		}
	}
	if words > len(d.bits) {
		d.bits = append(d.bits, make([]uint64, words-len(d.bits))...)
	}
}

func (d *distinctCounter) count(sets []*idSet) int64 {
	d.fit(sets)
	bm := d.bits
	dense := false
	for _, s := range sets {
		dense = dense || s.bits != nil
	}
	var n int64
	if !dense {
		for _, s := range sets {
			for _, u := range s.ids {
				if u >= denseUsers {
					n += d.addMore(u)
					continue
				}
				w, bit := u>>6, uint64(1)<<(u&63)
				if bm[w]&bit == 0 {
					bm[w] |= bit
					n++
				}
			}
		}
		for _, s := range sets { // clear what was set, not the whole bitmap
			for _, u := range s.ids {
				if u < denseUsers {
					bm[u>>6] = 0
				}
			}
		}
		d.more = nil
		return n
	}
	for _, s := range sets {
		if s.bits != nil {
			for i, w := range s.bits.bits {
				bm[i] |= w
			}
			for u := range s.bits.more {
				n += d.addMore(u)
			}
			continue
		}
		for _, u := range s.ids {
			if u >= denseUsers {
				n += d.addMore(u)
				continue
			}
			bm[u>>6] |= 1 << (u & 63)
		}
	}
	for _, w := range bm {
		n += int64(bits.OnesCount64(w))
	}
	clear(bm)
	d.more = nil
	return n
}

// addMore adds a key beyond the dense range, returning 1 if it is new.
func (d *distinctCounter) addMore(u uint64) int64 {
	if d.more[u] {
		return 0
	}
	if d.more == nil {
		d.more = map[uint64]bool{}
	}
	d.more[u] = true
	return 1
}

// rowsFit reports whether the row pass can answer the report: src hands
// out rows and no measure needs a user's events together.
func (in *insights) rowsFit(s *session) bool {
	if s.env.generalOnly {
		return false
	}
	if _, ok := s.src.(scan.RowSource); !ok {
		return false
	}
	for _, se := range in.series {
		if se.kind == mPerUser || se.kind == mDist {
			return false
		}
	}
	return true
}

// rowPass is pass over rows; its cells' users are counted, and their
// sets kept for $other.
func (in *insights) rowPass(s *session, w window, bk *buckets) (passResult, error) {
	steps := make([]*step, len(in.series))
	for i, se := range in.series {
		steps[i] = se.st
	}
	req := scan.Request{From: w.From, To: w.To, Events: eventFilter(steps...), Props: s.plan.props, Workers: s.env.workers()}
	// Series counting the same events (total and unique of one event,
	// say) share their cells: only the first is counted.
	same := make([]int, len(in.series))
	for i, se := range in.series {
		same[i] = -1
		for j := range i {
			if se.kind == mCount && in.series[j].kind == mCount && reflect.DeepEqual(se.spec.Step, in.series[j].spec.Step) {
				same[i] = j
				break
			}
		}
	}
	var workers perWorker[*insWorker]
	err := s.src.(scan.RowSource).ScanRows(s.ctx, req, func(int) func(*scan.Rows) error {
		iw := in.newWorker(bk, nil)
		iw.rows, iw.same = true, same
		workers.add(iw)
		return func(rs *scan.Rows) error { return iw.visitRows(s, rs) }
	})
	if err != nil {
		return passResult{}, err
	}
	nb := bk.n()
	pr := in.merge(workers.vals, nb+1)
	pr.rows = true
	type job struct {
		se *series
		c  *cell
	}
	var jobs []job
	for si, m := range pr.cells {
		if same[si] >= 0 {
			continue
		}
		for _, c := range m {
			jobs = append(jobs, job{in.series[si], c})
		}
	}
	// Counting users is a pass over every set: share it out.
	var next atomic.Int64
	var wg sync.WaitGroup
	for range s.env.workers() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var dc distinctCounter
			for i := next.Add(1) - 1; i < int64(len(jobs)); i = next.Add(1) - 1 {
				rangeOf(jobs[i].se, jobs[i].c, nb)
				countUsers(&dc, jobs[i].c, nb)
			}
		}()
	}
	wg.Wait()
	for si := range pr.cells {
		if same[si] >= 0 {
			pr.cells[si] = maps.Clone(pr.cells[same[si]]) // read-only from here on
		}
	}
	return pr, nil
}

// rangeOf fills the range column nb of a row pass's cell, which adds
// events to their bucket only.
func rangeOf(se *series, c *cell, nb int) {
	for b := range nb {
		c.events[nb] += c.events[b]
		switch se.kind {
		case mSum:
			c.sum[nb] += c.sum[b]
		case mMinMax:
			c.min[nb] = min(c.min[nb], c.min[b])
			c.max[nb] = max(c.max[nb], c.max[b])
		case mValues:
			c.vals[nb] = append(c.vals[nb], c.vals[b]...)
		}
	}
}

// countUsers counts a row pass's cell's users per bucket, and over the
// range as the union of the buckets.
func countUsers(dc *distinctCounter, c *cell, nb int) {
	if c.parts == nil {
		return // nothing was added to it
	}
	var all []*idSet
	for b := range nb {
		c.users[b] = dc.count(c.parts[b])
		all = append(all, c.parts[b]...)
	}
	c.users[nb] = dc.count(all)
}

// visitRows adds a batch of rows to the worker's cells.
func (iw *insWorker) visitRows(s *session, rs *scan.Rows) error {
	in := iw.in
	q := &rs.Seq
	nb := iw.bk.n()
	n := rs.Len()
	// A batch within one bucket needs no times.
	b0 := iw.bk.index(rs.Lo)
	one := b0 >= 0 && iw.bk.index(rs.Hi-1) == b0
	if !one {
		if err := rs.LoadTimes(); err != nil {
			return err
		}
	}
	// What is the same for every series: the rows passing the global
	// event conditions, the runs' users passing the user conditions.
	var pass []bool
	if len(iw.global.ev) > 0 {
		iw.pass = slices.Grow(iw.pass[:0], n)[:n]
		pass = iw.pass
		iw.global.maskRows(q, pass)
	}
	iw.runOK = iw.runOK[:0]
	iw.runProps = iw.runProps[:0]
	u := &iw.uc
	for _, user := range rs.Users {
		u.key, u.props = user, nil
		if s.prof != nil {
			u.props = s.prof[user]
		}
		iw.runProps = append(iw.runProps, u.props)
		iw.runOK = append(iw.runOK, iw.global.matchUser(u))
	}
	for si, se := range iw.series {
		if se.st.none || iw.same[si] >= 0 {
			continue
		}
		if one && se.kind == mCount && len(se.st.ev) == 0 && (len(in.bds) == 0 || iw.simple) {
			iw.countRows(si, se, rs, pass, b0)
			continue
		}
		start := 0
		for r, user := range rs.Users {
			end := rs.Ends[r]
			u.key, u.props, iw.user = user, iw.runProps[r], user
			if !iw.runOK[r] || len(se.st.user) > 0 && !se.st.matchUser(u) {
				start = end
				continue
			}
			cur := bucketCursor{b: iw.bk}
			for i := start; i < end; i++ {
				if !se.st.any && q.Events[i] != se.st.code || pass != nil && !pass[i] || !se.st.matchEvent(q, i) {
					continue
				}
				b := b0
				if !one {
					if b = cur.at(q.Times[i]); b < 0 {
						continue
					}
				}
				iw.addEvent(si, se, q, i, u, b, nb)
			}
			start = end
		}
	}
	return nil
}

// countRows is visitRows for a series that counts events and users of
// unfiltered events (or of the global filter's) in one bucket b, with at
// most one breakdown by an event property: what dashboards ask most. It
// counts by value code in flat arrays and finds the cells once a run.
func (iw *insWorker) countRows(si int, se *series, rs *scan.Rows, pass []bool, b int) {
	in := iw.in
	q := &rs.Seq
	n := rs.Len()
	codes := iw.zeros[:0]
	col := -1
	if len(in.bds) == 1 {
		col = in.bds[0].col
		codes = q.Props[col][:n]
	} else {
		codes = slices.Grow(codes, n)[:n] // every event in the one cell
		iw.zeros = codes
	}
	d := 1
	if col >= 0 {
		d = len(q.Dicts[col]) + 1 // codes never exceed the dictionary
	}
	if len(iw.hist) < d {
		iw.hist = append(iw.hist, make([]int64, d-len(iw.hist))...)
		iw.seen = append(iw.seen, make([]uint64, d-len(iw.seen))...)
	}
	hist, seen := iw.hist[:d], iw.seen[:d]
	evs := q.Events[:n]
	code, any := se.st.code, se.st.any
	u := &iw.uc
	touched := iw.touchedCodes[:0] // codes counted in the batch
	start := 0
	for r, user := range rs.Users {
		end := rs.Ends[r]
		if !iw.runOK[r] {
			start = end
			continue
		}
		if len(se.st.user) > 0 {
			u.key, u.props = user, iw.runProps[r]
			if !se.st.matchUser(u) {
				start = end
				continue
			}
		}
		iw.gen++
		gen := iw.gen
		runCodes := len(iw.runCodes)
		// A run mostly repeats one value: count repeats in a register.
		prev, reps := uint32(0), int64(0)
		flush := func() {
			if reps == 0 {
				return
			}
			if hist[prev] == 0 {
				touched = append(touched, prev)
			}
			hist[prev] += reps
			if seen[prev] != gen {
				seen[prev] = gen
				iw.runCodes = append(iw.runCodes, prev)
			}
		}
		for i := start; i < end; i++ {
			if !any && evs[i] != code || pass != nil && !pass[i] {
				continue
			}
			if h := codes[i]; h != prev {
				flush()
				prev, reps = h, 0
			}
			reps++
		}
		flush()
		for _, h := range iw.runCodes[runCodes:] {
			iw.codeCell(si, se, q, col, h).sets[b].add(user)
		}
		iw.runCodes = iw.runCodes[:runCodes]
		start = end
	}
	for _, h := range touched {
		iw.codeCell(si, se, q, col, h).events[b] += hist[h]
		hist[h] = 0
	}
	iw.touchedCodes = touched
}

// addRow is add for the row pass: the user joins the cell's set of b. The
// range column is made of the buckets' after the scan (see rangeOf).
func (iw *insWorker) addRow(se *series, c *cell, q *scan.Sequence, i, b int) {
	var x float64
	if se.col >= 0 {
		var ok bool
		if x, ok = q.Value(se.col, i).Num(); !ok {
			return // aggregates of a property skip events without a number
		}
	}
	c.sets[b].add(iw.user)
	c.addValue(se.kind, b, x)
}
