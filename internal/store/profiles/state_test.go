package profiles

import (
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/veil-analytics/veil/internal/event"
)

// deep returns a value nested n lists deep around 1.
func deep(n int) event.Value {
	x := v(1)
	for range n {
		x = l(x)
	}
	return x
}

func TestApplyOps(t *testing.T) {
	tests := []struct {
		name    string
		updates []*event.ProfileUpdate
		want    string // user "u" of project 1 as JSON, "-" if absent
	}{
		// $set
		{"set creates", []*event.ProfileUpdate{user(op("$set", o("a", 1, "b", "x")))}, `{"a":1,"b":"x"}`},
		{"set overwrites in place", []*event.ProfileUpdate{
			user(op("$set", o("a", 1, "b", 2))),
			user(op("$set", o("a", 3, "c", 4))),
		}, `{"a":3,"b":2,"c":4}`},
		{"set empty object creates", []*event.ProfileUpdate{user(op("$set", o()))}, `{}`},
		{"set non-object ignored", []*event.ProfileUpdate{user(op("$set", v("a")))}, `-`},
		{"set repeated key: last wins", []*event.ProfileUpdate{user(op("$set", o("a", 1, "a", 2)))}, `{"a":2}`},
		{"set every kind", []*event.ProfileUpdate{user(op("$set", o(
			"n", nil, "t", true, "f", false, "x", -2.5, "s", "héllo\x00", "e", "", "l", l(), "o", o("k", l(1, o("y", nil))))))},
			`{"n":null,"t":true,"f":false,"x":-2.5,"s":"héllo\u0000","e":"","l":[],"o":{"k":[1,{"y":null}]}}`},
		{"set too deep ignored", []*event.ProfileUpdate{user(op("$set", o("ok", deep(maxNesting), "no", deep(maxNesting+1))))},
			`{"ok":` + strings.Repeat("[", maxNesting) + "1" + strings.Repeat("]", maxNesting) + `}`},

		// $set_once
		{"set_once creates", []*event.ProfileUpdate{user(op("$set_once", o("a", 1)))}, `{"a":1}`},
		{"set_once after set keeps set", []*event.ProfileUpdate{
			user(op("$set", o("a", 1))),
			user(op("$set_once", o("a", 2, "b", 3))),
		}, `{"a":1,"b":3}`},
		{"set after set_once overwrites", []*event.ProfileUpdate{
			user(op("$set_once", o("a", 1))),
			user(op("$set", o("a", 2))),
		}, `{"a":2}`},
		{"set_once repeated key: first wins", []*event.ProfileUpdate{user(op("$set_once", o("a", 1, "a", 2)))}, `{"a":1}`},
		{"set_once keeps null", []*event.ProfileUpdate{
			user(op("$set", o("a", nil))),
			user(op("$set_once", o("a", 2))),
		}, `{"a":null}`},

		// $add
		{"add to missing profile", []*event.ProfileUpdate{user(op("$add", o("n", 5)))}, `{"n":5}`},
		{"add increments", []*event.ProfileUpdate{
			user(op("$add", o("n", 5))),
			user(op("$add", o("n", 2.5))),
		}, `{"n":7.5}`},
		{"add negative decrements", []*event.ProfileUpdate{
			user(op("$set", o("n", 1))),
			user(op("$add", o("n", -3))),
		}, `{"n":-2}`},
		{"add to non-number leaves it", []*event.ProfileUpdate{
			user(op("$set", o("s", "7", "b", true, "l", l(1)))),
			user(op("$add", o("s", 1, "b", 1, "l", 1, "n", 1))),
		}, `{"s":"7","b":true,"l":[1],"n":1}`},
		{"add of non-number skipped", []*event.ProfileUpdate{
			user(op("$set", o("n", 1))),
			user(op("$add", o("n", "2", "m", nil))),
		}, `{"n":1}`},
		{"add of non-number still creates", []*event.ProfileUpdate{user(op("$add", o("n", "2")))}, `{}`},
		{"add after set in one update", []*event.ProfileUpdate{user(op("$set", o("n", 1)), op("$add", o("n", 1)))}, `{"n":2}`},

		// $append
		{"append creates list", []*event.ProfileUpdate{user(op("$append", o("l", "x")))}, `{"l":["x"]}`},
		{"append keeps duplicates", []*event.ProfileUpdate{
			user(op("$append", o("l", "x"))),
			user(op("$append", o("l", "x"))),
			user(op("$append", o("l", 2))),
		}, `{"l":["x","x",2]}`},
		{"append list nests", []*event.ProfileUpdate{user(op("$append", o("l", l(1, 2))))}, `{"l":[[1,2]]}`},
		{"append object", []*event.ProfileUpdate{
			user(op("$append", o("$transactions", o("$amount", 9.99)))),
			user(op("$append", o("$transactions", o("$amount", 1)))),
		}, `{"$transactions":[{"$amount":9.99},{"$amount":1}]}`},
		{"append to non-list leaves it", []*event.ProfileUpdate{
			user(op("$set", o("s", "x"))),
			user(op("$append", o("s", "y"))),
		}, `{"s":"x"}`},
		{"append too deep ignored", []*event.ProfileUpdate{user(op("$append", o("ok", deep(maxNesting-1), "no", deep(maxNesting))))},
			`{"ok":` + strings.Repeat("[", maxNesting) + "1" + strings.Repeat("]", maxNesting) + `}`},

		// $union
		{"union creates deduplicated", []*event.ProfileUpdate{user(op("$union", o("l", l("a", "b", "a"))))}, `{"l":["a","b"]}`},
		{"union adds only new", []*event.ProfileUpdate{
			user(op("$append", o("l", "a"))),
			user(op("$append", o("l", "a"))),
			user(op("$union", o("l", l("a", "b", "b", "c")))),
		}, `{"l":["a","a","b","c"]}`},
		{"union number and string differ", []*event.ProfileUpdate{
			user(op("$union", o("l", l(1)))),
			user(op("$union", o("l", l("1", 1.0)))),
		}, `{"l":[1,"1"]}`},
		{"union of non-list skipped", []*event.ProfileUpdate{user(op("$union", o("l", "a", "m", l("b"))))}, `{"m":["b"]}`},
		{"union to non-list leaves it", []*event.ProfileUpdate{
			user(op("$set", o("l", 1))),
			user(op("$union", o("l", l(2)))),
		}, `{"l":1}`},
		{"union empty creates empty list", []*event.ProfileUpdate{user(op("$union", o("l", l())))}, `{"l":[]}`},
		{"union objects compare by value", []*event.ProfileUpdate{
			user(op("$union", o("l", l(o("a", 1), o("a", 1, "b", 2))))),
			user(op("$union", o("l", l(o("a", 1), o("b", 2, "a", 1))))),
		}, `{"l":[{"a":1},{"a":1,"b":2},{"b":2,"a":1}]}`},

		// $remove
		{"remove every occurrence", []*event.ProfileUpdate{
			user(op("$set", o("l", l("a", "b", "a", 1)))),
			user(op("$remove", o("l", "a"))),
		}, `{"l":["b",1]}`},
		{"remove missing value", []*event.ProfileUpdate{
			user(op("$set", o("l", l("a")))),
			user(op("$remove", o("l", "z", "m", "a"))),
		}, `{"l":["a"]}`},
		{"remove last item leaves empty list", []*event.ProfileUpdate{
			user(op("$set", o("l", l(o("k", l(1)))))),
			user(op("$remove", o("l", o("k", l(1))))),
		}, `{"l":[]}`},
		{"remove from non-list leaves it", []*event.ProfileUpdate{
			user(op("$set", o("s", "a"))),
			user(op("$remove", o("s", "a"))),
		}, `{"s":"a"}`},
		{"remove on missing profile creates nothing", []*event.ProfileUpdate{user(op("$remove", o("l", "a")))}, `-`},

		// $unset
		{"unset", []*event.ProfileUpdate{
			user(op("$set", o("a", 1, "b", 2, "c", 3))),
			user(op("$unset", l("a", "zz", 7, "c"))),
		}, `{"b":2}`},
		{"unset everything leaves an empty profile", []*event.ProfileUpdate{
			user(op("$set", o("a", 1))),
			user(op("$unset", l("a"))),
		}, `{}`},
		{"unset on missing profile creates nothing", []*event.ProfileUpdate{user(op("$unset", l("a")))}, `-`},
		{"unset non-list ignored", []*event.ProfileUpdate{
			user(op("$set", o("a", 1))),
			user(op("$unset", v("a"))),
		}, `{"a":1}`},
		{"unset then set moves to the end", []*event.ProfileUpdate{
			user(op("$set", o("a", 1, "b", 2))),
			user(op("$unset", l("a"))),
			user(op("$set", o("a", 3))),
		}, `{"b":2,"a":3}`},
		{"set and unset in one update", []*event.ProfileUpdate{user(op("$set", o("a", 1, "b", 2)), op("$unset", l("a")))}, `{"b":2}`},

		// $delete
		{"delete", []*event.ProfileUpdate{
			user(op("$set", o("a", 1))),
			user(op("$delete", v(""))),
		}, `-`},
		{"delete then set starts afresh", []*event.ProfileUpdate{
			user(op("$set", o("a", 1))),
			user(op("$delete", v("null"))),
			user(op("$set", o("b", 2))),
		}, `{"b":2}`},
		{"delete wins over other ops", []*event.ProfileUpdate{
			user(op("$set", o("a", 1))),
			user(op("$set", o("b", 2)), op("$delete", v(nil))),
		}, `-`},
		{"delete missing profile", []*event.ProfileUpdate{user(op("$delete", v("")))}, `-`},

		// other
		{"unknown op ignored", []*event.ProfileUpdate{user(op("$frobnicate", o("a", 1)))}, `-`},
		{"no ops", []*event.ProfileUpdate{user()}, `-`},
		{"ignore_alias has no effect", []*event.ProfileUpdate{{Project: 1, DistinctID: "u", IgnoreTime: true, IgnoreAlias: true, Ops: []event.ProfileOp{op("$set", o("a", 1))}}}, `{"a":1}`},

		// $last_seen
		{"set stamps last_seen first", []*event.ProfileUpdate{timed(5000, op("$set", o("a", 1)))}, `{"$last_seen":5000,"a":1}`},
		{"add and append stamp last_seen", []*event.ProfileUpdate{
			timed(1, op("$add", o("n", 1))),
			timed(2, op("$append", o("l", 1))),
		}, `{"$last_seen":2,"n":1,"l":[1]}`},
		{"last_seen updates in place", []*event.ProfileUpdate{
			timed(1, op("$set", o("a", 1))),
			timed(2, op("$set", o("b", 2))),
		}, `{"$last_seen":2,"a":1,"b":2}`},
		{"older time moves last_seen back", []*event.ProfileUpdate{
			timed(9, op("$set", o("a", 1))),
			timed(3, op("$set", o("a", 2))),
		}, `{"$last_seen":3,"a":2}`},
		{"other ops do not stamp", []*event.ProfileUpdate{
			timed(1, op("$set_once", o("a", 1))),
			timed(2, op("$union", o("l", l(1)))),
			timed(3, op("$remove", o("l", 1))),
			timed(4, op("$unset", l("x"))),
		}, `{"a":1,"l":[]}`},
		{"unset keeps earlier last_seen", []*event.ProfileUpdate{
			timed(1, op("$set", o("a", 1))),
			timed(2, op("$unset", l("a"))),
		}, `{"$last_seen":1}`},
		{"ignore_time", []*event.ProfileUpdate{user(op("$set", o("a", 1)))}, `{"a":1}`},
		{"malformed set does not stamp", []*event.ProfileUpdate{timed(1, op("$set", v("a")), op("$set_once", o("a", 1)))}, `{"a":1}`},
		{"explicit last_seen wins", []*event.ProfileUpdate{timed(7, op("$set", o("$last_seen", "2024-01-01T00:00:00")))}, `{"$last_seen":"2024-01-01T00:00:00"}`},
		{"unset of last_seen in the update wins", []*event.ProfileUpdate{timed(7, op("$set", o("a", 1)), op("$unset", l("$last_seen")))}, `{"a":1}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var s State
			for _, u := range tt.updates {
				s.Apply(u)
			}
			if got := js(s.User(1, "u")); got != tt.want {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
			// Whatever the ops did must survive a snapshot.
			if got := js(mustRead(t, snapshot(t, &s)).User(1, "u")); got != tt.want {
				t.Errorf("after snapshot: got %s\nwant %s", got, tt.want)
			}
		})
	}
}

func TestAddSpecialNumbers(t *testing.T) {
	var s State
	s.Apply(user(op("$add", o("big", math.MaxFloat64, "neg", -0.0))))
	s.Apply(user(op("$add", o("big", math.MaxFloat64))))
	props, _ := s.User(1, "u")
	if got := props[0].Value.Num; !math.IsInf(got, 1) {
		t.Errorf("MaxFloat64+MaxFloat64 = %v, want +Inf", got)
	}
	if got := props[1].Value.Num; got != 0 || math.Signbit(got) {
		t.Errorf("$add -0 to a missing property = %v, want 0", got)
	}
}

func TestGroupsAndUsersSeparate(t *testing.T) {
	var s State
	s.Apply(user(op("$set", o("who", "user"))))
	s.Apply(group("company", "u", op("$set", o("who", "company u"))))
	s.Apply(group("team", "u", op("$set", o("who", "team u"))))
	s.Apply(group("company", "acme", op("$set", o("who", "acme")), op("$append", o("l", 1))))
	s.Apply(&event.ProfileUpdate{Project: 2, DistinctID: "u", IgnoreTime: true, Ops: []event.ProfileOp{op("$set", o("who", "other project"))}})

	check := func(what string, got, want string) {
		t.Helper()
		if got != want {
			t.Errorf("%s = %s, want %s", what, got, want)
		}
	}
	check("user", js(s.User(1, "u")), `{"who":"user"}`)
	check("company u", js(s.Group(1, "company", "u")), `{"who":"company u"}`)
	check("team u", js(s.Group(1, "team", "u")), `{"who":"team u"}`)
	check("acme", js(s.Group(1, "company", "acme")), `{"who":"acme","l":[1]}`)
	check("project 2", js(s.User(2, "u")), `{"who":"other project"}`)
	check("missing group", js(s.Group(1, "team", "acme")), `-`)
	check("missing key", js(s.Group(1, "nope", "u")), `-`)
	check("missing project", js(s.Group(3, "company", "u")), `-`)
	check("missing user", js(s.User(3, "u")), `-`)
	if u, g := s.Len(1); u != 1 || g != 3 {
		t.Errorf("Len(1) = %d, %d, want 1, 3", u, g)
	}
	if u, g := s.Len(2); u != 1 || g != 0 {
		t.Errorf("Len(2) = %d, %d, want 1, 0", u, g)
	}

	// $delete of a group touches neither users nor other groups.
	s.Apply(group("company", "u", op("$delete", v(""))))
	check("deleted group", js(s.Group(1, "company", "u")), `-`)
	check("user after group delete", js(s.User(1, "u")), `{"who":"user"}`)
	check("team u after delete", js(s.Group(1, "team", "u")), `{"who":"team u"}`)
	s.Apply(group("team", "u", op("$delete", v(""))))
	s.Apply(group("company", "acme", op("$delete", v(""))))
	if u, g := s.Len(1); u != 1 || g != 0 {
		t.Errorf("Len(1) after deletes = %d, %d, want 1, 0", u, g)
	}
	if len(s.projects[1].groups) != 0 {
		t.Errorf("empty group keys kept: %v", s.projects[1].groups)
	}

	// Deleting a user of project 2 leaves project 1 alone and drops project 2.
	s.Apply(&event.ProfileUpdate{Project: 2, DistinctID: "u", Ops: []event.ProfileOp{op("$delete", v(""))}})
	check("project 1 user", js(s.User(1, "u")), `{"who":"user"}`)
	if _, ok := s.projects[2]; ok {
		t.Error("empty project kept")
	}
}

func TestIgnoredUpdates(t *testing.T) {
	var s State
	s.Apply(&event.ProfileUpdate{Project: 1, Ops: []event.ProfileOp{op("$set", o("a", 1))}})
	s.Apply(&event.ProfileUpdate{Project: 1, GroupKey: "company", Ops: []event.ProfileOp{op("$set", o("a", 1))}})
	if len(s.projects) != 0 {
		t.Fatalf("updates without an id stored something: %v", s.projects)
	}
	if u, g := s.Len(1); u != 0 || g != 0 {
		t.Fatalf("Len = %d, %d", u, g)
	}
}

func TestForgetUser(t *testing.T) {
	var s State
	s.ForgetUser(1, "nobody") // on an empty State
	s.Apply(user(op("$set", o("a", 1))))
	s.Apply(&event.ProfileUpdate{Project: 1, DistinctID: "v", IgnoreTime: true, Ops: []event.ProfileOp{op("$set", o("a", 2))}})
	s.Apply(group("company", "u", op("$set", o("a", 3))))
	s.ForgetUser(1, "u")
	s.ForgetUser(1, "nobody")
	if got := js(s.User(1, "u")); got != "-" {
		t.Errorf("forgotten user = %s", got)
	}
	if got := js(s.User(1, "v")); got != `{"a":2}` {
		t.Errorf("other user = %s", got)
	}
	if got := js(s.Group(1, "company", "u")); got != `{"a":3}` {
		t.Errorf("group named like the user = %s", got)
	}
	s.ForgetUser(1, "v")
	if u, g := s.Len(1); u != 0 || g != 1 {
		t.Errorf("Len = %d, %d, want 0, 1", u, g)
	}
	s.Apply(group("company", "u", op("$delete", v(""))))
	if len(s.projects) != 0 {
		t.Errorf("empty project kept")
	}
}

func TestEachUser(t *testing.T) {
	var s State
	for _, id := range []string{"a", "b", "c"} {
		s.Apply(&event.ProfileUpdate{Project: 1, DistinctID: id, IgnoreTime: true, Ops: []event.ProfileOp{op("$set", o("id", id))}})
	}
	s.Apply(&event.ProfileUpdate{Project: 2, DistinctID: "z", IgnoreTime: true, Ops: []event.ProfileOp{op("$set", o("id", "z"))}})
	s.Apply(group("company", "g", op("$set", o("id", "g"))))

	var seen []string
	s.EachUser(1, func(id string, props []event.Field) bool {
		if got := js(props, true); got != `{"id":"`+id+`"}` {
			t.Errorf("%s: %s", id, got)
		}
		seen = append(seen, id)
		return true
	})
	slices.Sort(seen)
	if !slices.Equal(seen, []string{"a", "b", "c"}) {
		t.Errorf("EachUser saw %v", seen)
	}
	n := 0
	s.EachUser(1, func(string, []event.Field) bool { n++; return false })
	if n != 1 {
		t.Errorf("EachUser went on after false: %d calls", n)
	}
	s.EachUser(9, func(string, []event.Field) bool { t.Error("called for a missing project"); return true })

	// Erasure while iterating.
	s.EachUser(1, func(id string, _ []event.Field) bool { s.ForgetUser(1, id); return true })
	if u, _ := s.Len(1); u != 0 {
		t.Errorf("%d users left", u)
	}
}

func TestReadersReturnCopies(t *testing.T) {
	var s State
	s.Apply(user(op("$set", o("l", l(1, 2), "o", o("k", "v")))))
	props, _ := s.User(1, "u")
	props[0].Value.Items[0] = v("changed")
	props[1].Value.Fields[0].Key = "changed"
	props[0].Key = "changed"
	if got := js(s.User(1, "u")); got != `{"l":[1,2],"o":{"k":"v"}}` {
		t.Errorf("State changed through a returned slice: %s", got)
	}
}

func TestApplyDoesNotKeepUpdate(t *testing.T) {
	var s State
	u := user(op("$set", o("s", "before", "l", l("x"))), op("$union", o("m", l("y"))))
	s.Apply(u)
	u.Ops[0].Value.Fields[0].Value.Str = "after"
	u.Ops[0].Value.Fields[1].Value.Items[0].Str = "after"
	u.Ops[1].Value.Fields[0].Value.Items[0].Str = "after"
	u.Ops[0].Value.Fields[0].Key = "after"
	if got := js(s.User(1, "u")); got != `{"s":"before","l":["x"],"m":["y"]}` {
		t.Errorf("State changed with the update: %s", got)
	}
}

// TestManyProperties crosses the threshold where Apply indexes keys in a map.
func TestManyProperties(t *testing.T) {
	var s State
	var ref []event.Field
	set := event.Value{Kind: event.Object}
	for i := range 100 { // well above indexAbove
		k := "k" + string(rune('A'+i%26)) + string(rune('a'+i/26))
		set.Fields = append(set.Fields, event.Field{Key: k, Value: v(i)})
		ref = append(ref, event.Field{Key: k, Value: v(i)})
	}
	s.Apply(user(op("$set", set)))
	// One update that unsets, re-adds, overwrites and adds across the threshold.
	s.Apply(user(
		op("$set", o(ref[5].Key, "x", "new1", 1)),
		op("$add", o(ref[70].Key, 1, "new2", 2)),
		op("$unset", l(ref[0].Key, ref[90].Key, "new1")),
		op("$set_once", o(ref[0].Key, "back", ref[1].Key, "no")),
	))
	ref[5].Value = v("x")
	ref[70].Value = v(71)
	ref = append(ref, event.Field{Key: "new2", Value: v(2)})
	k0, k90 := ref[0].Key, ref[90].Key
	ref = slices.DeleteFunc(ref, func(f event.Field) bool { return f.Key == k0 || f.Key == k90 })
	ref = append(ref, event.Field{Key: k0, Value: v("back")})
	want := js(ref, true)
	if got := js(s.User(1, "u")); got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}
