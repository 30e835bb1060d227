package redisrelay

import (
	"context"
	"fmt"
	"strconv"

	"github.com/coedit/coedit/collab"
)

// readPage is how many stream entries one read script returns at most,
// so that a long catch-up does not block Redis with one huge reply.
const readPage = 1000

// Read returns the document's records with from <= Version < to, in
// order, from the stream. It returns fewer when Redis's head is below
// to. If the stream no longer holds from (trimmed, or a fresh epoch that
// was seeded with a shorter tail) it returns ErrTrimmed.
//
// epoch, if not "", must be the document's epoch (else *EpochError): a
// caller must not mix records of two histories. "" reads whatever
// history Redis holds.
func (r *Relay) Read(ctx context.Context, key collab.Key, epoch string, from, to uint64) ([]collab.Record, error) {
	r.stats.gapReads.Add(1)
	recs, head, err := r.read(ctx, key, epoch, from, to)
	if err != nil {
		return nil, err
	}
	if (len(recs) > 0 && recs[0].Version != from) || (len(recs) == 0 && from < min(to, head)) {
		return nil, fmt.Errorf("%w: %s from version %d", ErrTrimmed, key, from)
	}
	r.stats.gapRecords.Add(uint64(len(recs)))
	return recs, nil
}

// read returns the records in [from, to) that the stream holds, page by
// page, and the head. A page that ends early means the stream had no
// more.
func (r *Relay) read(ctx context.Context, key collab.Key, epoch string, from, to uint64) (recs []collab.Record, head uint64, err error) {
	if from >= to {
		return nil, 0, nil
	}
	to = min(to, maxNumber)
	k := r.keys(key)
	for from < to {
		v, err := r.run(ctx, "read", readScript, []string{k.meta, k.log}, epoch, from, to-1, readPage)
		if err != nil {
			return nil, 0, err
		}
		if reply(v, 0) != "ok" {
			return nil, 0, epochError(v)
		}
		head = replyUint(v, 1)
		entries, _ := v[2].([]any)
		page, err := decodeEntries(entries)
		if err != nil {
			return nil, 0, fmt.Errorf("%s: %w", key, err)
		}
		if len(recs) > 0 && len(page) > 0 && page[0].Version != from {
			return nil, 0, fmt.Errorf("%w: %s from version %d (trimmed while reading)", ErrTrimmed, key, from)
		}
		recs = append(recs, page...)
		if len(page) < readPage {
			break
		}
		from = page[len(page)-1].Version + 1
		if from >= head {
			break
		}
	}
	return recs, head, nil
}

// decodeEntries decodes XRANGE entries ({id, {"r", record}}), checking
// that each record's version is its entry's ID.
func decodeEntries(entries []any) ([]collab.Record, error) {
	recs := make([]collab.Record, 0, len(entries))
	for _, e := range entries {
		pair, _ := e.([]any)
		if len(pair) != 2 {
			return nil, fmt.Errorf("%w: stream entry %v", ErrCorrupt, e)
		}
		id, _ := pair[0].(string)
		fields, _ := pair[1].([]any)
		v, err := idVersion(id)
		if err != nil {
			return nil, err
		}
		if len(fields) != 2 || fields[0] != "r" {
			return nil, fmt.Errorf("%w: stream entry %s has fields %v", ErrCorrupt, id, fields)
		}
		raw, _ := fields[1].(string)
		rec, err := decodeRecord([]byte(raw))
		if err != nil {
			return nil, err
		}
		if rec.Version != v {
			return nil, fmt.Errorf("%w: stream entry %s holds version %d", ErrCorrupt, id, rec.Version)
		}
		recs = append(recs, rec)
	}
	return recs, nil
}

// Head is what Redis holds for a document: the epoch and head version a
// session joins with.
type Head struct {
	// Epoch names the document's current history in Redis.
	Epoch string
	// Version is the head: the version the next record gets.
	Version uint64
	// SnapshotVersion is the version of the snapshot Redis keeps (0:
	// none, the empty document).
	SnapshotVersion uint64
	// Restarted is true when Redis restarted (or failed over) since the
	// epoch began: writes need Renew first.
	Restarted bool
	// Lineage lists the epochs this one continues, newest first (at most
	// 8; see Shared).
	Lineage []Fork
	// Replaced are the clients noted as holding records of a history
	// the cluster replaced, each with the version its copy is good below
	// (replaced.go); Head reads them, Load does not.
	Replaced map[string]uint64
}

