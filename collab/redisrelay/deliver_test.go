package redisrelay_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/coedit/coedit/collab"
	"github.com/coedit/coedit/collab/redisrelay"
	"github.com/coedit/coedit/internal/redistest"
	"github.com/coedit/coedit/storage"
)

// gatedStore is a node's real bbolt store whose Commit can be held (until
// released) or failed once, to see what a node does before and after its
// own write of records another node committed.
type gatedStore struct {
	*storage.DB

	mu   sync.Mutex
	gate chan struct{} // while not nil, Commit waits for it to close
	fail error         // the next Commit's error, once
}

func (g *gatedStore) Commit(ctx context.Context, key collab.Key, recs []collab.Record, snap *collab.Snapshot) error {
	g.mu.Lock()
	gate, fail := g.gate, g.fail
	g.fail = nil
	g.mu.Unlock()
	if gate != nil {
		<-gate
	}
	if fail != nil {
		return fail
	}
	return g.DB.Commit(ctx, key, recs, snap)
}

// hold makes commits wait until the returned release is called.
func (g *gatedStore) hold() (release func()) {
	gate := make(chan struct{})
	g.mu.Lock()
	g.gate = gate
	g.mu.Unlock()
	return func() {
		g.mu.Lock()
		g.gate = nil
		g.mu.Unlock()
		close(gate)
	}
}

func (g *gatedStore) failNext(err error) {
	g.mu.Lock()
	g.fail = err
	g.mu.Unlock()
}

// dropConn is a testConn that also records the errors it was dropped
// with.
type dropConn struct {
	*testConn
	mu    sync.Mutex
	drops []error
}

func (c *dropConn) Drop(_ collab.Key, err error) {
	c.mu.Lock()
	c.drops = append(c.drops, err)
	c.mu.Unlock()
	c.poke()
}

func (c *dropConn) dropped() []error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]error(nil), c.drops...)
}

// gatedNodes starts nodes a and b on one Redis, the one named gated
// ("a" or "b") over a gatedStore, with a document created on a.
func gatedNodes(t *testing.T, gated string) (a, b *hubNode, g *gatedStore, key collab.Key) {
	t.Helper()
	r := &testRedis{srv: redistest.StartServer(t, redistest.ServerOptions{}), prefix: prefix(t)}
	cfg := func(name string) nodeConfig {
		if name != gated {
			return nodeConfig{}
		}
		return nodeConfig{store: func(db *storage.DB) redisrelay.EpochStore {
			g = &gatedStore{DB: db}
			return g
		}}
	}
	a = r.startNode(t, "a", cfg("a"))
	b = r.startNode(t, "b", cfg("b"))
	key = docKey(1)
	submit(t, a, key, createSub("x", 1, ""))
	return a, b, g, key
}

// TestClusterRemoteOpsReachSubscribersBeforeTheStore: node B sends an op
// committed on node A to its subscribers without waiting for its own
// store's write (Redis holds the op durably already), and has the op in
// its store before it answers anything else.
func TestClusterRemoteOpsReachSubscribersBeforeTheStore(t *testing.T) {
	sub := newTestConn("sub")
	a, b, g, key := gatedNodes(t, "b")
	subscribe(t, b, key, sub)
	sub.waitOps(t, key, 1)

	release := g.hold()
	submit(t, a, key, editSub("x", 2, 1, insertAt(0, "a")))
	deadline := time.Now().Add(waitLimit)
	for len(sub.received(key)) < 2 {
		if time.Now().After(deadline) {
			release()
			t.Fatalf("B's subscriber has %d ops while B's store write is held; want the new op sent before the write", len(sub.received(key)))
		}
		time.Sleep(time.Millisecond)
	}
	if st, err := b.db.Load(ctx(t), key); err != nil || st.Snapshot.Version+uint64(len(st.Ops)) != 1 {
		t.Errorf("B's store while its write is held: %+v, %v; want head 1", st, err)
	}
	release()
	// A fetch on B is answered after the write: B's store has the op.
	if s := fetch(t, b, key); s.Version != 2 || s.Data != "a" {
		t.Errorf("B: %+v, want version 2, text a", s)
	}
	if st, err := b.db.Load(ctx(t), key); err != nil || st.Snapshot.Version+uint64(len(st.Ops)) != 2 {
		t.Errorf("B's store after its write: %+v, %v; want head 2", st, err)
	}
	converged(t, key, a, b)
}

// TestClusterRemoteStoreFailureDropsSubscribers: when node B cannot
// write an op its subscribers were already sent, its session stops and
// drops them (collab.ErrSessionFailed, web closes with 1011); a new
// session catches up from Redis, and nothing differs between the nodes.
func TestClusterRemoteStoreFailureDropsSubscribers(t *testing.T) {
	sub := &dropConn{testConn: newTestConn("sub")}
	a, b, g, key := gatedNodes(t, "b")
	subscribe(t, b, key, sub)
	sub.waitOps(t, key, 1)

	g.failNext(errors.New("disk on fire"))
	submit(t, a, key, editSub("x", 2, 1, insertAt(0, "a")))
	droppedThenCaughtUp(t, b, sub, key, a, b)
}

// eventConn is a testConn that also records, in one list with the ops
// it is sent, the acks of the submits made on it.
type eventConn struct {
	*testConn
	mu     sync.Mutex
	events []string
}

func (c *eventConn) SendOp(key collab.Key, rec collab.Record) {
	c.mu.Lock()
	c.events = append(c.events, fmt.Sprintf("op %d", rec.Version))
	c.mu.Unlock()
	c.testConn.SendOp(key, rec)
}

