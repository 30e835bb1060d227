package collab_test

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/coedit/coedit/collab"
	"github.com/coedit/coedit/ot"
)

var convergeSeed = flag.Uint64("collab.seed", 0, "seed for TestConvergence (0 picks one from the clock)")

// TestConvergence runs many in-process clients that follow ShareDB's
// client algorithm against one document: one op in flight, later edits
// composed into an unsent pending op, remote ops transformed against
// them (the client's ops win ties with ot.Left, remote ops get
// ot.Right), random edits and pauses, and random disconnects after which
// the client resends its in-flight op with the same src and seq and
// re-subscribes at its version. At the end every client's text equals the
// server's, and every acknowledged (src, seq) is in the store exactly
// once.
func TestConvergence(t *testing.T) {
	seed := *convergeSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("seed %d (rerun with -collab.seed=%d)", seed, seed)
	// A small window, batch and snapshot interval, and a short idle
	// timeout, so that transforms read the store, batches split,
	// snapshots are taken and sessions reload during the run.
	h, db := newHub(t, collab.Options{Window: 16, MaxBatch: 8, SnapshotEvery: 10, IdleTimeout: 5 * time.Millisecond})
	mustSubmit(t, h, docX, createSub("", 0, "start"))

	const nClients, nEdits = 10, 300
	clients := make([]*simClient, nClients)
	for i := range clients {
		clients[i] = newSimClient(t, h, fmt.Sprintf("client%d", i), rand.New(rand.NewPCG(seed, uint64(i))))
	}
	var wg sync.WaitGroup
	for _, c := range clients {
		wg.Go(func() { c.edit(nEdits) })
	}
	wg.Wait()
	for _, c := range clients {
		wg.Go(c.settle)
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	snap := mustFetch(t, h, docX)
	for _, c := range clients {
		wg.Go(func() { c.catchUp(snap.Version) })
	}
	wg.Wait()
	for _, c := range clients {
		if c.text != snap.Data || c.version != snap.Version {
			t.Errorf("%s: text %q at %d, server %q at %d", c.src, c.text, c.version, snap.Data, snap.Version)
		}
	}

	recs, err := db.Ops(ctxBG, docX, 0, snap.Version)
	if err != nil {
		t.Fatal(err)
	}
	type srcSeq struct {
		src string
		seq uint64
	}
	stored := map[srcSeq]int{}
	for _, r := range recs {
		if r.Src != "" {
			stored[srcSeq{r.Src, r.Seq}]++
		}
	}
	for k, n := range stored {
		if n != 1 {
			t.Errorf("(%s, %d) is stored %d times, want once", k.src, k.seq, n)
		}
	}
	acked, disconnects, lost := 0, 0, 0
	for _, c := range clients {
		for _, seq := range c.acked {
			if stored[srcSeq{c.src, seq}] != 1 {
				t.Errorf("acknowledged (%s, %d) is stored %d times, want once", c.src, seq, stored[srcSeq{c.src, seq}])
			}
		}
		acked += len(c.acked)
		disconnects += c.disconnects
		lost += c.lost
	}
	if len(recs) != acked+1 {
		t.Errorf("store has %d records, want %d acknowledged ops + the create", len(recs), acked)
	}
	replayed, err := h.SnapshotAt(ctxBG, docX, snap.Version)
	if err != nil || replayed != snap {
		t.Errorf("SnapshotAt(head) = %+v, %v; want the live snapshot", replayed, err)
	}
	st := h.Stats()
	t.Logf("%d ops acknowledged, %d disconnects, %d submits lost, %d duplicates, %d commits, %d sessions, final length %d",
		acked, disconnects, lost, st.Duplicates, st.CommitBatches, st.SessionsStarted, utf8.RuneCountInString(snap.Data))
}

const (
	evOp = iota + 1
	evAck
	evSnap
)

type simEvent struct {
	gen  int
	kind int
	rec  collab.Record
	seq  uint64
	res  collab.SubmitResult
	snap collab.Snapshot
	err  error
}

// simConn is one connection of a simClient; a new one is made on every
// reconnect, and a dead one drops what it receives.
type simConn struct {
	cl   *simClient
	gen  int
	dead atomic.Bool
}

func (c *simConn) Src() string { return c.cl.src }

func (c *simConn) SendOp(_ collab.Key, rec collab.Record) {
	if !c.dead.Load() {
		c.cl.push(simEvent{gen: c.gen, kind: evOp, rec: rec})
	}
}

func (c *simConn) SendPresence(collab.PresenceUpdate) {}
func (c *simConn) SendPresenceRequest(string)         {}
func (c *simConn) Drop(collab.Key, error)             {}
func (c *simConn) Closed() bool                       { return c.dead.Load() }

type simOp struct {
	op   ot.Op
	seq  uint64
	sent bool
}

// simClient is ShareDB's client algorithm for one document. Its fields
// below mu's are touched only by the goroutine running edit, settle or
// catchUp (one at a time).
type simClient struct {
	t   *testing.T
	h   *collab.Hub
	src string
	rng *rand.Rand

	mu    sync.Mutex
	queue []simEvent
	wake  chan struct{}

	conn        *simConn // nil while offline
	gen         int
	seq         uint64 // the connection's seq counter, kept across reconnects
	loaded      bool
	text        string
	version     uint64
	inflight    *simOp
	pending     []*simOp
	acked       []uint64
	disconnects int
	// lossy drops some submits on the way to the server (as a dying
	// connection does); only a reconnect's resend recovers them.
	lossy bool
	lost  int
}

func newSimClient(t *testing.T, h *collab.Hub, src string, rng *rand.Rand) *simClient {
	return &simClient{t: t, h: h, src: src, rng: rng, wake: make(chan struct{}, 1)}
}

func (c *simClient) push(e simEvent) {
	c.mu.Lock()
	c.queue = append(c.queue, e)
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// processAll handles every queued event.
func (c *simClient) processAll() {
	c.mu.Lock()
	q := c.queue
	c.queue = nil
	c.mu.Unlock()
	for _, e := range q {
		c.process(e)
	}
}

// waitBriefly waits up to d for an event.
func (c *simClient) waitBriefly(d time.Duration) {
	select {
	case <-c.wake:
	case <-time.After(d):
	}
}

// wait blocks until an event arrives; false after waitLimit.
func (c *simClient) wait() bool {
	select {
	case <-c.wake:
		return true
	case <-time.After(waitLimit):
		c.t.Errorf("%s: no event for %v (version %d, inflight %v, %d pending)", c.src, waitLimit, c.version, c.inflight != nil, len(c.pending))
		return false
	}
}

func (c *simClient) process(e simEvent) {
	if c.conn == nil || e.gen != c.gen {
		return // from an earlier connection
	}
	switch e.kind {
	case evSnap:
		if e.err != nil {
			c.t.Errorf("%s: subscribe: %v", c.src, e.err)
			return
		}
		if !c.loaded {
			c.text, c.version, c.loaded = e.snap.Data, e.snap.Version, true
			c.flush()
		}
	case evAck:
		if e.err != nil {
			c.t.Errorf("%s: submit seq %d: %v", c.src, e.seq, e.err)
			return
		}
		if c.inflight == nil || c.inflight.seq != e.seq {
			return // already acknowledged by its record in a catch-up
		}
		if e.res.Version != c.version {
			c.t.Errorf("%s: ack of seq %d at version %d, client at %d", c.src, e.seq, e.res.Version, c.version)
			return
		}
		c.ack()
	case evOp:
		c.remote(e.rec)
	}
}

func (c *simClient) ack() {
	c.acked = append(c.acked, c.inflight.seq)
	c.inflight = nil
	c.version++
	c.flush()
}

func (c *simClient) remote(rec collab.Record) {
	if !c.loaded || rec.Version < c.version {
		return
	}
	if rec.Version > c.version {
		c.t.Errorf("%s: record at %d, client at %d: a gap", c.src, rec.Version, c.version)
		return
	}
	if c.inflight != nil && rec.Src == c.src && rec.Seq == c.inflight.seq {
		c.ack() // our own op, seen in a catch-up before its ack
		return
	}
	if rec.Src == c.src || rec.Kind != collab.OpEdit {
		c.t.Errorf("%s: unexpected record %+v", c.src, rec)
		return
	}
	op := rec.Op
	var err error
	if c.inflight != nil {
		if c.inflight.op, op, err = transformX(c.inflight.op, op); err != nil {
			c.t.Errorf("%s: transform: %v", c.src, err)
			return
		}
	}
	for _, p := range c.pending {
		if p.op, op, err = transformX(p.op, op); err != nil {
			c.t.Errorf("%s: transform: %v", c.src, err)
			return
		}
	}
	if c.text, err = ot.Apply(c.text, op); err != nil {
		c.t.Errorf("%s: apply remote %v: %v", c.src, op, err)
	}
	c.version++
}

// transformX is the client's transform: its own op wins ties (left), the
// server's op goes right.
func transformX(client, server ot.Op) (ot.Op, ot.Op, error) {
	c2, err := ot.Transform(client, server, ot.Left)
	if err != nil {
		return nil, nil, err
	}
	s2, err := ot.Transform(server, client, ot.Right)
	return c2, s2, err
}

// flush sends the first pending op if nothing is in flight; a resent op
// keeps its seq.
func (c *simClient) flush() {
	if c.conn == nil || !c.loaded || c.inflight != nil || len(c.pending) == 0 {
		return
	}
	op := c.pending[0]
	c.pending = c.pending[1:]
	if !op.sent {
		c.seq++
		op.seq, op.sent = c.seq, true
	}
	c.inflight = op
	if c.lossy && c.rng.IntN(10) == 0 {
		c.lost++
		return
	}
	gen, seq := c.gen, op.seq
	c.h.Submit(docX, c.conn, editSub(c.src, op.seq, c.version, op.op), func(res collab.SubmitResult, err error) {
		c.push(simEvent{gen: gen, kind: evAck, seq: seq, res: res, err: err})
	})
}

func (c *simClient) connect() {
	c.gen++
	c.conn = &simConn{cl: c, gen: c.gen}
	c.flush() // resend the in-flight op first, as ShareDB does
	var from *uint64
	if c.loaded {
		from = u64(c.version)
	}
	gen := c.gen
	c.h.Subscribe(docX, c.conn, from, func(s collab.Snapshot, err error) {
		c.push(simEvent{gen: gen, kind: evSnap, snap: s, err: err})
	})
}

func (c *simClient) disconnect() {
	c.conn.dead.Store(true)
	c.h.Disconnect(c.conn)
	c.conn = nil
	c.disconnects++
	if c.inflight != nil {
		c.pending = append([]*simOp{c.inflight}, c.pending...)
		c.inflight = nil
	}
}

func (c *simClient) localEdit() {
	op := randomOp(c.rng, c.text)
	text, err := ot.Apply(c.text, op)
	if err != nil {
		c.t.Errorf("%s: local op %v: %v", c.src, op, err)
		return
	}
	c.text = text
	if n := len(c.pending); n > 0 && !c.pending[n-1].sent {
		if c.pending[n-1].op, err = ot.Compose(c.pending[n-1].op, op); err != nil {
			c.t.Errorf("%s: compose: %v", c.src, err)
		}
	} else {
		c.pending = append(c.pending, &simOp{op: op})
	}
	c.flush()
}

// edit makes n random edits, with pauses, disconnects and reconnects.
func (c *simClient) edit(n int) {
	c.lossy = true
	defer func() { c.lossy = false }()
	c.connect()
	for edits := 0; edits < n && !c.t.Failed(); {
		c.processAll()
		if !c.loaded {
			if c.conn == nil {
				c.connect()
			}
			if !c.wait() {
				return
			}
			continue
		}
		switch r := c.rng.IntN(100); {
		case r < 40:
			c.localEdit()
			edits++
		case r < 65:
			c.waitBriefly(time.Millisecond)
		case r < 75:
			time.Sleep(time.Duration(c.rng.IntN(300)) * time.Microsecond)
		case r < 79:
			if c.conn != nil {
				c.disconnect()
			}
		case r < 90:
			if c.conn == nil {
				c.connect()
			}
		}
	}
}

// settle reconnects, which resends an op the network lost, and waits
// until nothing is pending or in flight.
func (c *simClient) settle() {
	if c.conn != nil {
		c.disconnect()
	}
	c.connect()
	for {
		c.processAll()
		if c.t.Failed() || (c.loaded && c.inflight == nil && len(c.pending) == 0) {
			return
		}
		if !c.wait() {
			return
		}
	}
}

// catchUp waits until the client has every record before head.
func (c *simClient) catchUp(head uint64) {
	for {
		c.processAll()
		if c.version >= head || c.t.Failed() {
			return
		}
		if !c.wait() {
			return
		}
	}
}

var alphabet = []string{"a", "b", "c", "d", " ", "é", "中", "💃"}

// randomOp returns a random edit of text: an insert of 1-3 code points,
// or a delete of 1-3 (sometimes carrying the deleted text).
func randomOp(rng *rand.Rand, text string) ot.Op {
	runes := []rune(text)
	n := len(runes)
	if n > 0 && (rng.IntN(3) == 0 || n > 300) {
		pos := rng.IntN(n)
		l := 1 + rng.IntN(min(3, n-pos))
		op := del(pos, l)
		if rng.IntN(2) == 0 {
			op[len(op)-1].Text = string(runes[pos : pos+l])
		}
		return op
	}
	var b strings.Builder
	for range 1 + rng.IntN(3) {
		b.WriteString(alphabet[rng.IntN(len(alphabet))])
	}
	return ins(rng.IntN(n+1), b.String())
}
