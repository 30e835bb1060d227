package redisrelay_test

import (
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/coedit/coedit/collab"
	"github.com/coedit/coedit/internal/redistest"
)

// edit submits one insert of src's seq at the head node n shows.
func edit(t *testing.T, n *hubNode, key collab.Key, src string, seq uint64) collab.SubmitResult {
	t.Helper()
	s := fetch(t, n, key)
	return submitRetrying(t, n, key, editSub(src, seq, s.Version, insertAt(0, fmt.Sprintf("<%s%d>", src, seq))))
}

// TestClusterRedisKilledWithAOFLosesNothing: Redis (appendfsync always)
// is killed with SIGKILL and restarted; the nodes renew the epoch and
// writes go on, with nothing acknowledged lost and a remote subscriber
// seeing every op once, in order, without being told to re-fetch.
func TestClusterRedisKilledWithAOFLosesNothing(t *testing.T) {
	r, n := startNodes(t, redistest.ServerOptions{AOF: true}, nodeConfig{}, "a", "b")
	a, b := n[0], n[1]
	key := createDoc(t, a, "")
	sub := newTestConn("sub")
	subscribe(t, b, key, sub)
	for seq := uint64(2); seq <= 10; seq++ {
		edit(t, a, key, "x", seq)
	}
	r.srv.Kill()
	r.srv.Restart()
	start := time.Now()
	edit(t, a, key, "x", 11)
	t.Logf("first write after the restart took %v", time.Since(start))
	edit(t, b, key, "y", 1)
	log := converged(t, key, a, b)
	for seq := uint64(1); seq <= 11; seq++ {
		hasOnce(t, log, "x", seq)
	}
	got := sub.waitOps(t, key, uint64(len(log)))
	for i, r := range got {
		if r.Version != uint64(i) {
			t.Fatalf("subscriber's op %d has version %d", i, r.Version)
		}
	}
	if sub.resets != 0 {
		t.Fatalf("subscriber was told to re-fetch %d times; an AOF restart replaces nothing", sub.resets)
	}
	if st := a.cluster.Stats(); st.Renewals+b.cluster.Stats().Renewals != 1 || st.Forks != 0 {
		t.Errorf("stats a %+v, b %+v: want one renewal between them and no fork", st, b.cluster.Stats())
	}
}

