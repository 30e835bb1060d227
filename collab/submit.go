package collab

import (
	"context"
	"fmt"
	"slices"
	"unicode/utf8"

	"github.com/coedit/coedit/ot"
)

// outcome is one submit's result within a group commit.
type outcome struct {
	res SubmitResult
	err error
}

// submitGroup applies reqs in order to the in-memory document, commits
// every record they produce with one Store.Commit, and only then answers
// them and broadcasts the records. A submit that fails gets its error and
// the others go on; if the commit fails, the session reloads the durable
// state and every submit that depended on the commit gets the error.
func (s *session) submitGroup(reqs []*request) {
	start := s.doc.head
	out := make([]outcome, len(reqs))
	var recs []Record
	for i, r := range reqs {
		res, rec, err := s.applySubmit(r.sub)
		out[i] = outcome{res, err}
		if err == nil && !res.Duplicate {
			recs = append(recs, rec)
		}
	}
	st := &s.h.stats
	st.submits.Add(uint64(len(reqs)))
	if len(recs) > 0 {
		var snap *Snapshot
		if s.doc.head-s.snapVer >= uint64(s.h.opts.SnapshotEvery) {
			sn := s.doc.snapshot()
			snap = &sn
		}
		st.commitBatches.Add(1)
		if err := s.h.opts.Store.Commit(context.Background(), s.key, recs, snap); err != nil {
			st.commitErrors.Add(1)
			err = fmt.Errorf("collab: commit %s: %w", s.key, err)
			for i := range out {
				o := &out[i]
				if o.err == nil && (!o.res.Duplicate || o.res.Version >= start) {
					*o = outcome{err: err}
				}
			}
			s.reload()
			recs = nil
		} else {
			if snap != nil {
				s.snapVer = snap.Version
			}
			st.opsCommitted.Add(uint64(len(recs)))
		}
	}
	// has[c] is the version up to which c has been sent every record of
	// this group, as missed ops or its own acks: the broadcasts below skip
	// those, so that c sees each version once and in order.
	var has map[Conn]uint64
	for i, r := range reqs {
		o := out[i]
		if o.err != nil {
			st.submitErrors.Add(1)
			r.onSubmit(SubmitResult{}, o.err)
			continue
		}
		if o.res.Duplicate {
			st.duplicates.Add(1)
		}
		if r.conn != nil {
			for _, m := range o.res.Missed {
				r.conn.SendOp(s.key, m)
			}
			// Missed ends just below the ack's version.
			if len(recs) > 0 {
				if has == nil {
					has = make(map[Conn]uint64)
				}
				got, ok := has[r.conn]
				if !ok {
					got = start
				}
				if first := o.res.Version - uint64(len(o.res.Missed)); first <= got {
					has[r.conn] = max(got, o.res.Version+1)
				}
			}
		}
		r.onSubmit(o.res, nil)
	}
	if len(recs) == 0 {
		return
	}
	for _, rec := range recs {
		s.broadcast(rec, has)
	}
	s.link.Publish(recs)
	s.transformStoredPresence(recs)
	s.trimWindow()
}

// normType returns the stored type for a create's type, or false.
func normType(t string) (string, bool) {
	switch t {
	case ot.URI, ot.Name:
		return ot.URI, true
	}
	return "", false
}

// checkSubmission validates what can be checked without the document.
func checkSubmission(sub Submission) error {
	if len(sub.Src) > maxSrcLen {
		return fmt.Errorf("%w: src of %d bytes (at most %d)", ErrInvalidOp, len(sub.Src), maxSrcLen)
	}
	switch sub.Kind {
	case OpCreate:
		if _, ok := normType(sub.Type); !ok {
			return fmt.Errorf("%w: %q", ErrUnknownType, sub.Type)
		}
		if !utf8.ValidString(sub.Data) {
			return fmt.Errorf("%w: create data is not valid UTF-8", ErrInvalidOp)
		}
	case OpEdit:
		if err := sub.Op.Validate(); err != nil {
			return fmt.Errorf("%w: %w", ErrInvalidOp, err)
		}
	case OpDelete:
	default:
		return fmt.Errorf("%w: unknown op kind %d", ErrInvalidOp, sub.Kind)
	}
	return nil
}

