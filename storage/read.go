package storage

import (
	"bytes"
	"context"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/coedit/coedit/collab"
)

// opsChunk is the most records Ops reads in one read transaction, so that
// reading a long history does not hold one transaction open throughout.
const opsChunk = 1024

// Load returns key's latest snapshot, the records after it up to the head,
// and its seq table, all from one read transaction. A document the store
// has never seen loads as the zero DocState. The number of records is
// bounded by how often the caller saves snapshots, the seq table by
// Options.SeqWindow: it holds the srcs whose last record is among the
// newest SeqWindow versions.
func (db *DB) Load(ctx context.Context, key collab.Key) (collab.DocState, error) {
	if err := checkKey(key); err != nil {
		return collab.DocState{}, fmt.Errorf("storage: load: %w", err)
	}
	dk := docKey(key)
	var st collab.DocState
	ov, err := db.overlayFor(ctx, dk)
	if err == nil {
		err = db.view(ctx, func(tx *bolt.Tx) error {
			st = collab.DocState{}
			return loadTx(tx, dk, ov, &st, db.opts.SeqWindow)
		})
	}
	if err != nil {
		return collab.DocState{}, fmt.Errorf("storage: load %s: %w", key, err)
	}
	return st, nil
}

// loadTx is Load in tx, with ov (if not nil) the document's pending
// requests over what bbolt holds.
func loadTx(tx *bolt.Tx, dk []byte, ov *overlay, st *collab.DocState, window uint64) error {
	m, ok, err := readMeta(tx, dk)
	if err != nil || (!ok && ov == nil) {
		return err
	}
	var doc *bolt.Bucket
	if ok {
		if doc, err = docBucket(tx, dk); err != nil {
			return err
		}
	}
	if m.snap > 0 {
		snaps := doc.Bucket(bucketSnaps)
		if snaps == nil {
			return fmt.Errorf("%w: snapshot at version %d is missing", ErrCorrupt, m.snap)
		}
		if st.Snapshot, err = readSnapshot(snaps, m.snap); err != nil {
			return err
		}
	}
	if ov != nil && len(ov.snaps) > 0 {
		if s := ov.snaps[len(ov.snaps)-1].snap; s.Version > st.Snapshot.Version {
			st.Snapshot = s
		}
	}
	// bbolt holds the records below m.head (the applier may have moved
	// some of ov's there since ov was copied), ov the rest.
	if st.Snapshot.Version < m.head {
		if st.Ops, err = readOps(doc, st.Snapshot.Version, m.head, nil); err != nil {
			return err
		}
	}
	st.Seqs = make(map[string]collab.SeqEntry)
	if ok {
		if seqs := doc.Bucket(bucketSeqs); seqs != nil {
			err = seqs.ForEach(func(k, v []byte) error {
				e, err := decodeSeqEntry(v)
				if err != nil {
					return fmt.Errorf("%w: seq entry for src %q: %w", ErrCorrupt, k, err)
				}
				st.Seqs[string(k)] = e
				return nil
			})
			if err != nil {
				return err
			}
		}
	}
	if ov == nil || ov.head <= m.head {
		return nil
	}
	for v := max(m.head, st.Snapshot.Version); v < ov.head; v++ {
		r, err := ov.record(v)
		if err != nil {
			return err
		}
		st.Ops = append(st.Ops, r)
	}
	// The seq table as the applier will leave it: each pending record
	// replaces its src's entry, and the entries below the new floor go
	// (seqs.go).
	for i := range ov.recs {
		p := &ov.recs[i]
		if p.version >= m.head && p.src != "" {
			st.Seqs[p.src] = collab.SeqEntry{Seq: p.seq, Version: p.version}
		}
	}
	floor := seqFloor(ov.head, window)
	var base uint64
	if doc != nil {
		if base, err = readBase(doc); err != nil {
			return err
		}
	}
	for src, e := range st.Seqs {
		// Entries kept with a base (base.go) name versions below it and
		// go only when the floor reaches the base (pruneSeqs).
		if e.Version < base && floor < base {
			continue
		}
		if e.Version < floor {
			delete(st.Seqs, src)
		}
	}
	return nil
}

