package segment

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"slices"

	"github.com/klauspost/compress/zstd"

	"github.com/veil-analytics/veil/internal/store/enc"
)

// BlockRows is the number of rows of a block: the unit of decoding, of
// zone maps and of checksums.
const BlockRows = 8192

// maxDictAtoms and maxDictBytes bound a column's dictionary; blocks written
// after it is full store their values raw (zstd-compressed).
const (
	maxDictAtoms = 1 << 16
	maxDictBytes = 4 << 20
)

var (
	magic = [8]byte{'V', 'E', 'I', 'L', 'S', 'E', 'G', 1}
	crcT  = crc32.MakeTable(crc32.Castagnoli)
	// ErrCorrupt is wrapped by every error about a malformed segment.
	ErrCorrupt = errors.New("segment: corrupt")
	// ErrOrder is returned by Writer.Append for rows out of (user, time) order.
	ErrOrder = errors.New("segment: rows out of (user, time) order")
)

// Prop is one property of a row: a key code and its atom (see AppendAtom).
// ID, when not 0, identifies the atom among all the atoms the writer's
// caller passes (an interned value): the writer then finds its dictionary
// code by index instead of hashing the atom.
type Prop struct {
	Key  uint32
	Atom string
	ID   uint32
}

// maxAtomID bounds the IDs a column indexes directly.
const maxAtomID = 1 << 22

// Row is one stored event.
type Row struct {
	User     uint32
	Time     int64 // Unix ms
	Event    uint32
	Received int64  // when Veil acknowledged it, Unix ms
	InsertID string // "" for none
	Props    []Prop // no key twice
}

// Writer streams rows, sorted by (user, time), into a segment file.
type Writer struct {
	w   *bufio.Writer
	off int64
	err error

	rows     int
	lastUser uint32
	lastTime int64
	minTime  int64
	maxTime  int64

	users []userRun

	// The current block.
	times    []int64
	events   []uint32
	received []int64
	inserts  []string

	timeBlocks, eventBlocks, receivedBlocks, insertBlocks []blockRef
	cols                                                  map[uint32]*colWriter
	byKey                                                 []*colWriter // cols by key code, for small codes
	keys                                                  []uint32     // in order of first appearance

	buf  []byte
	u64  []uint64
	zenc *zstd.Encoder

	// The event index in the making: per event code, its row count and
	// whether it is still rare; the rows of rare events so far (see
	// indexEvent).
	evIndex []evCount
	rare    struct {
		rows  []uint32
		evs   []uint32
		times []int64
	}
}

// evCount is one event's rows in a segment; common events are not
// indexed.
type evCount struct {
	n      int
	common bool
}

// The event index holds events of at most 1/eventShare of a segment's
// rows each, the rarest first, up to 1/indexShare of the rows in all: a
// scan of rare events then reads little more than their rows. While
// writing, an event past its share (plus indexSlack rows: an event
// common early may turn out rare) stops being a candidate.
const (
	eventShare = 48
	indexShare = 16
	indexSlack = 4096
)

type userRun struct {
	user uint32
	n    uint32
}

// blockRef locates one column block in the file.
type blockRef struct {
	off     uint64
	len     uint32
	crc     uint32
	present uint32 // rows with a value (property columns)
	id      uint32 // reader: the block's number in the file, for Reader.verified
	min     int64  // time column: zone map
	max     int64
}

type colWriter struct {
	dict     map[string]uint32 // atom → code (codes start at 1; 0 = absent)
	atoms    []string
	bytes    int
	byID     []uint32 // atom ID → code, 0 = not yet known
	lastAtom string   // the previous value set, and its code
	lastCode uint32
	codes    []uint32 // current block, one per row (0 = absent)
	raw      []string // current block when the dictionary is full ("" = absent)
	rawMode  bool     // the current block is raw
	present  uint32
	blocks   []blockRef
}

