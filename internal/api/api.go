// Package api owns Veil's JSON API under /api/v1: reports (insights,
// funnels, retention, flows), saved cohorts, and the OpenAPI document that
// describes them. Requests authenticate with a project's API token
// ("Authorization: Bearer vt_…"); every error is an RFC 9457
// application/problem+json document.
//
// The package runs no report itself: it authenticates, reads and bounds
// requests, and hands report specs and cohort definitions to a Reports
// implementation, with the request's context (a client that goes away
// cancels its query) and a per-query timeout. Tokens and cohorts come from
// a Meta implementation (the metadata database).
package api

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/veil-analytics/veil/internal/meta"
)

// Reports runs one report; spec is the JSON body as received.
//
// Errors implementing interface{ Field() string } are refused specs: the
// client gets 400 naming the field (a JSON pointer into the spec, or for
// ValidateCohort into the definition); errors implementing
// interface{ TooLarge() bool } (returning true) are results too large to
// compute. errors.Join'd field errors are all reported.
type Reports interface {
	Run(ctx context.Context, project int64, kind string, spec []byte) (any, error)
	ValidateCohort(ctx context.Context, project int64, definition []byte) error
}

// Meta is what the API needs of the metadata database; *meta.DB
// implements it. Lookups of what does not exist return errors matching
// meta.ErrNotFound; refused input, errors matching meta.ErrInvalid or
// meta.ErrConflict that may carry a Field() naming the input field.
type Meta interface {
	TokenBySecret(ctx context.Context, secret string) (meta.Token, error)
	ProjectByID(ctx context.Context, id int64) (meta.Project, error)
	Cohorts(ctx context.Context, project int64) ([]meta.Cohort, error)
	Cohort(ctx context.Context, project, id int64) (meta.Cohort, error)
	CreateCohort(ctx context.Context, project int64, name, description string, definition []byte) (meta.Cohort, error)
	UpdateCohort(ctx context.Context, project, id int64, name, description string, definition []byte) (meta.Cohort, error)
	DeleteCohort(ctx context.Context, project, id int64) error
}

// Config configures the API handler. Reports and Meta are required; zero
// limits take their defaults.
type Config struct {
	Reports Reports
	Meta    Meta
	Logger  *slog.Logger // nil: discard

	// QueryTimeout bounds each report and each cohort validation; the
	// client gets 504 beyond it. Default 60 s.
	QueryTimeout time.Duration
	// MaxBodyBytes bounds request bodies; larger ones get 413. Default 1 MiB.
	MaxBodyBytes int64
	// MaxResultBytes bounds an encoded report; larger ones get 422.
	// Default 32 MiB.
	MaxResultBytes int
}

// Defaults of Config's limits.
const (
	DefaultQueryTimeout   = 60 * time.Second
	DefaultMaxBodyBytes   = 1 << 20
	DefaultMaxResultBytes = 32 << 20
)

// ReportKinds are the report kinds the API serves, in the order the
// OpenAPI document lists them.
func ReportKinds() []string { return []string{"insights", "funnels", "retention", "flows"} }

// Handler serves /api/v1. It is an http.Handler.
type Handler struct {
	cfg    Config
	log    *slog.Logger
	mux    *http.ServeMux
	routes []route
}

// route is one method on one path. Routes with a scope authenticate and
// check that the token is for the path's {id} project and has the scope.
type route struct {
	method  string
	pattern string // a ServeMux path pattern, as the OpenAPI document lists it
	scope   meta.Scope
	public  http.HandlerFunc                                // when scope is ""
	handle  func(http.ResponseWriter, *http.Request, int64) // project routes
}

