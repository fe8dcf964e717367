package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// A minimal JSON Schema (2020-12, the OpenAPI 3.1 dialect) validator for
// the tests: the keywords openapi.json uses, and no more. Schemas not
// using only these (and annotations) fail TestSchemaKeywords, so that no
// keyword is silently ignored.

// schemaKeywords are the assertions and applicators validate implements.
var schemaKeywords = map[string]bool{
	"$ref": true, "type": true, "enum": true, "const": true,
	"properties": true, "required": true, "additionalProperties": true,
	"propertyNames": true, "dependentRequired": true,
	"items": true, "minItems": true, "maxItems": true,
	"minimum": true, "maximum": true, "minLength": true, "maxLength": true, "pattern": true,
	"allOf": true, "anyOf": true, "oneOf": true, "not": true, "if": true, "then": true, "else": true,
}

// annotationKeywords do not assert anything.
var annotationKeywords = map[string]bool{
	"description": true, "default": true, "examples": true, "format": true, "title": true,
}

// schemaValidator checks JSON values, decoded with UseNumber, against
// the schemas of an OpenAPI document, decoded as plain JSON.
type schemaValidator struct {
	doc map[string]any
}

// decodeJSON decodes b keeping numbers as json.Number.
func decodeJSON(t *testing.T, b []byte) any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("decode %s: %v", b, err)
	}
	return v
}

// validate returns the ways v fails schema, each prefixed by the JSON
// pointer of the offending value.
func (sv *schemaValidator) validate(schema any, v any, ptr string) []string {
	switch s := schema.(type) {
	case bool:
		if !s {
			return []string{ptr + ": no value is allowed here"}
		}
		return nil
	case map[string]any:
		return sv.validateObject(s, v, ptr)
	}
	return []string{fmt.Sprintf("%s: bad schema %v", ptr, schema)}
}

