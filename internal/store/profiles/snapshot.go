package profiles

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"maps"
	"math"
	"math/bits"
	"slices"
)

// Snapshot format, version 1:
//
//	header  "VEILPRF" 0x01, then uint64 LE: the body's length
//	body    uvarint(projects) and, per project in ascending id order:
//	          varint(project id)
//	          uvarint(users), per user ascending: str(distinct id) str(blob)
//	          uvarint(group keys), per key ascending: str(key)
//	            uvarint(groups), per group ascending: str(group id) str(blob)
//	crc     uint32 LE: CRC-32C (Castagnoli) of header and body
//
// str is uvarint(length) and the bytes; a blob is a profile's properties
// (see blob.go). Order is bytewise. Every varint is in its shortest form,
// and no project or group key is empty, so one State has exactly one
// snapshot: Read refuses anything WriteTo would not have written.
const (
	magic      = "VEILPRF"
	version    = 1
	headerSize = len(magic) + 1 + 8
	crcSize    = 4
)

// ErrCorrupt is returned (wrapped) by Read for input that is not a whole,
// intact snapshot.
var ErrCorrupt = errors.New("profiles: corrupt snapshot")

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// flushAt is how much WriteTo buffers between writes.
const flushAt = 64 << 10

// snapWriter buffers the snapshot and checksums it as it goes.
type snapWriter struct {
	w   io.Writer
	buf []byte
	crc uint32
	n   int64
	err error
}

func (sw *snapWriter) flush() {
	if sw.err != nil || len(sw.buf) == 0 {
		return
	}
	sw.crc = crc32.Update(sw.crc, castagnoli, sw.buf)
	m, err := sw.w.Write(sw.buf)
	sw.n += int64(m)
	if err == nil && m < len(sw.buf) {
		err = io.ErrShortWrite
	}
	sw.err = err
	sw.buf = sw.buf[:0]
}

func (sw *snapWriter) maybeFlush() {
	if len(sw.buf) >= flushAt {
		sw.flush()
	}
}

// snapProject is one project's ids in snapshot order.
type snapProject struct {
	id     int64
	p      *project
	users  []string
	keys   []string
	groups [][]string // per key, its group ids
}

func strSize(s string) int64 { return int64(uvarintLen(uint64(len(s))) + len(s)) }

func uvarintLen(x uint64) int { return (bits.Len64(x|1) + 6) / 7 }

func varintLen(x int64) int { return uvarintLen(uint64(x)<<1 ^ uint64(x>>63)) }

