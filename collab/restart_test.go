package collab_test

import (
	"context"
	"testing"

	"github.com/coedit/coedit/collab"
	"github.com/coedit/coedit/storage"
)

// TestResendAfterRestart: after the node restarts on the same store, a
// resend of every kind of op (edit, delete with and without a version,
// create with v null on a document that exists again) is acknowledged at
// its original version and applied nowhere.
func TestResendAfterRestart(t *testing.T) {
	db, path := openStore(t, storage.SyncAlways)
	h := collab.NewHub(collab.Options{Store: db})
	del := func(src string, seq, v uint64, hasV bool) collab.Submission {
		return collab.Submission{Src: src, Seq: seq, Version: v, HasVersion: hasV, Kind: collab.OpDelete}
	}
	subs := []collab.Submission{
		createSub("A", 1, "hello"),
		editSub("A", 2, 1, ins(0, "a")),
		editSub("B", 1, 2, ins(0, "b")),
		del("C", 9, 3, true),
		createSub("B", 2, "again"),
		editSub("A", 3, 5, ins(0, "z")),
	}
	for i, s := range subs {
		if res := mustSubmit(t, h, docX, s); res.Version != uint64(i) {
			t.Fatalf("submit %d committed at %d", i, res.Version)
		}
	}
	ctx, cancel := context.WithTimeout(ctxBG, waitLimit)
	defer cancel()
	if err := h.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db2, err := storage.Open(path, storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db2.Close() }) // after the Hub's cleanup closes it
	h2 := startHub(t, collab.Options{Store: db2})
	resends := []struct {
		sub  collab.Submission
		want uint64
	}{
		{subs[1], 1},
		{subs[2], 2},
		{subs[3], 3},
		{del("C", 9, 0, false), 3},
		{subs[4], 4},
		{subs[5], 5},
	}
	for _, tc := range resends {
		res, err := h2.SubmitWait(ctxBG, docX, tc.sub)
		if err != nil || !res.Duplicate || res.Version != tc.want {
			t.Errorf("resend of (%s, %d) = %+v, %v; want a duplicate at %d", tc.sub.Src, tc.sub.Seq, res, err, tc.want)
		}
	}
	if got := mustFetch(t, h2, docX); got.Data != "zagain" || got.Version != 6 {
		t.Fatalf("doc after resends = %+v, want zagain at 6", got)
	}
}
