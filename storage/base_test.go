package storage

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/coedit/coedit/collab"
	"github.com/coedit/coedit/ot"
)

// TestInstallBase installs a base over a document with a history, and
// checks what each read answers afterwards, across a reopen of the file:
// the document from the base on, ErrBeforeBase (wrapping
// collab.ErrOpsMissing) below it, never records or snapshots of other
// versions.
func TestInstallBase(t *testing.T) {
	ctx := context.Background()
	path := tempPath(t)
	db, err := Open(path, Options{MilestoneEvery: 4, SeqWindow: 50})
	if err != nil {
		t.Fatal(err)
	}
	key := collab.Key{Collection: "notes", ID: "far"}
	mustCommit(t, db, key, []collab.Record{createRec(0, "a", 1, "hello")}, nil)
	for v := uint64(1); v < 20; v += 3 {
		s := collab.Snapshot{Version: v, Type: ot.URI, Data: "old"}
		mustCommit(t, db, key, edits(v, 3, "a"), &s)
	}
	if h := mustLoad(t, db, key); h.Snapshot.Version+uint64(len(h.Ops)) != 22 {
		t.Fatalf("head before = %d, want 22", h.Snapshot.Version+uint64(len(h.Ops)))
	}

	// Redis's state: a snapshot at 100, seqs of srcs old and recent.
	base := collab.Snapshot{Version: 100, Type: ot.URI, Data: "the text at 100"}
	seqs := map[string]collab.SeqEntry{
		"a":       {Seq: 90, Version: 89}, // within the window: kept
		"ancient": {Seq: 3, Version: 10},  // below head-SeqWindow: dropped
	}
	if err := db.InstallBase(ctx, key, collab.Snapshot{Version: 21, Type: ot.URI}, nil, "e1"); !errors.Is(err, ErrInvalidSnapshot) {
		t.Fatalf("InstallBase below the head = %v, want ErrInvalidSnapshot", err)
	}
	if err := db.InstallBase(ctx, key, base, map[string]collab.SeqEntry{"x": {Seq: 1, Version: 100}}, "e1"); !errors.Is(err, ErrInvalidRecord) {
		t.Fatalf("InstallBase with a seq entry at the base = %v, want ErrInvalidRecord", err)
	}
	if err := db.InstallBase(ctx, key, base, seqs, "epoch-1"); err != nil {
		t.Fatalf("InstallBase = %v", err)
	}
	check := func(db *DB, head uint64) {
		t.Helper()
		st := mustLoad(t, db, key)
		if st.Snapshot != base && head == 100 {
			t.Fatalf("Load snapshot = %+v, want %+v", st.Snapshot, base)
		}
		if got := st.Snapshot.Version + uint64(len(st.Ops)); got != head {
			t.Fatalf("Load head = %d, want %d", got, head)
		}
		if e, ok := st.Seqs["a"]; !ok || e.Seq < 90 {
			t.Fatalf("Load seqs = %v, want a's entry", st.Seqs)
		}
		if _, ok := st.Seqs["ancient"]; ok {
			t.Fatalf("Load seqs = %v, want no entry of ancient (below the seq floor)", st.Seqs)
		}
		if b, err := db.Base(ctx, key); err != nil || b != 100 {
			t.Fatalf("Base = %d, %v, want 100", b, err)
		}
		if e, err := db.Epoch(ctx, key); err != nil || e != "epoch-1" {
			t.Fatalf("Epoch = %q, %v, want epoch-1", e, err)
		}
		for _, from := range []uint64{0, 21, 99} {
			recs, err := db.Ops(ctx, key, from, head)
			if !errors.Is(err, ErrBeforeBase) || !errors.Is(err, collab.ErrOpsMissing) || recs != nil {
				t.Fatalf("Ops(%d, %d) = %d records, %v, want ErrBeforeBase wrapping collab.ErrOpsMissing", from, head, len(recs), err)
			}
		}
		for _, v := range []uint64{0, 1, 19, 99} {
			s, err := db.SnapshotAt(ctx, key, v)
			if !errors.Is(err, ErrBeforeBase) || !errors.Is(err, collab.ErrOpsMissing) {
				t.Fatalf("SnapshotAt(%d) = %+v, %v, want ErrBeforeBase", v, s, err)
			}
		}
		if s, err := db.SnapshotAt(ctx, key, 100); err != nil || s != base {
			t.Fatalf("SnapshotAt(100) = %+v, %v, want the base", s, err)
		}
		if recs := mustOps(t, db, key, 100, 100); len(recs) != 0 {
			t.Fatalf("Ops(100, 100) = %v, want none", recs)
		}
		if err := db.Check(ctx); err != nil {
			t.Fatalf("Check = %v", err)
		}
	}
	check(db, 100)
	if err := db.InstallBase(ctx, key, base, seqs, "epoch-1"); !errors.Is(err, ErrInvalidSnapshot) {
		t.Fatalf("InstallBase again at the head = %v, want ErrInvalidSnapshot", err)
	}
	// The log goes on from the base as any other.
	mustCommit(t, db, key, edits(100, 5, "a"), nil)
	if err := db.Commit(ctx, key, edits(99, 1, "b"), nil); !errors.Is(err, collab.ErrVersionConflict) {
		t.Fatalf("Commit below the head = %v, want ErrVersionConflict", err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db = openAt(t, path, Options{MilestoneEvery: 4, SeqWindow: 50})
	check(db, 105)
	recs := mustOps(t, db, key, 100, 105)
	if !equalRecords(recs, edits(100, 5, "a")) {
		t.Fatalf("Ops(100, 105) = %+v", recs)
	}
	if s, err := db.SnapshotAt(ctx, key, 104); err != nil || s != base {
		t.Fatalf("SnapshotAt(104) = %+v, %v, want the base to replay from", s, err)
	}
	// Truncate stops at the base.
	if err := db.Truncate(ctx, key, 99); !errors.Is(err, ErrBeforeBase) {
		t.Fatalf("Truncate(99) = %v, want ErrBeforeBase", err)
	}
	if err := db.Truncate(ctx, key, 102); err != nil {
		t.Fatalf("Truncate(102) = %v", err)
	}
	if st := mustLoad(t, db, key); st.Snapshot.Version+uint64(len(st.Ops)) != 102 {
		t.Fatalf("head after Truncate(102) = %d", st.Snapshot.Version+uint64(len(st.Ops)))
	}
	// Past the seq window, the entries kept with the base go, and the
	// seq table is the records' again.
	mustCommit(t, db, key, edits(102, 60, "c"), nil)
	st := mustLoad(t, db, key)
	if _, ok := st.Seqs["a"]; ok || len(st.Seqs) != 1 || st.Seqs["c"].Version != 161 {
		t.Fatalf("seqs after the window passed the base = %v, want only c at 161", st.Seqs)
	}
	if err := db.Check(ctx); err != nil {
		t.Fatalf("Check = %v", err)
	}
}

// TestInstallBaseNewDocument installs a base for a document the store
// never had, then a second, later base over it.
func TestInstallBaseNewDocument(t *testing.T) {
	ctx := context.Background()
	db := openTest(t, Options{})
	key := collab.Key{Collection: "wiki", ID: "new"}
	gone := collab.Snapshot{Version: 7, Type: ""} // deleted at 7
	if err := db.InstallBase(ctx, key, gone, nil, ""); err != nil {
		t.Fatalf("InstallBase = %v", err)
	}
	list, err := db.List(ctx, "wiki", 0)
	if err != nil || len(list) != 1 || list[0].Version != 7 || list[0].Type != "" {
		t.Fatalf("List = %+v, %v, want the document at 7", list, err)
	}
	mustCommit(t, db, key, []collab.Record{createRec(7, "z", 1, "again")}, nil)
	next := collab.Snapshot{Version: 50, Type: ot.URI, Data: "later"}
	if err := db.InstallBase(ctx, key, next, map[string]collab.SeqEntry{"z": {Seq: 1, Version: 7}}, "e2"); err != nil {
		t.Fatalf("second InstallBase = %v", err)
	}
	st := mustLoad(t, db, key)
	if st.Snapshot != next || len(st.Ops) != 0 || st.Seqs["z"] != (collab.SeqEntry{Seq: 1, Version: 7}) {
		t.Fatalf("Load = %+v", st)
	}
	if _, err := db.Ops(ctx, key, 7, 50); !errors.Is(err, ErrBeforeBase) {
		t.Fatalf("Ops(7, 50) = %v, want ErrBeforeBase", err)
	}
	if err := db.InstallBase(ctx, key, collab.Snapshot{}, nil, ""); !errors.Is(err, ErrInvalidSnapshot) {
		t.Fatalf("InstallBase at 0 = %v, want ErrInvalidSnapshot", err)
	}
}

// TestInstallBaseSeqsPruned checks that the seq entries kept with a base
// (naming versions below it) leave the table once the seq floor passes
// the base, and not before.
func TestInstallBaseSeqsPruned(t *testing.T) {
	ctx := context.Background()
	db := openTest(t, Options{SeqWindow: 50})
	key := collab.Key{Collection: "notes", ID: "seqs"}
	base := collab.Snapshot{Version: 100, Type: ot.URI, Data: "x"}
	seqs := map[string]collab.SeqEntry{"old": {Seq: 4, Version: 60}, "older": {Seq: 9, Version: 51}}
	if err := db.InstallBase(ctx, key, base, seqs, ""); err != nil {
		t.Fatal(err)
	}
	mustCommit(t, db, key, edits(100, 49, "c"), nil) // floor 99: below the base
	if st := mustLoad(t, db, key); len(st.Seqs) != 3 {
		t.Fatalf("seqs at head 149 = %v, want old, older and c", st.Seqs)
	}
	if err := db.Check(ctx); err != nil {
		t.Fatalf("Check = %v", err)
	}
	mustCommit(t, db, key, edits(149, 2, "c"), nil) // floor 101
	if st := mustLoad(t, db, key); len(st.Seqs) != 1 || st.Seqs["c"].Version != 150 {
		t.Fatalf("seqs at head 151 = %v, want only c", st.Seqs)
	}
}

// TestInstallBaseSnapshotStays: newer snapshots never retire the base's,
// so every version from the base on can still be rebuilt.
func TestInstallBaseSnapshotStays(t *testing.T) {
	ctx := context.Background()
	db := openTest(t, Options{MilestoneEvery: 2})
	key := collab.Key{Collection: "notes", ID: "keep"}
	base := collab.Snapshot{Version: 30, Type: ot.URI, Data: "base text"}
	if err := db.InstallBase(ctx, key, base, nil, ""); err != nil {
		t.Fatal(err)
	}
	for v := uint64(30); v < 60; v += 3 {
		s := collab.Snapshot{Version: v + 3, Type: ot.URI, Data: fmt.Sprintf("at %d", v+3)}
		mustCommit(t, db, key, edits(v, 3, "a"), &s)
	}
	if s, err := db.SnapshotAt(ctx, key, 31); err != nil || s != base {
		t.Fatalf("SnapshotAt(31) = %+v, %v, want the base", s, err)
	}
	if err := db.Check(ctx); err != nil {
		t.Fatalf("Check = %v", err)
	}
}
