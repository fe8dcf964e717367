// Package wire decodes Mixpanel wire payloads from untrusted HTTP requests:
// the request body (plain or gzip, size-limited), the data= field in its
// three spellings (form body, query string, raw JSON body; base64 or JSON),
// and the JSON itself, parsed by hand into event.Value.
//
// Error messages are meant to be shown to API clients. They name the
// problem and its position but never echo payload content.
//
// The pieces, in request order:
//
//   - ReadBody reads the body within a size limit, inflating gzip.
//   - ExtractPayload finds the JSON text in the body or the query string.
//   - ParseItems parses it into event.Value items with a hand-written,
//     allocation-frugal parser that agrees with encoding/json.
package wire
