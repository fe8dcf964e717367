package table

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/veil-analytics/veil/internal/event"
	"github.com/veil-analytics/veil/internal/store/segment"
)

// Buffer holds rows that a Flush will write. It is not safe for concurrent
// use; the Table methods that fill it lock the table.
type Buffer struct {
	parts    map[int32]*partRows
	atoms    map[string]uint32 // interned property values of this buffer
	atomList []string
	bytes    int
	rows     int
	scratch  []byte
	// Suppressed counts events not added because their person is erased.
	Suppressed int

	// The previous event's answers (see Add); valid while the buffer is
	// not reset, since atom indexes are the buffer's.
	lastID    string
	lastUser  uint32
	lastLinks uint64 // Table.links when lastUser was found
	lastName  string
	lastEvent uint32
	lastProps []lastProp
}

// lastProp is what Add found for the property at one position of the
// previous event.
type lastProp struct {
	key  string
	code uint32
	atom []byte
	id   uint32
}

// partRows are one day's rows in arrival order.
type partRows struct {
	users       []uint32
	times       []int64
	events      []uint32
	received    []int64
	inserts     []uint32 // per row, the end of its $insert_id in insertBytes
	insertBytes []byte
	propEnd     []uint32 // per row, the end of its properties in props
	props       []uint64 // key code << 32 | atom index
}

// NewBuffer returns an empty buffer.
func NewBuffer() *Buffer {
	return &Buffer{parts: map[int32]*partRows{}, atoms: map[string]uint32{}}
}

// Rows is the number of rows held.
func (b *Buffer) Rows() int { return b.rows }

// Bytes estimates the memory the rows hold.
func (b *Buffer) Bytes() int { return b.bytes }

// Reset empties the buffer, keeping its memory: the days' columns are
// truncated, not dropped, since the next rows mostly fall on the same days.
func (b *Buffer) Reset() {
	for d, p := range b.parts {
		if cap(p.users) == 0 {
			delete(b.parts, d)
			continue
		}
		*p = partRows{users: p.users[:0], times: p.times[:0], events: p.events[:0], received: p.received[:0],
			inserts: p.inserts[:0], insertBytes: p.insertBytes[:0], propEnd: p.propEnd[:0], props: p.props[:0]}
	}
	clear(b.atoms)
	b.atomList = b.atomList[:0]
	b.bytes, b.rows, b.Suppressed = 0, 0, 0
	b.lastID, b.lastName, b.lastProps = "", "", b.lastProps[:0]
}

// Add resolves the events' distinct ids, names and property keys to the
// table's codes (assigning new ones) and adds them to b.
func (t *Table) Add(b *Buffer, evs []event.Event) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for i := range evs {
		e := &evs[i]
		day := DayOf(e.Time)
		p := b.parts[day]
		if p == nil {
			p = &partRows{}
			b.parts[day] = p
		}
		// Consecutive events are mostly one user's with the same name and
		// property keys (a browser batch, a user-ordered export): the last
		// answers are kept to skip the maps.
		if e.DistinctID != b.lastID || b.lastID == "" || b.lastLinks != t.links {
			b.lastID, b.lastUser, b.lastLinks = e.DistinctID, t.ids.Canonical(t.ids.Ordinal(e.DistinctID)), t.links
		}
		user := b.lastUser
		if len(t.erased) > 0 && t.erased[user] {
			b.Suppressed++
			continue
		}
		p.users = append(p.users, user)
		p.times = append(p.times, e.Time)
		if e.Name != b.lastName || len(b.lastName) == 0 {
			b.lastName, b.lastEvent = e.Name, t.eventCodeLocked(e.Name)
		}
		p.events = append(p.events, b.lastEvent)
		p.received = append(p.received, e.Received)
		p.insertBytes = append(p.insertBytes, e.InsertID...)
		p.inserts = append(p.inserts, uint32(len(p.insertBytes)))
		if e.DistinctID != t.ids.ID(user) {
			// An id merged into another person's: keep the id the event
			// was sent with, as Mixpanel's export does.
			b.scratch = segment.AppendAtom(b.scratch[:0], event.StringValue(e.DistinctID))
			p.props = append(p.props, uint64(t.keyCodeLocked(DistinctIDKey))<<32|uint64(b.atom(b.scratch)))
		}
		for j, f := range e.Props {
			if j >= len(b.lastProps) {
				b.lastProps = append(b.lastProps, lastProp{})
			}
			lp := &b.lastProps[j]
			if f.Key != lp.key || lp.key == "" {
				lp.key, lp.code, lp.atom = f.Key, t.keyCodeLocked(f.Key), nil
			}
			b.scratch = segment.AppendAtom(b.scratch[:0], f.Value)
			if string(b.scratch) != string(lp.atom) || lp.atom == nil {
				lp.atom, lp.id = append(lp.atom[:0], b.scratch...), b.atom(b.scratch)
			}
			p.props = append(p.props, uint64(lp.code)<<32|uint64(lp.id))
		}
		p.propEnd = append(p.propEnd, uint32(len(p.props)))
		b.bytes += 4 + 8 + 4 + 8 + 4 + len(e.InsertID) + 4 + 8*len(e.Props)
		b.rows++
	}
}

