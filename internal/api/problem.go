package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
)

// problemBase prefixes problem type URIs: each names a section of
// docs/API.md that explains the problem.
const problemBase = "https://github.com/veil-analytics/veil/blob/main/docs/API.md#"

// problemKind is one type of RFC 9457 problem: the type URI's fragment.
// Each has a section in docs/API.md.
type problemKind string

// The problem types the API answers with.
const (
	problemUnauthorized     problemKind = "unauthorized"
	problemForbidden        problemKind = "forbidden"
	problemNotFound         problemKind = "not-found"
	problemMethodNotAllowed problemKind = "method-not-allowed"
	problemUnsupportedMedia problemKind = "unsupported-media-type"
	problemBodyTooLarge     problemKind = "body-too-large"
	problemInvalidRequest   problemKind = "invalid-request"
	problemInvalidSpec      problemKind = "invalid-spec"
	problemConflict         problemKind = "conflict"
	problemResultTooLarge   problemKind = "result-too-large"
	problemQueryTimeout     problemKind = "query-timeout"
	problemInternal         problemKind = "internal"
)

// problemKinds lists every problemKind.
func problemKinds() []problemKind {
	return []problemKind{
		problemUnauthorized, problemForbidden, problemNotFound, problemMethodNotAllowed,
		problemUnsupportedMedia, problemBodyTooLarge, problemInvalidRequest, problemInvalidSpec,
		problemConflict, problemResultTooLarge, problemQueryTimeout, problemInternal,
	}
}

// status is the HTTP status the problem is answered with.
func (k problemKind) status() int {
	switch k {
	case problemUnauthorized:
		return http.StatusUnauthorized
	case problemForbidden:
		return http.StatusForbidden
	case problemNotFound:
		return http.StatusNotFound
	case problemMethodNotAllowed:
		return http.StatusMethodNotAllowed
	case problemUnsupportedMedia:
		return http.StatusUnsupportedMediaType
	case problemBodyTooLarge:
		return http.StatusRequestEntityTooLarge
	case problemInvalidRequest, problemInvalidSpec:
		return http.StatusBadRequest
	case problemConflict:
		return http.StatusConflict
	case problemResultTooLarge:
		return http.StatusUnprocessableEntity
	case problemQueryTimeout:
		return http.StatusGatewayTimeout
	}
	return http.StatusInternalServerError
}

// title is the problem type's short summary.
func (k problemKind) title() string {
	switch k {
	case problemUnauthorized:
		return "Authentication required"
	case problemForbidden:
		return "Forbidden"
	case problemNotFound:
		return "Not found"
	case problemMethodNotAllowed:
		return "Method not allowed"
	case problemUnsupportedMedia:
		return "Unsupported media type"
	case problemBodyTooLarge:
		return "Request body too large"
	case problemInvalidRequest:
		return "Invalid request"
	case problemInvalidSpec:
		return "Invalid report spec"
	case problemConflict:
		return "Conflict"
	case problemResultTooLarge:
		return "Result too large"
	case problemQueryTimeout:
		return "Query timed out"
	}
	return "Internal error"
}

// problem is an RFC 9457 problem document.
type problem struct {
	Type   string         `json:"type"`
	Title  string         `json:"title"`
	Status int            `json:"status"`
	Detail string         `json:"detail,omitempty"`
	Errors []fieldProblem `json:"errors,omitempty"`
}

// fieldProblem is one refused field: a JSON pointer into the request body
// ("" for the whole body) and what is wrong with it.
type fieldProblem struct {
	Field  string `json:"field"`
	Detail string `json:"detail"`
}

// writeProblem answers with a problem document.
func writeProblem(w http.ResponseWriter, k problemKind, detail string, errs ...fieldProblem) {
	b, err := json.Marshal(problem{Type: problemBase + string(k), Title: k.title(), Status: k.status(), Detail: detail, Errors: errs})
	if err != nil { // cannot happen: strings and ints only
		b = []byte(`{"type":"about:blank","status":500}`)
	}
	h := w.Header()
	h.Set("Content-Type", "application/problem+json")
	h.Set("Content-Length", strconv.Itoa(len(b)+1))
	w.WriteHeader(k.status())
	w.Write(append(b, '\n'))
}

// writeFieldProblems answers 400 with one entry per refused field; the
// detail names the first.
func writeFieldProblems(w http.ResponseWriter, k problemKind, errs []fieldProblem) {
	first := errs[0]
	detail := first.Detail
	if first.Field != "" {
		detail = first.Field + ": " + detail
	}
	if len(errs) > 1 {
		detail += fmt.Sprintf(" (and %d more)", len(errs)-1)
	}
	writeProblem(w, k, detail, errs...)
}

// fieldError is an error about one field of a request.
type fieldError interface {
	error
	Field() string
}

// tooLargeError is an error about a result too large to compute.
type tooLargeError interface {
	error
	TooLarge() bool
}

// maxFieldProblems bounds the entries of a problem's errors array.
const maxFieldProblems = 100

// fieldProblems collects the field errors in err's tree (errors.Join'd
// ones included), with fields as JSON pointers under prefix. It returns
// nil when err holds none.
func fieldProblems(err error, prefix string) []fieldProblem {
	var out []fieldProblem
	var walk func(error)
	walk = func(e error) {
		if len(out) == maxFieldProblems {
			return
		}
		if fe, ok := e.(fieldError); ok {
			ptr := prefix + jsonPointer(fe.Field())
			out = append(out, fieldProblem{Field: ptr, Detail: fieldDetail(fe.Error(), jsonPointer(fe.Field()))})
			return
		}
		switch u := e.(type) {
		case interface{ Unwrap() error }:
			if next := u.Unwrap(); next != nil {
				walk(next)
			}
		case interface{ Unwrap() []error }:
			for _, next := range u.Unwrap() {
				walk(next)
			}
		}
	}
	walk(err)
	return out
}

// fieldDetail is an error message without the field it already names: a
// message "spec /steps/0/event: required" about /steps/0/event is
// "required".
func fieldDetail(msg, ptr string) string {
	if ptr != "" {
		if i := strings.Index(msg, ptr+": "); i >= 0 {
			if rest := msg[i+len(ptr)+2:]; rest != "" {
				return rest
			}
		}
	}
	return msg
}

// jsonPointer turns a field name into an RFC 6901 JSON pointer: pointers
// ("/steps/0") are kept, dotted paths ("steps[0].event", "name") are
// converted.
func jsonPointer(field string) string {
	if field == "" || strings.HasPrefix(field, "/") {
		return field
	}
	var b strings.Builder
	for _, seg := range strings.FieldsFunc(field, func(r rune) bool { return r == '.' || r == '[' || r == ']' }) {
		seg = strings.ReplaceAll(seg, "~", "~0")
		seg = strings.ReplaceAll(seg, "/", "~1")
		b.WriteByte('/')
		b.WriteString(seg)
	}
	return b.String()
}

// isTooLarge reports whether err's tree holds a TooLarge error.
func isTooLarge(err error) (tooLargeError, bool) {
	tl, ok := errors.AsType[tooLargeError](err)
	return tl, ok && tl.TooLarge()
}

// quotedRE matches Go-quoted strings and single-quoted ones.
var quotedRE = regexp.MustCompile(`"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'`)

// redact removes quoted strings from an error message before it is
// logged: report errors may quote property values, which are personal
// data and never go to the logs.
func redact(msg string) string {
	return quotedRE.ReplaceAllString(msg, `"…"`)
}
