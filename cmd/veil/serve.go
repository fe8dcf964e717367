package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/veil-analytics/veil/internal/api"
	"github.com/veil-analytics/veil/internal/collector"
	"github.com/veil-analytics/veil/internal/meta"
	"github.com/veil-analytics/veil/internal/privacy"
	"github.com/veil-analytics/veil/internal/scan"
	"github.com/veil-analytics/veil/internal/store"
)

// serveConfig is everything "veil serve" is told.
type serveConfig struct {
	data            string
	addr            string
	tlsCert         string
	tlsKey          string
	maxBodyBytes    int64
	rateLimit       float64
	rateBurst       int
	redirectHosts   string
	trustedProxies  string
	dedupWindow     time.Duration
	dedupMaxKeys    int
	flushInterval   time.Duration
	flushMB         int
	shutdownTimeout time.Duration
	logLevel        string
	logFormat       string
	debugAddr       string
	queryTimeout    time.Duration
	maxResultMB     int
	keys            keyFlags
}

func (c *serveConfig) register(fs *flagSet) {
	fs.StringVar(&c.data, "data", "", "data directory (created if missing)")
	fs.StringVar(&c.addr, "addr", "127.0.0.1:8080", "address to listen on")
	fs.StringVar(&c.tlsCert, "tls-cert", "", "TLS certificate file (PEM); serve HTTPS when set with --tls-key")
	fs.StringVar(&c.tlsKey, "tls-key", "", "TLS private key file (PEM)")
	fs.Int64Var(&c.maxBodyBytes, "max-body-bytes", 10<<20, "largest request accepted, in bytes after decompression")
	fs.Float64Var(&c.rateLimit, "rate-limit", 30000, "records per second per project (0 = no limit); excess gets 429")
	fs.IntVar(&c.rateBurst, "rate-burst", 0, "records a project may send at once above the rate (default 10 s of --rate-limit)")
	fs.StringVar(&c.redirectHosts, "redirect-hosts", "", "comma-separated hosts that ?redirect= may send browsers to")
	fs.StringVar(&c.trustedProxies, "trusted-proxies", "", "comma-separated CIDRs of proxies whose X-Forwarded-For is believed")
	fs.DurationVar(&c.dedupWindow, "dedup-window", 24*time.Hour, "how long an $insert_id deduplicates after receipt")
	fs.IntVar(&c.dedupMaxKeys, "dedup-max-keys", 8<<20, "bound on remembered $insert_id keys (about 18 bytes each)")
	fs.DurationVar(&c.flushInterval, "flush-interval", 30*time.Second, "how often new events are written from memory (and the log) into the event store's segments")
	fs.IntVar(&c.flushMB, "flush-mb", 64, "flush earlier when events waiting in memory reach this many MiB")
	fs.DurationVar(&c.shutdownTimeout, "shutdown-timeout", 30*time.Second, "how long SIGTERM waits for in-flight requests")
	fs.StringVar(&c.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&c.logFormat, "log-format", "text", "text or json")
	fs.StringVar(&c.debugAddr, "debug-addr", "", "serve Go's pprof profiles on this address (keep it on loopback)")
	fs.DurationVar(&c.queryTimeout, "query-timeout", api.DefaultQueryTimeout, "longest a report may run on /api/v1; the client gets 504 beyond it")
	fs.IntVar(&c.maxResultMB, "max-result-mb", api.DefaultMaxResultBytes>>20, "largest report answer on /api/v1, in MiB (encoded JSON); larger ones get 422")
	c.keys.register(fs, true)
}

func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var cfg serveConfig
	fs := newFlagSet("serve", "serve --data DIR [--addr HOST:PORT] [flags]", stderr)
	cfg.register(fs)
	if err := fs.parse(args); err != nil {
		return err
	}
	if err := requireData(cfg.data); err != nil {
		return err
	}
	logger, err := newLogger(cfg.logLevel, cfg.logFormat, stderr)
	if err != nil {
		return err
	}
	srv, err := startServer(ctx, cfg, logger)
	if err != nil {
		return err
	}
	return srv.wait(ctx)
}

func newLogger(level, format string, w io.Writer) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: want text or json", format)
}

// server is a running "veil serve".
type server struct {
	cfg     serveConfig
	logger  *slog.Logger
	db      *meta.DB
	store   *store.Store
	http    *http.Server
	ln      net.Listener
	serveCh chan error

	stage     *privacy.Stage
	closeGeo  func() error
	stopFlush func() // stops the counter flusher after a last flush
}

