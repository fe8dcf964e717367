package collector

import (
	"encoding/json"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
)

// reply is how the client asked to be answered.
type reply struct {
	ep         endpoint
	verbose    bool
	importJSON bool // /import's {"code":..,"status":"OK"} answer
	img        bool
	callback   string
	redirect   string
}

// replyFor reads the response options from the query. /import answers with
// its JSON body when the client passed strict=1, or strict=0 with
// verbose=1 (the Go SDK); without strict (the Node SDK, Go's Merge) it
// answers 1 like /track, which is what those clients parse.
func replyFor(ep endpoint, q url.Values) reply {
	r := reply{
		ep:       ep,
		verbose:  q.Get("verbose") == "1",
		img:      q.Get("img") == "1",
		callback: q.Get("callback"),
		redirect: q.Get("redirect"),
	}
	if ep == epImport && q.Has("strict") && (q.Get("strict") == "1" || r.verbose) {
		r.importJSON = true
	}
	return r
}

// callbackRE is what mixpanel-browser sends as a JSONP callback
// ("mixpanel._jsc[12345678]", "mixpanel.name._jsc[3]"). Anything else could
// call arbitrary page functions or inject script, so it is refused.
var callbackRE = regexp.MustCompile(`^mixpanel(\.[A-Za-z_$][A-Za-z0-9_$]*)?\._jsc\[[0-9]{1,12}\]$`)

// validate refuses unsafe JSONP callbacks and redirects to hosts that are
// not allow-listed (an open redirect would let anyone bounce users
// through Veil's domain).
func (r *reply) validate(redirectHosts []string) *requestError {
	if r.callback != "" && r.callback != "(function(){})" && (len(r.callback) > 128 || !callbackRE.MatchString(r.callback)) {
		return fail(http.StatusBadRequest, reasonBadRequest, "callback must be mixpanel-browser's JSONP callback, such as mixpanel._jsc[1]")
	}
	if r.redirect != "" {
		u, err := url.Parse(r.redirect)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fail(http.StatusBadRequest, reasonBadRequest, "redirect must be an absolute http or https URL")
		}
		allowed := false
		for _, h := range redirectHosts {
			if strings.EqualFold(u.Hostname(), h) {
				allowed = true
			}
		}
		if !allowed {
			return fail(http.StatusBadRequest, reasonBadRequest, "redirect host is not allowed: add it to --redirect-hosts")
		}
	}
	return nil
}

// gif is a 1×1 transparent GIF, for img=1 tracking pixels.
var gif = []byte("GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\x00\x00\x00!\xf9\x04\x01\x00\x00\x00\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;")

// write sends the answer for res in the form the client asked for.
func (r *reply) write(w http.ResponseWriter, res *result) {
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Veil-Accepted", strconv.Itoa(res.accepted()))
	if n := len(res.failures); n > 0 {
		h.Set("X-Veil-Dropped", strconv.Itoa(n))
	}
	if msg := res.message(); msg != "" {
		h.Set("X-Veil-Error", headerSafe(msg))
	}
	ok := res.status < 300

	switch {
	case r.importJSON:
		writeJSON(w, res.status, r.importBody(res))
		return
	case ok && r.redirect != "":
		http.Redirect(w, &http.Request{Method: http.MethodGet}, r.redirect, http.StatusFound)
		return
	case r.img:
		h.Set("Content-Type", "image/gif")
		w.WriteHeader(res.status)
		w.Write(gif)
		return
	}

	var body []byte
	switch {
	case ok && !r.verbose:
		// Node's SDK accepts exactly "1"; what was dropped is in the headers.
		body = []byte("1")
	default:
		body = r.statusBody(res)
	}
	if r.callback != "" {
		h.Set("Content-Type", "text/javascript; charset=utf-8")
		w.WriteHeader(res.status)
		w.Write([]byte(r.callback + "("))
		w.Write(body)
		w.Write([]byte(");"))
		return
	}
	if body[0] == '{' {
		h.Set("Content-Type", "application/json")
	} else {
		h.Set("Content-Type", "text/plain; charset=utf-8")
	}
	w.WriteHeader(res.status)
	w.Write(body)
}

// message is the first problem to report, or "".
func (res *result) message() string {
	if res.err != "" {
		return res.err
	}
	if len(res.failures) > 0 {
		return res.failures[0].Message
	}
	return ""
}

// statusBody is Mixpanel's verbose answer, {"status":1,"error":null}, with
// Veil's counts added when records were dropped.
func (r *reply) statusBody(res *result) []byte {
	type body struct {
		Status   int       `json:"status"`
		Error    *string   `json:"error"`
		Imported *int      `json:"num_records_imported,omitempty"`
		Dropped  *int      `json:"num_records_dropped,omitempty"`
		Failed   []failure `json:"failed_records,omitempty"`
	}
	b := body{Status: 1}
	if res.status >= 300 {
		b.Status = 0
		msg := res.message()
		b.Error = &msg
	}
	if len(res.failures) > 0 {
		n, d := res.accepted(), len(res.failures)
		b.Imported, b.Dropped, b.Failed = &n, &d, res.failures
	}
	out, _ := json.Marshal(b)
	return out
}

// importBody is /import's JSON answer.
func (r *reply) importBody(res *result) any {
	type body struct {
		Code     int       `json:"code"`
		Error    string    `json:"error,omitempty"`
		Failed   []failure `json:"failed_records,omitempty"`
		Imported *int      `json:"num_records_imported,omitempty"`
		Status   string    `json:"status"`
	}
	b := body{Code: res.status, Status: http.StatusText(res.status)}
	switch {
	case res.status == http.StatusOK:
		b.Status = "OK"
	case res.status == http.StatusBadRequest && len(res.failures) > 0:
		b.Error = "some data points in the request failed validation"
	default:
		b.Error = res.message()
	}
	if res.err == "" || len(res.failures) > 0 {
		// Also when every record failed: the Go SDK's validation error
		// lists failed_records, as Mixpanel sends them.
		n := res.accepted()
		b.Imported = &n
		b.Failed = res.failures
	}
	return b
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, _ := json.Marshal(v)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(b)
}

// headerSafe keeps a message to one printable ASCII line for a header.
func headerSafe(s string) string {
	var b strings.Builder
	for _, c := range s {
		if c >= 0x20 && c < 0x7f {
			b.WriteRune(c)
		} else {
			b.WriteByte('?')
		}
		if b.Len() > 300 {
			break
		}
	}
	return b.String()
}
