package collab

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"
	"unicode/utf8"

	"github.com/coedit/coedit/ot"
)

// MaxSrcLen is the longest Submission.Src the engine accepts, in bytes:
// the store keeps each src in its seq table and refuses longer ones, and
// one such record would fail a whole group commit. Front ends set their
// own, smaller bound for what a client may send (web allows 64 bytes
// plus its "http:" prefix).
const MaxSrcLen = 1024

// submitGroup answers jobs, consecutive submits from the inbox, with one
// commit (group commit): commitGroup plans and commits, deliver sends the
// replies and broadcasts, settle finishes. Nothing is answered before
// the commit is durable, nor broadcast on a single node; in a cluster the
// subscribers without a submit in the group are sent the records once
// the commit point has them (sendEarly).
func (s *session) submitGroup(jobs []*job) {
	if s.pipe {
		s.submitPipelined(jobs)
		return
	}
	s.h.stats.submits.Add(uint64(len(jobs)))
	s.group = jobs
	out, recs := s.commitGroup(jobs)
	s.group = nil
	s.finishGroup(jobs, out, recs)
	clear(out) // let go of what the results hold (see outcomes)
}

// finishGroup sends what a committed group owes (deliver), counts its
// outcomes, and settles its records.
func (s *session) finishGroup(jobs []*job, out []outcome, recs []Record) {
	st := &s.h.stats
	for _, o := range out {
		switch {
		case o.err != nil:
			st.submitErrors.Add(1)
		case o.res.Duplicate:
			st.duplicates.Add(1)
		}
	}
	var early *frames
	if len(s.early.recs) > 0 {
		early = &s.early
	}
	st.broadcasts.Add(uint64(deliver(s.key, jobs, out, recs, s.subs, early)))
	s.early = frames{} // let go of the records and their frames
	if len(recs) > 0 {
		s.settle(recs, true)
	}
}

// commitGroup plans jobs against the session's state (each against the
// records the previous ones produce) and commits those records with one
// commit. When the Sequencer reports a conflict, it adopts the records it
// missed and plans again, trying at most maxSequenceTries times. It returns each
// job's outcome and the records committed: none when the commit failed,
// and then every submit that depended on it has the error (a resend of an
// op committed before the group is still acknowledged).
func (s *session) commitGroup(jobs []*job) ([]outcome, []Record) {
	aheadSynced := false
	for try := 1; ; try++ {
		out, recs := s.planGroup(jobs)
		if aheadSynced && anyAhead(jobs, out, nil) {
			// The sync did not bring their version: refuse the next such
			// ops without a round trip for a while.
			s.aheadMiss = time.Now()
		}
		if try == 1 && s.cluster != nil && anyAhead(jobs, out, s.fresh) && time.Since(s.aheadMiss) >= aheadWait {
			// Made on a version this node has not heard of yet: another
			// node committed it (its doorbell is on the way, or an HTTP
			// client read it there). Catch up and plan again, rather than
			// refuse an op that is not ahead of the document. If the
			// cluster cannot be asked, whether it is ahead is not known:
			// the op gets the sync's error (retryable), not a refusal.
			err := s.sync()
			if err == nil {
				aheadSynced = true
				continue
			}
			for i := range out {
				if errors.Is(out[i].err, ErrVersionAhead) {
					out[i].err = err
				}
			}
		}
		if len(recs) == 0 {
			return out, nil
		}
		err := s.commit(recs, true)
		if err == nil {
			return out, recs
		}
		var c *conflict
		if errors.Is(err, ErrResync) && try < maxSequenceTries {
			// The commit point's history changed (cluster.go): catch up
			// with it and plan again.
			if err = s.sync(); err == nil {
				continue
			}
		}
		if errors.As(err, &c) {
			// The records other nodes committed first are adopted even
			// when this was the last try: they are committed anyway.
			s.h.stats.commitConflicts.Add(1)
			if err = s.adopt(c.missed); err == nil {
				if try < maxSequenceTries {
					continue
				}
				err = fmt.Errorf("%w: %s after %d tries", ErrContended, s.key, try)
			}
		}
		return failPlanned(out, recs[0].Version, err), nil
	}
}

