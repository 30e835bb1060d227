package collab_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/coedit/coedit/collab"
	"github.com/coedit/coedit/storage"
)

func regDoc(id string) collab.Key { return collab.Key{Collection: "reg", ID: id} }

// withUnreadableHistory returns a hub over a store it then closes, with
// live sessions for regDoc("live1") .. regDoc("liveN") (created, so a
// subscribe from the head needs no store) and regDoc("big"), whose first
// ops are out of the in-memory window: a subscribe to big from version 1
// fails with ErrOpsMissing, a store error the session reports.
func withUnreadableHistory(t *testing.T, opts collab.Options, live int) *collab.Hub {
	t.Helper()
	opts.WindowBytes = 1 << 20
	opts.Logger = slog.New(slog.DiscardHandler) // the close's snapshots fail, as they should
	h, db := newHub(t, opts)
	big := regDoc("big")
	mustSubmit(t, h, big, createSub("", 0, ""))
	chunk := strings.Repeat("x", 400<<10)
	for i := range 6 {
		mustSubmit(t, h, big, editSub("", 0, uint64(i+1), ins(0, chunk)))
	}
	for i := 1; i <= live; i++ {
		mustSubmit(t, h, regDoc("live"+string(rune('0'+i))), createSub("", 0, "hi"))
	}
	if err := db.Close(); err != nil && !errors.Is(err, storage.ErrClosed) {
		t.Fatal(err)
	}
	return h
}

// subscribeErr subscribes c to key and waits for the reply's error.
func subscribeErr(t *testing.T, h *collab.Hub, c *testConn, key collab.Key, from *uint64) error {
	t.Helper()
	n := c.count("snapshot")
	c.subscribe(h, key, from)
	return c.waitN(t, "snapshot", n+1)[n].err
}

// TestFailedSubscribeLeavesNoRegistration: a subscribe that fails, in
// the session (a store error) or before it reaches one (a closed hub),
// leaves no registration behind: the hub tracks no connection, and the
// failed document does not count against Options.MaxSubscriptions.
func TestFailedSubscribeLeavesNoRegistration(t *testing.T) {
	t.Run("store error", func(t *testing.T) {
		h := withUnreadableHistory(t, collab.Options{MaxSubscriptions: 1}, 1)
		c := newConn("c")
		if err := subscribeErr(t, h, c, regDoc("big"), u64(1)); !errors.Is(err, collab.ErrOpsMissing) {
			t.Fatalf("subscribe from 1 with the store closed = %v, want ErrOpsMissing", err)
		}
		if n := h.Stats().Conns; n != 0 {
			t.Fatalf("Stats().Conns = %d after a failed subscribe, want 0", n)
		}
		if err := subscribeErr(t, h, c, regDoc("live1"), nil); err != nil {
			t.Fatalf("subscribe after a failed one, limit 1 = %v, want the slot free", err)
		}
		if n := h.Stats().Conns; n != 1 {
			t.Fatalf("Stats().Conns = %d after a subscribe, want 1", n)
		}
	})
	t.Run("re-subscribe fails", func(t *testing.T) {
		// The session drops a connection whose subscribe fails, even one
		// that was subscribed already; the registry follows it.
		h := withUnreadableHistory(t, collab.Options{}, 0)
		c := newConn("c")
		if err := subscribeErr(t, h, c, regDoc("big"), nil); err != nil {
			t.Fatal(err)
		}
		if err := subscribeErr(t, h, c, regDoc("big"), u64(1)); !errors.Is(err, collab.ErrOpsMissing) {
			t.Fatalf("re-subscribe from 1 with the store closed = %v, want ErrOpsMissing", err)
		}
		if n := h.Stats().Conns; n != 0 {
			t.Fatalf("Stats().Conns = %d after a failed re-subscribe, want 0", n)
		}
	})
	t.Run("hub closed", func(t *testing.T) {
		h, _ := newHub(t, collab.Options{})
		ctx, cancel := context.WithTimeout(ctxBG, waitLimit)
		defer cancel()
		if err := h.Close(ctx); err != nil {
			t.Fatal(err)
		}
		c := newConn("c")
		if err := subscribeErr(t, h, c, regDoc("a"), nil); !errors.Is(err, collab.ErrClosed) {
			t.Fatalf("subscribe on a closed hub = %v, want ErrClosed", err)
		}
		if n := h.Stats().Conns; n != 0 {
			t.Fatalf("Stats().Conns = %d after a subscribe the closed hub refused, want 0", n)
		}
	})
}

