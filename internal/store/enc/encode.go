package enc

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/bits"
	"slices"
)

// unsigned is the element type the codec works in; int64 is uint64 plus a
// bias.
type unsigned interface{ uint32 | uint64 }

// stats is what one pass over a block learns: enough for the exact size of
// the FOR and delta encodings and a lower bound on the run-length one.
type stats[T unsigned] struct {
	first, min, max T
	// dmin and dmax are the extreme differences with the sign bit flipped,
	// so that unsigned order is signed order and dmax-dmin is the range.
	dmin, dmax T
	runs       int
}

func scan[T unsigned](vals []T, bias T) stats[T] {
	// Locals, not fields of the result, so that they live in registers;
	// the run lengths are left to a second pass, run only when run-length
	// encoding could win, because their state spilled registers here.
	sign := ^(^T(0) >> 1)
	first := vals[0] + bias
	lo, hi, prev := first, first, first
	dlo, dhi := ^T(0), T(0)
	runs := 1
	for _, v := range vals[1:] {
		v += bias
		lo, hi = min(lo, v), max(hi, v)
		d := (v - prev) ^ sign
		dlo, dhi = min(dlo, d), max(dhi, d)
		// Branch-free (SETNE): with few distinct values a branch here
		// mispredicts half the time.
		inc := 0
		if v != prev {
			inc = 1
		}
		runs += inc
		prev = v
	}
	return stats[T]{first: first, min: lo, max: hi, dmin: dlo, dmax: dhi, runs: runs}
}

// runLengths returns the shortest and longest run. It is branch-free, with
// masks, for columns of a few values in random order: a branch on the run
// boundary would mispredict half the time.
func runLengths[T unsigned](vals []T) (lo, hi int) {
	lo, start := len(vals), 0
	for i := 1; i < len(vals); i++ {
		same := 0
		if vals[i] == vals[i-1] {
			same = 1 // compiles to SETEQ
		}
		inRun := -same // all ones inside a run, where l is no run length
		l := i - start
		lo = min(lo, l|inRun&math.MaxInt)
		hi = max(hi, l&^inRun)
		start = start&inRun | i&^inRun
	}
	l := len(vals) - start
	return min(lo, l), max(hi, l)
}

func appendBlock[T unsigned](dst []byte, vals []T, bias T, typ byte) []byte {
	n := len(vals)
	if n > maxBlock {
		panic(fmt.Sprintf("enc: %d values in one block, at most %d", n, maxBlock))
	}
	if n == 0 {
		return append(dst, typ<<4|encConst, 0, 0)
	}
	s := scan(vals, bias)
	if s.min == s.max {
		dst = append(dst, typ<<4|encConst)
		dst = binary.AppendUvarint(dst, uint64(n))
		return binary.AppendUvarint(dst, uint64(s.min))
	}

	head := 1 + uvarintLen(uint64(n))
	wFOR := width(s.max - s.min)
	best, size := encFOR, head+blockLen(uint64(s.min), wFOR, n)

	sign := ^(^T(0) >> 1)
	dlo := s.dmin ^ sign
	zlo := zigzag(dlo)
	wDelta := width(s.dmax - s.dmin)
	if sz := head + uvarintLen(uint64(s.first)) + blockLen(zlo, wDelta, n-1); sz < size {
		best, size = encDelta, sz
	}

	// Run lengths take at least two bytes (base and a zero width).
	var lmin int
	var wLen uint
	if sz := head + uvarintLen(uint64(s.runs)) + blockLen(uint64(s.min), wFOR, s.runs) + 2; sz < size {
		var lmax int
		lmin, lmax = runLengths(vals) // bias does not change where runs end
		wLen = width(uint64(lmax - lmin))
		if sz += blockLen(uint64(lmin), wLen, s.runs) - 2; sz < size {
			best, size = encRLE, sz
		}
	}

	dst = slices.Grow(dst, size)
	dst = append(dst, typ<<4|byte(best))
	dst = binary.AppendUvarint(dst, uint64(n))
	switch best {
	case encFOR:
		var p packer
		dst = p.reserve(dst, uint64(s.min), wFOR, n)
		for len(vals) > 0 {
			m := min(64, len(vals))
			for i, v := range vals[:m] {
				p.buf[i] = uint64(v + bias - s.min)
			}
			p.n = m
			p.flush()
			vals = vals[m:]
		}
	case encDelta:
		dst = binary.AppendUvarint(dst, uint64(s.first))
		var p packer
		dst = p.reserve(dst, zlo, wDelta, n-1)
		prev := s.first
		for vals = vals[1:]; len(vals) > 0; {
			m := min(64, len(vals))
			for i, v := range vals[:m] {
				v += bias
				p.buf[i] = uint64(v - prev - dlo)
				prev = v
			}
			p.n = m
			p.flush()
			vals = vals[m:]
		}
	case encRLE:
		dst = binary.AppendUvarint(dst, uint64(s.runs))
		var pv, pl packer
		dst = pv.reserve(dst, uint64(s.min), wFOR, s.runs)
		vend := len(dst)
		dst = pl.reserve(dst, uint64(lmin), wLen, s.runs)
		pv.out = dst[vend-len(pv.out) : vend] // in case the second reserve moved dst
		prev, start := s.first, 0
		for i := 1; i < n; i++ {
			if v := vals[i] + bias; v != prev {
				pv.add(uint64(prev - s.min))
				pl.add(uint64(i - start - lmin))
				prev, start = v, i
			}
		}
		pv.add(uint64(prev - s.min))
		pl.add(uint64(n - start - lmin))
		pv.flush()
		pl.flush()
	}
	return dst
}

