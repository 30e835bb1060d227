package redisrelay_test

import (
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coedit/coedit/collab"
	"github.com/coedit/coedit/collab/redisrelay"
	"github.com/coedit/coedit/internal/redistest"
)

// fanout is a benchmark setup: node A takes submits for docs documents,
// node B has a subscriber on each, which notes when every op arrives, and
// so has node A (the same-node fan-out, for comparison).
type fanout struct {
	a, b  *hubNode
	keys  []collab.Key
	sent  sync.Map // "doc/seq" -> time.Time, for B's subscribers
	sentA sync.Map // the same, for A's
	mu    sync.Mutex
	lat   []time.Duration // submit on A to delivery on B
	latA  []time.Duration // submit on A to delivery on A
	acks  []time.Duration // submit on A to its ack on A
	got   atomic.Int64
	seqs  []atomic.Uint64
	acked atomic.Int64 // submits answered
	errs  atomic.Int64 // of which failed
}

// fanoutConn is B's subscriber, or A's with local set.
type fanoutConn struct {
	f     *fanout
	local bool
}

func (c fanoutConn) Src() string { return "reader" }
func (c fanoutConn) SendOp(key collab.Key, rec collab.Record) {
	sent, lat := &c.f.sent, &c.f.lat
	if c.local {
		sent, lat = &c.f.sentA, &c.f.latA
	}
	if t, ok := sent.LoadAndDelete(fmt.Sprintf("%s/%d", rec.Src, rec.Seq)); ok {
		d := time.Since(t.(time.Time))
		c.f.mu.Lock()
		*lat = append(*lat, d)
		c.f.mu.Unlock()
		if !c.local {
			c.f.got.Add(1)
		}
	}
}
func (c fanoutConn) SendPresence(collab.PresenceUpdate) {}
func (c fanoutConn) SendPresenceRequest(string)         {}
func (c fanoutConn) Closed() bool                       { return false }
func (c fanoutConn) Drop(collab.Key, error)             {}

// durability is how much the cluster of a benchmark syncs to disk: the
// nodes' bbolt (--sync always or none) and Redis (AOF with appendfsync
// always, or no persistence).
type durability struct {
	name       string
	fsync, aof bool
}

// durabilities are the variants each cluster benchmark runs, so that the
// cost of each fsync is visible: `-bench 'ClusterFanout/bbolt=none/redis=none'`
// picks one.
var durabilities = []durability{
	{"bbolt=none/redis=none", false, false},
	{"bbolt=always/redis=none", true, false},
	{"bbolt=none/redis=aof", false, true},
	{"bbolt=always/redis=aof", true, true},
}

func newFanout(b *testing.B, docs int, d durability) *fanout {
	return newFanoutTurns(b, docs, d, 0)
}

// newFanoutTurns is newFanout with the nodes' ClusterOptions.TurnTTL.
func newFanoutTurns(b *testing.B, docs int, d durability, turnTTL time.Duration) *fanout {
	srv := redistest.StartServer(b, redistest.ServerOptions{AOF: d.aof})
	p := prefix(b)
	f := &fanout{
		a:    startNode(b, "a", srv.Addr(), p, nodeConfig{fsync: d.fsync, turnTTL: turnTTL}),
		b:    startNode(b, "b", srv.Addr(), p, nodeConfig{fsync: d.fsync, turnTTL: turnTTL}),
		seqs: make([]atomic.Uint64, 2*docs),
	}
	for i := range docs {
		k := docKey(i)
		f.keys = append(f.keys, k)
		submit(b, f.a, k, createSub("setup", 1, ""))
		subscribe(b, f.b, k, fanoutConn{f: f})
		subscribe(b, f.a, k, fanoutConn{f: f, local: true})
	}
	return f
}

// submit sends one op to document i on node A without waiting.
func (f *fanout) submit(i int) { f.submitOn(f.a, i) }