// Fork says that an epoch's history equals Epoch's below Base.
type Fork struct {
	Epoch string
	Base  uint64
}

// Shared returns how much of epoch's history the current epoch shares:
// the records below the returned version are the same in both. ok is
// false when epoch is not in the lineage (for instance Redis lost it):
// the caller cannot tell and must treat all its records as its own.
func (h Head) Shared(epoch string) (below uint64, ok bool) {
	if epoch == h.Epoch {
		return h.Version, true
	}
	below = h.Version
	for _, f := range h.Lineage {
		below = min(below, f.Base)
		if f.Epoch == epoch {
			return below, true
		}
	}
	return 0, false
}

// Head returns the document's epoch and versions; ok is false when Redis
// has no state for it (seed it with Init).
func (r *Relay) Head(ctx context.Context, key collab.Key) (h Head, ok bool, err error) {
	k := r.keys(key)
	v, err := r.run(ctx, "head", headScript, []string{k.meta, k.replaced})
	if err != nil || len(v) == 0 {
		return Head{}, false, err
	}
	if h, err = parseHead(v); err != nil {
		return Head{}, false, err
	}
	pairs, _ := v[5].([]any)
	if h.Replaced, err = parseReplaced(key, pairs); err != nil {
		return Head{}, false, err
	}
	return h, true, nil
}

// parseHead reads {e, v, sv, l, restarted} from a script reply.
func parseHead(v []any) (Head, error) {
	h := Head{Epoch: reply(v, 0), Restarted: reply(v, 4) == "1"}
	var err1, err2 error
	h.Version, err1 = strconv.ParseUint(reply(v, 1), 10, 64)
	h.SnapshotVersion, err2 = strconv.ParseUint(reply(v, 2), 10, 64)
	if err1 != nil || err2 != nil {
		return Head{}, fmt.Errorf("%w: meta %v", ErrCorrupt, v)
	}
	var err error
	if h.Lineage, err = decodeLineage(reply(v, 3)); err != nil {
		return Head{}, err
	}
	return h, nil
}

// State is everything Redis holds for a document, read atomically.
type State struct {
	Head Head
	// Doc is the document as Redis knows it: the snapshot Redis keeps
	// (the zero Snapshot when none), the records from it to the head,
	// and every src's last committed op.
	Doc collab.DocState
}

// Load reads the document's head, snapshot, records since the snapshot
// and seqs in one atomic step: what a node needs to open a document it
// never had. ok is false when Redis has no state for it. It returns
// ErrTrimmed if the stream lost records above the snapshot (only when
// MaxTailLen cut it because no snapshot was saved).
func (r *Relay) Load(ctx context.Context, key collab.Key) (st State, ok bool, err error) {
	k := r.keys(key)
	v, err := r.run(ctx, "load", loadScript, []string{k.meta, k.log, k.seqs, k.snap})
	if err != nil || len(v) == 0 {
		return State{}, false, err
	}
	if st.Head, err = parseHead(v); err != nil {
		return State{}, false, err
	}
	if raw, ok := v[5].(string); ok {
		if st.Doc.Snapshot, err = decodeSnapshot([]byte(raw)); err != nil {
			return State{}, false, err
		}
	}
	if st.Doc.Snapshot.Version != st.Head.SnapshotVersion {
		return State{}, false, fmt.Errorf("%w: %s: snapshot at %d, meta says %d", ErrCorrupt, key, st.Doc.Snapshot.Version, st.Head.SnapshotVersion)
	}
	seqs, _ := v[6].([]any)
	st.Doc.Seqs = make(map[string]collab.SeqEntry, len(seqs)/2)
	for i := 0; i+1 < len(seqs); i += 2 {
		src, _ := seqs[i].(string)
		val, _ := seqs[i+1].(string)
		if st.Doc.Seqs[src], err = parseSeqValue(val); err != nil {
			return State{}, false, err
		}
	}
	entries, _ := v[7].([]any)
	if st.Doc.Ops, err = decodeEntries(entries); err != nil {
		return State{}, false, err
	}
	sv := st.Doc.Snapshot.Version
	if n := uint64(len(st.Doc.Ops)); sv+n != st.Head.Version || (n > 0 && st.Doc.Ops[0].Version != sv) {
		return State{}, false, fmt.Errorf("%w: %s: Redis holds %d records from the snapshot at %d to the head %d", ErrTrimmed, key, n, sv, st.Head.Version)
	}
	return st, true, nil
}