// width is the bit width of x, the number of bits a value of range x packs in.
func width[T unsigned](x T) uint { return uint(bits.Len64(uint64(x))) }

// zigzag maps a difference, signed in T's width, to small unsigned numbers.
func zigzag[T unsigned](d T) uint64 {
	shift := 64 - width(^T(0))
	s := int64(uint64(d)<<shift) >> shift // sign-extend from T's width
	return uint64(s<<1) ^ uint64(s>>63)
}

func uvarintLen(x uint64) int { return (bits.Len64(x|1) + 6) / 7 }

// packedLen is the size of n packed values of width w: whole 64-bit words.
func packedLen(n int, w uint) int { return (n*int(w) + 63) / 64 * 8 }

func blockLen(base uint64, w uint, n int) int { return uvarintLen(base) + 1 + packedLen(n, w) }

// packer packs values into a reserved area, a group of 64 at a time.
type packer struct {
	out []byte // what is left of the reserved area
	w   uint
	n   int // values in buf
	buf [64]uint64
}

// reserve appends base and w, then the area for n packed values, which the
// packer will fill.
func (p *packer) reserve(dst []byte, base uint64, w uint, n int) []byte {
	dst = binary.AppendUvarint(dst, base)
	dst = append(dst, byte(w))
	start := len(dst)
	dst = slices.Grow(dst, packedLen(n, w))[:start+packedLen(n, w)]
	p.out, p.w = dst[start:], w
	return dst
}

func (p *packer) add(x uint64) {
	p.buf[p.n] = x
	p.n++
	if p.n == 64 {
		p.flush()
	}
}

// flush packs buf[:n]. Only the last group may be short; the zeros after it
// pad its last word.
func (p *packer) flush() {
	if p.n == 64 {
		packGroup(&p.buf, p.out, p.w)
		p.out = p.out[8*p.w:]
	} else if p.n > 0 {
		clear(p.buf[p.n:])
		var tmp [512]byte
		packGroup(&p.buf, tmp[:], p.w)
		p.out = p.out[copy(p.out, tmp[:]):]
	}
	p.n = 0
}

// packGroup packs 64 values of width w into the first 8*w bytes of out.
func packGroup(in *[64]uint64, out []byte, w uint) {
	if w == 0 {
		return
	}
	out = out[:8*w]
	var acc uint64 // bits not yet written
	var nb uint    // how many; below 64
	for _, x := range in {
		acc |= x << (nb & 63)
		nb += w
		if nb >= 64 {
			binary.LittleEndian.PutUint64(out, acc)
			out = out[8:]
			nb -= 64
			// The bits of x that did not fit: shift by w-nb, in 1..64.
			acc = x >> 1 >> ((w - nb - 1) & 63)
		}
	}
}