// DistinctIDKey is the property that keeps an event's distinct id when it
// differs from its person's (after an identity merge).
const DistinctIDKey = "$distinct_id"

// atom interns an atom.
func (b *Buffer) atom(a []byte) uint32 {
	i, ok := b.atoms[string(a)]
	if !ok {
		i = uint32(len(b.atomList))
		s := string(a)
		b.atoms[s] = i
		b.atomList = append(b.atomList, s)
		b.bytes += len(s) + 40
	}
	return i
}

// Link records that two distinct ids are one person (an identity merge):
// rows added later for either go to the same user.
func (t *Table) Link(from, to string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.ids.Merge(t.ids.Ordinal(from), t.ids.Ordinal(to)) {
		t.links++
	}
}

func (t *Table) eventCodeLocked(name string) uint32 {
	c, ok := t.events[name]
	if !ok {
		c = uint32(len(t.events))
		t.events[strings.Clone(name)] = c
	}
	return c
}

func (t *Table) keyCodeLocked(k string) uint32 {
	c, ok := t.keys[k]
	if !ok {
		c = uint32(len(t.keys))
		t.keys[strings.Clone(k)] = c
	}
	return c
}

// namesOf lists a code map's names by code.
func namesOf(m map[string]uint32) []string {
	out := make([]string, len(m))
	for name, c := range m {
		out[c] = name
	}
	return out
}

// Flush writes b's rows as one new segment per day, then commits them with
// the ordinals and codes they use. On success b is empty.
func (t *Table) Flush(b *Buffer) error { return t.FlushCovering(b, 0) }

// FlushCovering is Flush for rows that came from the write-ahead log:
// the commit also records that the table holds every record of log
// segments numbered below walSeq (0 leaves that mark as it is).
func (t *Table) FlushCovering(b *Buffer, walSeq uint64) error {
	if t.readOnly {
		return errReadOnly
	}
	if b.rows == 0 {
		b.Reset()
		return t.commitAdd(nil, nil, walSeq)
	}
	days := make([]int32, 0, len(b.parts))
	for d, p := range b.parts {
		if len(p.users) > 0 {
			days = append(days, d)
		}
	}
	slices.Sort(days)
	seq := t.reserveSeq(len(days))
	refs := make([]segmentRef, len(days))
	written := make([]bool, len(days))
	fail := func(err error) error {
		for i, ok := range written {
			if ok {
				t.forget(refs[i])
			}
		}
		return err
	}
	// Days are independent files: write them on all cores.
	err := parallel(context.Background(), len(days), func(i int) error {
		d := days[i]
		ref, err := t.writeSegment(d, seq+uint64(i), 0, func(w *segment.Writer) error {
			var dups int64
			err := b.parts[d].writeTo(w, b.atomList, &dups)
			t.dups.Add(dups)
			return err
		})
		if err == nil {
			refs[i], written[i] = ref, true
		}
		return err
	})
	if err != nil {
		return fail(err)
	}
	if err := t.commitAdd(refs, nil, walSeq); err != nil {
		return fail(err)
	}
	b.Reset()
	return nil
}

var errReadOnly = errors.New("table: opened read-only")

// FlushDuplicates counts the rows flushes have left out as duplicates of
// rows in the same buffer since the table was opened.
func (t *Table) FlushDuplicates() int64 { return t.dups.Load() }

// forget drops a segment written but never committed.
func (t *Table) forget(ref segmentRef) {
	t.mu.Lock()
	h := t.segs[ref.File]
	delete(t.segs, ref.File)
	t.mu.Unlock()
	if h != nil {
		h.gone.Store(true)
		h.release()
	}
}

// reserveSeq hands out n segment sequence numbers.
func (t *Table) reserveSeq(n int) uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.man.Seq + 1
	t.man.Seq += uint64(n)
	return s
}