func (sv *schemaValidator) validateObject(s map[string]any, v any, ptr string) []string {
	var errs []string
	fail := func(format string, args ...any) {
		errs = append(errs, ptr+": "+fmt.Sprintf(format, args...))
	}
	if ref, ok := s["$ref"].(string); ok {
		target := resolve(sv.doc, ref)
		if target == nil {
			fail("unresolved $ref %q", ref)
		} else {
			errs = append(errs, sv.validate(target, v, ptr)...)
		}
	}
	if types, ok := s["type"]; ok {
		var want []string
		switch x := types.(type) {
		case string:
			want = []string{x}
		case []any:
			for _, t := range x {
				want = append(want, t.(string))
			}
		}
		if !slices.ContainsFunc(want, func(t string) bool { return hasType(v, t) }) {
			fail("%s is not of type %v", short(v), want)
			return errs // the other keywords would only repeat it
		}
	}
	if enum, ok := s["enum"].([]any); ok && !slices.ContainsFunc(enum, func(e any) bool { return jsonEqual(e, v) }) {
		fail("%s is not one of %v", short(v), enum)
	}
	if c, ok := s["const"]; ok && !jsonEqual(c, v) {
		fail("%s is not %v", short(v), c)
	}
	if n, ok := number(v); ok {
		if m, ok := number(s["minimum"]); ok && n < m {
			fail("%v is less than %v", n, m)
		}
		if m, ok := number(s["maximum"]); ok && n > m {
			fail("%v is more than %v", n, m)
		}
	}
	if str, ok := v.(string); ok {
		n := len([]rune(str))
		if m, ok := number(s["minLength"]); ok && float64(n) < m {
			fail("%q is shorter than %v", str, m)
		}
		if m, ok := number(s["maxLength"]); ok && float64(n) > m {
			fail("string longer than %v", m)
		}
		if p, ok := s["pattern"].(string); ok {
			re, err := regexp.Compile(p)
			if err != nil {
				fail("bad pattern %q: %v", p, err)
			} else if !re.MatchString(str) {
				fail("%q does not match %s", str, p)
			}
		}
	}
	if arr, ok := v.([]any); ok {
		if m, ok := number(s["minItems"]); ok && float64(len(arr)) < m {
			fail("%d items, fewer than %v", len(arr), m)
		}
		if m, ok := number(s["maxItems"]); ok && float64(len(arr)) > m {
			fail("%d items, more than %v", len(arr), m)
		}
		if items, ok := s["items"]; ok {
			for i, x := range arr {
				errs = append(errs, sv.validate(items, x, ptr+"/"+strconv.Itoa(i))...)
			}
		}
	}
	if obj, ok := v.(map[string]any); ok {
		props, _ := s["properties"].(map[string]any)
		for _, r := range anySlice(s["required"]) {
			if _, ok := obj[r.(string)]; !ok {
				fail("required property %q is missing", r)
			}
		}
		if dr, ok := s["dependentRequired"].(map[string]any); ok {
			for k, deps := range dr {
				if _, ok := obj[k]; !ok {
					continue
				}
				for _, d := range anySlice(deps) {
					if _, ok := obj[d.(string)]; !ok {
						fail("%q needs %q", k, d)
					}
				}
			}
		}
		for _, k := range sortedKeys(obj) {
			if ps, ok := props[k]; ok {
				errs = append(errs, sv.validate(ps, obj[k], ptr+"/"+k)...)
			} else if ap, ok := s["additionalProperties"]; ok {
				if b, isBool := ap.(bool); isBool && !b {
					fail("unknown property %q", k)
				} else {
					errs = append(errs, sv.validate(ap, obj[k], ptr+"/"+k)...)
				}
			}
			if pn, ok := s["propertyNames"]; ok && len(sv.validate(pn, k, ptr)) > 0 {
				fail("property %q is not allowed here", k)
			}
		}
	}
	for _, sub := range anySlice(s["allOf"]) {
		errs = append(errs, sv.validate(sub, v, ptr)...)
	}
	if anyOf, ok := s["anyOf"].([]any); ok && !slices.ContainsFunc(anyOf, func(sub any) bool { return sv.valid(sub, v) }) {
		fail("%s matches none of anyOf", short(v))
	}
	if oneOf, ok := s["oneOf"].([]any); ok {
		n := 0
		for _, sub := range oneOf {
			if sv.valid(sub, v) {
				n++
			}
		}
		if n != 1 {
			fail("%s matches %d of oneOf, not exactly 1", short(v), n)
		}
	}
	if not, ok := s["not"]; ok && sv.valid(not, v) {
		fail("%s matches the schema it must not (%s)", short(v), short(not))
	}
	if cond, ok := s["if"]; ok {
		if sv.valid(cond, v) {
			if then, ok := s["then"]; ok {
				errs = append(errs, sv.validate(then, v, ptr)...)
			}
		} else if els, ok := s["else"]; ok {
			errs = append(errs, sv.validate(els, v, ptr)...)
		}
	}
	return errs
}

func (sv *schemaValidator) valid(schema, v any) bool { return len(sv.validate(schema, v, "")) == 0 }

// hasType reports whether v is of JSON Schema type t.
func hasType(v any, t string) bool {
	switch t {
	case "null":
		return v == nil
	case "boolean":
		_, ok := v.(bool)
		return ok
	case "string":
		_, ok := v.(string)
		return ok
	case "array":
		_, ok := v.([]any)
		return ok
	case "object":
		_, ok := v.(map[string]any)
		return ok
	case "number":
		_, ok := number(v)
		return ok
	case "integer":
		n, ok := number(v)
		return ok && n == math.Trunc(n) && !math.IsInf(n, 0)
	}
	return false
}

// number returns v as a float64 when it is a JSON number.
func number(v any) (float64, bool) {
	switch x := v.(type) {
	case json.Number:
		f, err := x.Float64()
		return f, err == nil
	case float64:
		return x, true
	}
	return 0, false
}

// jsonEqual compares JSON values, numbers by value.
func jsonEqual(a, b any) bool {
	if x, ok := number(a); ok {
		y, ok := number(b)
		return ok && x == y
	}
	return reflect.DeepEqual(a, b)
}

