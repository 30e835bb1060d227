package web

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/coedit/coedit/collab"
	"github.com/coedit/coedit/internal/statmetrics"
)

// metrics is one Server's Prometheus registry, served at /metrics. Each
// Server has its own registry (nothing is registered globally), so two
// servers in one process, as in tests, keep separate figures.
//
// The engine's figures are read from Hub.Stats at scrape time (see
// hubCollector); web keeps only what it alone sees: error replies by code,
// submit-to-ack latency and slow consumers.
type metrics struct {
	reg *prometheus.Registry
	// errors counts error replies sent, on the WebSocket and the HTTP
	// API, by code.
	errors *prometheus.CounterVec
	// submitAck is the time from handing a WebSocket submit to the hub
	// until its ack is queued for the client: transform, apply, the
	// durable commit, and the wait in the session's inbox.
	submitAck prometheus.Histogram
	// slowConsumers counts connections closed because their send queue
	// overflowed.
	slowConsumers prometheus.Counter
	// badFrames counts frames refused before they were served, by
	// reason: binary, utf8, json (not a JSON object with an action), size
	// (over the frame size limit, read and dropped).
	badFrames *prometheus.CounterVec
	// rateWaits adds up the time readers waited for their connection's
	// buckets (conn.pace), by limit: messages or ops; and the HTTP API's
	// submits for their address's (http_ops).
	rateWaits *prometheus.CounterVec
	// abuseClosed counts connections closed with 1008 for sending too
	// many bad frames.
	abuseClosed prometheus.Counter
	// proxied counts upgrades passed to their document's node
	// (Options.Router), and proxyFailures those that could not be and
	// were served here.
	proxied, proxyFailures prometheus.Counter
}

// submitAckBuckets are the submit latency histogram's upper bounds, in
// seconds: from a commit without fsync to one stuck behind a slow disk.
var submitAckBuckets = []float64{
	0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
}

// newMetrics builds s's registry: the Go runtime and process collectors,
// the hub and connection figures, web's own instruments, and the extra
// collectors from Options.Collectors.
func newMetrics(s *Server, extra []prometheus.Collector) (*metrics, error) {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "coedit_errors_total",
			Help: "Error replies sent to clients (WebSocket and HTTP API), by error code.",
		}, []string{"code"}),
		submitAck: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "coedit_submit_ack_seconds",
			Help:    "Time from handing a WebSocket submit to the hub until its ack is queued: transform, apply, durable commit.",
			Buckets: submitAckBuckets,
		}),
		slowConsumers: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "coedit_slow_consumers_closed_total",
			Help: "WebSocket connections closed (1013) because their send queue overflowed.",
		}),
		badFrames: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "coedit_bad_frames_total",
			Help: "WebSocket frames refused before being served, by reason: binary, utf8, json (not a JSON object with an action), size (over the frame size limit).",
		}, []string{"reason"}),
		rateWaits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "coedit_rate_wait_seconds_total",
			Help: "Time requests over a rate limit were held back before being served, by limit: messages and ops (a WebSocket connection's), http_ops (HTTP submits from one address).",
		}, []string{"limit"}),
		abuseClosed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "coedit_abuse_closed_total",
			Help: "WebSocket connections closed (1008) for sending too many malformed frames.",
		}),
		proxied: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "coedit_ws_passed_total",
			Help: "WebSocket upgrades passed to the cluster node that serves their document.",
		}),
		proxyFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "coedit_ws_pass_failures_total",
			Help: "WebSocket upgrades that could not be passed to their document's node (unreachable, no answer in time, full or closing) and were served here.",
		}),
	}
	for _, reason := range []string{"binary", "utf8", "json", "size"} {
		m.badFrames.WithLabelValues(reason)
	}
	for _, limit := range []string{"messages", "ops", "http_ops"} {
		m.rateWaits.WithLabelValues(limit)
	}
	// Every code starts at zero, so a dashboard sees the series before
	// the first error.
	for code := range httpStatus {
		m.errors.WithLabelValues(code)
	}
	cs := []prometheus.Collector{
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		newHubCollector(s.hub, s.Connections),
		m.errors, m.submitAck, m.slowConsumers, m.badFrames, m.rateWaits, m.abuseClosed, m.proxied, m.proxyFailures,
	}
	for _, c := range append(cs, extra...) {
		if err := m.reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// handler serves the registry in the Prometheus text format.
func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// countError counts one error reply with code.
func (m *metrics) countError(code string) {
	m.errors.WithLabelValues(code).Inc()
}

// submitAcked is called when a submit handed to the hub at start is
// acknowledged.
func (m *metrics) submitAcked(start time.Time) {
	m.submitAck.Observe(time.Since(start).Seconds())
}

// hubFigures are a Hub's counters and the open WebSocket count at one
// moment.
type hubFigures struct {
	collab.Stats
	conns int
}

// newHubCollector returns the collector of hub's Stats, with conns
// giving the number of open WebSocket connections, read when /metrics is
// scraped.
func newHubCollector(hub *collab.Hub, conns func() int) *statmetrics.Collector[hubFigures] {
	c := statmetrics.New(func() hubFigures { return hubFigures{hub.Stats(), conns()} })
	c.Gauge("coedit_connections", "Open WebSocket connections.",
		func(f hubFigures) float64 { return float64(f.conns) })
	c.Gauge("coedit_sessions", "Running document sessions.",
		func(s hubFigures) float64 { return float64(s.Sessions) })
	c.Counter("coedit_sessions_started_total", "Document sessions started.",
		func(s hubFigures) uint64 { return s.SessionsStarted })
	c.Counter("coedit_sessions_stopped_total", "Document sessions stopped (idle or at shutdown).",
		func(s hubFigures) uint64 { return s.SessionsStopped })
	c.Counter("coedit_submits_total", "Submits the sessions processed, whatever the outcome.",
		func(s hubFigures) uint64 { return s.Submits })
	c.Counter("coedit_submit_errors_total", "Submits the sessions refused (invalid, too large, conflicting, or failed to commit).",
		func(s hubFigures) uint64 { return s.SubmitErrors })
	c.Counter("coedit_ops_committed_total", "Ops committed by this node's submits.",
		func(s hubFigures) uint64 { return s.OpsCommitted })
	c.Counter("coedit_commit_batches_total", "Group commits to the store; ops committed divided by this is the average batch size.",
		func(s hubFigures) uint64 { return s.CommitBatches })
	c.Counter("coedit_commit_errors_total", "Group commits to the store that failed.",
		func(s hubFigures) uint64 { return s.CommitErrors })
	c.Counter("coedit_duplicates_acked_total", "Resent submits acknowledged at their original version (exactly-once).",
		func(s hubFigures) uint64 { return s.Duplicates })
	c.Counter("coedit_remote_records_total", "Ops received from other nodes through the relay and applied.",
		func(s hubFigures) uint64 { return s.RemoteRecords })
	c.Counter("coedit_broadcasts_total", "Ops sent to subscribers, one per receiving connection.",
		func(s hubFigures) uint64 { return s.Broadcasts })
	c.Counter("coedit_presence_messages_total", "Presence updates relayed.",
		func(s hubFigures) uint64 { return s.Presence })
	c.Counter("coedit_catchups_total", "Requests older than their session's in-memory window, read from the store and sent by the catch-up readers.",
		func(s hubFigures) uint64 { return s.CatchUps })
	c.Counter("coedit_busy_refusals_total", "Requests refused because their document's session had too many waiting.",
		func(s hubFigures) uint64 { return s.Busy })
	return c
}
