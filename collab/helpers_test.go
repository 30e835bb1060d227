package collab_test

import (
	"context"
	"errors"
	"flag"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coedit/coedit/collab"
	"github.com/coedit/coedit/ot"
	"github.com/coedit/coedit/storage"
)

// waitLimit bounds every wait in these tests, so a bug shows as a
// failure, not a hang. It is not a performance assertion.
const waitLimit = 20 * time.Second

// openStore opens a real store in a temp dir. A cleanup closes it if the
// test did not, then reopens the file and checks its consistency.
func openStore(t testing.TB, sync storage.SyncMode) (*storage.DB, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "coedit.db")
	db, err := storage.Open(path, storage.Options{Sync: sync})
	if err != nil {
		t.Fatalf("storage.Open(%s) = %v", path, err)
	}
	t.Cleanup(func() {
		if err := db.Close(); err != nil && !errors.Is(err, storage.ErrClosed) {
			t.Errorf("store Close() = %v", err)
		}
		db2, err := storage.Open(path, storage.Options{})
		if err != nil {
			t.Errorf("reopen for check: %v", err)
			return
		}
		if err := db2.Check(context.Background()); err != nil {
			t.Errorf("store Check() after test = %v", err)
		}
		db2.Close()
	})
	return db, path
}

// newHub returns a Hub over a fresh store; a cleanup closes the Hub
// before the store.
// pipelineAll runs the tests whose Hub writes to a storage.DB directly
// with pipelined group commits (collab/pipeline.go), as coedit serve runs
// a single node; scripts/test.sh runs them once more without.
var pipelineAll = flag.Bool("collab.pipeline", true, "pipeline the group commits of every Hub over a storage.DB")

func newHub(t testing.TB, opts collab.Options) (*collab.Hub, *storage.DB) {
	t.Helper()
	db, _ := openStore(t, storage.SyncNone)
	opts.Store = db
	return startHub(t, opts), db
}

// startHub returns a Hub over opts.Store and closes it in a cleanup.
func startHub(t testing.TB, opts collab.Options) *collab.Hub {
	t.Helper()
	if _, direct := opts.Store.(*storage.DB); direct && *pipelineAll {
		opts.Pipeline = true
	}
	return startHubAsIs(t, opts)
}

// startHubAsIs is startHub without the -collab.pipeline default.
func startHubAsIs(t testing.TB, opts collab.Options) *collab.Hub {
	t.Helper()
	h := collab.NewHub(opts)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
		defer cancel()
		if err := h.Close(ctx); err != nil {
			t.Errorf("Hub.Close() = %v", err)
		}
	})
	return h
}

var ctxBG = context.Background()

func ins(pos int, s string) ot.Op {
	var op ot.Op
	if pos > 0 {
		op = append(op, ot.Component{Kind: ot.KindSkip, N: pos})
	}
	return append(op, ot.Component{Kind: ot.KindInsert, N: len([]rune(s)), Text: s})
}

func del(pos, n int) ot.Op {
	var op ot.Op
	if pos > 0 {
		op = append(op, ot.Component{Kind: ot.KindSkip, N: pos})
	}
	return append(op, ot.Component{Kind: ot.KindDelete, N: n})
}

func createSub(src string, seq uint64, data string) collab.Submission {
	return collab.Submission{Src: src, Seq: seq, Kind: collab.OpCreate, Type: ot.URI, Data: data}
}

func editSub(src string, seq, v uint64, op ot.Op) collab.Submission {
	return collab.Submission{Src: src, Seq: seq, Version: v, HasVersion: true, Kind: collab.OpEdit, Op: op}
}

// mustSubmit submits and fails the test on error.
func mustSubmit(t testing.TB, h *collab.Hub, key collab.Key, s collab.Submission) collab.SubmitResult {
	t.Helper()
	res, err := h.SubmitWait(ctxBG, key, s)
	if err != nil {
		t.Fatalf("SubmitWait(%s, src %q seq %d) = %v", key, s.Src, s.Seq, err)
	}
	return res
}

func mustFetch(t testing.TB, h *collab.Hub, key collab.Key) collab.Snapshot {
	t.Helper()
	snap, err := h.FetchWait(ctxBG, key)
	if err != nil {
		t.Fatalf("FetchWait(%s) = %v", key, err)
	}
	return snap
}

