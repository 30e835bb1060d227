package redisrelay_test

import (
	"errors"
	"log/slog"
	"runtime"
	"testing"
	"time"

	"github.com/coedit/coedit/collab"
	"github.com/coedit/coedit/collab/redisrelay"
	"github.com/coedit/coedit/internal/redistest"
)

// TestSubscribeDelivers: a node's handlers get each commit's records
// with the epoch, a Resync once subscribed, and nothing after Close.
func TestSubscribeDelivers(t *testing.T) {
	a, b, epoch := twoNodes(t)
	in1, in2 := newInbox(), newInbox()
	sub1, err := b.Subscribe(ctx(t), doc, in1.handler())
	if err != nil {
		t.Fatalf("Subscribe = %v", err)
	}
	in1.wait(t, "the first resync", func(in *inbox) bool { return in.resyncs == 1 })
	sub2, err := b.Subscribe(ctx(t), doc, in2.handler())
	if err != nil {
		t.Fatalf("second Subscribe = %v", err)
	}
	in2.wait(t, "the second handler's resync", func(in *inbox) bool { return in.resyncs == 1 })

	want := []collab.Record{create(0, "a", 1, ""), rec(1, "a", 2, "x"), rec(2, "a", 3, "y")}
	commit(t, a, doc, epoch, 0, want[0])
	commit(t, a, doc, epoch, 1, want[1:]...)
	for _, in := range []*inbox{in1, in2} {
		in.wait(t, "three records", func(in *inbox) bool { return len(in.recs) == 3 })
		if !sameRecords(in.recs, want) || len(in.epochs) != 2 || in.epochs[0] != epoch || in.epochs[1] != epoch {
			t.Fatalf("delivered %v under %v, want %v under %s", in.recs, in.epochs, want, epoch)
		}
	}
	sub1.Close()
	sub1.Close()
	commit(t, a, doc, epoch, 3, rec(3, "a", 4, "z"))
	in2.wait(t, "the fourth record", func(in *inbox) bool { return len(in.recs) == 4 })
	// Both handlers were called from the same goroutine in turn, so the
	// closed one would have had the record by now.
	in1.mu.Lock()
	defer in1.mu.Unlock()
	if len(in1.recs) != 3 {
		t.Fatalf("closed subscription got %d records, want 3", len(in1.recs))
	}
	sub2.Close()
}

// TestSubscriberResyncsAfterClientKill: when Redis kills the pub/sub
// connection, go-redis reconnects and resubscribes, every subscribed
// document's handler gets Resync, and doorbells flow again.
func TestSubscriberResyncsAfterClientKill(t *testing.T) {
	srv := redistest.StartServer(t, redistest.ServerOptions{})
	p := prefix(t)
	a := node(t, srv.Addr(), p, redisrelay.Options{})
	b := node(t, srv.Addr(), p, redisrelay.Options{})
	other := collab.Key{Collection: "notes", ID: "b"}
	epoch := initDoc(t, a, doc)
	initDoc(t, a, other)
	in, inOther := newInbox(), newInbox()
	for k, in := range map[collab.Key]*inbox{doc: in, other: inOther} {
		if _, err := b.Subscribe(ctx(t), k, in.handler()); err != nil {
			t.Fatalf("Subscribe(%v) = %v", k, err)
		}
		in.wait(t, "the first resync", func(in *inbox) bool { return in.resyncs == 1 })
	}
	commit(t, a, doc, epoch, 0, create(0, "a", 1, ""))
	in.wait(t, "the first record", func(in *inbox) bool { return len(in.recs) == 1 })

	killed, err := newClient(t, srv.Addr()).ClientKillByFilter(ctx(t), "TYPE", "pubsub").Result()
	if err != nil || killed != 1 {
		t.Fatalf("CLIENT KILL TYPE pubsub = %d, %v; want one connection killed", killed, err)
	}
	in.wait(t, "a resync after the kill", func(in *inbox) bool { return in.resyncs == 2 })
	inOther.wait(t, "a resync after the kill", func(in *inbox) bool { return in.resyncs == 2 })
	commit(t, a, doc, epoch, 1, rec(1, "a", 2, "x"))
	in.wait(t, "the record after the kill", func(in *inbox) bool { return len(in.recs) == 2 })
	if s := b.Stats(); s.Resyncs != 4 {
		t.Errorf("Stats.Resyncs = %d, want 4", s.Resyncs)
	}
}

// TestEpochChangeIsAnnounced: Init and Renew publish a doorbell with
// the new epoch and the records Renew put back.
func TestEpochChangeIsAnnounced(t *testing.T) {
	srv := redistest.StartServer(t, redistest.ServerOptions{})
	p := prefix(t)
	a := node(t, srv.Addr(), p, redisrelay.Options{})
	in := newInbox()
	if _, err := a.Subscribe(ctx(t), doc, in.handler()); err != nil {
		t.Fatalf("Subscribe = %v", err)
	}
	in.wait(t, "the first resync", func(in *inbox) bool { return in.resyncs == 1 })
	epoch := initDoc(t, a, doc)
	in.wait(t, "the init doorbell", func(in *inbox) bool { return len(in.epochs) == 1 })
	if in.epochs[0] != epoch || len(in.recs) != 0 {
		t.Fatalf("init doorbell = %v %v, want epoch %s and no records", in.epochs, in.recs, epoch)
	}
	commit(t, a, doc, epoch, 0, create(0, "a", 1, ""))
	extra := rec(1, "a", 2, "x")
	newEpoch, head, err := a.Renew(ctx(t), doc, epoch, []collab.Record{extra})
	if err != nil || newEpoch == epoch || head != 2 {
		t.Fatalf("Renew = %s, %d, %v; want a new epoch at head 2", newEpoch, head, err)
	}
	in.wait(t, "the renew doorbell", func(in *inbox) bool { return len(in.epochs) == 3 })
	if in.epochs[2] != newEpoch || !sameRecords(in.recs[1:], []collab.Record{extra}) {
		t.Fatalf("renew doorbell = %v %v, want the record under %s", in.epochs, in.recs, newEpoch)
	}
}

// TestCloseStopsGoroutines: after Close, the subscriber's goroutines
// (and go-redis's for its PubSub) are gone, also after a reconnect.
func TestCloseStopsGoroutines(t *testing.T) {
	srv := redistest.StartServer(t, redistest.ServerOptions{})
	c := newClient(t, srv.Addr())
	c.Ping(ctx(t))
	base := runtime.NumGoroutine()
	r, err := redisrelay.New(redisrelay.Options{Client: c, Prefix: prefix(t), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatalf("New = %v", err)
	}
	in := newInbox()
	for _, id := range []string{"a", "b", "c"} {
		if _, err := r.Subscribe(ctx(t), collab.Key{Collection: "notes", ID: id}, in.handler()); err != nil {
			t.Fatalf("Subscribe = %v", err)
		}
	}
	in.wait(t, "three resyncs", func(in *inbox) bool { return in.resyncs == 3 })
	newClient(t, srv.Addr()).ClientKillByFilter(ctx(t), "TYPE", "pubsub")
	in.wait(t, "three more resyncs", func(in *inbox) bool { return in.resyncs == 6 })
	r.Close()
	if _, err := r.Subscribe(ctx(t), doc, in.handler()); !errors.Is(err, redisrelay.ErrClosed) {
		t.Fatalf("Subscribe after Close = %v, want ErrClosed", err)
	}
	deadline := time.Now().Add(waitLimit)
	for runtime.NumGoroutine() > base {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			t.Fatalf("%d goroutines after Close, %d before New:\n%s", runtime.NumGoroutine(), base, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
}