// aheadWait is how long after a sync that left ops ahead of the document
// the session refuses such ops without syncing again: a client that
// sends far-future versions costs its document a Redis round trip at
// most this often.
const aheadWait = 100 * time.Millisecond

// anyAhead reports whether a job was refused as ahead of the document;
// with fresh, only one that a sync begun after it was queued did not
// see (a sync now might bring its version).
func anyAhead(jobs []*job, out []outcome, fresh func(*job) bool) bool {
	for i, o := range out {
		if errors.Is(o.err, ErrVersionAhead) && (fresh == nil || !fresh(jobs[i])) {
			return true
		}
	}
	return false
}

// planGroup plans each job on one draft of the document and returns the
// outcomes and the records to commit.
func (s *session) planGroup(jobs []*job) ([]outcome, []Record) {
	d := s.draft()
	d.planned = make([]Record, 0, len(jobs))
	lim := limits{maxDocLen: s.h.opts.MaxDocLen, now: func() int64 { return s.h.opts.Now().UnixMilli() }}
	out := s.outcomes(len(jobs))
	for i, j := range jobs {
		if j.sub.HasVersion {
			// A fork in a sync of this commit's tries may have dropped
			// the records j's client made j on (cluster.go).
			if err := s.replacedCopy(j.sub.Src, &j.sub.Version, false); err != nil {
				out[i] = outcome{err: err}
				continue
			}
		}
		res, warn, err := d.plan(j.sub, lim)
		if warn != nil {
			s.h.log.Warn("collab: cannot read ops for a resend", "doc", s.key.String(), "err", warn)
		}
		if err == nil && len(j.missed) > 0 {
			// A catch-up for a submit without a Conn collected the
			// records before the window (catchup.go).
			res.Missed = append(slices.Clip(j.missed), res.Missed...)
		}
		out[i] = outcome{res, err}
	}
	return out, d.planned
}

// outcomes returns a slice of n zero outcomes. It is the session's own,
// reused by each group (submitGroup clears it when done), since a group's
// outcomes are only read while its replies are sent.
func (s *session) outcomes(n int) []outcome {
	if cap(s.outs) < n {
		s.outs = make([]outcome, n)
	}
	s.outs = s.outs[:n]
	clear(s.outs)
	return s.outs
}

// failPlanned gives err to every outcome that needed the failed commit of
// the records from version start on: all but errors already and resends
// of ops committed before the group.
func failPlanned(out []outcome, start uint64, err error) []outcome {
	for i := range out {
		o := &out[i]
		if o.err == nil && (!o.res.Duplicate || o.res.Version >= start) {
			*o = outcome{err: err}
		}
	}
	return out
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
	if len(sub.Src) > MaxSrcLen {
		return fmt.Errorf("%w: src of %d bytes (at most %d)", ErrInvalidOp, len(sub.Src), MaxSrcLen)
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

// remote adopts records another node committed (from the Relay), in
// version order: older ones are skipped, a gap is filled from the Relay's
// log first. If they cannot be adopted (they do not apply, or the Store
// fails), the session is left as it was: the next record's gap fill
// brings them again.
func (s *session) remote(in []Record) {
	add := s.inOrder(in)
	if len(add) == 0 {
		return
	}
	if err := s.adopt(add); err != nil {
		s.h.log.Error("collab: cannot adopt remote records", "doc", s.key.String(),
			"from", add[0].Version, "count", len(add), "err", err)
	}
}

// inOrder returns the records of in that continue the head, in version
// order, with gaps filled from the Relay's log; it stops at a gap it
// cannot fill.
func (s *session) inOrder(in []Record) []Record {
	in = slices.Clone(in)
	slices.SortFunc(in, func(a, b Record) int { return cmp.Compare(a.Version, b.Version) })
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
	return add
}