// event is one thing a testConn received, in order.
type event struct {
	kind    string // "op", "presence", "request", "ack", "snapshot", "done", "presence-ack", "drop"
	key     collab.Key
	rec     collab.Record
	pres    collab.PresenceUpdate
	channel string
	res     collab.SubmitResult
	snap    collab.Snapshot
	err     error
}

// testConn is a client of the engine: a Conn that records everything it
// receives, replies included, in the order it receives them.
type testConn struct {
	src    string
	closed atomic.Bool // set by close: the conn tells the engine it is gone

	mu     sync.Mutex
	events []event
	cond   chan struct{} // closed and replaced on every event
}

func newConn(src string) *testConn {
	return &testConn{src: src, cond: make(chan struct{})}
}

func (c *testConn) Src() string { return c.src }

func (c *testConn) add(e event) {
	c.mu.Lock()
	c.events = append(c.events, e)
	close(c.cond)
	c.cond = make(chan struct{})
	c.mu.Unlock()
}

func (c *testConn) SendOp(key collab.Key, rec collab.Record) {
	c.add(event{kind: "op", key: key, rec: rec})
}

func (c *testConn) SendPresence(p collab.PresenceUpdate) {
	c.add(event{kind: "presence", pres: p})
}

func (c *testConn) SendPresenceRequest(channel string) {
	c.add(event{kind: "request", channel: channel})
}

func (c *testConn) Closed() bool { return c.closed.Load() }

// close marks the conn closed, as a WebSocket whose client went away.
func (c *testConn) close() { c.closed.Store(true) }

func (c *testConn) Drop(key collab.Key, err error) {
	c.add(event{kind: "drop", key: key, err: err})
}

func (c *testConn) submit(h *collab.Hub, key collab.Key, s collab.Submission) {
	h.Submit(key, c, s, func(res collab.SubmitResult, err error) {
		c.add(event{kind: "ack", key: key, res: res, err: err})
	})
}

func (c *testConn) subscribe(h *collab.Hub, key collab.Key, from *uint64) {
	h.Subscribe(key, c, from, func(s collab.Snapshot, err error) {
		c.add(event{kind: "snapshot", key: key, snap: s, err: err})
	})
}

func (c *testConn) fetch(h *collab.Hub, key collab.Key, from *uint64) {
	h.Fetch(key, c, from, func(s collab.Snapshot, err error) {
		c.add(event{kind: "snapshot", key: key, snap: s, err: err})
	})
}

func (c *testConn) presence(h *collab.Hub, p collab.PresenceUpdate) {
	h.Presence(c, p, func(p collab.PresenceUpdate, err error) {
		c.add(event{kind: "presence-ack", pres: p, err: err})
	})
}

func (c *testConn) snapshotEvents() []event {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.events)
}

// waitN waits until the conn has received n events of kind and returns
// them.
func (c *testConn) waitN(t testing.TB, kind string, n int) []event {
	t.Helper()
	deadline := time.After(waitLimit)
	for {
		c.mu.Lock()
		var got []event
		for _, e := range c.events {
			if e.kind == kind {
				got = append(got, e)
			}
		}
		cond := c.cond
		c.mu.Unlock()
		if len(got) >= n {
			return got
		}
		select {
		case <-cond:
		case <-deadline:
			t.Fatalf("conn %s: got %d %q events, want %d; events %+v", c.src, len(got), kind, n, c.snapshotEvents())
		}
	}
}

// count returns how many events of kind the conn has received.
func (c *testConn) count(kind string) int {
	n := 0
	for _, e := range c.snapshotEvents() {
		if e.kind == kind {
			n++
		}
	}
	return n
}

// kinds returns the kinds of the conn's events, in order.
func (c *testConn) kinds() []string {
	var out []string
	for _, e := range c.snapshotEvents() {
		out = append(out, e.kind)
	}
	return out
}

// opVersions returns the versions of the "op" events, in order.
func (c *testConn) opVersions() []uint64 {
	var out []uint64
	for _, e := range c.snapshotEvents() {
		if e.kind == "op" {
			out = append(out, e.rec.Version)
		}
	}
	return out
}

// waitFor polls cond until it holds.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func u64(v uint64) *uint64 { return &v }
