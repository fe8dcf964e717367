package collector

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/veil-analytics/veil/internal/event"
	"github.com/veil-analytics/veil/internal/privacy"
	"github.com/veil-analytics/veil/internal/wire"
)

// reason labels why items were refused; a bounded set, used as a metric label.
type reason string

const (
	reasonMalformed     reason = "malformed"
	reasonTooLarge      reason = "too_large"
	reasonTooMany       reason = "too_many_records"
	reasonNoToken       reason = "missing_token"
	reasonUnknownToken  reason = "unknown_token"
	reasonUnauthorized  reason = "unauthorized"
	reasonBadTime       reason = "bad_time"
	reasonTooOld        reason = "too_old"
	reasonTooManyProps  reason = "too_many_properties"
	reasonInvalid       reason = "invalid_field"
	reasonRateLimited   reason = "rate_limited"
	reasonBadRequest    reason = "bad_request"
	reasonUnavailable   reason = "unavailable"
	reasonMergeEndpoint reason = "merge_not_on_import"
)

// failure is one refused record, reported as Mixpanel's failed_records.
type failure struct {
	Index    int    `json:"index"`
	InsertID string `json:"insert_id"`
	Field    string `json:"field"`
	Message  string `json:"message"`
	reason   reason
}

// result is what one request came to, for the response and the metrics.
type result struct {
	status   int
	stored   int // items written
	dups     int // events dropped as already stored
	ignored  int // events with $ignore, or dropped by the privacy stage
	failures []failure
	err      string // whole-request error message
	reason   reason // whole-request error reason
}

// accepted is how many records the client may consider delivered.
func (r *result) accepted() int { return r.stored + r.dups + r.ignored }

// requestError ends a request before anything is written.
type requestError struct {
	status int
	reason reason
	msg    string
	retry  int // Retry-After seconds for 429
}

func (e *requestError) Error() string { return e.msg }

func fail(status int, why reason, format string, args ...any) *requestError {
	return &requestError{status: status, reason: why, msg: fmt.Sprintf(format, args...)}
}

// Parse-time bounds: Mixpanel allows 255 members per nested container and
// 2000 properties per profile update, and a record has a few hundred values
// at most. Without them a 10 MB body could decode into gigabytes.
const (
	maxContainerMembers = 2000
	maxValuesPerRecord  = 300
)

// maxPooledBody bounds the request bodies kept for reuse: SDK batches are
// tens of kilobytes; bigger ones are left to the garbage collector.
const maxPooledBody = 1 << 20

// serve runs the whole request: decode, validate, privacy, store, answer.
func (c *Collector) serve(ctx context.Context, w http.ResponseWriter, r *http.Request, ep endpoint) result {
	q := r.URL.Query()
	rep := replyFor(ep, q)
	res, rerr := c.process(ctx, r, ep, q, &rep)
	if rerr != nil {
		res = result{status: rerr.status, err: rerr.msg, reason: rerr.reason}
		if rerr.retry > 0 {
			w.Header().Set("Retry-After", fmt.Sprint(rerr.retry))
		}
	}
	rep.write(w, &res)
	return res
}

