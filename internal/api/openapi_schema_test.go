package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/veil-analytics/veil/internal/event"
	"github.com/veil-analytics/veil/internal/query"
	"github.com/veil-analytics/veil/internal/scan/scantest"
)

// The report schemas of openapi.json are written by hand from
// internal/query's spec and answer types. These tests keep them true:
// their properties against the Go types' JSON fields (both ways), and
// specs (from docs/REPORTS.md, and a table of right and wrong ones)
// against both the schemas and the engines, which must agree, and the
// engines' answers against the answer schemas.

// reportSchemas names the schemas of each report kind's spec and answer;
// "cohorts" is the cohort definition.
var reportSchemas = []struct {
	kind, spec, result   string
	specType, resultType reflect.Type
}{
	{"insights", "InsightsSpec", "InsightsResult", reflect.TypeFor[query.InsightsSpec](), reflect.TypeFor[query.InsightsResult]()},
	{"funnels", "FunnelsSpec", "FunnelsResult", reflect.TypeFor[query.FunnelSpec](), reflect.TypeFor[query.FunnelResult]()},
	{"retention", "RetentionSpec", "RetentionResult", reflect.TypeFor[query.RetentionSpec](), reflect.TypeFor[query.RetentionResult]()},
	{"flows", "FlowsSpec", "FlowsResult", reflect.TypeFor[query.FlowsSpec](), reflect.TypeFor[query.FlowsResult]()},
	{"cohorts", "CohortDefinition", "", reflect.TypeFor[query.CohortDefinition](), nil},
}

// schemaNames maps the Go types whose schema has another name.
var schemaNames = map[string]string{"FunnelSpec": "FunnelsSpec", "FunnelResult": "FunnelsResult"}

// fieldExceptions are where a Go field's tag does not tell its schema.
var fieldExceptions = map[string]string{
	// The embedded Step's event is required of event conditions only.
	"CohortCondition.event": "not required",
	// Paths below the privacy threshold are left out, not answered null.
	"FlowPath.users": "not null",
}

func openAPIDocument(t *testing.T) map[string]any {
	t.Helper()
	var doc map[string]any
	if err := json.Unmarshal(OpenAPI(), &doc); err != nil {
		t.Fatal(err)
	}
	return doc
}

func schemaRef(name string) map[string]any {
	return map[string]any{"$ref": "#/components/schemas/" + name}
}

// TestSchemaKeywords checks that the document's schemas use only keywords
// the test validator implements, or annotations.
func TestSchemaKeywords(t *testing.T) {
	doc := openAPIDocument(t)
	check := func(s map[string]any, at string) {
		for k := range s {
			if !schemaKeywords[k] && !annotationKeywords[k] {
				t.Errorf("%s: keyword %q is not known to the test validator", at, k)
			}
		}
	}
	for name, s := range doc["components"].(map[string]any)["schemas"].(map[string]any) {
		walkSchemas(s, "#/components/schemas/"+name, check)
	}
	forEachMediaType(doc, func(at string, mt map[string]any) {
		walkSchemas(mt["schema"], at+"/schema", check)
	})
}

// forEachMediaType calls fn on every media type object of the document's
// operations and component responses.
func forEachMediaType(doc map[string]any, fn func(at string, mt map[string]any)) {
	content := func(at string, holder any) {
		h, _ := holder.(map[string]any)
		c, _ := h["content"].(map[string]any)
		for _, k := range sortedKeys(c) {
			fn(at+"/content/"+k, c[k].(map[string]any))
		}
	}
	paths := doc["paths"].(map[string]any)
	for _, p := range sortedKeys(paths) {
		item := paths[p].(map[string]any)
		for _, m := range sortedKeys(item) {
			op, ok := item[m].(map[string]any)
			if !ok || m == "parameters" {
				continue
			}
			at := p + " " + m
			content(at+"/requestBody", op["requestBody"])
			resps, _ := op["responses"].(map[string]any)
			for _, code := range sortedKeys(resps) {
				content(at+"/responses/"+code, resps[code])
			}
		}
	}
	resps := doc["components"].(map[string]any)["responses"].(map[string]any)
	for _, name := range sortedKeys(resps) {
		content("#/components/responses/"+name, resps[name])
	}
}

// TestReportRoutesSchemas checks that each report path takes its kind's
// spec and answers its kind's result.
func TestReportRoutesSchemas(t *testing.T) {
	doc := openAPIDocument(t)
	paths := doc["paths"].(map[string]any)
	for _, r := range reportSchemas {
		if r.result == "" {
			continue
		}
		op, _ := resolve(doc, "#/paths/"+strings.ReplaceAll("/api/v1/projects/{id}/reports/"+r.kind, "/", "~1")+"/post").(map[string]any)
		if op == nil {
			t.Errorf("no POST operation for report %s (paths: %v)", r.kind, slices.Sorted(maps.Keys(paths)))
			continue
		}
		body := resolve(op, "#/requestBody/content/application~1json/schema")
		if !reflect.DeepEqual(body, schemaRef(r.spec)) {
			t.Errorf("%s: request body schema %v, want %s", r.kind, body, r.spec)
		}
		ok := resolve(op, "#/responses/200/content/application~1json/schema")
		if !reflect.DeepEqual(ok, schemaRef(r.result)) {
			t.Errorf("%s: 200 schema %v, want %s", r.kind, ok, r.result)
		}
	}
}

