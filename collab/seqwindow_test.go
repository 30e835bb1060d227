package collab_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/coedit/coedit/collab"
	"github.com/coedit/coedit/storage"
)

// TestResendAfterSeqTablePruned: the store keeps a src in the seq table
// only while its last op is among the newest SeqWindow versions. A src
// pruned from it that resends an old op after a restart (a client back
// from a long time offline) is still acknowledged at the op's original
// version, and the op is not applied twice: the session finds it among
// the ops since the resend's version, which the store keeps whole.
func TestResendAfterSeqTablePruned(t *testing.T) {
	path := filepath.Join(t.TempDir(), "coedit.db")
	db, err := storage.Open(path, storage.Options{Sync: storage.SyncNone, SeqWindow: 5})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := db.Check(ctxBG); err != nil {
			t.Errorf("store Check() after test = %v", err)
		}
		if err := db.Close(); err != nil {
			t.Errorf("store Close() = %v", err)
		}
	})
	h := collab.NewHub(collab.Options{Store: db})
	mustSubmit(t, h, docX, createSub("", 0, "hello"))
	first := mustSubmit(t, h, docX, editSub("A", 1, 1, ins(0, "A")))
	for seq := uint64(1); seq <= 20; seq++ {
		mustSubmit(t, h, docX, editSub("B", seq, seq+1, ins(0, "b")))
	}
	ctx, cancel := context.WithTimeout(ctxBG, waitLimit)
	defer cancel()
	if err := h.Close(ctx); err != nil {
		t.Fatal(err)
	}
	st, err := db.Load(ctxBG, docX)
	if err != nil {
		t.Fatal(err)
	}
	if e, ok := st.Seqs["A"]; ok {
		t.Fatalf("seq table still has A (%+v) 20 versions on, with a window of 5", e)
	}

	h2 := startHub(t, collab.Options{Store: db})
	res, err := h2.SubmitWait(ctxBG, docX, editSub("A", 1, 1, ins(0, "A")))
	if err != nil || !res.Duplicate || res.Version != first.Version {
		t.Fatalf("resend by a pruned src = %+v, %v; want a duplicate at version %d", res, err, first.Version)
	}
	if got := mustFetch(t, h2, docX); got.Version != 22 || got.Data != "bbbbbbbbbbbbbbbbbbbbAhello" {
		t.Fatalf("after the resend: %+v, want the text with one A at version 22", got)
	}
}

// TestResendFromSrcPrunedInRunningSession: with the session's seq table
// bounded (Options.SeqWindow), a src that left it while the session ran
// is still acknowledged at its op's original version when it resends:
// the session finds the op among the records since the resend's version.
func TestResendFromSrcPrunedInRunningSession(t *testing.T) {
	h, _ := newHub(t, collab.Options{SeqWindow: 5, Window: 4})
	mustSubmit(t, h, docX, createSub("", 0, "hello"))
	first := mustSubmit(t, h, docX, editSub("A", 1, 1, ins(0, "A")))
	for seq := uint64(1); seq <= 20; seq++ {
		mustSubmit(t, h, docX, editSub("B", seq, seq+1, ins(0, "b")))
	}
	res, err := h.SubmitWait(ctxBG, docX, editSub("A", 1, 1, ins(0, "A")))
	if err != nil || !res.Duplicate || res.Version != first.Version {
		t.Fatalf("resend by a pruned src = %+v, %v; want a duplicate at version %d", res, err, first.Version)
	}
	if got := mustFetch(t, h, docX); got.Version != 22 {
		t.Fatalf("after the resend: version %d, want 22", got.Version)
	}
}
