package storage

import (
	"fmt"
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
func (db *DB) flushIndex(tx *bolt.Tx) (bool, error) {
	recent, bycoll := tx.Bucket(bucketRecent), tx.Bucket(bucketByColl)
	wrote := false
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
		if !ok {
			continue
		}
		if err := recent.Put(recentKey([]byte(dk), m.modified), []byte{}); err != nil {
			return false, err
		}
		if err := bycoll.Put(collectionKey(e.key, m.modified), []byte{}); err != nil {
			return false, err
		}
		wrote = true
	}
	return wrote, nil
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
// metadata.
func rebuildIndex(tx *bolt.Tx) error {
	for _, name := range [][]byte{bucketRecent, bucketByColl} {
		if err := tx.DeleteBucket(name); err != nil {
			return err
		}
		if _, err := tx.CreateBucket(name); err != nil {
			return err
		}
	}
	recent, bycoll := tx.Bucket(bucketRecent), tx.Bucket(bucketByColl)
	return tx.Bucket(bucketDocs).ForEach(func(dk, v []byte) error {
		key, err := decodeDocKey(dk)
		if err != nil {
			return fmt.Errorf("%w: docs key: %w", ErrCorrupt, err)
		}
		m, err := decodeMeta(v)
		if err != nil {
			return fmt.Errorf("%w: %s: %w", ErrCorrupt, key, err)
		}
		if err := recent.Put(recentKey(dk, m.modified), []byte{}); err != nil {
			return err
		}
		return bycoll.Put(collectionKey(key, m.modified), []byte{})
	})
}