// WriteTo writes a snapshot of every project to w. It returns the number of
// bytes written and the first error from w.
func (s *State) WriteTo(w io.Writer) (int64, error) {
	// Sort first: the body's length goes in the header, and sorted output
	// makes the snapshot a function of the state alone.
	plan := make([]snapProject, 0, len(s.projects))
	body := int64(uvarintLen(uint64(len(s.projects))))
	for _, id := range slices.Sorted(maps.Keys(s.projects)) {
		p := s.projects[id]
		sp := snapProject{id: id, p: p, users: slices.Sorted(maps.Keys(p.users)), keys: slices.Sorted(maps.Keys(p.groups))}
		body += int64(varintLen(id) + uvarintLen(uint64(len(sp.users))) + uvarintLen(uint64(len(sp.keys))))
		for _, u := range sp.users {
			body += strSize(u) + strSize(p.users[u])
		}
		for _, k := range sp.keys {
			ids := p.groups[k]
			gids := slices.Sorted(maps.Keys(ids))
			sp.groups = append(sp.groups, gids)
			body += strSize(k) + int64(uvarintLen(uint64(len(gids))))
			for _, g := range gids {
				body += strSize(g) + strSize(ids[g])
			}
		}
		plan = append(plan, sp)
	}

	sw := &snapWriter{w: w, buf: make([]byte, 0, flushAt+flushAt/4)}
	sw.buf = append(sw.buf, magic...)
	sw.buf = append(sw.buf, version)
	sw.buf = binary.LittleEndian.AppendUint64(sw.buf, uint64(body))
	sw.buf = binary.AppendUvarint(sw.buf, uint64(len(plan)))
	for i := range plan {
		sp := &plan[i]
		sw.buf = binary.AppendVarint(sw.buf, sp.id)
		sw.buf = binary.AppendUvarint(sw.buf, uint64(len(sp.users)))
		for _, u := range sp.users {
			sw.buf = appendStr(sw.buf, u)
			sw.buf = appendStr(sw.buf, sp.p.users[u])
			sw.maybeFlush()
		}
		sw.buf = binary.AppendUvarint(sw.buf, uint64(len(sp.keys)))
		for j, k := range sp.keys {
			ids := sp.p.groups[k]
			sw.buf = appendStr(sw.buf, k)
			sw.buf = binary.AppendUvarint(sw.buf, uint64(len(sp.groups[j])))
			for _, g := range sp.groups[j] {
				sw.buf = appendStr(sw.buf, g)
				sw.buf = appendStr(sw.buf, ids[g])
				sw.maybeFlush()
			}
		}
		if sw.err != nil {
			return sw.n, sw.err
		}
	}
	sw.flush()
	sw.buf = binary.LittleEndian.AppendUint32(sw.buf, sw.crc)
	if sw.err == nil {
		m, err := w.Write(sw.buf)
		sw.n += int64(m)
		if err == nil && m < len(sw.buf) {
			err = io.ErrShortWrite
		}
		sw.err = err
	}
	return sw.n, sw.err
}

// Read reads a snapshot written by WriteTo. It reads r to its end and
// refuses (with an error wrapping ErrCorrupt) input that is empty,
// truncated, followed by more bytes, of another version, fails its
// checksum, or is not exactly what WriteTo writes.
func Read(r io.Reader) (*State, error) {
	var head [headerSize]byte
	if n, err := io.ReadFull(r, head[:]); err != nil {
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return nil, fmt.Errorf("%w: truncated header (%d of %d bytes)", ErrCorrupt, n, headerSize)
		}
		return nil, fmt.Errorf("profiles: read snapshot: %w", err)
	}
	if string(head[:len(magic)]) != magic {
		return nil, fmt.Errorf("%w: not a profile snapshot", ErrCorrupt)
	}
	if v := head[len(magic)]; v != version {
		return nil, fmt.Errorf("%w: version %d, want %d", ErrCorrupt, v, version)
	}
	size := binary.LittleEndian.Uint64(head[len(magic)+1:])
	if size > math.MaxInt64-crcSize {
		return nil, fmt.Errorf("%w: body length %d is impossible", ErrCorrupt, size)
	}
	want := int64(size) + crcSize

	// Grow the buffer as bytes arrive rather than trusting the length: a
	// corrupt header must not allocate gigabytes.
	var buf bytes.Buffer
	buf.Grow(int(min(want, 1<<20)))
	got, err := io.Copy(&buf, io.LimitReader(r, want))
	if err != nil {
		return nil, fmt.Errorf("profiles: read snapshot: %w", err)
	}
	if got < want {
		return nil, fmt.Errorf("%w: truncated: %d of %d bytes after the header", ErrCorrupt, got, want)
	}
	var extra [1]byte
	if n, _ := io.ReadFull(r, extra[:]); n > 0 {
		return nil, fmt.Errorf("%w: trailing bytes after the checksum", ErrCorrupt)
	}
	b := buf.Bytes()
	body, sum := b[:size], binary.LittleEndian.Uint32(b[size:])
	crc := crc32.Update(crc32.Checksum(head[:], castagnoli), castagnoli, body)
	if crc != sum {
		return nil, fmt.Errorf("%w: checksum mismatch", ErrCorrupt)
	}
	s, off, why := parseBody(body)
	if why != "" {
		return nil, fmt.Errorf("%w: %s at body byte %d", ErrCorrupt, why, off)
	}
	return s, nil
}

