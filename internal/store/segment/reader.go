package segment

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"slices"
	"sort"
	"sync"
	"sync/atomic"

	"github.com/klauspost/compress/zstd"

	"github.com/veil-analytics/veil/internal/store/enc"
)

// File is what a Reader reads: an open segment file.
type File interface {
	io.ReaderAt
	io.Closer
}

// Reader reads one segment. Its methods are safe for concurrent use; each
// goroutine passes its own Scratch.
type Reader struct {
	f   File
	mem []byte // the whole file, when f is mapped into memory
	// verified marks the blocks of a mapped file whose checksum matched:
	// the mapping of an immutable file does not change, so each block is
	// checked once, not at every read.
	verified   []atomic.Uint64
	blockCount uint32
	path       string
	size       int64

	rows      int
	blockRows int
	minTime   int64
	maxTime   int64

	// UserRuns, sorted by user: rows [Start, Start+N) are the user's.
	users []UserRun

	timeBlocks, eventBlocks, receivedBlocks, insertBlocks []blockRef
	cols                                                  map[uint32]*column
	keys                                                  []uint32

	zonce sync.Once
	zdec  *zstd.Decoder

	// events holds, by event code, the segment's row count of each event
	// and whether the event index lists its rows; nil in version 1 files,
	// which have no index. The index is rareRows rows, in blocks of
	// indexChunk rows: row numbers, events and times, three blocks each.
	events     map[uint32]eventEntry
	rareRows   int
	rareBlocks []blockRef
	// The event index's blocks, read and checked at open: it is a small
	// share of the file (under 1% of its bytes on the benchmark data),
	// and a scan of rare events reads it whole. Kept in memory, it never
	// waits on a page the OS dropped from its cache.
	index   []byte
	indexAt []int // where each block starts in index, and its end
	// indexUsers[i] is the user of the index's row i.
	indexUsers []IndexUser
}

// IndexUser is the user of a row of the event index, and the entry of the
// user table (see Reader.Users) that holds the row.
type IndexUser struct {
	User, Run uint32
}

// eventEntry is one event of a segment.
type eventEntry struct {
	n       int
	indexed bool
}

// UserRun is the rows of one user in a segment.
type UserRun struct {
	User  uint32
	Start uint32 // first row
	N     uint32
}

type column struct {
	key      uint32
	dictLen  int
	dictRef  blockRef
	blocks   []blockRef
	dictOnce sync.Once
	dict     []Atom
	dictErr  error
}

// CorruptError reports a segment that failed a check.
type CorruptError struct {
	Path   string
	Detail string
}

func (e *CorruptError) Error() string { return "segment " + e.Path + " is corrupt: " + e.Detail }

// Unwrap makes errors.Is(err, ErrCorrupt) true.
func (e *CorruptError) Unwrap() error { return ErrCorrupt }

// Open opens and checks the segment file at path.
func Open(path string) (*Reader, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	var file File = f
	if m, err := openMapped(f, st.Size()); err == nil {
		file = m // openMapped closed f
	} else if f, err = os.Open(path); err != nil { // f was closed: reopen
		return nil, err
	} else {
		file = f
	}
	r, err := NewReader(file, path, st.Size())
	if err != nil {
		file.Close()
		return nil, err
	}
	return r, nil
}

