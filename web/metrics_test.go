package web

import (
	"net"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/coedit/coedit/collab"
)

// scrape GETs /metrics over HTTP, parses it as the Prometheus text format
// and returns every sample by name and labels ("coedit_errors_total{code="X"}");
// a histogram gives name_count and name_sum.
func scrape(t *testing.T, ts *testServer) map[string]float64 {
	t.Helper()
	resp, err := http.Get(ts.http.URL + "/metrics")
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
		t.Fatalf("GET /metrics = %d %q, want 200 text/plain", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("GET /metrics: not the Prometheus text format: %v", err)
	}
	out := make(map[string]float64)
	for name, f := range fams {
		for _, m := range f.GetMetric() {
			key := name + labelString(m)
			switch f.GetType() {
			case dto.MetricType_COUNTER:
				out[key] = m.GetCounter().GetValue()
			case dto.MetricType_GAUGE:
				out[key] = m.GetGauge().GetValue()
			case dto.MetricType_HISTOGRAM:
				out[name+"_count"+labelString(m)] = float64(m.GetHistogram().GetSampleCount())
				out[name+"_sum"+labelString(m)] = m.GetHistogram().GetSampleSum()
			default:
				out[key] = m.GetUntyped().GetValue()
			}
		}
	}
	return out
}

func labelString(m *dto.Metric) string {
	if len(m.GetLabel()) == 0 {
		return ""
	}
	var parts []string
	for _, l := range m.GetLabel() {
		parts = append(parts, l.GetName()+`="`+l.GetValue()+`"`)
	}
	sort.Strings(parts)
	return "{" + strings.Join(parts, ",") + "}"
}

