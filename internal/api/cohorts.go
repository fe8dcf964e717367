package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/veil-analytics/veil/internal/meta"
)

// cohortJSON is a cohort as the API shows it.
type cohortJSON struct {
	ID          int64           `json:"id"`
	Project     int64           `json:"project"`
	Name        string          `json:"name"`
	Description string          `json:"description"`
	Definition  json.RawMessage `json:"definition"`
	Created     string          `json:"created"`
	Updated     string          `json:"updated"`
}

func toCohortJSON(c meta.Cohort) cohortJSON {
	return cohortJSON{
		ID:          c.ID,
		Project:     c.ProjectID,
		Name:        c.Name,
		Description: c.Description,
		Definition:  json.RawMessage(c.Definition),
		Created:     c.Created.UTC().Format(time.RFC3339),
		Updated:     c.Updated.UTC().Format(time.RFC3339),
	}
}

// cohortList is the answer of GET .../cohorts: an object, so that fields
// (paging, say) can be added later.
type cohortList struct {
	Cohorts []cohortJSON `json:"cohorts"`
}

// cohortInput is the body of POST and PUT.
type cohortInput struct {
	Name        *string         `json:"name"`
	Description *string         `json:"description"`
	Definition  json.RawMessage `json:"definition"`
}

func (h *Handler) listCohorts(w http.ResponseWriter, r *http.Request, project int64) {
	cs, err := h.cfg.Meta.Cohorts(r.Context(), project)
	if err != nil {
		h.internalError(w, r, "list cohorts", err, "project", project)
		return
	}
	out := cohortList{Cohorts: make([]cohortJSON, 0, len(cs))}
	for _, c := range cs {
		out.Cohorts = append(out.Cohorts, toCohortJSON(c))
	}
	h.writeJSON(w, r, http.StatusOK, out)
}

func (h *Handler) getCohort(w http.ResponseWriter, r *http.Request, project int64) {
	id, ok := cohortID(w, r)
	if !ok {
		return
	}
	c, err := h.cfg.Meta.Cohort(r.Context(), project, id)
	if err != nil {
		h.metaFailed(w, r, err, "get cohort", project, id)
		return
	}
	h.writeJSON(w, r, http.StatusOK, toCohortJSON(c))
}

func (h *Handler) createCohort(w http.ResponseWriter, r *http.Request, project int64) {
	in, ok := h.readCohort(w, r, project)
	if !ok {
		return
	}
	c, err := h.cfg.Meta.CreateCohort(r.Context(), project, in.name, in.description, in.definition)
	if err != nil {
		h.metaFailed(w, r, err, "create cohort", project, 0)
		return
	}
	w.Header().Set("Location", fmt.Sprintf("/api/v1/projects/%d/cohorts/%d", project, c.ID))
	h.writeJSON(w, r, http.StatusCreated, toCohortJSON(c))
}

func (h *Handler) updateCohort(w http.ResponseWriter, r *http.Request, project int64) {
	id, ok := cohortID(w, r)
	if !ok {
		return
	}
	in, ok := h.readCohort(w, r, project)
	if !ok {
		return
	}
	c, err := h.cfg.Meta.UpdateCohort(r.Context(), project, id, in.name, in.description, in.definition)
	if err != nil {
		h.metaFailed(w, r, err, "update cohort", project, id)
		return
	}
	h.writeJSON(w, r, http.StatusOK, toCohortJSON(c))
}