// TestClusterRedisPausedSubmitsWaitOrFailRetryably: while Redis is
// stopped (SIGSTOP) a submit waits and then fails with a retryable error;
// after SIGCONT the resent op lands once, the nodes converge, and the
// goroutines the wait started are gone.
func TestClusterRedisPausedSubmitsWaitOrFailRetryably(t *testing.T) {
	r, n := startNodes(t, redistest.ServerOptions{}, nodeConfig{retryFor: 500 * time.Millisecond}, "a", "b")
	a, b := n[0], n[1]
	key := createDoc(t, a, "base")
	fetch(t, b, key)
	baseline := runtime.NumGoroutine()

	r.srv.Pause()
	s := editSub("x", 2, 1, insertAt(0, "during"))
	_, err := a.hub.SubmitWait(ctx(t), key, s)
	if !isRetryable(err) {
		r.srv.Resume()
		t.Fatalf("Submit while Redis is paused = %v, want an error wrapping collab.ErrUnavailable", err)
	}
	r.srv.Resume()
	submitRetrying(t, a, key, s)
	log := converged(t, key, a, b)
	hasOnce(t, log, "x", 2)
	deadline := time.Now().Add(waitLimit)
	for runtime.NumGoroutine() > baseline {
		if time.Now().After(deadline) {
			t.Fatalf("goroutines: %d, baseline %d", runtime.NumGoroutine(), baseline)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestClusterRedisRestartedEmptyAheadNodeReseeds: Redis comes back empty
// while node B (stopped) is behind node A: A seeds the document from its
// store, and B, started again, catches up. Nothing is lost and no
// version is given twice.
func TestClusterRedisRestartedEmptyAheadNodeReseeds(t *testing.T) {
	r, n := startNodes(t, redistest.ServerOptions{}, nodeConfig{}, "a", "b")
	a, b := n[0], n[1]
	key := createDoc(t, a, "")
	edit(t, b, key, "y", 1)
	b.stop(t)
	for seq := uint64(2); seq <= 6; seq++ {
		edit(t, a, key, "x", seq)
	}
	r.srv.RestartEmpty()
	start := time.Now()
	edit(t, a, key, "x", 7)
	t.Logf("reseed by the node ahead and a write: %v", time.Since(start))
	b = r.startNode(t, "b2", nodeConfig{path: b.path})
	edit(t, b, key, "y", 2)
	log := converged(t, key, a, b)
	for seq := uint64(1); seq <= 7; seq++ {
		hasOnce(t, log, "x", seq)
	}
	hasOnce(t, log, "y", 1)
	hasOnce(t, log, "y", 2)
	if st := b.cluster.Stats(); st.Forks != 0 {
		t.Errorf("b's stats %+v: the node behind lost nothing and must not fork", st)
	}
}

// TestClusterRedisRestartedEmptyBehindNodeSeedsFirst: Redis comes back
// empty and the node that is behind (B) seeds the document first and
// takes new edits; then node A, which has records Redis lost, starts:
// it offers them again (transformed over B's, keeping src and seq),
// drops them from its store and catches up. Every acknowledged edit is
// in the one history, once; the nodes agree.
func TestClusterRedisRestartedEmptyBehindNodeSeedsFirst(t *testing.T) {
	r, n := startNodes(t, redistest.ServerOptions{}, nodeConfig{}, "a", "b")
	a, b := n[0], n[1]
	key := createDoc(t, a, "base")
	edit(t, b, key, "y", 1)
	b.stop(t)
	for seq := uint64(2); seq <= 6; seq++ {
		edit(t, a, key, "x", seq)
	}
	a.stop(t)
	r.srv.RestartEmpty()

	b = r.startNode(t, "b2", nodeConfig{path: b.path})
	edit(t, b, key, "y", 2)
	edit(t, b, key, "y", 3)
	start := time.Now()
	a = r.startNode(t, "a2", nodeConfig{path: a.path})
	fetch(t, a, key)
	t.Logf("the node ahead rejoined, offering %d records again, in %v", a.cluster.Stats().Reoffered, time.Since(start))
	log := converged(t, key, a, b)
	for seq := uint64(1); seq <= 6; seq++ {
		hasOnce(t, log, "x", seq)
	}
	for seq := uint64(1); seq <= 3; seq++ {
		hasOnce(t, log, "y", seq)
	}
	if st := a.cluster.Stats(); st.Forks != 1 || st.Reoffered != 5 || st.Lost != 0 {
		t.Errorf("a's stats %+v: want one fork offering x's 5 edits again, none lost", st)
	}
}

// TestClusterReplacedHistoryForksLiveNodes: Redis loses the newest
// records of a document and a new epoch goes on without them (as after
// a restart with appendfsync everysec, when another node renews first).
// Both running nodes, which hold the lost records, offer them again (one
// commits them, the other finds them there), drop their own copies,
// catch up, and tell their subscribers to fetch the document again.
func TestClusterReplacedHistoryForksLiveNodes(t *testing.T) {
	r, n := startNodes(t, redistest.ServerOptions{}, nodeConfig{}, "a", "b")
	a, b := n[0], n[1]
	var subA, subB *testConn
	key := forkAfterLostTail(t, r.srv.Addr(), r.prefix, a, func(key collab.Key) {
		subA, subB = newTestConn("subA"), newTestConn("subB")
		subscribe(t, a, key, subA)
		subscribe(t, b, key, subB)
	})

	for _, c := range []*testConn{subA, subB} {
		deadline := time.Now().Add(waitLimit)
		for c.resetCount() == 0 {
			if time.Now().After(deadline) {
				t.Fatalf("%s was never told to re-fetch", c.src)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	log := converged(t, key, a, b)
	for seq := uint64(1); seq <= 8; seq++ {
		hasOnce(t, log, "x", seq)
	}
	hasOnce(t, log, "z", 1)
	if log[5].Src != "z" {
		t.Fatalf("record 5 is %s/%d, want the new epoch's z/1", log[5].Src, log[5].Seq)
	}
	t.Logf("reoffered by a: %d, by b: %d", a.cluster.Stats().Reoffered, b.cluster.Stats().Reoffered)
}

func (c *testConn) resetCount() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.resets
}
