package storage

import (
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// The seq table (a document's seqs bucket: src → the seq and version of
// its last record) lets a session recognise a resent op at once, and
// refuse a seq older than its src's last one. It holds an entry only for
// the srcs whose last record is among the newest Options.SeqWindow
// versions: docMeta.seqFloor is head - SeqWindow, and every commit that
// raises it deletes the entries of the records that fell below it. Load
// reads the whole table, so it reads at most SeqWindow entries however
// many connections a document has seen (a document edited by 300,000
// short-lived connections loaded all 300,000 on every session start).
//
// What a pruned src loses: the op log is kept whole, so a resend of an op
// committed at version c, made against v <= c, is still found by the
// session's scan of the ops since v and acknowledged at c (reading those
// ops costs what transforming a new op made at v would). Only the checks
// that need the table without such a scan are gone for that src: a seq
// below its last one is no longer refused with collab.ErrStaleSeq, and a
// resent create sent without a version (ShareDB's v:null) is refused with
// collab.ErrDocExists instead of acknowledged.

// seqFloor is the lowest version whose seq entries a document at head
// keeps.
func seqFloor(head, window uint64) uint64 {
	if head <= window {
		return 0
	}
	return head - window
}

// pruneSeqs deletes, for each record from <= version < to in ops, its
// src's entry in seqs if that entry still names the record (a later record
// by the same src has replaced it otherwise). It reads only each record's
// src.
func pruneSeqs(ops, seqs *bolt.Bucket, from, to uint64) error {
	c := ops.Cursor()
	if k, _ := c.First(); k != nil {
		// A log that starts at a base (base.go): when the floor passes
		// it, the entries below it go.
		first, err := decodeVersionKey(k)
		if err != nil {
			return fmt.Errorf("%w: op key: %w", ErrCorrupt, err)
		}
		if from < first && to >= first {
			if err := pruneBelowBase(seqs, first); err != nil {
				return err
			}
		}
	}
	for k, v := c.Seek(versionKey(from)); k != nil; k, v = c.Next() {
		ver, err := decodeVersionKey(k)
		if err != nil {
			return fmt.Errorf("%w: op key: %w", ErrCorrupt, err)
		}
		if ver >= to {
			break
		}
		src, err := decodeRecordSrc(v)
		if err != nil {
			return fmt.Errorf("%w: record at version %d: %w", ErrCorrupt, ver, err)
		}
		if src == "" {
			continue
		}
		e := seqs.Get([]byte(src))
		if e == nil {
			continue
		}
		entry, err := decodeSeqEntry(e)
		if err != nil {
			return fmt.Errorf("%w: seq entry for src %q: %w", ErrCorrupt, src, err)
		}
		if entry.Version == ver {
			if err := seqs.Delete([]byte(src)); err != nil {
				return err
			}
		}
	}
	return nil
}
