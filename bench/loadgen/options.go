package loadgen

import (
	"errors"
	"fmt"
	"net/url"
	"time"
)

// Options configure a Run. The zero value of each field means its
// documented default, except where said.
type Options struct {
	// URLs are the servers' WebSocket endpoints (ws://host:port/ws). The
	// clients of a document are spread over them round-robin, so with two
	// nodes of a cluster every document has clients on both (unless
	// Affinity). Required.
	URLs []string
	// Affinity puts all of a document's clients on one URL instead,
	// document i's on URLs[i mod len(URLs)], as a load balancer that
	// routes by document would: a cluster then has one node taking each
	// document's submits, and no fan-out crosses nodes.
	Affinity bool
	// Collection is the ShareDB collection of the documents; default
	// "bench".
	Collection string
	// Prefix starts every document id; default a random one per run, so
	// that runs against the same server never share documents.
	Prefix string
	// Docs is the number of documents edited; default 1.
	Docs int
	// Clients is the number of editing clients per document, each on its
	// own connection. 0 means none: the run then only opens Idle
	// connections (and creates the documents they subscribe to).
	Clients int
	// Rate is the total offered load in ops/s, spread evenly over the
	// clients (open loop: each client submits on a fixed schedule, and an
	// op that falls due while the client's previous one is unacknowledged
	// waits for it, its latency counted from when it fell due). 0 means
	// closed loop: each client submits its next op as soon as the last is
	// acknowledged.
	Rate float64
	// Idle is the number of extra connections that subscribe to a
	// document (round-robin over Docs) and never edit.
	Idle int
	// Warmup runs the load before measuring; default 2s. Negative means
	// none.
	Warmup time.Duration
	// Duration is how long the load is measured; default 10s.
	Duration time.Duration
	// Protocol is what the servers speak: ProtocolShareDB (the default)
	// or ProtocolHocuspocus, Hocuspocus's Yjs protocol (yjs.go), whose
	// clients type at cursors of their own and keep no text: there is no
	// convergence check.
	Protocol string
	// Relay says the servers are a bare relay (bench/relay), which orders
	// ops but does not transform them: clients then do not keep the text,
	// and there is no convergence check.
	Relay bool
	// PID, if not 0, is the server process whose CPU time and resident
	// memory are sampled from /proc.
	PID int
	// PIDs are further server processes (the other nodes of a cluster,
	// Redis) whose CPU time and resident memory are added to PID's, so
	// that CPU per op covers the whole cluster. They need PID.
	PIDs []int
	// Seed seeds the random edits; 0 means a random seed.
	Seed uint64
	// DialParallel bounds the connections being opened at once; default 64.
	DialParallel int
	// AckTimeout is how long an op may wait for its ack before the run
	// fails; default 30s.
	AckTimeout time.Duration
	// Progress, if set, is called once a second while the load runs, from
	// one goroutine.
	Progress func(Progress)
}

// Defaults for Options' zero fields.
const (
	DefaultCollection   = "bench"
	DefaultWarmup       = 2 * time.Second
	DefaultDuration     = 10 * time.Second
	DefaultDialParallel = 64
	DefaultAckTimeout   = 30 * time.Second
)

// ErrOptions wraps every error about invalid Options.
var ErrOptions = errors.New("loadgen: invalid options")

// withDefaults checks o and fills in its defaults.
func (o Options) withDefaults() (Options, error) {
	if len(o.URLs) == 0 {
		return o, fmt.Errorf("%w: no server URL", ErrOptions)
	}
	for _, u := range o.URLs {
		p, err := url.Parse(u)
		if err != nil || (p.Scheme != "ws" && p.Scheme != "wss") || p.Host == "" {
			return o, fmt.Errorf("%w: %q is not a ws:// or wss:// URL", ErrOptions, u)
		}
	}
	if len(o.PIDs) > 0 && o.PID == 0 {
		return o, fmt.Errorf("%w: further server PIDs without a first one", ErrOptions)
	}
	if o.Docs < 0 || o.Clients < 0 || o.Idle < 0 || o.Rate < 0 || o.Duration < 0 || o.DialParallel < 0 || o.AckTimeout < 0 {
		return o, fmt.Errorf("%w: docs, clients, idle, rate, duration, dial parallelism and ack timeout must not be negative", ErrOptions)
	}
	if o.Clients == 0 && o.Idle == 0 {
		return o, fmt.Errorf("%w: neither editing clients nor idle connections", ErrOptions)
	}
	switch o.Protocol {
	case "":
		o.Protocol = ProtocolShareDB
	case ProtocolShareDB:
	case ProtocolHocuspocus:
		if o.Relay {
			return o, fmt.Errorf("%w: the bare relay speaks ShareDB's protocol, not Hocuspocus's", ErrOptions)
		}
	default:
		return o, fmt.Errorf("%w: protocol %q is neither %s nor %s", ErrOptions, o.Protocol, ProtocolShareDB, ProtocolHocuspocus)
	}
	if o.Collection == "" {
		o.Collection = DefaultCollection
	}
	if o.Docs == 0 {
		o.Docs = 1
	}
	if o.Warmup == 0 {
		o.Warmup = DefaultWarmup
	}
	o.Warmup = max(o.Warmup, 0)
	if o.Duration == 0 {
		o.Duration = DefaultDuration
	}
	if o.DialParallel == 0 {
		o.DialParallel = DefaultDialParallel
	}
	if o.AckTimeout == 0 {
		o.AckTimeout = DefaultAckTimeout
	}
	return o, nil
}

