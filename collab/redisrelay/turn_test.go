package redisrelay_test

import (
	"testing"
	"time"

	"github.com/coedit/coedit/collab"
	"github.com/coedit/coedit/collab/redisrelay"
	"github.com/coedit/coedit/internal/redistest"
)

// commitInTurn calls CommitInTurn with a long turn and wants outcome.
func commitInTurn(t *testing.T, r *redisrelay.Relay, writer string, reserve bool, epoch string, expect uint64, want redisrelay.Outcome, recs ...collab.Record) redisrelay.Result {
	t.Helper()
	res, err := r.CommitInTurn(ctx(t), doc, epoch, expect, recs, writer, reserve, time.Minute)
	if err != nil || res.Outcome != want {
		t.Fatalf("%s: CommitInTurn(at %d) = %+v, %v; want %v", writer, expect, res, err, want)
	}
	return res
}

// TestCommitTurns: a writer that loses a race with reserve set gets the
// next commit: the winner, at the head, is told to wait (and is next),
// the loser commits, and then it is the winner's turn. A plain Commit
// ignores turns.
func TestCommitTurns(t *testing.T) {
	a, b, epoch := twoNodes(t)
	commitInTurn(t, a, "a", true, epoch, 0, redisrelay.Committed, create(0, "x", 1, ""))
	// b planned at 0 too and loses, without reserving: no turn.
	commitInTurn(t, b, "b", false, epoch, 0, redisrelay.Conflict, rec(0, "b", 1, "b"))
	commitInTurn(t, a, "a", true, epoch, 1, redisrelay.Committed, rec(1, "a", 1, "a"))
	// b loses again, now reserving: the next commit is b's.
	res := commitInTurn(t, b, "b", true, epoch, 1, redisrelay.Conflict, rec(1, "b", 1, "b"))
	if res.Version != 2 || len(res.Missed) != 1 || res.Missed[0].Src != "a" {
		t.Fatalf("conflict = %+v, want head 2 with a's record", res)
	}
	// a is told to wait; it does not reserve, so it is not next.
	commitInTurn(t, a, "a", false, epoch, 2, redisrelay.Wait, rec(2, "a", 2, "a"))
	res = commitInTurn(t, a, "a", true, epoch, 2, redisrelay.Wait, rec(2, "a", 2, "a"))
	if res.Version != 2 || res.Wait <= 0 || res.Wait > time.Minute {
		t.Fatalf("wait = %+v, want head 2 and the turn's time left", res)
	}
	commitInTurn(t, b, "b", true, epoch, 2, redisrelay.Committed, rec(2, "b", 1, "b"))
	// a waited, so the turn after b's commit is a's: b waits now.
	commitInTurn(t, b, "b", true, epoch, 3, redisrelay.Wait, rec(3, "b", 2, "b"))
	commitInTurn(t, a, "a", true, epoch, 3, redisrelay.Committed, rec(3, "a", 2, "a"))
	// b waited and is next.
	commitInTurn(t, a, "a", true, epoch, 4, redisrelay.Wait, rec(4, "a", 3, "a"))
	commitInTurn(t, b, "b", true, epoch, 4, redisrelay.Committed, rec(4, "b", 2, "b"))
	// Nobody waited for b's turn: it ended with b's commit.
	commitInTurn(t, a, "a", true, epoch, 5, redisrelay.Committed, rec(5, "a", 3, "a"))
	// A turn is taken again; a plain Commit does not wait for it.
	commitInTurn(t, b, "b", true, epoch, 5, redisrelay.Conflict, rec(5, "b", 3, "b"))
	commit(t, a, doc, epoch, 6, rec(6, "a", 4, "a"))
	log := readAll(t, a, doc, epoch)
	checkLog(t, log)
	if len(log) != 7 {
		t.Fatalf("log has %d records, want 7", len(log))
	}
	if s := a.Stats(); s.Waits != 3 {
		t.Errorf("a's Stats.Waits = %d, want 3", s.Waits)
	}
}

