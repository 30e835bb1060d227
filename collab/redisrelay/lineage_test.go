package redisrelay_test

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/coedit/coedit/collab"
	"github.com/coedit/coedit/collab/redisrelay"
	"github.com/coedit/coedit/internal/redistest"
)

// TestLineageSurvivesTwoReseeds: node a is down while Redis comes back
// empty twice and node b reseeds the document each time. The second
// seed's lineage used to name only the epoch before it, so a, back, could
// not find its epoch: it took its whole log for replaced and offered it
// again from version 0, which failed for ever once Redis's stream no
// longer held version 0 (snapEvery 2), or forked at 0 and noted its
// clients as holding a replaced history (snapEvery 0). a's log is the
// cluster's history: it must open the document and take its client's
// next op.
//
// With restart set, b itself restarts between the two losses, so the
// second seed's lineage comes from b's store (the epoch note), not from
// a session that stayed open.
func TestLineageSurvivesTwoReseeds(t *testing.T) {
	for _, tc := range []struct {
		snapEvery int
		restart   bool
	}{{0, false}, {2, false}, {2, true}} {
		snapEvery := tc.snapEvery
		t.Run(fmt.Sprintf("snapEvery=%d,restart=%v", snapEvery, tc.restart), func(t *testing.T) {
			r, nodes := startNodes(t, redistest.ServerOptions{}, nodeConfig{tailLen: 4, snapEvery: snapEvery}, "a", "b")
			a, b := nodes[0], nodes[1]
			key := createDoc(t, a, "")
			for i := uint64(1); i < 10; i++ {
				submit(t, a, key, editSub("x", i+1, i, insertAt(0, "y")))
			}
			if s := fetch(t, b, key); s.Version != 10 {
				t.Fatalf("b: %+v, want version 10", s)
			}
			path := a.path
			a.stop(t)
			for i := 0; i < 2; i++ {
				if i == 1 && tc.restart {
					bPath := b.path
					b.stop(t)
					b = r.startNode(t, "b2", nodeConfig{path: bPath, tailLen: 4, snapEvery: snapEvery, retryFor: time.Second})
				}
				r.srv.RestartEmpty()
				what := fmt.Sprintf("b's fetch after Redis's restart %d", i+1)
				waitFor(t, what, func() bool {
					_, err := b.hub.FetchWait(ctx(t), key)
					if err != nil {
						t.Logf("%s: %v", what, err)
					}
					return err == nil
				})
			}
			if st := b.cluster.Stats(); !tc.restart && st.Seeds != 2 || tc.restart && st.Seeds != 1 {
				t.Fatalf("b seeded %d times since it started", st.Seeds)
			}
			a2 := r.startNode(t, "a2", nodeConfig{path: path, tailLen: 4, snapEvery: snapEvery, retryFor: time.Second})
			s, err := a2.hub.FetchWait(ctx(t), key)
			if err != nil || s.Version != 10 {
				t.Fatalf("a, back, fetches %+v, %v; want version 10", s, err)
			}
			if st := a2.cluster.Stats(); st.Forks != 0 {
				t.Errorf("a forked %d times, though its log is the cluster's history", st.Forks)
			}
			if _, err := a2.hub.SubmitWait(ctx(t), key, editSub("x", 11, 10, insertAt(0, "z"))); err != nil {
				t.Fatalf("client x submits at 10 on a: %v", err)
			}
		})
	}
}

// TestRenewByAnotherEpochsNodeNotesRedisLineage: node a, back after
// Redis restarted twice (b's first commit after the first renewed the
// document's epoch), renews the epoch b left with its own first commit.
// a's note must then be the lineage the renew script wrote (a's next
// seed, should Redis lose everything, carries it on). It used to be
// worked out again from a's own lineage, which left b's epoch's
// ancestors out. (a now reads b's epoch before it renews, and so knows
// its lineage; TestRenewByANodeOfAnotherHistoryOffersItsOps checks the
// note of a node that renews an epoch it does not follow.)
func TestRenewByAnotherEpochsNodeNotesRedisLineage(t *testing.T) {
	r, a, b, key := fiveOnBoth(t)
	first := head(t, b, key).Epoch
	path := a.path
	a.stop(t)

	r.srv.Restart()
	submitRetrying(t, b, key, editSub("z", 1, 5, insertAt(0, "b")))
	if h := head(t, b, key); h.Epoch == first {
		t.Fatalf("b's commit after Redis's restart left the epoch %s", first)
	}
	b.stop(t)
	r.srv.Restart()

	a2 := r.startNode(t, "a2", nodeConfig{path: path, retryFor: time.Second})
	if s, err := a2.hub.FetchWait(ctx(t), key); err != nil || s.Version != 6 {
		t.Fatalf("a, back, fetches %+v, %v; want version 6", s, err)
	}
	submitRetrying(t, a2, key, editSub("x", 6, 6, insertAt(0, "a")))
	h := head(t, a2, key)
	if len(h.Lineage) != 2 || h.Lineage[1].Epoch != first {
		t.Fatalf("Redis's lineage after a's renewal: %+v, want two epochs, the first %s last", h.Lineage, first)
	}
	note, err := a2.db.Epoch(ctx(t), key)
	if epoch, lineage := redisrelay.DecodeNote(note); err != nil || epoch != h.Epoch || !slices.Equal(lineage, h.Lineage) {
		t.Fatalf("a's epoch note = %q (%v); want epoch %s and Redis's lineage %+v", note, err, h.Epoch, h.Lineage)
	}
	if st := a2.cluster.Stats(); st.Renewals != 1 {
		t.Errorf("a renewed %d times, want 1", st.Renewals)
	}
}

