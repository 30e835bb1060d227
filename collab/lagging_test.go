package collab_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/coedit/coedit/collab"
	"github.com/coedit/coedit/storage"
)

// checkStream fails unless c's ops and acks came in strictly increasing
// versions, each version once: the Conn contract.
func checkStream(t *testing.T, c *testConn) {
	t.Helper()
	var trace []string
	bad := ""
	last := int64(-1)
	for _, e := range c.snapshotEvents() {
		var v int64
		switch e.kind {
		case "op":
			v = int64(e.rec.Version)
			trace = append(trace, fmt.Sprintf("op%d", v))
		case "ack":
			v = int64(e.res.Version)
			trace = append(trace, fmt.Sprintf("ACK%d", v))
		default:
			continue
		}
		if bad == "" && v <= last {
			bad = fmt.Sprintf("version %d after %d", v, last)
		}
		last = max(last, v)
	}
	if bad != "" {
		t.Fatalf("conn %s: %s; stream: %v", c.src, bad, trace)
	}
}

// TestLaggingSubscriberIsNotSentItsRecordsAgain: a subscriber's op made
// at a version below the window goes to the readers, which rebase it over
// the records since; the subscriber was sent each of them as a broadcast
// already, and is not sent them again (it used to get versions 1 to 20
// twice, then its ack).
func TestLaggingSubscriberIsNotSentItsRecordsAgain(t *testing.T) {
	h, _ := newHub(t, collab.Options{Window: 4, WindowBytes: 1 << 20})
	mustSubmit(t, h, docX, createSub("", 0, "ab"))
	c := newConn("C")
	c.subscribe(h, docX, nil)
	c.waitN(t, "snapshot", 1) // at 1
	for i := range 20 {
		mustSubmit(t, h, docX, editSub("B", uint64(i+1), uint64(i+1), ins(0, "b")))
	}
	c.waitN(t, "op", 20) // versions 1..20 as broadcasts
	// C made its op at version 1, before it had read the broadcasts.
	c.submit(h, docX, editSub("C", 1, 1, ins(2, "C")))
	if a := c.waitN(t, "ack", 1)[0]; a.err != nil || a.res.Version != 21 {
		t.Fatalf("ack = %+v, want version 21", a)
	}
	checkStream(t, c)
}

// TestOldSubmitWaitsForTheGroupBeforeIt: two submits of one subscribed
// connection in one inbox batch, the second made below the window. The
// second used to go to the readers (its connection out of subs) while
// the first was planned: the first's group then sent the connection a
// record it had, and the readers sent old records after its ack, from
// another goroutine. Now it is admitted after the group.
func TestOldSubmitWaitsForTheGroupBeforeIt(t *testing.T) {
	store := &blockingCommitStore{entered: make(chan struct{}, 1), release: make(chan struct{})}
	db, _ := openStore(t, storage.SyncNone)
	store.DB = db
	h := startHub(t, collab.Options{Store: store, Window: 4, WindowBytes: 1 << 20})
	mustSubmit(t, h, docX, createSub("", 0, "ab"))
	for i := range 20 {
		mustSubmit(t, h, docX, editSub("B", uint64(i+1), uint64(i+1), ins(0, "b")))
	}
	c := newConn("C")
	c.subscribe(h, docX, nil)
	c.waitN(t, "snapshot", 1) // at 21
	store.block.Store(true)
	t.Cleanup(func() { store.once.Do(func() { close(store.release) }) })
	b := newConn("B")
	b.submit(h, docX, editSub("B", 21, 21, ins(0, "b")))
	<-store.entered
	c.submit(h, docX, editSub("C", 1, 21, ins(0, "x")))
	c.submit(h, docX, editSub("C", 2, 1, ins(2, "y")))
	time.Sleep(20 * time.Millisecond) // both queued behind the held commit
	store.block.Store(false)
	store.once.Do(func() { close(store.release) })
	for _, a := range c.waitN(t, "ack", 2) {
		if a.err != nil {
			t.Fatalf("ack = %+v", a)
		}
	}
	checkStream(t, c)
}