// bodyReader reads the snapshot body.
type bodyReader struct {
	b   []byte
	off int
	err string
}

func (r *bodyReader) fail(why string) {
	if r.err == "" {
		r.err = why
	}
}

func (r *bodyReader) uvarint() uint64 {
	if r.err != "" {
		return 0
	}
	v, n := binary.Uvarint(r.b[r.off:])
	if n <= 0 || n != uvarintLen(v) {
		r.fail("bad varint")
		return 0
	}
	r.off += n
	return v
}

func (r *bodyReader) varint() int64 {
	if r.err != "" {
		return 0
	}
	v, n := binary.Varint(r.b[r.off:])
	if n <= 0 || n != varintLen(v) {
		r.fail("bad varint")
		return 0
	}
	r.off += n
	return v
}

// count reads a number of items, each at least minSize bytes long.
func (r *bodyReader) count(minSize int) int {
	n := r.uvarint()
	if n > uint64((len(r.b)-r.off)/minSize) {
		r.fail("count exceeds the bytes left")
		return 0
	}
	return int(n)
}

// str reads a string, copied so that the State does not pin the buffer.
func (r *bodyReader) str() string {
	n := r.count(1)
	if r.err != "" {
		return ""
	}
	s := string(r.b[r.off : r.off+n])
	r.off += n
	return s
}

// id reads an id or group key, which is non-empty and sorts after prev.
func (r *bodyReader) id(prev string, first bool, what string) string {
	s := r.str()
	if r.err != "" {
		return ""
	}
	if s == "" {
		r.fail("empty " + what)
	} else if !first && prev >= s {
		r.fail(what + "s out of order")
	}
	return s
}

func (r *bodyReader) blob(c *blobChecker) string {
	s := r.str()
	if r.err == "" {
		if why := c.check(s); why != "" {
			r.fail("bad properties: " + why)
		}
	}
	return s
}

// parseBody decodes a body; on failure it returns why and near which byte.
func parseBody(b []byte) (*State, int, string) {
	r := &bodyReader{b: b}
	var c blobChecker
	s := &State{}
	// A project takes at least 3 bytes: id, no users, no group keys.
	n := r.count(3)
	if n > 0 {
		s.projects = make(map[int64]*project, n)
	}
	var prevProject int64
	for i := 0; i < n && r.err == ""; i++ {
		id := r.varint()
		if i > 0 && id <= prevProject {
			r.fail("projects out of order")
		}
		prevProject = id
		p := &project{}
		// A user takes at least 3 bytes: a 1-byte id and an empty blob.
		if nu := r.count(3); nu > 0 {
			p.users = make(map[string]string, nu)
			var prev string
			for j := 0; j < nu && r.err == ""; j++ {
				u := r.id(prev, j == 0, "distinct id")
				p.users[u] = r.blob(&c)
				prev = u
			}
		}
		// A group key takes at least 5 bytes: itself and one group.
		if nk := r.count(5); nk > 0 {
			p.groups = make(map[string]map[string]string, nk)
			var prevKey string
			for j := 0; j < nk && r.err == ""; j++ {
				k := r.id(prevKey, j == 0, "group key")
				prevKey = k
				ng := r.count(3)
				if ng == 0 {
					r.fail("group key without groups")
					break
				}
				ids := make(map[string]string, ng)
				var prev string
				for g := 0; g < ng && r.err == ""; g++ {
					gid := r.id(prev, g == 0, "group id")
					ids[gid] = r.blob(&c)
					prev = gid
				}
				p.groups[k] = ids
			}
		}
		if r.err == "" && p.empty() {
			r.fail("project without profiles")
		}
		s.projects[id] = p
	}
	if r.err == "" && r.off != len(b) {
		r.fail("trailing bytes in the body")
	}
	if r.err != "" {
		return nil, r.off, r.err
	}
	return s, 0, ""
}
