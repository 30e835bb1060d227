package storage

import (
	"encoding/binary"
	"math"
	"os"
	"testing"

	"github.com/coedit/coedit/collab"
)

// syncedFreelist reports whether the newest of the bbolt file's two meta
// pages names a free list page: bbolt then reads it at Open, where
// without one it scans the whole file to find the free pages. (bbolt's
// meta page: a 16-byte page header, then magic, version, page size and
// flags, 4 bytes each, the root bucket, 16, the free list's page id, 8,
// the high water mark, 8, and the transaction id, 8.)
func syncedFreelist(t *testing.T, path string) bool {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	pageSize := int(binary.LittleEndian.Uint32(b[16+8:]))
	var freelist, txid uint64
	for i := range 2 {
		m := b[i*pageSize+16:]
		if id := binary.LittleEndian.Uint64(m[48:]); i == 0 || id > txid {
			txid, freelist = id, binary.LittleEndian.Uint64(m[32:])
		}
	}
	return freelist != math.MaxUint64
}

// TestCleanCloseWritesTheFreelist: commits leave bbolt's free list
// unwritten (NoFreelistSync), and a clean Close writes it, so that the
// next Open reads it rather than scan the file; a crash leaves none, and
// that Open scans.
func TestCleanCloseWritesTheFreelist(t *testing.T) {
	path := tempPath(t)
	db, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	key := collab.Key{Collection: "c", ID: "d"}
	mustCommit(t, db, key, []collab.Record{createRec(0, "a", 1, "hello")}, nil)
	caughtUp(t, db)
	if syncedFreelist(t, path) {
		t.Fatal("the free list was written by a commit; want it left to Close")
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if !syncedFreelist(t, path) {
		t.Fatal("no free list written at a clean Close")
	}
	openAt(t, path, Options{})
}