// New returns the API handler. It errs, naming the field, when Reports or
// Meta is missing or a limit is negative.
func New(cfg Config) (*Handler, error) {
	switch {
	case cfg.Reports == nil:
		return nil, errors.New("api: Config.Reports is nil")
	case cfg.Meta == nil:
		return nil, errors.New("api: Config.Meta is nil")
	case cfg.QueryTimeout < 0:
		return nil, errors.New("api: Config.QueryTimeout is negative")
	case cfg.MaxBodyBytes < 0:
		return nil, errors.New("api: Config.MaxBodyBytes is negative")
	case cfg.MaxResultBytes < 0:
		return nil, errors.New("api: Config.MaxResultBytes is negative")
	}
	if cfg.QueryTimeout == 0 {
		cfg.QueryTimeout = DefaultQueryTimeout
	}
	if cfg.MaxBodyBytes == 0 {
		cfg.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if cfg.MaxResultBytes == 0 {
		cfg.MaxResultBytes = DefaultMaxResultBytes
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	h := &Handler{cfg: cfg, log: cfg.Logger, mux: http.NewServeMux()}
	h.routes = []route{
		{method: http.MethodGet, pattern: "/api/v1/openapi.json", public: h.openAPI},
		{method: http.MethodPost, pattern: "/api/v1/projects/{id}/reports/{kind}", scope: meta.ScopeRead, handle: h.report},
		{method: http.MethodGet, pattern: "/api/v1/projects/{id}/cohorts", scope: meta.ScopeRead, handle: h.listCohorts},
		{method: http.MethodPost, pattern: "/api/v1/projects/{id}/cohorts", scope: meta.ScopeRead, handle: h.createCohort},
		{method: http.MethodGet, pattern: "/api/v1/projects/{id}/cohorts/{cohort_id}", scope: meta.ScopeRead, handle: h.getCohort},
		{method: http.MethodPut, pattern: "/api/v1/projects/{id}/cohorts/{cohort_id}", scope: meta.ScopeRead, handle: h.updateCohort},
		{method: http.MethodDelete, pattern: "/api/v1/projects/{id}/cohorts/{cohort_id}", scope: meta.ScopeRead, handle: h.deleteCohort},
	}
	// One mux entry per path, dispatching on the method here, so that a
	// wrong method gets a problem document (and Allow) like every other
	// error rather than ServeMux's plain-text 405.
	byPath := map[string][]route{}
	var paths []string
	for _, rt := range h.routes {
		if byPath[rt.pattern] == nil {
			paths = append(paths, rt.pattern)
		}
		byPath[rt.pattern] = append(byPath[rt.pattern], rt)
	}
	for _, p := range paths {
		h.mux.HandleFunc(p, h.dispatch(byPath[p]))
	}
	h.mux.HandleFunc("/api/v1/", func(w http.ResponseWriter, r *http.Request) {
		writeProblem(w, problemNotFound, "no API route at "+r.URL.Path+" (see /api/v1/openapi.json)")
	})
	return h, nil
}

// ServeHTTP serves the API.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hd := w.Header()
	hd.Set("Cache-Control", "no-store")
	hd.Set("X-Content-Type-Options", "nosniff")
	h.mux.ServeHTTP(w, r)
}

// Routes lists the API's routes as "METHOD /path/{param}", as the OpenAPI
// document's paths name them.
func (h *Handler) Routes() []string {
	out := make([]string, 0, len(h.routes))
	for _, rt := range h.routes {
		out = append(out, rt.method+" "+rt.pattern)
	}
	return out
}

// dispatch serves one path's routes.
func (h *Handler) dispatch(routes []route) http.HandlerFunc {
	var allow []string
	for _, rt := range routes {
		allow = append(allow, rt.method)
	}
	return func(w http.ResponseWriter, r *http.Request) {
		i := slices.IndexFunc(routes, func(rt route) bool { return rt.method == r.Method })
		if i < 0 {
			w.Header().Set("Allow", strings.Join(allow, ", "))
			writeProblem(w, problemMethodNotAllowed, r.Method+" is not allowed here: use "+strings.Join(allow, " or "))
			return
		}
		rt := routes[i]
		if rt.scope == "" {
			rt.public(w, r)
			return
		}
		project, ok := h.authorize(w, r, rt.scope)
		if !ok {
			return
		}
		rt.handle(w, r, project)
	}
}
