package query

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/veil-analytics/veil/internal/scan/scantest"
)

// TestFunnelWalk compares the walk of plain funnels with the general
// engine on users whose events share milliseconds often: ties decide
// which attempts count and which is a user's best.
func TestFunnelWalk(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	base := time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC).UnixMilli()
	names := []string{"a", "b", "c", "d"}
	for trial := range 400 {
		// Half the trials in whole seconds, half in a few milliseconds
		// (a window of a second then holds them all).
		unit := int64(1000)
		if trial%2 == 1 {
			unit = 1
		}
		var evs []scantest.Event
		for u := range uint64(1 + r.IntN(40)) {
			n := 1 + r.IntN(12)
			if r.IntN(20) == 0 {
				n = walkMax + r.IntN(40) // past the walk: the general engine
			}
			for range n {
				evs = append(evs, scantest.Event{User: u, Time: base + r.Int64N(30)*unit, Name: names[r.IntN(len(names))]})
			}
		}
		spec := FunnelSpec{Range: Range{From: "2024-03-01", To: "2024-03-01"},
			Window: &Duration{Value: 1 + r.IntN(20), Unit: "second"}}
		for range 2 + r.IntN(3) {
			spec.Steps = append(spec.Steps, Step{Event: names[r.IntN(len(names))]})
		}
		src := scantest.New(evs, nil)
		var out [2][]byte
		for i, general := range []bool{false, true} {
			env := Env{TimeZone: "UTC", Workers: 2, generalOnly: general}
			res, err := Funnels(context.Background(), src, env, spec)
			if err != nil {
				t.Fatal(err)
			}
			out[i], _ = json.Marshal(res)
		}
		if string(out[0]) != string(out[1]) {
			t.Fatalf("trial %d: %s\nwalk:    %s\ngeneral: %s", trial, fmt.Sprint(spec.Steps), out[0], out[1])
		}
	}
}
