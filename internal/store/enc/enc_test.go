package enc

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// codec bundles one element type's functions so every test runs on all three.
type codec[T comparable] struct {
	name   string
	typ    byte
	append func([]byte, []T) []byte
	decode func([]T, []byte) ([]T, int, error)
	from   func(uint64) T // test data is generated as uint64
}

var (
	c64 = codec[uint64]{"uint64", typeUint64, AppendUints, DecodeUints, func(x uint64) uint64 { return x }}
	c32 = codec[uint32]{"uint32", typeUint32, AppendUint32s, DecodeUint32s, func(x uint64) uint32 { return uint32(x) }}
	ci  = codec[int64]{"int64", typeInt64, AppendInt64s, DecodeInt64s, func(x uint64) int64 { return int64(x) }}
)

// roundTrip encodes vals, checks the encoding decodes to vals from a
// misaligned offset with trailing bytes, and returns the encoding.
func roundTrip[T comparable](t *testing.T, c codec[T], vals []T) []byte {
	t.Helper()
	prefix := []byte{0xEE}
	b := c.append(prefix, vals)
	if !bytes.Equal(b[:1], prefix) {
		t.Fatalf("append overwrote dst")
	}
	enc := b[1:]
	// Encoding over stale bytes gives the same result: every byte is written.
	dirty := bytes.Repeat([]byte{0xA5}, len(b)+100)
	if again := c.append(dirty[:1], vals); !bytes.Equal(again[1:], enc) {
		t.Fatalf("encoding into a dirty buffer differs")
	}
	if got := enc[0] >> 4; got != c.typ {
		t.Fatalf("type nibble %d, want %d", got, c.typ)
	}
	src := append(slices.Clip(enc), 0xFF, 0x00, 0x13) // trailing bytes are not consumed
	dst := make([]T, 3, 7)
	got, n, err := c.decode(dst, src)
	if err != nil {
		t.Fatalf("%s decode of %d values (tag %#x): %v", c.name, len(vals), enc[0], err)
	}
	if n != len(enc) {
		t.Fatalf("consumed %d bytes, encoding is %d", n, len(enc))
	}
	if !slices.Equal(got, vals) {
		t.Fatalf("%s round trip (tag %#x, %d values) differs; first diff at %d", c.name, enc[0], len(vals), firstDiff(got, vals))
	}
	if len(vals) <= cap(dst) && &got[:1][0] != &dst[:1][0] {
		t.Fatalf("decode did not reuse dst")
	}
	return enc
}

func firstDiff[T comparable](a, b []T) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

func conv[T comparable](c codec[T], xs []uint64) []T {
	out := make([]T, len(xs))
	for i, x := range xs {
		out[i] = c.from(x)
	}
	return out
}

func seq(n int, f func(i int) uint64) []uint64 {
	out := make([]uint64, n)
	for i := range out {
		out[i] = f(i)
	}
	return out
}

// edgeCases are shared by all element types (values are truncated to the
// type for uint32, reinterpreted for int64).
var edgeCases = []struct {
	name string
	vals []uint64
}{
	{"empty", nil},
	{"one", []uint64{42}},
	{"one zero", []uint64{0}},
	{"one max", []uint64{math.MaxUint64}},
	{"all equal", seq(1000, func(int) uint64 { return 7 })},
	{"all max", seq(100, func(int) uint64 { return math.MaxUint64 })},
	{"two", []uint64{1, 2}},
	{"0 and max", []uint64{0, math.MaxUint64}},
	{"max and 0", []uint64{math.MaxUint64, 0, math.MaxUint64}},
	{"width 64", seq(130, func(i int) uint64 { return uint64(i) * 0x9E3779B97F4A7C15 })},
	{"width 32", seq(130, func(i int) uint64 { return uint64(i) * 0x9E3779B9 & math.MaxUint32 })},
	{"near max", seq(200, func(i int) uint64 { return math.MaxUint64 - uint64(i%5) })},
	{"int64 extremes", []uint64{1 << 63, 1<<63 - 1, 0, 1 << 63}},
	{"negative", seq(300, func(i int) uint64 { return uint64(-int64(i) * 1000) })},
	{"across zero", seq(300, func(i int) uint64 { return uint64(int64(i) - 150) })},
	{"long runs", seq(8192, func(i int) uint64 { return uint64(i/100) * 7919 })},
	{"runs of max", seq(500, func(i int) uint64 { return math.MaxUint64 - uint64(i/100) })},
	{"alternating", seq(1001, func(i int) uint64 { return uint64(i%2) * 12345 })},
	{"alternating extremes", seq(129, func(i int) uint64 { return -uint64(i % 2) })},
	{"increasing", seq(8192, func(i int) uint64 { return 1_700_000_000_000 + uint64(i)*3 })},
	{"decreasing", seq(8192, func(i int) uint64 { return 1_700_000_000_000 - uint64(i)*5 })},
	{"wrapping deltas", seq(300, func(i int) uint64 { return uint64(i) * (1<<63 + 1) })},
	{"full block", seq(maxBlock, func(i int) uint64 { return uint64(i*i) % 1000 })},
	{"63", seq(63, func(i int) uint64 { return uint64(i) * 977 })},
	{"64", seq(64, func(i int) uint64 { return uint64(i) * 977 })},
	{"65", seq(65, func(i int) uint64 { return uint64(i) * 977 })},
}

