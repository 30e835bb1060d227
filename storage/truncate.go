package storage

import (
	"context"
	"errors"
	"fmt"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/coedit/coedit/collab"
)

// This file holds what a node of a cluster needs of its store besides
// collab.Store (collab/redisrelay, DESIGN.md §7): dropping a document's
// records from a version on, when the cluster's history replaced them
// (collab.Truncater), and a durable note of the epoch the stored records
// belong to. Truncate goes through a group commit and the op log, like
// Commit (reads of the document wait for the applier to apply it: they
// cannot model it over bbolt); the note touches neither records nor
// indexes and is written in a bbolt transaction of its own, after the
// log is applied (DB.direct). Both are rare, and the document's one session makes them, so
// they never race a commit of the same document.

// keyEpoch, inside a document's bucket, holds the epoch note.
var keyEpoch = []byte("epoch")

var _ collab.Truncater = (*DB)(nil)

// Truncate deletes key's records with Version >= from, every snapshot
// and milestone past from, and the seq entries of those records (the
// table is rebuilt from the records left within Options.SeqWindow), and
// recomputes the document's metadata from the records left: afterwards
// the store holds the document as it was at version from. A from at or
// past the head, or a document the store has never seen, changes
// nothing.
//
// The op log below the head is otherwise never rewritten; Truncate is
// for a cluster node whose records from some version on are not the
// cluster's history (collab.ClusterLink.Sync). It reads the whole op log
// of the document to recompute its metadata.
func (db *DB) Truncate(ctx context.Context, key collab.Key, from uint64) error {
	if err := checkKey(key); err != nil {
		return fmt.Errorf("storage: truncate: %w", err)
	}
	if err := db.enqueue(ctx, &commitReq{key: key, dk: docKey(key), truncate: &from}); err != nil {
		return fmt.Errorf("storage: truncate %s from version %d: %w", key, from, err)
	}
	return nil
}

// applyTruncate is apply for a Truncate request.
func (db *DB) applyTruncate(tx *bolt.Tx, r *commitReq, lsn uint64) (bool, error) {
	from := *r.truncate
	m, ok, err := readMeta(tx, r.dk)
	if err != nil || !ok || from >= m.head {
		return false, err
	}
	doc, err := docBucket(tx, r.dk)
	if err != nil {
		return false, err
	}
	if err := db.truncate(tx, r.key, r.dk, doc, m, from, lsn); err != nil {
		return false, writeError{err}
	}
	return true, nil
}

