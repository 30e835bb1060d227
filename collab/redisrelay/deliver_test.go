package redisrelay_test

import (
	"context"
	"errors"
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

// gatedPair starts nodes a and b on one Redis, b over a gatedStore, with
// a document created on a and subscribed to on b by sub.
func gatedPair(t *testing.T, sub collab.Conn) (a, b *hubNode, g *gatedStore, key collab.Key) {
	t.Helper()
	srv := redistest.StartServer(t, redistest.ServerOptions{})
	p := prefix(t)
	a = startNode(t, "a", srv.Addr(), p, nodeConfig{})
	b = startNode(t, "b", srv.Addr(), p, nodeConfig{store: func(db *storage.DB) redisrelay.EpochStore {
		g = &gatedStore{DB: db}
		return g
	}})
	key = docKey(1)
	submit(t, a, key, createSub("x", 1, ""))
	subscribe(t, b, key, sub)
	return a, b, g, key
}

// TestClusterRemoteOpsReachSubscribersBeforeTheStore: node B sends an op
// committed on node A to its subscribers without waiting for its own
// store's write (Redis holds the op durably already), and has the op in
// its store before it answers anything else.
func TestClusterRemoteOpsReachSubscribersBeforeTheStore(t *testing.T) {
	sub := newTestConn("sub")
	a, b, g, key := gatedPair(t, sub)
	sub.waitOps(t, key, 1)

	release := g.hold()
	submit(t, a, key, editSub("x", 2, 1, insertAt(0, "a")))
	deadline := time.Now().Add(5 * time.Second)
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
	a, b, g, key := gatedPair(t, sub)
	sub.waitOps(t, key, 1)

	g.failNext(errors.New("disk on fire"))
	submit(t, a, key, editSub("x", 2, 1, insertAt(0, "a")))
	sub.waitOps(t, key, 2)
	deadline := time.Now().Add(waitLimit)
	for len(sub.dropped()) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("B's subscriber holds an op B could not store and was not dropped")
		}
		time.Sleep(time.Millisecond)
	}
	if err := sub.dropped()[0]; !errors.Is(err, collab.ErrSessionFailed) {
		t.Errorf("dropped with %v, want ErrSessionFailed", err)
	}
	again := newTestConn("again")
	subscribe(t, b, key, again)
	if got := again.waitOps(t, key, 2); len(got) != 2 {
		t.Errorf("a new subscriber on B got %d ops, want 2", len(got))
	}
	converged(t, key, a, b)
}
