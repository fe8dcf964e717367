package enc

import (
	"encoding/binary"
	"slices"
)

// decodeBlock decodes one block of element type typ, adding bias to every
// value.
func decodeBlock[T unsigned](dst []T, src []byte, bias T, typ byte) ([]T, int, error) {
	dst = dst[:0]
	if len(src) == 0 {
		return dst, 0, corrupt("empty input")
	}
	tag := src[0]
	if tag>>4 != typ {
		return dst, 0, corrupt("tag %#02x is not a %s block", tag, typeNames[typ])
	}
	r := reader{b: src, off: 1, maxVal: uint64(^T(0)), maxW: width(^T(0))}
	c, err := r.uvarint("count", maxBlock)
	if err != nil {
		return dst, 0, err
	}
	n := int(c)
	if n == 0 && tag&15 != encConst {
		return dst, 0, corrupt("empty block with tag %#02x", tag)
	}
	switch tag & 15 {
	case encConst:
		v, err := r.uvarint("value", r.maxVal)
		if err != nil {
			return dst, 0, err
		}
		dst = grow(dst, n)
		fill(dst, T(v)+bias)

	case encFOR:
		base, w, data, err := r.block("FOR", n)
		if err != nil {
			return dst, 0, err
		}
		dst = grow(dst, n)
		unpackAll(dst, data, w, T(base)+bias)

	case encDelta:
		first, err := r.uvarint("first value", r.maxVal)
		if err != nil {
			return dst, 0, err
		}
		z, w, data, err := r.block("delta", n-1)
		if err != nil {
			return dst, 0, err
		}
		dlo := T(int64(z>>1) ^ -int64(z&1)) // wraps to T's width
		dst = grow(dst, n)
		dst[0] = T(first) + bias
		unpackAll(dst[1:], data, w, dlo)
		v, d := dst[0], dst[1:]
		for i := range d {
			v += d[i]
			d[i] = v
		}

	case encRLE:
		runs, err := r.uvarint("run count", c)
		if err != nil {
			return dst, 0, err
		}
		vbase, vw, vdata, err := r.block("run values", int(runs))
		if err != nil {
			return dst, 0, err
		}
		lbase, lw, ldata, err := r.block("run lengths", int(runs))
		if err != nil {
			return dst, 0, err
		}
		dst = grow(dst, n)
		if err := expandRuns(dst, int(runs), vdata, vw, T(vbase)+bias, ldata, lw, T(lbase)); err != nil {
			return dst[:0], 0, err
		}

	default:
		return dst, 0, corrupt("unknown encoding in tag %#02x", tag)
	}
	return dst, r.off, nil
}

var typeNames = [...]string{typeUint64: "uint64", typeUint32: "uint32", typeInt64: "int64"}

// reader parses untrusted input; every read checks bounds and range.
type reader struct {
	b      []byte
	off    int
	maxVal uint64 // the largest value of the element type
	maxW   uint   // the largest bit width of the element type
}

func (r *reader) uvarint(what string, max uint64) (uint64, error) {
	x, n := binary.Uvarint(r.b[r.off:])
	if n <= 0 {
		return 0, corrupt("%s at byte %d: truncated or overlong uvarint", what, r.off)
	}
	if x > max {
		return 0, corrupt("%s %d at byte %d exceeds %d", what, x, r.off, max)
	}
	r.off += n
	return x, nil
}

// block reads "base w packed(n)" and returns the packed bytes, whose length
// it has checked.
func (r *reader) block(what string, n int) (base uint64, w uint, data []byte, err error) {
	base, n1 := binary.Uvarint(r.b[r.off:])
	if n1 <= 0 || base > r.maxVal {
		return 0, 0, nil, corrupt("%s base at byte %d: truncated, overlong or out of range", what, r.off)
	}
	r.off += n1
	if r.off >= len(r.b) {
		return 0, 0, nil, corrupt("%s width: truncated at byte %d", what, r.off)
	}
	if w = uint(r.b[r.off]); w > r.maxW {
		return 0, 0, nil, corrupt("%s width %d at byte %d exceeds %d", what, w, r.off, r.maxW)
	}
	r.off++
	size := packedLen(n, w)
	if len(r.b)-r.off < size {
		return 0, 0, nil, corrupt("%s: %d packed bytes at byte %d, %d left", what, size, r.off, len(r.b)-r.off)
	}
	data = r.b[r.off : r.off+size]
	r.off += size
	return base, w, data, nil
}

// grow returns s resliced to n elements, reusing its capacity.
func grow[T any](s []T, n int) []T { return slices.Grow(s[:0], n)[:n] }