// TestCommitTurnExpires: a turn whose holder never commits (it gave up
// or was killed) stops holding the others up once its time is over.
func TestCommitTurnExpires(t *testing.T) {
	srv := redistest.StartServer(t, redistest.ServerOptions{})
	p := prefix(t)
	a := node(t, srv.Addr(), p, redisrelay.Options{})
	dead := node(t, srv.Addr(), p, redisrelay.Options{})
	epoch := initDoc(t, a, doc)
	commit(t, a, doc, epoch, 0, create(0, "x", 1, ""))
	if res, err := dead.CommitInTurn(ctx(t), doc, epoch, 0, []collab.Record{create(0, "d", 1, "")}, "dead", true, 100*time.Millisecond); err != nil || res.Outcome != redisrelay.Conflict {
		t.Fatalf("dead's commit = %+v, %v; want a conflict", res, err)
	}
	deadline := time.Now().Add(waitLimit)
	waits := 0
	for {
		res, err := a.CommitInTurn(ctx(t), doc, epoch, 1, []collab.Record{rec(1, "a", 1, "a")}, "a", true, time.Minute)
		if err != nil {
			t.Fatalf("CommitInTurn = %v", err)
		}
		if res.Outcome == redisrelay.Committed {
			break
		}
		if res.Outcome != redisrelay.Wait || res.Wait > 100*time.Millisecond || time.Now().After(deadline) {
			t.Fatalf("CommitInTurn = %+v; want to wait at most the dead writer's turn, then commit", res)
		}
		waits++
		time.Sleep(res.Wait + time.Millisecond)
	}
	if waits == 0 {
		t.Fatalf("a committed without waiting for the dead writer's turn")
	}
}

// TestClusterTwoNodesOneDocument: clients of one document on two nodes
// write as fast as they are acknowledged. No submit fails (no
// collab.ErrContended, which web answers with close 1012), every
// acknowledged (src, seq) is once in each node's op log, and the nodes
// converge.
func TestClusterTwoNodesOneDocument(t *testing.T) {
	_, nodes := startNodes(t, redistest.ServerOptions{}, nodeConfig{}, "a", "b")
	key := docKey(1)
	submit(t, nodes[0], key, createSub("setup", 1, "start"))
	acked := writeConcurrently(t, nodes, []collab.Key{key}, 3, 40)
	log := converged(t, key, nodes...)
	checkAcked(t, acked, log)
	for _, n := range nodes {
		t.Logf("%s: %d commit conflicts, %+v", n.name, n.hub.Stats().CommitConflicts, n.cluster.Stats())
	}
}

// TestClusterTurnHolderKilled: the node holding a document's turn dies
// without committing (what kill -9 leaves in Redis: a turn naming a
// writer that never comes back). The other node's writes wait for the
// turn to run out at most, then go on; every acknowledged edit is in the
// log once and the surviving node and a new one converge.
func TestClusterTurnHolderKilled(t *testing.T) {
	r, nodes := startNodes(t, redistest.ServerOptions{AOF: true}, nodeConfig{}, "a", "b")
	key := docKey(1)
	submit(t, nodes[0], key, createSub("setup", 1, "start"))
	acked := writeConcurrently(t, nodes, []collab.Key{key}, 2, 10)
	nodes[0].stop(t)
	// The killed node lost a race and took the turn (once a turn left
	// from the writes above ran out), then died.
	dead := node(t, r.srv.Addr(), r.prefix, redisrelay.Options{NodeID: "dead"})
	raw := newClient(t, r.srv.Addr())
	turnKey := r.prefix + "{notes.d1}:turn"
	deadline := time.Now().Add(waitLimit)
	for {
		h, ok, err := dead.Head(ctx(t), key)
		if err != nil || !ok || h.Version == 0 {
			t.Fatalf("Head = %+v, %v, %v", h, ok, err)
		}
		res, err := dead.CommitInTurn(ctx(t), key, h.Epoch, h.Version-1, []collab.Record{rec(h.Version-1, "dead", 1, "d")}, "dead", true, 3*time.Second)
		if err != nil || res.Outcome != redisrelay.Conflict {
			t.Fatalf("dead's commit = %+v, %v; want a conflict", res, err)
		}
		if holder, _ := raw.HGet(ctx(t), turnKey, "h").Result(); holder == "dead" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the dead writer never took the turn")
		}
		time.Sleep(10 * time.Millisecond)
	}
	for id := range writeConcurrentlyAs(t, "more-", nodes[1:], []collab.Key{key}, 3, 10) {
		acked[id] = true
	}
	c := r.startNode(t, "c", nodeConfig{})
	log := converged(t, key, nodes[1], c)
	checkAcked(t, acked, log)
	if w := nodes[1].cluster.Stats().TurnWaits; w == 0 {
		t.Errorf("b never waited for the dead writer's turn")
	}
}
