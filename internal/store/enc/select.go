package enc

import (
	"encoding/binary"
	"math/bits"
)

// Selector finds the values of uint32 blocks that are in a set, keeping
// its buffers from block to block.
type Selector struct {
	// Idx are the positions of the selected values, ascending; Vals the
	// values.
	Idx  []uint16
	Vals []uint32

	all    []uint32
	fields []uint64
}

// selectMaxFields bounds the wanted values a packed block is searched for
// word by word; beyond, it is decoded.
const selectMaxFields = 8

// Select selects the values v of the uint32 block at the start of src
// with want[min(v, len(want)-1)] != 0 (want must not be empty), and
// returns the block's length. Frame-of-reference blocks of widths that
// divide 64 are searched in place, a word of several values at a time,
// so that a rare value costs little more than reading the block.
func (s *Selector) Select(src []byte, want []uint8) (int, error) {
	s.Idx, s.Vals = s.Idx[:0], s.Vals[:0]
	if len(src) > 0 && src[0] == typeUint32<<4|encFOR {
		r := reader{b: src, off: 1, maxVal: uint64(^uint32(0)), maxW: 32}
		c, err := r.uvarint("count", maxBlock)
		if err != nil {
			return 0, err
		}
		n := int(c)
		if n == 0 {
			return 0, corrupt("empty block with tag %#02x", src[0])
		}
		base, w, data, err := r.block("FOR", n)
		if err != nil {
			return 0, err
		}
		if w > 0 && w <= 8 && 64%w == 0 && s.wanted(uint32(base), w, want) {
			s.searchPacked(data, n, w, uint32(base))
			return n, nil
		}
	}
	all, _, err := DecodeUint32s(s.all, src)
	if err != nil {
		return 0, err
	}
	s.all = all
	last := uint32(len(want) - 1)
	for j, v := range all {
		if want[min(v, last)] != 0 {
			s.Idx = append(s.Idx, uint16(j))
			s.Vals = append(s.Vals, v)
		}
	}
	return len(all), nil
}

// wanted lists the wanted field values of a block of base and width w,
// each repeated across a word; false if there are too many.
func (s *Selector) wanted(base uint32, w uint, want []uint8) bool {
	s.fields = s.fields[:0]
	last := uint64(len(want) - 1)
	rep := ^uint64(0) / (1<<w - 1) // 1 in every field
	for f := range uint64(1) << w {
		if want[min(uint64(base)+f, last)] == 0 {
			continue
		}
		if len(s.fields) == selectMaxFields {
			return false
		}
		s.fields = append(s.fields, f*rep)
	}
	return true
}

// searchPacked selects from n packed values of width w (dividing 64): a
// field equals a wanted one where their XOR is zero, which a carry-free
// add finds in every field of a word at once.
func (s *Selector) searchPacked(data []byte, n int, w uint, base uint32) {
	if len(s.fields) == 0 {
		return
	}
	per := int(64 / w)
	rep := ^uint64(0) / (1<<w - 1)
	hi := rep << (w - 1) // the top bit of every field
	lo := ^hi            // the other bits
	fmask := uint64(1)<<w - 1
	words := (n + per - 1) / per
	// Four fields at a time, held in registers (a set of fewer repeats
	// its first).
	fs := s.fields
	for len(fs)%4 != 0 {
		fs = append(fs, fs[0])
	}
	s.fields = fs
	for j := range words {
		x := binary.LittleEndian.Uint64(data[j*8:])
		var z uint64
		for g := 0; g < len(fs); g += 4 {
			y0, y1, y2, y3 := x^fs[g], x^fs[g+1], x^fs[g+2], x^fs[g+3]
			z |= ^((y0&lo + lo) | y0) | ^((y1&lo + lo) | y1) | ^((y2&lo + lo) | y2) | ^((y3&lo + lo) | y3)
		}
		z &= hi
		if z == 0 {
			continue
		}
		if k := n - j*per; k < per { // the last word's padding
			z &= 1<<(uint(k)*w) - 1
		}
		for z != 0 {
			top := uint(bits.TrailingZeros64(z))
			start := top + 1 - w
			s.Idx = append(s.Idx, uint16(j*per+int(start/w)))
			s.Vals = append(s.Vals, uint32(x>>start&fmask)+base)
			z &= z - 1
		}
	}
}
