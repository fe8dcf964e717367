package wire

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/veil-analytics/veil/internal/event"
)

// toAny converts a Value into what encoding/json decodes into an any.
func toAny(v event.Value) any {
	switch v.Kind {
	case event.Bool:
		return v.Bool
	case event.Number:
		return v.Num
	case event.String:
		return v.Str
	case event.Array:
		out := make([]any, len(v.Items))
		for i, it := range v.Items {
			out[i] = toAny(it)
		}
		return out
	case event.Object:
		out := make(map[string]any, len(v.Fields))
		for _, f := range v.Fields {
			out[f.Key] = toAny(f.Value)
		}
		return out
	}
	return nil
}

// itemsAny is the any form of a ParseItems result for data holding a
// top-level array (its elements) or a single value.
func itemsAny(items []Item, array bool) any {
	if !array {
		if len(items) != 1 {
			return fmt.Sprintf("<%d items>", len(items))
		}
		return toAny(items[0].Value)
	}
	out := make([]any, len(items))
	for i, it := range items {
		out[i] = toAny(it.Value)
	}
	return out
}

// sameAny is reflect.DeepEqual for decoded JSON, but compares numbers by
// their bits so that -0 and 0 differ, and reports where values differ.
func sameAny(a, b any) (string, bool) {
	switch a := a.(type) {
	case nil:
		return "null", b == nil
	case bool:
		bb, ok := b.(bool)
		return "bool", ok && a == bb
	case float64:
		bf, ok := b.(float64)
		return fmt.Sprintf("number %v vs %v", a, b), ok && math.Float64bits(a) == math.Float64bits(bf)
	case string:
		bs, ok := b.(string)
		return fmt.Sprintf("string %q vs %q", a, b), ok && a == bs
	case []any:
		bs, ok := b.([]any)
		if !ok || len(a) != len(bs) {
			return fmt.Sprintf("array len %d vs %T", len(a), b), false
		}
		for i := range a {
			if where, ok := sameAny(a[i], bs[i]); !ok {
				return "[" + strconv.Itoa(i) + "]" + where, false
			}
		}
		return "", true
	case map[string]any:
		bm, ok := b.(map[string]any)
		if !ok || len(a) != len(bm) {
			return fmt.Sprintf("object len %d vs %T", len(a), b), false
		}
		keys := make([]string, 0, len(a))
		for k := range a {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			bv, ok := bm[k]
			if !ok {
				return fmt.Sprintf("missing key %q", k), false
			}
			if where, ok := sameAny(a[k], bv); !ok {
				return "." + k + where, false
			}
		}
		return "", true
	}
	return fmt.Sprintf("unknown type %T", a), false
}

func firstByte(data []byte) byte {
	if i := skipSpace(data); i < len(data) {
		return data[i]
	}
	return 0
}

// checkAgainstStdlib is the differential oracle: ParseItems in single-value
// mode must accept exactly what json.Valid accepts (numbers out of float64
// range apart) and decode it to what json.Unmarshal gives.
func checkAgainstStdlib(t *testing.T, data []byte) {
	t.Helper()
	items, err := ParseItems(data, ParseOptions{MaxDepth: 10000})
	if err != nil {
		checkErrorText(t, err)
	}
	if !json.Valid(data) {
		if err == nil {
			t.Fatalf("accepted invalid JSON %q", data)
		}
		return
	}
	var want any
	if jerr := json.Unmarshal(data, &want); jerr != nil {
		if err == nil || !strings.HasPrefix(err.Error(), "number out of range at line ") {
			t.Fatalf("encoding/json: %v; ParseItems: %v; input %q", jerr, err, data)
		}
		return
	}
	if err != nil {
		t.Fatalf("rejected valid JSON %q: %v", data, err)
	}
	array := firstByte(data) == '['
	if where, ok := sameAny(want, itemsAny(items, array)); !ok {
		t.Fatalf("decoded differently at %s\ninput %q", where, data)
	}
	total := 0
	for _, it := range items {
		if it.Size <= 0 || it.Line < 1 {
			t.Fatalf("item size %d line %d", it.Size, it.Line)
		}
		total += it.Size
	}
	if !array && total != len(bytes.TrimSpace(data)) {
		t.Fatalf("size %d, want %d", total, len(bytes.TrimSpace(data)))
	}
	if total > len(data) {
		t.Fatalf("sizes add up to %d > %d", total, len(data))
	}
	// Re-encoding and parsing again gives the same values.
	for _, it := range items {
		enc := it.Value.AppendJSON(nil)
		again, err := ParseItems(enc, ParseOptions{MaxDepth: 10000})
		if err != nil {
			t.Fatalf("re-encoded %q does not parse: %v", enc, err)
		}
		var back event.Value
		if it.Value.Kind == event.Array {
			back = event.Value{Kind: event.Array, Items: make([]event.Value, len(again))}
			for i := range again {
				back.Items[i] = again[i].Value
			}
		} else {
			back = again[0].Value
		}
		if !back.Equal(it.Value) {
			t.Fatalf("round trip changed %q", enc)
		}
	}
}