// TestReportSchemasMatchGoTypes checks the spec and answer schemas
// against internal/query's types: the same properties, required exactly
// when the JSON tag has no omitempty, of matching JSON types, nullable
// in answers where the Go field is a pointer; specs refuse other
// properties and nulls.
func TestReportSchemasMatchGoTypes(t *testing.T) {
	c := &typeChecker{t: t, doc: openAPIDocument(t), seen: map[reflect.Type]bool{}}
	for _, r := range reportSchemas {
		c.spec = true
		c.checkStruct(r.specType, schemaRef(r.spec), r.spec)
		if r.resultType != nil {
			c.spec = false
			c.checkStruct(r.resultType, schemaRef(r.result), r.result)
		}
	}
	for _, name := range []string{"Filter", "Step", "Breakdown", "Duration", "Series", "Formula", "Exclusion", "CohortCondition",
		"InsightsSeries", "InsightsRow", "FunnelStep", "TTCBucket", "FunnelSegment", "FunnelInterval",
		"RetentionTable", "RetentionCohort", "FlowNode", "FlowLink", "FlowPath"} {
		if !slices.ContainsFunc(slices.Collect(maps.Keys(c.seen)), func(t reflect.Type) bool { return t.Name() == name }) {
			t.Errorf("query.%s was not reached from the report types", name)
		}
	}
}

type typeChecker struct {
	t    *testing.T
	doc  map[string]any
	spec bool // checking a spec type (else an answer type)
	seen map[reflect.Type]bool
}

// goField is one JSON field of a Go struct.
type goField struct {
	name      string
	typ       reflect.Type
	omitempty bool
}

// jsonFields lists the JSON fields of a struct type as encoding/json sees
// them, embedded structs' fields promoted unless shadowed.
func jsonFields(t reflect.Type) []goField {
	var out []goField
	var embedded []reflect.Type
	seen := map[string]bool{}
	for i := range t.NumField() {
		f := t.Field(i)
		name, opts, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" && opts == "" {
			continue
		}
		if f.Anonymous && name == "" {
			ft := f.Type
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				embedded = append(embedded, ft)
				continue
			}
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		out = append(out, goField{name, f.Type, slices.Contains(strings.Split(opts, ","), "omitempty")})
		seen[name] = true
	}
	for _, et := range embedded {
		for _, f := range jsonFields(et) {
			if !seen[f.name] {
				out = append(out, f)
				seen[f.name] = true
			}
		}
	}
	return out
}

// deref follows $ref until a schema without one; it returns the schema
// and the last referenced name.
func (c *typeChecker) deref(s any) (map[string]any, string) {
	name := ""
	m, _ := s.(map[string]any)
	for m != nil {
		ref, ok := m["$ref"].(string)
		if !ok {
			break
		}
		name = ref[strings.LastIndex(ref, "/")+1:]
		m, _ = resolve(c.doc, ref).(map[string]any)
	}
	if name == "" && m != nil {
		// A schema that refines another: allOf [{$ref}, ...].
		for _, sub := range anySlice(m["allOf"]) {
			if ref, ok := sub.(map[string]any)["$ref"].(string); ok {
				name = ref[strings.LastIndex(ref, "/")+1:]
				break
			}
		}
	}
	return m, name
}

// objectParts merges the properties, required names and
// additionalProperties: false of a schema and its allOf members.
func (c *typeChecker) objectParts(s any) (props map[string]any, required map[string]bool, closed bool) {
	props, required = map[string]any{}, map[string]bool{}
	var walk func(s any)
	walk = func(s any) {
		m, _ := c.deref(s)
		if m == nil {
			return
		}
		if p, ok := m["properties"].(map[string]any); ok {
			for k, v := range p {
				if _, dup := props[k]; !dup {
					props[k] = v
				}
			}
		}
		for _, r := range anySlice(m["required"]) {
			required[r.(string)] = true
		}
		if m["additionalProperties"] == false {
			closed = true
		}
		for _, sub := range anySlice(m["allOf"]) {
			walk(sub)
		}
	}
	walk(s)
	return props, required, closed
}

// types returns a schema's JSON types, looking through $ref and allOf.
func (c *typeChecker) types(s any) []string {
	m, _ := c.deref(s)
	switch x := m["type"].(type) {
	case string:
		return []string{x}
	case []any:
		var out []string
		for _, t := range x {
			out = append(out, t.(string))
		}
		return out
	}
	for _, sub := range anySlice(m["allOf"]) {
		if ts := c.types(sub); len(ts) > 0 {
			return ts
		}
	}
	return nil
}