// NewWriter returns a Writer writing to w.
func NewWriter(w io.Writer) *Writer {
	sw := &Writer{w: bufio.NewWriterSize(w, 1<<20), cols: make(map[uint32]*colWriter),
		minTime: math.MaxInt64, maxTime: math.MinInt64}
	sw.write(magic[:])
	return sw
}

// Rows is the number of rows appended so far.
func (w *Writer) Rows() int { return w.rows }

// Append adds a row. Rows must come sorted by (user, time).
func (w *Writer) Append(r *Row) error {
	if w.err != nil {
		return w.err
	}
	user, t := r.User, r.Time
	if w.rows > 0 && (user < w.lastUser || user == w.lastUser && t < w.lastTime) {
		return ErrOrder
	}
	if n := len(w.users); n > 0 && w.users[n-1].user == user {
		w.users[n-1].n++
	} else {
		w.users = append(w.users, userRun{user: user, n: 1})
	}
	w.lastUser, w.lastTime = user, t
	w.minTime, w.maxTime = min(w.minTime, t), max(w.maxTime, t)
	w.indexEvent(r.Event, t)
	i := len(w.times)
	w.times = append(w.times, t)
	w.events = append(w.events, r.Event)
	w.received = append(w.received, r.Received)
	w.inserts = append(w.inserts, r.InsertID)
	for _, p := range r.Props {
		var c *colWriter
		if int(p.Key) < len(w.byKey) {
			c = w.byKey[p.Key]
		}
		if c == nil {
			// Blocks before the key appeared are empty (length 0: all absent).
			c = &colWriter{dict: make(map[string]uint32), blocks: make([]blockRef, len(w.timeBlocks))}
			w.cols[p.Key] = c
			w.keys = append(w.keys, p.Key)
			if p.Key < 1<<16 { // key codes are dense: index them
				for int(p.Key) >= len(w.byKey) {
					w.byKey = append(w.byKey, nil)
				}
				w.byKey[p.Key] = c
			}
		}
		c.set(i, p.Atom, p.ID)
	}
	w.rows++
	if len(w.times) == BlockRows {
		w.flushBlock()
	}
	return w.err
}

// indexEvent counts the current row's event and indexes the row while
// the event is rare. The event index is one list of the rows of every
// rare event, in row order with their events and times: a scan of rare
// events reads it instead of the event and time columns.
func (w *Writer) indexEvent(e uint32, t int64) {
	if e >= 1<<20 { // event codes are dense; a huge one is not indexed
		return
	}
	for int(e) >= len(w.evIndex) {
		w.evIndex = append(w.evIndex, evCount{})
	}
	x := &w.evIndex[e]
	x.n++
	if x.common {
		return
	}
	if x.n > (w.rows+1)/eventShare+indexSlack {
		x.common = true // its rows so far are dropped on Close
		return
	}
	w.rare.rows = append(w.rare.rows, uint32(w.rows))
	w.rare.evs = append(w.rare.evs, e)
	w.rare.times = append(w.rare.times, t)
}

// set gives the column its value at row i of the current block.
func (c *colWriter) set(i int, atom string, id uint32) {
	if id != 0 && id < maxAtomID && !c.rawMode {
		if int(id) < len(c.byID) && c.byID[id] != 0 {
			c.setCode(i, c.byID[id])
			return
		}
		c.setAtom(i, atom)
		if !c.rawMode {
			for int(id) >= len(c.byID) {
				c.byID = append(c.byID, 0)
			}
			c.byID[id] = c.codes[len(c.codes)-1]
		}
		return
	}
	c.setAtom(i, atom)
}

func (c *colWriter) setCode(i int, code uint32) {
	for len(c.codes) < i {
		c.codes = append(c.codes, 0)
	}
	c.codes = append(c.codes, code)
	c.present++
}

