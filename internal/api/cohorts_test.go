package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
)

func TestCohortCRUD(t *testing.T) {
	e := newEnv(t, nil)
	var validated []string
	e.reports.validate = func(_ context.Context, project int64, def []byte) error {
		if project != e.p1 {
			t.Errorf("ValidateCohort for project %d", project)
		}
		validated = append(validated, string(def))
		var d map[string]any
		json.Unmarshal(def, &d)
		if d["op"] == "like" {
			return errors.Join(&specError{"/filters/0/op", `unknown operator "like"`}, &specError{"/filters/1", "required"})
		}
		return nil
	}
	base := fmt.Sprintf("/api/v1/projects/%d/cohorts", e.p1)
	decode := func(w interface{ Bytes() []byte }) cohortJSON {
		t.Helper()
		var c cohortJSON
		if err := json.Unmarshal(w.Bytes(), &c); err != nil {
			t.Fatalf("%q: %v", w.Bytes(), err)
		}
		return c
	}

	w := e.do("GET", base, e.tok1, "")
	if w.Code != http.StatusOK || w.Body.String() != `{"cohorts":[]}`+"\n" {
		t.Fatalf("empty list: %d %s", w.Code, w.Body)
	}

	w = e.do("POST", base, e.tok1, `{"name": " Buyers ", "description": "paid once", "definition": { "op": "and",  "conditions": [] }}`)
	if w.Code != http.StatusCreated {
		t.Fatalf("create: %d %s", w.Code, w.Body)
	}
	c := decode(w.Body)
	if loc := w.Header().Get("Location"); loc != fmt.Sprintf("%s/%d", base, c.ID) {
		t.Errorf("Location %q", loc)
	}
	if c.Name != "Buyers" || c.Project != e.p1 || c.Description != "paid once" ||
		string(c.Definition) != `{"op":"and","conditions":[]}` || c.Created == "" || c.Updated == "" {
		t.Errorf("created %+v", c)
	}
	if len(validated) != 1 || validated[0] != `{"op":"and","conditions":[]}` {
		t.Errorf("ValidateCohort got %q, want the compact definition", validated)
	}

	w = e.do("GET", fmt.Sprintf("%s/%d", base, c.ID), e.tok1, "")
	if w.Code != http.StatusOK || decode(w.Body).Name != "Buyers" {
		t.Fatalf("get: %d %s", w.Code, w.Body)
	}

	// Refused bodies name their fields.
	for _, tc := range []struct {
		body   string
		kind   problemKind
		fields []string
	}{
		{`{"name":"buyers","definition":{}}`, problemConflict, []string{"/name"}},
		{`{"description":"x"}`, problemInvalidRequest, []string{"/name", "/definition"}},
		{`{"name":"x","definition":null}`, problemInvalidRequest, []string{"/definition"}},
		{`{"name":"x","definition":[1]}`, problemInvalidRequest, []string{"/definition"}},
		{`{"name":"x","definition":{},"colour":"red"}`, problemInvalidRequest, []string{"/colour"}},
		{`{"name":7,"definition":{}}`, problemInvalidRequest, []string{"/name"}},
		{`{"name":"","definition":{}}`, problemInvalidRequest, []string{"/name"}},
		{`{"name":"x","description":"` + strings.Repeat("d", 1001) + `","definition":{}}`, problemInvalidRequest, []string{"/description"}},
		{`{"name":"x","definition":{"op":"like"}}`, problemInvalidRequest, []string{"/definition/filters/0/op", "/definition/filters/1"}},
	} {
		w := e.do("POST", base, e.tok1, tc.body)
		p := wantProblem(t, w, tc.kind)
		var fields []string
		for _, fp := range p.Errors {
			fields = append(fields, fp.Field)
			if fp.Detail == "" {
				t.Errorf("%s: no detail for %s", tc.body, fp.Field)
			}
		}
		if fmt.Sprint(fields) != fmt.Sprint(tc.fields) || !strings.HasPrefix(p.Detail, tc.fields[0]) && tc.kind != problemConflict {
			t.Errorf("%.60s: %+v, want fields %v named in the detail", tc.body, p, tc.fields)
		}
	}
	w = e.do("POST", base, e.tok1, `{"name":"x","definition":{"op":"like"}}`)
	if p := wantProblem(t, w, problemInvalidRequest); p.Errors[0].Detail != `unknown operator "like"` {
		t.Errorf("definition error detail %q", p.Errors[0].Detail)
	}

	// Update.
	second := decode(e.do("POST", base, e.tok1, `{"name":"Churned","definition":{}}`).Body)
	w = e.do("PUT", fmt.Sprintf("%s/%d", base, c.ID), e.tok1, `{"name":"Buyers 2","definition":{"v":2}}`)
	if w.Code != http.StatusOK {
		t.Fatalf("update: %d %s", w.Code, w.Body)
	}
	up := decode(w.Body)
	if up.ID != c.ID || up.Name != "Buyers 2" || up.Description != "" || string(up.Definition) != `{"v":2}` || up.Created != c.Created {
		t.Errorf("updated %+v from %+v", up, c)
	}
	wantProblem(t, e.do("PUT", fmt.Sprintf("%s/%d", base, second.ID), e.tok1, `{"name":"BUYERS 2","definition":{}}`), problemConflict)
	wantProblem(t, e.do("PUT", fmt.Sprintf("%s/%d", base, 999), e.tok1, `{"name":"y","definition":{}}`), problemNotFound)
	wantProblem(t, e.do("PUT", fmt.Sprintf("%s/%d", base, c.ID), e.tok1, `{"name":"y"}`), problemInvalidRequest)

	var list cohortList
	w = e.do("GET", base, e.tok1, "")
	if err := json.Unmarshal(w.Body.Bytes(), &list); err != nil || len(list.Cohorts) != 2 || list.Cohorts[0].Name != "Buyers 2" {
		t.Fatalf("list: %s", w.Body)
	}

	// Another project's token sees nothing of them; its own project has none.
	wantProblem(t, e.do("GET", fmt.Sprintf("%s/%d", base, c.ID), e.tok2, ""), problemForbidden)
	wantProblem(t, e.do("GET", fmt.Sprintf("/api/v1/projects/%d/cohorts/%d", e.p2, c.ID), e.tok2, ""), problemNotFound)
	wantProblem(t, e.do("DELETE", fmt.Sprintf("/api/v1/projects/%d/cohorts/%d", e.p2, c.ID), e.tok2, ""), problemNotFound)

	// Bad ids.
	for _, id := range []string{"x", "0", "-2", "007"} {
		wantProblem(t, e.do("GET", base+"/"+id, e.tok1, ""), problemNotFound)
	}

	// Delete.
	w = e.do("DELETE", fmt.Sprintf("%s/%d", base, c.ID), e.tok1, "")
	if w.Code != http.StatusNoContent || w.Body.Len() != 0 {
		t.Fatalf("delete: %d %s", w.Code, w.Body)
	}
	wantProblem(t, e.do("GET", fmt.Sprintf("%s/%d", base, c.ID), e.tok1, ""), problemNotFound)
	wantProblem(t, e.do("DELETE", fmt.Sprintf("%s/%d", base, c.ID), e.tok1, ""), problemNotFound)
	// Cohort bodies follow the report body rules.
	wantProblem(t, e.do("POST", base, e.tok1, `{"name":"z","definition":{}}`, "Content-Type", "text/plain"), problemUnsupportedMedia)
}