// Result is what a Run measured. Rates and CPU figures cover the
// measurement window only (after the warm-up).
type Result struct {
	URLs       []string `json:"urls"`
	Protocol   string   `json:"protocol"`
	Relay      bool     `json:"relay,omitempty"`
	Affinity   bool     `json:"affinity,omitempty"`
	Mode       string   `json:"mode"` // "closed" or "open"
	Docs       int      `json:"docs"`
	Clients    int      `json:"clients_per_doc"`
	Idle       int      `json:"idle"`
	OfferedOps float64  `json:"offered_ops_per_s,omitempty"` // open loop only
	WarmupS    float64  `json:"warmup_s"`
	DurationS  float64  `json:"duration_s"`

	Acked     uint64  `json:"acked"`       // ops acknowledged in the window
	OpsPerSec float64 `json:"ops_per_s"`   // Acked / DurationS
	Ack       Summary `json:"ack_latency"` // submit (or due time) to ack
	// Fanout is from an op's submit (or due time) to its arrival at each
	// other client of its document.
	Fanout Summary `json:"fanout_latency"`
	// With several URLs (the nodes of a cluster) and without Affinity,
	// FanoutCross is Fanout for the receivers connected to another URL
	// than the op's sender (cross-node fan-out), FanoutLocal for those on
	// the sender's URL.
	FanoutCross *Summary `json:"fanout_cross_node_latency,omitempty"`
	FanoutLocal *Summary `json:"fanout_same_node_latency,omitempty"`
	// FanoutDrainMS is how long, after the last op was acknowledged, the
	// last op took to reach every other client of its document: a server
	// (or a cluster's node) whose fan-out fell behind its acks shows a
	// backlog here. FanoutPending counts the deliveries still missing
	// after AckTimeout (0 when all arrived).
	FanoutDrainMS float64 `json:"fanout_drain_ms"`
	FanoutPending int     `json:"fanout_pending,omitempty"`
	// Timeline has one entry per second of the measurement window, to
	// show whether latency grows while the load runs (a backlog).
	Timeline []Second `json:"timeline,omitempty"`
	// Late counts open-loop ops that fell due while their client's
	// previous op was still unacknowledged; they were sent late, and
	// their latency includes the wait. Unsent counts those still waiting
	// at the end. Both 0 means the server kept up with the offered load.
	Late   uint64 `json:"late"`
	Unsent uint64 `json:"unsent"`
	// Errors counts error replies by code, and the generator's own
	// findings: GAP (a broadcast skipped a version), ACK_VERSION (an ack
	// at an unexpected version), ACK_TIMEOUT.
	Errors map[string]uint64 `json:"errors,omitempty"`
	// Converged is nil when not checked (Relay, Hocuspocus, or ops never
	// acked);
	// otherwise whether every client's text of each document was equal
	// to the others' and to a fresh fetch from every URL.
	Converged     *bool  `json:"converged,omitempty"`
	ConvergeIssue string `json:"converge_issue,omitempty"`

	Server *ProcFigures `json:"server,omitempty"` // with Options.PID
	// ServerShares splits Server's CPU by command name when there are
	// several server processes (Options.PIDs): a cluster's nodes and
	// Redis, a server and its database.
	ServerShares []ProcShare `json:"server_shares,omitempty"`
	Bench        ProcFigures `json:"bench"` // this process
	// IdleBytesPerConn is the server's resident memory growth while the
	// idle connections opened and subscribed, divided by their number.
	IdleBytesPerConn float64 `json:"idle_bytes_per_conn,omitempty"`
	// StoreBatchesPerOp is coedit's store write batches in the window
	// (coedit_store_write_batches_total on each URL's /metrics, added up)
	// per acked op: with --sync always, the fsyncs per op. Nil for a
	// server that does not report it. In a cluster each node also
	// writes the records the others committed.
	StoreBatchesPerOp *float64 `json:"store_batches_per_op,omitempty"`
}

