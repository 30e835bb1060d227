package storage

import (
	"context"
	"errors"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/coedit/coedit/collab"
)

// maxCheckErrors is how many problems Check reports before it stops.
const maxCheckErrors = 20

// Check verifies the whole file and returns an error wrapping ErrCorrupt
// that lists the problems it finds (up to 20), or nil. It runs bbolt's
// page-level consistency check, then the store's own invariants: every
// value decodes; each document's op log holds exactly versions base (0
// unless InstallBase set one, base.go) to head-1;
// its metadata (type, created, modified, log size) agrees with its
// records, and names no logged frame past the last any apply took; its
// snapshots read whole, are at most the head, and the newest is the one
// its metadata names; each seq entry is at or above the seq
// floor and names a record with that src and seq; and both
// modification-time indexes list each document once, at its modification
// time.
//
// Check reads everything in one read transaction, which delays writes
// that must grow the file; run it offline or on small stores.
func (db *DB) Check(ctx context.Context) error {
	if err := db.catchUp(ctx, true, nil); err != nil {
		return fmt.Errorf("storage: check %s: %w", db.path, err)
	}
	err := db.view(ctx, func(tx *bolt.Tx) error {
		var errs []error
		for err := range tx.Check() {
			if len(errs) < maxCheckErrors {
				errs = append(errs, err)
			}
		}
		if len(errs) > 0 {
			return fmt.Errorf("%w: bbolt check: %w", ErrCorrupt, errors.Join(errs...))
		}
		c := checker{ctx: ctx, tx: tx}
		c.run()
		if len(c.errs) > 0 {
			return fmt.Errorf("%w: %w", ErrCorrupt, errors.Join(c.errs...))
		}
		return ctx.Err()
	})
	if err != nil {
		return fmt.Errorf("storage: check %s: %w", db.path, err)
	}
	return nil
}

type checker struct {
	ctx  context.Context
	tx   *bolt.Tx
	errs []error
}

func (c *checker) failf(format string, args ...any) {
	if len(c.errs) < maxCheckErrors {
		c.errs = append(c.errs, fmt.Errorf(format, args...))
	}
}

func (c *checker) full() bool { return len(c.errs) >= maxCheckErrors || c.ctx.Err() != nil }

func (c *checker) run() {
	docs, docb := c.tx.Bucket(bucketDocs), c.tx.Bucket(bucketDoc)
	// Every apply notes the highest frame it took requests from, in the
	// transaction that notes them in the documents.
	reached, _, err := readUvarint(c.tx.Bucket(bucketMeta), keyReached)
	if err != nil {
		c.failf("%w", err)
		return
	}
	recent, bycoll := c.tx.Bucket(bucketRecent), c.tx.Bucket(bucketByColl)
	n := 0
	docs.ForEach(func(dk, v []byte) error {
		if c.full() {
			return errStop
		}
		n++
		key, err := decodeDocKey(dk)
		if err == nil {
			err = checkKey(key)
		}
		if err != nil {
			c.failf("document key %q: %w", dk, err)
			return nil
		}
		m, err := decodeMeta(v)
		if err != nil {
			c.failf("%s: metadata: %w", key, err)
			return nil
		}
		if m.applied > reached {
			c.failf("%s: applied up to frame %d, past the last frame any apply took (%d)", key, m.applied, reached)
		}
		if recent.Get(recentKey(dk, m.modified)) == nil {
			c.failf("%s: not in the recent index at %d", key, m.modified)
		}
		if bycoll.Get(collectionKey(key, m.modified)) == nil {
			c.failf("%s: not in the collection index at %d", key, m.modified)
		}
		doc := docb.Bucket(dk)
		if doc == nil {
			c.failf("%s: no document bucket", key)
			return nil
		}
		c.doc(key, m, doc)
		return nil
	})
	docb.ForEach(func(dk, v []byte) error {
		if v != nil || docs.Get(dk) == nil {
			c.failf("document bucket entry %q has no metadata", dk)
		}
		return nil
	})
	if got := recent.Stats().KeyN; got != n {
		c.failf("recent index has %d entries for %d documents", got, n)
	}
	if got := bycoll.Stats().KeyN; got != n {
		c.failf("collection index has %d entries for %d documents", got, n)
	}
}

var errStop = errors.New("stop")