// NewReader reads the footer of a segment of size bytes from f; path names
// it in errors.
func NewReader(f File, path string, size int64) (*Reader, error) {
	r := &Reader{f: f, path: path, size: size, cols: make(map[uint32]*column)}
	if m, ok := f.(interface{ Bytes() []byte }); ok && int64(len(m.Bytes())) == size {
		r.mem = m.Bytes()
	}
	if size < int64(len(magic))+16 {
		return nil, r.corrupt("file of %d bytes is too short", size)
	}
	var tail [16]byte
	if _, err := f.ReadAt(tail[:], size-16); err != nil {
		return nil, fmt.Errorf("segment %s: %w", path, err)
	}
	if [8]byte(tail[8:]) != magic {
		return nil, r.corrupt("bad trailing magic")
	}
	flen := int64(binary.LittleEndian.Uint32(tail[0:]))
	if flen > size-16-int64(len(magic)) {
		return nil, r.corrupt("footer length %d exceeds the file", flen)
	}
	foot := make([]byte, flen)
	if _, err := f.ReadAt(foot, size-16-flen); err != nil {
		return nil, fmt.Errorf("segment %s: %w", path, err)
	}
	if crc32.Checksum(foot, crcT) != binary.LittleEndian.Uint32(tail[4:]) {
		return nil, r.corrupt("footer checksum mismatch")
	}
	var head [8]byte
	if _, err := f.ReadAt(head[:], 0); err != nil {
		return nil, fmt.Errorf("segment %s: %w", path, err)
	}
	if head != magic {
		return nil, r.corrupt("bad leading magic")
	}
	if err := r.parseFooter(foot, size-16-flen); err != nil {
		return nil, err
	}
	if err := r.loadIndex(); err != nil {
		return nil, err
	}
	if r.mem != nil {
		r.verified = make([]atomic.Uint64, r.blockCount/64+1)
	}
	return r, nil
}

func (r *Reader) corrupt(format string, args ...any) error {
	return &CorruptError{Path: r.path, Detail: fmt.Sprintf(format, args...)}
}

// footerReader decodes the footer, remembering the first error.
type footerReader struct {
	b      []byte
	err    bool
	blocks uint32 // block refs read so far
}

func (d *footerReader) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = true
		d.b = nil
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *footerReader) varint() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.err = true
		d.b = nil
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *footerReader) u32() uint32 {
	if len(d.b) < 4 {
		d.err = true
		d.b = nil
		return 0
	}
	v := binary.LittleEndian.Uint32(d.b)
	d.b = d.b[4:]
	return v
}

// count reads a count that cannot exceed max (so that a corrupt footer
// cannot make us allocate without bound).
func (d *footerReader) count(max int) int {
	v := d.uvarint()
	if v > uint64(max) {
		d.err = true
		d.b = nil
		return 0
	}
	return int(v)
}

func (d *footerReader) refs(n int, present bool, dataEnd int64) []blockRef {
	refs := make([]blockRef, n)
	for i := range refs {
		refs[i].off = d.uvarint()
		refs[i].len = uint32(d.count(1 << 30))
		refs[i].crc = d.u32()
		refs[i].id = d.blocks
		d.blocks++
		if present {
			refs[i].present = uint32(d.count(BlockRows))
		}
		if refs[i].len > 0 && (refs[i].off < uint64(len(magic)) || refs[i].off+uint64(refs[i].len) > uint64(dataEnd)) {
			d.err = true
		}
	}
	return refs
}