func (h *Handler) deleteCohort(w http.ResponseWriter, r *http.Request, project int64) {
	id, ok := cohortID(w, r)
	if !ok {
		return
	}
	if err := h.cfg.Meta.DeleteCohort(r.Context(), project, id); err != nil {
		h.metaFailed(w, r, err, "delete cohort", project, id)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// cohortID parses the path's {cohort_id}, answering 404 if it cannot be one.
func cohortID(w http.ResponseWriter, r *http.Request) (int64, bool) {
	id, ok := pathID(r, "cohort_id")
	if !ok {
		writeProblem(w, problemNotFound, fmt.Sprintf("no cohort %q: cohort ids are positive integers", r.PathValue("cohort_id")))
	}
	return id, ok
}

// cohortFields is a checked cohort body.
type cohortFields struct {
	name, description string
	definition        []byte // compact JSON object
}

// readCohort reads and checks a cohort body, the definition through
// Reports.ValidateCohort. It answers the request itself and returns false
// when the body is refused.
func (h *Handler) readCohort(w http.ResponseWriter, r *http.Request, project int64) (cohortFields, bool) {
	body, ok := h.readJSON(w, r)
	if !ok {
		return cohortFields{}, false
	}
	var in cohortInput
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		writeFieldProblems(w, problemInvalidRequest, []fieldProblem{decodeProblem(err)})
		return cohortFields{}, false
	}
	var errs []fieldProblem
	if in.Name == nil {
		errs = append(errs, fieldProblem{"/name", "required: the cohort's name"})
	}
	def := bytes.TrimSpace(in.Definition)
	switch {
	case len(def) == 0 || string(def) == "null":
		errs = append(errs, fieldProblem{"/definition", "required: a JSON object"})
	case def[0] != '{':
		errs = append(errs, fieldProblem{"/definition", "must be a JSON object"})
	}
	if len(errs) > 0 {
		writeFieldProblems(w, problemInvalidRequest, errs)
		return cohortFields{}, false
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, def); err != nil { // cannot fail: the body was valid JSON
		h.internalError(w, r, "compact cohort definition", err)
		return cohortFields{}, false
	}
	out := cohortFields{name: *in.Name, definition: compact.Bytes()}
	if in.Description != nil {
		out.description = *in.Description
	}

	ctx, cancel := context.WithTimeout(r.Context(), h.cfg.QueryTimeout)
	defer cancel()
	_, err := h.run(ctx, func(ctx context.Context) (any, error) {
		return nil, h.cfg.Reports.ValidateCohort(ctx, project, out.definition)
	})
	if err != nil {
		h.queryFailed(ctx, w, r, err, problemInvalidRequest, "/definition", "validate cohort", "project", project)
		return cohortFields{}, false
	}
	return out, true
}

// decodeProblem names the field of a body that does not decode into
// cohortInput.
func decodeProblem(err error) fieldProblem {
	if te, ok := errors.AsType[*json.UnmarshalTypeError](err); ok && te.Field != "" {
		return fieldProblem{jsonPointer(te.Field), fmt.Sprintf("must be a %s, not %s", jsonType(te.Type.Kind().String()), te.Value)}
	}
	if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		name = strings.Trim(name, `"`)
		return fieldProblem{jsonPointer(name), fmt.Sprintf("unknown field %q: want name, description and definition", name)}
	}
	if errors.Is(err, io.EOF) {
		return fieldProblem{"", "the request body is empty: a JSON object is required"}
	}
	return fieldProblem{"", err.Error()}
}

// jsonType names a Go kind as the JSON type it decodes from.
func jsonType(kind string) string {
	switch kind {
	case "string":
		return "string"
	case "struct", "map":
		return "object"
	case "slice", "array":
		return "array"
	case "bool":
		return "boolean"
	}
	return "number"
}

// metaFailed answers a failed metadata call: 404, 400 naming the field,
// 409, or 500.
func (h *Handler) metaFailed(w http.ResponseWriter, r *http.Request, err error, op string, project, cohort int64) {
	switch {
	case errors.Is(err, meta.ErrNotFound):
		if cohort > 0 {
			writeProblem(w, problemNotFound, fmt.Sprintf("project %d has no cohort %d", project, cohort))
		} else {
			writeProblem(w, problemNotFound, fmt.Sprintf("no project %d", project))
		}
	case errors.Is(err, meta.ErrInvalid):
		writeFieldProblems(w, problemInvalidRequest, []fieldProblem{metaFieldProblem(err)})
	case errors.Is(err, meta.ErrConflict):
		fp := metaFieldProblem(err)
		writeProblem(w, problemConflict, err.Error(), fp)
	default:
		h.internalError(w, r, op, err, "project", project)
	}
}

// metaFieldProblem is a meta input error as a field problem.
func metaFieldProblem(err error) fieldProblem {
	fp := fieldProblem{Detail: err.Error()}
	if fe, ok := errors.AsType[fieldError](err); ok {
		fp.Field = jsonPointer(fe.Field())
	}
	return fp
}
