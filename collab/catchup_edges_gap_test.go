package collab_test

import (
	"context"
	"errors"
	"github.com/coedit/coedit/storage"
	"slices"
	"sync"
	"testing"

	"github.com/coedit/coedit/collab"
)

// TestRefusedOldSubmitLeavesNoGap: a subscriber submits an
// op made before the window; while the readers rebase it, B deletes and
// re-creates the document (22, 23). The op is then refused at the head
// (ErrDocDeleted). The subscriber joins the stream again with 22 and 23
// sent (it used to be sent 24 right after 21).
func TestRefusedOldSubmitLeavesNoGap(t *testing.T) {
	store := newGateStore(t)
	h, c := subscribedAt22(t, store, 1)
	release := store.hold(t)
	c.submit(h, docX, editSub("A", 2, 2, ins(0, "a"))) // a new op made at 2, before the window
	<-store.entered
	mustSubmit(t, h, docX, delSub("B", 21, 22))       // 22, while A is out
	mustSubmit(t, h, docX, createSub("B", 22, "new")) // 23
	release()
	if a := c.waitN(t, "ack", 1)[0]; !errors.Is(a.err, collab.ErrDocDeleted) {
		t.Fatalf("old submit = %+v, want ErrDocDeleted", a)
	}
	mustSubmit(t, h, docX, editSub("B", 23, 24, ins(0, "b"))) // 24, a broadcast
	c.waitN(t, "op", 1)
	mustSubmit(t, h, docX, editSub("B", 24, 25, ins(0, "b"))) // 25, a broadcast
	waitFor(t, "op 25", func() bool { v := c.opVersions(); return len(v) > 0 && v[len(v)-1] == 25 })
	if got, want := c.opVersions(), []uint64{22, 23, 24, 25}; !slices.Equal(got, want) {
		t.Fatalf("subscriber A was sent %v, want %v (every version once, no gap)", got, want)
	}
}

// TestStaleSeqOldSubmitLeavesNoGap: as above, with the op
// refused as ErrStaleSeq after the readers' scan (a seq below its src's
// last one, made before the window).
func TestStaleSeqOldSubmitLeavesNoGap(t *testing.T) {
	store := newGateStore(t)
	h, c := subscribedAt22(t, store, 5)
	release := store.hold(t)
	c.submit(h, docX, editSub("A", 3, 1, ins(0, "a"))) // seq 3 < 5, never committed
	<-store.entered
	mustSubmit(t, h, docX, editSub("B", 21, 22, ins(0, "b"))) // 22
	mustSubmit(t, h, docX, editSub("B", 22, 23, ins(0, "b"))) // 23
	release()
	if a := c.waitN(t, "ack", 1)[0]; !errors.Is(a.err, collab.ErrStaleSeq) {
		t.Fatalf("stale submit = %+v, want ErrStaleSeq", a)
	}
	mustSubmit(t, h, docX, editSub("B", 23, 24, ins(0, "b"))) // 24
	waitFor(t, "op 24", func() bool { v := c.opVersions(); return len(v) > 0 && v[len(v)-1] == 24 })
	if got, want := c.opVersions(), []uint64{22, 23, 24}; !slices.Equal(got, want) {
		t.Fatalf("subscriber A was sent %v, want %v (every version once, no gap)", got, want)
	}
}

// blockFirstOps is a real store whose first Ops read from version from
// waits until released.
type blockFirstOps struct {
	*storage.DB
	from    uint64
	once    sync.Once
	entered chan struct{}
	release chan struct{}
}

func (s *blockFirstOps) Ops(ctx context.Context, key collab.Key, from, to uint64) ([]collab.Record, error) {
	if from == s.from {
		first := false
		s.once.Do(func() { first = true })
		if first {
			s.entered <- struct{}{}
			<-s.release
		}
	}
	return s.DB.Ops(ctx, key, from, to)
}