func (r *Reader) parseFooter(foot []byte, dataEnd int64) error {
	d := &footerReader{b: foot}
	defer func() { r.blockCount = d.blocks }()
	v := d.uvarint()
	if v != 1 && v != formatVersion {
		return r.corrupt("unknown format version %d", v)
	}
	// A block takes at least one byte per column, so the file size bounds
	// every count.
	limit := int(min(dataEnd, 1<<40))
	r.rows = d.count(limit * BlockRows)
	r.blockRows = d.count(1 << 20)
	nb := d.count(limit)
	r.minTime, r.maxTime = d.varint(), d.varint()
	if d.err || r.blockRows != BlockRows || nb != (r.rows+BlockRows-1)/BlockRows {
		return r.corrupt("bad header fields")
	}
	nu := d.count(r.rows)
	r.users = make([]UserRun, nu)
	var user, start uint64
	for i := range r.users {
		delta := d.uvarint()
		n := d.uvarint()
		user += delta
		if (i > 0 && delta == 0) || user > 1<<32-1 || n == 0 || start+n > uint64(r.rows) {
			return r.corrupt("bad user table at entry %d", i)
		}
		r.users[i] = UserRun{User: uint32(user), Start: uint32(start), N: uint32(n)}
		start += n
	}
	if start != uint64(r.rows) {
		return r.corrupt("user table covers %d of %d rows", start, r.rows)
	}
	r.timeBlocks = d.refs(nb, false, dataEnd)
	r.eventBlocks = d.refs(nb, false, dataEnd)
	r.receivedBlocks = d.refs(nb, false, dataEnd)
	r.insertBlocks = d.refs(nb, false, dataEnd)
	for i := range r.timeBlocks {
		r.timeBlocks[i].min = d.varint()
		r.timeBlocks[i].max = r.timeBlocks[i].min + int64(d.uvarint())
	}
	nc := d.count(limit)
	for range nc {
		if d.err {
			break
		}
		key := uint32(d.count(1<<32 - 1))
		c := &column{key: key, dictLen: d.count(maxDictAtoms)}
		c.dictRef = d.refs(1, false, dataEnd)[0]
		c.blocks = d.refs(nb, true, dataEnd)
		if _, dup := r.cols[key]; dup {
			return r.corrupt("column %d appears twice", key)
		}
		r.cols[key] = c
		r.keys = append(r.keys, key)
	}
	if v >= 2 {
		r.parseEventIndex(d, dataEnd)
	}
	if d.err || len(d.b) != 0 {
		return r.corrupt("malformed footer")
	}
	sort.Slice(r.keys, func(i, j int) bool { return r.keys[i] < r.keys[j] })
	return nil
}

// Path is the file's path.
func (r *Reader) Path() string { return r.path }

// Size is the file's size in bytes.
func (r *Reader) Size() int64 { return r.size }

// Rows is the number of rows.
func (r *Reader) Rows() int { return r.rows }

// Blocks is the number of blocks; block b holds rows [b*BlockRows, ...).
func (r *Reader) Blocks() int { return len(r.timeBlocks) }

// TimeRange is the smallest and largest time of the segment.
func (r *Reader) TimeRange() (lo, hi int64) { return r.minTime, r.maxTime }

// BlockTimeRange is the zone map of block b's time column.
func (r *Reader) BlockTimeRange(b int) (lo, hi int64) {
	return r.timeBlocks[b].min, r.timeBlocks[b].max
}

// Users is the user table, sorted by user. It must not be modified.
func (r *Reader) Users() []UserRun { return r.users }

// Keys are the property keys with a column, sorted.
func (r *Reader) Keys() []uint32 { return r.keys }

// Close closes the file.
func (r *Reader) Close() error {
	if r.zdec != nil {
		r.zdec.Close()
	}
	return r.f.Close()
}

// Scratch holds one goroutine's read buffers.
type Scratch struct {
	raw   []byte
	plain []byte
}

// readBlock reads and checks one block into s.raw.
func (r *Reader) readBlock(s *Scratch, ref blockRef, what string, b int) ([]byte, error) {
	if r.mem != nil {
		end := int64(ref.off) + int64(ref.len)
		if end > int64(len(r.mem)) {
			return nil, r.corrupt("%s block %d lies beyond the file", what, b)
		}
		buf := r.mem[ref.off:end:end]
		w, bit := ref.id/64, uint64(1)<<(ref.id%64)
		if int(w) < len(r.verified) && r.verified[w].Load()&bit != 0 {
			return buf, nil
		}
		if crc32.Checksum(buf, crcT) != ref.crc {
			return nil, r.corrupt("%s block %d: checksum mismatch", what, b)
		}
		if int(w) < len(r.verified) {
			r.verified[w].Or(bit)
		}
		return buf, nil
	}
	if cap(s.raw) < int(ref.len) {
		s.raw = make([]byte, ref.len)
	}
	buf := s.raw[:ref.len]
	if _, err := r.f.ReadAt(buf, int64(ref.off)); err != nil {
		return nil, fmt.Errorf("segment %s: reading %s block %d: %w", r.path, what, b, err)
	}
	if crc32.Checksum(buf, crcT) != ref.crc {
		return nil, r.corrupt("%s block %d: checksum mismatch", what, b)
	}
	return buf, nil
}

