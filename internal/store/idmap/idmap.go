// Package idmap owns a project's dense user ordinals: the map from a
// stored distinct id (a pseudonym) to the uint32 the event store sorts and
// indexes by, and the identity merges between them.
//
// Ordinals are handed out in order of first sight, from 0. A merge joins
// two ordinals' sets; a set's canonical ordinal is its smallest. The map
// is persisted as an append-only file of entries whose committed length
// the caller records elsewhere (the store's manifest), so that what a
// crash leaves after the committed prefix is ignored.
package idmap

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"hash/maphash"
	"io"
	"os"
	"unsafe"
)

// Map is a project's ordinals. It is not safe for concurrent use.
//
// The ids live in one byte arena, found through an open-addressing table
// of ordinals: no pointer per id, so that millions of them cost the
// garbage collector nothing to scan (a map of strings would be marked in
// full at every cycle of a server or a report).
type Map struct {
	arena  []byte   // the ids, back to back; bytes once written never change
	ends   []uint64 // ordinal → end of its id in arena (its start is the previous end)
	slots  []uint32 // hash table of ordinal+1, 0 for empty; a power of two long
	seed   maphash.Seed
	parent []uint32 // union-find; parent[o] == o for a root
	merges int      // merges recorded, persisted or not

	// Entries not yet written to the file.
	pending []entry
}

type entry struct {
	id      string // a new id, or "" for a merge
	a, b    uint32 // a merge of a and b
	isMerge bool
}

// New returns an empty map.
func New() *Map { return &Map{seed: maphash.MakeSeed(), slots: make([]uint32, 1024)} }

// Len is the number of ordinals.
func (m *Map) Len() int { return len(m.ends) }

// Lookup returns the ordinal of id, if it has one.
func (m *Map) Lookup(id string) (uint32, bool) {
	_, o := m.find(id)
	return o, o != noOrdinal
}

// noOrdinal is find's answer for an id without one.
const noOrdinal = ^uint32(0)

// find returns id's slot and ordinal, or the empty slot where it would go
// and noOrdinal.
func (m *Map) find(id string) (int, uint32) {
	mask := uint64(len(m.slots) - 1)
	for i := maphash.String(m.seed, id) & mask; ; i = (i + 1) & mask {
		v := m.slots[i]
		if v == 0 {
			return int(i), noOrdinal
		}
		if m.ID(v-1) == id {
			return int(i), v - 1
		}
	}
}

// ID returns the distinct id of an ordinal. The string shares the
// arena's bytes, which never change.
func (m *Map) ID(o uint32) string {
	var start uint64
	if o > 0 {
		start = m.ends[o-1]
	}
	end := m.ends[o]
	if start == end {
		return ""
	}
	return unsafe.String(&m.arena[start], int(end-start))
}

// Ordinal returns the ordinal of id, giving it the next one if it has none.
func (m *Map) Ordinal(id string) uint32 {
	i, o := m.find(id)
	if o != noOrdinal {
		return o
	}
	o = m.add(i, id)
	m.pending = append(m.pending, entry{id: m.ID(o)})
	return o
}

// add gives id, which goes in slot i, the next ordinal.
func (m *Map) add(i int, id string) uint32 {
	o := uint32(len(m.ends))
	m.arena = append(m.arena, id...) // id may share memory with a whole request: copied
	m.ends = append(m.ends, uint64(len(m.arena)))
	m.slots[i] = o + 1
	m.parent = append(m.parent, o)
	if 2*len(m.ends) > len(m.slots) {
		m.grow()
	}
	return o
}

// grow doubles the table and places every ordinal again.
func (m *Map) grow() {
	m.slots = make([]uint32, 2*len(m.slots))
	mask := uint64(len(m.slots) - 1)
	for o := range uint32(len(m.ends)) {
		i := maphash.String(m.seed, m.ID(o)) & mask
		for m.slots[i] != 0 {
			i = (i + 1) & mask
		}
		m.slots[i] = o + 1
	}
}

// Canonical returns the canonical ordinal of o's set.
func (m *Map) Canonical(o uint32) uint32 {
	for m.parent[o] != o {
		m.parent[o] = m.parent[m.parent[o]] // path halving
		o = m.parent[o]
	}
	return o
}

// Merge joins the sets of a and b and reports whether they were apart.
func (m *Map) Merge(a, b uint32) bool {
	if !m.union(a, b) {
		return false
	}
	m.merges++
	m.pending = append(m.pending, entry{a: a, b: b, isMerge: true})
	return true
}

func (m *Map) union(a, b uint32) bool {
	ra, rb := m.Canonical(a), m.Canonical(b)
	if ra == rb {
		return false
	}
	if rb < ra {
		ra, rb = rb, ra
	}
	m.parent[rb] = ra
	return true
}

// Merged reports whether any merge was ever recorded.
func (m *Map) Merged() bool { return m.merges > 0 }

// Members returns every ordinal of o's set, o's canonical first.
func (m *Map) Members(o uint32) []uint32 {
	c := m.Canonical(o)
	out := []uint32{c}
	if m.merges == 0 {
		return out
	}
	for i := range m.parent {
		if uint32(i) != c && m.Canonical(uint32(i)) == c {
			out = append(out, uint32(i))
		}
	}
	return out
}

