package api

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/veil-analytics/veil/internal/meta"
)

// realm is the realm of WWW-Authenticate challenges.
const realm = `Bearer realm="veil"`

// authorize authenticates the request's bearer token and checks that it is
// for the path's {id} project and has scope. It answers the request itself
// (401, 403, 404, 500 or nothing when the client went away) and returns
// false when the request may not go on.
func (h *Handler) authorize(w http.ResponseWriter, r *http.Request, scope meta.Scope) (int64, bool) {
	secret, found := bearerToken(r)
	if !found {
		w.Header().Set("WWW-Authenticate", realm)
		writeProblem(w, problemUnauthorized, `send an API token as "Authorization: Bearer <token>" (veil token create makes one)`)
		return 0, false
	}
	tok, err := h.cfg.Meta.TokenBySecret(r.Context(), secret)
	switch {
	case errors.Is(err, meta.ErrNotFound):
		w.Header().Set("WWW-Authenticate", realm+`, error="invalid_token"`)
		writeProblem(w, problemUnauthorized, "the API token is unknown or revoked")
		return 0, false
	case err != nil:
		h.internalError(w, r, "authenticate", err)
		return 0, false
	}
	project, ok := pathID(r, "id")
	if !ok {
		writeProblem(w, problemNotFound, fmt.Sprintf("no project %q: project ids are positive integers", r.PathValue("id")))
		return 0, false
	}
	if tok.ProjectID != project {
		// Said without telling whether the other project exists.
		writeProblem(w, problemForbidden, fmt.Sprintf("this API token is for project %d, not project %d", tok.ProjectID, project))
		return 0, false
	}
	if !tok.Allows(scope) {
		w.Header().Set("WWW-Authenticate", fmt.Sprintf(`%s, error="insufficient_scope", scope=%q`, realm, scope))
		writeProblem(w, problemForbidden, fmt.Sprintf("this API token has scope %q; this needs %q", tok.Scope, scope))
		return 0, false
	}
	if _, err := h.cfg.Meta.ProjectByID(r.Context(), project); err != nil {
		if errors.Is(err, meta.ErrNotFound) {
			writeProblem(w, problemNotFound, fmt.Sprintf("no project %d", project))
		} else {
			h.internalError(w, r, "look up project", err)
		}
		return 0, false
	}
	return project, true
}

// bearerToken returns the token of an "Authorization: Bearer <token>"
// header (the scheme in any case, RFC 9110), and whether there was one.
func bearerToken(r *http.Request) (string, bool) {
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	return token, token != ""
}

// pathID parses the positive integer path parameter name.
func pathID(r *http.Request, name string) (int64, bool) {
	s := r.PathValue(name)
	id, err := strconv.ParseInt(s, 10, 64)
	if err != nil || id <= 0 || strconv.FormatInt(id, 10) != s {
		return 0, false
	}
	return id, true
}
