package redisrelay_test

import (
	"errors"
	"testing"
	"time"

	"github.com/coedit/coedit/collab"
	"github.com/coedit/coedit/internal/redistest"
)

// TestOpsAheadCostOneSyncAWhile: an op made on a version this node has
// not heard of makes its session sync with Redis before refusing it (the
// version may be another node's, its doorbell on the way); when the sync
// does not bring it, the next such ops within aheadWait are refused
// without a round trip, so a client sending far-future versions cannot
// make its document's session wait on Redis for every op.
func TestOpsAheadCostOneSyncAWhile(t *testing.T) {
	_, nodes := startNodes(t, redistest.ServerOptions{}, nodeConfig{}, "a")
	a := nodes[0]
	key := createDoc(t, a, "")
	ahead := func(seq uint64) {
		t.Helper()
		_, err := a.hub.SubmitWait(ctx(t), key, editSub("x", seq, 1000, insertAt(0, "y")))
		if !errors.Is(err, collab.ErrVersionAhead) {
			t.Fatalf("submit at version 1000 of a document at 1 = %v, want ErrVersionAhead", err)
		}
	}
	syncs := func() uint64 { return a.hub.Stats().Syncs }
	before := syncs()
	ahead(1)
	ahead(2)
	if got := syncs() - before; got != 1 {
		t.Fatalf("two ops far ahead, one after the other, made %d syncs, want 1", got)
	}
	time.Sleep(150 * time.Millisecond)
	ahead(3)
	if got := syncs() - before; got != 2 {
		t.Fatalf("after aheadWait another op far ahead made %d syncs in all, want 2", got)
	}
}