func (c *typeChecker) checkStruct(t reflect.Type, schema any, at string) {
	if c.seen[t] {
		return
	}
	c.seen[t] = true
	if _, name := c.deref(schema); name != "" {
		want := t.Name()
		if n, ok := schemaNames[want]; ok {
			want = n
		}
		if name != want {
			c.t.Errorf("%s: query.%s is described by schema %s, want %s", at, t.Name(), name, want)
		}
	}
	props, required, closed := c.objectParts(schema)
	if c.spec && !closed {
		c.t.Errorf("%s: a spec schema must have additionalProperties: false (the engines refuse unknown fields)", at)
	}
	fields := jsonFields(t)
	names := map[string]bool{}
	for _, f := range fields {
		names[f.name] = true
		where := t.Name() + "." + f.name
		ps, ok := props[f.name]
		if !ok {
			c.t.Errorf("%s: property %q of query.%s is not in the schema", at, f.name, t.Name())
			continue
		}
		if fieldExceptions[where] != "not required" && required[f.name] == f.omitempty {
			c.t.Errorf("%s: %q required %v, but its json tag has omitempty %v", at, f.name, required[f.name], f.omitempty)
		}
		c.checkType(f.typ, ps, at+"/"+f.name, f.omitempty || fieldExceptions[where] == "not null")
	}
	for _, k := range slices.Sorted(maps.Keys(props)) {
		if !names[k] {
			c.t.Errorf("%s: schema property %q is not a field of query.%s", at, k, t.Name())
		}
	}
	for k := range required {
		if !names[k] {
			c.t.Errorf("%s: required %q is not a field of query.%s", at, k, t.Name())
		}
	}
}

// checkType checks a Go type against a property's schema; noNull tells
// that a pointer is never encoded as null.
func (c *typeChecker) checkType(t reflect.Type, schema any, at string, noNull bool) {
	types := c.types(schema)
	nullable := slices.Contains(types, "null")
	if c.spec && nullable {
		c.t.Errorf("%s: spec schemas do not allow null", at)
	}
	if t.Kind() == reflect.Pointer {
		if !c.spec && !noNull && !nullable {
			c.t.Errorf("%s: a %v is null when suppressed or undefined: the schema must allow null", at, t)
		}
		t = t.Elem()
	} else if !c.spec && nullable && t.Kind() != reflect.Slice {
		c.t.Errorf("%s: a %v is never null", at, t)
	}
	var want string
	switch t.Kind() {
	case reflect.Interface:
		return // any JSON value; the schema says which
	case reflect.String:
		want = "string"
	case reflect.Bool:
		want = "boolean"
	case reflect.Int, reflect.Int32, reflect.Int64:
		want = "integer"
	case reflect.Float64:
		want = "number"
	case reflect.Slice:
		want = "array"
	case reflect.Struct:
		want = "object"
	default:
		c.t.Errorf("%s: unexpected Go type %v", at, t)
		return
	}
	if !slices.Contains(types, want) || len(types) > 1 && !(len(types) == 2 && nullable) {
		c.t.Errorf("%s: schema types %v, want %s for Go type %v", at, types, want, t)
	}
	switch t.Kind() {
	case reflect.Slice:
		m, _ := c.deref(schema)
		items, ok := m["items"]
		if !ok {
			c.t.Errorf("%s: an array without items", at)
			return
		}
		c.checkType(t.Elem(), items, at+"/items", false)
	case reflect.Struct:
		c.checkStruct(t, schema, at)
	}
}

// docExamples returns the first JSON example of each section of
// docs/REPORTS.md, by report kind ("cohorts" for the cohort definition),
// with the elisions ("[...]") filled in.
func docExamples(t *testing.T) map[string]string {
	t.Helper()
	b, err := os.ReadFile("../../docs/REPORTS.md")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	section, inBlock := "", false
	var block []string
	for _, line := range strings.Split(string(b), "\n") {
		switch {
		case strings.HasPrefix(line, "## "):
			section = strings.ToLower(strings.TrimSpace(strings.TrimPrefix(line, "## ")))
		case line == "```json":
			inBlock, block = true, nil
		case inBlock && line == "```":
			inBlock = false
			if _, ok := out[section]; !ok {
				out[section] = strings.Join(block, "\n")
			}
		case inBlock:
			block = append(block, line)
		}
	}
	for k, v := range out {
		v = strings.ReplaceAll(v, `"conditions": [...]`, `"conditions": [{"type": "event", "event": "signup_completed", "last_days": 7}]`)
		out[k] = strings.ReplaceAll(v, "[...]", "[]")
	}
	for _, r := range reportSchemas {
		if _, ok := out[r.kind]; !ok {
			t.Fatalf("docs/REPORTS.md has no JSON example under \"## %s\"", strings.ToUpper(r.kind[:1])+r.kind[1:])
		}
	}
	return out
}

// fakeCohorts are saved cohorts 1 to 9, each the users who purchased.
type fakeCohorts struct{}

