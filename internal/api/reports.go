package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"time"
)

// report runs POST /api/v1/projects/{id}/reports/{kind}.
func (h *Handler) report(w http.ResponseWriter, r *http.Request, project int64) {
	kind := r.PathValue("kind")
	if !slices.Contains(ReportKinds(), kind) {
		writeProblem(w, problemNotFound, fmt.Sprintf("no report kind %q: want %s", kind, strings.Join(ReportKinds(), ", ")))
		return
	}
	spec, ok := h.readJSON(w, r)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), h.cfg.QueryTimeout)
	defer cancel()
	start := time.Now()
	res, err := h.run(ctx, func(ctx context.Context) (any, error) {
		return h.cfg.Reports.Run(ctx, project, kind, spec)
	})
	attrs := []any{"project", project, "kind", kind, "elapsed", time.Since(start).Round(time.Millisecond)}
	if err != nil {
		h.queryFailed(ctx, w, r, err, problemInvalidSpec, "", "report", attrs...)
		return
	}
	if n, ok := h.writeResult(w, r, res, attrs...); ok {
		h.log.Debug("report", append(attrs, "bytes", n)...)
	}
}

// run calls fn, turning a panic into an error, so that a bug in a report
// engine costs one request a 500 rather than the connection.
func (h *Handler) run(ctx context.Context, fn func(context.Context) (any, error)) (res any, err error) {
	defer func() {
		if p := recover(); p != nil {
			if p == http.ErrAbortHandler {
				panic(p)
			}
			err = &panicError{value: p, stack: debug.Stack()}
		}
	}()
	return fn(ctx)
}

// panicError is a recovered panic.
type panicError struct {
	value any
	stack []byte
}

func (e *panicError) Error() string { return fmt.Sprintf("panic: %v", e.value) }

// queryFailed answers a failed report or cohort validation (ctx is the
// query's context): the client went away (nothing to answer), the query
// timed out (504), field errors (400 of kind, fields under prefix), too
// large (422), anything else (500).
func (h *Handler) queryFailed(ctx context.Context, w http.ResponseWriter, r *http.Request, err error, kind problemKind, prefix, op string, attrs ...any) {
	switch {
	case r.Context().Err() != nil:
		h.log.Info(op+" canceled: the client went away", attrs...)
		return
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(ctx.Err(), context.DeadlineExceeded):
		h.log.Warn(op+" timed out", append(attrs, "timeout", h.cfg.QueryTimeout)...)
		writeProblem(w, problemQueryTimeout, fmt.Sprintf("query timed out after %gs: narrow the range, filters or breakdowns", h.cfg.QueryTimeout.Seconds()))
		return
	}
	if fps := fieldProblems(err, prefix); len(fps) > 0 {
		writeFieldProblems(w, kind, fps)
		return
	}
	if tl, ok := isTooLarge(err); ok {
		writeProblem(w, problemResultTooLarge, tl.Error())
		return
	}
	h.internalError(w, r, op, err, attrs...)
}

// internalError logs err (its quoted strings redacted: they may be
// property values) and answers 500 with a generic message, or nothing
// when the client went away.
func (h *Handler) internalError(w http.ResponseWriter, r *http.Request, op string, err error, attrs ...any) {
	if r.Context().Err() != nil {
		h.log.Info(op+" canceled: the client went away", attrs...)
		return
	}
	attrs = append(attrs, "err_type", fmt.Sprintf("%T", err), "err", redact(err.Error()))
	if pe, ok := errors.AsType[*panicError](err); ok {
		attrs = append(attrs, "stack", string(pe.stack))
	}
	h.log.Error(op+" failed", attrs...)
	writeProblem(w, problemInternal, "the server failed to answer; the error is in its log")
}

// readJSON checks the request's media type and reads its body, a JSON
// object of at most MaxBodyBytes. It answers the request itself and
// returns false when the body is refused.
func (h *Handler) readJSON(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	mt, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/json" {
		writeProblem(w, problemUnsupportedMedia, "the request body must be JSON, sent with Content-Type: application/json")
		return nil, false
	}
	if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") {
		writeProblem(w, problemUnsupportedMedia, fmt.Sprintf("charset %q is not supported: JSON is UTF-8", cs))
		return nil, false
	}
	if ce := r.Header.Get("Content-Encoding"); ce != "" && !strings.EqualFold(ce, "identity") {
		writeProblem(w, problemUnsupportedMedia, fmt.Sprintf("Content-Encoding %q is not supported", ce))
		return nil, false
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.cfg.MaxBodyBytes))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			writeProblem(w, problemBodyTooLarge, fmt.Sprintf("the request body is larger than %d bytes", h.cfg.MaxBodyBytes))
			return nil, false
		}
		if r.Context().Err() == nil {
			writeProblem(w, problemInvalidRequest, "could not read the request body")
		}
		return nil, false
	}
	if !json.Valid(body) {
		detail := "the request body is not valid JSON"
		if len(bytes.TrimSpace(body)) == 0 {
			detail = "the request body is empty: a JSON object is required"
		} else if se, ok := errors.AsType[*json.SyntaxError](json.Unmarshal(body, new(json.RawMessage))); ok {
			detail = fmt.Sprintf("the request body is not valid JSON: %v (at byte %d)", se, se.Offset)
		}
		writeFieldProblems(w, problemInvalidRequest, []fieldProblem{{Field: "", Detail: detail}})
		return nil, false
	}
	if t := bytes.TrimLeft(body, " \t\r\n"); t[0] != '{' {
		writeFieldProblems(w, problemInvalidRequest, []fieldProblem{{Field: "", Detail: "the request body must be a JSON object"}})
		return nil, false
	}
	return body, true
}

// writeResult answers 200 with res as JSON, or 422 when it encodes to more
// than MaxResultBytes. It returns the body's size and whether it was sent.
func (h *Handler) writeResult(w http.ResponseWriter, r *http.Request, res any, attrs ...any) (int, bool) {
	buf := &cappedBuffer{max: h.cfg.MaxResultBytes}
	if err := json.NewEncoder(buf).Encode(res); err != nil {
		if buf.over {
			h.log.Warn("report result too large", append(attrs, "max_bytes", h.cfg.MaxResultBytes)...)
			writeProblem(w, problemResultTooLarge, fmt.Sprintf(
				"the result is larger than %d bytes: narrow the range, interval or breakdowns", h.cfg.MaxResultBytes))
			return 0, false
		}
		h.internalError(w, r, "encode report", err, attrs...)
		return 0, false
	}
	writeBody(w, http.StatusOK, buf.Bytes())
	return buf.Len(), true
}

// writeJSON answers with v as JSON (small values the API itself builds).
func (h *Handler) writeJSON(w http.ResponseWriter, r *http.Request, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		h.internalError(w, r, "encode answer", err)
		return
	}
	writeBody(w, status, append(b, '\n'))
}

func writeBody(w http.ResponseWriter, status int, b []byte) {
	hd := w.Header()
	hd.Set("Content-Type", "application/json")
	hd.Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	w.Write(b)
}

// cappedBuffer is a buffer that refuses to grow beyond max bytes. (The
// encoder builds a value's encoding before writing it, so this bounds the
// answer, not the encoder's memory.)
type cappedBuffer struct {
	bytes.Buffer
	max  int
	over bool
}

var errOverCap = errors.New("result over the size limit")

func (b *cappedBuffer) Write(p []byte) (int, error) {
	if b.Len()+len(p) > b.max {
		b.over = true
		return 0, errOverCap
	}
	return b.Buffer.Write(p)
}