// applySubmit validates, deduplicates and transforms sub, and applies it
// to the in-memory document. It returns the record to commit, or a
// Duplicate result, or an error with the document untouched.
func (s *session) applySubmit(sub Submission) (SubmitResult, Record, error) {
	if err := checkSubmission(sub); err != nil {
		return SubmitResult{}, Record{}, err
	}
	head := s.doc.head
	v := sub.Version
	if !sub.HasVersion {
		if sub.Kind == OpCreate && s.doc.typ != "" {
			// ShareDB's v:null create on an existing document: a resend
			// of the create is acknowledged, anything else refused.
			if e, ok := s.seqs[sub.Src]; ok && sub.Src != "" && e.Seq == sub.Seq {
				return s.duplicate(e.Version, e.Version), Record{}, nil
			}
			for _, r := range s.window {
				if sub.Src != "" && r.Src == sub.Src && r.Seq == sub.Seq {
					return s.duplicate(r.Version, r.Version), Record{}, nil
				}
			}
			return SubmitResult{}, Record{}, ErrDocExists
		}
		v = head
	}
	if v > head {
		return SubmitResult{}, Record{}, fmt.Errorf("%w: op at version %d, document at %d", ErrVersionAhead, v, head)
	}
	// Fast path: the seq table knows this src's last op. A seq at or
	// below it is a resend (seqs grow per src and document).
	if e, ok := s.seqs[sub.Src]; ok && sub.Src != "" && sub.Seq <= e.Seq {
		if sub.Seq == e.Seq {
			return s.duplicate(v, e.Version), Record{}, nil
		}
		recs, err := s.records(v, head)
		if err != nil {
			return SubmitResult{}, Record{}, err
		}
		for _, r := range recs {
			if r.Src == sub.Src && r.Seq == sub.Seq {
				return s.duplicate(v, r.Version), Record{}, nil
			}
		}
		return SubmitResult{}, Record{}, fmt.Errorf("%w: src %q seq %d, last committed seq %d", ErrStaleSeq, sub.Src, sub.Seq, e.Seq)
	}
	missed, err := s.records(v, head)
	if err != nil {
		return SubmitResult{}, Record{}, err
	}
	// The general rule (ShareDB's scan): the same src and seq among the
	// ops since v is a resend.
	if sub.Src != "" {
		for _, r := range missed {
			if r.Src == sub.Src && r.Seq == sub.Seq {
				return s.duplicate(v, r.Version), Record{}, nil
			}
		}
	}
	op := sub.Op
	for _, r := range missed {
		switch r.Kind {
		case OpDelete:
			if sub.Kind != OpDelete {
				return SubmitResult{}, Record{}, fmt.Errorf("%w: at version %d", ErrDocDeleted, r.Version)
			}
		case OpCreate:
			return SubmitResult{}, Record{}, fmt.Errorf("%w: at version %d", ErrDocExists, r.Version)
		case OpEdit:
			switch sub.Kind {
			case OpCreate:
				return SubmitResult{}, Record{}, fmt.Errorf("%w: edited at version %d", ErrDocExists, r.Version)
			case OpEdit:
				if op, err = ot.Transform(op, r.Op, ot.Left); err != nil {
					return SubmitResult{}, Record{}, fmt.Errorf("%w: transform over version %d: %w", ErrInvalidOp, r.Version, err)
				}
			}
		}
	}
	rec := Record{Version: head, Src: sub.Src, Seq: sub.Seq, Kind: sub.Kind, Time: s.h.opts.Now().UnixMilli()}
	maxLen := s.h.opts.MaxDocLen
	switch sub.Kind {
	case OpCreate:
		if s.doc.typ != "" {
			return SubmitResult{}, Record{}, ErrDocExists
		}
		if n := utf8.RuneCountInString(sub.Data); n > maxLen {
			return SubmitResult{}, Record{}, fmt.Errorf("%w: %d code points (at most %d)", ErrDocTooLarge, n, maxLen)
		}
		rec.Type, _ = normType(sub.Type)
		rec.Data = sub.Data
		s.doc.typ = rec.Type
		s.doc.rope = ot.NewRope(sub.Data)
	case OpDelete:
		s.doc.typ = ""
		s.doc.rope = ot.NewRope("")
	case OpEdit:
		if s.doc.typ == "" {
			return SubmitResult{}, Record{}, ErrDocMissing
		}
		n := s.doc.rope.Len()
		if op.BaseLen() <= n && n+op.Delta() > maxLen {
			return SubmitResult{}, Record{}, fmt.Errorf("%w: %d code points (at most %d)", ErrDocTooLarge, n+op.Delta(), maxLen)
		}
		if err := s.doc.rope.Apply(op); err != nil {
			return SubmitResult{}, Record{}, fmt.Errorf("%w: %w", ErrInvalidOp, err)
		}
		rec.Op = op
	}
	s.doc.head++
	s.push(rec)
	if sub.Src != "" {
		s.seqs[sub.Src] = SeqEntry{Seq: sub.Seq, Version: head}
	}
	return SubmitResult{Version: head, Op: rec.Op, Missed: missed}, rec, nil
}