// head reads the document's head in Redis through n's relay.
func head(t *testing.T, n *hubNode, key collab.Key) redisrelay.Head {
	t.Helper()
	h, ok, err := n.relay.Head(ctx(t), key)
	if err != nil || !ok {
		t.Fatalf("%s: Head(%s) = %+v, %v, %v", n.name, key, h, ok, err)
	}
	return h
}

// TestRenewByANodeOfAnotherHistoryOffersItsOps: node a commits an op at
// version 5 while b is down, and stops; Redis comes back empty, b seeds
// the document from its store (head 5) and commits another op at 5, and
// stops; then Redis restarts with its data. a, back, finds Redis's epoch
// restarted and renews it, though it never followed it: its op at 5 is
// not that history's. a must offer it again (a fork at 5), not take its
// log for the cluster's; a's acknowledged op used to be lost so, with a
// and b holding different records at version 5.
func TestRenewByANodeOfAnotherHistoryOffersItsOps(t *testing.T) {
	r, a, b, key := fiveOnBoth(t)
	aPath, bPath := a.path, b.path
	b.stop(t)
	submit(t, a, key, editSub("x", 6, 5, insertAt(0, "A")))
	a.stop(t)

	r.srv.RestartEmpty()
	b2 := r.startNode(t, "b2", nodeConfig{path: bPath, retryFor: time.Second})
	if s := fetch(t, b2, key); s.Version != 5 {
		t.Fatalf("b, back on an empty Redis: %+v, want version 5", s)
	}
	submit(t, b2, key, editSub("z", 1, 5, insertAt(0, "B")))
	b2.stop(t)
	r.srv.Restart()

	a2 := r.startNode(t, "a2", nodeConfig{path: aPath, retryFor: time.Second})
	s, err := a2.hub.FetchWait(ctx(t), key)
	if err != nil || s.Version != 7 {
		t.Fatalf("a, back, fetches %+v, %v; want version 7 (its op offered again after b's)", s, err)
	}
	if st := a2.cluster.Stats(); st.Forks != 1 || st.Renewals != 1 {
		t.Errorf("a: %+v, want 1 renewal and 1 fork (at version 5)", st)
	}
	h := head(t, a2, key)
	note, err := a2.db.Epoch(ctx(t), key)
	if epoch, lineage := redisrelay.DecodeNote(note); err != nil || epoch != h.Epoch || !slices.Equal(lineage, h.Lineage) || len(lineage) < 2 {
		t.Fatalf("a's epoch note = %q (%v); want epoch %s and Redis's lineage %+v", note, err, h.Epoch, h.Lineage)
	}
	b3 := r.startNode(t, "b3", nodeConfig{path: bPath, retryFor: time.Second})
	log := converged(t, key, a2, b3)
	hasOnce(t, log, "x", 6)
	hasOnce(t, log, "z", 1)
}

// fiveOnBoth starts nodes a and b on a Redis with AOF (appendfsync
// always) and makes a document five versions long on a ("yyyy", from src
// x, seqs 1 to 5), which b has fetched.
func fiveOnBoth(t *testing.T) (r *testRedis, a, b *hubNode, key collab.Key) {
	t.Helper()
	return fiveOnBothWith(t, nodeConfig{retryFor: time.Second})
}

// fiveOnBothWith is fiveOnBoth with both nodes started with cfg.
func fiveOnBothWith(t *testing.T, cfg nodeConfig) (r *testRedis, a, b *hubNode, key collab.Key) {
	t.Helper()
	r, nodes := startNodes(t, redistest.ServerOptions{AOF: true}, cfg, "a", "b")
	a, b = nodes[0], nodes[1]
	key = createDoc(t, a, "")
	for i := uint64(1); i < 5; i++ {
		submit(t, a, key, editSub("x", i+1, i, insertAt(0, "y")))
	}
	if s := fetch(t, b, key); s.Version != 5 {
		t.Fatalf("b: %+v, want version 5", s)
	}
	return r, a, b, key
}

// TestLineageOutlastsManyRestarts: a node down while Redis restarts many
// times (each restart renews the document's epoch, even where Redis lost
// nothing) and the document moves on past what Redis keeps of its
// records still finds its epoch in the lineage when it comes back, and
// takes Redis's history as its own continuation. With a lineage of 8
// such a node found no known history past the 8th restart, replaced its
// log as if its records were lost, and marked their authors as holding a
// replaced history cluster-wide: their next ops were refused with
// ERR_HISTORY_REPLACED on every node (the chaos test's finding).
func TestLineageOutlastsManyRestarts(t *testing.T) {
	const restarts = 12
	cfg := nodeConfig{retryFor: time.Second, tailLen: 4, snapEvery: 2}
	r, a, b, key := fiveOnBothWith(t, cfg)
	path := a.path
	a.stop(t)
	v := uint64(5)
	for i := range restarts {
		r.srv.Restart()
		for j := range 6 {
			submitRetrying(t, b, key, editSub("z", uint64(6*i+j+1), v, insertAt(0, "b")))
			v++
		}
	}
	cfg.path = path
	a2 := r.startNode(t, "a2", cfg)
	if s, err := a2.hub.FetchWait(ctx(t), key); err != nil || s.Version != v {
		t.Fatalf("a, back, fetches %+v, %v; want version %d", s, err, v)
	}
	if st := a2.cluster.Stats(); st.Forks != 0 || st.Lost != 0 {
		t.Fatalf("a, back after %d restarts, forked %d times and counted %d records lost; want none", restarts, st.Forks, st.Lost)
	}
	// x, a's author, still writes anywhere.
	submitRetrying(t, b, key, editSub("x", 6, v, insertAt(0, "x")))
}
