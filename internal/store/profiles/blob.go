package profiles

import (
	"encoding/binary"
	"math"

	"github.com/veil-analytics/veil/internal/event"
)

// A profile's properties are kept as one immutable string, its blob:
//
//	blob  = uvarint(n) n×(str key, value)
//	value = tag payload
//	str   = uvarint(len) bytes
//
// with the tags below. Numbers are IEEE-754 bits, little-endian; lists and
// objects are a uvarint count and their items (objects: str key, value).
// One string per profile instead of a []event.Field keeps the heap small
// (one pointer-free object, a few bytes per property) and lets Apply copy
// properties it does not touch without decoding them. Blobs are written into
// snapshots as they are, so the tags are persisted: never renumber.
const (
	tagNull   = 0
	tagFalse  = 1
	tagTrue   = 2
	tagNumber = 3
	tagString = 4
	tagArray  = 5
	tagObject = 6
)

// maxNesting bounds how deeply a stored value nests (a scalar is 0, a list
// of scalars 1) so that decoding a snapshot cannot exhaust the stack. Apply
// ignores values that would nest deeper, so every State can be read back.
// The wire parser (32) and the log decoder (64) already stay well below it.
const maxNesting = 128

func appendStr(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

func appendNumber(dst []byte, f float64) []byte {
	dst = append(dst, tagNumber)
	return binary.LittleEndian.AppendUint64(dst, math.Float64bits(f))
}

// appendValue appends the encoding of v. Kinds event does not define are
// stored as null.
func appendValue(dst []byte, v event.Value) []byte {
	switch v.Kind {
	case event.Bool:
		if v.Bool {
			return append(dst, tagTrue)
		}
		return append(dst, tagFalse)
	case event.Number:
		return appendNumber(dst, v.Num)
	case event.String:
		dst = append(dst, tagString)
		return appendStr(dst, v.Str)
	case event.Array:
		dst = append(dst, tagArray)
		dst = binary.AppendUvarint(dst, uint64(len(v.Items)))
		for i := range v.Items {
			dst = appendValue(dst, v.Items[i])
		}
		return dst
	case event.Object:
		dst = append(dst, tagObject)
		dst = binary.AppendUvarint(dst, uint64(len(v.Fields)))
		for i := range v.Fields {
			dst = appendStr(dst, v.Fields[i].Key)
			dst = appendValue(dst, v.Fields[i].Value)
		}
		return dst
	}
	return append(dst, tagNull)
}

// tooDeep reports whether v nests more than limit levels. It recurses at
// most limit+1 deep whatever v is.
func tooDeep(v event.Value, limit int) bool {
	switch v.Kind {
	case event.Array:
		if limit == 0 {
			return true
		}
		for i := range v.Items {
			if tooDeep(v.Items[i], limit-1) {
				return true
			}
		}
	case event.Object:
		if limit == 0 {
			return true
		}
		for i := range v.Fields {
			if tooDeep(v.Fields[i].Value, limit-1) {
				return true
			}
		}
	}
	return false
}

// reader reads a blob. Errors are sticky: after the first one every read
// returns zero values, so callers check err once at the end.
type reader struct {
	s   string
	off int
	err string // why decoding failed; "" if it did not
}

func (r *reader) fail(why string) {
	if r.err == "" {
		r.err = why
	}
	r.off = len(r.s)
}

// uvarint reads a varint in its shortest form only, so that every accepted
// encoding is the one appendValue writes.
func (r *reader) uvarint() uint64 {
	var x uint64
	for i := 0; i < binary.MaxVarintLen64; i++ {
		if r.off >= len(r.s) {
			r.fail("truncated varint")
			return 0
		}
		c := r.s[r.off]
		r.off++
		if i == binary.MaxVarintLen64-1 && c > 1 {
			break
		}
		x |= uint64(c&0x7f) << (7 * i)
		if c < 0x80 {
			if c == 0 && i > 0 {
				r.fail("overlong varint")
				return 0
			}
			return x
		}
	}
	r.fail("varint overflows 64 bits")
	return 0
}

// count reads a number of items; each takes at least one byte, so a count
// beyond the bytes left is corrupt (and never allocated for).
func (r *reader) count() int {
	n := r.uvarint()
	if n > uint64(len(r.s)-r.off) {
		r.fail("count exceeds the bytes left")
		return 0
	}
	return int(n)
}

func (r *reader) str() string {
	n := r.count()
	s := r.s[r.off : r.off+n]
	r.off += n
	return s
}

func (r *reader) tag() byte {
	if r.off >= len(r.s) {
		r.fail("truncated value")
		return tagNull
	}
	c := r.s[r.off]
	r.off++
	return c
}

func (r *reader) float() float64 {
	if len(r.s)-r.off < 8 {
		r.fail("truncated number")
		return 0
	}
	s := r.s[r.off : r.off+8]
	r.off += 8
	return math.Float64frombits(uint64(s[0]) | uint64(s[1])<<8 | uint64(s[2])<<16 | uint64(s[3])<<24 |
		uint64(s[4])<<32 | uint64(s[5])<<40 | uint64(s[6])<<48 | uint64(s[7])<<56)
}

// skip advances over one value, checking it; depth is its nesting so far.
func (r *reader) skip(depth int) {
	switch r.tag() {
	case tagNull, tagFalse, tagTrue:
	case tagNumber:
		r.float()
	case tagString:
		r.str()
	case tagArray:
		if depth >= maxNesting {
			r.fail("value nested too deeply")
			return
		}
		for n := r.count(); n > 0 && r.err == ""; n-- {
			r.skip(depth + 1)
		}
	case tagObject:
		if depth >= maxNesting {
			r.fail("value nested too deeply")
			return
		}
		for n := r.count(); n > 0 && r.err == ""; n-- {
			r.str()
			r.skip(depth + 1)
		}
	default:
		r.fail("unknown value tag")
	}
}

// value decodes one value. Its strings share the blob's memory, which is
// safe because blobs are immutable strings.
func (r *reader) value(depth int) event.Value {
	switch r.tag() {
	case tagNull:
		return event.Value{}
	case tagFalse:
		return event.BoolValue(false)
	case tagTrue:
		return event.BoolValue(true)
	case tagNumber:
		return event.NumberValue(r.float())
	case tagString:
		return event.StringValue(r.str())
	case tagArray:
		v := event.Value{Kind: event.Array}
		if depth >= maxNesting {
			r.fail("value nested too deeply")
			return v
		}
		if n := r.count(); n > 0 {
			v.Items = make([]event.Value, n)
			for i := range v.Items {
				v.Items[i] = r.value(depth + 1)
			}
		}
		return v
	case tagObject:
		v := event.Value{Kind: event.Object}
		if depth >= maxNesting {
			r.fail("value nested too deeply")
			return v
		}
		if n := r.count(); n > 0 {
			v.Fields = make([]event.Field, n)
			for i := range v.Fields {
				v.Fields[i].Key = r.str()
				v.Fields[i].Value = r.value(depth + 1)
			}
		}
		return v
	}
	r.fail("unknown value tag")
	return event.Value{}
}

// decodeProps decodes a blob into a fresh slice; nil for no properties.
// Blobs in a State were written by encode or checked by checkBlob, so the
// error path only guards against bugs.
func decodeProps(blob string) []event.Field {
	r := reader{s: blob}
	n := r.count()
	if n == 0 {
		return nil
	}
	fs := make([]event.Field, n)
	for i := range fs {
		fs[i].Key = r.str()
		fs[i].Value = r.value(0)
		if r.err != "" {
			return fs[:i]
		}
	}
	return fs
}

// blobChecker validates blobs read from a snapshot; its scratch is reused
// across blobs.
type blobChecker struct {
	keys []string
	seen map[string]struct{}
}

// linearKeys is the number of properties up to which duplicates are found
// by comparing with every earlier key rather than through a map.
const linearKeys = 16

// check returns why blob is not a valid property blob, or "".
func (c *blobChecker) check(blob string) string {
	r := reader{s: blob}
	n := r.count()
	c.keys = c.keys[:0]
	clear(c.seen)
	for i := 0; i < n && r.err == ""; i++ {
		k := r.str()
		if n <= linearKeys {
			for _, prev := range c.keys {
				if prev == k {
					return "duplicate property"
				}
			}
			c.keys = append(c.keys, k)
		} else {
			if c.seen == nil {
				c.seen = make(map[string]struct{}, n)
			}
			if _, dup := c.seen[k]; dup {
				return "duplicate property"
			}
			c.seen[k] = struct{}{}
		}
		r.skip(0)
	}
	clear(c.keys)
	clear(c.seen) // drop references into the blob
	if r.err != "" {
		return r.err
	}
	if r.off != len(blob) {
		return "trailing bytes after the properties"
	}
	return ""
}
