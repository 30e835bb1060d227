package storage

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"fmt"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/coedit/coedit/collab"
)

// The modification-time indexes (recent, bycollection) are updated
// lazily. Every commit changes its document's modified time, and moving
// an index entry means deleting a key in one leaf page and inserting one
// in another, in both indexes: about four dirty pages a commit, more
// than the op itself. Instead the applier (apply.go), which makes the
// commits' bbolt writes, remembers which documents' entries are stale and
// rewrites them in a later write transaction: at most once per indexFlushEvery, when indexFlushMax
// documents are stale, before List and Check read the indexes, and at
// Close.
//
// Nothing acknowledged depends on the indexes: they are derived from the
// docs metadata, which every commit writes. After a crash the entries of
// the last indexFlushEvery may be stale on disk, so Open rebuilds both
// indexes from the metadata unless the file was closed cleanly; the
// meta bucket's keyIndexClean marks that: Open deletes it, and Close
// writes it after the last flush.
const (
	indexFlushEvery = time.Second
	indexFlushMax   = 4096
)

// keyIndexClean, in the meta bucket, says the indexes are complete: the
// store was closed cleanly since it was last opened.
var keyIndexClean = []byte("index-clean")

// staleEntry is a document whose index entries may not match its
// metadata: what the indexes hold for it on disk.
type staleEntry struct {
	key     collab.Key
	indexed int64 // the modified time its entries carry
	has     bool  // whether it has entries at all
}

// markStale records that dk's index entries, which carry indexed (if
// has), may now be stale. Only the applier calls it (and Open's replay,
// before the applier starts). An entry recorded
// in a transaction that rolls back stays true, since only flushIndex
// changes the indexes.
func (db *DB) markStale(dk []byte, key collab.Key, indexed int64, has bool) {
	if _, ok := db.stale[string(dk)]; ok {
		return
	}
	db.stale[string(dk)] = staleEntry{key: key, indexed: indexed, has: has}
	db.staleCount.Store(int64(len(db.stale)))
}

// flushIndex rewrites the index entries of every stale document in tx. It
// reports whether it wrote anything. The caller clears db.stale once tx
// has committed.
//
// It deletes the old entries first and then puts the new ones in key
// order (putEntries): most of them fall at the newest end of each index,
// in one node, where puts in the map's order, each shifting those put
// before it, made creating 100,000 documents at full speed take 47 s
// instead of 2 (BenchmarkCreateManyDocs), and cost seconds in the first
// flush after an Open that replayed a long log.
func (db *DB) flushIndex(tx *bolt.Tx) (bool, error) {
	recent, bycoll := tx.Bucket(bucketRecent), tx.Bucket(bucketByColl)
	wrote := false
	var puts []indexEntry
	for dk, e := range db.stale {
		m, ok, err := readMeta(tx, []byte(dk))
		if err != nil {
			return false, err
		}
		if e.has && ok && e.indexed == m.modified {
			continue
		}
		if e.has {
			if err := recent.Delete(recentKey([]byte(dk), e.indexed)); err != nil {
				return false, err
			}
			if err := bycoll.Delete(collectionKey(e.key, e.indexed)); err != nil {
				return false, err
			}
			wrote = true
		}
		if ok {
			puts = append(puts, newIndexEntry([]byte(dk), e.key, m.modified))
		}
	}
	if err := putEntries(recent, bycoll, puts); err != nil {
		return false, err
	}
	return wrote || len(puts) > 0, nil
}

// flushed forgets the stale entries after the transaction that flushed
// them committed.
func (db *DB) flushed() {
	clear(db.stale)
	db.staleCount.Store(0)
	db.indexFlushed = time.Now()
}

// closeIndex flushes what is stale and marks the indexes complete. The
// applier calls it when it stops, after applying the whole log. If it fails, the next Open rebuilds
// the indexes.
func (db *DB) closeIndex() {
	// This last commit writes bbolt's free list too (Open sets
	// NoFreelistSync: not on every commit), so that the next Open after
	// a clean Close reads it instead of scanning the whole file for it,
	// which took 3.8 s for a 380 MB file out of the page cache. Nothing
	// commits after it.
	db.bolt.NoFreelistSync = false
	err := db.bolt.Update(func(tx *bolt.Tx) error {
		if _, err := db.flushIndex(tx); err != nil {
			return err
		}
		return tx.Bucket(bucketMeta).Put(keyIndexClean, []byte{1})
	})
	if err == nil {
		db.flushed()
	}
}

// openIndex runs in Open's first write transaction: it rebuilds the
// indexes from the docs metadata unless the store was closed cleanly,
// and marks them incomplete until Close.
func openIndex(tx *bolt.Tx) error {
	meta := tx.Bucket(bucketMeta)
	if meta.Get(keyIndexClean) == nil {
		if err := rebuildIndex(tx); err != nil {
			return fmt.Errorf("rebuild the modification-time indexes: %w", err)
		}
	}
	return meta.Delete(keyIndexClean)
}

