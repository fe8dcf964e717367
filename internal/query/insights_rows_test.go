package query

import (
	"math/rand/v2"
	"testing"
)

// TestDistinctCounter checks idSet and distinctCounter against a map, in
// both forms (lists and bitmaps) and their mixes, with repeated users and
// keys beyond the dense range.
func TestDistinctCounter(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var dc distinctCounter
	for round := range 40 {
		sets := make([]*idSet, 1+r.IntN(4))
		want := map[uint64]bool{}
		for i := range sets {
			sets[i] = &idSet{}
			n := r.IntN(3 * idSetListMin)
			span := uint64(1 + r.IntN(1<<20))
			for range n {
				u := r.Uint64N(span)
				if r.IntN(50) == 0 {
					u = denseUsers + r.Uint64N(1000) // a key the bitmap does not hold
				}
				for range 1 + r.IntN(3) { // a run of the same user
					sets[i].add(u)
				}
				want[u] = true
			}
		}
		if got := dc.count(sets); got != int64(len(want)) {
			t.Fatalf("round %d: %d users, want %d", round, got, len(want))
		}
		// The scratch bitmap is clean again: a count of nothing is 0.
		if got := dc.count(nil); got != 0 {
			t.Fatalf("round %d: scratch left %d users", round, got)
		}
		for _, u := range dc.bits {
			if u != 0 {
				t.Fatalf("round %d: scratch bitmap not cleared", round)
			}
		}
	}
}
