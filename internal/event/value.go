// Package event defines what Veil ingests — events, user and group profile
// updates, identity links — and their binary encoding in the write-ahead log.
// It imports nothing else of Veil's.
package event

import (
	"math"
	"strconv"
	"unicode/utf8"
)

// Kind is the JSON type of a Value.
type Kind uint8

// The kinds of Value, one per JSON type.
const (
	Null Kind = iota
	Bool
	Number
	String
	Array
	Object
)

// String returns the JSON name of the kind.
func (k Kind) String() string {
	switch k {
	case Null:
		return "null"
	case Bool:
		return "boolean"
	case Number:
		return "number"
	case String:
		return "string"
	case Array:
		return "array"
	case Object:
		return "object"
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// Value is a decoded JSON value. Only the fields of its Kind are set.
type Value struct {
	Kind   Kind
	Bool   bool
	Num    float64
	Str    string
	Items  []Value // Array
	Fields []Field // Object, in input order
}

// Field is one key of a JSON object.
type Field struct {
	Key   string
	Value Value
}

// StringValue, NumberValue and BoolValue build scalar values.
func StringValue(s string) Value  { return Value{Kind: String, Str: s} }
func NumberValue(f float64) Value { return Value{Kind: Number, Num: f} }
func BoolValue(b bool) Value      { return Value{Kind: Bool, Bool: b} }

// Get returns the value of key in an object's fields and whether it is there.
func Get(fields []Field, key string) (Value, bool) {
	for i := range fields {
		if fields[i].Key == key {
			return fields[i].Value, true
		}
	}
	return Value{}, false
}

// Equal reports whether two values are the same JSON value (object key order matters).
func (v Value) Equal(w Value) bool {
	if v.Kind != w.Kind {
		return false
	}
	switch v.Kind {
	case Bool:
		return v.Bool == w.Bool
	case Number:
		return v.Num == w.Num || (math.IsNaN(v.Num) && math.IsNaN(w.Num))
	case String:
		return v.Str == w.Str
	case Array:
		if len(v.Items) != len(w.Items) {
			return false
		}
		for i := range v.Items {
			if !v.Items[i].Equal(w.Items[i]) {
				return false
			}
		}
	case Object:
		if len(v.Fields) != len(w.Fields) {
			return false
		}
		for i := range v.Fields {
			if v.Fields[i].Key != w.Fields[i].Key || !v.Fields[i].Value.Equal(w.Fields[i].Value) {
				return false
			}
		}
	}
	return true
}

// AppendJSON appends the JSON encoding of v to dst.
func (v Value) AppendJSON(dst []byte) []byte {
	switch v.Kind {
	case Bool:
		return strconv.AppendBool(dst, v.Bool)
	case Number:
		return AppendNumber(dst, v.Num)
	case String:
		return AppendString(dst, v.Str)
	case Array:
		dst = append(dst, '[')
		for i, it := range v.Items {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = it.AppendJSON(dst)
		}
		return append(dst, ']')
	case Object:
		return AppendObject(dst, v.Fields)
	}
	return append(dst, "null"...)
}

// AppendObject appends fields as a JSON object.
func AppendObject(dst []byte, fields []Field) []byte {
	dst = append(dst, '{')
	for i, f := range fields {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = AppendString(dst, f.Key)
		dst = append(dst, ':')
		dst = f.Value.AppendJSON(dst)
	}
	return append(dst, '}')
}

// AppendNumber appends f as a JSON number; integers print without exponent.
// NaN and infinities, which JSON cannot carry, print as null.
func AppendNumber(dst []byte, f float64) []byte {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return append(dst, "null"...)
	}
	if f == math.Trunc(f) && math.Abs(f) < 1e21 {
		return strconv.AppendFloat(dst, f, 'f', -1, 64)
	}
	return strconv.AppendFloat(dst, f, 'g', -1, 64)
}

const hexDigits = "0123456789abcdef"

// AppendString appends s as a JSON string. Invalid UTF-8 becomes U+FFFD.
func AppendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i++
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