// doc checks one document's buckets against its metadata.
func (c *checker) doc(key collab.Key, m docMeta, doc *bolt.Bucket) {
	// Replay the metadata from the records.
	var want docMeta
	var opBytes uint64
	ops := doc.Bucket(bucketOps)
	if ops == nil {
		c.failf("%s: no op log", key)
		return
	}
	base, err := readBase(doc)
	if err != nil {
		c.failf("%s: %w", key, err)
		return
	}
	if base > 0 {
		// A log from a base (base.go) starts from its snapshot's state;
		// no record says when the document was created or changed
		// before it.
		want = docMeta{head: base, created: m.created, modified: m.modified}
		if snaps := doc.Bucket(bucketSnaps); snaps == nil || snaps.Bucket(versionKey(base)) == nil {
			c.failf("%s: no snapshot at its base %d", key, base)
		} else if h, _, err := readHeader(snaps, base); err != nil {
			c.failf("%s: base snapshot: %w", key, err)
		} else {
			want.typ, want.deleted = h.typ, h.typ == ""
		}
	}
	ops.ForEach(func(k, v []byte) error {
		if c.full() {
			return errStop
		}
		ver, err := decodeVersionKey(k)
		if err != nil {
			c.failf("%s: op key %x: %w", key, k, err)
			return errStop
		}
		if ver != want.head {
			c.failf("%s: op log has version %d where %d belongs", key, ver, want.head)
			return errStop
		}
		r, err := decodeRecord(ver, v)
		if err != nil {
			c.failf("%s: record %d: %w", key, ver, err)
			return errStop
		}
		opBytes += uint64(len(v) - len(r.Data))
		if err := validateRecords([]collab.Record{r}); err != nil {
			c.failf("%s: record %d: %w", key, ver, err)
		}
		want.head++
		want.modified = r.Time
		switch r.Kind {
		case collab.OpCreate:
			want.typ, want.created, want.deleted = r.Type, r.Time, false
		case collab.OpDelete:
			want.typ, want.deleted = "", true
		}
		return nil
	})
	if want.head != m.head || want.typ != m.typ || want.created != m.created ||
		want.modified != m.modified || want.deleted != m.deleted {
		c.failf("%s: metadata %+v does not match its records %+v", key, m, want)
	}
	if m.snap > m.head || m.seqFloor > m.head {
		c.failf("%s: snapshot %d and seq floor %d must be at most head %d", key, m.snap, m.seqFloor, m.head)
	}
	if opBytes != m.opBytes {
		c.failf("%s: metadata says the op log weighs %d bytes, its records %d", key, m.opBytes, opBytes)
	}
	if doc.Get(keySnapV1) != nil || doc.Bucket(bucketMilestonesV1) != nil {
		c.failf("%s: has format 1 snapshots left", key)
	}
	var last uint64
	if snaps := doc.Bucket(bucketSnaps); snaps != nil {
		snaps.ForEach(func(k, v []byte) error {
			ver, err := decodeVersionKey(k)
			if err == nil && v != nil {
				err = fmt.Errorf("a value, not a bucket")
			}
			if err == nil {
				_, err = readSnapshot(snaps, ver)
			}
			if err != nil {
				c.failf("%s: snapshot %x: %w", key, k, err)
			}
			last = ver
			return nil
		})
	}
	if last != m.snap {
		c.failf("%s: newest snapshot is %d, metadata says %d", key, last, m.snap)
	}
	if seqs := doc.Bucket(bucketSeqs); seqs != nil {
		seqs.ForEach(func(src, v []byte) error {
			e, err := decodeSeqEntry(v)
			if err != nil {
				c.failf("%s: seq entry for %q: %w", key, src, err)
				return nil
			}
			if e.Version < base && m.seqFloor <= base {
				return nil // kept with the base, no record to check it by
			}
			if e.Version < m.seqFloor {
				c.failf("%s: seq entry for %q at version %d is below the seq floor %d", key, src, e.Version, m.seqFloor)
			}
			rv := ops.Get(versionKey(e.Version))
			if rv == nil {
				c.failf("%s: seq entry for %q names missing version %d", key, src, e.Version)
				return nil
			}
			r, err := decodeRecord(e.Version, rv)
			if err == nil && (r.Src != string(src) || r.Seq != e.Seq) {
				c.failf("%s: seq entry %q/%d names version %d, committed by %q/%d", key, src, e.Seq, e.Version, r.Src, r.Seq)
			}
			return nil
		})
	}
}
