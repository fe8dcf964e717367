package profiles

import (
	"fmt"
	"testing"

	"github.com/veil-analytics/veil/internal/event"
)

// browserSet is the $set a browser SDK sends with identify: the three
// properties mixpanel-js adds to every $set plus the app's own.
func browserSet() event.Value {
	return o(
		"$browser", "Chrome", "$browser_version", 126, "$os", "Mac OS X",
		"$name", "p1_Q2hhcmxpZSBQc2V1ZG9ueW0", "$email", "p1_ZW1haWxwc2V1ZG9ueW0x",
		"plan", "pro", "seats", 12, "trial", false, "company", l("p1_YWNtZXBzZXVkb255bTE"),
		"signup_source", "newsletter",
	)
}

// BenchmarkApplySet10 measures a typical $set of 10 properties: on a
// profile that already has them with the same values (a returning user's
// browser), with other values, and on a new profile.
func BenchmarkApplySet10(b *testing.B) {
	set := browserSet()
	b.Run("same", func(b *testing.B) {
		var s State
		u := &event.ProfileUpdate{Project: 1, DistinctID: "p1_dXNlcnBzZXVkb255bTAw", Time: 1_700_000_000_000,
			Ops: []event.ProfileOp{op("$set", set)}}
		s.Apply(u)
		s.Apply(&event.ProfileUpdate{Project: 1, DistinctID: u.DistinctID, Time: u.Time, Ops: []event.ProfileOp{
			op("$set_once", o("$created", "2024-05-01T10:00:00", "first_referrer", "$direct")),
			op("$add", o("logins", 41)),
		}})
		b.ReportAllocs()
		for b.Loop() {
			u.Time++
			s.Apply(u)
		}
	})
	b.Run("changed", func(b *testing.B) {
		other := browserSet()
		for i := range other.Fields {
			f := &other.Fields[i]
			switch f.Value.Kind {
			case event.String:
				f.Value.Str += "2"
			case event.Number:
				f.Value.Num++
			}
		}
		var s State
		u := &event.ProfileUpdate{Project: 1, DistinctID: "p1_dXNlcnBzZXVkb255bTAw", Time: 1_700_000_000_000}
		sets := []event.ProfileOp{op("$set", set), op("$set", other)}
		u.Ops = sets[:1]
		s.Apply(u)
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			i++
			u.Time++
			u.Ops = sets[i%2 : i%2+1]
			s.Apply(u)
		}
	})
	b.Run("new", func(b *testing.B) {
		const n = 1 << 16
		ids := make([]string, n)
		for i := range ids {
			ids[i] = fmt.Sprintf("p1_%019d", i)
		}
		var s State
		u := &event.ProfileUpdate{Project: 1, Time: 1_700_000_000_000, Ops: []event.ProfileOp{op("$set", set)}}
		i := 0
		b.ReportAllocs()
		for b.Loop() {
			if i%n == 0 {
				s = State{}
			}
			u.DistinctID = ids[i%n]
			i++
			s.Apply(u)
		}
	})
}
