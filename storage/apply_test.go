package storage

import (
	"bufio"
	"context"
	"errors"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/coedit/coedit/collab"
	"github.com/coedit/coedit/ot"
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
	if got := mustLoad(t, crashed, quiet); !reflect.DeepEqual(got, wantQuiet) {
		t.Errorf("quiet document after replay = %+v, want %+v", got, wantQuiet)
	}
	if got := mustLoad(t, crashed, busy); !reflect.DeepEqual(got, wantBusy) {
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

// quietAndBusy opens a store whose timed applies are the test's own (no
// tick for an hour) and creates two documents in it: q, in frame 1, to
// stay quiet, and d, in frame 2.
func quietAndBusy(t *testing.T) (*DB, collab.Key, collab.Key) {
	t.Helper()
	db := openTest(t, Options{ApplyEvery: time.Hour})
	q := collab.Key{Collection: "c", ID: "q"}
	d := collab.Key{Collection: "c", ID: "d"}
	mustCommit(t, db, q, []collab.Record{createRec(0, "q", 1, "q")}, nil)
	mustCommit(t, db, d, []collab.Record{createRec(0, "d", 1, "")}, nil)
	return db, q, d
}

// persistedPoints reads the file's applied point and the highest frame
// any apply took requests from, as bbolt holds them.
func persistedPoints(t *testing.T, db *DB) (applied, reached uint64) {
	t.Helper()
	if err := db.bolt.View(func(tx *bolt.Tx) (err error) {
		meta := tx.Bucket(bucketMeta)
		if applied, _, err = readUvarint(meta, keyApplied); err != nil {
			return err
		}
		reached, _, err = readUvarint(meta, keyReached)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return applied, reached
}

// TestAppliedPointNeverGoesBack: a pending document's first is only a
// bound on its oldest unapplied request, and can be below the applied
// point already noted: a document trimmed after the first chunk of an
// apply of several, that logged again meanwhile, or one whose chunk
// failed (found in review: an apply of several chunks, then a timed
// apply that took another document, noted a point below the one before,
// whose segments were gone, and Open refused the store). Here the bound
// is set low by hand; a timed apply must still not note a point below
// the last.
func TestAppliedPointNeverGoesBack(t *testing.T) {
	db, q, d := quietAndBusy(t)
	caughtUp(t, db)
	before, _ := persistedPoints(t, db)
	mustCommit(t, db, q, []collab.Record{editRec(1, "q", 2, "r")}, nil)
	db.pmu.Lock()
	db.pending[string(docKey(q))].first = 1 // a bound below the point
	db.pmu.Unlock()
	mustCommit(t, db, d, []collab.Record{editRec(1, "d", 2, strings.Repeat("d", 8<<10))}, nil)
	// The applier is idle (no tick for an hour, far from the kick):
	// this is a timed apply, which takes d and leaves q.
	if err := db.applyPending(false, false); err != nil {
		t.Fatal(err)
	}
	if head, _ := inBolt(t, db, d); head != 2 {
		t.Fatalf("d's head in bbolt = %d after the timed apply, want 2", head)
	}
	if after, _ := persistedPoints(t, db); after < before {
		t.Fatalf("the applied point went back from %d to %d", before, after)
	}
}

// TestNewFramesNumberedPastEveryNote: a log that lost its unsynced tail
// (--sync none and a machine crash) may end before frames some document
// notes as applied to it. Open numbers new frames past those, or the
// next apply would pass the document's new requests over as had. A file
// from before log-reached came in (format 3 on its first morning) has
// the notes but not the key: Open finds the highest note itself.
func TestNewFramesNumberedPastEveryNote(t *testing.T) {
	for _, dropReached := range []bool{false, true} {
		t.Run(map[bool]string{false: "with log-reached", true: "without log-reached"}[dropReached], func(t *testing.T) {
			testNewFramesNumberedPastEveryNote(t, dropReached)
		})
	}
}

func testNewFramesNumberedPastEveryNote(t *testing.T, dropReached bool) {
	db, q, d := quietAndBusy(t)                                                                // frames 1 and 2
	mustCommit(t, db, d, []collab.Record{editRec(1, "d", 2, strings.Repeat("d", 8<<10))}, nil) // frame 3, two pages
	if err := db.applyPending(false, false); err != nil {                                      // takes d, leaves q
		t.Fatal(err)
	}
	if point, reached := persistedPoints(t, db); point != 0 || reached != 3 {
		t.Fatalf("applied point %d, reached %d; want 0 (q waits) and 3", point, reached)
	}
	path := crashCopy(t, db)
	// The crash lost frames 2 and 3 from the log: zeros from the end of
	// frame 1 on.
	seg := lastSegment(t, path)
	f, err := os.OpenFile(seg, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	fr := &frameReader{r: bufio.NewReader(f)}
	if _, err := fr.next(); err != nil {
		t.Fatal(err)
	}
	st, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(make([]byte, st.Size()-fr.off), fr.off); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if dropReached {
		bdb, err := bolt.Open(path, 0o600, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := bdb.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketMeta).Delete(keyReached) }); err != nil {
			t.Fatal(err)
		}
		bdb.Close()
	}

	crashed := openAt(t, path, Options{ApplyEvery: time.Hour})
	mustCommit(t, crashed, d, edits(2, 1, "d"), nil)
	caughtUp(t, crashed)
	if head, _ := inBolt(t, crashed, d); head != 3 {
		t.Fatalf("d's head in bbolt after a commit past the crash = %d, want 3", head)
	}
	if got := mustOps(t, crashed, q, 0, 1); len(got) != 1 {
		t.Fatalf("q after the crash has %d records, want 1", len(got))
	}
	if err := crashed.Check(context.Background()); err != nil {
		t.Fatalf("Check after the crash = %v", err)
	}
}

// TestStatsShowWhatBboltTrails: Stats counts the documents and the log
// bytes bbolt has yet to take, and the applies that took them.
func TestStatsShowWhatBboltTrails(t *testing.T) {
	db := openTest(t, Options{ApplyEvery: time.Hour})
	d := collab.Key{Collection: "c", ID: "d"}
	st0 := db.Stats()
	mustCommit(t, db, d, []collab.Record{createRec(0, "d", 1, "")}, nil)
	mustCommit(t, db, d, edits(1, 3, "d"), nil)
	st := db.Stats()
	if st.PendingDocs != 1 || st.UnappliedBytes <= 0 || st.Applies != st0.Applies {
		t.Fatalf("Stats after two commits = %+v, want one document and some bytes pending, no apply", st)
	}
	caughtUp(t, db)
	st = db.Stats()
	if st.PendingDocs != 0 || st.UnappliedBytes != 0 || st.Applies != st0.Applies+1 {
		t.Fatalf("Stats after the applier caught up = %+v, want nothing pending and one apply more than %d", st, st0.Applies)
	}
}

// TestApplyPassesOverWhatEarlierAppliesTook: the frames a quiet document
// holds back also hold a busy document's requests that an earlier timed
// apply took. The next apply, timed or of everything, passes them over
// rather than counting them against its transaction's size: each apply
// here is one bbolt transaction, where counting them made two (a chunk
// cut at applyRecords), and the stores' contents are as committed.
func TestApplyPassesOverWhatEarlierAppliesTook(t *testing.T) {
	db, q, d := quietAndBusy(t)
	// Rounds of 5,000 records in commits of 100: 5,050 counted each,
	// two rounds more than applyRecords.
	const round, per = 5000, 100
	head := uint64(1)
	commitRound := func() {
		for range round / per {
			mustCommit(t, db, d, edits(head, per, "d"), nil)
			head += per
		}
	}
	for i, all := range []bool{false, false, true} {
		commitRound()
		before := db.Stats().Applies
		if err := db.applyPending(all, false); err != nil {
			t.Fatal(err)
		}
		if n := db.Stats().Applies - before; n != 1 {
			t.Errorf("apply %d (all %v) of %d new records took %d transactions, want 1", i+1, all, round, n)
		}
		if got, _ := inBolt(t, db, d); got != head {
			t.Fatalf("apply %d: d's head in bbolt = %d, want %d", i+1, got, head)
		}
		wantApplied := uint64(0) // q's frame 1 holds the point until the apply of everything
		if all {
			wantApplied = db.nextLSN - 1
		}
		if point, _ := persistedPoints(t, db); point != wantApplied {
			t.Fatalf("apply %d: applied point %d, want %d", i+1, point, wantApplied)
		}
	}
	if got := mustOps(t, db, d, 0, head); uint64(len(got)) != head {
		t.Fatalf("d has %d records, want %d", len(got), head)
	}
	if _, ok := inBolt(t, db, q); !ok {
		t.Errorf("q is not in bbolt after the apply of everything")
	}
	if err := db.Check(context.Background()); err != nil {
		t.Fatalf("Check = %v", err)
	}
}

// TestPendingBytesWeighWhatIsKept: a document's pending bytes, which
// make it due, weigh its unapplied records and the snapshots it keeps,
// the same when the writer adds a request as when an apply trims them:
// a snapshot no newer than the latest is not kept, and weighs nothing;
// nor do reads see it while it is pending.
func TestPendingBytesWeighWhatIsKept(t *testing.T) {
	db := openTest(t, Options{ApplyEvery: time.Hour})
	d := collab.Key{Collection: "c", ID: "d"}
	recs := append([]collab.Record{createRec(0, "d", 1, "")}, edits(1, 9, "d")...)
	mustCommit(t, db, d, recs[:1], nil)
	mustCommit(t, db, d, recs[1:], &collab.Snapshot{Version: 10, Type: ot.URI, Data: strings.Repeat("k", 100)})
	// Records with a snapshot no newer than the latest: the records are
	// logged, the snapshot is not kept.
	more := edits(10, 5, "d")
	mustCommit(t, db, d, more, &collab.Snapshot{Version: 10, Type: ot.URI, Data: strings.Repeat("o", 3000)})
	want := 100 // the kept snapshot's data, and every record encoded
	for _, r := range append(recs, more...) {
		want += len(encodeRecord(&r))
	}
	db.pmu.Lock()
	pd := *db.pending[string(docKey(d))]
	db.pmu.Unlock()
	added := pd.bytes
	pd.trim(0) // drops nothing, weighs what is left
	if added != pd.bytes {
		t.Fatalf("pending bytes %d as logged, %d as trimmed", added, pd.bytes)
	}
	if pd.bytes != want {
		t.Fatalf("pending bytes %d, want %d: the records and the kept snapshot, not the one no newer", pd.bytes, want)
	}
	// Reads over the pending requests show what bbolt will hold.
	before := mustLoad(t, db, d)
	caughtUp(t, db)
	if after := mustLoad(t, db, d); !reflect.DeepEqual(before, after) {
		t.Fatalf("document read while pending = %+v, once applied = %+v", before, after)
	}
}

// TestFailingAppliesStopCommits: while every apply to bbolt fails (here a
// document's bucket name is taken), commits are acknowledged only until
// stallBytes of the log wait for bbolt; then they are refused with
// ErrApplyStalled and nothing of them is stored, so memory and the log
// stay bounded. Once an apply succeeds they are taken again. They used to
// be acknowledged without bound (25 MiB in the review's run, and more).
func TestFailingAppliesStopCommits(t *testing.T) {
	db := openTest(t, Options{ApplyEvery: 5 * time.Millisecond})
	bad := collab.Key{Collection: "c", ID: "bad"}
	setBlocker(t, db.bolt, bad, true)
	mustCommit(t, db, bad, []collab.Record{createRec(0, "s", 1, "")}, nil)
	good := collab.Key{Collection: "c", ID: "good"}
	big := strings.Repeat("x", 64<<10)
	v := uint64(0)
	var err error
	for ; v < 2000; v++ {
		recs := []collab.Record{editRec(v, "s", v+1, big)}
		if v == 0 {
			recs = []collab.Record{createRec(0, "s", 1, big)}
		}
		if err = db.Commit(context.Background(), good, recs, nil); err != nil {
			break
		}
	}
	if !errors.Is(err, ErrApplyStalled) || !errors.Is(err, collab.ErrUnavailable) {
		t.Fatalf("after %d commits of 64 KiB with every apply failing, Commit = %v; want ErrApplyStalled, retryable (collab.ErrUnavailable)", v, err)
	}
	if !errors.Is(db.Stalled(), ErrApplyStalled) {
		t.Fatalf("Stalled() = %v while commits are refused, want ErrApplyStalled", db.Stalled())
	}
	if st := db.Stats(); st.UnappliedBytes > stallBytes+(128<<10) {
		t.Fatalf("UnappliedBytes = %d when commits stopped, want at most stallBytes (%d) and a frame", st.UnappliedBytes, stallBytes)
	}
	if recs, err := db.Ops(context.Background(), good, v, v+1); err != nil || len(recs) != 0 {
		t.Fatalf("the refused commit is readable: %d records, %v", len(recs), err)
	}
	setBlocker(t, db.bolt, bad, false)
	deadline := time.Now().Add(10 * time.Second)
	for {
		err = db.Commit(context.Background(), good, []collab.Record{editRec(v, "s", v+1, "y")}, nil)
		if err == nil {
			break
		}
		if !errors.Is(err, ErrApplyStalled) || time.Now().After(deadline) {
			t.Fatalf("Commit after the applies can succeed again = %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := db.Stalled(); err != nil {
		t.Fatalf("Stalled() = %v once commits are taken again, want nil", err)
	}
}
