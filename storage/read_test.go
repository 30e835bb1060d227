package storage

import (
	"context"
	"errors"
	"fmt"
	"math"
	"reflect"
	"testing"

	"github.com/coedit/coedit/collab"
	"github.com/coedit/coedit/ot"
)

func TestOps(t *testing.T) {
	db := openTest(t, Options{})
	key := collab.Key{Collection: "c", ID: "d"}
	// More than two read chunks' worth of records, in uneven commits.
	const head = 2*opsChunk + 37
	var all []collab.Record
	for v := 0; v < head; {
		n := min(1+v%300, head-v)
		recs := edits(uint64(v), n, fmt.Sprint("s", v%4))
		mustCommit(t, db, key, recs, nil)
		all = append(all, recs...)
		v += n
	}
	for _, tc := range []struct {
		from, to uint64
		want     []collab.Record
	}{
		{0, head, all},
		{0, math.MaxUint64, all},
		{5, 6, all[5:6]},
		{opsChunk - 1, opsChunk + 1, all[opsChunk-1 : opsChunk+1]},
		{10, 2*opsChunk + 10, all[10 : 2*opsChunk+10]},
		{head - 1, head + 100, all[head-1:]},
		{head, head + 1, nil},
		{head + 5, math.MaxUint64, nil},
		{7, 7, nil},
		{8, 7, nil},
		{math.MaxUint64, 0, nil},
	} {
		got := mustOps(t, db, key, tc.from, tc.to)
		if !equalRecords(got, tc.want) {
			t.Errorf("Ops(%s, %d, %d) = %d records, want %d", key, tc.from, tc.to, len(got), len(tc.want))
		}
	}
	if got := mustOps(t, db, collab.Key{Collection: "c", ID: "none"}, 0, 10); len(got) != 0 {
		t.Errorf("Ops(never seen) = %+v, want none", got)
	}
	if _, err := db.Ops(context.Background(), collab.Key{ID: "x"}, 0, 1); !errors.Is(err, ErrInvalidKey) {
		t.Errorf("Ops(invalid key) = %v, want ErrInvalidKey", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := db.Ops(ctx, key, 0, head); !errors.Is(err, context.Canceled) {
		t.Errorf("Ops(cancelled) = %v, want context.Canceled", err)
	}
}

// TestSnapshotAt commits one record at a time with a snapshot every 4
// versions and milestones every 10, and checks SnapshotAt at every
// version against the milestones the rule implies.
func TestSnapshotAt(t *testing.T) {
	db := openTest(t, Options{MilestoneEvery: 10})
	ctx := context.Background()
	key := collab.Key{Collection: "c", ID: "d"}
	snap := func(v uint64) collab.Snapshot {
		return collab.Snapshot{Version: v, Type: ot.URI, Data: fmt.Sprint("at ", v)}
	}
	const head = 50
	for v := uint64(0); v < head; v++ {
		var s *collab.Snapshot
		if (v+1)%4 == 0 {
			sv := snap(v + 1)
			s = &sv
		}
		mustCommit(t, db, key, edits(v, 1, "s"), s)
	}
	// Snapshots at 4, 8, ..., 48; milestones where a snapshot is at least
	// 10 past the previous milestone: 12, 24, 36, 48. The latest is 48.
	milestones := []uint64{12, 24, 36, 48}
	for v := uint64(0); v <= head+1; v++ {
		var want collab.Snapshot
		for _, m := range milestones {
			if m <= v {
				want = snap(m)
			}
		}
		got, err := db.SnapshotAt(ctx, key, v)
		if err != nil || got != want {
			t.Errorf("SnapshotAt(%d) = %+v, %v; want %+v", v, got, err, want)
		}
	}
	if got, err := db.SnapshotAt(ctx, key, math.MaxUint64); err != nil || got != snap(48) {
		t.Errorf("SnapshotAt(max) = %+v, %v; want %+v", got, err, snap(48))
	}
	// A newer latest snapshot that is not a milestone is found too.
	mustCommit(t, db, key, edits(head, 2, "s"), &collab.Snapshot{Version: head + 2, Type: ot.URI, Data: "latest"})
	for v, want := range map[uint64]collab.Snapshot{
		head + 1: snap(48), head + 2: {Version: head + 2, Type: ot.URI, Data: "latest"}, 30: snap(24),
	} {
		if got, err := db.SnapshotAt(ctx, key, v); err != nil || got != want {
			t.Errorf("SnapshotAt(%d) = %+v, %v; want %+v", v, got, err, want)
		}
	}
	if got, err := db.SnapshotAt(ctx, collab.Key{Collection: "c", ID: "none"}, 10); err != nil || got != (collab.Snapshot{}) {
		t.Errorf("SnapshotAt(never seen) = %+v, %v; want the zero Snapshot", got, err)
	}
}

func TestSaveSnapshot(t *testing.T) {
	ctx := context.Background()
	key := collab.Key{Collection: "c", ID: "d"}
	s := func(v uint64) collab.Snapshot { return collab.Snapshot{Version: v, Type: ot.URI, Data: fmt.Sprint(v)} }
	for _, tc := range []struct {
		name     string
		save     collab.Snapshot
		wantErr  error
		wantSnap collab.Snapshot // Load's snapshot afterwards
	}{
		{"newer", s(6), nil, s(6)},
		{"at head", s(8), nil, s(8)},
		{"same as stored", collab.Snapshot{Version: 3, Data: "other"}, nil, s(3)},
		{"older", s(2), nil, s(3)},
		{"zero", collab.Snapshot{}, nil, s(3)},
		{"past head", s(9), ErrInvalidSnapshot, s(3)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db := openTest(t, Options{MilestoneEvery: 5})
			mustCommit(t, db, key, edits(0, 8, "a"), &collab.Snapshot{Version: 3, Type: ot.URI, Data: "3"})
			err := db.SaveSnapshot(ctx, key, tc.save)
			if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil) != (err == nil) {
				t.Fatalf("SaveSnapshot(%+v) = %v, want %v", tc.save, err, tc.wantErr)
			}
			st := mustLoad(t, db, key)
			if st.Snapshot != tc.wantSnap || len(st.Ops) != int(8-tc.wantSnap.Version) {
				t.Errorf("after SaveSnapshot(%+v): Load = snapshot %+v with %d ops, want %+v with %d",
					tc.save, st.Snapshot, len(st.Ops), tc.wantSnap, 8-tc.wantSnap.Version)
			}
			// MilestoneEvery 5: the saved snapshot is a milestone if it is
			// at 5 or later, and then still found once a newer snapshot
			// replaces it as the latest.
			mustCommit(t, db, key, edits(8, 2, "a"), &collab.Snapshot{Version: 10, Type: ot.URI, Data: "10"})
			var want collab.Snapshot
			if tc.wantSnap.Version >= 5 {
				want = tc.wantSnap
			}
			if got, err := db.SnapshotAt(ctx, key, 9); err != nil || got != want {
				t.Errorf("SnapshotAt(9) after saving %+v = %+v, %v; want %+v", tc.save, got, err, want)
			}
		})
	}
	t.Run("never seen", func(t *testing.T) {
		db := openTest(t, Options{})
		if err := db.SaveSnapshot(ctx, key, collab.Snapshot{}); err != nil {
			t.Errorf("SaveSnapshot(never seen, v0) = %v, want nil", err)
		}
		if err := db.SaveSnapshot(ctx, key, s(1)); !errors.Is(err, ErrInvalidSnapshot) {
			t.Errorf("SaveSnapshot(never seen, v1) = %v, want ErrInvalidSnapshot", err)
		}
		if list, _ := db.List(ctx, "", 0); len(list) != 0 {
			t.Errorf("List after snapshots of an unknown doc = %+v, want empty", list)
		}
		if err := db.SaveSnapshot(ctx, collab.Key{Collection: "c"}, s(0)); !errors.Is(err, ErrInvalidKey) {
			t.Errorf("SaveSnapshot(invalid key) = %v, want ErrInvalidKey", err)
		}
	})
}

