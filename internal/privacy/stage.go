package privacy

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/veil-analytics/veil/internal/event"
	"github.com/veil-analytics/veil/internal/privacy/geo"
	"github.com/veil-analytics/veil/internal/privacy/pii"
	"github.com/veil-analytics/veil/internal/privacy/pseudonym"
	"github.com/veil-analytics/veil/internal/privacy/useragent"
)

// PolicySource returns a project's stored policy as JSON, or nil when the
// project uses the default.
type PolicySource interface {
	PrivacyPolicy(ctx context.Context, projectID int64) ([]byte, error)
}

// Config configures a Stage.
type Config struct {
	Keys       *pseudonym.Keyring // required: every identity is pseudonymised under it
	Policies   PolicySource       // nil: every project uses DefaultPolicy
	Geo        *geo.DB            // nil: no geolocation
	UserAgents *useragent.Parser  // nil: a new parser
	// PolicyTTL is how long a loaded policy is used before it is read
	// again, so `veil policy set` reaches a running server. Default 5 s.
	PolicyTTL time.Duration
	Now       func() time.Time
}

// Stage is the privacy pipeline: it rewrites every event, profile update
// and identity link so that what is stored identifies no one, and counts
// what it changed. It is safe for concurrent use.
type Stage struct {
	keys     *pseudonym.Keyring
	policies PolicySource
	geo      *geo.DB
	ua       *useragent.Parser
	scanner  *pii.Scanner
	ttl      time.Duration
	now      func() time.Time

	mu     sync.Mutex
	loaded map[int64]*loadedPolicy

	counts counters
	procs  sync.Pool
}

type loadedPolicy struct {
	c       *compiled
	expires time.Time
}

// NewStage returns a stage.
func NewStage(cfg Config) (*Stage, error) {
	if cfg.Keys == nil {
		return nil, errors.New("privacy: a key ring is required")
	}
	s := &Stage{
		keys:     cfg.Keys,
		policies: cfg.Policies,
		geo:      cfg.Geo,
		ua:       cfg.UserAgents,
		scanner:  pii.NewScanner(),
		ttl:      cfg.PolicyTTL,
		now:      cfg.Now,
		loaded:   make(map[int64]*loadedPolicy),
	}
	if s.ua == nil {
		s.ua = useragent.NewParser()
	}
	if s.ttl <= 0 {
		s.ttl = 5 * time.Second
	}
	if s.now == nil {
		s.now = time.Now
	}
	s.counts.init()
	s.procs.New = func() any { return &proc{s: s} }
	return s, nil
}

// policy returns the compiled policy of a project, from the request's
// cache when the batch is for the project it last asked about.
func (s *Stage) policy(ctx context.Context, req *Request, projectID int64) (*compiled, error) {
	if req != nil && req.policy != nil && req.policyProject == projectID {
		return req.policy, nil
	}
	now := s.now()
	s.mu.Lock()
	lp := s.loaded[projectID]
	s.mu.Unlock()
	if lp == nil || now.After(lp.expires) {
		p := DefaultPolicy()
		if s.policies != nil {
			raw, err := s.policies.PrivacyPolicy(ctx, projectID)
			if err != nil {
				return nil, err
			}
			if raw != nil {
				if p, err = ParsePolicy(raw); err != nil {
					return nil, fmt.Errorf("privacy: stored policy of project %d: %w", projectID, err)
				}
			}
		}
		c, err := compile(p, s.keys, projectID)
		if err != nil {
			return nil, fmt.Errorf("privacy: policy of project %d: %w", projectID, err)
		}
		lp = &loadedPolicy{c: c, expires: now.Add(s.ttl)}
		s.mu.Lock()
		s.loaded[projectID] = lp
		s.mu.Unlock()
	}
	if req != nil {
		req.policy, req.policyProject = lp.c, projectID
	}
	return lp.c, nil
}

// Forget drops the cached policy of a project so the next item reloads it.
func (s *Stage) Forget(projectID int64) {
	s.mu.Lock()
	delete(s.loaded, projectID)
	s.mu.Unlock()
}

func (s *Stage) getProc(c *compiled, req *Request, explain bool) *proc {
	p := s.procs.Get().(*proc)
	p.c, p.req, p.explain = c, req, explain
	return p
}

func (s *Stage) putProc(p *proc) {
	p.reset()
	s.procs.Put(p)
}

