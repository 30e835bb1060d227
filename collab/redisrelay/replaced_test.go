package redisrelay_test

import (
	"errors"
	"testing"
	"time"

	"github.com/coedit/coedit/collab"
	"github.com/coedit/coedit/collab/redisrelay"
	"github.com/coedit/coedit/collab/redisrelay/redisrelaytest"
	"github.com/coedit/coedit/internal/redistest"
)

// subscribeAt subscribes c to key on n at version from (nil: the
// snapshot) and returns the answer.
func subscribeAt(t testing.TB, n *hubNode, key collab.Key, c collab.Conn, from *uint64) (collab.Snapshot, error) {
	t.Helper()
	type out struct {
		s   collab.Snapshot
		err error
	}
	ch := make(chan out, 1)
	n.hub.Subscribe(key, c, from, func(s collab.Snapshot, err error) { ch <- out{s, err} })
	select {
	case o := <-ch:
		return o.s, o.err
	case <-time.After(waitLimit):
		t.Fatalf("%s: Subscribe(%v) did not answer", n.name, key)
		return collab.Snapshot{}, nil
	}
}

// submitAs submits s on n from connection c and returns the answer.
func submitAs(t testing.TB, n *hubNode, key collab.Key, c collab.Conn, s collab.Submission) error {
	t.Helper()
	ch := make(chan error, 1)
	n.hub.Submit(key, c, s, func(_ collab.SubmitResult, err error) { ch <- err })
	select {
	case err := <-ch:
		return err
	case <-time.After(waitLimit):
		t.Fatalf("%s: Submit(%v) did not answer", n.name, key)
		return nil
	}
}

// TestClusterReplacedCopyIsRefusedOnEveryNode: a node forks (Redis lost
// records it had served and another writer moved on), so its subscriber
// holds a copy whose version names a text the cluster no longer has.
// When that client comes back to a node that never forked (the load
// balancer sends it anywhere), its subscribe and its resent op at the
// old version are refused with ErrHistoryReplaced instead of being caught
// up by version onto the new history (silent divergence). Once it takes
// a fresh snapshot it is a client like any other, and a client whose copy
// is older than the fork is caught up as usual.
func TestClusterReplacedCopyIsRefusedOnEveryNode(t *testing.T) {
	srv := redistest.StartServer(t, redistest.ServerOptions{})
	p := prefix(t)
	a := startNode(t, "a", srv.Addr(), p, nodeConfig{})
	var holder, early *testConn
	key := forkAfterLostTail(t, srv.Addr(), p, a, func(key collab.Key) {
		holder, early = newTestConn("holder"), newTestConn("early")
		subscribe(t, a, key, holder)
		holder.waitOps(t, key, 8)
		subscribe(t, a, key, early)
	})
	deadline := time.Now().Add(waitLimit)
	for holder.resetCount() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the holder was never dropped with ErrHistoryReplaced")
		}
		time.Sleep(10 * time.Millisecond)
	}
	want := fetch(t, a, key)

	c := startNode(t, "c", srv.Addr(), p, nodeConfig{})
	old := uint64(8)
	if _, err := subscribeAt(t, c, key, holder, &old); !errors.Is(err, collab.ErrHistoryReplaced) {
		t.Fatalf("subscribe at the replaced version 8 on another node = %v, want ErrHistoryReplaced", err)
	}
	resend := editSub("holder", 1, old, insertAt(0, "H"))
	if err := submitAs(t, c, key, holder, resend); !errors.Is(err, collab.ErrHistoryReplaced) {
		t.Fatalf("submit at the replaced version 8 on another node = %v, want ErrHistoryReplaced", err)
	}
	if got := fetch(t, c, key); got != want {
		t.Fatalf("the refused submit changed the document: %+v, want %+v", got, want)
	}

	// A copy from before the fork is good: caught up by version. (early
	// was a subscriber of a too, so it is noted; its copy at 4 is a
	// prefix of both histories.)
	before := len(early.received(key))
	four := uint64(4)
	if _, err := subscribeAt(t, c, key, early, &four); err != nil {
		t.Fatalf("subscribe at version 4, below the fork, = %v", err)
	}
	recs := early.waitOps(t, key, want.Version)[before:]
	if recs[0].Version != 4 || recs[1].Src != "z" {
		t.Fatalf("catch-up from 4 = %v, want the new history from 4 (z/1 at 5)", recs)
	}

	// The fresh snapshot is the cluster's; then the client is ordinary.
	snap, err := subscribeAt(t, c, key, holder, nil)
	if err != nil || snap != want {
		t.Fatalf("fresh subscribe = %+v, %v; want %+v", snap, err, want)
	}
	if err := submitAs(t, c, key, holder, editSub("holder", 1, snap.Version, insertAt(0, "H"))); err != nil {
		t.Fatalf("submit after the fresh snapshot = %v", err)
	}
	if _, err := subscribeAt(t, a, key, holder, &snap.Version); err != nil {
		t.Fatalf("subscribe by version after the fresh snapshot, on the node that forked, = %v", err)
	}
	if st := c.hub.Stats(); st.ReplacedRefused != 2 {
		t.Errorf("c refused %d requests as replaced, want 2", st.ReplacedRefused)
	}
	converged(t, key, a, c)
}

// forkAfterLostTail makes, on a fresh document, the fork the
// replaced-history tests need. The writer node creates it and commits
// x/2..x/8 (versions 1..7), then prepare subscribes whom the test needs.
// Redis then loses records 5..7 and a relay of the test's own renews the
// epoch without them and commits z/1 at 5. The live nodes offer their
// records again as soon as they see the new epoch; when one of them wins
// that race there is no fork (the same history goes on), and the setup
// is made again on another document, up to five times. It returns the
// document that forked.
func forkAfterLostTail(t *testing.T, addr, prefix string, writer *hubNode, prepare func(key collab.Key)) collab.Key {
	t.Helper()
	other := node(t, addr, prefix, redisrelay.Options{})
	for i := 1; i <= 5; i++ {
		key := docKey(i)
		submit(t, writer, key, createSub("x", 1, "base"))
		for seq := uint64(2); seq <= 8; seq++ {
			edit(t, writer, key, "x", seq)
		}
		prepare(key)
		h, _, err := other.Head(ctx(t), key)
		if err != nil {
			t.Fatal(err)
		}
		redisrelaytest.LoseTail(t, newClient(t, addr), prefix, key, 5, h.Version)
		epoch, _, err := other.Renew(ctx(t), key, h.Epoch, nil)
		if err != nil {
			t.Fatalf("Renew = %v", err)
		}
		res, err := other.Commit(ctx(t), key, epoch, 5, []collab.Record{rec(5, "z", 1, "Z")})
		if err == nil && res.Outcome == redisrelay.Conflict && len(res.Missed) > 0 && res.Missed[0].Src == "x" {
			continue // a live node put its records back first: no fork
		}
		if err != nil || res.Outcome != redisrelay.Committed || res.Version != 5 {
			t.Fatalf("Commit(%v at 5) = %+v, %v; want committed at 5", key, res, err)
		}
		return key
	}
	t.Fatal("a live node put its records back before the other writer committed, five times")
	return collab.Key{}
}
