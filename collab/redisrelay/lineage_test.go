package redisrelay_test

import (
	"fmt"
	"testing"
	"time"

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
				deadline := time.Now().Add(waitLimit)
				for {
					if _, err := b.hub.FetchWait(ctx(t), key); err == nil {
						break
					} else if time.Now().After(deadline) {
						t.Fatalf("b's fetch after Redis's restart %d: %v", i+1, err)
					}
					time.Sleep(50 * time.Millisecond)
				}
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
