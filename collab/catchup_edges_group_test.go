package collab_test

import (
	"slices"
	"testing"

	"github.com/coedit/coedit/collab"
	"github.com/coedit/coedit/storage"
)

// TestResendInSameGroupSendsMissedOnce: a subscribed connection
// submits an op and, while it is in flight, resends it on the same
// connection; both land in one group commit after another client's op.
// deliver sends that other op (a missed record of the group) as the
// original's missed record, and not again as the resend's (the
// subscriber used to get version 2 twice).
func TestResendInSameGroupSendsMissedOnce(t *testing.T) {
	db, _ := openStore(t, storage.SyncNone)
	store := &blockingCommitStore{DB: db, entered: make(chan struct{}, 8), release: make(chan struct{})}
	h := startHubAsIs(t, collab.Options{Store: store})
	mustSubmit(t, h, docX, createSub("", 0, "ab"))
	c := newConn("A")
	c.subscribe(h, docX, nil)
	c.waitN(t, "snapshot", 1) // at 1
	store.block.Store(true)
	done := make(chan struct{})
	go func() { mustSubmit(t, h, docX, editSub("D", 1, 1, ins(0, "d"))); close(done) }()
	<-store.entered // D's group (version 1) is being written
	store.block.Store(false)
	errs := make(chan error, 1)
	h.Submit(docX, nil, editSub("E", 1, 1, ins(0, "e")), func(_ collab.SubmitResult, err error) { errs <- err })
	op := editSub("A", 1, 1, ins(2, "!"))
	c.submit(h, docX, op)
	c.submit(h, docX, op) // the resend, on the same connection
	store.once.Do(func() { close(store.release) })
	<-done
	if err := <-errs; err != nil {
		t.Fatal(err)
	}
	acks := c.waitN(t, "ack", 2)
	if acks[0].err != nil || acks[0].res.Version != 3 || acks[1].err != nil || !acks[1].res.Duplicate || acks[1].res.Version != 3 {
		t.Fatalf("acks = %+v, want 3 and a duplicate at 3", acks)
	}
	if got, want := c.opVersions(), []uint64{1, 2}; !slices.Equal(got, want) {
		t.Fatalf("A was sent ops %v (events %v), want %v: each version once", got, c.kinds(), want)
	}
}
