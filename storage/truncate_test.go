package storage

import (
	"context"
	"testing"

	"github.com/coedit/coedit/collab"
)

// TestTruncateDropsRecordsSnapshotsAndSeqs: after Truncate(from) the
// store holds the document as it was at from: records, latest snapshot
// (those past from are gone), seq table, metadata and indexes (the
// cleanup's Check verifies them), and a commit at from continues it.
func TestTruncateDropsRecordsSnapshotsAndSeqs(t *testing.T) {
	ctx := context.Background()
	db := openTest(t, Options{Sync: SyncNone, MilestoneEvery: 2, SeqWindow: 4})
	key := collab.Key{Collection: "c", ID: "d"}
	mustCommit(t, db, key, []collab.Record{createRec(0, "a", 1, "")}, nil)
	mustCommit(t, db, key, edits(1, 4, "a"), &collab.Snapshot{Version: 3, Type: "http://sharejs.org/types/text-unicode", Data: "e2e1"})
	mustCommit(t, db, key, []collab.Record{editRec(5, "b", 7, "x")}, nil)
	mustCommit(t, db, key, edits(6, 3, "c"), &collab.Snapshot{Version: 9, Type: "http://sharejs.org/types/text-unicode", Data: "e8e7e6xe4e3e2e1"})

	if err := db.Truncate(ctx, key, 5); err != nil {
		t.Fatalf("Truncate(5) = %v", err)
	}
	st := mustLoad(t, db, key)
	if st.Snapshot.Version != 3 || len(st.Ops) != 2 || st.Ops[1].Version != 4 {
		t.Fatalf("Load after Truncate(5) = snapshot %d and %d ops, want snapshot 3 and ops 3..4", st.Snapshot.Version, len(st.Ops))
	}
	if _, ok := st.Seqs["b"]; ok {
		t.Errorf("seq table still names b, whose only record was dropped: %v", st.Seqs)
	}
	if _, ok := st.Seqs["c"]; ok {
		t.Errorf("seq table still names c: %v", st.Seqs)
	}
	if e := st.Seqs["a"]; e != (collab.SeqEntry{Seq: 5, Version: 4}) {
		t.Errorf("seq entry of a = %+v, want seq 5 at version 4", e)
	}
	if got := mustOps(t, db, key, 0, 100); len(got) != 5 {
		t.Fatalf("Ops after Truncate(5) = %d records, want 5", len(got))
	}
	// The document goes on from version 5 with other records.
	mustCommit(t, db, key, []collab.Record{editRec(5, "d", 1, "y")}, nil)
	if got := mustOps(t, db, key, 5, 6); len(got) != 1 || got[0].Src != "d" {
		t.Fatalf("record 5 after Truncate and Commit = %+v, want d's", got)
	}
	// Truncating at or past the head changes nothing.
	if err := db.Truncate(ctx, key, 6); err != nil {
		t.Fatalf("Truncate(head) = %v", err)
	}
	if err := db.Truncate(ctx, collab.Key{Collection: "c", ID: "never"}, 0); err != nil {
		t.Fatalf("Truncate of an unknown document = %v", err)
	}
	if got := mustOps(t, db, key, 0, 100); len(got) != 6 {
		t.Fatalf("Ops after Truncate(head) = %d records, want 6", len(got))
	}
}

// TestTruncateToZeroLeavesAnEmptyDocument: dropping every record leaves a
// document that loads as never created and can be created again.
func TestTruncateToZeroLeavesAnEmptyDocument(t *testing.T) {
	ctx := context.Background()
	db := openTest(t, Options{Sync: SyncNone})
	key := collab.Key{Collection: "c", ID: "d"}
	mustCommit(t, db, key, []collab.Record{createRec(0, "a", 1, "hi"), editRec(1, "a", 2, "x")}, &collab.Snapshot{Version: 2, Type: "http://sharejs.org/types/text-unicode", Data: "xhi"})
	if err := db.Truncate(ctx, key, 0); err != nil {
		t.Fatalf("Truncate(0) = %v", err)
	}
	st := mustLoad(t, db, key)
	if st.Snapshot != (collab.Snapshot{}) || len(st.Ops) != 0 || len(st.Seqs) != 0 {
		t.Fatalf("Load after Truncate(0) = %+v, want the empty document", st)
	}
	mustCommit(t, db, key, []collab.Record{createRec(0, "b", 1, "again")}, nil)
}

// TestEpochNote: the epoch note is kept per document, survives a reopen,
// and is not written for a document without records.
func TestEpochNote(t *testing.T) {
	ctx := context.Background()
	path := tempPath(t)
	db, err := Open(path, Options{Sync: SyncNone})
	if err != nil {
		t.Fatal(err)
	}
	key := collab.Key{Collection: "c", ID: "d"}
	if set, err := db.SetEpoch(ctx, key, "e1"); set || err != nil {
		t.Fatalf("SetEpoch without records = %v, %v; want false, nil", set, err)
	}
	mustCommit(t, db, key, []collab.Record{createRec(0, "a", 1, "")}, nil)
	if set, err := db.SetEpoch(ctx, key, "e2"); !set || err != nil {
		t.Fatalf("SetEpoch = %v, %v; want true, nil", set, err)
	}
	db.Close()
	db = openAt(t, path, Options{Sync: SyncNone})
	if e, err := db.Epoch(ctx, key); e != "e2" || err != nil {
		t.Fatalf("Epoch after reopen = %q, %v; want e2", e, err)
	}
	if e, err := db.Epoch(ctx, collab.Key{Collection: "c", ID: "other"}); e != "" || err != nil {
		t.Fatalf("Epoch of an unknown document = %q, %v; want empty", e, err)
	}
}
