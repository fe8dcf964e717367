package collector

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the collector's Prometheus series. Labels are bounded sets
// (endpoints, reasons, status codes); values never appear.
type metrics struct {
	accepted *prometheus.CounterVec
	rejected *prometheus.CounterVec
	dups     *prometheus.CounterVec
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		accepted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "veil_ingest_records_accepted_total",
			Help: "Events and profile updates written to the log, by endpoint.",
		}, []string{"endpoint"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "veil_ingest_records_rejected_total",
			Help: "Records refused, by endpoint and reason (a refused request counts once).",
		}, []string{"endpoint", "reason"}),
		dups: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "veil_ingest_events_deduplicated_total",
			Help: "Events dropped because their $insert_id key was already stored.",
		}, []string{"endpoint"}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "veil_ingest_requests_total",
			Help: "Ingestion requests by endpoint and HTTP status.",
		}, []string{"endpoint", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "veil_ingest_request_duration_seconds",
			Help:    "Time from request start to acknowledgement, by endpoint.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}, []string{"endpoint"}),
	}
	if reg != nil {
		reg.MustRegister(m.accepted, m.rejected, m.dups, m.requests, m.latency)
	}
	return m
}

func (m *metrics) observe(ep endpoint, res result, took time.Duration) {
	e := string(ep)
	m.requests.WithLabelValues(e, strconv.Itoa(res.status)).Inc()
	m.latency.WithLabelValues(e).Observe(took.Seconds())
	if res.stored > 0 {
		m.accepted.WithLabelValues(e).Add(float64(res.stored))
	}
	if res.dups > 0 {
		m.dups.WithLabelValues(e).Add(float64(res.dups))
	}
	if res.ignored > 0 {
		m.rejected.WithLabelValues(e, "ignored").Add(float64(res.ignored))
	}
	if res.err != "" && len(res.failures) == 0 {
		m.rejected.WithLabelValues(e, string(res.reason)).Inc()
	}
	for _, f := range res.failures {
		m.rejected.WithLabelValues(e, string(f.reason)).Inc()
	}
}