// Times decodes block b's times into dst.
func (r *Reader) Times(s *Scratch, b int, dst []int64) ([]int64, error) {
	buf, err := r.readBlock(s, r.timeBlocks[b], "time", b)
	if err != nil {
		return nil, err
	}
	out, _, err := enc.DecodeInt64s(dst, buf)
	return checkLenOf(r, out, err, "time", b)
}

// TimeBlock points blk at block b's times, for reading single rows: a
// scan that selects few rows of a block decodes only those.
func (r *Reader) TimeBlock(s *Scratch, b int, blk *enc.Int64Block) error {
	buf, err := r.readBlock(s, r.timeBlocks[b], "time", b)
	if err != nil {
		return err
	}
	reset := blk.Reset
	if r.mem != nil {
		reset = blk.ResetInPlace // the mapping outlives every reader of it
	}
	if err := reset(buf); err != nil {
		return r.corrupt("time block %d: %v", b, err)
	}
	if blk.Len() != r.blockLen(b) {
		return r.corrupt("time block %d has %d rows, want %d", b, blk.Len(), r.blockLen(b))
	}
	return nil
}

// Events decodes block b's event codes into dst.
func (r *Reader) Events(s *Scratch, b int, dst []uint32) ([]uint32, error) {
	buf, err := r.readBlock(s, r.eventBlocks[b], "event", b)
	if err != nil {
		return nil, err
	}
	out, _, err := enc.DecodeUint32s(dst, buf)
	return checkLenOf(r, out, err, "event", b)
}

// SelectEvents selects into sel the rows of block b whose event code e
// has want[min(e, len(want)-1)] != 0, without decoding the others where
// the encoding allows.
func (r *Reader) SelectEvents(s *Scratch, b int, want []uint8, sel *enc.Selector) error {
	buf, err := r.readBlock(s, r.eventBlocks[b], "event", b)
	if err != nil {
		return err
	}
	n, err := sel.Select(buf, want)
	if err != nil {
		return r.corrupt("event block %d: %v", b, err)
	}
	if n != r.blockLen(b) {
		return r.corrupt("event block %d has %d rows, want %d", b, n, r.blockLen(b))
	}
	return nil
}

// parseEventIndex reads the footer's event index (version 2).
func (r *Reader) parseEventIndex(d *footerReader, dataEnd int64) {
	ne := d.count(1 << 20)
	r.events = make(map[uint32]eventEntry, ne)
	total, rare := 0, 0
	for range ne {
		if d.err {
			return
		}
		e := uint32(d.count(1<<20 - 1))
		x := eventEntry{n: d.count(r.rows), indexed: d.count(1) == 1}
		total += x.n
		if x.indexed {
			rare += x.n
		}
		if _, dup := r.events[e]; dup || x.n == 0 {
			d.err = true
		}
		r.events[e] = x
	}
	if total != r.rows || d.count(r.rows) != rare {
		d.err = true
		return
	}
	for range (rare + indexChunk - 1) / indexChunk {
		r.rareBlocks = append(r.rareBlocks, d.refs(3, false, dataEnd)...)
	}
	r.rareRows = rare
}

// Indexed reports whether the event index lists every row of the events:
// each is indexed or absent from the segment. Version 1 files have no
// index.
func (r *Reader) Indexed(events []uint32) bool {
	if r.events == nil {
		return false
	}
	for _, e := range events {
		if x, ok := r.events[e]; ok && !x.indexed {
			return false
		}
	}
	return true
}

// RareIndex appends the whole event index: its rows in ascending order,
// their events and their times. It lists every row of the events Indexed
// reports, and rows of other events a reader must skip.
func (r *Reader) RareIndex(rows, evs []uint32, times []int64) ([]uint32, []uint32, []int64, error) {
	rows, err := r.indexRows(rows)
	if err != nil {
		return rows, evs, times, err
	}
	evs, times, err = r.RareEvents(evs, times)
	return rows, evs, times, err
}

