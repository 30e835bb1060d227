package storage

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/coedit/coedit/collab"
)

// This file lets a cluster node start a document's op log at a version
// other than 0: the base. A node that was down for longer than Redis
// keeps records, or never had a document whose early records Redis has
// trimmed, cannot rebuild the document from version 0; it installs the
// snapshot Redis keeps (collab/redisrelay) as the base of its log instead
// (InstallBase), and appends the records after it as usual.
//
// The base, when not 0, is kept in the document's bucket under keyBase
// (a uvarint). The docs metadata, the encoding and the commit path are
// the same as for a log from 0: the base's snapshot is the document's
// latest snapshot (or the oldest milestone once newer ones are saved),
// the op log holds versions base to head-1, and docMeta.opBytes weighs
// those records only. Versions below the base are not on this node: Ops
// and SnapshotAt asked for them fail with ErrBeforeBase, which wraps
// collab.ErrOpsMissing (web answers it with
// ERR_SUBMIT_TRANSFORM_OPS_NOT_FOUND, HTTP 409), never with records or a
// snapshot of another version.

// keyBase, inside a document's bucket, holds the base version when it is
// not 0.
var keyBase = []byte("base")

// ErrBeforeBase is returned (wrapped) by Ops, SnapshotAt and Truncate for
// versions below a document's base: this node does not hold that part
// of the history. It wraps collab.ErrOpsMissing.
var ErrBeforeBase = fmt.Errorf("storage: version is below the document's base, history this node does not hold: %w", collab.ErrOpsMissing)

// readBase returns the base of the document in bucket doc (0 when none).
func readBase(doc *bolt.Bucket) (uint64, error) {
	v, _, err := readUvarint(doc, keyBase)
	return v, err
}

// readUvarint reads the number kept in bucket b under key (a document's
// base, the meta bucket's log points), and whether it is there.
func readUvarint(b *bolt.Bucket, key []byte) (uint64, bool, error) {
	raw := b.Get(key)
	if raw == nil {
		return 0, false, nil
	}
	v, n := binary.Uvarint(raw)
	if n <= 0 || n != len(raw) {
		return 0, false, fmt.Errorf("%w: %s %x", ErrCorrupt, key, raw)
	}
	return v, true, nil
}

// docBase returns the base of the document dk in tx (0 when the document
// or its base is absent).
func docBase(tx *bolt.Tx, dk []byte) (uint64, error) {
	doc := tx.Bucket(bucketDoc).Bucket(dk)
	if doc == nil {
		return 0, nil
	}
	return readBase(doc)
}