// Event rewrites e in place; false means it must not be stored.
func (s *Stage) Event(ctx context.Context, req *Request, e *event.Event) (bool, error) {
	c, err := s.policy(ctx, req, e.Project)
	if err != nil {
		return false, err
	}
	if req != nil {
		if req.events == 1 && req.cache == nil {
			req.cache = new(reqCache)
		}
		req.events++
	}
	p := s.getProc(c, req, false)
	keep := p.event(e)
	s.counts.add(e.Project, e.Name, p.changes)
	s.putProc(p)
	return keep, nil
}

// Profile rewrites u in place; false means it must not be stored.
func (s *Stage) Profile(ctx context.Context, req *Request, u *event.ProfileUpdate) (bool, error) {
	c, err := s.policy(ctx, req, u.Project)
	if err != nil {
		return false, err
	}
	p := s.getProc(c, req, false)
	keep := p.profile(u)
	name := "$profile"
	if u.IsGroup() {
		name = "$group"
	}
	s.counts.add(u.Project, name, p.changes)
	s.putProc(p)
	return keep, nil
}

// Link pseudonymises both ends of an identity link.
func (s *Stage) Link(ctx context.Context, l *event.IdentityLink) (bool, error) {
	c, err := s.policy(ctx, nil, l.Project)
	if err != nil {
		return false, err
	}
	l.From = c.pseudo.Pseudonym(pseudonym.FieldDistinctID, l.From)
	l.To = c.pseudo.Pseudonym(pseudonym.FieldDistinctID, l.To)
	s.counts.add(l.Project, "$identity", []change{{"from", rPseudonymized}, {"to", rPseudonymized}})
	return true, nil
}

// Change is one thing the stage did to an item. It names a property and a
// reason, never a value. Property is a top-level property name, or
// "$event" (the event name), "distinct_id", "$insert_id", "$group_id"; in
// Explain it is a path into nested values ("properties.cart[2].email").
type Change struct {
	Property string `json:"property"`
	Reason   string `json:"reason"`
}

// Explain runs e through the stage like Event, without counting, and
// returns what it changed and why.
func (s *Stage) Explain(ctx context.Context, req *Request, e *event.Event) (bool, []Change, error) {
	c, err := s.policy(ctx, req, e.Project)
	if err != nil {
		return false, nil, err
	}
	p := s.getProc(c, req, true)
	keep := p.event(e)
	changes := make([]Change, len(p.changes))
	for i, c := range p.changes {
		changes[i] = Change{Property: c.prop, Reason: reasonNames[c.r]}
	}
	s.putProc(p)
	return keep, changes, nil
}

// Counts returns the counters accumulated since the last call and resets them.
func (s *Stage) Counts() []ChangeCount { return s.counts.drain() }

// ChangeSink stores change counters.
type ChangeSink interface {
	AddPrivacyChanges(ctx context.Context, counts []ChangeCount) error
}

// FlushCounts hands the accumulated counters to sink. On failure they are
// merged back, so a later flush retries them.
func (s *Stage) FlushCounts(ctx context.Context, sink ChangeSink) error {
	counts := s.counts.drain()
	if len(counts) == 0 {
		return nil
	}
	if err := sink.AddPrivacyChanges(ctx, counts); err != nil {
		s.counts.restore(counts)
		return err
	}
	return nil
}

// RunFlusher flushes counters to sink every interval until ctx ends, then
// once more.
func (s *Stage) RunFlusher(ctx context.Context, sink ChangeSink, interval time.Duration, onErr func(error)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			if err := s.FlushCounts(context.WithoutCancel(ctx), sink); err != nil && onErr != nil {
				onErr(err)
			}
			return
		case <-t.C:
			if err := s.FlushCounts(ctx, sink); err != nil && onErr != nil {
				onErr(err)
			}
		}
	}
}

// geoLevel maps a policy level to the reader's.
func geoLevel(g GeoLevel) geo.Level {
	switch g {
	case GeoRegion:
		return geo.Region
	case GeoCity:
		return geo.City
	}
	return geo.Country
}

// locate looks addr up, caching the request address's answer on req.
func (s *Stage) locate(req *Request, addr netip.Addr, fromReq bool, level geo.Level) (geo.Location, bool) {
	if fromReq && req.geoDone && req.geoLevel == level {
		return req.geoLoc, req.geoOK
	}
	loc, ok := s.geo.Lookup(addr, level)
	if fromReq {
		req.geoDone, req.geoLevel, req.geoLoc, req.geoOK = true, level, loc, ok
	}
	return loc, ok
}

// userAgent parses the request's user agent once per request.
func (s *Stage) userAgent(req *Request) useragent.Info {
	if !req.uaDone {
		req.ua, req.uaDone = s.ua.Parse(req.UserAgent), true
	}
	return req.ua
}