// TestSubscribeBulkPartialFailure: in a bulk subscribe, a document that
// fails is unregistered and the others stay subscribed.
func TestSubscribeBulkPartialFailure(t *testing.T) {
	h := withUnreadableHistory(t, collab.Options{MaxSubscriptions: 2}, 3)
	c := newConn("c")
	errs := make(chan error, 2)
	err := h.SubscribeBulk([]collab.BulkDoc{{Key: regDoc("big"), From: u64(1)}, {Key: regDoc("live1")}}, c,
		func(i int, _ collab.Snapshot, err error) {
			if i == 0 {
				errs <- err
			} else if err != nil {
				errs <- err
			}
		})
	if err != nil {
		t.Fatal(err)
	}
	if err := <-errs; !errors.Is(err, collab.ErrOpsMissing) {
		t.Fatalf("bulk entry big = %v, want ErrOpsMissing", err)
	}
	// big's slot is free, live1's is taken: one more fits, then no more.
	if err := subscribeErr(t, h, c, regDoc("live2"), nil); err != nil {
		t.Fatalf("subscribe to a second document, limit 2 = %v", err)
	}
	if err := subscribeErr(t, h, c, regDoc("live3"), nil); !errors.Is(err, collab.ErrTooManySubscriptions) {
		t.Fatalf("subscribe to a third document, limit 2 = %v, want ErrTooManySubscriptions", err)
	}
	select {
	case err := <-errs:
		t.Fatalf("bulk entry live1 = %v, want success", err)
	default:
	}
}

// TestSubscriptionLimit: Options.MaxSubscriptions bounds a connection's
// documents and, separately, its presence channels; joining again what
// it joined is free, leaving frees a slot, a bulk subscribe joins all or
// none, and untyped presence posted without subscribing is not counted.
func TestSubscriptionLimit(t *testing.T) {
	h, _ := newHub(t, collab.Options{MaxSubscriptions: 2})
	c := newConn("c")
	for _, id := range []string{"a", "b", "a"} {
		if err := subscribeErr(t, h, c, regDoc(id), nil); err != nil {
			t.Fatalf("subscribe %s = %v", id, err)
		}
	}
	if err := subscribeErr(t, h, c, regDoc("c"), nil); !errors.Is(err, collab.ErrTooManySubscriptions) {
		t.Fatalf("third document = %v, want ErrTooManySubscriptions", err)
	}
	done := make(chan error, 1)
	h.Unsubscribe(regDoc("a"), c, func(err error) { done <- err })
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := subscribeErr(t, h, c, regDoc("c"), nil); err != nil {
		t.Fatalf("subscribe after an unsubscribe = %v", err)
	}

	// Presence channels have their own count.
	presence := func(ch string) error {
		h.SubscribePresence(ch, c, func(err error) { done <- err })
		return <-done
	}
	for _, ch := range []string{"p1", "p2", "p1"} {
		if err := presence(ch); err != nil {
			t.Fatalf("SubscribePresence(%s) with 2 documents joined = %v", ch, err)
		}
	}
	if err := presence("p3"); !errors.Is(err, collab.ErrTooManySubscriptions) {
		t.Fatalf("third channel = %v, want ErrTooManySubscriptions", err)
	}
	// Posting on a channel counts as joining it (issue 9, item 7): on a
	// joined one it is free, on a new one past the limit it is refused.
	for _, ch := range []string{"p1", "free1"} {
		c.presence(h, collab.PresenceUpdate{Channel: ch, ID: "me", Seq: 1, Raw: []byte(`1`)})
	}
	acks := c.waitN(t, "presence-ack", 2)
	if acks[0].err != nil || !errors.Is(acks[1].err, collab.ErrTooManySubscriptions) {
		t.Fatalf("untyped presence on a joined channel, then on a new one = %v, %v; want nil, ErrTooManySubscriptions", acks[0].err, acks[1].err)
	}
	h.UnsubscribePresence("p1", c, func(err error) { done <- err })
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := presence("p3"); err != nil {
		t.Fatalf("SubscribePresence after leaving a channel = %v", err)
	}

	// Bulk: all or none, and no reply when refused.
	d := newConn("d")
	bulk := func(ids ...string) error {
		docs := make([]collab.BulkDoc, len(ids))
		for i, id := range ids {
			docs[i] = collab.BulkDoc{Key: regDoc(id)}
		}
		replies := make(chan error, len(ids))
		err := h.SubscribeBulk(docs, d, func(_ int, _ collab.Snapshot, err error) { replies <- err })
		if err != nil {
			return err
		}
		for range ids {
			if err := <-replies; err != nil {
				return err
			}
		}
		return nil
	}
	if err := bulk("x", "y", "z"); !errors.Is(err, collab.ErrTooManySubscriptions) {
		t.Fatalf("bulk of 3, limit 2 = %v, want ErrTooManySubscriptions", err)
	}
	if n := h.Stats().Conns; n != 1 {
		t.Fatalf("Stats().Conns = %d after a refused bulk, want 1 (c only)", n)
	}
	if err := bulk("x", "y"); err != nil {
		t.Fatalf("bulk of 2 = %v", err)
	}
	if err := bulk("y", "x"); err != nil {
		t.Fatalf("bulk of 2 already joined = %v", err)
	}
	if err := bulk("y", "z"); !errors.Is(err, collab.ErrTooManySubscriptions) {
		t.Fatalf("bulk with one new past the limit = %v, want ErrTooManySubscriptions", err)
	}

	h.Disconnect(c)
	h.Disconnect(d)
	if n := h.Stats().Conns; n != 0 {
		t.Fatalf("Stats().Conns = %d after both disconnected, want 0", n)
	}
}