// submit submits s on c through n and returns a channel for its reply,
// which is recorded among c's events.
func (c *eventConn) submit(n *hubNode, key collab.Key, s collab.Submission) <-chan error {
	ch := make(chan error, 1)
	n.hub.Submit(key, c, s, func(res collab.SubmitResult, err error) {
		c.mu.Lock()
		if err == nil {
			c.events = append(c.events, fmt.Sprintf("ack %d", res.Version))
		}
		c.mu.Unlock()
		ch <- err
	})
	return ch
}

func (c *eventConn) seen() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.events...)
}

// TestClusterOwnOpsReachOtherSubscribersBeforeTheStore: in a cluster the
// committing node sends its own op to the subscribers that have no
// submit in the group once Redis has taken it, without waiting for its
// own store's write; the submitters get their acks after the write, and
// no record above their own before their ack.
func TestClusterOwnOpsReachOtherSubscribersBeforeTheStore(t *testing.T) {
	a, b, g, key := gatedNodes(t, "a")
	sub := newTestConn("sub")
	w1 := &eventConn{testConn: newTestConn("w1")}
	w2 := &eventConn{testConn: newTestConn("w2")}
	subscribe(t, a, key, sub)
	subscribe(t, a, key, w1)
	subscribe(t, a, key, w2)
	for _, c := range []*testConn{sub, w1.testConn, w2.testConn} {
		c.waitOps(t, key, 1)
	}

	release := g.hold()
	http, err := make(chan error, 1), error(nil)
	go func() {
		_, err := a.hub.SubmitWait(ctx(t), key, editSub("x", 2, 1, insertAt(0, "a")))
		http <- err
	}()
	deadline := time.Now().Add(waitLimit)
	for len(sub.received(key)) < 2 || len(w1.received(key)) < 2 || len(w2.received(key)) < 2 {
		if time.Now().After(deadline) {
			release()
			t.Fatalf("while a's store write is held the subscribers have %d, %d and %d ops; want the new op sent before the write",
				len(sub.received(key)), len(w1.received(key)), len(w2.received(key)))
		}
		time.Sleep(time.Millisecond)
	}
	select {
	case err = <-http:
		release()
		t.Fatalf("the submit was answered (%v) while a's store write is held", err)
	default:
	}
	if st, err := g.DB.Load(ctx(t), key); err != nil || st.Snapshot.Version+uint64(len(st.Ops)) != 1 {
		t.Errorf("a's store while its write is held: %+v, %v; want head 1", st, err)
	}
	// Two submits on a version 2 copy, queued while the session waits on
	// the held write: they make the next group, of versions 2 and 3.
	// (Submit queues on the session's inbox before it returns.)
	r1 := w1.submit(a, key, editSub("w1", 1, 2, insertAt(0, "b")))
	r2 := w2.submit(a, key, editSub("w2", 1, 2, insertAt(0, "c")))
	release()
	if err := <-http; err != nil {
		t.Fatalf("the held submit: %v", err)
	}
	for _, r := range []<-chan error{r1, r2} {
		if err := <-r; err != nil {
			t.Fatalf("w1 or w2: %v", err)
		}
	}
	sub.waitOps(t, key, 4)
	w1.waitOps(t, key, 4) // its broadcast of 3 follows its ack
	w2.waitOps(t, key, 3) // 2 came with its reply
	// Each submitter sees every version once, in order, and its ack
	// before anything above it.
	if got, want := fmt.Sprint(w1.seen()), "[op 0 op 1 ack 2 op 3]"; got != want {
		t.Errorf("w1 saw %s, want %s", got, want)
	}
	if got, want := fmt.Sprint(w2.seen()), "[op 0 op 1 op 2 ack 3]"; got != want {
		t.Errorf("w2 saw %s, want %s", got, want)
	}
	converged(t, key, a, b)
}

// TestClusterOwnStoreFailureAfterEarlySendDropsSubscribers: when the
// committing node cannot write an op it already sent to its other
// subscribers, its session stops and drops them (ErrSessionFailed), the
// submit fails, and a new session catches up from Redis, which has it.
func TestClusterOwnStoreFailureAfterEarlySendDropsSubscribers(t *testing.T) {
	a, b, g, key := gatedNodes(t, "a")
	sub := &dropConn{testConn: newTestConn("sub")}
	subscribe(t, a, key, sub)
	g.failNext(errors.New("disk on fire"))
	if _, err := a.hub.SubmitWait(ctx(t), key, editSub("x", 2, 1, insertAt(0, "a"))); !errors.Is(err, collab.ErrSessionFailed) {
		t.Fatalf("submit whose store write fails: %v, want ErrSessionFailed", err)
	}
	droppedThenCaughtUp(t, a, sub, key, a, b)
}

// droppedThenCaughtUp checks what follows a store write that failed on
// n after sub, subscribed there, was sent the document's op at version 1:
// sub holds it and is dropped with ErrSessionFailed, a new subscriber on
// n catches up to it from a new session, and the nodes agree.
func droppedThenCaughtUp(t *testing.T, n *hubNode, sub *dropConn, key collab.Key, nodes ...*hubNode) {
	t.Helper()
	sub.waitOps(t, key, 2)
	deadline := time.Now().Add(waitLimit)
	for len(sub.dropped()) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%s's subscriber holds an op %s could not store and was not dropped", n.name, n.name)
		}
		time.Sleep(time.Millisecond)
	}
	if err := sub.dropped()[0]; !errors.Is(err, collab.ErrSessionFailed) {
		t.Errorf("dropped with %v, want ErrSessionFailed", err)
	}
	again := newTestConn("again")
	subscribe(t, n, key, again)
	if got := again.waitOps(t, key, 2); len(got) != 2 {
		t.Errorf("a new subscriber on %s got %d ops, want 2", n.name, len(got))
	}
	converged(t, key, nodes...)
}
