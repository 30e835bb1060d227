package collab_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/coedit/coedit/collab"
	"github.com/coedit/coedit/storage"
)

// fatalStore is a real store that can be made to fail the way that stops
// a session: a commit that reports another writer got ahead
// (ErrVersionConflict), after which the session reloads, and a load that
// fails, so the reload cannot recover.
type fatalStore struct {
	*storage.DB
	broken atomic.Bool
}

var errUnreadable = errors.New("store unreadable")

func (s *fatalStore) Commit(ctx context.Context, key collab.Key, recs []collab.Record, snap *collab.Snapshot) error {
	if s.broken.Load() {
		return fmt.Errorf("another writer: %w", collab.ErrVersionConflict)
	}
	return s.DB.Commit(ctx, key, recs, snap)
}

func (s *fatalStore) Load(ctx context.Context, key collab.Key) (collab.DocState, error) {
	if s.broken.Load() {
		return collab.DocState{}, errUnreadable
	}
	return s.DB.Load(ctx, key)
}

// TestFailedSessionDropsSubscribers: a session that stops on a fatal
// error tells each subscriber (Conn.Drop, with ErrSessionFailed) instead
// of dropping it silently, clears the presence it held for the others,
// and forgets those subscriptions in the Hub's registry, so they no
// longer count against the connection's limit. Once the store recovers,
// a new subscribe is served by a new session (issue 9, item 4).
func TestFailedSessionDropsSubscribers(t *testing.T) {
	db, _ := openStore(t, storage.SyncNone)
	store := &fatalStore{DB: db}
	h := startHub(t, collab.Options{Store: store, MaxSubscriptions: 1})
	mustSubmit(t, h, docX, createSub("", 0, "hello"))
	c, watcher := newConn("c"), newConn("w")
	c.subscribe(h, docX, nil)
	c.waitN(t, "snapshot", 1)
	ch := docX.Collection + "." + docX.ID
	subscribePresence(t, h, watcher, ch)
	c.presence(h, collab.PresenceUpdate{Channel: ch, ID: "p1", Doc: &docX, Version: 1, Type: "text-unicode", Raw: []byte(`{"x":1}`)})
	c.waitN(t, "presence-ack", 1)
	watcher.waitN(t, "presence", 1)

	store.broken.Store(true)
	_, err := h.SubmitWait(ctxBG, docX, editSub("a", 1, 1, ins(0, "x")))
	if !errors.Is(err, collab.ErrSessionFailed) {
		t.Fatalf("submit whose commit stops the session = %v, want ErrSessionFailed", err)
	}
	drop := c.waitN(t, "drop", 1)[0]
	if drop.key != docX || !errors.Is(drop.err, collab.ErrSessionFailed) {
		t.Fatalf("subscriber told %+v, want a drop of %s with ErrSessionFailed", drop, docX)
	}
	if got := watcher.waitN(t, "presence", 2)[1].pres; !got.Cleared() || got.Src != "c" {
		t.Fatalf("presence watcher got %+v, want c's presence cleared", got)
	}

	store.broken.Store(false)
	// The registry forgot docX: with a limit of one document, c may
	// subscribe to another one.
	docY := collab.Key{Collection: "docs", ID: "y"}
	c.subscribe(h, docY, nil)
	if e := c.waitN(t, "snapshot", 2)[1]; e.err != nil {
		t.Fatalf("subscribe to another document after the drop = %v, want it to fit the limit of 1", e.err)
	}
	if n := h.Stats().Conns; n != 2 {
		t.Fatalf("Stats().Conns = %d, want 2 (c on y, the watcher on its channel)", n)
	}
}