// URL is the server's base URL.
func (s *server) URL() string {
	scheme := "http"
	if s.cfg.tlsCert != "" {
		scheme = "https"
	}
	return scheme + "://" + s.ln.Addr().String()
}

func parsePrefixes(list string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range splitList(list) {
		if !strings.Contains(s, "/") {
			a, err := netip.ParseAddr(s)
			if err != nil {
				return nil, fmt.Errorf("--trusted-proxies: %q is not an address or CIDR", s)
			}
			out = append(out, netip.PrefixFrom(a, a.BitLen()))
			continue
		}
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return nil, fmt.Errorf("--trusted-proxies: %q is not a CIDR", s)
		}
		out = append(out, p)
	}
	return out, nil
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// startServer opens the data directory and starts listening.
func startServer(ctx context.Context, cfg serveConfig, logger *slog.Logger) (*server, error) {
	proxies, err := parsePrefixes(cfg.trustedProxies)
	if err != nil {
		return nil, err
	}
	if (cfg.tlsCert == "") != (cfg.tlsKey == "") {
		return nil, errors.New("--tls-cert and --tls-key go together")
	}
	if cfg.queryTimeout <= 0 {
		return nil, fmt.Errorf("--query-timeout %v: want a positive duration such as 60s", cfg.queryTimeout)
	}
	if cfg.maxResultMB <= 0 || cfg.maxResultMB > 1<<20 {
		return nil, fmt.Errorf("--max-result-mb %d: want a positive number of MiB", cfg.maxResultMB)
	}
	if err := os.MkdirAll(cfg.data, 0o700); err != nil {
		return nil, fmt.Errorf("data directory: %w", err)
	}
	db, err := meta.Open(ctx, filepath.Join(cfg.data, "meta.db"))
	if err != nil {
		return nil, err
	}
	stage, closeGeo, err := openStage(cfg.keys, cfg.data, db, logger)
	if err != nil {
		db.Close()
		return nil, err
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	fsyncs := prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "veil_wal_fsync_duration_seconds",
		Help:    "Time of each write-ahead log fsync (one per group commit).",
		Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, 1},
	})
	reg.MustRegister(fsyncs)
	st, err := store.Open(cfg.data, store.Options{
		DedupWindow:   cfg.dedupWindow,
		DedupMaxKeys:  cfg.dedupMaxKeys,
		FlushInterval: cfg.flushInterval,
		FlushBytes:    cfg.flushMB << 20,
		ObserveSync:   func(d time.Duration) { fsyncs.Observe(d.Seconds()) },
		Retention:     db.Retentions,
		Logger:        logger,
	})
	if err != nil {
		closeGeo()
		db.Close()
		return nil, err
	}
	if n := st.Repaired(); n > 0 {
		logger.Warn("write-ahead log had a torn tail (a crash mid-write, never acknowledged); truncated it, keeping the bytes beside the segment as *.torn-<offset>", "bytes", n)
	}
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "veil_wal_size_bytes",
		Help: "Size of the write-ahead log on disk.",
	}, func() float64 { return float64(st.LogSize()) }))

	col := collector.New(collector.Config{
		MaxBodyBytes:    cfg.maxBodyBytes,
		RateLimit:       cfg.rateLimit,
		RateBurst:       cfg.rateBurst,
		RedirectHosts:   splitList(cfg.redirectHosts),
		TrustedProxies:  proxies,
		Logger:          logger,
		MetricsRegistry: reg,
	}, projectsAdapter{db}, stage, st)

	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if err := st.Err(); err != nil {
			// The log failed for good: every ingest gets 503 until a restart.
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintln(w, "unhealthy: write-ahead log failed; restart veil")
			return
		}
		fmt.Fprintln(w, "ok")
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	apiHandler, err := api.New(api.Config{
		Reports:        reportRunner{db: db, open: func(p int64) (scan.Source, error) { return st.Source(p) }},
		Meta:           db,
		Logger:         logger,
		QueryTimeout:   cfg.queryTimeout,
		MaxResultBytes: cfg.maxResultMB << 20,
	})
	if err != nil {
		st.Close()
		closeGeo()
		db.Close()
		return nil, err
	}
	mux.Handle("/api/v1/", apiHandler)
	mux.Handle("/", col)

	ln, err := net.Listen("tcp", cfg.addr)
	if err != nil {
		st.Close()
		closeGeo()
		db.Close()
		return nil, fmt.Errorf("listen on %s: %w", cfg.addr, err)
	}
	hs := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       2 * time.Minute,
		WriteTimeout:      max(2*time.Minute, cfg.queryTimeout+time.Minute), // a report's answer is written after its query
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    4 << 20, // the Node SDK sends whole events in the query string
		ErrorLog:          log.New(redactAddrs{slog.NewLogLogger(logger.Handler(), slog.LevelWarn).Writer()}, "", 0),
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	if cfg.tlsCert != "" {
		cert, err := tls.LoadX509KeyPair(cfg.tlsCert, cfg.tlsKey)
		if err != nil {
			ln.Close()
			st.Close()
			closeGeo()
			db.Close()
			return nil, fmt.Errorf("TLS: %w", err)
		}
		hs.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		ln = tls.NewListener(ln, hs.TLSConfig)
	}
	if cfg.debugAddr != "" {
		dbg := http.NewServeMux()
		dbg.HandleFunc("/debug/pprof/", pprof.Index)
		dbg.HandleFunc("/debug/pprof/profile", pprof.Profile)
		dbg.HandleFunc("/debug/pprof/trace", pprof.Trace)
		go func() {
			err := http.ListenAndServe(cfg.debugAddr, dbg)
			logger.Error("debug listener stopped", "err", err)
		}()
	}
	flushCtx, stopFlush := context.WithCancel(context.WithoutCancel(ctx))
	flushed := make(chan struct{})
	go func() {
		defer close(flushed)
		stage.RunFlusher(flushCtx, changeSink{db}, 10*time.Second, func(err error) {
			logger.Warn("could not store privacy change counters; will retry", "err", err)
		})
	}()
	s := &server{cfg: cfg, logger: logger, db: db, store: st, http: hs, ln: ln, serveCh: make(chan error, 1),
		stage: stage, closeGeo: closeGeo, stopFlush: func() { stopFlush(); <-flushed }}
	go func() { s.serveCh <- hs.Serve(ln) }()
	logger.Info("veil is listening", "url", s.URL(), "data", cfg.data)
	return s, nil
}