// fill sets every element to v by doubling copies, which run as memmove.
func fill[T any](s []T, v T) {
	if len(s) == 0 {
		return
	}
	s[0] = v
	for i := 1; i < len(s); i *= 2 {
		copy(s[i:], s[:i])
	}
}

// unpackAll unpacks len(dst) values of width w from data (packedLen bytes):
// whole groups of 64 straight into dst, the short last group via buffers
// because its words are fewer than a group reads.
func unpackAll[T unsigned](dst []T, data []byte, w uint, base T) {
	step := 8 * int(w)
	for len(dst) >= 64 {
		unpackGroup((*[64]T)(dst), data, w, base)
		dst, data = dst[64:], data[step:]
	}
	if len(dst) > 0 {
		var in [512]byte
		var out [64]T
		copy(in[:], data)
		unpackGroup(&out, in[:], w, base)
		copy(dst, out[:])
	}
}

// unpackGroup calls the generated unpacker of T's width.
func unpackGroup[T unsigned](out *[64]T, in []byte, w uint, base T) {
	switch o := any(out).(type) {
	case *[64]uint64:
		unpack64(o, in, w, uint64(base))
	case *[64]uint32:
		unpack32(o, in, w, uint32(base))
	}
}

// expandRuns writes the runs into dst, 64 runs at a time through stack
// buffers so that decoding allocates nothing beyond dst.
func expandRuns[T unsigned](dst []T, runs int, vdata []byte, vw uint, vbase T, ldata []byte, lw uint, lbase T) error {
	var vals, lens [64]T
	pos := 0
	for c := 0; c < runs; c += 64 {
		m := min(64, runs-c)
		unpackAll(vals[:m], vdata[c/64*8*int(vw):], vw, vbase)
		unpackAll(lens[:m], ldata[c/64*8*int(lw):], lw, lbase)
		for r, l := range lens[:m] {
			if l == 0 || uint64(l) > uint64(len(dst)-pos) {
				return corrupt("run %d of length %d at value %d of %d", c+r, uint64(l), pos, len(dst))
			}
			run, v := dst[pos:pos+int(l)], vals[r]
			for i := range run {
				run[i] = v
			}
			pos += int(l)
		}
	}
	if pos != len(dst) {
		return corrupt("runs cover %d of %d values", pos, len(dst))
	}
	return nil
}

// Int64Block reads single values of an int64 block. Frame-of-reference
// blocks are read in place, a value at a time, so that a scan selecting
// few rows of a block does not decode the rest; the other encodings are
// decoded whole on Reset.
type Int64Block struct {
	n    int
	base uint64 // with the int64 bias
	w    uint
	mask uint64
	data []byte // the packed values
	buf  []byte // Reset's copy of them
	all  []int64
	lazy bool
}

// Reset loads the int64 block at the start of src into b, reusing b's
// buffers.
func (b *Int64Block) Reset(src []byte) error { return b.reset(src, true) }

// ResetInPlace is Reset for a src that stays unchanged while b is read
// (a memory-mapped file): a frame-of-reference block is read from src
// itself, not from a copy.
func (b *Int64Block) ResetInPlace(src []byte) error { return b.reset(src, false) }

func (b *Int64Block) reset(src []byte, copied bool) error {
	b.lazy = false
	if len(src) > 0 && src[0] == typeInt64<<4|encFOR {
		r := reader{b: src, off: 1, maxVal: ^uint64(0), maxW: 64}
		c, err := r.uvarint("count", maxBlock)
		if err != nil {
			return err
		}
		base, w, data, err := r.block("FOR", int(c))
		if err != nil {
			return err
		}
		if copied { // the caller's buffer is typically reused for the next read
			b.buf = append(b.buf[:0], data...)
			data = b.buf
		}
		b.data = data
		b.n, b.base, b.w, b.lazy = int(c), base+int64Bias, w, true
		b.mask = ^uint64(0)
		if w < 64 {
			b.mask = 1<<w - 1
		}
		return nil
	}
	all, _, err := DecodeInt64s(b.all, src)
	if err != nil {
		return err
	}
	b.all, b.n = all, len(all)
	return nil
}

// Len is the number of values.
func (b *Int64Block) Len() int { return b.n }

// At returns value i (0 <= i < Len()).
func (b *Int64Block) At(i int) int64 {
	if !b.lazy {
		return b.all[i]
	}
	if b.w == 0 {
		return int64(b.base)
	}
	bit := uint(i) * b.w
	word := bit / 64 * 8
	shift := bit % 64
	v := binary.LittleEndian.Uint64(b.data[word:]) >> shift
	if shift+b.w > 64 {
		v |= binary.LittleEndian.Uint64(b.data[word+8:]) << (64 - shift)
	}
	return int64(v&b.mask + b.base)
}
