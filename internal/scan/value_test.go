package scan

import (
	"testing"

	"github.com/veil-analytics/veil/internal/event"
)

func TestValues(t *testing.T) {
	for _, v := range []event.Value{
		event.StringValue(""), event.StringValue("héllo"), event.NumberValue(-1.5), event.BoolValue(true),
		event.BoolValue(false), {},
		{Kind: event.Array, Items: []event.Value{event.StringValue("a"), event.NumberValue(2)}},
		{Kind: event.Object, Fields: []event.Field{{Key: "z", Value: event.NumberValue(1)}, {Key: "a", Value: event.StringValue("x")}}},
	} {
		a := Of(v)
		got, err := a.Decode()
		if err != nil || !got.Equal(v) {
			t.Errorf("%s: got %s, %v", v.AppendJSON(nil), got.AppendJSON(nil), err)
		}
		if a.Kind() != v.Kind || !a.Valid() {
			t.Errorf("%s: kind %v valid %v", v.AppendJSON(nil), a.Kind(), a.Valid())
		}
	}
	if String("x") != Of(event.StringValue("x")) || String("x").Str() != "x" {
		t.Error("String differs from Of")
	}
	if n, ok := Of(event.NumberValue(3)).Num(); !ok || n != 3 {
		t.Error("Num")
	}
}

func FuzzDecode(f *testing.F) {
	f.Add("s")
	f.Add("j[1,{\"a\":2}]")
	f.Add("n12345678")
	f.Fuzz(func(t *testing.T, s string) {
		v := Value(s)
		d, err := v.Decode()
		if (err == nil) != v.Valid() {
			t.Fatalf("Decode error %v but Valid %v", err, v.Valid())
		}
		if err == nil && v.Kind() != event.Array && v.Kind() != event.Object && Of(d) != v {
			t.Fatalf("%q does not re-encode to itself: %q", s, Of(d))
		}
	})
}