// Ops returns key's records with from <= Version < to, to clipped to the
// head. It reads at most opsChunk records per read transaction; the log
// below the head never changes, so the chunks form one consistent
// history. A document the store has never seen has no records. A from
// below the document's base (base.go) gives ErrBeforeBase, unless the
// range is empty.
func (db *DB) Ops(ctx context.Context, key collab.Key, from, to uint64) ([]collab.Record, error) {
	if err := checkKey(key); err != nil {
		return nil, fmt.Errorf("storage: ops: %w", err)
	}
	dk := docKey(key)
	ov, err := db.overlayFor(ctx, dk)
	if err != nil {
		return nil, fmt.Errorf("storage: ops %s [%d, %d): %w", key, from, to, err)
	}
	if ov == nil {
		return db.boltOps(ctx, key, dk, from, to, nil)
	}
	// bbolt holds every record below ov's base, ov the rest.
	to = min(to, ov.head)
	base := ov.base()
	var out []collab.Record
	if from < base {
		if out, err = db.boltOps(ctx, key, dk, from, min(to, base), nil); err != nil {
			return nil, err
		}
	}
	for v := max(from, base); v < to; v++ {
		r, err := ov.record(v)
		if err != nil {
			return nil, fmt.Errorf("storage: ops %s [%d, %d): %w", key, from, to, err)
		}
		out = append(out, r)
	}
	return out, nil
}