func (c *colWriter) setAtom(i int, atom string) {
	if c.rawMode {
		for len(c.raw) < i {
			c.raw = append(c.raw, "")
		}
		c.raw = append(c.raw, atom)
		c.present++
		return
	}
	// Rows of one user often repeat a value, and a merge's atoms of one
	// input share memory, which string equality checks first.
	if atom == c.lastAtom && c.lastCode != 0 {
		c.setCode(i, c.lastCode)
		return
	}
	code, ok := c.dict[atom]
	if !ok {
		if len(c.atoms) >= maxDictAtoms || c.bytes+len(atom) > maxDictBytes {
			// The dictionary is full: this block goes raw from here.
			c.rawMode = true
			c.raw = c.raw[:0]
			for _, code := range c.codes {
				if code == 0 {
					c.raw = append(c.raw, "")
				} else {
					c.raw = append(c.raw, c.atoms[code-1])
				}
			}
			c.setAtom(i, atom)
			return
		}
		c.atoms = append(c.atoms, atom)
		c.bytes += len(atom)
		code = uint32(len(c.atoms))
		c.dict[atom] = code
	}
	c.lastAtom, c.lastCode = atom, code
	c.setCode(i, code)
}

func (w *Writer) write(b []byte) {
	if w.err != nil {
		return
	}
	n, err := w.w.Write(b)
	w.off += int64(n)
	w.err = err
}

// block writes one column block and returns its reference.
func (w *Writer) block(b []byte) blockRef {
	ref := blockRef{off: uint64(w.off), len: uint32(len(b)), crc: crc32.Checksum(b, crcT)}
	w.write(b)
	return ref
}

func (w *Writer) flushBlock() {
	n := len(w.times)
	if n == 0 {
		return
	}
	w.buf = enc.AppendInt64s(w.buf[:0], w.times)
	ref := w.block(w.buf)
	ref.min, ref.max = w.times[0], w.times[0]
	for _, t := range w.times {
		ref.min, ref.max = min(ref.min, t), max(ref.max, t)
	}
	w.timeBlocks = append(w.timeBlocks, ref)
	w.buf = enc.AppendUint32s(w.buf[:0], w.events)
	w.eventBlocks = append(w.eventBlocks, w.block(w.buf))
	w.buf = enc.AppendInt64s(w.buf[:0], w.received)
	w.receivedBlocks = append(w.receivedBlocks, w.block(w.buf))
	w.buf = w.insertBlock(w.buf[:0], w.inserts)
	w.insertBlocks = append(w.insertBlocks, w.block(w.buf))

	for _, k := range w.keys {
		c := w.cols[k]
		w.buf = w.buf[:0]
		if c.rawMode {
			for len(c.raw) < n {
				c.raw = append(c.raw, "")
			}
			w.buf = append(w.buf, blockRaw)
			w.buf = w.rawBlock(w.buf, c.raw)
		} else {
			for len(c.codes) < n {
				c.codes = append(c.codes, 0)
			}
			w.buf = append(w.buf, blockCodes)
			w.buf = enc.AppendUint32s(w.buf, c.codes)
		}
		ref := w.block(w.buf)
		ref.present = c.present
		c.blocks = append(c.blocks, ref)
		c.codes, c.raw, c.present = c.codes[:0], c.raw[:0], 0
		c.rawMode = len(c.atoms) >= maxDictAtoms || c.bytes >= maxDictBytes
	}
	w.times, w.events, w.received, w.inserts = w.times[:0], w.events[:0], w.received[:0], w.inserts[:0]
}

// Block kinds of a property column.
const (
	blockCodes = 1 // dictionary codes, 0 = absent
	blockRaw   = 2 // zstd of (uvarint length, atom) per row, length 0 = absent
)

// Kinds of $insert_id block. $insert_ids are random tokens: no dictionary
// helps, and zstd gains little on random text, so the usual shape (every
// id lowercase hex of one length, as SDKs and exports often make them) is
// stored as the bytes the hex spells.
const (
	insertRaw = 1 // zstd of (uvarint length, id) per row
	insertHex = 2 // uvarint hex length; presence bitmap; the ids' bytes
)