func (fakeCohorts) Cohort(_ context.Context, id int64) (string, []byte, error) {
	if id < 1 || id > 9 {
		return "", nil, query.ErrNoCohort
	}
	return fmt.Sprintf("buyers %d", id), []byte(`{"conditions": [{"type": "event", "event": "purchase"}]}`), nil
}

// reportSource is 80 users' events around January 2024, with the events
// and properties of the docs' examples.
func reportSource() *scantest.Mem {
	rng := rand.New(rand.NewPCG(2024, 1))
	names := []string{"page_view", "signup_started", "signup_completed", "purchase", "logout", "heartbeat", "support_ticket"}
	countries := []string{"FR", "DE", "US", "JP"}
	devices := []string{"ios", "android", "web"}
	plans := []string{"free", "pro", "enterprise"}
	start := time.Date(2023, 12, 15, 0, 0, 0, 0, time.UTC).UnixMilli()
	var evs []scantest.Event
	profiles := map[uint64]map[string]event.Value{}
	for u := uint64(1); u <= 80; u++ {
		if u%10 != 0 {
			profiles[u] = map[string]event.Value{"plan": event.StringValue(plans[rng.IntN(len(plans))])}
		}
		country := countries[rng.IntN(len(countries))]
		ts := start + rng.Int64N(45*86_400_000)
		cur := rng.IntN(3)
		for range 3 + rng.IntN(60) {
			props := map[string]event.Value{"country": event.StringValue(country)}
			if rng.IntN(5) > 0 {
				props["device"] = event.StringValue(devices[rng.IntN(len(devices))])
			}
			if names[cur] == "purchase" && rng.IntN(6) > 0 {
				props["amount"] = event.NumberValue(float64(rng.IntN(20000)) / 100)
			}
			evs = append(evs, scantest.Event{User: u, Time: ts, Name: names[cur], Props: props})
			switch r := rng.IntN(10); {
			case r < 5:
				cur = min(cur+1, 3) // signup_started, signup_completed, purchase
			case r < 8:
				cur = rng.IntN(len(names))
			}
			gaps := []int64{1_000, 30_000, 600_000, 3_600_000, 86_400_000, 4 * 86_400_000}
			ts += 1 + rng.Int64N(gaps[rng.IntN(len(gaps))])
		}
	}
	return scantest.New(evs, profiles)
}

// reportEnv is the engines' environment of the tests; k is the privacy
// threshold.
func reportEnv(k int) query.Env {
	return query.Env{TimeZone: "UTC", MinGroupSize: k, Cohorts: fakeCohorts{},
		Now: time.Date(2024, 2, 20, 12, 0, 0, 0, time.UTC), Workers: 2}
}

// runEngine runs a spec of kind (or validates a cohort definition),
// returning the answer.
func runEngine(src *scantest.Mem, env query.Env, kind, spec string) (any, error) {
	if kind == "cohorts" {
		return nil, query.ValidateCohort(context.Background(), src.Events(), env, []byte(spec))
	}
	return query.Run(context.Background(), src, env, kind, []byte(spec))
}

func kindSchemas(kind string) (spec, result string) {
	for _, r := range reportSchemas {
		if r.kind == kind {
			return r.spec, r.result
		}
	}
	panic("unknown kind " + kind)
}

// answerChecker validates engine answers against the answer schemas and
// notes which answers had nulls and suppressed values.
type answerChecker struct {
	t          *testing.T
	sv         *schemaValidator
	src, empty *scantest.Mem
	nulls      map[string]bool // kinds with a null in some answer
	suppressed map[string]bool // kinds with a suppressed value in some answer
}

// check runs spec on the data, with and without a privacy threshold, and
// on no data, and validates each answer.
func (ac *answerChecker) check(kind, spec string) {
	_, result := kindSchemas(kind)
	if result == "" {
		return
	}
	for _, v := range []struct {
		name string
		src  *scantest.Mem
		k    int
	}{{"data", ac.src, 0}, {"data, k=8", ac.src, 8}, {"no data", ac.empty, 0}} {
		res, err := runEngine(v.src, reportEnv(v.k), kind, spec)
		if err != nil {
			ac.t.Errorf("%s %s (%s): %v", kind, spec, v.name, err)
			continue
		}
		b, err := json.Marshal(res)
		if err != nil {
			ac.t.Fatal(err)
		}
		if errs := ac.sv.validate(schemaRef(result), decodeJSON(ac.t, b), ""); len(errs) > 0 {
			ac.t.Errorf("%s answer (%s) to %s fails schema %s:\n  %s\nanswer: %.2000s", kind, v.name, spec, result, strings.Join(errs, "\n  "), b)
		}
		if strings.Contains(string(b), "null") {
			ac.nulls[kind] = true
		}
		if strings.Contains(string(b), `"suppressed":true`) {
			ac.suppressed[kind] = true
		}
	}
}

