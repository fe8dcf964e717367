// Package collector owns Veil's Mixpanel-compatible ingestion endpoints:
// /track, /engage, /groups and /import. It decodes what the official SDKs
// send, validates it against Mixpanel's limits, passes every item through the
// privacy stage, and acknowledges only after the store has made the request
// durable. Responses match Mixpanel's byte for byte where the SDKs read them.
package collector

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/veil-analytics/veil/internal/event"
	"github.com/veil-analytics/veil/internal/privacy"
)

// Privacy is the stage between decoding and the log. Returning false drops
// the item; an error fails the whole request (nothing is written).
type Privacy interface {
	Event(ctx context.Context, req *privacy.Request, e *event.Event) (bool, error)
	Profile(ctx context.Context, req *privacy.Request, u *event.ProfileUpdate) (bool, error)
	Link(ctx context.Context, l *event.IdentityLink) (bool, error)
}

// Appender stores a batch durably; when it returns nil the batch is on disk.
// dups counts events dropped as duplicates of stored ones.
type Appender interface {
	Append(ctx context.Context, b *event.Batch) (dups int, err error)
}

// Projects resolves ingestion credentials to project ids. Both methods
// return ErrUnknownProject when nothing matches.
type Projects interface {
	ProjectIDByToken(ctx context.Context, token string) (int64, error)
	ProjectIDBySecret(ctx context.Context, secret string) (int64, error)
}

// ErrUnknownProject is returned by Projects when a credential matches no project.
var ErrUnknownProject = errors.New("unknown project")

// Config holds the collector's limits; zero values mean Mixpanel's.
type Config struct {
	MaxBodyBytes    int64         // per request, uncompressed; default 10 MB
	MaxBatch        int           // records per request; default 2000
	MaxRecordBytes  int           // per event or profile update; default 1 MB
	MaxProperties   int           // per event; default 255
	TrackMaxAge     time.Duration // /track accepts events this old; default 5 days
	RateLimit       float64       // events/s per project; 0 = no limit
	RateBurst       int           // default 10 s of RateLimit, at least MaxBatch
	RedirectHosts   []string      // hosts that ?redirect= may send browsers to
	TrustedProxies  []netip.Prefix
	Now             func() time.Time
	Logger          *slog.Logger
	MetricsRegistry prometheus.Registerer // nil: metrics are not registered
}

func (c *Config) setDefaults() {
	if c.MaxBodyBytes <= 0 {
		c.MaxBodyBytes = 10 << 20
	}
	if c.MaxBatch <= 0 {
		c.MaxBatch = 2000
	}
	if c.MaxRecordBytes <= 0 {
		c.MaxRecordBytes = 1 << 20
	}
	if c.MaxProperties <= 0 {
		c.MaxProperties = 255
	}
	if c.TrackMaxAge <= 0 {
		c.TrackMaxAge = 5 * 24 * time.Hour
	}
	if c.RateBurst <= 0 {
		c.RateBurst = int(c.RateLimit * 10)
	}
	if c.RateBurst < c.MaxBatch {
		c.RateBurst = c.MaxBatch
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Collector serves the ingestion endpoints. It is an http.Handler.
type Collector struct {
	cfg      Config
	projects *projectCache
	privacy  Privacy
	store    Appender
	limits   *rateLimits
	metrics  *metrics
	links    *linkFilter
	// bodies recycles request bodies and decoded payloads (*[]byte): parsing copies what it
	// keeps, so a body is garbage once its request is answered.
	bodies sync.Pool
}

// New returns a collector that resolves credentials with projects, passes
// items through priv and stores them with app.
func New(cfg Config, projects Projects, priv Privacy, app Appender) *Collector {
	cfg.setDefaults()
	return &Collector{
		cfg:      cfg,
		projects: newProjectCache(projects, cfg.Now),
		privacy:  priv,
		store:    app,
		limits:   newRateLimits(cfg.RateLimit, cfg.RateBurst),
		metrics:  newMetrics(cfg.MetricsRegistry),
		links:    newLinkFilter(1 << 20),
		bodies:   sync.Pool{New: func() any { return new([]byte) }},
	}
}

// endpoint is one of the four ingestion routes.
type endpoint string

const (
	epTrack  endpoint = "track"
	epEngage endpoint = "engage"
	epGroups endpoint = "groups"
	epImport endpoint = "import"
)

// endpointOf finds the route from the last path element, so any prefix
// (the Node SDK's path option, a reverse proxy's) and a trailing slash work.
func endpointOf(path string) (endpoint, bool) {
	path = strings.TrimSuffix(path, "/")
	if i := strings.LastIndexByte(path, '/'); i >= 0 {
		path = path[i+1:]
	}
	switch endpoint(path) {
	case epTrack, epEngage, epGroups, epImport:
		return endpoint(path), true
	}
	return "", false
}

// ServeHTTP answers one ingestion request.
func (c *Collector) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	setCORS(w, r)
	ep, ok := endpointOf(r.URL.Path)
	if !ok {
		writeJSON(w, http.StatusNotFound, map[string]any{"status": 0, "error": "not found: ingestion routes are /track, /engage, /groups and /import"})
		return
	}
	if r.Method == http.MethodOptions {
		preflight(w, r)
		return
	}
	res := c.serve(r.Context(), w, r, ep)
	took := time.Since(start)
	c.metrics.observe(ep, res, took)
	// Counts and reasons only: never a value, an id or the client's address.
	c.cfg.Logger.DebugContext(r.Context(), "ingest request", "endpoint", string(ep), "status", res.status,
		"stored", res.stored, "duplicates", res.dups, "dropped", len(res.failures), "reason", string(res.reason), "took", took)
}
