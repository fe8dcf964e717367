package segment

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"

	"github.com/veil-analytics/veil/internal/event"
	"github.com/veil-analytics/veil/internal/wire"
)

// A property value is stored as an atom: one kind byte and its payload.
// Atoms are compared as strings, so equal values share a dictionary code.
const (
	atomString = 's' // UTF-8 bytes
	atomNumber = 'n' // float64 bits, little-endian
	atomTrue   = 't'
	atomFalse  = 'f'
	atomNull   = 'z'
	atomJSON   = 'j' // an array or object as JSON text
)

// AppendAtom appends the atom of v to dst.
func AppendAtom(dst []byte, v event.Value) []byte {
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

// Atom is a stored property value (see AppendAtom).
type Atom string

// Kind is the JSON kind of the atom's value.
func (a Atom) Kind() event.Kind {
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

// Str is the string of a string atom, "" otherwise.
func (a Atom) Str() string {
	if len(a) > 0 && a[0] == atomString {
		return string(a[1:])
	}
	return ""
}

// Num is the number of a number atom, and whether it is one.
func (a Atom) Num() (float64, bool) {
	if len(a) == 9 && a[0] == atomNumber {
		return math.Float64frombits(binary.LittleEndian.Uint64([]byte(a[1:]))), true
	}
	return 0, false
}

// Value decodes the atom.
func (a Atom) Value() (event.Value, error) {
	if len(a) == 0 {
		return event.Value{}, fmt.Errorf("%w: empty value", ErrCorrupt)
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
	return event.Value{}, fmt.Errorf("%w: malformed value of kind %q", ErrCorrupt, a[0])
}

// valid reports whether a is a well-formed atom without decoding it.
func (a Atom) valid() bool {
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
