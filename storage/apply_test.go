package storage

import (
	"context"
	"testing"
	"time"

	"github.com/coedit/coedit/collab"
)

// TestTimedApplyLeavesQuietDocuments: a timed apply moves into bbolt a
// document with a page of records waiting (here with a truncate and
// commits after it), and leaves one with a single small commit until
// its time comes, holding the file's applied point below that commit. A
// crash then leaves frames past the applied point that the busy
// document has had already: Open must replay them for the quiet one
// only.
func TestTimedApplyLeavesQuietDocuments(t *testing.T) {
	const every = 200 * time.Millisecond // a quiet document waits 2 s
	db := openTest(t, Options{ApplyEvery: every})
	ctx := context.Background()
	quiet := collab.Key{Collection: "c", ID: "quiet"}
	busy := collab.Key{Collection: "c", ID: "busy"}
	start := time.Now()
	mustCommit(t, db, quiet, []collab.Record{createRec(0, "q", 1, "hello")}, nil)
	mustCommit(t, db, busy, []collab.Record{createRec(0, "b", 1, "")}, nil)
	for v := uint64(1); v < 100; v += 11 {
		mustCommit(t, db, busy, edits(v, 11, "b"), nil)
	}
	if err := db.Truncate(ctx, busy, 50); err != nil {
		t.Fatal(err)
	}
	for v := uint64(50); v < 150; v += 10 {
		mustCommit(t, db, busy, edits(v, 10, "c"), nil)
	}
	// Applied, and noted as applied (a read of a document whose truncate
	// is still pending would have the applier catch up with everything).
	waitFor(t, "the busy document in bbolt", func() bool {
		head, ok := inBolt(t, db, busy)
		return ok && head == 150 && !db.pendingFor(docKey(busy))
	})
	if _, ok := inBolt(t, db, quiet); ok {
		t.Fatalf("the quiet document is in bbolt %v after its one commit, want it left for %v", time.Since(start), applyDocTicks*every)
	}
	db.pmu.Lock()
	point, next := db.applied, db.nextLSN
	db.pmu.Unlock()
	if point != 0 {
		t.Fatalf("applied point %d with the quiet document's frame 1 unapplied, want 0 (next LSN %d)", point, next)
	}
	wantQuiet, wantBusy := mustLoad(t, db, quiet), mustLoad(t, db, busy)
	wantOps := mustOps(t, db, busy, 0, 150)

	crashed := openAt(t, crashCopy(t, db), Options{})
	if got := mustLoad(t, crashed, quiet); !equalState(got, wantQuiet) {
		t.Errorf("quiet document after replay = %+v, want %+v", got, wantQuiet)
	}
	if got := mustLoad(t, crashed, busy); !equalState(got, wantBusy) {
		t.Errorf("busy document after replay = %+v, want %+v", got, wantBusy)
	}
	if got := mustOps(t, crashed, busy, 0, 150); !equalRecords(got, wantOps) {
		t.Errorf("busy document's records after replay differ from before the crash")
	}
	if err := crashed.Check(ctx); err != nil {
		t.Errorf("Check after replay = %v", err)
	}

	// In its time the quiet document is applied too, and with it every
	// frame.
	waitFor(t, "every frame applied", func() bool {
		db.pmu.Lock()
		defer db.pmu.Unlock()
		return db.applied == next-1
	})
	if waited := time.Since(start); waited < applyDocTicks*every {
		t.Errorf("every frame applied after %v, want the quiet document left for %v", waited, applyDocTicks*every)
	}
	if _, ok := inBolt(t, db, quiet); !ok {
		t.Errorf("every frame applied, but the quiet document is not in bbolt")
	}
	db.pmu.Lock()
	left := len(db.unapplied) + len(db.pending)
	db.pmu.Unlock()
	if left != 0 {
		t.Errorf("%d frames and documents still held once every frame is applied", left)
	}
}

func equalState(a, b collab.DocState) bool {
	return a.Snapshot == b.Snapshot && equalRecords(a.Ops, b.Ops)
}