// boltOps is Ops of the records in bbolt, appended to out.
func (db *DB) boltOps(ctx context.Context, key collab.Key, dk []byte, from, to uint64, out []collab.Record) ([]collab.Record, error) {
	for first := true; from < to; first = false {
		end := to
		if end-from > opsChunk {
			end = from + opsChunk
		}
		err := db.view(ctx, func(tx *bolt.Tx) error {
			if first {
				m, ok, err := readMeta(tx, dk)
				if err != nil || !ok {
					to = 0
					return err
				}
				to = min(to, m.head)
				end = min(end, to)
				if from >= end {
					return nil
				}
				if base, err := docBase(tx, dk); err != nil || from < base {
					if err == nil {
						err = fmt.Errorf("%w: from %d, base %d", ErrBeforeBase, from, base)
					}
					return err
				}
			}
			doc, err := docBucket(tx, dk)
			if err != nil {
				return err
			}
			out, err = readOps(doc, from, end, out)
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("storage: ops %s [%d, %d): %w", key, from, to, err)
		}
		from = end
	}
	return out, nil
}

// SnapshotAt returns the newest of key's latest snapshot and milestones
// whose version is at most v, or the zero Snapshot if there is none. The
// milestones kept are those of the rule in snapshots.go. A v below the
// document's base (base.go) gives ErrBeforeBase.
func (db *DB) SnapshotAt(ctx context.Context, key collab.Key, v uint64) (collab.Snapshot, error) {
	if err := checkKey(key); err != nil {
		return collab.Snapshot{}, fmt.Errorf("storage: snapshot: %w", err)
	}
	dk := docKey(key)
	var s collab.Snapshot
	ov, err := db.overlayFor(ctx, dk)
	if err != nil {
		return collab.Snapshot{}, fmt.Errorf("storage: snapshot %s at %d: %w", key, v, err)
	}
	if ov != nil && len(ov.snaps) > 0 {
		// The newest pending snapshot is the latest; which of the others
		// stay as milestones is for the applier to decide.
		if s := ov.snaps[len(ov.snaps)-1].snap; s.Version <= v {
			return s, nil
		}
		if err := db.catchUp(ctx, false, nil); err != nil {
			return collab.Snapshot{}, fmt.Errorf("storage: snapshot %s at %d: %w", key, v, err)
		}
	}
	err = db.view(ctx, func(tx *bolt.Tx) error {
		m, ok, err := readMeta(tx, dk)
		if err != nil || !ok || m.snap == 0 {
			return err
		}
		doc, err := docBucket(tx, dk)
		if err != nil {
			return err
		}
		if base, err := readBase(doc); err != nil || v < base {
			if err == nil {
				err = fmt.Errorf("%w: version %d, base %d", ErrBeforeBase, v, base)
			}
			return err
		}
		snaps := doc.Bucket(bucketSnaps)
		if snaps == nil {
			return fmt.Errorf("%w: snapshot at version %d is missing", ErrCorrupt, m.snap)
		}
		c := snaps.Cursor()
		var k []byte
		if v == ^uint64(0) {
			k, _ = c.Last()
		} else if k, _ = c.Seek(versionKey(v + 1)); k == nil {
			k, _ = c.Last()
		} else {
			k, _ = c.Prev()
		}
		if k == nil {
			return nil
		}
		mv, err := decodeVersionKey(k)
		if err != nil {
			return fmt.Errorf("%w: snapshot key: %w", ErrCorrupt, err)
		}
		s, err = readSnapshot(snaps, mv)
		return err
	})
	if err != nil {
		return collab.Snapshot{}, fmt.Errorf("storage: snapshot %s at %d: %w", key, v, err)
	}
	return s, nil
}

// List returns the documents of collection ("" for every collection),
// most recently modified first, at most limit of them (0 for all). It
// reads an index ordered by modification time, so its cost grows with
// limit, not with the number of documents.
func (db *DB) List(ctx context.Context, collection string, limit int) ([]collab.DocInfo, error) {
	if limit < 0 {
		return nil, fmt.Errorf("storage: list: negative limit %d", limit)
	}
	if db.anyPending() || db.staleCount.Load() > 0 {
		// The list comes from bbolt's metadata and indexes.
		if err := db.catchUp(ctx, true, nil); err != nil {
			return nil, fmt.Errorf("storage: list %q: %w", collection, err)
		}
	}
	var out []collab.DocInfo
	err := db.view(ctx, func(tx *bolt.Tx) error {
		var c *bolt.Cursor
		var prefix []byte
		if collection == "" {
			c = tx.Bucket(bucketRecent).Cursor()
		} else {
			c = tx.Bucket(bucketByColl).Cursor()
			prefix = collectionPrefix(collection)
		}
		for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
			if limit > 0 && len(out) == limit {
				break
			}
			if len(k) < len(prefix)+8 {
				return fmt.Errorf("%w: index key of %d bytes", ErrCorrupt, len(k))
			}
			var key collab.Key
			var dk []byte
			if collection == "" {
				dk = k[8:]
				var err error
				if key, err = decodeDocKey(dk); err != nil {
					return fmt.Errorf("%w: index key: %w", ErrCorrupt, err)
				}
			} else {
				key = collab.Key{Collection: collection, ID: string(k[len(prefix)+8:])}
				dk = docKey(key)
			}
			m, ok, err := readMeta(tx, dk)
			if err != nil {
				return err
			}
			if !ok {
				return fmt.Errorf("%w: index names %s, which has no metadata", ErrCorrupt, key)
			}
			out = append(out, collab.DocInfo{
				Key:      key,
				Version:  m.head,
				Type:     m.typ,
				Created:  m.created,
				Modified: m.modified,
			})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("storage: list %q: %w", collection, err)
	}
	return out, nil
}

// docBucket returns the bucket of a document that has metadata.
func docBucket(tx *bolt.Tx, dk []byte) (*bolt.Bucket, error) {
	b := tx.Bucket(bucketDoc).Bucket(dk)
	if b == nil {
		return nil, fmt.Errorf("%w: document has metadata but no bucket", ErrCorrupt)
	}
	return b, nil
}

// readOps appends the records from <= version < to of doc to dst. Every
// version in the range must be there.
func readOps(doc *bolt.Bucket, from, to uint64, dst []collab.Record) ([]collab.Record, error) {
	if from >= to {
		return dst, nil
	}
	ops := doc.Bucket(bucketOps)
	if ops == nil {
		return dst, fmt.Errorf("%w: document has no op log", ErrCorrupt)
	}
	c := ops.Cursor()
	want := from
	for k, v := c.Seek(versionKey(from)); k != nil && want < to; k, v = c.Next() {
		got, err := decodeVersionKey(k)
		if err != nil {
			return dst, fmt.Errorf("%w: op key: %w", ErrCorrupt, err)
		}
		if got != want {
			break
		}
		r, err := decodeRecord(got, v)
		if err != nil {
			return dst, fmt.Errorf("%w: record at version %d: %w", ErrCorrupt, got, err)
		}
		dst = append(dst, r)
		want++
	}
	if want < to {
		return dst, fmt.Errorf("%w: record at version %d is missing", ErrCorrupt, want)
	}
	return dst, nil
}
