package collab

// seqTable is a session's seq table: for each src, its last committed op
// (seq and version), which answers most resends without reading records
// (see dedupe). Like the Store's (storage.Options.SeqWindow), it keeps a
// src only while that op is among the newest window versions: a
// long-running session of a document that many short-lived connections
// edit would otherwise hold an entry for every one of them. Exactly-once
// does not depend on the table: a resend made at v is found among the
// records since v, which a submit made at v is transformed over anyway.
// What a src that left the table loses is a refusal of its older seqs
// (ErrStaleSeq) and of a reused seq (ErrSeqReused), as in the Store.
type seqTable struct {
	last   map[string]SeqEntry
	window uint64
	// sweep is the head at which the next pass over the table is due.
	// Passes come every window versions, so the table holds at most
	// 2*window entries (one per version of the newest 2*window: a
	// version has one record, with one src) and costs O(1) a commit.
	sweep uint64
}

// newSeqTable returns the table of a document at head, from the entries
// a Store loaded (nil for none).
func newSeqTable(last map[string]SeqEntry, window, head uint64) seqTable {
	if last == nil {
		last = make(map[string]SeqEntry)
	}
	t := seqTable{last: last, window: window}
	t.prune(head)
	return t
}

// add notes the committed record r. Records of other nodes may carry a
// src's older seq after a newer one reached this node first; the table
// keeps the newest.
func (t *seqTable) add(r Record) {
	if r.Src == "" {
		return
	}
	if e, ok := t.last[r.Src]; !ok || e.Seq <= r.Seq {
		t.last[r.Src] = SeqEntry{Seq: r.Seq, Version: r.Version}
	}
}

// prune drops, when a pass is due at head, the srcs whose last op is
// older than the newest window versions.
func (t *seqTable) prune(head uint64) {
	if head < t.sweep {
		return
	}
	t.sweep = head + t.window
	if head <= t.window {
		return
	}
	floor := head - t.window
	for src, e := range t.last {
		if e.Version < floor {
			delete(t.last, src)
		}
	}
}
