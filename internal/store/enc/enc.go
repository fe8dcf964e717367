// Package enc owns the integer column encodings of Veil's segment files.
//
// A block of at most 65536 integers is encoded as whichever of four
// encodings is smallest (ties go to the fastest to decode, FOR). The first
// byte is a tag: its high nibble names the element type (1 uint64, 2 uint32,
// 3 int64), so that a column is never decoded as the wrong type, and its low
// nibble the encoding. The count of values follows as a uvarint:
//
//	tag x1  constant    count value
//	tag x2  FOR         count block(count)
//	tag x3  run-length  count runs block(runs) block(runs)
//	tag x4  delta       count first zigzag(dmin) w packed(count-1)
//
// block(n) is "base w packed(n)": base a uvarint, w a byte holding the bit
// width, and packed(n) the n values minus base, w bits each, LSB-first in
// little-endian 64-bit words, padded to a whole word so that decoding reads
// whole words. The run-length blocks are the run values, then the run
// lengths. Delta packs each difference from the previous value minus dmin,
// the smallest difference: that costs no zigzag bit per value, so a sorted
// column packs in the width of its largest step less its smallest. Constant
// with count 0 is the empty block; the others are never empty.
//
// Uint32 blocks do their arithmetic modulo 2^32 and allow widths up to 32.
// Int64 blocks are the uint64 encodings of the values with the sign bit
// flipped, a mapping that keeps order, so min, max and differences are those
// of the int64 values themselves.
package enc

import (
	"errors"
	"fmt"
	"unsafe"
)

// ErrCorrupt is wrapped by every decoding error.
var ErrCorrupt = errors.New("enc: corrupt encoding")

//go:generate go run gen.go

// maxBlock is the most values one block holds; decoders refuse larger
// counts, which bounds what hostile input can make them allocate.
const maxBlock = 1 << 16

// Element types, the high nibble of the tag.
const (
	typeUint64 = 1
	typeUint32 = 2
	typeInt64  = 3
)

// Encodings, the low nibble of the tag.
const (
	encConst = 1
	encFOR   = 2
	encRLE   = 3
	encDelta = 4
)

// int64Bias maps int64 onto uint64 in order: adding it flips the sign bit.
const int64Bias = 1 << 63

// AppendUints encodes vals as one block and appends the encoding to dst.
// It panics if len(vals) > 65536: such a block could not be decoded.
func AppendUints(dst []byte, vals []uint64) []byte {
	return appendBlock(dst, vals, 0, typeUint64)
}

// DecodeUints decodes one block produced by AppendUints from the start of
// src into dst[:0], reusing its capacity, and returns the values and the
// number of bytes of src consumed. Malformed input returns an error wrapping
// ErrCorrupt.
func DecodeUints(dst []uint64, src []byte) ([]uint64, int, error) {
	return decodeBlock(dst, src, 0, typeUint64)
}

// AppendUint32s is AppendUints for 32-bit values such as codes and ordinals.
func AppendUint32s(dst []byte, vals []uint32) []byte {
	return appendBlock(dst, vals, 0, typeUint32)
}

// DecodeUint32s decodes one block produced by AppendUint32s.
func DecodeUint32s(dst []uint32, src []byte) ([]uint32, int, error) {
	return decodeBlock(dst, src, 0, typeUint32)
}

// AppendInt64s is AppendUints for signed values such as Unix-ms timestamps.
func AppendInt64s(dst []byte, vals []int64) []byte {
	return appendBlock(dst, asUint64s(vals), int64Bias, typeInt64)
}

// DecodeInt64s decodes one block produced by AppendInt64s.
func DecodeInt64s(dst []int64, src []byte) ([]int64, int, error) {
	u, n, err := decodeBlock(asUint64s(dst), src, int64Bias, typeInt64)
	return asInt64s(u), n, err
}

// asUint64s and asInt64s view one slice as the other type, so the signed
// codec is the unsigned one with a bias rather than a copy per block.
func asUint64s(s []int64) []uint64 {
	return unsafe.Slice((*uint64)(unsafe.Pointer(unsafe.SliceData(s))), cap(s))[:len(s)]
}

func asInt64s(s []uint64) []int64 {
	return unsafe.Slice((*int64)(unsafe.Pointer(unsafe.SliceData(s))), cap(s))[:len(s)]
}

func corrupt(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrCorrupt}, args...)...)
}