// TestReportSchemaDocExamples validates the examples of docs/REPORTS.md
// and of openapi.json against the schemas and the engines, and the
// engines' answers to them against the answer schemas.
func TestReportSchemaDocExamples(t *testing.T) {
	doc := openAPIDocument(t)
	sv := &schemaValidator{doc: doc}
	ac := &answerChecker{t: t, sv: sv, src: reportSource(), empty: scantest.New(nil, nil), nulls: map[string]bool{}, suppressed: map[string]bool{}}
	examples := docExamples(t)
	for _, kind := range slices.Sorted(maps.Keys(examples)) {
		ex := examples[kind]
		spec, _ := kindSchemas(kind)
		if errs := sv.validate(schemaRef(spec), decodeJSON(t, []byte(ex)), ""); len(errs) > 0 {
			t.Errorf("docs/REPORTS.md %s example fails schema %s:\n  %s", kind, spec, strings.Join(errs, "\n  "))
		}
		if _, err := runEngine(ac.src, reportEnv(0), kind, ex); err != nil {
			t.Errorf("docs/REPORTS.md %s example: the engine refuses it: %v", kind, err)
		}
		ac.check(kind, ex)
	}

	// Every example in openapi.json fits its schema; the report and
	// cohort ones the engines too.
	n := 0
	forEachMediaType(doc, func(at string, mt map[string]any) {
		ex, ok := mt["example"]
		if !ok {
			return
		}
		n++
		b, _ := json.Marshal(ex)
		if errs := sv.validate(mt["schema"], decodeJSON(t, b), ""); len(errs) > 0 {
			t.Errorf("%s: the example fails its schema:\n  %s", at, strings.Join(errs, "\n  "))
		}
		kind := ""
		if strings.Contains(at, "/reports/") && strings.Contains(at, "/requestBody/") {
			kind = strings.Fields(at[strings.Index(at, "/reports/")+len("/reports/"):])[0]
		} else if strings.HasPrefix(at, "/api/v1/projects/{id}/cohorts post/requestBody") {
			kind, b = "cohorts", mustMarshal(t, ex.(map[string]any)["definition"])
		}
		if kind != "" {
			if _, err := runEngine(ac.src, reportEnv(0), kind, string(b)); err != nil {
				t.Errorf("%s: the engine refuses the example: %v", at, err)
			}
			ac.check(kind, string(b))
		}
	})
	if n < 15 {
		t.Errorf("only %d examples in openapi.json", n)
	}
}

