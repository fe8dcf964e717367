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