func (c *Collector) process(ctx context.Context, r *http.Request, ep endpoint, q url.Values, rep *reply) (result, *requestError) {
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		return result{}, fail(http.StatusMethodNotAllowed, reasonBadRequest, "method %s is not allowed: use GET or POST", r.Method)
	}
	if err := rep.validate(c.cfg.RedirectHosts); err != nil {
		return result{}, err
	}
	// /import is authenticated before its body is read, so that anonymous
	// callers cannot make the server decode 10 MB bodies.
	var importProject int64
	if ep == epImport {
		id, err := c.authenticateImport(ctx, r, q)
		if err != nil {
			return result{}, err
		}
		importProject = id
	}
	bufp := c.bodies.Get().(*[]byte)
	defer func() {
		if cap(*bufp) <= maxPooledBody {
			c.bodies.Put(bufp)
		}
	}()
	body, err := wire.ReadBodyInto(*bufp, r.Body, r.Header.Get("Content-Encoding"), c.cfg.MaxBodyBytes, r.ContentLength)
	*bufp = body[:0]
	if err != nil {
		if errors.Is(err, wire.ErrTooLarge) {
			return result{}, fail(http.StatusRequestEntityTooLarge, reasonTooLarge, "request exceeds max limit of %d bytes", c.cfg.MaxBodyBytes)
		}
		return result{}, fail(http.StatusBadRequest, reasonMalformed, "%v", err)
	}
	decp := c.bodies.Get().(*[]byte)
	defer func() {
		if cap(*decp) <= maxPooledBody {
			c.bodies.Put(decp)
		}
	}()
	p, err := wire.ExtractPayloadBuf(*decp, body, q)
	if p.Encoding == wire.EncodingBase64 && cap(p.Data) > cap(*decp) {
		*decp = p.Data[:0] // keep the larger buffer for the next request
	}
	if err != nil {
		return result{}, fail(http.StatusBadRequest, reasonMalformed, "%v", err)
	}
	if int64(len(p.Data)) > c.cfg.MaxBodyBytes {
		return result{}, fail(http.StatusRequestEntityTooLarge, reasonTooLarge, "request exceeds max limit of %d bytes", c.cfg.MaxBodyBytes)
	}
	items, err := wire.ParseItems(p.Data, wire.ParseOptions{
		NDJSON:     ep == epImport,
		MaxItems:   c.cfg.MaxBatch,
		MaxMembers: maxContainerMembers,
		MaxValues:  c.cfg.MaxBatch * maxValuesPerRecord,
	})
	var tooMany *wire.TooManyItemsError
	if errors.As(err, &tooMany) {
		return result{}, fail(http.StatusRequestEntityTooLarge, reasonTooMany, "batch has more than %d records: the limit per request", tooMany.Max)
	}
	if err != nil {
		return result{}, fail(http.StatusBadRequest, reasonMalformed, "%v", err)
	}
	if len(items) == 0 {
		return result{}, fail(http.StatusBadRequest, reasonMalformed, "payload has no records")
	}

	in := &intake{
		c:             c,
		ep:            ep,
		now:           c.cfg.Now(),
		strict:        ep == epImport && q.Get("strict") == "1",
		importProject: importProject,
	}
	var b event.Batch
	switch ep {
	case epTrack, epImport:
		if err := in.events(ctx, items, &b); err != nil {
			return result{}, err
		}
	case epEngage, epGroups:
		if err := in.profiles(ctx, items, &b); err != nil {
			return result{}, err
		}
	}
	res := result{failures: in.failures, ignored: in.ignored}
	if len(b.Events)+len(b.Profiles) == 0 && res.ignored == 0 {
		return res.refused(), nil
	}
	if err := c.limits.allow(in.perProject); err != nil {
		return result{}, err
	}

	req := &privacy.Request{
		IP:        clientIP(r, c.cfg.TrustedProxies),
		UserAgent: r.UserAgent(),
		Geolocate: q.Get("ip") != "0",
	}
	if err := c.applyPrivacy(ctx, req, &b, &res); err != nil {
		c.cfg.Logger.ErrorContext(ctx, "privacy stage failed", "endpoint", string(ep), "err", err)
		return result{}, fail(http.StatusInternalServerError, reasonUnavailable, "privacy stage failed; nothing was stored")
	}
	if b.Len() > 0 {
		dups, err := c.store.Append(ctx, &b)
		var tl interface{ TooLarge() bool }
		if errors.As(err, &tl) && tl.TooLarge() {
			return result{}, fail(http.StatusRequestEntityTooLarge, reasonTooLarge, "request is too large to store as one record; send smaller batches")
		}
		if err != nil {
			c.cfg.Logger.ErrorContext(ctx, "store append failed", "endpoint", string(ep), "err", err)
			return result{}, fail(http.StatusServiceUnavailable, reasonUnavailable, "storage is unavailable; nothing was stored, retry later")
		}
		res.dups = dups
		c.links.remember(b.Links)
		res.stored = len(b.Events) + len(b.Profiles) - dups
	}
	res.status = http.StatusOK
	if in.strict && len(res.failures) > 0 {
		res.status = http.StatusBadRequest
	}
	return res, nil
}