func TestList(t *testing.T) {
	db := openTest(t, Options{})
	ctx := context.Background()
	k := func(c, id string) collab.Key { return collab.Key{Collection: c, ID: id} }
	at := func(r collab.Record, ms int64) []collab.Record { r.Time = ms; return []collab.Record{r} }
	// (key, time) of each commit, in commit order.
	mustCommit(t, db, k("notes", "a"), at(createRec(0, "s", 1, "x"), 100), nil)
	mustCommit(t, db, k("notes", "b"), at(createRec(0, "s", 2, "x"), 200), nil)
	mustCommit(t, db, k("wiki", "a"), at(createRec(0, "s", 3, "x"), 150), nil)
	mustCommit(t, db, k("note", "sa"), at(createRec(0, "s", 4, "x"), 300), nil) // "note" is a prefix of "notes"
	mustCommit(t, db, k("notes", "a"), at(editRec(1, "s", 5, "y"), 400), nil)
	mustCommit(t, db, k("wiki", "a"), at(deleteRec(1, "s", 6), 250), nil)
	mustCommit(t, db, k("notes", "c"), at(createRec(0, "s", 7, "x"), 200), nil) // ties with notes/b
	mustCommit(t, db, k("wiki", "neg"), at(createRec(0, "s", 8, "x"), -5), nil)

	info := func(key collab.Key, v uint64, typ string, created, modified int64) collab.DocInfo {
		return collab.DocInfo{Key: key, Version: v, Type: typ, Created: created, Modified: modified}
	}
	notesA := info(k("notes", "a"), 2, ot.URI, 100, 400)
	noteSA := info(k("note", "sa"), 1, ot.URI, 300, 300)
	wikiA := info(k("wiki", "a"), 2, "", 150, 250)
	notesB := info(k("notes", "b"), 1, ot.URI, 200, 200)
	notesC := info(k("notes", "c"), 1, ot.URI, 200, 200)
	wikiNeg := info(k("wiki", "neg"), 1, ot.URI, -5, -5)
	for _, tc := range []struct {
		coll  string
		limit int
		want  []collab.DocInfo
	}{
		{"", 0, []collab.DocInfo{notesA, noteSA, wikiA, notesB, notesC, wikiNeg}},
		{"", 2, []collab.DocInfo{notesA, noteSA}},
		{"", 100, []collab.DocInfo{notesA, noteSA, wikiA, notesB, notesC, wikiNeg}},
		{"notes", 0, []collab.DocInfo{notesA, notesB, notesC}},
		{"notes", 1, []collab.DocInfo{notesA}},
		{"note", 0, []collab.DocInfo{noteSA}},
		{"wiki", 0, []collab.DocInfo{wikiA, wikiNeg}},
		{"none", 0, nil},
	} {
		got, err := db.List(ctx, tc.coll, tc.limit)
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("List(%q, %d) = %+v, %v;\nwant %+v", tc.coll, tc.limit, got, err, tc.want)
		}
	}
	if _, err := db.List(ctx, "", -1); err == nil {
		t.Errorf("List(limit -1) = nil error, want an error")
	}
	// A snapshot alone does not change the modification time.
	mustCommit(t, db, k("wiki", "neg"), nil, &collab.Snapshot{Version: 1, Type: ot.URI, Data: "x"})
	if got, _ := db.List(ctx, "wiki", 0); !reflect.DeepEqual(got, []collab.DocInfo{wikiA, wikiNeg}) {
		t.Errorf("List(wiki) after a snapshot = %+v, want %+v", got, []collab.DocInfo{wikiA, wikiNeg})
	}
}

func TestLoadErrors(t *testing.T) {
	db := openTest(t, Options{})
	ctx := context.Background()
	if _, err := db.Load(ctx, collab.Key{Collection: "c"}); !errors.Is(err, ErrInvalidKey) {
		t.Errorf("Load(empty id) = %v, want ErrInvalidKey", err)
	}
	if _, err := db.SnapshotAt(ctx, collab.Key{ID: "d"}, 0); !errors.Is(err, ErrInvalidKey) {
		t.Errorf("SnapshotAt(empty collection) = %v, want ErrInvalidKey", err)
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := db.Load(cancelled, collab.Key{Collection: "c", ID: "d"}); !errors.Is(err, context.Canceled) {
		t.Errorf("Load(cancelled) = %v, want context.Canceled", err)
	}
}