// errorVocabulary holds every error message the package produces, with
// digits removed. Matching against it proves that no payload content
// leaks into an error.
var errorVocabulary = func() map[string]bool {
	m := map[string]bool{}
	for _, s := range []string{
		"empty payload",
		"batch has more than  records",
		"JSON nesting deeper than  levels at line , column ",
		"number out of range at line , column ",
		"no data: send a data= form field, a data= query parameter or a JSON body",
		"data is empty",
		"form body has more than  fields",
		"data is not valid base: unexpected padding at offset ",
		"data is not valid base: data after padding at offset ",
		"data is not valid base: illegal character at offset ",
		"data is not valid base: truncated at offset  (incomplete last group)",
		"body is not valid gzip: invalid gzip header",
		"body is not valid gzip: checksum mismatch",
		"body is not valid gzip: unexpected data after the gzip stream",
		"body is not valid gzip: truncated data",
		"body is not valid gzip: corrupt deflate data at offset ",
		"body too large: more than  bytes",
		"body too large: more than  bytes after gzip inflation",
	} {
		m[s] = true
	}
	syntax := []string{
		"unexpected end of input, expected a value",
		"invalid literal, expected true",
		"invalid literal, expected false",
		"invalid literal, expected null",
		"invalid \\u escape in string, expected  hex digits",
		"invalid escape sequence in string",
		"unterminated string",
		"control character U+ in string (escape it)",
		"control character U+A in string (escape it)",
		"control character U+B in string (escape it)",
		"control character U+C in string (escape it)",
		"control character U+D in string (escape it)",
		"control character U+E in string (escape it)",
		"control character U+F in string (escape it)",
		"invalid number: leading zero",
		"invalid number: expected a digit",
		"invalid number: expected a digit after '.'",
		"invalid number: expected a digit in the exponent",
	}
	things := []string{"unexpected end of input", "unexpected letter", "unexpected digit", "unexpected space",
		"unexpected non-ASCII character", `unexpected "'"`}
	for c := 0x21; c < 0x7F; c++ {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '\'') {
			things = append(things, "unexpected '"+string(rune(c))+"'")
		}
	}
	for _, h := range []string{"", "A", "B", "C", "D", "E", "F"} {
		for _, h2 := range []string{"", "F"} {
			things = append(things, "unexpected control character U+"+h2+h)
		}
	}
	for _, th := range things {
		for _, tail := range []string{", expected a value", ", expected '\"' to start an object key",
			", expected ':' after an object key", ", expected ',' or '}'", ", expected ',' or ']'",
			" after the top-level value", " after a value; NDJSON needs one value per line"} {
			syntax = append(syntax, th+tail)
		}
	}
	for _, s := range syntax {
		m["invalid JSON at line , column : "+s] = true
	}
	return m
}()

// checkErrorText fails unless err's message, digits removed, is one the
// package is known to produce.
func checkErrorText(t *testing.T, err error) {
	t.Helper()
	msg := strings.Map(func(r rune) rune {
		if '0' <= r && r <= '9' {
			return -1
		}
		return r
	}, err.Error())
	if !errorVocabulary[msg] {
		t.Fatalf("unexpected error text %q", err.Error())
	}
}

func gzipBytes(t testing.TB, data []byte) []byte {
	t.Helper()
	var b bytes.Buffer
	w := gzip.NewWriter(&b)
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}