func (w *Writer) insertBlock(dst []byte, ids []string) []byte {
	hexLen, present := -1, 0
	for _, id := range ids {
		if id == "" {
			continue
		}
		present++
		if hexLen == -1 {
			hexLen = len(id)
		}
		if len(id) != hexLen || len(id)%2 != 0 || !isLowerHex(id) {
			hexLen = -2
			break
		}
	}
	if hexLen < 0 {
		dst = append(dst, insertRaw)
		return w.rawBlock(dst, ids)
	}
	dst = append(dst, insertHex)
	dst = binary.AppendUvarint(dst, uint64(hexLen))
	bitmap := len(dst)
	out := bitmap + (len(ids)+7)/8
	dst = slices.Grow(dst, out-bitmap+present*hexLen/2)[:out+present*hexLen/2]
	clear(dst[bitmap:out])
	for i, id := range ids {
		if id == "" {
			continue
		}
		dst[bitmap+i/8] |= 1 << (i % 8)
		b := dst[out : out+len(id)/2]
		for j := range b {
			b[j] = hexVal[id[2*j]]<<4 | hexVal[id[2*j+1]]
		}
		out += len(b)
	}
	return dst
}

// hexVal maps a lowercase hex digit to its value and anything else to 0xFF.
var hexVal = func() (t [256]byte) {
	for i := range t {
		t[i] = 0xFF
	}
	for i, c := range "0123456789abcdef" {
		t[c] = byte(i)
	}
	return t
}()

func isLowerHex(s string) bool {
	var bad byte
	for i := 0; i < len(s); i++ {
		bad |= hexVal[s[i]] & 0xF0
	}
	return bad == 0
}

func (w *Writer) rawBlock(dst []byte, atoms []string) []byte {
	var plain []byte
	for _, a := range atoms {
		plain = binary.AppendUvarint(plain, uint64(len(a)))
		plain = append(plain, a...)
	}
	dst = binary.AppendUvarint(dst, uint64(len(plain)))
	return w.zstd().EncodeAll(plain, dst)
}

func (w *Writer) zstd() *zstd.Encoder {
	if w.zenc == nil {
		w.zenc, _ = zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1))
	}
	return w.zenc
}

// Close writes the last block, the dictionaries and the footer. It does not
// close the underlying writer (the caller syncs and renames the file).
func (w *Writer) Close() error {
	w.flushBlock()
	if w.zenc != nil {
		defer w.zenc.Close()
	}
	// Dictionaries: one zstd block per column, read when first needed.
	dicts := make([]blockRef, len(w.keys))
	for i, k := range w.keys {
		c := w.cols[k]
		var plain []byte
		plain = binary.AppendUvarint(plain, uint64(len(c.atoms)))
		for _, a := range c.atoms {
			plain = binary.AppendUvarint(plain, uint64(len(a)))
			plain = append(plain, a...)
		}
		w.buf = binary.AppendUvarint(w.buf[:0], uint64(len(plain)))
		w.buf = w.zstd().EncodeAll(plain, w.buf)
		dicts[i] = w.block(w.buf)
	}

	f := binary.AppendUvarint(nil, formatVersion)
	f = binary.AppendUvarint(f, uint64(w.rows))
	f = binary.AppendUvarint(f, BlockRows)
	f = binary.AppendUvarint(f, uint64(len(w.timeBlocks)))
	if w.rows == 0 {
		w.minTime, w.maxTime = 0, 0
	}
	f = binary.AppendVarint(f, w.minTime)
	f = binary.AppendVarint(f, w.maxTime)
	f = binary.AppendUvarint(f, uint64(len(w.users)))
	prev := uint32(0)
	for _, u := range w.users {
		f = binary.AppendUvarint(f, uint64(u.user-prev))
		f = binary.AppendUvarint(f, uint64(u.n))
		prev = u.user
	}
	for _, refs := range [][]blockRef{w.timeBlocks, w.eventBlocks, w.receivedBlocks, w.insertBlocks} {
		f = appendRefs(f, refs, false)
	}
	for _, r := range w.timeBlocks {
		f = binary.AppendVarint(f, r.min)
		f = binary.AppendUvarint(f, uint64(r.max-r.min))
	}
	f = binary.AppendUvarint(f, uint64(len(w.keys)))
	for i, k := range w.keys {
		c := w.cols[k]
		f = binary.AppendUvarint(f, uint64(k))
		f = binary.AppendUvarint(f, uint64(len(c.atoms)))
		f = appendRefs(f, dicts[i:i+1], false)
		f = appendRefs(f, c.blocks, true)
	}
	f = w.appendEventIndex(f)
	w.write(f)
	var tail [16]byte
	binary.LittleEndian.PutUint32(tail[0:], uint32(len(f)))
	binary.LittleEndian.PutUint32(tail[4:], crc32.Checksum(f, crcT))
	copy(tail[8:], magic[:])
	w.write(tail[:])
	if w.err == nil {
		w.err = w.w.Flush()
	}
	if w.err != nil {
		return fmt.Errorf("segment: write: %w", w.err)
	}
	return nil
}

