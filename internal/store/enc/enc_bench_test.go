package enc

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

const benchN = 8192

// benchData returns benchN values of the given shape and the encoding the
// encoder is expected to pick for them.
func benchData(shape string, w uint) ([]uint64, byte) {
	r := rand.New(rand.NewPCG(uint64(w), 99))
	vals := make([]uint64, benchN)
	switch shape {
	case "for":
		for i := range vals {
			vals[i] = 1_000_000 + r.Uint64()>>(64-w)
		}
		vals[0] = 1_000_000 + 1<<w - 1 // make the width exact
		return vals, encFOR
	case "delta": // sorted Unix-ms timestamps, a few events per second
		t := uint64(1_700_000_000_000)
		for i := range vals {
			t += r.Uint64N(500)
			vals[i] = t
		}
		return vals, encDelta
	case "rle": // a per-user property, constant over ~100 rows
		for i := range vals {
			if i%100 == 0 {
				vals[i] = r.Uint64N(1 << 20)
			} else {
				vals[i] = vals[i-1]
			}
		}
		return vals, encRLE
	}
	panic(shape)
}

func perValue(b *testing.B, n int) {
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/value")
}

var benchCases = []struct {
	shape string
	w     uint
}{{"for", 1}, {"for", 8}, {"for", 13}, {"for", 20}, {"for", 27}, {"for", 32}, {"for", 45}, {"for", 64}, {"delta", 0}, {"rle", 0}}

func benchName(shape string, w uint) string {
	if shape == "for" {
		return fmt.Sprintf("for/w=%d", w)
	}
	return shape
}

func BenchmarkDecodeUints(b *testing.B) {
	for _, bc := range benchCases {
		b.Run(benchName(bc.shape, bc.w), func(b *testing.B) {
			vals, want := benchData(bc.shape, bc.w)
			src := AppendUints(nil, vals)
			if src[0]&15 != want {
				b.Fatalf("tag %#x, want encoding %d", src[0], want)
			}
			dst := make([]uint64, 0, benchN)
			b.SetBytes(8 * benchN)
			for b.Loop() {
				dst, _, _ = DecodeUints(dst, src)
			}
			perValue(b, benchN)
		})
	}
}

func BenchmarkDecodeUint32s(b *testing.B) {
	for _, bc := range benchCases {
		if bc.w > 32 || bc.shape == "delta" {
			continue
		}
		b.Run(benchName(bc.shape, bc.w), func(b *testing.B) {
			vals64, want := benchData(bc.shape, bc.w)
			vals := make([]uint32, len(vals64))
			for i, v := range vals64 {
				vals[i] = uint32(v - 1_000_000*uint64(min(1, bc.w)))
			}
			src := AppendUint32s(nil, vals)
			if src[0]&15 != want {
				b.Fatalf("tag %#x, want encoding %d", src[0], want)
			}
			dst := make([]uint32, 0, benchN)
			b.SetBytes(4 * benchN)
			for b.Loop() {
				dst, _, _ = DecodeUint32s(dst, src)
			}
			perValue(b, benchN)
		})
	}
}

func BenchmarkDecodeInt64s(b *testing.B) {
	vals64, _ := benchData("delta", 0)
	vals := make([]int64, len(vals64))
	for i, v := range vals64 {
		vals[i] = int64(v)
	}
	src := AppendInt64s(nil, vals)
	if src[0]&15 != encDelta {
		b.Fatalf("tag %#x", src[0])
	}
	dst := make([]int64, 0, benchN)
	b.SetBytes(8 * benchN)
	for b.Loop() {
		dst, _, _ = DecodeInt64s(dst, src)
	}
	perValue(b, benchN)
}

func BenchmarkAppendUints(b *testing.B) {
	for _, bc := range benchCases {
		b.Run(benchName(bc.shape, bc.w), func(b *testing.B) {
			vals, _ := benchData(bc.shape, bc.w)
			dst := AppendUints(nil, vals)
			b.SetBytes(8 * benchN)
			for b.Loop() {
				dst = AppendUints(dst[:0], vals)
			}
			perValue(b, benchN)
		})
	}
}

func BenchmarkAppendUint32s(b *testing.B) {
	vals64, _ := benchData("for", 20)
	vals := make([]uint32, len(vals64))
	for i, v := range vals64 {
		vals[i] = uint32(v)
	}
	dst := AppendUint32s(nil, vals)
	b.SetBytes(4 * benchN)
	for b.Loop() {
		dst = AppendUint32s(dst[:0], vals)
	}
	perValue(b, benchN)
}