// writeSegment writes one segment file of day through fill: to a
// temporary name, fsync'd, then renamed (the manifest commit that follows
// makes it part of the table).
func (t *Table) writeSegment(day int32, seq uint64, level int, fill func(*segment.Writer) error) (segmentRef, error) {
	dir := filepath.Join(t.dir, DayName(day))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return segmentRef{}, err
	}
	name := fmt.Sprintf("%012d.seg", seq)
	path := filepath.Join(dir, name)
	f, err := os.OpenFile(path+".tmp", os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return segmentRef{}, err
	}
	w := segment.NewWriter(f)
	err = fill(w)
	if err == nil {
		err = w.Close()
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(path+".tmp", path)
	}
	if err == nil {
		err = syncDir(dir)
	}
	if err != nil {
		os.Remove(path + ".tmp")
		return segmentRef{}, fmt.Errorf("table: writing %s: %w", path, err)
	}
	r, err := segment.Open(path)
	if err != nil {
		return segmentRef{}, err
	}
	lo, hi := r.TimeRange()
	ref := segmentRef{Day: day, File: filepath.Join(DayName(day), name), Rows: r.Rows(), Bytes: r.Size(),
		Level: level, MinTime: lo, MaxTime: hi}
	h := &handle{ref: ref, r: r, path: path}
	h.refs.Store(1)
	t.mu.Lock()
	t.segs[ref.File] = h // not in the manifest until committed
	t.mu.Unlock()
	return ref, nil
}

// commitAdd commits the current codes and ordinals with segments added and
// removed.
func (t *Table) commitAdd(add []segmentRef, remove map[string]bool, walSeq uint64) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.readOnly {
		return errReadOnly
	}
	n, err := t.ids.Sync(t.users)
	if err == nil {
		err = t.users.Sync()
	}
	if err != nil {
		return fmt.Errorf("table %s: writing user ordinals: %w", t.dir, err)
	}
	m := t.man
	m.UsersBytes += n
	if walSeq > m.WALCovered {
		m.WALCovered = walSeq
	}
	m.Events = namesOf(t.events)
	m.Keys = namesOf(t.keys)
	m.Segments = nil
	for _, r := range t.man.Segments {
		if !remove[r.File] {
			m.Segments = append(m.Segments, r)
		}
	}
	m.Segments = append(m.Segments, add...)
	sort.SliceStable(m.Segments, func(i, j int) bool { return m.Segments[i].Day < m.Segments[j].Day })
	if err := t.commitLocked(m); err != nil {
		return err
	}
	for f := range remove {
		if h := t.segs[f]; h != nil {
			delete(t.segs, f)
			h.gone.Store(true)
			h.release()
		}
	}
	return nil
}

// dupOf reports whether one of rows has row i's event and $insert_id.
func (p *partRows) dupOf(rows []uint32, i, istart uint32) bool {
	id := p.insertBytes[istart:p.inserts[i]]
	for _, j := range rows {
		js := uint32(0)
		if j > 0 {
			js = p.inserts[j-1]
		}
		if p.events[j] == p.events[i] && string(p.insertBytes[js:p.inserts[j]]) == string(id) {
			return true
		}
	}
	return false
}

// writeTo writes the rows sorted by (user, time, arrival), leaving out
// duplicates, which it counts in dups.
func (p *partRows) writeTo(w *segment.Writer, atoms []string, dups *int64) error {
	n := len(p.users)
	perm := make([]uint32, n)
	for i := range perm {
		perm[i] = uint32(i)
	}
	slices.SortFunc(perm, func(a, b uint32) int {
		if c := cmp.Compare(p.users[a], p.users[b]); c != 0 {
			return c
		}
		if c := cmp.Compare(p.times[a], p.times[b]); c != 0 {
			return c
		}
		return cmp.Compare(a, b)
	})
	var row segment.Row
	var group []uint32 // rows written with the current (user, time)
	for _, i := range perm {
		start, istart := uint32(0), uint32(0)
		if i > 0 {
			start, istart = p.propEnd[i-1], p.inserts[i-1]
		}
		// Mixpanel's dedup key within the buffer: (user, time, event,
		// $insert_id); rows across flushes meet in compaction.
		if len(group) > 0 && (p.users[group[0]] != p.users[i] || p.times[group[0]] != p.times[i]) {
			group = group[:0]
		}
		if p.inserts[i] > istart && p.dupOf(group, i, istart) {
			*dups++
			continue
		}
		group = append(group, i)
		row = segment.Row{User: p.users[i], Time: p.times[i], Event: p.events[i], Received: p.received[i],
			InsertID: string(p.insertBytes[istart:p.inserts[i]]), Props: row.Props[:0]}
		for _, kv := range p.props[start:p.propEnd[i]] {
			row.Props = append(row.Props, segment.Prop{Key: uint32(kv >> 32), Atom: atoms[uint32(kv)], ID: uint32(kv) + 1})
		}
		if err := w.Append(&row); err != nil {
			return err
		}
	}
	return nil
}