// TestResendFoundInWindowAfterCatchUpLeavesNoGap: a client reconnects
// (C2, same src, subscribed) and resends its op made at version 2, before
// the window, while its old connection C1 still has the original in
// flight. C2's catch-up read is slow; C1's original commits at 22, then B
// commits 23. C2's resend is then found at 22 among the window's records
// and acknowledged there, and C2 joins the stream again sent 23 (it
// used to miss it).
func TestResendFoundInWindowAfterCatchUpLeavesNoGap(t *testing.T) {
	db, _ := openStore(t, storage.SyncNone)
	store := &blockFirstOps{DB: db, from: 2, entered: make(chan struct{}, 1), release: make(chan struct{})}
	h, c2 := subscribedAt22(t, store, 1)
	op := editSub("A", 2, 2, ins(0, "a"))
	c2.submit(h, docX, op) // the resend: its read waits
	<-store.entered
	c1 := newConn("A")
	c1.submit(h, docX, op) // the original, on the old connection
	if a := c1.waitN(t, "ack", 1)[0]; a.err != nil || a.res.Duplicate || a.res.Version != 22 {
		t.Fatalf("original = %+v, want committed at 22", a)
	}
	mustSubmit(t, h, docX, editSub("B", 21, 23, ins(0, "b"))) // 23
	close(store.release)
	if a := c2.waitN(t, "ack", 1)[0]; a.err != nil || !a.res.Duplicate || a.res.Version != 22 {
		t.Fatalf("resend = %+v, want a duplicate at 22", a)
	}
	mustSubmit(t, h, docX, editSub("B", 22, 24, ins(0, "b"))) // 24
	waitFor(t, "op 24", func() bool { v := c2.opVersions(); return len(v) > 0 && v[len(v)-1] == 24 })
	if got, want := c2.opVersions(), []uint64{23, 24}; !slices.Equal(got, want) {
		t.Fatalf("C2 was sent %v, want %v (its ack at 22, then every version once)", got, want)
	}
}

// TestResendFoundInSecondReadRoundSendsEachOnce: as above, but the
// window moves past the catch-up's first round while it is out, so the
// readers read a second round from cu.head on, send those records, and
// find the original there. The session acknowledges the resend and sends
// only what follows its record (it used to send every record from
// cu.head on again: C2 got 22..24 twice and its own op at 25 as a
// broadcast after its ack).
func TestResendFoundInSecondReadRoundSendsEachOnce(t *testing.T) {
	db, _ := openStore(t, storage.SyncNone)
	store := &blockFirstOps{DB: db, from: 2, entered: make(chan struct{}, 1), release: make(chan struct{})}
	h, c2 := subscribedAt22(t, store, 1)
	op := editSub("A", 2, 2, ins(0, "a"))
	c2.submit(h, docX, op) // the resend: its first read waits
	<-store.entered
	seq := uint64(21)
	for range 3 { // 22, 23, 24
		mustSubmit(t, h, docX, editSub("B", seq, seq+1, ins(0, "b")))
		seq++
	}
	c1 := newConn("A")
	c1.submit(h, docX, op) // the original, on the old connection
	if a := c1.waitN(t, "ack", 1)[0]; a.err != nil || a.res.Duplicate || a.res.Version != 25 {
		t.Fatalf("original = %+v, want committed at 25", a)
	}
	for range 20 { // 26..45: the window moves past 22
		mustSubmit(t, h, docX, editSub("B", seq, seq+1, ins(0, "b")))
		seq++
	}
	close(store.release)
	if a := c2.waitN(t, "ack", 1)[0]; a.err != nil || !a.res.Duplicate || a.res.Version != 25 {
		t.Fatalf("resend = %+v, want a duplicate at 25", a)
	}
	mustSubmit(t, h, docX, editSub("B", seq, seq+1, ins(0, "b"))) // 46
	waitFor(t, "op 46", func() bool { v := c2.opVersions(); return len(v) > 0 && v[len(v)-1] == 46 })
	var want []uint64
	for v := uint64(22); v <= 46; v++ {
		if v != 25 {
			want = append(want, v)
		}
	}
	if got := c2.opVersions(); !slices.Equal(got, want) {
		t.Fatalf("C2 was sent %v,\nwant %v (every version once, its own at 25 only as its ack)", got, want)
	}
}

// subscribedAt22 starts a hub over store whose window holds 4 versions,
// brings the document to version 22 (a create, A's op at 1 with seq
// aSeq, then twenty of B's), and subscribes a connection of src A at the
// head: its submits made at an old version go through the readers.
func subscribedAt22(t *testing.T, store collab.Store, aSeq uint64) (*collab.Hub, *testConn) {
	t.Helper()
	h := startHub(t, collab.Options{Store: store, Window: 4, WindowBytes: 1 << 20})
	mustSubmit(t, h, docX, createSub("", 0, "ab"))
	mustSubmit(t, h, docX, editSub("A", aSeq, 1, ins(2, "!")))
	for i := range 20 {
		mustSubmit(t, h, docX, editSub("B", uint64(i+1), uint64(i+2), ins(0, "b")))
	}
	c := newConn("A")
	c.subscribe(h, docX, nil)
	c.waitN(t, "snapshot", 1) // at 22
	return h, c
}