var crcT = crc32.MakeTable(crc32.Castagnoli)

// Entry framing: kind byte, payload, CRC-32C of both (4 bytes LE).
const (
	kindID    = 1 // uvarint length, id bytes
	kindMerge = 2 // uvarint a, uvarint b
)

// Sync appends the pending entries to w and returns how many bytes it
// wrote; the caller fsyncs the file and then commits the new length.
func (m *Map) Sync(w io.Writer) (int64, error) {
	var buf []byte
	var n int64
	for _, e := range m.pending {
		start := len(buf)
		if e.isMerge {
			buf = append(buf, kindMerge)
			buf = binary.AppendUvarint(buf, uint64(e.a))
			buf = binary.AppendUvarint(buf, uint64(e.b))
		} else {
			buf = append(buf, kindID)
			buf = binary.AppendUvarint(buf, uint64(len(e.id)))
			buf = append(buf, e.id...)
		}
		buf = binary.LittleEndian.AppendUint32(buf, crc32.Checksum(buf[start:], crcT))
		if len(buf) >= 1<<20 {
			k, err := w.Write(buf)
			n += int64(k)
			if err != nil {
				return n, err
			}
			buf = buf[:0]
		}
	}
	k, err := w.Write(buf)
	n += int64(k)
	if err != nil {
		return n, err
	}
	clear(m.pending) // no stale pointers for the GC to follow
	m.pending = m.pending[:0]
	return n, nil
}

// ErrCorrupt is wrapped by errors about a damaged map file.
var ErrCorrupt = errors.New("idmap: corrupt")

// maxIDLen bounds one id in the file (distinct ids are at most 255 bytes
// on the wire; pseudonyms are shorter).
const maxIDLen = 4096

// Read reads a map from the first size bytes of r (the committed length).
func Read(r io.Reader, size int64) (*Map, error) {
	m := New()
	m.arena = make([]byte, 0, size) // ids take less than their entries
	br := bufio.NewReaderSize(io.LimitReader(r, size), 1<<20)
	var off int64
	var frame []byte
	for off < size {
		kind, err := br.ReadByte()
		if err != nil {
			return nil, fmt.Errorf("%w: at offset %d: %v", ErrCorrupt, off, err)
		}
		frame = append(frame[:0], kind)
		readUvarint := func() (uint64, error) {
			v, err := binary.ReadUvarint(br)
			if err != nil {
				return 0, err
			}
			frame = binary.AppendUvarint(frame, v)
			return v, nil
		}
		switch kind {
		case kindID:
			l, err := readUvarint()
			if err != nil || l == 0 || l > maxIDLen {
				return nil, fmt.Errorf("%w: bad id length at offset %d", ErrCorrupt, off)
			}
			start := len(frame)
			frame = append(frame, make([]byte, l)...)
			if _, err := io.ReadFull(br, frame[start:]); err != nil {
				return nil, fmt.Errorf("%w: truncated id at offset %d", ErrCorrupt, off)
			}
		case kindMerge:
			if _, err := readUvarint(); err != nil {
				return nil, fmt.Errorf("%w: bad merge at offset %d", ErrCorrupt, off)
			}
			if _, err := readUvarint(); err != nil {
				return nil, fmt.Errorf("%w: bad merge at offset %d", ErrCorrupt, off)
			}
		default:
			return nil, fmt.Errorf("%w: unknown entry kind %d at offset %d", ErrCorrupt, kind, off)
		}
		var sum [4]byte
		if _, err := io.ReadFull(br, sum[:]); err != nil {
			return nil, fmt.Errorf("%w: truncated entry at offset %d", ErrCorrupt, off)
		}
		if binary.LittleEndian.Uint32(sum[:]) != crc32.Checksum(frame, crcT) {
			return nil, fmt.Errorf("%w: checksum mismatch at offset %d", ErrCorrupt, off)
		}
		if kind == kindID {
			l, k := binary.Uvarint(frame[1:])
			// A view of the frame, not a copy per id: add copies it into
			// the arena.
			id := unsafe.String(&frame[1+k], int(l))
			i, o := m.find(id)
			if o != noOrdinal {
				return nil, fmt.Errorf("%w: id repeated at offset %d", ErrCorrupt, off)
			}
			m.add(i, id) // already in the file: not pending
		} else {
			a, k := binary.Uvarint(frame[1:])
			b, _ := binary.Uvarint(frame[1+k:])
			if a >= uint64(m.Len()) || b >= uint64(m.Len()) {
				return nil, fmt.Errorf("%w: merge of unknown ordinals at offset %d", ErrCorrupt, off)
			}
			m.union(uint32(a), uint32(b))
			m.merges++
		}
		off += int64(len(frame) + 4)
	}
	return m, nil
}

// Load reads the map file at path up to size bytes (the committed length);
// a missing file with size 0 is an empty map.
func Load(path string, size int64) (*Map, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) && size == 0 {
		return New(), nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	m, err := Read(f, size)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return m, nil
}
