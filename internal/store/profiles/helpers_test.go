package profiles

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/veil-analytics/veil/internal/event"
)

// v converts a Go value to an event.Value: nil, bool, int, float64, string,
// []any (a list), or an event.Value as is.
func v(x any) event.Value {
	switch x := x.(type) {
	case nil:
		return event.Value{}
	case bool:
		return event.BoolValue(x)
	case int:
		return event.NumberValue(float64(x))
	case float64:
		return event.NumberValue(x)
	case string:
		return event.StringValue(x)
	case []any:
		return l(x...)
	case event.Value:
		return x
	}
	panic(fmt.Sprintf("v: unsupported %T", x))
}

// l builds a list.
func l(items ...any) event.Value {
	out := event.Value{Kind: event.Array, Items: make([]event.Value, len(items))}
	for i, it := range items {
		out.Items[i] = v(it)
	}
	return out
}

// o builds an object from key, value pairs.
func o(kv ...any) event.Value {
	out := event.Value{Kind: event.Object}
	for i := 0; i < len(kv); i += 2 {
		out.Fields = append(out.Fields, event.Field{Key: kv[i].(string), Value: v(kv[i+1])})
	}
	return out
}

func op(name string, val event.Value) event.ProfileOp { return event.ProfileOp{Op: name, Value: val} }

// user is an update of user "u" in project 1 that leaves $last_seen alone.
func user(ops ...event.ProfileOp) *event.ProfileUpdate {
	return &event.ProfileUpdate{Project: 1, DistinctID: "u", Time: 1000, Received: 1000, IgnoreTime: true, Ops: ops}
}

// timed is an update of user "u" in project 1 at time t that maintains $last_seen.
func timed(t int64, ops ...event.ProfileOp) *event.ProfileUpdate {
	return &event.ProfileUpdate{Project: 1, DistinctID: "u", Time: t, Received: t, Ops: ops}
}

func group(key, id string, ops ...event.ProfileOp) *event.ProfileUpdate {
	return &event.ProfileUpdate{Project: 1, GroupKey: key, GroupID: id, Time: 1000, Received: 1000, IgnoreTime: true, Ops: ops}
}

// js renders properties as a JSON object, or "-" when the profile is absent.
func js(props []event.Field, ok bool) string {
	if !ok {
		return "-"
	}
	return string(event.AppendObject(nil, props))
}

func snapshot(t testing.TB, s *State) []byte {
	t.Helper()
	var buf bytes.Buffer
	n, err := s.WriteTo(&buf)
	if err != nil {
		t.Fatalf("WriteTo: %v", err)
	}
	if n != int64(buf.Len()) {
		t.Fatalf("WriteTo returned %d, wrote %d bytes", n, buf.Len())
	}
	return buf.Bytes()
}

func mustRead(t testing.TB, b []byte) *State {
	t.Helper()
	s, err := Read(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	return s
}
