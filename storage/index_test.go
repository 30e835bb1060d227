package storage

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/coedit/coedit/collab"
)

// indexHas reports whether the recent index on disk holds key at modified.
func indexHas(t *testing.T, db *DB, key collab.Key, modified int64) bool {
	t.Helper()
	caughtUp(t, db)
	var has bool
	if err := db.bolt.View(func(tx *bolt.Tx) error {
		has = tx.Bucket(bucketRecent).Get(recentKey(docKey(key), modified)) != nil
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return has
}

func listKeys(t *testing.T, db *DB, collection string) []string {
	t.Helper()
	docs, err := db.List(context.Background(), collection, 0)
	if err != nil {
		t.Fatalf("List(%q) = %v", collection, err)
	}
	var out []string
	for _, d := range docs {
		out = append(out, d.Key.ID)
	}
	return out
}

// TestCommitLeavesIndexToLaterFlush checks that a commit does not move
// its document's modification-time index entries (that cost about four
// dirty pages a commit), yet List, which flushes them first, still
// orders by the latest commit.
func TestCommitLeavesIndexToLaterFlush(t *testing.T) {
	db := openTest(t, Options{})
	db.indexEvery.Store(int64(time.Hour))
	a, b := collab.Key{Collection: "c", ID: "a"}, collab.Key{Collection: "c", ID: "b"}
	mustCommit(t, db, a, []collab.Record{createRec(0, "s", 1, "")}, nil) // time 1000
	mustCommit(t, db, b, []collab.Record{createRec(0, "s", 1, "")}, nil) // time 1000
	if got := listKeys(t, db, "c"); len(got) != 2 {
		t.Fatalf("List = %v, want a and b", got)
	}
	mustCommit(t, db, a, edits(1, 5, "s"), nil) // times 1001..1005
	if !indexHas(t, db, a, 1000) || indexHas(t, db, a, 1005) {
		t.Fatalf("after the commit the index moved a's entry at once, want it left for the next flush")
	}
	if got := listKeys(t, db, "c"); len(got) != 2 || got[0] != "a" {
		t.Fatalf("List(c) = %v, want a (modified last) first", got)
	}
	if got := listKeys(t, db, ""); len(got) != 2 || got[0] != "a" {
		t.Fatalf("List() = %v, want a first", got)
	}
	if indexHas(t, db, a, 1000) || !indexHas(t, db, a, 1005) {
		t.Fatalf("after List the index still holds a's old entry, want it flushed")
	}
	if err := db.Check(context.Background()); err != nil {
		t.Fatalf("Check = %v", err)
	}
}

// TestOpenRebuildsStaleIndex checks that a file left with stale index
// entries (as by a crash: a copy taken while the store was open) opens
// with indexes that match the documents, so List and Check are right.
func TestOpenRebuildsStaleIndex(t *testing.T) {
	db := openTest(t, Options{})
	db.indexEvery.Store(int64(time.Hour))
	a, b := collab.Key{Collection: "c", ID: "a"}, collab.Key{Collection: "c", ID: "b"}
	mustCommit(t, db, a, []collab.Record{createRec(0, "s", 1, "")}, nil)
	mustCommit(t, db, b, []collab.Record{createRec(0, "s", 1, "")}, nil)
	listKeys(t, db, "")
	mustCommit(t, db, a, edits(1, 3, "s"), nil)
	mustCommit(t, db, collab.Key{Collection: "c", ID: "new"}, []collab.Record{createRec(0, "s", 1, ""), editRec(1, "s", 2, "x"), editRec(2, "s", 3, "y"), editRec(3, "s", 4, "z"), editRec(4, "s", 5, "w")}, nil)
	// bbolt holds the records (as after a crash whose log Open replayed),
	// but not their index entries.
	if err := db.catchUp(context.Background(), false, nil); err != nil {
		t.Fatal(err)
	}
	crashed := filepath.Join(t.TempDir(), "crashed.db")
	if err := db.bolt.View(func(tx *bolt.Tx) error { return tx.CopyFile(crashed, 0o600) }); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(crashed+walSuffix, 0o700); err != nil { // bbolt holds every record
		t.Fatal(err)
	}
	db2 := openAt(t, crashed, Options{})
	if err := db2.Check(context.Background()); err != nil {
		t.Fatalf("Check after reopening the crashed copy = %v", err)
	}
	if got := listKeys(t, db2, "c"); len(got) != 3 || got[0] != "new" || got[1] != "a" || got[2] != "b" {
		t.Fatalf("List(c) = %v, want [new a b]", got)
	}
}

// TestCloseLeavesIndexComplete checks that Close flushes the stale
// entries and marks the file so the next Open need not rebuild.
func TestCloseLeavesIndexComplete(t *testing.T) {
	path := tempPath(t)
	db, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	db.indexEvery.Store(int64(time.Hour))
	a := collab.Key{Collection: "c", ID: "a"}
	mustCommit(t, db, a, []collab.Record{createRec(0, "s", 1, "")}, nil)
	mustCommit(t, db, a, edits(1, 2, "s"), nil)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	bdb, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer bdb.Close()
	if err := bdb.View(func(tx *bolt.Tx) error {
		if tx.Bucket(bucketMeta).Get(keyIndexClean) == nil {
			t.Error("after Close the file is not marked index-clean")
		}
		if tx.Bucket(bucketRecent).Get(recentKey(docKey(a), 1002)) == nil {
			t.Error("after Close the recent index lacks a's latest entry")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}
