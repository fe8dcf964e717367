package query

import (
	"math/bits"
	"slices"

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
	max  uint64
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
	s.max = max(s.max, u)
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
	acc userSet
}

func (d *distinctCounter) count(sets []*idSet) int64 {
	dense := false
	for _, s := range sets {
		dense = dense || s.bits != nil
	}
	if !dense {
		var n int64
		for _, s := range sets {
			for _, u := range s.ids {
				if !d.acc.has(u) {
					d.acc.add(u)
					n++
				}
			}
		}
		for _, s := range sets { // clear what was set, not the whole bitmap
			for _, u := range s.ids {
				d.acc.del(u)
			}
		}
		return n
	}
	for _, s := range sets {
		if s.bits != nil {
			d.acc.merge(s.bits)
			continue
		}
		for _, u := range s.ids {
			d.acc.add(u)
		}
	}
	n := int64(len(d.acc.more))
	for _, w := range d.acc.bits {
		n += int64(bits.OnesCount64(w))
	}
	clear(d.acc.bits)
	d.acc.more = nil
	return n
}

// rowsFit reports whether the row pass can answer the report: src hands
// out rows and no measure needs a user's events together.
func (in *insights) rowsFit(s *session) bool {
	if s.env.perUserOnly {
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
	var workers perWorker[*insWorker]
	err := s.src.(scan.RowSource).ScanRows(s.ctx, req, func(int) func(*scan.Rows) error {
		iw := in.newWorker(bk, nil)
		iw.rows = true
		workers.add(iw)
		return func(rs *scan.Rows) error { return iw.visitRows(s, rs) }
	})
	if err != nil {
		return passResult{}, err
	}
	pr := in.merge(workers.vals, bk.n()+1)
	pr.rows = true
	var dc distinctCounter
	for _, m := range pr.cells {
		for _, c := range m {
			for b := range c.users {
				c.users[b] = dc.count(c.parts[b])
			}
		}
	}
	return pr, nil
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
	simple := len(in.bds) == 1 && !in.bds[0].perUser()
	for si, se := range iw.series {
		if se.st.none {
			continue
		}
		if one && se.kind == mCount && len(se.st.ev) == 0 && (len(in.bds) == 0 || simple) {
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
			var lastC *cell
			byCode := iw.byCode[si]
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
				switch {
				case len(in.bds) == 0:
					if lastC == nil {
						lastC = iw.cellFor(si, se, "")
					}
					iw.add(se, lastC, q, i, b, nb)
				case simple:
					code := q.Props[in.bds[0].col][i]
					if int(code) >= len(byCode) {
						byCode = append(byCode, make([]*cell, int(code)+1-len(byCode))...)
						iw.byCode[si] = byCode
					}
					c := byCode[code]
					if c == nil {
						c = iw.cellFor(si, se, string(segmentValue(q.Value(in.bds[0].col, i))))
						byCode[code] = c
					}
					iw.add(se, c, q, i, b, nb)
				default:
					iw.eachSegment(si, se, q, i, u, b, nb)
				}
			}
			start = end
		}
	}
	return nil
}

// countRows is visitRows for a series that counts events and users of
// unfiltered events (or of the global filter's) in one bucket b, with at
// most one breakdown by an event property: what dashboards ask most.
func (iw *insWorker) countRows(si int, se *series, rs *scan.Rows, pass []bool, b int) {
	in := iw.in
	q := &rs.Seq
	nb := iw.bk.n()
	var codes []uint32
	byCode := iw.byCode[si]
	col := -1
	if len(in.bds) == 1 {
		col = in.bds[0].col
		codes = q.Props[col][:rs.Len()]
		if d := len(q.Dicts[col]) + 1; len(byCode) < d { // codes never exceed the dictionary
			byCode = append(byCode, make([]*cell, d-len(byCode))...)
			iw.byCode[si] = byCode
		}
	}
	evs := q.Events[:rs.Len()]
	code, any := se.st.code, se.st.any
	u := &iw.uc
	var only *cell // without breakdowns
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
		for i := start; i < end; i++ {
			if !any && evs[i] != code || pass != nil && !pass[i] {
				continue
			}
			var c *cell
			if col >= 0 {
				if c = byCode[codes[i]]; c == nil {
					c = iw.cellFor(si, se, string(segmentValue(q.Value(col, i))))
					byCode[codes[i]] = c
				}
			} else {
				if only == nil {
					only = iw.cellFor(si, se, "")
				}
				c = only
			}
			c.events[b]++
			c.events[nb]++
			if c.gen != gen { // the run's first event of the cell
				c.gen = gen
				c.sets[b].add(user)
				c.sets[nb].add(user)
			}
		}
		start = end
	}
}

// addRow is add for the row pass: the user joins the cell's sets of b and
// of the range.
func (iw *insWorker) addRow(se *series, c *cell, q *scan.Sequence, i, b, nb int) {
	var x float64
	if se.col >= 0 {
		var ok bool
		if x, ok = q.Value(se.col, i).Num(); !ok {
			return // aggregates of a property skip events without a number
		}
	}
	for _, bb := range [2]int{b, nb} {
		c.sets[bb].add(iw.user)
		c.events[bb]++
		switch se.kind {
		case mSum:
			c.sum[bb] += x
		case mMinMax:
			c.min[bb] = min(c.min[bb], x)
			c.max[bb] = max(c.max[bb], x)
		case mValues:
			c.vals[bb] = append(c.vals[bb], x)
		}
	}
}
