// Package scan defines what report engines read from an event backend,
// whatever the backend: one user's events at a time, in time order, with
// the properties asked for as compact comparable values. The embedded store
// (internal/store) and the ClickHouse backend both serve it; nothing of
// either leaks through it.
package scan

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"

	"github.com/veil-analytics/veil/internal/event"
	"github.com/veil-analytics/veil/internal/wire"
)

// A Value is one kind byte and its payload. Values compare as strings:
// equal JSON values of the same kind are equal Values, so they work as map
// keys for breakdowns and as dictionary entries.
const (
	atomString = 's' // UTF-8 bytes
	atomNumber = 'n' // float64 bits, little-endian
	atomTrue   = 't'
	atomFalse  = 'f'
	atomNull   = 'z'
	atomJSON   = 'j' // an array or object as JSON text
)

// AppendValue appends the Value of v to dst.
func AppendValue(dst []byte, v event.Value) []byte {
	switch v.Kind {
	case event.String:
		dst = append(dst, atomString)
		return append(dst, v.Str...)
	case event.Number:
		dst = append(dst, atomNumber)
		return binary.LittleEndian.AppendUint64(dst, math.Float64bits(v.Num))
	case event.Bool:
		if v.Bool {
			return append(dst, atomTrue)
		}
		return append(dst, atomFalse)
	case event.Array, event.Object:
		dst = append(dst, atomJSON)
		return v.AppendJSON(dst)
	}
	return append(dst, atomNull)
}

// Value is a property value (see AppendValue); "" is an absent one.
type Value string

// Of returns the Value of v.
func Of(v event.Value) Value { return Value(AppendValue(nil, v)) }

// String returns the Value of a string.
func String(s string) Value { return Value(string(atomString) + s) }

// Kind is the JSON kind of the value.
func (a Value) Kind() event.Kind {
	if len(a) == 0 {
		return event.Null
	}
	switch a[0] {
	case atomString:
		return event.String
	case atomNumber:
		return event.Number
	case atomTrue, atomFalse:
		return event.Bool
	case atomJSON:
		if len(a) > 1 && a[1] == '{' {
			return event.Object
		}
		return event.Array
	}
	return event.Null
}

// Str is the string of a string value, "" otherwise.
func (a Value) Str() string {
	if len(a) > 0 && a[0] == atomString {
		return string(a[1:])
	}
	return ""
}

// Num is the number of a number value, and whether it is one.
func (a Value) Num() (float64, bool) {
	if len(a) == 9 && a[0] == atomNumber {
		return math.Float64frombits(binary.LittleEndian.Uint64([]byte(a[1:]))), true
	}
	return 0, false
}

// ErrMalformed is returned by Decode for bytes that are no Value.
var ErrMalformed = errors.New("scan: malformed value")

// Decode returns the JSON value.
func (a Value) Decode() (event.Value, error) {
	if len(a) == 0 {
		return event.Value{}, fmt.Errorf("%w: empty", ErrMalformed)
	}
	switch a[0] {
	case atomString:
		return event.StringValue(string(a[1:])), nil
	case atomNumber:
		if f, ok := a.Num(); ok {
			return event.NumberValue(f), nil
		}
	case atomTrue, atomFalse:
		if len(a) == 1 {
			return event.BoolValue(a[0] == atomTrue), nil
		}
	case atomNull:
		if len(a) == 1 {
			return event.Value{}, nil
		}
	case atomJSON:
		// ParseItems reads a top-level array as a batch of items.
		items, err := wire.ParseItems([]byte(a[1:]), wire.ParseOptions{})
		if err == nil && len(a) > 1 && a[1] == '[' {
			v := event.Value{Kind: event.Array}
			for _, it := range items {
				v.Items = append(v.Items, it.Value)
			}
			return v, nil
		}
		if err == nil && len(items) == 1 {
			return items[0].Value, nil
		}
	}
	return event.Value{}, fmt.Errorf("%w: kind %q", ErrMalformed, a[0])
}

// Valid reports whether a is a well-formed Value, without decoding it.
func (a Value) Valid() bool {
	if len(a) == 0 {
		return false
	}
	switch a[0] {
	case atomString:
		return true
	case atomNumber:
		return len(a) == 9
	case atomTrue, atomFalse, atomNull:
		return len(a) == 1
	case atomJSON:
		return json.Valid([]byte(a[1:]))
	}
	return false
}
