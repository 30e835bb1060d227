package web

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/coedit/coedit/collab"
	"github.com/coedit/coedit/ot"
)

// TestCatchUpsPassSlowReaders: connections that subscribe far behind and
// then read nothing must not hold the hub's catch-up readers (4) from a
// client that reads. Each reader used to wait, in the slow connection's
// WaitRoom, until that connection's write timeout dropped it (a minute
// here), so five such connections stalled every catch-up on the node;
// now a reader turns to the next catch-up after a short wait for room.
// (A liveness check: the bound is many times what the catch-up takes.)
func TestCatchUpsPassSlowReaders(t *testing.T) {
	ts := startServer(t, Options{Logger: quiet, SendQueueMessages: 20, WriteTimeout: 2 * time.Minute}, collab.Options{})
	key := collab.Key{Collection: "docs", ID: "big"}
	const n = 1500
	big := strings.Repeat("x", 8<<10)
	var recs []collab.Record
	for v := uint64(0); v < n; v++ {
		r := collab.Record{Version: v, Src: "builder", Seq: v + 1, Kind: collab.OpEdit, Time: 1,
			Op: ot.Op{{Kind: ot.KindInsert, N: len(big), Text: big}}}
		switch {
		case v == 0:
			r = collab.Record{Version: 0, Src: "builder", Seq: 1, Kind: collab.OpCreate, Type: ot.URI, Time: 1}
		case v%2 == 0:
			r.Op = ot.Op{{Kind: ot.KindDelete, N: len(big)}}
		}
		recs = append(recs, r)
	}
	if err := ts.store.Commit(context.Background(), key, recs, &collab.Snapshot{Version: n, Type: ot.URI, Data: big}); err != nil {
		t.Fatal(err)
	}
	for range 5 {
		slow := ts.connect(t)
		slow.sendf(`{"a":"s","c":"docs","d":"big","v":1}`)
	}
	time.Sleep(300 * time.Millisecond) // their catch-ups fill their queues
	c := ts.connect(t)
	c.sendf(`{"a":"s","c":"docs","d":"big","v":1}`)
	next := uint64(1)
	for {
		m, err := c.tryRecv(20 * time.Second)
		if err != nil {
			t.Fatalf("catching up behind five connections that do not read: %v after version %d of %d", err, next, n)
		}
		if m["a"] == "s" {
			break
		}
		if m["a"] != "op" || m["v"] != float64(next) {
			t.Fatalf("got %v, want the op at version %d", m, next)
		}
		next++
	}
	if next != n {
		t.Fatalf("subscribed at version %d, want %d", next, n)
	}
}