// indexRows appends the event index's row numbers to dst.
func (r *Reader) indexRows(dst []uint32) ([]uint32, error) {
	dst = slices.Grow(dst, r.rareRows) // every block decodes straight into place
	for c := range len(r.rareBlocks) / 3 {
		var err error
		if dst, err = rareBlock(r, 3*c, dst, min(indexChunk, r.rareRows-c*indexChunk), enc.DecodeUint32s); err != nil {
			return dst, err
		}
	}
	return dst, nil
}

// RareEvents is RareIndex without the row numbers, for a scan that reads
// no other column (IndexUsers has the rows' users).
func (r *Reader) RareEvents(evs []uint32, times []int64) ([]uint32, []int64, error) {
	// Sized first, so that every block decodes straight into place.
	evs, times = slices.Grow(evs, r.rareRows), slices.Grow(times, r.rareRows)
	for c := range len(r.rareBlocks) / 3 {
		n := min(indexChunk, r.rareRows-c*indexChunk)
		var err error
		if evs, err = rareBlock(r, 3*c+1, evs, n, enc.DecodeUint32s); err == nil {
			times, err = rareBlock(r, 3*c+2, times, n, enc.DecodeInt64s)
		}
		if err != nil {
			return evs, times, err
		}
	}
	return evs, times, nil
}

// loadIndex reads and checks the event index's blocks into r.index.
func (r *Reader) loadIndex() error {
	total := 0
	for _, ref := range r.rareBlocks {
		total += int(ref.len)
	}
	r.index = make([]byte, total)
	r.indexAt = make([]int, 1, len(r.rareBlocks)+1)
	at := 0
	for i, ref := range r.rareBlocks {
		buf := r.index[at : at+int(ref.len)]
		if int64(ref.off)+int64(ref.len) > r.size {
			return r.corrupt("event index block %d lies beyond the file", i)
		}
		if _, err := r.f.ReadAt(buf, int64(ref.off)); err != nil {
			return fmt.Errorf("segment %s: reading event index block %d: %w", r.path, i, err)
		}
		if crc32.Checksum(buf, crcT) != ref.crc {
			return r.corrupt("event index block %d: checksum mismatch", i)
		}
		at += int(ref.len)
		r.indexAt = append(r.indexAt, at)
	}
	if r.rareRows == 0 {
		return nil
	}
	// Each row's user table entry, found once here rather than by every
	// scan walking the user table beside the index.
	rows, err := r.indexRows(nil)
	if err != nil {
		return err
	}
	r.indexUsers = make([]IndexUser, len(rows))
	ri, prev := 0, -1
	for i, row := range rows {
		if int(row) <= prev || row >= uint32(r.rows) {
			return r.corrupt("event index: rows out of order or range")
		}
		prev = int(row)
		for r.users[ri].Start+r.users[ri].N <= row {
			ri++
		}
		r.indexUsers[i] = IndexUser{r.users[ri].User, uint32(ri)}
	}
	return nil
}

// IndexUsers are the users of the event index's rows, in the order
// RareIndex lists them: one pair for the two, as a scan reads the user
// of each row and the user table entry of the first row past its chunk.
func (r *Reader) IndexUsers() []IndexUser { return r.indexUsers }

// rareBlock decodes block i of the event index, of n entries, onto the
// end of dst, which has room for them.
func rareBlock[T any](r *Reader, i int, dst []T, n int, decode func([]T, []byte) ([]T, int, error)) ([]T, error) {
	buf := r.index[r.indexAt[i]:r.indexAt[i+1]]
	out, _, err := decode(dst[len(dst):len(dst):cap(dst)], buf)
	if err != nil {
		return dst, r.corrupt("event index block %d: %v", i, err)
	}
	if len(out) != n {
		return dst, r.corrupt("event index block %d has %d entries, want %d", i, len(out), n)
	}
	if cap(dst)-len(dst) < n { // not decoded in place
		return append(dst, out...), nil
	}
	return dst[:len(dst)+n], nil
}