func mustMarshal(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// merge sets top-level fields of a JSON object (a null deletes one).
func merge(base, patch string) string {
	var b, p map[string]any
	if err := json.Unmarshal([]byte(base), &b); err != nil {
		panic(err)
	}
	if err := json.Unmarshal([]byte(patch), &p); err != nil {
		panic(patch + ": " + err.Error())
	}
	for k, v := range p {
		if v == nil {
			delete(b, k)
		} else {
			b[k] = v
		}
	}
	out, _ := json.Marshal(b)
	return string(out)
}

// repeat is n copies of elem, as a JSON array.
func repeat(elem string, n int) string {
	return "[" + strings.TrimSuffix(strings.Repeat(elem+",", n), ",") + "]"
}

// schemaCases are specs the schemas and the engines must agree on: ok
// ones both accept, the others both refuse.
func schemaCases() []struct {
	kind, spec string
	ok         bool
} {
	type c = struct {
		kind, spec string
		ok         bool
	}
	var cs []c
	add := func(kind, base string, ok bool, patches ...string) {
		for _, p := range patches {
			cs = append(cs, c{kind, merge(base, p), ok})
		}
	}
	filter := func(f string) string { return `{"filters": [` + f + `]}` }

	ins := `{"from": "2024-01-01", "to": "2024-01-30", "series": [{"event": "page_view"}]}`
	add("insights", ins, true, `{}`,
		`{"interval": "hour"}`, `{"interval": "week"}`, `{"interval": "month"}`, `{"interval": "none", "timezone": "Europe/Paris"}`,
		`{"series": [{"event": "page_view", "measure": "total"}, {"event": "page_view", "measure": "unique"},
			{"event": "purchase", "measure": "sum", "property": "amount"}, {"event": "purchase", "measure": "avg", "property": "amount"},
			{"event": "purchase", "measure": "min", "property": "amount"}, {"event": "purchase", "measure": "max", "property": "amount"},
			{"event": "purchase", "measure": "median", "property": "amount"}, {"event": "purchase", "measure": "p90", "property": "amount"},
			{"event": "purchase", "measure": "per_user", "per_user": "avg"}, {"event": "purchase", "measure": "per_user", "property": "amount", "per_user": "sum"},
			{"event": "page_view", "measure": "per_user", "per_user": "median"}, {"event": "page_view", "measure": "per_user", "per_user": "min"},
			{"event": "page_view", "measure": "per_user", "per_user": "max"}, {"event": "page_view", "measure": "per_user", "per_user": "p90"},
			{"event": "$any_event", "measure": "distribution", "filters": [{"property": "device", "op": "neq", "value": "web"}]}],
		  "formulas": [{"expression": "(A - B) * 100 / A"}, {"name": "x", "expression": "-C + 2.5"}], "compare_previous": true}`,
		`{"breakdowns": [{"property": "country"}, {"property": "plan", "source": "user"}], "limit": 2}`,
		`{"breakdowns": [{"cohorts": [1, 2]}], "limit": 1000, "interval": "week"}`,
		`{"series": [{"event": "purchase", "measure": "avg", "property": "amount"}], "breakdowns": [{"property": "amount"}], "limit": 5}`,
		`{"series": [{"event": "page_view", "measure": "distribution"}, {"event": "purchase", "measure": "per_user", "per_user": "avg"}], "breakdowns": [{"property": "device", "source": "event"}], "limit": 1}`,
		filter(`{"property": "country", "op": "eq", "value": "FR"}, {"property": "country", "op": "neq", "value": 1},
			{"property": "country", "op": "contains", "value": "f"}, {"property": "device", "op": "not_contains", "value": "x"},
			{"property": "country", "op": "in", "values": ["FR", "DE"]}, {"property": "country", "op": "not_in", "values": [1, true]},
			{"property": "amount", "op": "gt", "value": -1}, {"property": "amount", "op": "gte", "value": 0.5},
			{"property": "amount", "op": "lt", "value": 1e6}, {"property": "amount", "op": "lte", "value": 1000},
			{"property": "amount", "op": "set"}, {"property": "x", "op": "not_set"}, {"property": "plan", "source": "user", "op": "eq", "value": true},
			{"op": "in_cohort", "cohort": 1}, {"op": "not_in_cohort", "cohort": 2}`),
	)
	add("insights", ins, false, `{"series": null}`, `{"series": []}`, `{"series": `+repeat(`{"event": "a"}`, 27)+`}`,
		`{"foo": 1}`, `{"from": null}`, `{"to": null}`, `{"from": "2024/01/01"}`, `{"interval": "year"}`, `{"limit": 1001}`, `{"limit": -1}`,
		`{"limit": 2.5}`, `{"compare_previous": "yes"}`,
		`{"series": [{"event": ""}]}`, `{"series": [{}]}`, `{"series": [{"event": "a", "measure": "count"}]}`,
		`{"series": [{"event": "a", "measure": "sum"}]}`, `{"series": [{"event": "a", "property": "amount"}]}`,
		`{"series": [{"event": "a", "measure": "distribution", "property": "amount"}]}`,
		`{"series": [{"event": "a", "measure": "per_user"}]}`, `{"series": [{"event": "a", "measure": "per_user", "per_user": "total"}]}`,
		`{"series": [{"event": "a", "measure": "unique", "per_user": "avg"}]}`, `{"series": [{"event": "a", "per_user": "avg"}]}`,
		`{"breakdowns": [{"property": "a"}, {"property": "b"}, {"property": "c"}]}`, `{"breakdowns": [{}]}`,
		`{"breakdowns": [{"property": "country", "cohorts": [1]}]}`, `{"breakdowns": [{"property": "country", "source": "session"}]}`,
		`{"breakdowns": [{"cohorts": `+repeat("1", 21)+`}]}`,
		`{"formulas": [{"name": "x"}]}`, `{"formulas": [{"expression": "A ^ A"}]}`, `{"formulas": [{"expression": "a"}]}`,
		filter(`{"property": "country", "op": "like", "value": "FR"}`), filter(`{"property": "country", "value": "FR"}`),
		filter(`{"property": "country", "op": "eq"}`), filter(`{"op": "eq", "value": "FR"}`), filter(`{"property": "", "op": "set"}`),
		filter(`{"property": "country", "op": "in", "values": []}`), filter(`{"property": "country", "op": "in", "value": "FR"}`),
		filter(`{"property": "country", "op": "in", "values": `+repeat("1", 10001)+`}`),
		filter(`{"property": "amount", "op": "gt", "value": "10"}`), filter(`{"property": "country", "op": "contains", "value": 1}`),
		filter(`{"property": "country", "op": "eq", "value": ["FR"]}`), filter(`{"property": "country", "op": "in", "values": [{}]}`),
		filter(`{"op": "in_cohort"}`), filter(`{"op": "not_in_cohort", "cohort": 0}`),
		filter(`{"property": "country", "source": "session", "op": "set"}`), filter(`{"property": "country", "op": "set", "extra": 1}`),
		`{"filters": `+repeat(`{"property": "country", "op": "set"}`, 51)+`}`,
		`{"series": [{"event": "a", "filters": [{"property": "x", "op": "set", "extra": 1}]}]}`,
	)

	fun := `{"from": "2024-01-01", "to": "2024-01-30", "steps": [{"event": "signup_started"}, {"event": "purchase"}]}`
	add("funnels", fun, true, `{}`, `{"order": "strict"}`, `{"order": "any", "hold_constant": ["device"]}`, `{"order": "ordered"}`,
		`{"window": {"value": 366, "unit": "day"}}`, `{"window": {"value": 52, "unit": "week"}}`, `{"window": {"value": 8784, "unit": "hour"}}`,
		`{"window": {"value": 527040, "unit": "minute"}}`, `{"window": {"value": 31622400, "unit": "second"}}`, `{"window": {"value": 1, "unit": "second"}}`,
		`{"interval": "day"}`, `{"interval": "month", "breakdown": {"cohorts": [1, 2]}}`,
		`{"breakdown": {"property": "plan", "source": "user"}, "limit": 1}`, `{"breakdown": {"property": "country"}, "limit": 1000}`,
		`{"exclusions": [{"event": "logout"}]}`,
		`{"steps": [{"event": "signup_started"}, {"event": "signup_completed"}, {"event": "purchase"}], "exclusions": [{"event": "logout", "after": 2, "before": 3, "filters": [{"property": "device", "op": "eq", "value": "web"}]}]}`,
		`{"hold_constant": ["country", "device", "x"]}`, `{"steps": `+repeat(`{"event": "page_view"}`, 20)+`}`,
		filter(`{"property": "country", "op": "in", "values": ["FR", "DE"]}`),
	)
	add("funnels", fun, false, `{"steps": [{"event": "a"}]}`, `{"steps": `+repeat(`{"event": "a"}`, 21)+`}`, `{"steps": [{"event": "a"}, {}]}`,
		`{"steps": null}`, `{"window": {"value": 367, "unit": "day"}}`, `{"window": {"value": 53, "unit": "week"}}`,
		`{"window": {"value": 8785, "unit": "hour"}}`, `{"window": {"value": 527041, "unit": "minute"}}`, `{"window": {"value": 31622401, "unit": "second"}}`,
		`{"window": {"value": 0, "unit": "day"}}`, `{"window": {"value": 1, "unit": "month"}}`, `{"window": {"value": 7}}`, `{"window": {"unit": "day"}}`,
		`{"window": 7}`, `{"order": "loose"}`, `{"order": "any", "exclusions": [{"event": "logout"}]}`,
		`{"exclusions": [{"event": "logout", "before": 1}]}`,
		`{"exclusions": [{"event": "logout", "after": 20}]}`, `{"exclusions": [{"after": 1}]}`,
		`{"hold_constant": ["a", "b", "c", "d"]}`, `{"hold_constant": [""]}`, `{"interval": "hour"}`, `{"interval": "none"}`,
		`{"limit": 1001}`, `{"breakdown": {"cohorts": [1], "property": "x"}}`, `{"breakdowns": [{"property": "x"}]}`,
	)

	ret := `{"from": "2024-01-01", "to": "2024-01-30", "birth": {"event": "signup_completed"}}`
	add("retention", ret, true, `{}`, `{"return": {"event": "purchase", "filters": [{"property": "amount", "op": "gte", "value": 10}]}}`,
		`{"type": "recurring", "unit": "day", "periods": 120}`, `{"unit": "month", "periods": 1, "brackets": "calendar"}`,
		`{"type": "first_time", "unit": "week", "mode": "on_or_after", "brackets": "rolling"}`, `{"mode": "on"}`,
		`{"breakdown": {"property": "country"}, "limit": 2}`, `{"breakdown": {"cohorts": [3]}, "type": "recurring"}`,
		filter(`{"property": "plan", "source": "user", "op": "in", "values": ["pro", "free"]}`),
	)
	add("retention", ret, false, `{"periods": 121}`, `{"periods": -1}`, `{"unit": "year"}`, `{"unit": "hour"}`, `{"type": "new"}`,
		`{"mode": "after"}`, `{"brackets": "fixed"}`, `{"birth": null}`, `{"birth": {}}`, `{"return": {}}`, `{"limit": 1001}`,
		`{"birth": {"event": "a", "x": 1}}`, `{"interval": "week"}`,
	)

	flo := `{"from": "2024-01-01", "to": "2024-01-30", "anchor": {"event": "signup_completed"}}`
	add("flows", flo, true, `{}`, `{"direction": "before", "steps": 10}`, `{"direction": "after", "steps": 1}`,
		`{"session_gap_minutes": -1}`, `{"session_gap_minutes": 1, "collapse_repeats": true}`, `{"include_events": ["page_view", "purchase"]}`,
		`{"exclude_events": []}`, `{"top_events": 1, "top_paths": 1}`, `{"top_events": 100, "top_paths": 1000}`,
		`{"anchor": {"event": "$any_event", "filters": [{"property": "country", "op": "eq", "value": "FR"}]}}`,
		filter(`{"op": "in_cohort", "cohort": 1}`),
	)
	add("flows", flo, false, `{"steps": 11}`, `{"steps": -1}`, `{"session_gap_minutes": -2}`,
		`{"include_events": ["a"], "exclude_events": ["b"]}`, `{"top_events": 101}`, `{"top_events": -1}`, `{"top_paths": 1001}`,
		`{"direction": "sideways"}`, `{"anchor": null}`, `{"anchor": {}}`, `{"include_events": "a"}`, `{"collapse_repeats": 1}`,
	)

	coh := `{"conditions": [{"type": "event", "event": "purchase"}]}`
	add("cohorts", coh, true, `{}`, `{"op": "and"}`,
		`{"op": "or", "conditions": [{"type": "event", "event": "purchase", "count_op": "exactly", "count": 2, "from": "2024-01-01", "to": "2024-01-31"},
			{"type": "event", "event": "logout", "count_op": "at_most", "count": 0, "last_days": 3660, "filters": [{"property": "device", "op": "set"}]},
			{"type": "property", "filter": {"property": "plan", "source": "user", "op": "eq", "value": "pro"}},
			{"type": "property", "filter": {"op": "in_cohort", "cohort": 1}},
			{"type": "cohort", "cohort": 1}, {"type": "cohort", "cohort": 2, "in": true},
			{"type": "group", "conditions": [{"type": "group", "op": "or", "conditions": [{"type": "event", "event": "$any_event", "count_op": "at_least", "last_days": 1}]}]}]}`,
		`{"conditions": `+repeat(`{"type": "cohort", "cohort": 1, "in": false}`, 50)+`}`,
	)
	cond := func(cc string) string { return `{"conditions": [` + cc + `]}` }
	add("cohorts", coh, false, `{"conditions": []}`, `{"conditions": null}`, `{"op": "xor"}`, `{"foo": 1}`,
		`{"conditions": `+repeat(`{"type": "cohort", "cohort": 1}`, 51)+`}`,
		cond(`{"event": "purchase"}`), cond(`{"type": "user"}`), cond(`{"type": "event"}`), cond(`{"type": "event", "event": ""}`),
		cond(`{"type": "event", "event": "a", "count_op": "more"}`), cond(`{"type": "event", "event": "a", "count": -1}`),
		cond(`{"type": "event", "event": "a", "last_days": 3661}`), cond(`{"type": "event", "event": "a", "last_days": -1}`),
		cond(`{"type": "event", "event": "a", "last_days": 7, "from": "2024-01-01", "to": "2024-01-02"}`),
		cond(`{"type": "event", "event": "a", "from": "2024-01-01"}`), cond(`{"type": "event", "event": "a", "to": "2024-01-01"}`),
		cond(`{"type": "event", "event": "a", "from": "01/01/2024", "to": "2024-01-02"}`),
		cond(`{"type": "event", "event": "a", "x": 1}`), cond(`{"type": "property"}`),
		cond(`{"type": "property", "filter": {"property": "plan", "source": "event", "op": "set"}}`),
		cond(`{"type": "property", "filter": {"property": "plan", "op": "is"}}`), cond(`{"type": "cohort"}`),
		cond(`{"type": "cohort", "cohort": 0}`), cond(`{"type": "cohort", "cohort": 1, "in": "no"}`), cond(`{"type": "group"}`),
		cond(`{"type": "group", "conditions": []}`), cond(`{"type": "group", "op": "nor", "conditions": [{"type": "cohort", "cohort": 1}]}`),
	)
	return cs
}

// TestReportSchemasAgreeWithEngines checks that the schemas accept the
// specs the engines accept and refuse those they refuse, on a table of
// cases, and validates the engines' answers to the accepted ones.
func TestReportSchemasAgreeWithEngines(t *testing.T) {
	sv := &schemaValidator{doc: openAPIDocument(t)}
	ac := &answerChecker{t: t, sv: sv, src: reportSource(), empty: scantest.New(nil, nil), nulls: map[string]bool{}, suppressed: map[string]bool{}}
	kinds := map[string][2]int{}
	for _, c := range schemaCases() {
		spec, _ := kindSchemas(c.kind)
		errs := sv.validate(schemaRef(spec), decodeJSON(t, []byte(c.spec)), "")
		if (len(errs) == 0) != c.ok {
			t.Errorf("%s %s: schema %s accepts it: %v, want %v %v", c.kind, c.spec, spec, len(errs) == 0, c.ok, errs)
		}
		_, err := runEngine(ac.src, reportEnv(0), c.kind, c.spec)
		if c.ok && err != nil {
			t.Errorf("%s %s: the engine refuses it: %v", c.kind, c.spec, err)
		}
		if se := (*query.SpecError)(nil); !c.ok && !errors.As(err, &se) {
			t.Errorf("%s %s: the engine answers %v, want a spec error", c.kind, c.spec, err)
		}
		n := kinds[c.kind]
		if c.ok {
			n[0]++
			ac.check(c.kind, c.spec)
		} else {
			n[1]++
		}
		kinds[c.kind] = n
	}
	for _, r := range reportSchemas {
		if n := kinds[r.kind]; n[0] == 0 || n[1] == 0 {
			t.Errorf("%s: %d accepted and %d refused cases, want some of each", r.kind, n[0], n[1])
		}
		// The answers went through nulls and suppressed values.
		if r.result != "" && (!ac.nulls[r.kind] || !ac.suppressed[r.kind]) {
			t.Errorf("%s: no answer had nulls (%v) and suppressed values (%v): the answer schema's nullable parts are untested",
				r.kind, ac.nulls[r.kind], ac.suppressed[r.kind])
		}
	}
}
