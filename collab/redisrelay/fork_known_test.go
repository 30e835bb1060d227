package redisrelay_test

import (
	"testing"

	"github.com/coedit/coedit/collab"
	"github.com/coedit/coedit/collab/redisrelay"
	"github.com/coedit/coedit/collab/redisrelay/redisrelaytest"
	"github.com/coedit/coedit/internal/redistest"
)

// TestForkForgetsWhatTheOldHistoryHeld: after a fork whose records
// offered again were lost (they cannot follow a delete another node
// made meanwhile), the session's head is below the head it had. The
// doorbells of the new history below that old head must still reach
// its subscribers: the link used to keep the old head as known and drop
// them. (A failover that lost a's records 3..6 and the other node's renew
// and delete are made on Redis directly, without doorbells.)
func TestForkForgetsWhatTheOldHistoryHeld(t *testing.T) {
	r, nodes := startNodes(t, redistest.ServerOptions{}, nodeConfig{}, "a")
	a := nodes[0]
	key := createDoc(t, a, "")
	for i := uint64(1); i < 7; i++ {
		submit(t, a, key, editSub("x", i+1, i, insertAt(0, "y")))
	}
	raw := newClient(t, r.srv.Addr())
	base := redisrelay.KeyBase(r.prefix, key)
	c := ctx(t)
	e1, err := raw.HGet(c, base+"meta", "e").Result()
	if err != nil {
		t.Fatal(err)
	}
	redisrelaytest.LoseTail(t, raw, r.prefix, key, 3, 7)
	quiet := node(t, r.srv.Addr(), r.prefix, redisrelay.Options{PubSub: redisrelay.PubSubOff})
	e2, _, err := quiet.Renew(c, key, e1, nil)
	if err != nil {
		t.Fatal(err)
	}
	commit(t, quiet, key, e2, 3, collab.Record{Version: 3, Src: "z", Seq: 1, Kind: collab.OpDelete, Time: 1})
	if s := fetch(t, a, key); s.Version != 4 {
		t.Fatalf("a after the fork: %+v, want version 4 (the delete)", s)
	}
	if st := a.cluster.Stats(); st.Forks != 1 {
		t.Fatalf("a forked %d times, want 1", st.Forks)
	}
	conn := newTestConn("w")
	four := uint64(4)
	done := make(chan error, 1)
	a.hub.Subscribe(key, conn, &four, func(_ collab.Snapshot, err error) { done <- err })
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	loud := node(t, r.srv.Addr(), r.prefix, redisrelay.Options{})
	commit(t, loud, key, e2, 4, create(4, "z", 2, ""))
	commit(t, loud, key, e2, 5, rec(5, "z", 3, "q"))
	got := conn.waitOps(t, key, 6)
	if len(got) != 2 || got[0].Version != 4 || got[1].Version != 5 {
		t.Fatalf("a's subscriber at version 4 was sent %d ops, want versions 4 and 5", len(got))
	}
}