func anySlice(v any) []any {
	s, _ := v.([]any)
	return s
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// short renders a value for a message.
func short(v any) string {
	b, _ := json.Marshal(v)
	if s := string(b); len(s) <= 80 {
		return s
	}
	return string(b[:77]) + "..."
}

// walkSchemas calls fn on every schema object under schema (itself
// included), with its location.
func walkSchemas(schema any, at string, fn func(s map[string]any, at string)) {
	s, ok := schema.(map[string]any)
	if !ok {
		return
	}
	fn(s, at)
	for _, k := range []string{"items", "additionalProperties", "propertyNames", "not", "if", "then", "else"} {
		if sub, ok := s[k]; ok {
			walkSchemas(sub, at+"/"+k, fn)
		}
	}
	for _, k := range []string{"allOf", "anyOf", "oneOf"} {
		for i, sub := range anySlice(s[k]) {
			walkSchemas(sub, fmt.Sprintf("%s/%s/%d", at, k, i), fn)
		}
	}
	if props, ok := s["properties"].(map[string]any); ok {
		for _, k := range sortedKeys(props) {
			walkSchemas(props[k], at+"/properties/"+k, fn)
		}
	}
}

// TestSchemaValidator checks the validator itself on a few cases, so that
// the tests built on it cannot pass by accepting everything.
func TestSchemaValidator(t *testing.T) {
	sv := &schemaValidator{doc: map[string]any{"components": map[string]any{"schemas": map[string]any{
		"N": map[string]any{"type": "integer", "minimum": 1.0, "maximum": 3.0},
	}}}}
	schema := decodeJSON(t, []byte(`{
		"type": "object", "additionalProperties": false, "required": ["a"],
		"properties": {
			"a": {"$ref": "#/components/schemas/N"},
			"b": {"type": "array", "items": {"type": "string", "pattern": "^x", "minLength": 2}, "maxItems": 2},
			"c": {"enum": ["p", "q"]}, "d": {"type": ["number", "null"]}, "e": {"const": -1},
			"f": {"type": "string"}, "g": {"type": "string"}
		},
		"dependentRequired": {"f": ["g"]},
		"allOf": [{"if": {"properties": {"c": {"const": "q"}}, "required": ["c"]}, "then": {"required": ["e"]}, "else": {"not": {"required": ["e"]}}}],
		"oneOf": [{"required": ["b"]}, {"required": ["d"]}],
		"anyOf": [{"required": ["a"]}],
		"propertyNames": {"enum": ["a", "b", "c", "d", "e", "f", "g"]}
	}`))
	for _, c := range []struct {
		v  string
		ok bool
	}{
		{`{"a": 1, "b": ["xy"]}`, true},
		{`{"a": 2.0, "d": null}`, true},
		{`{"a": 3, "d": 1.5, "c": "q", "e": -1}`, true},
		{`{"a": 1, "b": [], "f": "", "g": ""}`, true},
		{`{"b": ["xy"]}`, false},                       // required
		{`{"a": 4, "b": ["xy"]}`, false},               // maximum through $ref
		{`{"a": 1.5, "b": ["xy"]}`, false},             // integer
		{`{"a": 1, "b": ["x"]}`, false},                // minLength
		{`{"a": 1, "b": ["yy"]}`, false},               // pattern
		{`{"a": 1, "b": ["xy", "xy", "xy"]}`, false},   // maxItems
		{`{"a": 1, "b": ["xy"], "z": 1}`, false},       // additionalProperties
		{`{"a": 1, "b": ["xy"], "d": 1}`, false},       // oneOf: both
		{`{"a": 1}`, false},                            // oneOf: neither
		{`{"a": 1, "b": [], "c": "r"}`, false},         // enum
		{`{"a": 1, "b": [], "c": "q"}`, false},         // if/then
		{`{"a": 1, "b": [], "e": -1}`, false},          // if/else
		{`{"a": 1, "b": [], "c": "q", "e": 1}`, false}, // const
		{`{"a": 1, "b": [], "f": ""}`, false},          // dependentRequired
		{`{"a": 1, "d": "1"}`, false},                  // type list
		{`[]`, false},
	} {
		errs := sv.validate(schema, decodeJSON(t, []byte(c.v)), "")
		if (len(errs) == 0) != c.ok {
			t.Errorf("%s: valid %v, want %v (%v)", c.v, len(errs) == 0, c.ok, errs)
		}
	}
	if !strings.Contains(strings.Join(sv.validate(schema, decodeJSON(t, []byte(`{"a": 1, "b": [1]}`)), ""), "\n"), "/b/0") {
		t.Error("errors do not name the offending value")
	}
}