func TestEdgeCases(t *testing.T) {
	for _, tc := range edgeCases {
		t.Run(tc.name, func(t *testing.T) {
			roundTrip(t, c64, conv(c64, tc.vals))
			roundTrip(t, c32, conv(c32, tc.vals))
			roundTrip(t, ci, conv(ci, tc.vals))
		})
	}
}

// TestWidths round-trips FOR blocks of every width with whole and partial
// groups, exercising every unrolled unpacker.
func TestWidths(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{1, 5, 64, 200, 8192 + 37} {
		for w := 0; w <= 64; w++ {
			base := r.Uint64() >> 1
			vals := seq(n, func(i int) uint64 {
				v := r.Uint64() >> (64 - w) & (1<<w - 1)
				if i == 0 && w > 0 {
					v = 1<<w - 1 // make the width exact
				}
				return base + v
			})
			roundTrip(t, c64, vals)
			if w <= 32 {
				roundTrip(t, c32, conv(c32, seq(n, func(i int) uint64 { return vals[i] - base })))
			}
			roundTrip(t, ci, conv(ci, vals))
		}
	}
}

// gens produce data of various shapes for the random round trips.
var gens = []struct {
	name string
	f    func(r *rand.Rand, n int) []uint64
}{
	{"uniform", func(r *rand.Rand, n int) []uint64 { return seq(n, func(int) uint64 { return r.Uint64() }) }},
	{"random width", func(r *rand.Rand, n int) []uint64 {
		w, base := r.UintN(65), r.Uint64()
		return seq(n, func(int) uint64 { return base + r.Uint64()>>(64-w)&(1<<w-1) })
	}},
	{"runs", func(r *rand.Rand, n int) []uint64 {
		var out []uint64
		for len(out) < n {
			v, l := r.Uint64()>>r.UintN(64), 1+r.IntN(300)
			for range min(l, n-len(out)) {
				out = append(out, v)
			}
		}
		return out
	}},
	{"walk", func(r *rand.Rand, n int) []uint64 {
		v, step := r.Uint64(), r.Int64N(1<<r.UintN(40))
		return seq(n, func(int) uint64 { v += uint64(step + r.Int64N(1<<r.UintN(20)) - 1<<10); return v })
	}},
	{"few values", func(r *rand.Rand, n int) []uint64 {
		k := []uint64{r.Uint64(), r.Uint64(), 0}
		return seq(n, func(int) uint64 { return k[r.IntN(3)] })
	}},
}

func TestRandomRoundTrips(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 11))
	for _, g := range gens {
		t.Run(g.name, func(t *testing.T) {
			for range 200 {
				n := r.IntN(3000)
				if r.IntN(20) == 0 {
					n = r.IntN(maxBlock + 1)
				}
				vals := g.f(r, n)
				enc := roundTrip(t, c64, vals)
				if e := enc[0] & 15; e != encConst {
					best := len(enc)
					for _, size := range altSizes(vals) {
						best = min(best, size)
					}
					if len(enc) != best {
						t.Fatalf("chose encoding %d of %d bytes, smallest is %d: %v", e, len(enc), best, altSizes(vals))
					}
				}
				roundTrip(t, c32, conv(c32, vals))
				roundTrip(t, ci, conv(ci, vals))
			}
		})
	}
}

