package collab_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/coedit/coedit/collab"
	"github.com/coedit/coedit/storage"
)

// A subscribed connection whose second subscribe to the document fails
// before it reaches the session (the inbox is full, or the connection is
// closing) is still the session's subscriber. Its Disconnect must reach
// the session: it used to drop the registration with the failure, so the
// session kept sending a closed connection every op and never stopped.

// subscribedWhileHeld starts a hub with opts over a store whose commit
// can be held, subscribes c to docX, and holds the session in the commit
// of b's submit.
func subscribedWhileHeld(t *testing.T, opts collab.Options) (h *collab.Hub, store *blockingCommitStore, c, b *testConn) {
	t.Helper()
	store = &blockingCommitStore{entered: make(chan struct{}, 1), release: make(chan struct{})}
	db, _ := openStore(t, storage.SyncNone)
	store.DB = db
	opts.Store = store
	h = startHub(t, opts)
	mustSubmit(t, h, docX, createSub("", 0, "hello"))
	c = newConn("c")
	c.subscribe(h, docX, nil)
	c.waitN(t, "snapshot", 1)
	store.block.Store(true)
	t.Cleanup(func() { store.once.Do(func() { close(store.release) }) })
	b = newConn("b")
	b.submit(h, docX, editSub("b", 1, 1, ins(0, "x")))
	<-store.entered // the session is in Store.Commit
	return h, store, c, b
}

func TestBusyResubscribeStillDisconnects(t *testing.T) {
	h, store, c, b := subscribedWhileHeld(t, collab.Options{MaxInbox: 2, IdleTimeout: 20 * time.Millisecond})
	b.fetch(h, docX, nil)
	b.fetch(h, docX, nil) // the inbox is full
	c.subscribe(h, docX, nil)
	if e := c.waitN(t, "snapshot", 2)[1]; !errors.Is(e.err, collab.ErrBusy) {
		t.Fatalf("resubscribe = %+v, want ErrBusy", e)
	}
	store.block.Store(false)
	store.once.Do(func() { close(store.release) })
	b.waitN(t, "snapshot", 2)

	// web closes the socket on ErrBusy; its finish calls Disconnect.
	c.close()
	h.Disconnect(c)
	before := c.count("op")
	mustSubmit(t, h, docX, editSub("z", 1, 2, ins(0, "z")))
	waitSessions(t, h, 0)
	if got := c.count("op"); got != before {
		t.Errorf("the disconnected connection was sent %d more ops", got-before)
	}
}

func TestClosingResubscribeStillDisconnects(t *testing.T) {
	h, store, c, b := subscribedWhileHeld(t, collab.Options{IdleTimeout: 20 * time.Millisecond})
	c.subscribe(h, docX, nil) // queued behind the commit
	c.close()                 // the socket goes away: the session drops the subscribe
	store.block.Store(false)
	store.once.Do(func() { close(store.release) })
	b.waitN(t, "ack", 1)
	mustFetch(t, h, docX) // the resubscribe has been answered by now
	h.Disconnect(c)       // web's finish
	waitSessions(t, h, 0)
}

// waitSessions waits until h runs n sessions (idle ones stop after the
// hub's IdleTimeout).
func waitSessions(t *testing.T, h *collab.Hub, n int) {
	t.Helper()
	waitFor(t, fmt.Sprintf("%d sessions after the last subscriber left (IdleTimeout 20ms)", n), func() bool { return h.Stats().Sessions == n })
}
