package storage

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/coedit/coedit/collab"
	"github.com/coedit/coedit/ot"
)

// inBolt reports whether bbolt itself has metadata for key, and its head.
func inBolt(t *testing.T, db *DB, key collab.Key) (uint64, bool) {
	t.Helper()
	var m docMeta
	var ok bool
	err := db.bolt.View(func(tx *bolt.Tx) error {
		var err error
		m, ok, err = readMeta(tx, docKey(key))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return m.head, ok
}

// TestReadAfterAckBeforeApply commits with an applier that does not run
// (ApplyEvery of an hour) and checks that every read sees the
// acknowledged records, snapshots and seq entries at once, from the log's
// pending requests alone, then from bbolt and the log together; that
// Truncate and the epoch note, which wait for the applier, see them too;
// and that the same reads give the same answers after the applier ran and
// after a reopen.
func TestReadAfterAckBeforeApply(t *testing.T) {
	path := tempPath(t)
	opts := Options{ApplyEvery: time.Hour, SeqWindow: 4, MilestoneEvery: 2}
	db, err := Open(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	key := collab.Key{Collection: "c", ID: "d"}
	snap := func(v uint64) collab.Snapshot {
		return collab.Snapshot{Version: v, Type: ot.URI, Data: "at " + itoa(int64(v))}
	}
	var all []collab.Record
	commit := func(recs []collab.Record, s *collab.Snapshot) {
		t.Helper()
		mustCommit(t, db, key, recs, s)
		all = append(all, recs...)
	}
	type view struct {
		st    collab.DocState
		ops   []collab.Record
		snaps []collab.Snapshot
	}
	read := func() view {
		t.Helper()
		var v view
		v.st = mustLoad(t, db, key)
		v.ops = mustOps(t, db, key, 0, 1000)
		for at := range uint64(len(all) + 2) {
			s, err := db.SnapshotAt(ctx, key, at)
			if err != nil {
				t.Fatal(err)
			}
			v.snaps = append(v.snaps, s)
		}
		return v
	}
	check := func(when string, v view, latest collab.Snapshot) {
		t.Helper()
		if !equalRecords(v.ops, all) {
			t.Fatalf("%s: Ops = %d records, want the %d acknowledged", when, len(v.ops), len(all))
		}
		if v.st.Snapshot != latest || !equalRecords(v.st.Ops, all[latest.Version:]) {
			t.Fatalf("%s: Load = snapshot %+v and %d ops, want %+v and %d", when, v.st.Snapshot, len(v.st.Ops), latest, len(all)-int(latest.Version))
		}
		// The seq table: each src's last record among the newest 4.
		want := map[string]collab.SeqEntry{}
		for _, r := range all[len(all)-min(4, len(all)):] {
			want[r.Src] = collab.SeqEntry{Seq: r.Seq, Version: r.Version}
		}
		for src, e := range v.st.Seqs {
			if last := all[e.Version]; last.Src != src {
				t.Errorf("%s: seq entry %q names version %d, by %q", when, src, e.Version, last.Src)
			}
		}
		if !equalSeqs(v.st.Seqs, want) {
			t.Fatalf("%s: Load seqs = %v, want %v", when, v.st.Seqs, want)
		}
		if got := v.snaps[len(v.snaps)-1]; got != latest {
			t.Fatalf("%s: SnapshotAt(past head) = %+v, want %+v", when, got, latest)
		}
	}

	// Only in the log: bbolt has never seen the document.
	commit([]collab.Record{createRec(0, "a", 1, "hello")}, nil)
	commit([]collab.Record{editRec(1, "b", 1, "x"), editRec(2, "a", 2, "y")}, nil)
	s3 := snap(3)
	commit([]collab.Record{editRec(3, "c", 1, "z")}, &s3)
	if _, ok := inBolt(t, db, key); ok {
		t.Fatal("bbolt has the document before the applier ran: the test does not test the log")
	}
	check("in the log only", read(), s3)
	if err := db.Commit(ctx, key, edits(2, 1, "a"), nil); !errors.Is(err, collab.ErrVersionConflict) {
		t.Fatalf("Commit behind the logged head = %v, want ErrVersionConflict", err)
	}

	// Half in bbolt, half in the log.
	caughtUp(t, db)
	commit(edits(4, 3, "d"), nil)
	s7 := snap(7)
	if err := db.SaveSnapshot(ctx, key, s7); err != nil {
		t.Fatal(err)
	}
	commit([]collab.Record{editRec(7, "e", 1, "w")}, nil)
	if head, _ := inBolt(t, db, key); head != 4 {
		t.Fatalf("bbolt head = %d, want 4 (the rest in the log)", head)
	}
	before := read()
	check("in bbolt and the log", before, s7)

	// The same once applied.
	caughtUp(t, db)
	if head, _ := inBolt(t, db, key); head != uint64(len(all)) {
		t.Fatalf("bbolt head after catching up = %d, want %d", head, len(all))
	}
	if after := read(); !reflect.DeepEqual(after, before) {
		t.Fatalf("reads after the applier ran differ:\n got %+v\nwant %+v", after, before)
	}

	// Truncate, logged, then read: the reads wait for it to be applied.
	commit(edits(8, 2, "f"), nil)
	if err := db.Truncate(ctx, key, 6); err != nil {
		t.Fatal(err)
	}
	all = all[:6]
	check("after a logged Truncate", read(), snap(3))
	if err := db.Commit(ctx, key, edits(7, 1, "g"), nil); !errors.Is(err, collab.ErrVersionConflict) {
		t.Fatalf("Commit past the truncated head = %v, want ErrVersionConflict", err)
	}
	commit(edits(6, 1, "g"), nil)

	// The epoch note of a document whose first commit is only logged.
	other := collab.Key{Collection: "c", ID: "new"}
	mustCommit(t, db, other, []collab.Record{createRec(0, "a", 1, "")}, nil)
	if set, err := db.SetEpoch(ctx, other, "e1"); err != nil || !set {
		t.Fatalf("SetEpoch(a document in the log) = %v, %v; want true, nil", set, err)
	}
	if e, err := db.Epoch(ctx, other); err != nil || e != "e1" {
		t.Fatalf("Epoch = %q, %v; want e1", e, err)
	}
	// Newest first: key's last record has time 1006, other's 1000.
	if list, err := db.List(ctx, "c", 0); err != nil || len(list) != 2 || list[0].Key != key || list[0].Version != uint64(len(all)) || list[1].Key != other {
		t.Fatalf("List = %+v, %v; want both documents, %s at %d first", list, err, key, len(all))
	}
	mustCommit(t, db, other, edits(1, 1, "a"), nil)

	// And after a reopen, which applies what Close left.
	before = read()
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db = openAt(t, path, opts)
	if after := read(); !reflect.DeepEqual(after, before) {
		t.Fatalf("reads after reopen differ:\n got %+v\nwant %+v", after, before)
	}
	if got := mustOps(t, db, other, 0, 10); len(got) != 2 {
		t.Fatalf("Ops(%s) after reopen = %d records, want 2", other, len(got))
	}
}

// copyFile copies the file at src to a new file at dst.
func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
}

// crashCopy copies db's bbolt file and op log, as a crash would leave
// them, into a new directory, and returns the copy's path.
func crashCopy(t *testing.T, db *DB) string {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "crashed.db")
	if err := db.bolt.View(func(tx *bolt.Tx) error { return tx.CopyFile(path, 0o600) }); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(path+walSuffix, 0o700); err != nil {
		t.Fatal(err)
	}
	segs, err := listSegments(db.path + walSuffix)
	if err != nil || len(segs) == 0 {
		t.Fatalf("listSegments = %v, %v; want a segment", segs, err)
	}
	for _, s := range segs {
		copyFile(t, s.path, filepath.Join(path+walSuffix, filepath.Base(s.path)))
	}
	return path
}

// lastSegment returns the path of the newest segment of the store at path.
func lastSegment(t *testing.T, path string) string {
	t.Helper()
	segs, err := listSegments(path + walSuffix)
	if err != nil || len(segs) == 0 {
		t.Fatalf("listSegments = %v, %v; want a segment", segs, err)
	}
	return segs[len(segs)-1].path
}

// TestTornTail damages the last frame of a crashed store's log, as a
// write cut short by a crash or power loss would leave it (short, or
// with bytes that fail its checksum), and checks that Open drops that
// frame alone, that the store passes Check, and that it takes commits
// from the head the good frames leave, across another reopen.
func TestTornTail(t *testing.T) {
	for _, tc := range []struct {
		name string
		// lastFrame is the offset of the last frame, end where it ends
		// (the zeroed tail follows).
		damage func(t *testing.T, seg string, lastFrame, end int64)
	}{
		{"short", func(t *testing.T, seg string, lastFrame, end int64) {
			if err := os.Truncate(seg, end-3); err != nil {
				t.Fatal(err)
			}
		}},
		{"short, in the zeroed tail", func(t *testing.T, seg string, lastFrame, end int64) {
			f, err := os.OpenFile(seg, os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if _, err := f.WriteAt(make([]byte, 3), end-3); err != nil {
				t.Fatal(err)
			}
		}},
		{"header only", func(t *testing.T, seg string, lastFrame, end int64) {
			if err := os.Truncate(seg, lastFrame+5); err != nil {
				t.Fatal(err)
			}
		}},
		{"bad checksum", func(t *testing.T, seg string, lastFrame, end int64) {
			f, err := os.OpenFile(seg, os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			b := make([]byte, 1)
			if _, err := f.ReadAt(b, lastFrame+frameHeader+3); err != nil {
				t.Fatal(err)
			}
			b[0] ^= 0x40
			if _, err := f.WriteAt(b, lastFrame+frameHeader+3); err != nil {
				t.Fatal(err)
			}
		}},
		{"zeros", func(t *testing.T, seg string, lastFrame, end int64) {
			// A file system may leave a torn write as zeros.
			fi, err := os.Stat(seg)
			if err != nil {
				t.Fatal(err)
			}
			f, err := os.OpenFile(seg, os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if _, err := f.WriteAt(make([]byte, fi.Size()-lastFrame), lastFrame); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db := openTest(t, Options{ApplyEvery: time.Hour})
			key := collab.Key{Collection: "c", ID: "d"}
			mustCommit(t, db, key, []collab.Record{createRec(0, "a", 1, "hello")}, nil)
			caughtUp(t, db) // bbolt holds frame 1; the log adds 2 and 3
			mustCommit(t, db, key, edits(1, 2, "a"), nil)
			lastFrame := db.wal.size
			s := collab.Snapshot{Version: 4, Type: ot.URI, Data: "four"}
			mustCommit(t, db, key, edits(3, 1, "a"), &s)
			path := crashCopy(t, db)
			tc.damage(t, lastSegment(t, path), lastFrame, db.wal.size)

			crashed, err := Open(path, Options{})
			if err != nil {
				t.Fatalf("Open with a torn tail = %v", err)
			}
			st := mustLoad(t, crashed, key)
			if st.Snapshot.Version != 0 || !equalRecords(st.Ops, append([]collab.Record{createRec(0, "a", 1, "hello")}, edits(1, 2, "a")...)) {
				t.Errorf("Load after a torn tail = %+v, want the records of the two good frames", st)
			}
			if err := crashed.Check(context.Background()); err != nil {
				t.Errorf("Check after a torn tail = %v", err)
			}
			mustCommit(t, crashed, key, edits(3, 1, "b"), nil)
			if err := crashed.Close(); err != nil {
				t.Fatal(err)
			}
			crashed = openAt(t, path, Options{})
			if got := mustOps(t, crashed, key, 0, 10); len(got) != 4 || got[3].Src != "b" {
				t.Errorf("after reopen: Ops = %+v, want 4 records, the last by b", got)
			}
		})
	}
}

// TestDamageBeforeWholeFrames damages a frame in the middle of a
// crashed store's log. Under SyncAlways a frame is written only after
// the one before it is synced, so a crash tears the last frame alone:
// Open must refuse the store, naming where the damage is, not read the
// log as if it ended there and delete the acknowledged frames after it.
// Truncating the segment at that offset, as the README tells an
// operator who accepts the loss, opens it with the frames before.
// Under SyncNone a crash may tear any unsynced frame, so the log reads
// to the damage as before.
func TestDamageBeforeWholeFrames(t *testing.T) {
	for _, sync := range []SyncMode{SyncAlways, SyncNone} {
		t.Run(sync.String(), func(t *testing.T) {
			db := openTest(t, Options{Sync: sync, ApplyEvery: time.Hour})
			key := collab.Key{Collection: "c", ID: "d"}
			mustCommit(t, db, key, []collab.Record{createRec(0, "a", 1, "hello")}, nil)
			caughtUp(t, db) // bbolt holds frame 1; the log adds 2, 3 and 4
			mustCommit(t, db, key, edits(1, 1, "a"), nil)
			damaged := db.wal.size
			mustCommit(t, db, key, edits(2, 1, "a"), nil)
			mustCommit(t, db, key, edits(3, 1, "a"), nil)
			path := crashCopy(t, db)
			seg := lastSegment(t, path)
			overwrite(t, seg, damaged+frameHeader+2, []byte{0xff})

			crashed, err := Open(path, Options{Sync: sync})
			if sync == SyncAlways {
				want := fmt.Sprintf("offset %d (frame 3) is damaged, but frame 4", damaged)
				if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), want) {
					t.Fatalf("Open with a damaged frame before a whole one = %v, want ErrCorrupt saying %q", err, want)
				}
				if _, err := os.Stat(seg); err != nil {
					t.Fatalf("the damaged segment after the refused Open: %v", err)
				}
				if err := os.Truncate(seg, damaged); err != nil {
					t.Fatal(err)
				}
				crashed = openAt(t, path, Options{})
			} else if err != nil {
				t.Fatalf("Open (SyncNone) with a damaged frame before a whole one = %v", err)
			} else {
				t.Cleanup(func() { crashed.Close() })
			}
			if got := mustOps(t, crashed, key, 0, 10); len(got) != 2 {
				t.Errorf("Ops after the damage = %+v, want the 2 records before it", got)
			}
		})
	}
}

// TestDamageInAppliedFramesPassedOver: damage to a frame bbolt already
// holds (the log keeps applied frames until their segment goes) loses
// nothing: Open reads on from the whole frame after it, and the frames
// bbolt lacks are all there. A refusal here would name the wrong frame
// and send an operator to truncate acknowledged ones away.
func TestDamageInAppliedFramesPassedOver(t *testing.T) {
	db := openTest(t, Options{ApplyEvery: time.Hour})
	key := collab.Key{Collection: "c", ID: "d"}
	mustCommit(t, db, key, []collab.Record{createRec(0, "a", 1, "hello")}, nil)
	damaged := db.wal.size
	mustCommit(t, db, key, edits(1, 1, "a"), nil)
	caughtUp(t, db) // bbolt holds frames 1 and 2; the log adds 3 and 4
	mustCommit(t, db, key, edits(2, 1, "a"), nil)
	mustCommit(t, db, key, edits(3, 1, "a"), nil)
	path := crashCopy(t, db)
	overwrite(t, lastSegment(t, path), damaged+frameHeader+2, []byte{0xff})
	crashed := openAt(t, path, Options{})
	if got := mustOps(t, crashed, key, 0, 10); len(got) != 4 {
		t.Errorf("Ops after damage to an applied frame = %+v, want all 4 records", got)
	}
}

// TestTornFrameHoldingAFrame: the last frame, torn by a crash, holds in
// its own bytes (a client's text) what reads as a whole later frame. Open
// must read it as the torn tail it is, not as damage before a whole
// frame: the search for later frames starts past the torn frame's end.
func TestTornFrameHoldingAFrame(t *testing.T) {
	db := openTest(t, Options{ApplyEvery: time.Hour})
	key := collab.Key{Collection: "c", ID: "d"}
	mustCommit(t, db, key, []collab.Record{createRec(0, "a", 1, "hello")}, nil)
	caughtUp(t, db) // bbolt holds frame 1; the log adds 2 and 3
	mustCommit(t, db, key, edits(1, 1, "a"), nil)
	torn := db.wal.size
	mustCommit(t, db, key, []collab.Record{editRec(2, "a", 3, strings.Repeat("x", 400))}, nil)
	path := crashCopy(t, db)
	// Frame 4, sealed, inside frame 3's text: the tear leaves frame 3's
	// checksum failing and the forged frame whole.
	var e enc
	e.b = make([]byte, frameHeader)
	e.uvarint(4)
	e.uvarint(0)
	sealFrame(e.b)
	overwrite(t, lastSegment(t, path), torn+frameHeader+100, e.b)
	crashed, err := Open(path, Options{})
	if err != nil {
		t.Fatalf("Open with a torn last frame holding a forged one = %v", err)
	}
	t.Cleanup(func() { crashed.Close() })
	if got := mustOps(t, crashed, key, 0, 10); len(got) != 2 {
		t.Errorf("Ops after the torn frame = %+v, want the 2 records before it", got)
	}
}

// TestUnsyncedNoteFollowsTheMode: the note that the log's frames go
// unsynced is there after an Open with SyncNone, whatever the Open
// before used, and gone after one with SyncAlways.
func TestUnsyncedNoteFollowsTheMode(t *testing.T) {
	path := tempPath(t)
	for _, sync := range []SyncMode{SyncNone, SyncNone, SyncAlways, SyncAlways, SyncNone} {
		db, err := Open(path, Options{Sync: sync})
		if err != nil {
			t.Fatal(err)
		}
		var noted bool
		if err := db.bolt.View(func(tx *bolt.Tx) error {
			noted = tx.Bucket(bucketMeta).Get(keyUnsynced) != nil
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if noted != (sync == SyncNone) {
			t.Errorf("after Open with %v: unsynced noted = %v", sync, noted)
		}
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestLogSegments checks that the log does not grow without bound: once
// the applier has put a segment's frames into bbolt it is deleted, and a
// clean Close leaves no segment at all.
func TestLogSegments(t *testing.T) {
	path := tempPath(t)
	db, err := Open(path, Options{Sync: SyncNone, ApplyEvery: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	key := collab.Key{Collection: "c", ID: "d"}
	// Each commit logs a 1 MiB snapshot: 40 of them fill 2 segments.
	commitBigSnapshots(t, db, key, 40)
	// 8 MiB of frames wake the applier, which deletes the segments it
	// finished; the writer starts a new one every 16 MiB.
	segs, _ := listSegments(path + walSuffix)
	if len(segs) == 0 || len(segs) > 2 || segs[len(segs)-1].first == 1 {
		t.Errorf("segments after 40 MiB of frames: %+v, want 1 or 2, not the first", segs)
	}
	caughtUp(t, db)
	if segs, _ := listSegments(path + walSuffix); len(segs) != 1 {
		t.Errorf("%d segments once bbolt has every frame, want 1 (the current one)", len(segs))
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if segs, _ := listSegments(path + walSuffix); len(segs) != 0 {
		t.Errorf("%d segments after Close, want none", len(segs))
	}
	db = openAt(t, path, Options{})
	if st := mustLoad(t, db, key); st.Snapshot.Version != 40 || len(st.Ops) != 1 {
		t.Errorf("Load after reopen = snapshot %d with %d ops, want 40 with 1", st.Snapshot.Version, len(st.Ops))
	}
}

// TestCommitKeepsItsOwnRecords: a caller may reuse its records slice once
// Commit returns, though the applier writes them to bbolt later; what
// bbolt gets must be what was acknowledged.
func TestCommitKeepsItsOwnRecords(t *testing.T) {
	db := openTest(t, Options{ApplyEvery: time.Hour})
	key := collab.Key{Collection: "c", ID: "d"}
	recs := append([]collab.Record{createRec(0, "a", 1, "")}, edits(1, 3, "a")...)
	want := append([]collab.Record(nil), recs...)
	mustCommit(t, db, key, recs, nil)
	for i := range recs {
		recs[i] = editRec(uint64(100+i), "other", 9, "zz")
	}
	caughtUp(t, db)
	if got := mustOps(t, db, key, 0, 10); !equalRecords(got, want) {
		t.Errorf("Ops after the caller reused its slice = %+v, want %+v", got, want)
	}
	if err := db.Check(context.Background()); err != nil {
		t.Errorf("Check = %v", err)
	}
}

// TestReplayAcrossSegments replays a crashed store's log of several
// segments, each ending in its zeroed tail (walFile): Open reads every
// segment's frames up to its zeros and goes on with the next one.
func TestReplayAcrossSegments(t *testing.T) {
	db := openTest(t, Options{Sync: SyncNone, ApplyEvery: time.Hour})
	key := collab.Key{Collection: "c", ID: "d"}
	// A plain value where the document's bucket must go makes every
	// apply fail, so the applier deletes no segment.
	setBlocker(t, db.bolt, key, true)
	commitBigSnapshots(t, db, key, 20)
	path := crashCopy(t, db)
	setBlocker(t, db.bolt, key, false)
	segs, err := listSegments(path + walSuffix)
	if err != nil || len(segs) < 2 {
		t.Fatalf("listSegments = %d, %v; want 2 or more", len(segs), err)
	}
	b, err := os.ReadFile(segs[0].path)
	if err != nil {
		t.Fatal(err)
	}
	if tail := b[len(b)-frameHeader:]; !bytes.Equal(tail, make([]byte, frameHeader)) {
		t.Errorf("first segment ends in %x, want its zeroed tail", tail)
	}
	bdb, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	setBlocker(t, bdb, key, false)
	bdb.Close()
	crashed := openAt(t, path, Options{})
	if st := mustLoad(t, crashed, key); st.Snapshot.Version != 20 || len(st.Ops) != 1 {
		t.Errorf("Load after replay = snapshot %d with %d ops, want 20 with 1", st.Snapshot.Version, len(st.Ops))
	}
	if got := mustOps(t, crashed, key, 0, 100); len(got) != 21 {
		t.Errorf("Ops after replay = %d records, want 21", len(got))
	}
}

// TestApplyManyRequestsPerDocument applies, in one bbolt transaction,
// several commits of each of two documents, with snapshots (and
// milestones), a truncate of one between them and commits after it. The
// metadata the applier writes once per document for the whole
// transaction (metaCache) must be what applying the requests one
// transaction each leaves, byte for byte, and the store must pass Check.
func TestApplyManyRequestsPerDocument(t *testing.T) {
	a := collab.Key{Collection: "c", ID: "a"}
	b := collab.Key{Collection: "c", ID: "b"}
	run := func(each bool) map[string]string {
		db := openTest(t, Options{ApplyEvery: time.Hour, MilestoneEvery: 2})
		ctx := context.Background()
		step := func(err error) {
			t.Helper()
			if err != nil {
				t.Fatal(err)
			}
			if each {
				caughtUp(t, db)
			}
		}
		step(db.Commit(ctx, a, []collab.Record{createRec(0, "s", 1, "x")}, nil))
		step(db.Commit(ctx, b, []collab.Record{createRec(0, "s", 1, "x")}, nil))
		for v := uint64(1); v < 8; v++ {
			var snap *collab.Snapshot
			if v%2 == 0 {
				snap = &collab.Snapshot{Version: v + 1, Type: ot.URI, Data: fmt.Sprint("s", v+1)}
			}
			step(db.Commit(ctx, a, edits(v, 1, "s"), snap))
			step(db.Commit(ctx, b, edits(v, 1, fmt.Sprint("s", v%3)), nil))
		}
		step(db.Truncate(ctx, a, 4))
		step(db.Commit(ctx, a, edits(4, 2, "t"), &collab.Snapshot{Version: 5, Type: ot.URI, Data: "t5"}))
		step(db.SaveSnapshot(ctx, b, collab.Snapshot{Version: 8, Type: ot.URI, Data: "b8"}))
		step(db.Commit(ctx, b, []collab.Record{deleteRec(8, "s", 9)}, nil))
		caughtUp(t, db)
		if err := db.Check(ctx); err != nil {
			t.Fatalf("Check(each=%v) = %v", each, err)
		}
		metas := map[string]string{}
		err := db.bolt.View(func(tx *bolt.Tx) error {
			return tx.Bucket(bucketDocs).ForEach(func(k, v []byte) error {
				metas[string(k)] = string(v)
				return nil
			})
		})
		if err != nil {
			t.Fatal(err)
		}
		return metas
	}
	together, each := run(false), run(true)
	if len(together) != 2 || !reflect.DeepEqual(together, each) {
		t.Errorf("docs metadata after one apply = %x, want as applied one by one: %x", together, each)
	}
}

// commitBigSnapshots creates key and commits n edits after it, each with
// a snapshot of about 1 MiB, so that the log fills segments quickly.
func commitBigSnapshots(t *testing.T, db *DB, key collab.Key, n uint64) {
	t.Helper()
	big := make([]byte, 1<<20)
	for i := range big {
		big[i] = 'a' + byte(i%26)
	}
	mustCommit(t, db, key, []collab.Record{createRec(0, "a", 1, "")}, nil)
	for v := uint64(1); v <= n; v++ {
		s := collab.Snapshot{Version: v, Type: ot.URI, Data: string(big[:len(big)-int(v)])}
		mustCommit(t, db, key, edits(v, 1, "a"), &s)
	}
}

// setBlocker puts a plain value where key's document bucket must go
// (put), which makes creating or applying to that bucket fail, or takes
// it away again.
func setBlocker(t *testing.T, bdb *bolt.DB, key collab.Key, put bool) {
	t.Helper()
	err := bdb.Update(func(tx *bolt.Tx) error {
		if put {
			return tx.Bucket(bucketDoc).Put(docKey(key), []byte("blocker"))
		}
		return tx.Bucket(bucketDoc).Delete(docKey(key))
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestTornTailBeforeAnEmptySegment: a segment whose creation failed half
// way (the file made, its directory entry not synced) is left empty
// while the writer goes on in the current segment; a crash that then
// tears the current segment's last, unacknowledged write leaves a torn
// frame before a segment without frames. That is the end of the log, as
// a torn tail in the last segment is: Open used to refuse it as corrupt.
func TestTornTailBeforeAnEmptySegment(t *testing.T) {
	db := openTest(t, Options{ApplyEvery: time.Hour})
	key := collab.Key{Collection: "c", ID: "d"}
	mustCommit(t, db, key, []collab.Record{createRec(0, "s", 1, "")}, nil)
	for v := uint64(1); v < 4; v++ {
		mustCommit(t, db, key, []collab.Record{editRec(v, "s", v+1, "x")}, nil)
	}
	end, next := db.wal.size, db.nextLSN
	path := crashCopy(t, db)
	f, err := os.OpenFile(lastSegment(t, path), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	// A header that promises 1,000 bytes, and 10 of them.
	if _, err := f.WriteAt([]byte{0xe8, 3, 0, 0, 1, 2, 3, 4, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9}, end); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if err := os.WriteFile(filepath.Join(path+walSuffix, segmentName(next)), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	crashed, err := Open(path, Options{})
	if err != nil {
		t.Fatalf("Open after a torn tail before an empty segment = %v", err)
	}
	defer crashed.Close()
	recs, err := crashed.Ops(context.Background(), key, 0, 10)
	if err != nil || len(recs) != 4 {
		t.Fatalf("Ops after reopen = %d records, %v; want the 4 acknowledged", len(recs), err)
	}
}

// TestLeftoverAppliedSegmentBeforeAGap: the applier deletes finished
// segments and goes on when a removal fails (apply.go applied1), and a
// power cut may lose a removal. If the removal of an older segment A
// fails while the removal of the next one, B, succeeds, the directory
// holds A (every frame applied) and then C, whose first frame does not
// follow A's last. Open must take that store: bbolt holds everything A and
// B held and C's frames are intact. It refused it as corrupt when replay
// checked the order of frames it skips as applied.
func TestLeftoverAppliedSegmentBeforeAGap(t *testing.T) {
	path := tempPath(t)
	db := openAt(t, path, Options{ApplyEvery: time.Hour})
	segs, err := listSegments(path + walSuffix)
	if err != nil || len(segs) != 1 {
		t.Fatalf("segments at open: %v, %v", segs, err)
	}
	a := segs[0]
	// Keep A's inode alive under a name listSegments ignores: what a
	// failed (or lost) unlink of A leaves on disk.
	keep := a.path + ".keep"
	if err := os.Link(a.path, keep); err != nil {
		t.Fatal(err)
	}
	key := collab.Key{Collection: "c", ID: "d"}
	commitBigSnapshots(t, db, key, 40) // about 40 MiB: segments A, B, C
	caughtUp(t, db)                    // bbolt holds every frame; A and B are deleted
	left, _ := listSegments(path + walSuffix)
	if len(left) != 1 || left[0].first == a.first {
		t.Fatalf("segments after catching up: %+v, want only the current one", left)
	}
	crashed := crashCopy(t, db) // a kill -9 now: bbolt and the current segment C
	// ... with A still there, as if its removal had failed.
	copyFile(t, keep, filepath.Join(crashed+walSuffix, filepath.Base(a.path)))
	os.Remove(keep)

	reopened, err := Open(crashed, Options{})
	if err != nil {
		t.Fatalf("Open with an applied segment left before a deleted one = %v, want nil (every frame in A is applied)", err)
	}
	defer reopened.Close()
	if segs, _ := listSegments(crashed + walSuffix); segs[0].first == a.first {
		t.Errorf("Open left the applied segment %s in place", filepath.Base(a.path))
	}
	if got := mustOps(t, reopened, key, 0, 100); len(got) != 41 {
		t.Errorf("Ops after reopen = %d records, want 41", len(got))
	}
	if err := reopened.Check(context.Background()); err != nil {
		t.Errorf("Check = %v", err)
	}
}

// TestFailedSyncStopsTheLog: a log sync that fails leaves what the disk
// holds unknown. The Commit that met it and every later one fail with
// ErrLogFailed, which is retryable (collab.ErrUnavailable: the client
// resends, and its src and seq make the resend find the op if it was
// stored); Stalled reports it, so /ready fails. The failed Commit's record
// is durable after a crash if the disk took it (here the page cache wrote
// it), and gone after a clean Close, which applies every acknowledged
// record to bbolt and deletes the log.
func TestFailedSyncStopsTheLog(t *testing.T) {
	path := tempPath(t)
	db := openAt(t, path, Options{})
	key := collab.Key{Collection: "c", ID: "d"}
	mustCommit(t, db, key, []collab.Record{createRec(0, "a", 1, "x")}, nil)
	db.wal.testSync = func(*os.File) error { return syscall.EIO }
	ctx := context.Background()
	err := db.Commit(ctx, key, []collab.Record{editRec(1, "a", 2, "y")}, nil)
	if !errors.Is(err, ErrLogFailed) || !errors.Is(err, collab.ErrUnavailable) || !errors.Is(err, syscall.EIO) {
		t.Fatalf("Commit over a failed sync = %v, want ErrLogFailed, collab.ErrUnavailable and EIO", err)
	}
	if err := db.Stalled(); !errors.Is(err, ErrLogFailed) {
		t.Fatalf("Stalled after a failed sync = %v, want ErrLogFailed", err)
	}
	db.wal.testSync = nil // a later sync would succeed: the log stays refused
	if err := db.Commit(ctx, key, []collab.Record{editRec(1, "a", 2, "z")}, nil); !errors.Is(err, ErrLogFailed) {
		t.Fatalf("Commit after a failed sync = %v, want ErrLogFailed", err)
	}
	other := collab.Key{Collection: "c", ID: "other"}
	if err := db.Commit(ctx, other, []collab.Record{createRec(0, "b", 1, "")}, nil); !errors.Is(err, ErrLogFailed) {
		t.Fatalf("Commit to another document after a failed sync = %v, want ErrLogFailed", err)
	}

	for _, crash := range []bool{true, false} {
		at, want := path, 1
		if crash {
			at, want = crashCopy(t, db), 2
		} else {
			db.Close()
		}
		reopened := openAt(t, at, Options{})
		if err := reopened.Stalled(); err != nil {
			t.Fatalf("crash %v: Stalled after reopening = %v, want nil", crash, err)
		}
		got := mustOps(t, reopened, key, 0, 10)
		if len(got) != want || got[0].Src != "a" || got[0].Seq != 1 || want == 2 && got[1].Seq != 2 {
			t.Fatalf("crash %v: records after reopening = %+v, want %d", crash, got, want)
		}
		mustCommit(t, reopened, key, []collab.Record{editRec(uint64(want), "a", 3, "w")}, nil)
		reopened.Close()
	}
}

// TestFailedWriteIsRetryable: a write to the log that fails and is undone
// (a full disk; here the segment is swapped for a read-only descriptor,
// so the kernel refuses the writes) refuses that Commit with ErrLogWrite,
// which is retryable (collab.ErrUnavailable), stores nothing, and leaves
// later commits to try again. Stalled reports it, so /ready fails, until
// the disk takes a write again, which it finds out itself: a node out of
// service for a full disk gets no commit to find out with.
func TestFailedWriteIsRetryable(t *testing.T) {
	db := openTest(t, Options{})
	key := collab.Key{Collection: "c", ID: "d"}
	mustCommit(t, db, key, []collab.Record{createRec(0, "a", 1, "x")}, nil)
	good := db.wal.f
	ro, err := os.Open(good.Name())
	if err != nil {
		t.Fatal(err)
	}
	db.writeMu.Lock()
	db.wal.f = ro
	db.writeMu.Unlock()
	ctx := context.Background()
	for range 2 {
		err = db.Commit(ctx, key, []collab.Record{editRec(1, "a", 2, "y")}, nil)
		if !errors.Is(err, ErrLogWrite) || !errors.Is(err, collab.ErrUnavailable) {
			t.Fatalf("Commit over a failing write = %v, want ErrLogWrite and collab.ErrUnavailable", err)
		}
	}
	db.probedAt.Store(0)
	if err := db.Stalled(); !errors.Is(err, ErrLogWrite) {
		t.Fatalf("Stalled while writes fail = %v, want ErrLogWrite", err)
	}
	db.writeMu.Lock()
	db.wal.f = good
	db.writeMu.Unlock()
	ro.Close()
	db.probedAt.Store(0)
	if err := db.Stalled(); err != nil {
		t.Fatalf("Stalled once the disk takes writes again = %v, want nil", err)
	}
	mustCommit(t, db, key, []collab.Record{editRec(1, "a", 2, "y")}, nil)
	if got := mustOps(t, db, key, 0, 10); len(got) != 2 || got[1].Src != "a" || got[1].Seq != 2 {
		t.Fatalf("Ops after the failed writes = %+v, want the create and the one edit", got)
	}
}

// TestMissingLogRefused: a store whose op log directory is gone (the bbolt
// file copied alone, say) is refused, since after a crash the log held
// acknowledged records bbolt lacks; made anew, they would be lost without
// a word. Created empty by the operator, as the error says, it opens.
func TestMissingLogRefused(t *testing.T) {
	db := openTest(t, Options{ApplyEvery: time.Hour})
	key := collab.Key{Collection: "c", ID: "d"}
	mustCommit(t, db, key, []collab.Record{createRec(0, "a", 1, "hello")}, nil)
	caughtUp(t, db)
	mustCommit(t, db, key, edits(1, 2, "a"), nil) // in the log alone
	path := crashCopy(t, db)
	if err := os.RemoveAll(path + walSuffix); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(path, Options{}); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "is missing") {
		t.Fatalf("Open without the op log = %v, want ErrCorrupt saying it is missing", err)
	}
	if err := os.Mkdir(path+walSuffix, 0o700); err != nil {
		t.Fatal(err)
	}
	crashed := openAt(t, path, Options{})
	if got := mustOps(t, crashed, key, 0, 10); len(got) != 1 {
		t.Errorf("Ops with the log created empty = %+v, want bbolt's one record", got)
	}
}

// TestUnreadBytesKept: damage replay cannot tell from a crash's torn last
// write (a header read back as zeros, a flipped length) ends the log
// where it is, but the segment is not deleted with the others: what
// follows the point reading stopped is not zeros, so Open keeps the
// segment beside the log and Kept names it. Deleting it deleted
// acknowledged frames beyond any repair.
func TestUnreadBytesKept(t *testing.T) {
	for _, tc := range []struct {
		name   string
		damage func(f *os.File, at int64)
	}{
		{"zero header", func(f *os.File, at int64) { f.WriteAt(make([]byte, frameHeader), at) }},
		{"flipped length", func(f *os.File, at int64) {
			var b [1]byte
			f.ReadAt(b[:], at+1)
			b[0] ^= 0x04
			f.WriteAt(b[:], at+1)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db := openTest(t, Options{ApplyEvery: time.Hour})
			key := collab.Key{Collection: "c", ID: "d"}
			mustCommit(t, db, key, []collab.Record{createRec(0, "a", 1, "hello")}, nil)
			caughtUp(t, db)
			mustCommit(t, db, key, edits(1, 1, "a"), nil)
			damaged := db.wal.size
			mustCommit(t, db, key, edits(2, 3, "a"), nil)
			path := crashCopy(t, db)
			seg := lastSegment(t, path)
			f, err := os.OpenFile(seg, os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			tc.damage(f, damaged)
			f.Close()
			crashed := openAt(t, path, Options{})
			if got := mustOps(t, crashed, key, 0, 10); len(got) != 2 {
				t.Errorf("Ops = %d records, want the 2 before the damage", len(got))
			}
			if kept := crashed.Kept(); len(kept) != 1 || kept[0] != seg+keptSuffix {
				t.Fatalf("Kept() = %q, want [%s%s]", kept, seg, keptSuffix)
			}
			if _, err := os.Stat(seg + keptSuffix); err != nil {
				t.Fatalf("the kept segment: %v", err)
			}
		})
	}
}

// TestSyncNoneCrashAtARollover: without syncs a machine crash may lose
// the tail of a segment while the next one's frames reach the disk. Open
// ends the log at the loss instead of refusing the store, keeps the
// segments it could not read to their end, and takes commits again.
func TestSyncNoneCrashAtARollover(t *testing.T) {
	db := openTest(t, Options{Sync: SyncNone, ApplyEvery: time.Hour})
	key := collab.Key{Collection: "c", ID: "d"}
	mustCommit(t, db, key, []collab.Record{createRec(0, "a", 1, "hello")}, nil)
	big := strings.Repeat("x", 1<<20)
	v := uint64(1)
	var lastOff int64
	segments := func() int {
		db.pmu.Lock() // the applier deletes from the front under it
		defer db.pmu.Unlock()
		return len(db.wal.segs)
	}
	for segments() < 2 {
		lastOff = db.wal.size
		mustCommit(t, db, key, []collab.Record{editRec(v, "a", v+1, big)}, nil)
		v++
	}
	mustCommit(t, db, key, edits(v, 1, "a"), nil)
	path := crashCopy(t, db)
	segs, err := listSegments(path + walSuffix)
	if err != nil || len(segs) != 2 {
		t.Fatalf("listSegments = %v, %v; want 2 segments", segs, err)
	}
	for _, mode := range []string{"lost", "torn"} {
		t.Run(mode, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "c.db")
			copyFile(t, path, p)
			if err := os.Mkdir(p+walSuffix, 0o700); err != nil {
				t.Fatal(err)
			}
			for _, s := range segs {
				copyFile(t, s.path, filepath.Join(p+walSuffix, filepath.Base(s.path)))
			}
			f, err := os.OpenFile(filepath.Join(p+walSuffix, filepath.Base(segs[0].path)), os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			if mode == "lost" {
				f.WriteAt(make([]byte, 1<<20+64), lastOff)
			} else {
				f.WriteAt(make([]byte, 4096), lastOff+frameHeader+8192)
			}
			f.Close()
			crashed, err := Open(p, Options{Sync: SyncNone})
			if err != nil {
				t.Fatalf("Open of a SyncNone store after a crash at a rollover = %v", err)
			}
			defer crashed.Close()
			if len(crashed.Kept()) == 0 {
				t.Error("nothing kept of the segment after the loss")
			}
			got := mustOps(t, crashed, key, 0, v+2)
			mustCommit(t, crashed, key, []collab.Record{editRec(uint64(len(got)), "b", 1, "!")}, nil)
		})
	}
}

// overwrite writes b at offset off of the file at path: damage, or a
// forged frame, in a crashed store's log.
func overwrite(t *testing.T, path string, off int64, b []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}