// Base returns the version key's op log starts at: 0 for a log kept from
// the document's creation, the snapshot's version after InstallBase.
func (db *DB) Base(ctx context.Context, key collab.Key) (uint64, error) {
	if err := checkKey(key); err != nil {
		return 0, fmt.Errorf("storage: base: %w", err)
	}
	dk := docKey(key)
	var base uint64
	err := db.view(ctx, func(tx *bolt.Tx) (err error) {
		base, err = docBase(tx, dk)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("storage: base %s: %w", key, err)
	}
	return base, nil
}

// baseReq is an InstallBase call, carried by a commitReq.
type baseReq struct {
	snap  collab.Snapshot
	data  []byte
	seqs  map[string]collab.SeqEntry
	epoch string
	now   int64
}

// InstallBase replaces what the store holds of key with snap as the base
// of its op log: afterwards the document's head and base are
// snap.Version, its latest snapshot is snap, it has no records (the
// caller commits the records after the base as usual), its seq table
// holds the entries of seqs within Options.SeqWindow of the base, and its
// epoch note is epoch. The document's older records, snapshots and
// milestones are deleted: they are a prefix of the history snap
// summarises.
//
// It is one bbolt write transaction, with the writer held: a crash leaves
// either the old state or the new one, never a mix. snap.Version must be
// past the stored head (else ErrInvalidSnapshot and nothing changes): a
// node installs a base only when the records it lacks are gone from
// where it would read them.
func (db *DB) InstallBase(ctx context.Context, key collab.Key, snap collab.Snapshot, seqs map[string]collab.SeqEntry, epoch string) error {
	if err := checkKey(key); err != nil {
		return fmt.Errorf("storage: install base: %w", err)
	}
	if snap.Version == 0 {
		return fmt.Errorf("storage: install base %s: %w: a base at version 0 is an empty document", key, ErrInvalidSnapshot)
	}
	for src, e := range seqs {
		if len(src) > maxKeyLen || e.Version >= snap.Version {
			return fmt.Errorf("storage: install base %s: %w: seq entry %q %+v at base %d", key, ErrInvalidRecord, src, e, snap.Version)
		}
	}
	r := &commitReq{key: key, dk: docKey(key), install: &baseReq{
		snap: snap, data: []byte(snap.Data), seqs: seqs, epoch: epoch, now: time.Now().UnixMilli(),
	}}
	// Not through the log: the install replaces what bbolt holds of the
	// document, so it runs as a store-level write (direct) once every
	// logged request is applied, with the writer held.
	err := db.direct(ctx, func(tx *bolt.Tx) error {
		_, err := db.applyInstall(tx, r)
		return err
	})
	if err != nil {
		return fmt.Errorf("storage: install base %s at version %d: %w", key, snap.Version, err)
	}
	return nil
}

// applyInstall is apply for an InstallBase request.
func (db *DB) applyInstall(tx *bolt.Tx, r *commitReq) (bool, error) {
	in := r.install
	v := in.snap.Version
	old, exists, err := readMeta(tx, r.dk)
	if err != nil {
		return false, err
	}
	if exists && old.head >= v {
		return false, fmt.Errorf("%w: base %d is not past the stored head %d", ErrInvalidSnapshot, v, old.head)
	}
	if err := db.install(tx, r, old, exists); err != nil {
		return false, writeError{err}
	}
	return true, nil
}

// install does InstallBase's writes in tx.
func (db *DB) install(tx *bolt.Tx, r *commitReq, old docMeta, exists bool) error {
	in := r.install
	v := in.snap.Version
	doc, err := tx.Bucket(bucketDoc).CreateBucketIfNotExists(r.dk)
	if err != nil {
		return err
	}
	for _, name := range [][]byte{bucketOps, bucketSeqs, bucketSnaps} {
		if err := doc.DeleteBucket(name); err != nil && !errors.Is(err, berrors.ErrBucketNotFound) {
			return err
		}
	}
	if _, err := doc.CreateBucket(bucketOps); err != nil {
		return err
	}
	snaps, err := doc.CreateBucket(bucketSnaps)
	if err != nil {
		return err
	}
	if err := putSnapshot(snaps, &in.snap, in.data, 0); err != nil {
		return err
	}
	seqs, err := doc.CreateBucket(bucketSeqs)
	if err != nil {
		return err
	}
	m := docMeta{head: v, snap: v, seqFloor: seqFloor(v, db.opts.SeqWindow), typ: in.snap.Type, deleted: in.snap.Type == ""}
	for src, e := range in.seqs {
		if src != "" && e.Version >= m.seqFloor {
			if err := seqs.Put([]byte(src), encodeSeqEntry(e)); err != nil {
				return err
			}
		}
	}
	// No record says when the document was created or last changed:
	// keep what the store knew, else now (the records after the base,
	// committed next, set modified).
	m.created, m.modified = old.created, old.modified
	if !exists || m.typ != old.typ {
		m.created = in.now
	}
	if !exists {
		m.modified = in.now
	}
	if err := doc.Put(keyBase, binary.AppendUvarint(nil, v)); err != nil {
		return err
	}
	if in.epoch != "" {
		if err := doc.Put(keyEpoch, []byte(in.epoch)); err != nil {
			return err
		}
	}
	if err := tx.Bucket(bucketDocs).Put(r.dk, encodeMeta(&m)); err != nil {
		return err
	}
	if !exists || old.modified != m.modified {
		db.markStale(r.dk, r.key, old.modified, exists)
	}
	return nil
}

// pruneBelowBase deletes the seq entries naming versions below first,
// the oldest version of a log that starts at a base: InstallBase kept
// the entries of the SeqWindow versions before the base, which have no
// records for pruneSeqs to find them by, so they go together once the
// seq floor passes the base.
func pruneBelowBase(seqs *bolt.Bucket, first uint64) error {
	var drop [][]byte
	err := seqs.ForEach(func(k, v []byte) error {
		e, err := decodeSeqEntry(v)
		if err != nil {
			return fmt.Errorf("%w: seq entry for src %q: %w", ErrCorrupt, k, err)
		}
		if e.Version < first {
			drop = append(drop, k)
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, k := range drop {
		if err := seqs.Delete(k); err != nil {
			return err
		}
	}
	return nil
}