// submitOn sends one op to document i on node n without waiting. The
// fan-out latencies are measured on B and A whichever node takes it.
func (f *fanout) submitOn(n *hubNode, i int) {
	seq := f.seqs[i].Add(1)
	src := fmt.Sprintf("w%d", i)
	if n != f.a {
		seq = f.seqs[len(f.keys)+i].Add(1)
		src = fmt.Sprintf("%s-w%d", n.name, i)
	}
	start := time.Now()
	f.sent.Store(fmt.Sprintf("%s/%d", src, seq), start)
	f.sentA.Store(fmt.Sprintf("%s/%d", src, seq), start)
	n.hub.Submit(f.keys[i], nil, collab.Submission{Src: src, Seq: seq, Kind: collab.OpEdit, Op: insertAt(0, "x")},
		func(_ collab.SubmitResult, err error) {
			if err != nil {
				f.errs.Add(1)
			}
			d := time.Since(start)
			f.mu.Lock()
			f.acks = append(f.acks, d)
			f.mu.Unlock()
			f.acked.Add(1)
		})
}

// wait waits until B received n ops (or a generous limit passed).
func (f *fanout) wait(b *testing.B, n int64) {
	deadline := time.Now().Add(2 * time.Minute)
	for f.got.Load() < n {
		if e := f.errs.Load(); e > 0 {
			b.Fatalf("%d submits failed", e)
		}
		if time.Now().After(deadline) {
			b.Fatalf("B received %d of %d ops", f.got.Load(), n)
		}
		time.Sleep(time.Millisecond)
	}
}

// report reports the delivery latencies on B (p50-ms, p99-ms, max-ms),
// on A (local-p50-ms, local-p99-ms) and A's ack latencies (ack-p50-ms,
// ack-p99-ms).
func (f *fanout) report(b *testing.B) {
	f.mu.Lock()
	defer f.mu.Unlock()
	q := func(l []time.Duration, p float64) float64 {
		if len(l) == 0 {
			return 0
		}
		return float64(l[int(p*float64(len(l)-1))]) / 1e6
	}
	slices.Sort(f.lat)
	slices.Sort(f.acks)
	slices.Sort(f.latA)
	b.ReportMetric(q(f.lat, 0.50), "p50-ms")
	b.ReportMetric(q(f.lat, 0.99), "p99-ms")
	b.ReportMetric(q(f.lat, 1), "max-ms")
	b.ReportMetric(q(f.acks, 0.50), "ack-p50-ms")
	b.ReportMetric(q(f.acks, 0.99), "ack-p99-ms")
	b.ReportMetric(q(f.latA, 0.50), "local-p50-ms")
	b.ReportMetric(q(f.latA, 0.99), "local-p99-ms")
}

// BenchmarkClusterFanout measures cross-node fan-out at a steady 2,000
// ops/s over 100 documents: ops submitted on node A, each delivered to a
// subscriber on node B (A commits to Redis, Redis publishes, B sends it
// to its subscribers, then writes it to its store) and to one on A (A
// commits to Redis, then to its store, then sends). The metrics are the
// submit-to-delivery latencies on B and on A, and A's ack latency. Run it with a -benchtime
// of a few thousand ops, e.g. -benchtime 10000x (5 s). It runs once per
// durability: bbolt's fsync on each node, Redis's AOF, both, neither.
func BenchmarkClusterFanout(b *testing.B) {
	for _, d := range durabilities {
		b.Run(d.name, func(b *testing.B) { benchFanout(b, d) })
	}
}

func benchFanout(b *testing.B, d durability) {
	const docs, rate = 100, 2000
	f := newFanout(b, docs, d)
	interval := time.Second / rate
	before := f.a.relay.Stats()
	b.ResetTimer()
	start := time.Now()
	for i := range b.N {
		if d := time.Until(start.Add(time.Duration(i) * interval)); d > 0 {
			time.Sleep(d)
		}
		f.submit(i % docs)
	}
	f.wait(b, int64(b.N))
	b.StopTimer()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "ops/s")
	f.report(b)
	f.reportRedis(b, before)
}