// formatVersion 2 added the event index; version 1 files are read
// without it.
const formatVersion = 2

// appendEventIndex writes the event index and appends its footer entry:
// per event code present, its row count and whether it is indexed; then
// the blocks of the indexed rows, their events and times.
func (w *Writer) appendEventIndex(f []byte) []byte {
	// The rarest candidates that fit in the index's share of the rows.
	var cands []uint32
	n := 0
	for e, x := range w.evIndex {
		if x.n > 0 {
			n++
			if !x.common {
				cands = append(cands, uint32(e))
			}
		}
	}
	slices.SortFunc(cands, func(a, b uint32) int { return w.evIndex[a].n - w.evIndex[b].n })
	room := w.rows/indexShare + 1
	for _, e := range cands {
		x := &w.evIndex[e]
		if x.n > room || x.n > w.rows/eventShare+1 {
			x.common = true
			continue
		}
		room -= x.n
	}
	f = binary.AppendUvarint(f, uint64(n))
	for e, x := range w.evIndex {
		if x.n == 0 {
			continue
		}
		f = binary.AppendUvarint(f, uint64(e))
		f = binary.AppendUvarint(f, uint64(x.n))
		if x.common {
			f = append(f, 0)
		} else {
			f = append(f, 1)
		}
	}
	// The rows of events that turned common are dropped.
	r := &w.rare
	k := 0
	for i, e := range r.evs {
		if !w.evIndex[e].common {
			r.rows[k], r.evs[k], r.times[k] = r.rows[i], e, r.times[i]
			k++
		}
	}
	r.rows, r.evs, r.times = r.rows[:k], r.evs[:k], r.times[:k]
	f = binary.AppendUvarint(f, uint64(k))
	for lo := 0; lo < k; lo += indexChunk {
		hi := min(lo+indexChunk, k)
		w.buf = enc.AppendUint32s(w.buf[:0], r.rows[lo:hi])
		f = appendRefs(f, []blockRef{w.block(w.buf)}, false)
		w.buf = enc.AppendUint32s(w.buf[:0], r.evs[lo:hi])
		f = appendRefs(f, []blockRef{w.block(w.buf)}, false)
		w.buf = enc.AppendInt64s(w.buf[:0], r.times[lo:hi])
		f = appendRefs(f, []blockRef{w.block(w.buf)}, false)
	}
	return f
}

// indexChunk is the most values of one event index block.
const indexChunk = 1 << 16

func appendRefs(f []byte, refs []blockRef, present bool) []byte {
	for _, r := range refs {
		f = binary.AppendUvarint(f, r.off)
		f = binary.AppendUvarint(f, uint64(r.len))
		f = binary.LittleEndian.AppendUint32(f, r.crc)
		if present {
			f = binary.AppendUvarint(f, uint64(r.present))
		}
	}
	return f
}
