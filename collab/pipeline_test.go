package collab_test

import (
	"errors"
	"testing"
	"time"

	"github.com/coedit/coedit/collab"
	"github.com/coedit/coedit/storage"
)

// heldStore holds each CommitAsync until the test lets it through, in
// the order they came.
type heldStore struct {
	*storage.DB
	calls chan func()
}

func (s *heldStore) CommitAsync(key collab.Key, recs []collab.Record, snap *collab.Snapshot, done func(error)) {
	s.calls <- func() { s.DB.CommitAsync(key, recs, snap, done) }
}

type submitted struct {
	res collab.SubmitResult
	err error
}

// TestPipelinedFailedWriteFailsLaterGroups: a pipelined group whose write
// fails (another writer of the store got ahead) fails with it the groups
// planned after it, a resend acknowledged at the failed version
// included; nothing is acknowledged early, and the session reloads from
// the store and goes on.
func TestPipelinedFailedWriteFailsLaterGroups(t *testing.T) {
	db, _ := openStore(t, storage.SyncNone)
	held := &heldStore{DB: db, calls: make(chan func(), 4)}
	h1 := startHubAsIs(t, collab.Options{Store: db})
	h2 := startHubAsIs(t, collab.Options{Store: held, Pipeline: true})
	mustSubmit(t, h1, docX, createSub("", 0, "hello"))
	if got := mustFetch(t, h2, docX); got.Version != 1 {
		t.Fatalf("h2 sees %+v, want version 1", got)
	}
	mustSubmit(t, h1, docX, editSub("a", 1, 1, ins(0, "A"))) // h2 does not know

	first, resend := make(chan submitted, 1), make(chan submitted, 1)
	h2.Submit(docX, nil, editSub("b", 1, 1, ins(5, "B")), func(r collab.SubmitResult, err error) { first <- submitted{r, err} })
	var release func()
	select {
	case release = <-held.calls:
	case <-time.After(waitLimit):
		t.Fatal("no pipelined write started")
	}
	// The resend finds b's op planned at version 1: a duplicate, in a
	// group of its own with nothing to write.
	h2.Submit(docX, nil, editSub("b", 1, 1, ins(5, "B")), func(r collab.SubmitResult, err error) { resend <- submitted{r, err} })
	select {
	case r := <-first:
		t.Fatalf("answered before its write: %+v", r)
	case r := <-resend:
		t.Fatalf("resend answered before the write it rests on: %+v", r)
	case <-time.After(50 * time.Millisecond):
	}
	release()
	for name, ch := range map[string]chan submitted{"submit": first, "resend": resend} {
		select {
		case r := <-ch:
			if !errors.Is(r.err, collab.ErrVersionConflict) {
				t.Errorf("%s = %+v, want ErrVersionConflict", name, r)
			}
		case <-time.After(waitLimit):
			t.Fatalf("%s not answered", name)
		}
	}
	if got := mustFetch(t, h2, docX); got.Data != "Ahello" || got.Version != 2 {
		t.Fatalf("h2 after the failed write = %+v, want Ahello at 2 (reloaded)", got)
	}
	go func() {
		for f := range held.calls {
			f()
		}
	}()
	t.Cleanup(func() { close(held.calls) })
	mustSubmit(t, h2, docX, editSub("b", 1, 2, ins(6, "B")))
	if got := mustFetch(t, h2, docX); got.Data != "AhelloB" {
		t.Fatalf("after the retry = %q, want AhelloB", got.Data)
	}
	if st := h2.Stats(); st.CommitErrors != 1 {
		t.Fatalf("h2 Stats().CommitErrors = %d, want 1", st.CommitErrors)
	}
}
