// Package relaytest is the contract test suite of collab's cluster seam:
// the behaviour every Relay and Sequencer pair must give Hubs that share
// it, whatever carries the records. Run calls it against an
// implementation; collab's tests run it against LocalRelay (with each
// Hub its documents' only writer) and collab/redisrelay's against Redis,
// with a key prefix per test.
//
// Each case starts Hubs over real bbolt stores in the test's temp dir,
// talks to them through the Hub's API and an in-process Conn, and checks
// what clients would see: every op once and in order, resends
// acknowledged at their first version, and (for implementations that
// order writes from several nodes) convergence.
package relaytest

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/coedit/coedit/collab"
	"github.com/coedit/coedit/ot"
	"github.com/coedit/coedit/storage"
)

// waitLimit bounds every wait, so a bug shows as a failure, not a hang.
const waitLimit = 20 * time.Second

// Factory makes the nodes of one test case.
type Factory struct {
	// Node returns the Relay and Sequencer of a new node of the case's
	// cluster, whose Hub uses store (nodes of one case share whatever
	// the implementation shares). A nil Sequencer means the Hub's
	// default.
	Node func(t *testing.T, store *storage.DB) (collab.Relay, collab.Sequencer)
	// Orders is true when several nodes may accept submits for the same
	// document (a shared commit point); false when only one may, as with
	// LocalRelay.
	Orders bool
	// SharedLog is true when a node that starts after ops were committed
	// elsewhere serves them before it answers (a shared log it syncs
	// from); false when a node only learns what is published while it
	// runs.
	SharedLog bool
}

// Run runs every case of the contract against f.
func Run(t *testing.T, f Factory) {
	t.Run("SubmitFetchAndResend", func(t *testing.T) { submitFetchAndResend(t, f) })
	t.Run("RemoteSubscriberGetsEveryOpInOrder", func(t *testing.T) { remoteSubscriber(t, f) })
	t.Run("ResendToAnotherNodeIsAckedOnce", func(t *testing.T) { resendElsewhere(t, f) })
	if f.Orders {
		t.Run("ConcurrentWritersConverge", func(t *testing.T) { concurrentWriters(t, f) })
	}
	if f.SharedLog {
		t.Run("LateNodeServesTheClustersState", func(t *testing.T) { lateNode(t, f) })
	}
}

// node is one Hub of a case.
type node struct {
	hub *collab.Hub
	db  *storage.DB
}

func startNode(t *testing.T, f Factory) *node {
	t.Helper()
	db, err := storage.Open(filepath.Join(t.TempDir(), "coedit.db"), storage.Options{Sync: storage.SyncNone})
	if err != nil {
		t.Fatalf("storage.Open = %v", err)
	}
	relay, seq := f.Node(t, db)
	hub := collab.NewHub(collab.Options{Store: db, Relay: relay, Sequencer: seq})
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
		defer cancel()
		if err := hub.Close(ctx); err != nil {
			t.Errorf("Hub.Close() = %v", err)
		}
		if err := db.Close(); err != nil {
			t.Errorf("store Close() = %v", err)
		}
	})
	return &node{hub: hub, db: db}
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), waitLimit)
	t.Cleanup(cancel)
	return c
}

var key = collab.Key{Collection: "notes", ID: "contract"}

func insert(pos int, s string) ot.Op {
	var op ot.Op
	if pos > 0 {
		op = append(op, ot.Component{Kind: ot.KindSkip, N: pos})
	}
	return append(op, ot.Component{Kind: ot.KindInsert, N: len([]rune(s)), Text: s})
}

func (n *node) submit(t *testing.T, s collab.Submission) collab.SubmitResult {
	t.Helper()
	res, err := n.hub.SubmitWait(ctx(t), key, s)
	if err != nil {
		t.Fatalf("Submit(%s/%d at %d) = %v", s.Src, s.Seq, s.Version, err)
	}
	return res
}

func (n *node) fetch(t *testing.T) collab.Snapshot {
	t.Helper()
	s, err := n.hub.FetchWait(ctx(t), key)
	if err != nil {
		t.Fatalf("Fetch = %v", err)
	}
	return s
}

func create(src string) collab.Submission {
	return collab.Submission{Src: src, Seq: 1, HasVersion: true, Kind: collab.OpCreate, Type: ot.URI, Data: ""}
}

func editAt(src string, seq, v uint64, op ot.Op) collab.Submission {
	return collab.Submission{Src: src, Seq: seq, Version: v, HasVersion: true, Kind: collab.OpEdit, Op: op}
}

// conn is an in-process subscriber that records the ops it is sent.
type conn struct {
	src     string
	mu      sync.Mutex
	recs    []collab.Record
	changed chan struct{}
}

func newConn(src string) *conn { return &conn{src: src, changed: make(chan struct{}, 1)} }

func (c *conn) Src() string { return c.src }
func (c *conn) SendOp(_ collab.Key, r collab.Record) {
	c.mu.Lock()
	c.recs = append(c.recs, r)
	c.mu.Unlock()
	select {
	case c.changed <- struct{}{}:
	default:
	}
}
func (c *conn) SendPresence(collab.PresenceUpdate) {}
func (c *conn) SendPresenceRequest(string)         {}
func (c *conn) Closed() bool                       { return false }
func (c *conn) Drop(collab.Key, error)             {}

