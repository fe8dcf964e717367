package api

import (
	_ "embed"
	"net/http"
	"strconv"
)

// openAPIDoc is the OpenAPI 3.1 document of the API, written by hand. A
// test checks that it documents every route.
//
//go:embed openapi.json
var openAPIDoc []byte

// OpenAPI returns the OpenAPI 3.1 document of the API (a copy).
func OpenAPI() []byte { return append([]byte(nil), openAPIDoc...) }

// openAPI serves GET /api/v1/openapi.json, without authentication.
func (h *Handler) openAPI(w http.ResponseWriter, _ *http.Request) {
	hd := w.Header()
	hd.Set("Content-Type", "application/json")
	hd.Set("Content-Length", strconv.Itoa(len(openAPIDoc)))
	hd.Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	w.Write(openAPIDoc)
}
