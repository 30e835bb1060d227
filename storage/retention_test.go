package storage

import (
	"context"
	"fmt"
	"maps"
	"math/bits"
	"math/rand/v2"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/coedit/coedit/collab"
	"github.com/coedit/coedit/ot"
)

// srcName is the src of the i-th connection in the seq table tests.
func srcName(i int) string { return fmt.Sprintf("%032d", i) }

// commitManySrcs commits n edits to key, each from a src of its own (the
// shape of a document that n short-lived connections each edited once).
func commitManySrcs(t testing.TB, db *DB, key collab.Key, n int) {
	t.Helper()
	const batch = 5000
	for v := 0; v < n; v += batch {
		recs := make([]collab.Record, min(batch, n-v))
		for i := range recs {
			recs[i] = editRec(uint64(v+i), srcName(v+i), 1, "x")
		}
		mustCommit(t, db, key, recs, nil)
	}
}

// TestSeqTableKeepsOnlyItsWindow: 300,000 connections, each committing one
// op, used to leave 300,000 seq entries that every session start loaded.
// Now the table holds the srcs of the newest SeqWindow versions only, each
// with its right seq and version.
func TestSeqTableKeepsOnlyItsWindow(t *testing.T) {
	db := openTest(t, Options{Sync: SyncNone})
	key := collab.Key{Collection: "c", ID: "busy"}
	const n, window = 300_000, 10_000
	commitManySrcs(t, db, key, n)
	st := mustLoad(t, db, key)
	if len(st.Seqs) != window {
		t.Fatalf("Load after %d srcs: %d seq entries, want the window of %d", n, len(st.Seqs), window)
	}
	for v := n - window; v < n; v++ {
		if e, ok := st.Seqs[srcName(v)]; !ok || e != (collab.SeqEntry{Seq: 1, Version: uint64(v)}) {
			t.Fatalf("Seqs[src of version %d] = %+v, %v; want seq 1 at %d", v, e, ok, v)
		}
	}
	if e, ok := st.Seqs[srcName(n-window-1)]; ok {
		t.Errorf("Seqs has the src of version %d, below the window: %+v", n-window-1, e)
	}
}

// TestSeqTablePruneModel commits random batches from a few srcs, with a
// small window, and after each commit compares the loaded seq table with
// a model: each src's last record, if it is among the newest SeqWindow
// versions. A reopen with a smaller window prunes further at the next
// commit.
func TestSeqTablePruneModel(t *testing.T) {
	path := tempPath(t)
	rng := rand.New(rand.NewPCG(7, 9))
	key := collab.Key{Collection: "c", ID: "d"}
	last := map[string]collab.SeqEntry{}
	seqs := map[string]uint64{}
	head := uint64(0)
	run := func(db *DB, window uint64, commits int) {
		for range commits {
			recs := make([]collab.Record, 1+rng.IntN(4))
			for i := range recs {
				src := fmt.Sprint("s", rng.IntN(6))
				if rng.IntN(5) == 0 {
					src = "" // the HTTP API's submits have none
				}
				seqs[src]++
				recs[i] = editRec(head+uint64(i), src, seqs[src], "y")
				if src != "" {
					last[src] = collab.SeqEntry{Seq: seqs[src], Version: head + uint64(i)}
				}
			}
			mustCommit(t, db, key, recs, nil)
			head += uint64(len(recs))
			want := map[string]collab.SeqEntry{}
			for src, e := range last {
				if e.Version+window >= head {
					want[src] = e
				}
			}
			if got := mustLoad(t, db, key).Seqs; !maps.Equal(got, want) {
				t.Fatalf("window %d, head %d: Load().Seqs = %v, want %v", window, head, got, want)
			}
		}
	}
	db, err := Open(path, Options{SeqWindow: 8})
	if err != nil {
		t.Fatal(err)
	}
	run(db, 8, 200)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	run(openAt(t, path, Options{SeqWindow: 3}), 3, 50)
}

// maxMilestones is the bound the milestone rule promises for a document
// at head: milestoneRecent+1 young ones, and for each doubling of age
// past that milestoneRecent/2 windows, plus one where a window straddles
// the boundary on each side.
func maxMilestones(head, every uint64) int {
	levels := bits.Len64(head / (milestoneRecent * every))
	return milestoneRecent + 1 + (milestoneRecent/2+2)*levels
}