// TestChosen checks each encoding is picked for the data it suits, and
// that the pick is at least as small as any other encoding would be.
func TestChosen(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	cases := []struct {
		name string
		vals []uint64
		enc  byte
	}{
		{"empty", nil, encConst},
		{"constant", seq(8192, func(int) uint64 { return 1 << 40 }), encConst},
		{"random 20 bits", seq(8192, func(int) uint64 { return 1e9 + r.Uint64N(1<<20) }), encFOR},
		{"random 64 bits", seq(8192, func(int) uint64 { return r.Uint64() }), encFOR},
		{"per-user property", seq(8192, func(i int) uint64 { return uint64(i/100) * 104729 % 5000 }), encRLE},
		{"sorted timestamps", seq(8192, func(i int) uint64 { return 1_700_000_000_000 + uint64(i)*1000 + r.Uint64N(50) }), encDelta},
		{"constant stride", seq(8192, func(i int) uint64 { return uint64(i) * 3 }), encDelta},
		{"descending", seq(8192, func(i int) uint64 { return 1e12 - uint64(i)*7 - r.Uint64N(3) }), encDelta},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for _, enc := range [][]byte{
				roundTrip(t, c64, tc.vals),
				roundTrip(t, c32, conv(c32, tc.vals)),
				roundTrip(t, ci, conv(ci, tc.vals)),
			} {
				if got := enc[0] & 15; got != tc.enc {
					t.Errorf("tag %#x: encoding %d, want %d", enc[0], got, tc.enc)
				}
			}
			if len(tc.vals) == 0 {
				return
			}
			b := AppendUints(nil, tc.vals)
			sizes := altSizes(tc.vals)
			if e := b[0] & 15; e != encConst && sizes[e] != len(b) {
				t.Errorf("encoding %d takes %d bytes, expected %d", e, len(b), sizes[e])
			}
			for e, size := range sizes {
				if size < len(b) {
					t.Errorf("encoding %d would take %d bytes, chosen %d takes %d", e, size, b[0]&15, len(b))
				}
			}
		})
	}
}

// altSizes encodes vals every way by a separate, naive route and returns
// the sizes, to check the encoder's size arithmetic.
func altSizes(vals []uint64) map[byte]int {
	n := len(vals)
	head := 1 + len(binary.AppendUvarint(nil, uint64(n)))
	uv := func(x uint64) int { return len(binary.AppendUvarint(nil, x)) }
	packed := func(xs []uint64) (base uint64, bytes int) {
		lo, hi := slices.Min(xs), slices.Max(xs)
		w := 0
		for w < 64 && (hi-lo)>>w != 0 {
			w++
		}
		return lo, uv(lo) + 1 + (len(xs)*w+63)/64*8
	}
	_, forSize := packed(vals)
	sizes := map[byte]int{encFOR: head + forSize}
	if n > 1 {
		var ds []uint64
		for i := 1; i < n; i++ {
			ds = append(ds, vals[i]-vals[i-1]^1<<63) // signed order
		}
		lo, _ := packed(ds)
		_, s := packed(ds)
		d := int64(lo ^ 1<<63)
		sizes[encDelta] = head + uv(vals[0]) + s - uv(lo) + uv(uint64(d<<1^d>>63))
	}
	var rv, rl []uint64
	for i := 0; i < n; {
		j := i
		for j < n && vals[j] == vals[i] {
			j++
		}
		rv, rl = append(rv, vals[i]), append(rl, uint64(j-i))
		i = j
	}
	_, sv := packed(rv)
	_, sl := packed(rl)
	sizes[encRLE] = head + uv(uint64(len(rv))) + sv + sl
	return sizes
}