// Received decodes block b's receive times into dst.
func (r *Reader) Received(s *Scratch, b int, dst []int64) ([]int64, error) {
	buf, err := r.readBlock(s, r.receivedBlocks[b], "received", b)
	if err != nil {
		return nil, err
	}
	out, _, err := enc.DecodeInt64s(dst, buf)
	return checkLenOf(r, out, err, "received", b)
}

// Inserts decodes block b's $insert_ids ("" = none) into dst. The
// strings share one allocation per block.
func (r *Reader) Inserts(s *Scratch, b int, dst []string) ([]string, error) {
	buf, err := r.readBlock(s, r.insertBlocks[b], "insert_id", b)
	if err != nil {
		return nil, err
	}
	n := r.blockLen(b)
	dst = dst[:0]
	bad := func() ([]string, error) { return nil, r.corrupt("insert_id block %d: malformed", b) }
	switch buf[0] {
	case insertHex:
		l, k := binary.Uvarint(buf[1:])
		if k <= 0 || l == 0 || l%2 != 0 || l > 1024 {
			return bad()
		}
		rest := buf[1+k:]
		bm := (n + 7) / 8
		if len(rest) < bm {
			return bad()
		}
		bitmap, ids := rest[:bm], rest[bm:]
		var present int
		for i := range n {
			if bitmap[i/8]&(1<<(i%8)) != 0 {
				present++
			}
		}
		if len(ids) != present*int(l/2) {
			return bad()
		}
		all := hex.EncodeToString(ids) // one allocation for the block
		pos := 0
		for i := range n {
			if bitmap[i/8]&(1<<(i%8)) == 0 {
				dst = append(dst, "")
				continue
			}
			dst = append(dst, all[pos:pos+int(l)])
			pos += int(l)
		}
		return dst, nil
	case insertRaw:
		plain, err := r.unzstdBytes(s, buf[1:])
		if err != nil {
			return bad()
		}
		dst, ok := splitStrings(dst, plain)
		if !ok || len(dst) != n {
			return bad()
		}
		return dst, nil
	}
	return bad()
}

// splitStrings appends the (uvarint length, bytes) entries of plain to dst
// as strings sharing one copy of plain; ok is false for a malformed entry.
// Dictionaries, raw property blocks and raw $insert_id blocks use it.
func splitStrings[T ~string](dst []T, plain []byte) ([]T, bool) {
	all := string(plain)
	for pos := 0; pos < len(plain); {
		l, k := binary.Uvarint(plain[pos:])
		if k <= 0 || l > uint64(len(plain)-pos-k) {
			return dst, false
		}
		pos += k
		dst = append(dst, T(all[pos:pos+int(l)]))
		pos += int(l)
	}
	return dst, true
}

func checkLenOf[T any](r *Reader, out []T, err error, what string, b int) ([]T, error) {
	if err != nil {
		return nil, r.corrupt("%s block %d: %v", what, b, err)
	}
	if len(out) != r.blockLen(b) {
		return nil, r.corrupt("%s block %d has %d rows, want %d", what, b, len(out), r.blockLen(b))
	}
	return out, nil
}

// blockLen is the number of rows of block b.
func (r *Reader) blockLen(b int) int {
	if b == len(r.timeBlocks)-1 {
		return r.rows - b*BlockRows
	}
	return BlockRows
}

// PropBlock is one block of a property column: dictionary codes (0 =
// absent) into the column's Dict, or, when the dictionary was full, the
// atoms themselves ("" = absent). Exactly one of Codes and Atoms is set.
type PropBlock struct {
	Codes []uint32
	Atoms []Atom
}

