package event

import (
	"errors"
	"math"
	"testing"
)

func sampleEvent() Event {
	return Event{
		Project: 7, Name: "checkout", DistinctID: "$device:d1", Time: 1_795_376_173_909, InsertID: "s1pifjjmwdh1nsgs", Received: 1_795_376_174_000,
		Props: []Field{
			{Key: "$browser", Value: StringValue("Chrome")},
			{Key: "amount", Value: NumberValue(9.99)},
			{Key: "ok", Value: BoolValue(true)},
			{Key: "none", Value: Value{}},
			{Key: "tags", Value: Value{Kind: Array, Items: []Value{StringValue("a"), NumberValue(-1)}}},
			{Key: "obj", Value: Value{Kind: Object, Fields: []Field{{Key: "k", Value: StringValue("🚀")}}}},
		},
	}
}

func TestEventRoundTrip(t *testing.T) {
	e := sampleEvent()
	got, err := DecodeEvent(AppendEvent(nil, &e))
	if err != nil {
		t.Fatal(err)
	}
	if got.Project != e.Project || got.Name != e.Name || got.DistinctID != e.DistinctID || got.Time != e.Time ||
		got.InsertID != e.InsertID || got.Received != e.Received || len(got.Props) != len(e.Props) {
		t.Fatalf("got %+v", got)
	}
	head, err := DecodeEventHead(AppendEvent(nil, &e))
	if err != nil || head.InsertID != e.InsertID || head.Received != e.Received || head.Props != nil {
		t.Fatalf("head = %+v, %v", head, err)
	}
	for i := range e.Props {
		if got.Props[i].Key != e.Props[i].Key || !got.Props[i].Value.Equal(e.Props[i].Value) {
			t.Errorf("prop %d: got %+v want %+v", i, got.Props[i], e.Props[i])
		}
	}
}

func TestProfileAndIdentityRoundTrip(t *testing.T) {
	u := ProfileUpdate{Project: 1, GroupKey: "company", GroupID: "acme", Time: 5, Received: 6, IgnoreTime: true, IgnoreAlias: true,
		Ops: []ProfileOp{{Op: "$set", Value: Value{Kind: Object, Fields: []Field{{Key: "size", Value: NumberValue(10)}}}}, {Op: "$unset", Value: Value{Kind: Array, Items: []Value{StringValue("x")}}}}}
	gu, err := DecodeProfile(AppendProfile(nil, &u))
	if err != nil || gu.GroupKey != "company" || gu.GroupID != "acme" || !gu.IgnoreTime || !gu.IgnoreAlias || len(gu.Ops) != 2 || !gu.Ops[0].Value.Equal(u.Ops[0].Value) || !gu.IsGroup() {
		t.Fatalf("profile: %+v, %v", gu, err)
	}
	l := IdentityLink{Project: 1, From: "$device:d", To: "u", Source: "$device_id", Time: 3, Received: 4}
	gl, err := DecodeIdentity(AppendIdentity(nil, &l))
	if err != nil || gl != l {
		t.Fatalf("identity: %+v, %v", gl, err)
	}
}

func TestDecodeCorrupt(t *testing.T) {
	e := sampleEvent()
	b := AppendEvent(nil, &e)
	for _, cut := range []int{0, 1, len(b) / 2, len(b) - 1} {
		if _, err := DecodeEvent(b[:cut]); !errors.Is(err, ErrCorrupt) {
			t.Errorf("truncated at %d: err = %v", cut, err)
		}
	}
	if _, err := DecodeEvent(append(b, 0)); !errors.Is(err, ErrCorrupt) {
		t.Errorf("trailing byte: err = %v", err)
	}
	if _, _, _, err := NextRecord([]byte{1, 200}); !errors.Is(err, ErrCorrupt) {
		t.Errorf("bad frame: err = %v", err)
	}
}

func TestAppendJSON(t *testing.T) {
	f := func(v Value, want string) {
		t.Helper()
		if got := string(v.AppendJSON(nil)); got != want {
			t.Errorf("got %s, want %s", got, want)
		}
	}
	f(NumberValue(1795376173909), "1795376173909")
	f(NumberValue(9.99), "9.99")
	f(NumberValue(1e300), "1e+300")
	f(NumberValue(math.NaN()), "null")
	f(StringValue("a\"b\\c\n\x01<\u2028"), `"a\"b\\c\n\u0001\u003c\u2028"`)
	f(StringValue("bad\xffutf8"), `"bad\ufffdutf8"`)
	f(Value{Kind: Object, Fields: []Field{{Key: "k", Value: Value{Kind: Array, Items: []Value{BoolValue(false), {}}}}}}, `{"k":[false,null]}`)
}

// FuzzDecodeRecord feeds arbitrary bytes to the record decoders: they must
// never panic, and what decodes must round-trip through the encoder.
func FuzzDecodeRecord(f *testing.F) {
	e := sampleEvent()
	f.Add(AppendRecord(nil, RecordEvent, AppendEvent(nil, &e)))
	u := ProfileUpdate{Project: 1, DistinctID: "u", Ops: []ProfileOp{{Op: "$add", Value: Value{Kind: Object, Fields: []Field{{Key: "n", Value: NumberValue(1)}}}}}}
	f.Add(AppendRecord(nil, RecordProfile, AppendProfile(nil, &u)))
	l := IdentityLink{Project: 1, From: "a", To: "b", Source: "$merge"}
	f.Add(AppendRecord(nil, RecordIdentity, AppendIdentity(nil, &l)))
	f.Add([]byte{1, 3, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		for len(b) > 0 {
			typ, body, rest, err := NextRecord(b)
			if err != nil {
				return
			}
			switch typ {
			case RecordEvent:
				if e, err := DecodeEvent(body); err == nil {
					// Non-minimal varints may decode; the canonical
					// encoding must then be stable.
					once := AppendEvent(nil, &e)
					e2, err := DecodeEvent(once)
					if err != nil {
						t.Fatalf("re-encoded event does not decode: %v", err)
					}
					if twice := AppendEvent(nil, &e2); string(twice) != string(once) && !hasNaN(e.Props) {
						t.Fatalf("event encoding is not stable")
					}
				}
			case RecordProfile:
				DecodeProfile(body)
			case RecordIdentity:
				if l, err := DecodeIdentity(body); err == nil {
					l2, err := DecodeIdentity(AppendIdentity(nil, &l))
					if err != nil || l2 != l {
						t.Fatalf("identity does not round-trip: %v", err)
					}
				}
			}
			b = rest
		}
	})
}

// hasNaN reports NaN payload bits, which need not survive a round trip.
func hasNaN(fs []Field) bool {
	for _, f := range fs {
		if f.Value.Kind == Number && math.IsNaN(f.Value.Num) || hasNaN(f.Value.Fields) {
			return true
		}
		for _, it := range f.Value.Items {
			if it.Kind == Number && math.IsNaN(it.Num) || hasNaN(it.Fields) {
				return true
			}
		}
	}
	return false
}
