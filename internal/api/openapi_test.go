package api

import (
	"encoding/json"
	"maps"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
)

// TestOpenAPI checks the OpenAPI document against the routes the handler
// serves, both ways, and that every reference in it resolves.
func TestOpenAPI(t *testing.T) {
	e := newEnv(t, nil)
	w := e.do("GET", "/api/v1/openapi.json", "", "")
	if w.Code != http.StatusOK || w.Header().Get("Content-Type") != "application/json" || w.Body.String() != string(OpenAPI()) {
		t.Fatalf("GET openapi.json: %d %v", w.Code, w.Header())
	}
	var doc map[string]any
	if err := json.Unmarshal(OpenAPI(), &doc); err != nil {
		t.Fatal(err)
	}
	if v, _ := doc["openapi"].(string); !strings.HasPrefix(v, "3.1.") {
		t.Errorf("openapi %q, want 3.1.x", v)
	}
	paths := obj(t, doc, "paths")

	// Every served route is documented, report kinds each on their own path.
	served := map[string]bool{}
	for _, rt := range e.h.Routes() {
		method, pattern, _ := strings.Cut(rt, " ")
		if strings.Contains(pattern, "{kind}") {
			for _, k := range ReportKinds() {
				served[method+" "+strings.ReplaceAll(pattern, "{kind}", k)] = true
			}
			continue
		}
		served[rt] = true
	}
	documented := map[string]bool{}
	for path, item := range paths {
		for method, op := range item.(map[string]any) {
			if method == "parameters" {
				continue
			}
			key := strings.ToUpper(method) + " " + path
			documented[key] = true
			checkOperation(t, key, op.(map[string]any))
		}
	}
	for _, k := range slices.Sorted(maps.Keys(served)) {
		if !documented[k] {
			t.Errorf("served but not documented: %s", k)
		}
	}
	for _, k := range slices.Sorted(maps.Keys(documented)) {
		if !served[k] {
			t.Errorf("documented but not served: %s", k)
		}
	}

	// The security scheme and the schemas the lead fills in from docs/REPORTS.md.
	comp := obj(t, doc, "components")
	bearer := obj(t, obj(t, comp, "securitySchemes"), "bearerAuth")
	if bearer["type"] != "http" || bearer["scheme"] != "bearer" {
		t.Errorf("bearerAuth = %v", bearer)
	}
	schemas := obj(t, comp, "schemas")
	for _, name := range []string{"InsightsSpec", "FunnelsSpec", "RetentionSpec", "FlowsSpec", "CohortDefinition", "Problem", "FieldProblem", "Cohort", "CohortInput", "CohortList"} {
		if _, ok := schemas[name]; !ok {
			t.Errorf("no schema %s", name)
		}
	}

	// Every $ref resolves.
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			if ref, ok := v["$ref"].(string); ok {
				if resolve(doc, ref) == nil {
					t.Errorf("unresolved $ref %q", ref)
				}
			}
			for _, x := range v {
				walk(x)
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	walk(doc)
}

// checkOperation checks one operation's id, security and error answers.
func checkOperation(t *testing.T, key string, op map[string]any) {
	t.Helper()
	if id, _ := op["operationId"].(string); id == "" {
		t.Errorf("%s: no operationId", key)
	}
	responses, _ := op["responses"].(map[string]any)
	public := key == "GET /api/v1/openapi.json"
	sec, hasSec := op["security"].([]any)
	if public != (hasSec && len(sec) == 0) {
		t.Errorf("%s: security %v; only openapi.json is public", key, op["security"])
	}
	if public {
		return
	}
	for _, code := range []string{"401", "403", "404", "500"} {
		if _, ok := responses[code]; !ok {
			t.Errorf("%s: no %s response", key, code)
		}
	}
	if _, ok := op["requestBody"]; ok {
		for _, code := range []string{"400", "413", "415", "504"} {
			if _, ok := responses[code]; !ok {
				t.Errorf("%s: takes a body but has no %s response", key, code)
			}
		}
	}
}

func obj(t *testing.T, m map[string]any, key string) map[string]any {
	t.Helper()
	v, ok := m[key].(map[string]any)
	if !ok {
		t.Fatalf("no object %q", key)
	}
	return v
}

// resolve follows a local JSON pointer reference ("#/components/...").
func resolve(doc map[string]any, ref string) any {
	ptr, ok := strings.CutPrefix(ref, "#/")
	if !ok {
		return nil
	}
	var cur any = doc
	for _, seg := range strings.Split(ptr, "/") {
		seg = strings.ReplaceAll(strings.ReplaceAll(seg, "~1", "/"), "~0", "~")
		m, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		if cur, ok = m[seg]; !ok {
			return nil
		}
	}
	return cur
}

// TestProblemTypesDocumented checks that every problem type URI points at
// a section of docs/API.md.
func TestProblemTypesDocumented(t *testing.T) {
	b, err := os.ReadFile("../../docs/API.md")
	if err != nil {
		t.Fatal(err)
	}
	headings := map[string]bool{}
	for _, line := range strings.Split(string(b), "\n") {
		if h, ok := strings.CutPrefix(line, "### "); ok {
			headings[strings.TrimSpace(h)] = true
		}
	}
	for _, k := range problemKinds() {
		if !headings[string(k)] {
			t.Errorf("docs/API.md has no section \"### %s\"", k)
		}
	}
	// And the document's examples use only known types.
	for _, line := range strings.Split(string(OpenAPI()), "\n") {
		if _, after, ok := strings.Cut(line, problemBase); ok {
			slug, _, _ := strings.Cut(after, `"`)
			if !slices.Contains(problemKinds(), problemKind(slug)) {
				t.Errorf("openapi.json uses unknown problem type %q", slug)
			}
		}
	}
}
