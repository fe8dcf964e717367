package enc

import (
	"errors"
	"math/rand/v2"
	"slices"
	"testing"
)

// selectRef is Select by decoding.
func selectRef(src []byte, want []uint8) (idx []uint16, vals []uint32, n int, err error) {
	all, _, err := DecodeUint32s(nil, src)
	if err != nil {
		return nil, nil, 0, err
	}
	last := uint32(len(want) - 1)
	for j, v := range all {
		if want[min(v, last)] != 0 {
			idx = append(idx, uint16(j))
			vals = append(vals, v)
		}
	}
	return idx, vals, len(all), nil
}

func checkSelect(t *testing.T, s *Selector, src []byte, want []uint8) {
	t.Helper()
	idx, vals, n, err := selectRef(src, want)
	got, gerr := s.Select(src, want)
	if (err == nil) != (gerr == nil) {
		t.Fatalf("Select error %v, decoding error %v", gerr, err)
	}
	if err != nil {
		if !errors.Is(gerr, ErrCorrupt) {
			t.Fatalf("error does not wrap ErrCorrupt: %v", gerr)
		}
		return
	}
	if got != n || !slices.Equal(s.Idx, idx) || !slices.Equal(s.Vals, vals) {
		t.Fatalf("Select of %d values: got n=%d idx %v vals %v\nwant n=%d idx %v vals %v", n, got, s.Idx, s.Vals, n, idx, vals)
	}
}

// TestSelect compares Select with decoding and filtering on blocks of
// every encoding, widths 0 to 32, lengths around word and group edges,
// and wanted sets from none to all.
func TestSelect(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	var s Selector
	for trial := range 3000 {
		n := 1 + r.IntN(300)
		if trial%10 == 0 {
			n = 8192
		}
		w := uint(r.IntN(13))
		if trial%7 == 0 {
			w = uint(r.IntN(33))
		}
		base := uint32(r.IntN(40))
		vals := make([]uint32, n)
		for i := range vals {
			switch trial % 4 {
			case 0: // runs
				if i > 0 && r.IntN(8) != 0 {
					vals[i] = vals[i-1]
					continue
				}
			case 1: // sorted
				if i > 0 {
					vals[i] = vals[i-1] + uint32(r.IntN(3))
					continue
				}
			}
			vals[i] = base + uint32(r.Uint64N(1<<w))
		}
		src := AppendUint32s(nil, vals)
		want := make([]uint8, 1+r.IntN(80))
		k := r.IntN(12)
		for range k {
			want[r.IntN(len(want))] = 1
		}
		if r.IntN(10) == 0 {
			want[len(want)-1] = 1 // every value past the table
		}
		checkSelect(t, &s, src, want)
	}
}

// FuzzSelect checks Select never panics on untrusted bytes and agrees
// with decoding.
func FuzzSelect(f *testing.F) {
	for _, s := range fuzzSeeds(c32) {
		f.Add(s, []byte{0, 1, 0, 1, 1})
	}
	f.Fuzz(func(t *testing.T, src, want []byte) {
		if len(want) == 0 {
			want = []byte{1}
		}
		var s Selector
		checkSelect(t, &s, src, want)
	})
}

func BenchmarkSelect(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 1))
	vals := make([]uint32, 8192)
	for i := range vals {
		vals[i] = uint32(r.IntN(16))
	}
	src := AppendUint32s(nil, vals)
	want := make([]uint8, 17)
	want[3], want[9] = 1, 1
	var s Selector
	b.Run("packed", func(b *testing.B) {
		b.SetBytes(int64(len(vals)))
		for b.Loop() {
			s.Select(src, want)
		}
	})
	b.Run("decode", func(b *testing.B) {
		b.SetBytes(int64(len(vals)))
		var all []uint32
		var idx []uint16
		for b.Loop() {
			all, _, _ = DecodeUint32s(all, src)
			idx = idx[:0]
			for j, v := range all {
				if want[min(v, 16)] != 0 {
					idx = append(idx, uint16(j))
				}
			}
		}
	})
}

// BenchmarkSelectRare is the funnel's case: 4 wanted events of 16, 1.5%
// of the rows.
func BenchmarkSelectRare(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 1))
	vals := make([]uint32, 8192)
	for i := range vals {
		vals[i] = uint32(4 + r.IntN(12))
		if r.IntN(1000) < 15 {
			vals[i] = uint32(r.IntN(4))
		}
	}
	src := AppendUint32s(nil, vals)
	want := make([]uint8, 17)
	want[0], want[1], want[2], want[3] = 1, 1, 1, 1
	var s Selector
	b.SetBytes(int64(len(vals)))
	for b.Loop() {
		s.Select(src, want)
	}
}