// truncate does Truncate's work in tx for a document whose head is past
// from.
func (db *DB) truncate(tx *bolt.Tx, key collab.Key, dk []byte, doc *bolt.Bucket, old docMeta, from, lsn uint64) error {
	ops := doc.Bucket(bucketOps)
	if ops == nil {
		return fmt.Errorf("%w: document has no op log", ErrCorrupt)
	}
	base, err := readBase(doc)
	if err != nil {
		return err
	}
	if from < base {
		return fmt.Errorf("%w: truncate from %d, base %d", ErrBeforeBase, from, base)
	}
	if err := deleteFrom(ops, from); err != nil {
		return err
	}
	m := docMeta{head: from, applied: lsn}
	if base > 0 {
		// The state at the base (base.go) is its snapshot's, which no
		// truncation drops: from is at or past it.
		m.typ, m.deleted, m.created, m.modified = old.typ, old.deleted, old.created, old.modified
		if snaps := doc.Bucket(bucketSnaps); snaps != nil {
			h, _, err := readHeader(snaps, base)
			if err != nil {
				return err
			}
			m.typ, m.deleted = h.typ, h.typ == ""
		}
	}
	if snaps := doc.Bucket(bucketSnaps); snaps != nil {
		var drop [][]byte
		c := snaps.Cursor()
		for k, _ := c.Seek(versionKey(from + 1)); k != nil; k, _ = c.Next() {
			drop = append(drop, k)
		}
		for _, k := range drop {
			if err := snaps.DeleteBucket(k); err != nil {
				return err
			}
		}
		if k, _ := c.Last(); k != nil {
			v, err := decodeVersionKey(k)
			if err != nil {
				return fmt.Errorf("%w: snapshot key: %w", ErrCorrupt, err)
			}
			m.snap = v
		}
	}
	// The metadata, replayed from the records that stay (as Check does).
	err = ops.ForEach(func(k, v []byte) error {
		ver, err := decodeVersionKey(k)
		if err != nil {
			return fmt.Errorf("%w: op key: %w", ErrCorrupt, err)
		}
		r, err := decodeRecord(ver, v)
		if err != nil {
			return fmt.Errorf("%w: record at version %d: %w", ErrCorrupt, ver, err)
		}
		m.opBytes += uint64(len(v) - len(r.Data))
		m.modified = r.Time
		switch r.Kind {
		case collab.OpCreate:
			m.typ, m.created, m.deleted = r.Type, r.Time, false
		case collab.OpDelete:
			m.typ, m.deleted = "", true
		}
		return nil
	})
	if err != nil {
		return err
	}
	// The seq table, rebuilt from the records within the window.
	if err := doc.DeleteBucket(bucketSeqs); err != nil && !errors.Is(err, berrors.ErrBucketNotFound) {
		return err
	}
	seqs, err := doc.CreateBucket(bucketSeqs)
	if err != nil {
		return err
	}
	m.seqFloor = max(seqFloor(from, db.opts.SeqWindow), base)
	c := ops.Cursor()
	for k, v := c.Seek(versionKey(m.seqFloor)); k != nil; k, v = c.Next() {
		ver, err := decodeVersionKey(k)
		if err != nil {
			return fmt.Errorf("%w: op key: %w", ErrCorrupt, err)
		}
		r, err := decodeRecord(ver, v)
		if err != nil {
			return fmt.Errorf("%w: record at version %d: %w", ErrCorrupt, ver, err)
		}
		if r.Src != "" {
			if err := seqs.Put([]byte(r.Src), encodeSeqEntry(collab.SeqEntry{Seq: r.Seq, Version: ver})); err != nil {
				return err
			}
		}
	}
	if err := tx.Bucket(bucketDocs).Put(dk, encodeMeta(&m)); err != nil {
		return err
	}
	if old.modified != m.modified {
		// The index entries move later, with others (index.go).
		db.markStale(dk, key, old.modified, true)
	}
	return nil
}

// deleteFrom deletes the keys of ops from version from on.
func deleteFrom(ops *bolt.Bucket, from uint64) error {
	var drop [][]byte
	c := ops.Cursor()
	for k, _ := c.Seek(versionKey(from)); k != nil; k, _ = c.Next() {
		drop = append(drop, k)
	}
	for _, k := range drop {
		if err := ops.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

// Epoch returns the epoch note of key: the name of the cluster history
// the stored records belong to, as SetEpoch last wrote it ("" when none
// was written, or the store has no records of key).
func (db *DB) Epoch(ctx context.Context, key collab.Key) (string, error) {
	if err := checkKey(key); err != nil {
		return "", fmt.Errorf("storage: epoch: %w", err)
	}
	dk := docKey(key)
	var epoch string
	if db.pendingFor(dk) {
		// The note lives in the document's bucket, which a pending
		// first commit has yet to create.
		if err := db.catchUp(ctx, false, nil); err != nil {
			return "", fmt.Errorf("storage: epoch %s: %w", key, err)
		}
	}
	err := db.view(ctx, func(tx *bolt.Tx) error {
		if doc := tx.Bucket(bucketDoc).Bucket(dk); doc != nil {
			epoch = string(doc.Get(keyEpoch))
		}
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("storage: epoch %s: %w", key, err)
	}
	return epoch, nil
}

// SetEpoch durably notes that key's stored records belong to the cluster
// history named epoch (a prefix of it). A document the store has no
// records of keeps no note (an empty log is a prefix of every history):
// SetEpoch then does nothing and returns false.
func (db *DB) SetEpoch(ctx context.Context, key collab.Key, epoch string) (bool, error) {
	if err := checkKey(key); err != nil {
		return false, fmt.Errorf("storage: set epoch: %w", err)
	}
	dk := docKey(key)
	set := false
	// Written beside the log, with every logged request applied first:
	// the document's records must be in bbolt for its bucket to be.
	err := db.update(ctx, func(tx *bolt.Tx) error {
		doc := tx.Bucket(bucketDoc).Bucket(dk)
		if doc == nil {
			return nil
		}
		set = true
		if string(doc.Get(keyEpoch)) == epoch {
			return nil
		}
		return doc.Put(keyEpoch, []byte(epoch))
	})
	if err != nil {
		return false, fmt.Errorf("storage: set epoch %s: %w", key, err)
	}
	return set, nil
}