// TestTruncation checks every proper prefix of every valid encoding is an
// error, not a panic or a wrong answer.
func TestTruncation(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	var inputs [][]uint64
	for _, tc := range edgeCases {
		if len(tc.vals) <= 1000 {
			inputs = append(inputs, tc.vals)
		}
	}
	for _, g := range gens {
		inputs = append(inputs, g.f(r, 150))
	}
	for _, vals := range inputs {
		truncate(t, c64, conv(c64, vals))
		truncate(t, c32, conv(c32, vals))
		truncate(t, ci, conv(ci, vals))
	}
}

func truncate[T comparable](t *testing.T, c codec[T], vals []T) {
	t.Helper()
	enc := c.append(nil, vals)
	for k := range len(enc) {
		src := slices.Clone(enc[:k])
		got, n, err := c.decode(nil, src)
		if !errors.Is(err, ErrCorrupt) {
			t.Fatalf("%s: prefix %d of %d (tag %#x): got %d values, n=%d, err %v", c.name, k, len(enc), enc[0], len(got), n, err)
		}
	}
}

func TestCorrupt(t *testing.T) {
	cases := []struct {
		name string
		src  []byte
	}{
		{"empty", nil},
		{"tag 0", []byte{0, 0, 0}},
		{"unknown encoding", []byte{0x15, 1, 0}},
		{"count too large", binary.AppendUvarint([]byte{0x11}, maxBlock+1)},
		{"overlong count", []byte{0x11, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01}},
		{"width 65", []byte{0x12, 1, 0, 65, 0, 0, 0, 0, 0, 0, 0, 0}},
		{"empty FOR", []byte{0x12, 0, 0, 0}},
		{"empty delta", []byte{0x14, 0, 0, 0, 0}},
		{"runs exceed count", []byte{0x13, 2, 3, 0, 0, 1, 0}},
		{"zero runs", []byte{0x13, 2, 0, 0, 0, 1, 0}},
		{"run lengths short", []byte{0x13, 3, 1, 5, 0, 2, 0}},
		{"run lengths long", []byte{0x13, 3, 1, 5, 0, 4, 0}},
		{"zero-length run", []byte{0x13, 3, 2, 5, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}},
		{"huge run length", []byte{0x13, 3, 1, 5, 0, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01, 0}},
		{"packed too short", []byte{0x12, 100, 0, 8, 0, 0, 0, 0, 0, 0, 0, 0}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if _, _, err := DecodeUints(nil, tc.src); !errors.Is(err, ErrCorrupt) {
				t.Errorf("err = %v", err)
			}
		})
	}

	// uint32 blocks refuse what does not fit 32 bits.
	for _, src := range [][]byte{
		binary.AppendUvarint([]byte{0x21, 1}, 1<<32),    // constant
		binary.AppendUvarint([]byte{0x22, 1}, 1<<32),    // FOR base
		{0x22, 1, 0, 33, 0, 0, 0, 0, 0, 0, 0, 0},        // width
		binary.AppendUvarint([]byte{0x24, 2, 0}, 1<<32), // zigzag min delta
	} {
		if _, _, err := DecodeUint32s(nil, src); !errors.Is(err, ErrCorrupt) {
			t.Errorf("DecodeUint32s(% x): err = %v", src, err)
		}
	}

	// A block is only decoded as its own type.
	vals := []uint64{1, 2, 3}
	if _, _, err := DecodeUint32s(nil, AppendUints(nil, vals)); !errors.Is(err, ErrCorrupt) {
		t.Errorf("uint64 block decoded as uint32: %v", err)
	}
	if _, _, err := DecodeInt64s(nil, AppendUints(nil, vals)); !errors.Is(err, ErrCorrupt) {
		t.Errorf("uint64 block decoded as int64: %v", err)
	}
	if _, _, err := DecodeUints(nil, AppendUint32s(nil, []uint32{1, 2})); !errors.Is(err, ErrCorrupt) {
		t.Errorf("uint32 block decoded as uint64: %v", err)
	}
}

func TestConcatenated(t *testing.T) {
	blocks := [][]uint64{{1, 2, 3}, nil, {5, 5, 5, 5}, seq(100, func(i int) uint64 { return uint64(i / 10) }), {math.MaxUint64}}
	var b []byte
	for _, vals := range blocks {
		b = AppendUints(b, vals)
	}
	var got []uint64
	for i, vals := range blocks {
		var n int
		var err error
		got, n, err = DecodeUints(got, b)
		if err != nil || !slices.Equal(got, vals) {
			t.Fatalf("block %d: %v, %v", i, got, err)
		}
		b = b[n:]
	}
	if len(b) != 0 {
		t.Fatalf("%d bytes left", len(b))
	}
}

func TestTooManyPanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("no panic")
		}
	}()
	AppendUints(nil, make([]uint64, maxBlock+1))
}

func TestDecodeAllocs(t *testing.T) {
	r := rand.New(rand.NewPCG(8, 9))
	for _, g := range gens {
		vals := g.f(r, 8192+17)
		src := AppendUints(nil, vals)
		dst := make([]uint64, 0, len(vals))
		if a := testing.AllocsPerRun(20, func() { dst, _, _ = DecodeUints(dst, src) }); a != 0 {
			t.Errorf("%s (tag %#x): %v allocations per decode", g.name, src[0], a)
		}
		var out []byte
		if a := testing.AllocsPerRun(20, func() { out = AppendUints(out[:0], vals) }); a != 0 {
			t.Errorf("%s: %v allocations per encode into a reused buffer", g.name, a)
		}
	}
}

// fuzzSeeds are valid encodings of assorted data for one codec.
func fuzzSeeds[T comparable](c codec[T]) [][]byte {
	r := rand.New(rand.NewPCG(1, 1))
	var out [][]byte
	for _, tc := range edgeCases {
		if len(tc.vals) <= 1000 {
			out = append(out, c.append(nil, conv(c, tc.vals)))
		}
	}
	for _, g := range gens {
		for _, n := range []int{3, 70, 300} {
			out = append(out, c.append(nil, conv(c, g.f(r, n))))
		}
	}
	return out
}

// fuzzDecode checks decoding never panics and that what decodes survives
// another round trip.
func fuzzDecode[T comparable](f *testing.F, c codec[T]) {
	for _, s := range fuzzSeeds(c) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, src []byte) {
		vals, n, err := c.decode(nil, src)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error does not wrap ErrCorrupt: %v", err)
			}
			return
		}
		if n < 1 || n > len(src) {
			t.Fatalf("consumed %d of %d bytes", n, len(src))
		}
		enc := c.append(nil, vals)
		again, m, err := c.decode(nil, enc)
		if err != nil || m != len(enc) || !slices.Equal(again, vals) {
			t.Fatalf("re-encoding %d values: err %v, consumed %d of %d, equal %v", len(vals), err, m, len(enc), slices.Equal(again, vals))
		}
	})
}

func FuzzDecodeUints(f *testing.F)   { fuzzDecode(f, c64) }
func FuzzDecodeUint32s(f *testing.F) { fuzzDecode(f, c32) }
func FuzzDecodeInt64s(f *testing.F)  { fuzzDecode(f, ci) }

func TestInt64BlockAt(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 7))
	for trial := range 300 {
		n := 1 + r.IntN(3000)
		vals := make([]int64, n)
		base := r.Int64() >> uint(r.IntN(64))
		spread := int64(1) << uint(r.IntN(63))
		for i := range vals {
			switch trial % 4 {
			case 0: // FOR
				vals[i] = base + r.Int64N(spread)
			case 1: // constant
				vals[i] = base
			case 2: // runs
				vals[i] = base + int64(i/100)
			default: // sorted: delta
				vals[i] = base + int64(i)*3 + r.Int64N(2)
			}
		}
		var b Int64Block
		reset := b.Reset
		if trial%2 == 1 {
			reset = b.ResetInPlace
		}
		if err := reset(AppendInt64s(nil, vals)); err != nil {
			t.Fatal(err)
		}
		if b.Len() != n {
			t.Fatalf("trial %d: Len %d, want %d", trial, b.Len(), n)
		}
		for i, v := range vals {
			if got := b.At(i); got != v {
				t.Fatalf("trial %d: At(%d) = %d, want %d", trial, i, got, v)
			}
		}
	}
	var b Int64Block
	if err := b.Reset([]byte{typeInt64<<4 | encFOR, 5, 0, 70}); err == nil {
		t.Fatal("a width of 70 was accepted")
	}
}