// rebuildIndex replaces both indexes with entries made from the docs
// metadata. It runs in Open's first write transaction, so the indexes are
// rebuilt whole or not at all; if Open fails, the mark is still absent
// and the next Open rebuilds again.
//
// It reads every document, then puts the entries in key order
// (putEntries). In docs order (by collection and id), which is neither
// index's order, the rebuild took time quadratic in the number of
// documents: 2.8 s for 30,000, 117 s for 100,000.
//
// A million documents take 1.3-1.8 s and at most about 500 MB of memory
// beside the file's pages (BenchmarkOpenAfterCrash). The entries, 40
// bytes a document, are the least of it: bbolt holds both indexes'
// entries in nodes until the commit writes them, which the rebuild
// always needed.
func rebuildIndex(tx *bolt.Tx) error {
	for _, name := range [][]byte{bucketRecent, bucketByColl} {
		if err := tx.DeleteBucket(name); err != nil {
			return err
		}
		if _, err := tx.CreateBucket(name); err != nil {
			return err
		}
	}
	var entries []indexEntry
	err := tx.Bucket(bucketDocs).ForEach(func(dk, v []byte) error {
		key, err := decodeDocKey(dk)
		if err != nil {
			return fmt.Errorf("%w: docs key: %w", ErrCorrupt, err)
		}
		m, err := decodeMeta(v)
		if err != nil {
			return fmt.Errorf("%w: %s: %w", ErrCorrupt, key, err)
		}
		// dk stays valid for the transaction, as bbolt's keys do.
		entries = append(entries, newIndexEntry(dk, key, m.modified))
		return nil
	})
	if err != nil {
		return err
	}
	recent, bycoll := tx.Bucket(bucketRecent), tx.Bucket(bucketByColl)
	// Filled in key order, full pages waste no space; later flushes
	// delete anywhere but insert mostly at the newest end of each
	// collection, where a full page splits once.
	recent.FillPercent, bycoll.FillPercent = 1, 1
	return putEntries(recent, bycoll, entries)
}

// indexEntry is what the indexes need of one document.
type indexEntry struct {
	desc uint64 // descTime(modified) as a number, which orders as its bytes do
	dk   []byte // the docs key: collectionPrefix, then the id
	idAt int    // where the id starts in dk
}

// newIndexEntry makes the entry of the document at dk (key, decoded),
// last modified at modified. The entry keeps dk.
func newIndexEntry(dk []byte, key collab.Key, modified int64) indexEntry {
	return indexEntry{
		desc: binary.BigEndian.Uint64(descTime(modified)),
		dk:   dk,
		idAt: len(dk) - len(key.ID),
	}
}

// putEntries puts entries into both indexes, each in its key order, and
// sorts entries to do so. Until the transaction commits, bbolt holds a
// node's entries in one sorted slice, and a Put shifts every entry after
// its place: in key order, each Put lands after those before it, so it
// shifts only entries the node had before, never the ones this call put,
// and n entries cost n log n for the sort rather than n² for the shifts.
func putEntries(recent, bycoll *bolt.Bucket, entries []indexEntry) error {
	// Put copies the key (only the value must outlive the call), so one
	// buffer serves every key.
	var key []byte
	empty := []byte{}
	slices.SortFunc(entries, compareByCollection)
	for _, e := range entries {
		key = append(key[:0], e.dk[:e.idAt]...)
		key = binary.BigEndian.AppendUint64(key, e.desc)
		key = append(key, e.dk[e.idAt:]...)
		if err := bycoll.Put(key, empty); err != nil {
			return err
		}
	}
	slices.SortFunc(entries, compareRecent)
	for _, e := range entries {
		key = binary.BigEndian.AppendUint64(key[:0], e.desc)
		key = append(key, e.dk...)
		if err := recent.Put(key, empty); err != nil {
			return err
		}
	}
	return nil
}

// compareRecent orders entries as their recent keys (recentKey) order:
// newest first, then by docs key.
func compareRecent(a, b indexEntry) int {
	if c := cmp.Compare(a.desc, b.desc); c != 0 {
		return c
	}
	return bytes.Compare(a.dk, b.dk)
}

// compareByCollection orders entries as their by-collection keys
// (collectionKey) order: by collection prefix, which no other prefix
// begins with, then newest first, then by id.
func compareByCollection(a, b indexEntry) int {
	if c := bytes.Compare(a.dk[:a.idAt], b.dk[:b.idAt]); c != 0 {
		return c
	}
	if c := cmp.Compare(a.desc, b.desc); c != 0 {
		return c
	}
	return bytes.Compare(a.dk[a.idAt:], b.dk[b.idAt:])
}
