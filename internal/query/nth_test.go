package query

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

func TestNth(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for trial := range 2000 {
		n := 1 + r.IntN(300)
		v := make([]int64, n)
		spread := int64(1 + r.IntN(50)) // many duplicates in some trials
		for i := range v {
			v[i] = r.Int64N(spread)
		}
		sorted := slices.Clone(v)
		slices.Sort(sorted)
		k := r.IntN(n)
		if got := nth(v, k); got != sorted[k] {
			t.Fatalf("trial %d: nth(%d) = %d, want %d", trial, k, got, sorted[k])
		}
		if k > 0 && slices.Max(v[:k]) > v[k] {
			t.Fatalf("trial %d: a larger value precedes position %d", trial, k)
		}
	}
}

func TestBucketCursor(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for _, tz := range []string{"UTC", "Europe/Paris", "America/New_York"} {
		for _, interval := range []string{"hour", "day", "week", "month", "none"} {
			w, err := Range{From: "2024-03-01", To: "2024-04-10", TimeZone: tz}.resolve("", "")
			if err != nil {
				t.Fatal(err)
			}
			bk, err := newBuckets(w, interval, "")
			if err != nil {
				t.Fatal(err)
			}
			cur := bucketCursor{b: bk}
			tm := w.From - 86_400_000
			for range 5000 {
				if r.IntN(50) == 0 {
					tm = w.From - 86_400_000 + r.Int64N(w.To-w.From+2*86_400_000) // jump anywhere
				} else {
					tm += r.Int64N(4 * 3_600_000)
				}
				want := -1
				for i := range bk.labels {
					if tm >= bk.starts[i] && tm < bk.starts[i+1] {
						want = i
					}
				}
				if got := cur.at(tm); got != want || bk.index(tm) != want {
					t.Fatalf("%s %s: at(%d) = %d, index %d, want %d", tz, interval, tm, got, bk.index(tm), want)
				}
			}
		}
	}
}

// TestDurations checks that the chunked lists keep every time, in order,
// across chunk boundaries and merges.
func TestDurations(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for trial := range 200 {
		var all []int64
		var d durations
		for range 1 + r.IntN(4) {
			var o durations
			for range r.IntN(3 * durationChunk) {
				v := r.Int64()
				o.add(v)
				all = append(all, v)
			}
			d.merge(&o)
			if o.n != 0 || o.chunks != nil {
				t.Fatalf("trial %d: merge left the source with %d times", trial, o.n)
			}
		}
		var got []int64
		for _, c := range d.chunks {
			got = append(got, c...)
		}
		if d.n != len(all) || !slices.Equal(got, all) {
			t.Fatalf("trial %d: %d times, chunks hold %d, want %d", trial, d.n, len(got), len(all))
		}
	}
}

// TestMeanMedianSeconds compares the histogram median with a sort, on
// spreads that make the narrowing take one pass, several, or none.
func TestMeanMedianSeconds(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for trial := range 400 {
		n := 1 + r.IntN(4*radixDirect)
		var d, part durations // built in parts, merged
		all := make([]int64, n)
		shape := r.IntN(5)
		for i := range all {
			var v int64
			switch shape {
			case 0: // few distinct values: a bucket of equal ones
				v = r.Int64N(3) * 1000
			case 1: // a week of milliseconds
				v = r.Int64N(7 * 86_400_000)
			case 2: // any-order funnels: negative too
				v = r.Int64N(2_000_000) - 1_000_000
			case 3: // two far clusters
				v = r.Int64N(100) + r.Int64N(2)*(1<<40)
			default: // a long tail
				v = int64(1) << r.IntN(40)
			}
			all[i] = v
			part.add(v)
			if r.IntN(1000) == 0 {
				d.merge(&part)
			}
		}
		d.merge(&part)
		d.merge(&durations{})
		slices.Sort(all)
		want := float64(all[n/2])
		if n%2 == 0 {
			want = (float64(all[n/2-1]) + want) / 2
		}
		var sum int64
		for _, v := range all {
			sum += v
		}
		wantMean := float64(sum) / float64(n) / 1000
		mean, med := d.meanMedianSeconds()
		if *med != want/1000 || *mean != wantMean {
			t.Fatalf("trial %d (shape %d, n %d): mean %v median %v, want %v %v", trial, shape, n, *mean, *med, wantMean, want/1000)
		}
	}
}

// BenchmarkMeanMedianSeconds times one funnel step's summary: 400,000
// conversion times spread like real ones (most within minutes, a tail of
// days).
func BenchmarkMeanMedianSeconds(b *testing.B) {
	r := rand.New(rand.NewPCG(7, 8))
	var d durations
	for range 400_000 {
		d.add(int64(math.Exp(r.NormFloat64()*2.5+11)) % (7 * 86_400_000))
	}
	b.ResetTimer()
	for range b.N {
		d.meanMedianSeconds()
	}
}