// TestMetrics drives real WebSocket and HTTP API traffic through a server
// and checks that /metrics reports each figure it caused.
func TestMetrics(t *testing.T) {
	ts := startServer(t, Options{Logger: quiet}, collab.Options{})
	before := scrape(t, ts)
	for name, want := range map[string]float64{
		"coedit_connections": 0, "coedit_sessions": 0, "coedit_ops_committed_total": 0, "coedit_submit_ack_seconds_count": 0,
		`coedit_errors_total{code="ERR_OT_OP_NOT_APPLIED"}`: 0, "coedit_slow_consumers_closed_total": 0,
	} {
		if got, ok := before[name]; !ok || got != want {
			t.Errorf("before any traffic, %s = %v (present %v), want %v", name, got, ok, want)
		}
	}

	a, b := ts.connect(t), ts.connect(t)
	a.create("notes", "m", "hello", 1)
	for _, c := range []*tclient{a, b} {
		c.sendRaw(`{"a":"s","c":"notes","d":"m","v":1}`)
		c.expect(`{"a":"s","c":"notes","d":"m"}`)
	}
	// Three edits, one at a time: three commits, three broadcasts to b.
	for i := 1; i <= 3; i++ {
		a.sendf(`{"a":"op","c":"notes","d":"m","v":%d,"seq":%d,"op":["!"]}`, i, i+1)
		a.expectf(`{"a":"op","c":"notes","d":"m","v":%d,"src":%q,"seq":%d}`, i, a.src, i+1)
		b.expectf(`{"a":"op","c":"notes","d":"m","v":%d,"src":%q,"seq":%d,"op":["!"]}`, i, a.src, i+1)
	}
	// The last edit resent: acknowledged at its version, not committed.
	a.sendf(`{"a":"op","c":"notes","d":"m","v":3,"seq":4,"op":["!"]}`)
	for {
		m := a.recv()
		if _, hasOp := m["op"]; m["a"] == "op" && m["seq"] == float64(4) && !hasOp {
			if m["v"] != float64(3) {
				t.Fatalf("resend acked at %s, want v 3", mustJSON(m))
			}
			break
		}
	}
	// Errors: an op past the end, an unknown action, a bad HTTP API body.
	bad := `{"a":"op","c":"notes","d":"m","v":4,"seq":5,"op":[100,"x"]}`
	a.sendRaw(bad)
	a.expectError(bad, CodeOpNotApplied)
	a.sendRaw(`{"a":"zz"}`)
	a.expectError(`{"a":"zz"}`, CodeUnknownAction)
	if status, body := ts.httpDo(t, "POST", "/api/docs/notes/m/ops", "application/json", "nope", nil); status != http.StatusBadRequest {
		t.Fatalf("POST a body that is not JSON = %d %s, want 400", status, body)
	}
	// Document presence, relayed from a to b.
	for _, c := range []*tclient{a, b} {
		c.sendRaw(`{"a":"ps","ch":"notes.m","seq":1}`)
		c.expect(`{"a":"ps","ch":"notes.m","seq":1}`)
	}
	a.expect(`{"a":"pr","ch":"notes.m"}`)
	a.sendf(`{"a":"p","ch":"notes.m","id":"caret","p":{"index":1,"length":0},"pv":1,"c":"notes","d":"m","v":4,"t":%q}`, textURI)
	want := `{"a":"p","ch":"notes.m","src":"` + a.src + `","id":"caret","p":{"index":1,"length":0},"pv":1,"c":"notes","d":"m","v":4,"t":"` + textURI + `"}`
	a.expect(want)
	b.expect(want)

	after := scrape(t, ts)
	for _, tc := range []struct {
		name string
		want float64
	}{
		{"coedit_connections", 2},
		{"coedit_sessions", 1},
		{"coedit_sessions_started_total", 1},
		{"coedit_submits_total", 6}, // create, 3 edits, the resend, the bad op
		{"coedit_submit_errors_total", 1},
		{"coedit_ops_committed_total", 4},
		{"coedit_commit_batches_total", 4}, // one submit in flight at a time
		{"coedit_commit_errors_total", 0},
		{"coedit_duplicates_acked_total", 1},
		{"coedit_broadcasts_total", 3},
		{"coedit_submit_ack_seconds_count", 5}, // every ack, the resend's too
		{`coedit_errors_total{code="ERR_OT_OP_NOT_APPLIED"}`, 1},
		{`coedit_errors_total{code="ERR_UNKNOWN_ACTION"}`, 1},
		{`coedit_errors_total{code="ERR_MESSAGE_BADLY_FORMED"}`, 1},
		{`coedit_errors_total{code="ERR_RATE_LIMITED"}`, 0},
		{"coedit_slow_consumers_closed_total", 0},
	} {
		if got, ok := after[tc.name]; !ok || got != tc.want {
			t.Errorf("after the traffic, %s = %v (present %v), want %v", tc.name, got, ok, tc.want)
		}
	}
	if got := after["coedit_presence_messages_total"]; got < 1 {
		t.Errorf("coedit_presence_messages_total = %v after a relayed presence, want at least 1", got)
	}
	if got := after["coedit_submit_ack_seconds_sum"]; !(got > 0) {
		t.Errorf("coedit_submit_ack_seconds_sum = %v after 5 acks, want > 0", got)
	}
	for _, name := range []string{"go_goroutines", "go_memstats_heap_alloc_bytes", "process_cpu_seconds_total", "process_open_fds"} {
		if got, ok := after[name]; !ok || !(got > 0) {
			t.Errorf("%s = %v (present %v), want a positive figure", name, got, ok)
		}
	}

	// The connection gauge follows a close.
	b.ws.Close()
	deadline := time.Now().Add(10 * time.Second)
	for scrape(t, ts)["coedit_connections"] != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("coedit_connections = %v 10s after a client closed, want 1", scrape(t, ts)["coedit_connections"])
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestMetricsSlowConsumer: a subscriber that never reads is closed as a
// slow consumer, and /metrics counts it.
func TestMetricsSlowConsumer(t *testing.T) {
	// The client never reads, so the batch its writer is blocked on when
	// the queue overflows ends only at WriteTimeout; a short one keeps the
	// producer below the document size limit until then.
	ts := startServerListener(t, Options{Logger: quiet, SendQueueMessages: 16, WriteTimeout: time.Second, OpsPerSecond: 1e6, MessagesPerSecond: 1e6},
		collab.Options{}, func(ln net.Listener) net.Listener { return smallSendBuffers{ln} })
	producer := ts.connect(t)
	producer.create("docs", "slow", "", 1)
	slow := ts.connect(t)
	slow.sendRaw(`{"a":"s","c":"docs","d":"slow","v":1}`)
	slow.expect(`{"a":"s","c":"docs","d":"slow"}`)
	// 1 KiB ops: 16,000 of them stay below the size limit (16 Mi code
	// points) and take the producer longer than WriteTimeout (4 KiB ops
	// reached the limit first in a plain build on a fast machine).
	chunk := strings.Repeat("x", 1024)
	n := 0
	for ; n < 16000 && ts.srv.Connections() == 2; n++ {
		producer.sendf(`{"a":"op","c":"docs","d":"slow","v":%d,"seq":%d,"op":[%q]}`, n+1, n+2, chunk)
		producer.expectf(`{"a":"op","c":"docs","d":"slow","v":%d,"src":%q,"seq":%d}`, n+1, producer.src, n+2)
	}
	if ts.srv.Connections() != 1 {
		t.Fatalf("after %d ops of 1 KiB the client that never reads is still connected", n)
	}
	if got := scrape(t, ts)["coedit_slow_consumers_closed_total"]; got != 1 {
		t.Errorf("coedit_slow_consumers_closed_total = %v, want 1", got)
	}
}

// TestMetricsCollectors: Options.Collectors land on /metrics, and one whose
// name clashes with the server's own makes New fail.
func TestMetricsCollectors(t *testing.T) {
	extra := prometheus.NewCounter(prometheus.CounterOpts{Name: "coedit_test_extra_total", Help: "A test counter."})
	extra.Add(7)
	ts := startServer(t, Options{Logger: quiet, Collectors: []prometheus.Collector{extra}}, collab.Options{})
	if got := scrape(t, ts)["coedit_test_extra_total"]; got != 7 {
		t.Errorf("coedit_test_extra_total = %v, want 7", got)
	}
	clash := prometheus.NewGauge(prometheus.GaugeOpts{Name: "coedit_sessions", Help: "Clashes."})
	if _, err := New(Options{Hub: ts.hub, Collectors: []prometheus.Collector{clash}}); err == nil {
		t.Errorf("New with a collector named coedit_sessions = nil error, want a clash")
	}
}
