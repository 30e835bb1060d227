package collab_test

import (
	"errors"
	"testing"

	"github.com/coedit/coedit/collab"
)

func delSub(src string, seq, v uint64) collab.Submission {
	return collab.Submission{Src: src, Seq: seq, Version: v, HasVersion: true, Kind: collab.OpDelete}
}

// TestDeleteOfMissingOrDeletedDocIsRefused: a delete of a document that
// was never created answers ErrDocMissing, a delete of a deleted one
// ErrDocDeleted, and neither stores anything; they used to be committed,
// so the document showed in listings and its op log failed validation
// (issue 9, item 3). An edit of a deleted document answers ErrDocDeleted
// (it answered ErrDocMissing), also when made at the version after the
// delete, and the document can be created again.
func TestDeleteOfMissingOrDeletedDocIsRefused(t *testing.T) {
	h, db := newHub(t, collab.Options{})
	never := collab.Key{Collection: "gone", ID: "never"}
	for _, v := range []uint64{0, 1} {
		_, err := h.SubmitWait(ctxBG, never, delSub("a", v+1, v))
		want := collab.ErrDocMissing
		if v > 0 {
			want = collab.ErrVersionAhead
		}
		if !errors.Is(err, want) {
			t.Fatalf("delete of a never created document at v %d = %v, want %v", v, err, want)
		}
	}
	if recs, err := db.Ops(ctxBG, never, 0, 10); err != nil || len(recs) != 0 {
		t.Fatalf("store holds %d records of the never created document (%v), want none", len(recs), err)
	}

	mustSubmit(t, h, docX, createSub("a", 1, "x"))
	mustSubmit(t, h, docX, delSub("a", 2, 1))
	for _, tc := range []struct {
		name string
		sub  collab.Submission
	}{
		{"delete at the head", delSub("b", 1, 2)},
		{"delete before the first delete", delSub("b", 2, 1)},
		{"edit at the head", editSub("b", 3, 2, ins(0, "y"))},
		{"edit before the delete", editSub("b", 4, 1, ins(0, "y"))},
	} {
		if _, err := h.SubmitWait(ctxBG, docX, tc.sub); !errors.Is(err, collab.ErrDocDeleted) {
			t.Fatalf("%s of a deleted document = %v, want ErrDocDeleted", tc.name, err)
		}
	}
	if got := mustFetch(t, h, docX); got != (collab.Snapshot{Version: 2}) {
		t.Fatalf("deleted document = %+v, want version 2 without a type", got)
	}

	infos, err := h.List(ctxBG, "gone", 0)
	if err != nil || len(infos) != 0 {
		t.Fatalf("List(gone) = %+v, %v; want nothing", infos, err)
	}

	// Created again (ShareDB allows it), at the version after the delete.
	res := mustSubmit(t, h, docX, collab.Submission{Src: "c", Seq: 1, Version: 2, HasVersion: true, Kind: collab.OpCreate, Type: "text-unicode", Data: "again"})
	if res.Version != 2 {
		t.Fatalf("create after delete at version %d, want 2", res.Version)
	}
	mustSubmit(t, h, docX, delSub("c", 2, 3))
	if recs, err := db.Ops(ctxBG, docX, 0, 10); err != nil || len(recs) != 4 {
		t.Fatalf("store holds %d records (%v), want create, delete, create, delete", len(recs), err)
	}
}
