package storage

import (
	"fmt"
	"slices"

	bolt "go.etcd.io/bbolt"

	"github.com/coedit/coedit/collab"
)

// Format 1 kept a document's latest snapshot as one value under
// keySnapV1 in its bucket, its milestones as whole values in the
// bucketMilestonesV1 bucket, every src in its seq table for good, and a
// docMeta with the newest milestone's version where format 2 has seqFloor
// and opBytes.
var (
	keySnapV1          = []byte("snapshot")
	bucketMilestonesV1 = []byte("milestones")
)

// migrateV1 rewrites a format 1 file as format 2, in the transaction that
// opens it: each document's snapshots move to the snapshots bucket (with
// the op log's weight at each, which a pass over the log measures), its
// milestones are thinned and its seq table pruned as format 2 keeps them;
// initLayout then notes the format. A failure rolls all of it back and
// leaves the file as it was.
func migrateV1(tx *bolt.Tx, opts Options) error {
	docs := tx.Bucket(bucketDocs)
	var keys [][]byte
	if err := docs.ForEach(func(k, _ []byte) error {
		keys = append(keys, slices.Clone(k))
		return nil
	}); err != nil {
		return err
	}
	for _, dk := range keys {
		if err := migrateDocV1(tx, dk, opts); err != nil {
			key, _ := decodeDocKey(dk)
			return fmt.Errorf("migrate %s to format %d: %w", key, formatVersion, err)
		}
	}
	return nil
}

func migrateDocV1(tx *bolt.Tx, dk []byte, opts Options) error {
	old, err := decodeMetaV1(tx.Bucket(bucketDocs).Get(dk))
	if err != nil {
		return fmt.Errorf("%w: metadata: %w", ErrCorrupt, err)
	}
	doc, err := docBucket(tx, dk)
	if err != nil {
		return err
	}
	var snaps []collab.Snapshot
	if ms := doc.Bucket(bucketMilestonesV1); ms != nil {
		if err := ms.ForEach(func(k, v []byte) error {
			s, err := decodeSnapshot(v)
			if err != nil {
				return fmt.Errorf("%w: milestone %x: %w", ErrCorrupt, k, err)
			}
			snaps = append(snaps, s)
			return nil
		}); err != nil {
			return err
		}
		if err := doc.DeleteBucket(bucketMilestonesV1); err != nil {
			return err
		}
	}
	if old.snap > 0 {
		s, err := decodeSnapshot(doc.Get(keySnapV1))
		if err != nil || s.Version != old.snap {
			return fmt.Errorf("%w: latest snapshot (want version %d): %v", ErrCorrupt, old.snap, err)
		}
		// Format 1 stored a latest snapshot that was also a milestone
		// twice.
		if len(snaps) == 0 || snaps[len(snaps)-1].Version != s.Version {
			snaps = append(snaps, s)
		}
		if err := doc.Delete(keySnapV1); err != nil {
			return err
		}
	}
	m := docMeta{deleted: old.deleted, head: old.head, snap: old.snap, created: old.created, modified: old.modified, typ: old.typ}
	// One pass over the log weighs it, and its part below each
	// snapshot.
	opsAt := make(map[uint64]uint64, len(snaps))
	next := 0
	if ops := doc.Bucket(bucketOps); ops != nil {
		if err := ops.ForEach(func(k, v []byte) error {
			ver, err := decodeVersionKey(k)
			if err != nil {
				return fmt.Errorf("%w: op key: %w", ErrCorrupt, err)
			}
			for ; next < len(snaps) && snaps[next].Version <= ver; next++ {
				opsAt[snaps[next].Version] = m.opBytes
			}
			w, err := recordWeight(v)
			if err != nil {
				return fmt.Errorf("%w: record at version %d: %w", ErrCorrupt, ver, err)
			}
			m.opBytes += w
			return nil
		}); err != nil {
			return err
		}
	}
	if len(snaps) > 0 {
		b, err := doc.CreateBucket(bucketSnaps)
		if err != nil {
			return err
		}
		for i := range snaps {
			at, ok := opsAt[snaps[i].Version]
			if !ok {
				at = m.opBytes
			}
			if err := putSnapshot(b, &snaps[i], []byte(snaps[i].Data), at); err != nil {
				return err
			}
		}
		if err := thinMilestones(b, m.head, opts.MilestoneEvery); err != nil {
			return err
		}
	}
	m.seqFloor = seqFloor(m.head, opts.SeqWindow)
	if seqs := doc.Bucket(bucketSeqs); seqs != nil && m.seqFloor > 0 {
		var drop [][]byte
		if err := seqs.ForEach(func(src, v []byte) error {
			e, err := decodeSeqEntry(v)
			if err != nil {
				return fmt.Errorf("%w: seq entry for src %q: %w", ErrCorrupt, src, err)
			}
			if e.Version < m.seqFloor {
				drop = append(drop, slices.Clone(src))
			}
			return nil
		}); err != nil {
			return err
		}
		for _, src := range drop {
			if err := seqs.Delete(src); err != nil {
				return err
			}
		}
	}
	return tx.Bucket(bucketDocs).Put(dk, encodeMeta(&m))
}

// docMetaV1 is format 1's docMeta.
type docMetaV1 struct {
	deleted               bool
	head, snap, milestone uint64
	created, modified     int64
	typ                   string
}

func decodeMetaV1(b []byte) (docMetaV1, error) {
	d := dec{b: b}
	var m docMetaV1
	flags := d.byte("metadata flags")
	if flags&^metaDeleted != 0 {
		d.fail("metadata flags")
	}
	m.deleted = flags&metaDeleted != 0
	m.head = d.uvarint("metadata head")
	m.snap = d.uvarint("metadata snapshot version")
	m.milestone = d.uvarint("metadata milestone version")
	m.created = d.varint("metadata created")
	m.modified = d.varint("metadata modified")
	m.typ = d.str("metadata type")
	if err := d.end(); err != nil {
		return docMetaV1{}, err
	}
	return m, nil
}