// waitFor waits until c has records up to version to and checks that
// they are every version from 0, once, in order.
func (c *conn) waitFor(t *testing.T, to uint64) {
	t.Helper()
	deadline := time.After(waitLimit)
	for {
		c.mu.Lock()
		recs := append([]collab.Record(nil), c.recs...)
		c.mu.Unlock()
		for i, r := range recs {
			if r.Version != uint64(i) {
				t.Fatalf("subscriber got version %d as its op %d: every op once, in order, wanted", r.Version, i)
			}
		}
		if uint64(len(recs)) >= to {
			return
		}
		select {
		case <-c.changed:
		case <-deadline:
			t.Fatalf("subscriber has %d ops, waiting for %d", len(recs), to)
		}
	}
}

func (n *node) subscribe(t *testing.T, c collab.Conn) {
	t.Helper()
	done := make(chan error, 1)
	zero := uint64(0)
	n.hub.Subscribe(key, c, &zero, func(_ collab.Snapshot, err error) { done <- err })
	if err := <-done; err != nil {
		t.Fatalf("Subscribe = %v", err)
	}
}

// submitFetchAndResend: a node acknowledges ops at consecutive versions,
// serves them, and answers a resend at the first version, once.
func submitFetchAndResend(t *testing.T, f Factory) {
	a := startNode(t, f)
	a.submit(t, create("x"))
	first := a.submit(t, editAt("x", 2, 1, insert(0, "hello")))
	if first.Version != 1 || first.Duplicate {
		t.Fatalf("edit = %+v, want version 1", first)
	}
	again := a.submit(t, editAt("x", 2, 1, insert(0, "hello")))
	if !again.Duplicate || again.Version != 1 {
		t.Fatalf("resend = %+v, want a duplicate at 1", again)
	}
	if s := a.fetch(t); s.Version != 2 || s.Data != "hello" {
		t.Fatalf("Fetch = %+v, want hello at 2", s)
	}
	ops, err := a.hub.Ops(ctx(t), key, 0, 10)
	if err != nil || len(ops) != 2 {
		t.Fatalf("Ops = %d records, %v; want 2", len(ops), err)
	}
}

// remoteSubscriber: ops one node commits reach a subscriber of another
// node once each, in version order, and that node serves the same text.
func remoteSubscriber(t *testing.T, f Factory) {
	a, b := startNode(t, f), startNode(t, f)
	sub := newConn("sub")
	b.subscribe(t, sub)
	a.submit(t, create("x"))
	const n = 50
	for v := uint64(1); v < n; v++ {
		a.submit(t, editAt("x", v+1, v, insert(0, "a")))
	}
	sub.waitFor(t, n)
	if sa, sb := a.fetch(t), b.fetch(t); sa != sb {
		t.Fatalf("nodes differ: %+v and %+v", sa, sb)
	}
}

// resendElsewhere: an op committed on one node, resent (same src and
// seq) to another that has it, is acknowledged there at its version.
func resendElsewhere(t *testing.T, f Factory) {
	a, b := startNode(t, f), startNode(t, f)
	sub := newConn("sub")
	b.subscribe(t, sub)
	a.submit(t, create("x"))
	first := a.submit(t, editAt("x", 2, 1, insert(0, "once")))
	sub.waitFor(t, 2)
	again := b.submit(t, editAt("x", 2, 1, insert(0, "once")))
	if !again.Duplicate || again.Version != first.Version {
		t.Fatalf("resend on the other node = %+v, want a duplicate at %d", again, first.Version)
	}
	if s := a.fetch(t); s.Data != "once" {
		t.Fatalf("text = %q, want the op once", s.Data)
	}
}

// concurrentWriters: writers on three nodes edit one document at once;
// the nodes agree on text and version, and every edit is there once.
func concurrentWriters(t *testing.T, f Factory) {
	nodes := []*node{startNode(t, f), startNode(t, f), startNode(t, f)}
	nodes[0].submit(t, create("setup"))
	var wg sync.WaitGroup
	const edits = 15
	for i, n := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			src := fmt.Sprintf("w%d", i)
			for seq := uint64(1); seq <= edits; seq++ {
				s, err := n.hub.FetchWait(ctx(t), key)
				if err == nil {
					_, err = n.hub.SubmitWait(ctx(t), key, editAt(src, seq, s.Version, insert(0, src)))
				}
				if err != nil {
					t.Errorf("%s: %v", src, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	want := nodes[0].fetch(t)
	if want.Version != 1+3*edits {
		t.Fatalf("version %d after %d edits and a create", want.Version, 3*edits)
	}
	for _, n := range nodes[1:] {
		if s := n.fetch(t); s != want {
			t.Fatalf("nodes differ: %+v and %+v", s, want)
		}
	}
}

// lateNode: a node started after ops were committed elsewhere serves
// them, snapshot and op log, from its first answer.
func lateNode(t *testing.T, f Factory) {
	a := startNode(t, f)
	a.submit(t, create("x"))
	for v := uint64(1); v < 10; v++ {
		a.submit(t, editAt("x", v+1, v, insert(0, "a")))
	}
	b := startNode(t, f)
	if s := b.fetch(t); s != a.fetch(t) {
		t.Fatalf("late node serves %+v, want %+v", s, a.fetch(t))
	}
	ops, err := b.hub.Ops(ctx(t), key, 0, 100)
	if err != nil || len(ops) != 10 {
		t.Fatalf("late node's Ops = %d records, %v; want 10", len(ops), err)
	}
}