// ProcFigures are one process's CPU and memory over the window.
type ProcFigures struct {
	CPUSeconds float64 `json:"cpu_s"`
	CPUPercent float64 `json:"cpu_percent"`         // of one core
	CPUPerOpUS float64 `json:"cpu_per_op_us"`       // microseconds per acked op
	RSSBytes   int64   `json:"rss_bytes,omitempty"` // at the end of the window
	// CtxSwitchesPerOp is the context switches of the process's threads
	// (voluntary and not) per acked op: each is a thread that slept or
	// was put aside, which a server that hands work between threads pays
	// for on every op.
	CtxSwitchesPerOp float64 `json:"ctx_switches_per_op,omitempty"`
}

// ProcShare is the CPU of the server processes of one command name.
type ProcShare struct {
	Name       string  `json:"name"`
	Procs      int     `json:"procs"`
	CPUPercent float64 `json:"cpu_percent"` // of one core
	CPUPerOpUS float64 `json:"cpu_per_op_us"`
}

// Progress is one second of a run, for a progress line.
type Progress struct {
	Elapsed   time.Duration
	Measuring bool // past the warm-up
	Acked     uint64
	AckP50    time.Duration
	AckP99    time.Duration
	FanoutP99 time.Duration
	// FanoutCrossP99 is FanoutP99 for receivers on another URL than the
	// sender; -1 with one URL.
	FanoutCrossP99 time.Duration
	Errors         uint64  // so far, all codes
	Late           uint64  // so far
	ServerCPU      float64 // percent of a core in the last second; -1 without a PID
	BenchCPU       float64
	ServerRSS      int64
}

// String formats p as one line.
func (p Progress) String() string {
	phase := "warm-up"
	if p.Measuring {
		phase = "measure"
	}
	s := fmt.Sprintf("%5.1fs %s %6d ops/s  ack p50 %s p99 %s  fan-out p99 %s  errors %d  late %d  bench cpu %.0f%%",
		p.Elapsed.Seconds(), phase, p.Acked, ms(p.AckP50), ms(p.AckP99), ms(p.FanoutP99), p.Errors, p.Late, p.BenchCPU)
	if p.FanoutCrossP99 >= 0 {
		s += fmt.Sprintf("  other node p99 %s", ms(p.FanoutCrossP99))
	}
	if p.ServerCPU >= 0 {
		s += fmt.Sprintf("  server cpu %.0f%% rss %.1f MiB", p.ServerCPU, float64(p.ServerRSS)/(1<<20))
	}
	return s
}

// Second is one second of a run's measurement window in Result.Timeline.
type Second struct {
	T                float64 `json:"t_s"` // since the run started
	Acked            uint64  `json:"acked"`
	AckP99MS         float64 `json:"ack_p99_ms"`
	FanoutP99MS      float64 `json:"fanout_p99_ms"`
	FanoutCrossP99MS float64 `json:"fanout_cross_node_p99_ms,omitempty"`
}

func (p Progress) second() Second {
	s := Second{T: p.Elapsed.Seconds(), Acked: p.Acked, AckP99MS: msf(p.AckP99), FanoutP99MS: msf(p.FanoutP99)}
	if p.FanoutCrossP99 >= 0 {
		s.FanoutCrossP99MS = msf(p.FanoutCrossP99)
	}
	return s
}

func msf(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func ms(d time.Duration) string { return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond)) }

// urlOf returns the index in URLs of the connection of client c of
// document d (each counted from 0).
func (o *Options) urlOf(d, c int) int {
	if o.Affinity {
		return d % len(o.URLs)
	}
	return c % len(o.URLs)
}

// crossNode reports whether a document's clients are on more than one
// URL, so that fan-out is counted as cross-node and same-node apart.
func (o *Options) crossNode() bool {
	return len(o.URLs) > 1 && !o.Affinity
}