// reportRedis reports node A's round trips to Redis since before: their
// mean latency (redis-ms) and how many records each commit carried
// (recs/commit: more than 1 means submits queued behind a commit and were
// grouped).
func (f *fanout) reportRedis(b *testing.B, before redisrelay.Stats) {
	st := f.a.relay.Stats()
	if calls := st.Calls - before.Calls; calls > 0 {
		b.ReportMetric(float64(st.CallTime-before.CallTime)/float64(calls)/1e6, "redis-ms")
	}
	if commits := st.Commits - before.Commits; commits > 0 {
		b.ReportMetric(float64(st.Records-before.Records)/float64(commits), "recs/commit")
	}
}

// BenchmarkClusterMaxRate measures the highest rate two nodes hold: node
// A takes submits for 100 documents with up to 4 in flight on each, as
// fast as it acknowledges them, and node B delivers every one. The
// ops/s metric is what B delivered per second. It runs once per
// durability, as BenchmarkClusterFanout.
func BenchmarkClusterMaxRate(b *testing.B) {
	for _, d := range durabilities {
		b.Run(d.name, func(b *testing.B) { benchMaxRate(b, d) })
	}
}

func benchMaxRate(b *testing.B, d durability) {
	const docs, inflight = 100, 4
	f := newFanout(b, docs, d)
	before := f.a.relay.Stats()
	b.ResetTimer()
	start := time.Now()
	for i := range b.N {
		for int64(i)-f.acked.Load() >= docs*inflight {
			time.Sleep(50 * time.Microsecond)
		}
		f.submit(i % docs)
	}
	f.wait(b, int64(b.N))
	b.StopTimer()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "ops/s")
	f.report(b)
	f.reportRedis(b, before)
}

// BenchmarkClusterTwoWriters is BenchmarkClusterMaxRate with each
// document written on both nodes (scenario 7's closed loop: a document's
// clients spread over the nodes): submits alternate between A and B,
// with up to 4 in flight per document. ops/s is what B delivered per
// second; conflicts/op and waits/op say how often a commit lost a race
// or waited for the other node's turn (turn.go).
// turns=off runs it without turns, as before them.
func BenchmarkClusterTwoWriters(b *testing.B) {
	for _, d := range durabilities {
		b.Run(d.name+"/turns=on", func(b *testing.B) { benchTwoWriters(b, d, 0) })
		b.Run(d.name+"/turns=off", func(b *testing.B) { benchTwoWriters(b, d, -1) })
	}
}

func benchTwoWriters(b *testing.B, d durability, turnTTL time.Duration) {
	const docs, inflight = 100, 4
	f := newFanoutTurns(b, docs, d, turnTTL)
	beforeA, beforeB := f.a.relay.Stats(), f.b.relay.Stats()
	cbA, cbB := f.a.cluster.Stats(), f.b.cluster.Stats()
	b.ResetTimer()
	start := time.Now()
	for i := range b.N {
		for int64(i)-f.acked.Load() >= docs*inflight {
			time.Sleep(50 * time.Microsecond)
		}
		n := f.a
		if (i/docs)%2 == 1 {
			n = f.b
		}
		f.submitOn(n, i%docs)
	}
	f.wait(b, int64(b.N))
	for f.acked.Load() < int64(b.N) {
		time.Sleep(time.Millisecond)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "ops/s")
	f.report(b)
	sa, sb := f.a.relay.Stats(), f.b.relay.Stats()
	conflicts := sa.Conflicts - beforeA.Conflicts + sb.Conflicts - beforeB.Conflicts
	b.ReportMetric(float64(conflicts)/float64(b.N), "conflicts/op")
	ca, cb := f.a.cluster.Stats(), f.b.cluster.Stats()
	b.ReportMetric(float64(ca.TurnWaits-cbA.TurnWaits+cb.TurnWaits-cbB.TurnWaits)/float64(b.N), "waits/op")
	b.ReportMetric(float64(ca.TurnDoorbells-cbA.TurnDoorbells+cb.TurnDoorbells-cbB.TurnDoorbells)/float64(b.N), "turn-doorbells/op")
}