// refused is the answer when no record was usable: 401 when every record
// failed on its token, else 400.
func (r result) refused() result {
	r.status = http.StatusBadRequest
	r.reason = reasonInvalid
	allToken := len(r.failures) > 0
	for _, f := range r.failures {
		if f.reason != reasonUnknownToken && f.reason != reasonNoToken {
			allToken = false
		}
	}
	if allToken {
		r.status = http.StatusUnauthorized
		r.reason = r.failures[0].reason
	}
	if len(r.failures) > 0 {
		r.err = r.failures[0].Message
		if len(r.failures) > 1 {
			r.err = fmt.Sprintf("%s (and %d more records failed)", r.err, len(r.failures)-1)
		}
	}
	return r
}

// applyPrivacy runs every item through the privacy stage, dropping what it drops.
func (c *Collector) applyPrivacy(ctx context.Context, req *privacy.Request, b *event.Batch, res *result) error {
	// Identity links come from raw ids before the stage rewrites them, but
	// only for events the stage keeps: a dropped event must not leave one.
	events := b.Events[:0]
	var raw []event.IdentityLink
	for i := range b.Events {
		n := len(raw)
		raw = appendLinks(raw, &b.Events[i])
		keep, err := c.privacy.Event(ctx, req, &b.Events[i])
		if err != nil {
			return err
		}
		if keep {
			events = append(events, b.Events[i])
		} else {
			raw = raw[:n]
			res.ignored++
		}
	}
	b.Events = events
	b.Links = raw
	profiles := b.Profiles[:0]
	for i := range b.Profiles {
		keep, err := c.privacy.Profile(ctx, req, &b.Profiles[i])
		if err != nil {
			return err
		}
		if keep {
			profiles = append(profiles, b.Profiles[i])
		} else {
			res.ignored++
		}
	}
	b.Profiles = profiles
	links := b.Links[:0]
	var inBatch map[uint64]bool
	for i := range b.Links {
		keep, err := c.privacy.Link(ctx, &b.Links[i])
		if err != nil {
			return err
		}
		if !keep || c.links.seen(&b.Links[i]) {
			continue
		}
		// A batch often carries the same device→user link on every event.
		h := c.links.hash(&b.Links[i])
		if inBatch[h] {
			continue
		}
		if inBatch == nil {
			inBatch = make(map[uint64]bool)
		}
		inBatch[h] = true
		links = append(links, b.Links[i])
	}
	b.Links = links
	truncateBatch(b)
	return nil
}

// authenticateImport checks /import's HTTP basic credentials: the project
// secret as user name (Mixpanel's API secret), or as password with any user
// name plus ?project_id= (service-account style). The public token is not
// enough: /import can backdate events, so it needs the server-side secret.
func (c *Collector) authenticateImport(ctx context.Context, r *http.Request, q url.Values) (int64, *requestError) {
	user, pass, ok := r.BasicAuth()
	if !ok {
		if q.Get("api_key") != "" {
			return 0, fail(http.StatusUnauthorized, reasonUnauthorized, "Invalid credentials: api_key is not supported; send the project secret with HTTP basic auth")
		}
		return 0, fail(http.StatusUnauthorized, reasonUnauthorized, "Invalid credentials: /import needs HTTP basic auth with the project secret")
	}
	secret := user
	if pass != "" {
		secret = pass
	}
	id, err := c.projects.bySecret(ctx, secret)
	switch {
	case errors.Is(err, ErrUnknownProject):
		if _, terr := c.projects.byToken(ctx, user); terr == nil {
			return 0, fail(http.StatusUnauthorized, reasonUnauthorized, "Invalid credentials: that is the public project token; /import needs the project secret")
		}
		return 0, fail(http.StatusUnauthorized, reasonUnauthorized, "Invalid credentials: the secret matches no project")
	case err != nil:
		c.cfg.Logger.ErrorContext(ctx, "project lookup failed", "err", err)
		return 0, fail(http.StatusServiceUnavailable, reasonUnavailable, "project lookup failed; retry later")
	}
	if pid := q.Get("project_id"); pid != "" {
		n, err := strconv.ParseInt(strings.TrimSpace(pid), 10, 64)
		if err != nil {
			return 0, fail(http.StatusBadRequest, reasonBadRequest, "project_id must be a project's numeric id")
		}
		if n != id {
			return 0, fail(http.StatusUnauthorized, reasonUnauthorized, "Invalid credentials: the secret does not belong to project_id %d", n)
		}
	}
	return id, nil
}