// snapshotVersions lists the versions in key's snapshots bucket.
func snapshotVersions(t testing.TB, db *DB, key collab.Key) (vs []uint64) {
	t.Helper()
	caughtUp(t, db)
	err := db.bolt.View(func(tx *bolt.Tx) error {
		snaps := tx.Bucket(bucketDoc).Bucket(docKey(key)).Bucket(bucketSnaps)
		if snaps == nil {
			return nil
		}
		return snaps.ForEach(func(k, _ []byte) error {
			v, err := decodeVersionKey(k)
			vs = append(vs, v)
			return err
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return vs
}

// checkHistory compares SnapshotAt(v) plus the ops from it to v with a
// replay of the whole log from version 0, for every step-th version.
func checkHistory(t *testing.T, db *DB, key collab.Key, head uint64, step uint64) {
	t.Helper()
	ctx := context.Background()
	apply := func(doc *ot.Rope, r collab.Record) *ot.Rope {
		switch r.Kind {
		case collab.OpCreate:
			return ot.NewRope(r.Data)
		case collab.OpDelete:
			return ot.NewRope("")
		}
		if err := doc.Apply(r.Op); err != nil {
			t.Fatalf("record %d does not apply: %v", r.Version, err)
		}
		return doc
	}
	all := mustOps(t, db, key, 0, head)
	replay := ot.NewRope("")
	for v := uint64(0); v <= head; v++ {
		if v%step == 0 || v == head {
			base, err := db.SnapshotAt(ctx, key, v)
			if err != nil || base.Version > v {
				t.Fatalf("SnapshotAt(%d) = version %d, %v", v, base.Version, err)
			}
			doc := ot.NewRope(base.Data)
			for _, r := range mustOps(t, db, key, base.Version, v) {
				doc = apply(doc, r)
			}
			if got, want := doc.String(), replay.String(); got != want {
				t.Fatalf("text at %d from the snapshot at %d = %.40q..., replay from 0 = %.40q...", v, base.Version, got, want)
			}
		}
		if v < head {
			replay = apply(replay, all[v])
		}
	}
}

// TestMilestonesThinOutWithAge edits a small document 12,000 times,
// committing 5 versions at a time with a snapshot, with milestones every
// 10. Milestones used to be
// kept forever (1,200 of them here); now their number stays within the
// logarithmic bound at every step, and every past version still reads
// right.
func TestMilestonesThinOutWithAge(t *testing.T) {
	const every, snapEvery, head = 10, 5, 12_000
	db := openTest(t, Options{Sync: SyncNone, MilestoneEvery: every})
	key := collab.Key{Collection: "c", ID: "small"}
	rope := ot.NewRope(strings.Repeat("abcdefghij", 10))
	recs := []collab.Record{createRec(0, "s", 1, rope.String())}
	for v := uint64(1); v < head; v++ {
		// Insert one letter and delete the next: the document keeps its
		// size, so only the age rule thins the milestones.
		p := int(v*7919) % rope.Len()
		op := ot.Op{{Kind: ot.KindInsert, N: 1, Text: string(rune('a' + v%26))}, {Kind: ot.KindDelete, N: 1}}
		if p > 0 {
			op = append(ot.Op{{Kind: ot.KindSkip, N: p}}, op...)
		}
		if err := rope.Apply(op); err != nil {
			t.Fatal(err)
		}
		recs = append(recs, collab.Record{Version: v, Src: "s", Seq: v + 1, Kind: collab.OpEdit, Op: op, Time: int64(v)})
		if (v+1)%snapEvery != 0 {
			continue
		}
		mustCommit(t, db, key, recs, &collab.Snapshot{Version: v + 1, Type: ot.URI, Data: rope.String()})
		recs = recs[:0]
		vs := snapshotVersions(t, db, key)
		if max := maxMilestones(v+1, every); len(vs)-1 > max {
			t.Fatalf("at head %d: %d milestones %v, want at most %d", v+1, len(vs)-1, vs, max)
		}
	}
	vs := snapshotVersions(t, db, key)
	t.Logf("%d milestones at head %d: %v", len(vs)-1, head, vs)
	checkHistory(t, db, key, head, 61)
}

// TestMilestonesSkipBigDocumentSmallOps: a 1 MB document edited 3,000
// times by one letter kept a full copy every 1,000 versions. Its ops since
// the start are a small fraction of its size, so replaying them is cheaper
// than a copy: no milestone is kept, only the latest snapshot, and
// history still reads right.
func TestMilestonesSkipBigDocumentSmallOps(t *testing.T) {
	db := openTest(t, Options{Sync: SyncNone})
	key := collab.Key{Collection: "c", ID: "big"}
	base := strings.Repeat("0123456789abcdef", 1<<16)
	mustCommit(t, db, key, []collab.Record{createRec(0, "s", 1, base)}, nil)
	const head = 3000
	for v := uint64(1); v < head; v++ {
		var snap *collab.Snapshot
		if (v+1)%500 == 0 {
			snap = &collab.Snapshot{Version: v + 1, Type: ot.URI, Data: strings.Repeat("x", int(v)) + base}
		}
		mustCommit(t, db, key, []collab.Record{editRec(v, "s", v+1, "x")}, snap)
	}
	if vs := snapshotVersions(t, db, key); len(vs) != 1 || vs[0] != head {
		t.Errorf("snapshots kept = %v, want only the latest, %d", vs, head)
	}
	checkHistory(t, db, key, head, 499)
}