// wait runs until ctx ends (SIGTERM or SIGINT), then drains in-flight
// requests and flushes the log.
func (s *server) wait(ctx context.Context) error {
	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-s.serveCh:
	}
	s.logger.Info("shutting down: draining in-flight requests")
	sctx, cancel := context.WithTimeout(context.Background(), s.cfg.shutdownTimeout)
	defer cancel()
	err := s.http.Shutdown(sctx)
	if errors.Is(serveErr, http.ErrServerClosed) {
		serveErr = nil
	}
	s.stopFlush()
	err = errors.Join(serveErr, err, s.store.Close(), s.closeGeo(), s.db.Close())
	if err == nil {
		s.logger.Info("stopped cleanly")
	}
	return err
}

// projectsAdapter answers the collector's credential lookups from the
// metadata database.
type projectsAdapter struct{ db *meta.DB }

func (a projectsAdapter) ProjectIDByToken(ctx context.Context, token string) (int64, error) {
	p, err := a.db.ProjectByToken(ctx, token)
	return lookupResult(p, err)
}

func (a projectsAdapter) ProjectIDBySecret(ctx context.Context, secret string) (int64, error) {
	p, err := a.db.ProjectBySecret(ctx, secret)
	return lookupResult(p, err)
}

func lookupResult(p meta.Project, err error) (int64, error) {
	if errors.Is(err, meta.ErrNotFound) {
		return 0, collector.ErrUnknownProject
	}
	if err != nil {
		return 0, err
	}
	return p.ID, nil
}

// addrRE matches IPv4 and bracketed or bare IPv6 addresses with a port, as
// net/http's error log writes them ("TLS handshake error from 1.2.3.4:5").
var addrRE = regexp.MustCompile(`(\[[0-9A-Fa-f:.%]+\]|[0-9A-Fa-f:.]*[.:][0-9A-Fa-f:.]+):[0-9]+`)

// redactAddrs hides client addresses in net/http's own error log lines:
// an IP address is personal data and never goes to the logs.
type redactAddrs struct{ w io.Writer }

func (r redactAddrs) Write(p []byte) (int, error) {
	if _, err := r.w.Write(addrRE.ReplaceAll(p, []byte("[client]"))); err != nil {
		return 0, err
	}
	return len(p), nil
}