// Dict is key's dictionary: code c ≥ 1 stands for Dict[c-1]. It is read
// on first use and shared; it must not be modified.
func (r *Reader) Dict(key uint32) ([]Atom, error) {
	c := r.cols[key]
	if c == nil {
		return nil, nil
	}
	c.dictOnce.Do(func() {
		var s Scratch
		plain, err := r.unzstd(&s, c.dictRef, "dictionary", int(key))
		if err != nil {
			c.dictErr = err
			return
		}
		d := &footerReader{b: plain}
		n := d.count(maxDictAtoms)
		if n != c.dictLen {
			c.dictErr = r.corrupt("dictionary of key %d has %d atoms, want %d", key, n, c.dictLen)
			return
		}
		atoms, ok := splitStrings(make([]Atom, 0, n), d.b)
		if !ok || len(atoms) != n {
			c.dictErr = r.corrupt("dictionary of key %d: malformed entries", key)
			return
		}
		for i, a := range atoms {
			if a == "" || !a.Valid() {
				c.dictErr = r.corrupt("dictionary of key %d: malformed value %d", key, i)
				return
			}
		}
		c.dict = atoms
	})
	return c.dict, c.dictErr
}

// Prop decodes block b of key's column, reusing codes and atoms. A key
// without a column, or a block where it never occurs, is all absent:
// PropBlock{} (both nil).
func (r *Reader) Prop(s *Scratch, key uint32, b int, codes []uint32, atoms []Atom) (PropBlock, error) {
	c := r.cols[key]
	if c == nil || c.blocks[b].len == 0 {
		return PropBlock{}, nil
	}
	buf, err := r.readBlock(s, c.blocks[b], "property", b)
	if err != nil {
		return PropBlock{}, err
	}
	switch buf[0] {
	case blockCodes:
		out, _, err := enc.DecodeUint32s(codes, buf[1:])
		if out, err = checkLenOf(r, out, err, "property", b); err != nil {
			return PropBlock{}, err
		}
		for _, code := range out {
			if int(code) > c.dictLen {
				return PropBlock{}, r.corrupt("property %d block %d: code %d beyond the dictionary", key, b, code)
			}
		}
		return PropBlock{Codes: out}, nil
	case blockRaw:
		plain, err := r.unzstdBytes(s, buf[1:])
		if err != nil {
			return PropBlock{}, r.corrupt("property %d block %d: %v", key, b, err)
		}
		atoms, ok := splitStrings(atoms[:0], plain)
		if !ok || len(atoms) != r.blockLen(b) {
			return PropBlock{}, r.corrupt("property %d block %d: malformed raw values", key, b)
		}
		for _, a := range atoms {
			if a != "" && !a.Valid() {
				return PropBlock{}, r.corrupt("property %d block %d: malformed value", key, b)
			}
		}
		return PropBlock{Atoms: atoms}, nil
	}
	return PropBlock{}, r.corrupt("property %d block %d: unknown block kind %d", key, b, buf[0])
}

// unzstd reads a block holding (uvarint plain length, zstd frame).
func (r *Reader) unzstd(s *Scratch, ref blockRef, what string, b int) ([]byte, error) {
	buf, err := r.readBlock(s, ref, what, b)
	if err != nil {
		return nil, err
	}
	plain, err := r.unzstdBytes(s, buf)
	if err != nil {
		return nil, r.corrupt("%s %d: %v", what, b, err)
	}
	return plain, nil
}

func (r *Reader) unzstdBytes(s *Scratch, buf []byte) ([]byte, error) {
	n, k := binary.Uvarint(buf)
	if k <= 0 || n > 1<<30 {
		return nil, fmt.Errorf("bad length")
	}
	r.zonce.Do(func() {
		r.zdec, _ = zstd.NewReader(nil, zstd.WithDecoderConcurrency(0), zstd.WithDecoderMaxMemory(1<<30))
	})
	if cap(s.plain) < int(n) {
		s.plain = make([]byte, 0, n)
	}
	plain, err := r.zdec.DecodeAll(buf[k:], s.plain[:0])
	if err != nil {
		return nil, err
	}
	if len(plain) != int(n) {
		return nil, fmt.Errorf("inflated to %d bytes, want %d", len(plain), n)
	}
	s.plain = plain
	return plain, nil
}