// duplicate answers a resend committed at version at, made against
// version v: the records in [v, at) are what its submitter missed. A
// failure to read them only costs the client a re-fetch, so it is logged,
// not returned: the op is committed and must be acknowledged.
func (s *session) duplicate(v, at uint64) SubmitResult {
	res := SubmitResult{Version: at, Duplicate: true}
	recs, err := s.records(min(v, at), min(at+1, s.doc.head))
	if err != nil {
		s.h.log.Warn("collab: cannot read ops for a resend", "doc", s.key.String(), "err", err)
		return res
	}
	if n := len(recs); n > 0 && recs[n-1].Version == at {
		res.Op = recs[n-1].Op
		recs = recs[: n-1 : n-1]
	}
	res.Missed = recs
	return res
}

// remote applies records another node committed (from the Relay), in
// version order: older ones are skipped, a gap is filled from the Relay's
// log first. They are persisted to this node's Store before subscribers
// see them.
func (s *session) remote(in []Record) {
	in = slices.Clone(in)
	slices.SortFunc(in, func(a, b Record) int {
		switch {
		case a.Version < b.Version:
			return -1
		case a.Version > b.Version:
			return 1
		}
		return 0
	})
	next := s.doc.head
	var add []Record
	for _, r := range in {
		if r.Version < next {
			continue
		}
		if r.Version > next {
			gap, err := s.h.opts.Relay.Ops(context.Background(), s.key, next, r.Version)
			if err != nil || uint64(len(gap)) != r.Version-next || (len(gap) > 0 && gap[0].Version != next) {
				s.h.log.Warn("collab: cannot fill a gap in remote records", "doc", s.key.String(),
					"from", next, "to", r.Version, "got", len(gap), "err", err)
				break
			}
			add = append(add, gap...)
			next = r.Version
		}
		add = append(add, r)
		next++
	}
	if len(add) == 0 {
		return
	}
	for _, r := range add {
		if err := s.doc.applyRecord(r); err != nil {
			s.h.log.Error("collab: remote record does not apply", "doc", s.key.String(), "version", r.Version, "err", err)
			s.reload()
			return
		}
		s.push(r)
		if r.Src != "" {
			if e, ok := s.seqs[r.Src]; !ok || e.Seq <= r.Seq {
				s.seqs[r.Src] = SeqEntry{Seq: r.Seq, Version: r.Version}
			}
		}
	}
	var snap *Snapshot
	if s.doc.head-s.snapVer >= uint64(s.h.opts.SnapshotEvery) {
		sn := s.doc.snapshot()
		snap = &sn
	}
	if err := s.h.opts.Store.Commit(context.Background(), s.key, add, snap); err != nil {
		s.h.stats.commitErrors.Add(1)
		s.h.log.Warn("collab: cannot persist remote records", "doc", s.key.String(), "err", err)
		s.reload()
		return
	}
	if snap != nil {
		s.snapVer = snap.Version
	}
	s.h.stats.remoteRecords.Add(uint64(len(add)))
	for _, r := range add {
		s.broadcast(r, nil)
	}
	s.transformStoredPresence(add)
	s.trimWindow()
}
