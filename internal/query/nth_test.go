package query

import (
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
		if got := d.flat(); d.n != len(all) || !slices.Equal(got, all) {
			t.Fatalf("trial %d: %d times, flat has %d, want %d", trial, d.n, len(got), len(all))
		}
	}
}
