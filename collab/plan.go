package collab

import (
	"fmt"
	"slices"
	"unicode/utf8"

	"github.com/coedit/coedit/ot"
)

// draft is a document as a group commit will leave it: the session's
// committed state plus the records planned so far in the group. Each
// submission of a group is planned against the draft the previous ones
// left, so it transforms over them and dedupes against them, but nothing
// of the session changes until the commit succeeds (commit.go): a refused
// submission or a failed commit needs no undo.
//
// The draft tracks the document's shape (head, type, length), not its
// text: that is all the rules need (shape.apply), and the text changes
// once, after the commit.
type draft struct {
	shape          // after the planned records
	base    uint64 // the session's head: planned records start here
	memFrom uint64 // the oldest version the session holds in memory
	planned []Record
	seqs    map[string]SeqEntry // the session's seq table (read only)
	// plannedSq holds the seq entries of the planned records once there
	// are more than scanPlanned of them; until then seq scans planned.
	plannedSq map[string]SeqEntry
	// committed returns the session's records [from, to), to <= base.
	committed func(from, to uint64) ([]Record, error)
}

// draft returns a draft of s's document with nothing planned.
func (s *session) draft() *draft {
	sh := s.doc.shape()
	return &draft{shape: sh, base: sh.head, memFrom: s.windowStart(), seqs: s.seqs.last, committed: s.records}
}

// records returns the records [from, to) committed or planned, to <= head.
func (d *draft) records(from, to uint64) ([]Record, error) {
	if from >= to {
		return nil, nil
	}
	if to <= d.base {
		return d.committed(from, to)
	}
	if from >= d.base {
		return d.planned[from-d.base : to-d.base : to-d.base], nil
	}
	old, err := d.committed(from, d.base)
	if err != nil {
		return nil, err
	}
	return append(slices.Clip(old), d.planned[:to-d.base]...), nil
}

// scanPlanned is how many planned records seq scans before add indexes
// them in a map: most groups are small, and a map per group would cost
// two allocations for nothing.
const scanPlanned = 8

// seq returns src's last committed or planned op.
func (d *draft) seq(src string) (SeqEntry, bool) {
	if d.plannedSq != nil {
		if e, ok := d.plannedSq[src]; ok {
			return e, true
		}
	} else if src != "" {
		for i := len(d.planned) - 1; i >= 0; i-- {
			if r := &d.planned[i]; r.Src == src {
				return SeqEntry{Seq: r.Seq, Version: r.Version}, true
			}
		}
	}
	e, ok := d.seqs[src]
	return e, ok
}

// add appends rec, which the shape next describes, to the plan.
func (d *draft) add(rec Record, next shape) {
	d.shape = next
	d.planned = append(d.planned, rec)
	switch {
	case d.plannedSq != nil:
		if rec.Src != "" {
			d.plannedSq[rec.Src] = SeqEntry{Seq: rec.Seq, Version: rec.Version}
		}
	case len(d.planned) > scanPlanned:
		d.plannedSq = make(map[string]SeqEntry, 2*len(d.planned))
		for _, r := range d.planned {
			if r.Src != "" {
				d.plannedSq[r.Src] = SeqEntry{Seq: r.Seq, Version: r.Version}
			}
		}
	}
}

// limits are the parts of Options that planning applies.
type limits struct {
	maxDocLen int
	now       func() int64 // commit time, Unix ms
}

// plan decides what sub does at the draft's head: it is a resend (a
// Duplicate result; warn, when not nil, says why the result lacks the
// records it missed), or it is refused (err, the draft untouched), or it
// is transformed into a record at the head, which is added to the draft.
// Validate, dedupe, transform, check: the order of ShareDB's submit.
func (d *draft) plan(sub Submission, lim limits) (res SubmitResult, warn, err error) {
	if err := checkSubmission(sub); err != nil {
		return SubmitResult{}, nil, err
	}
	v := sub.Version
	if !sub.HasVersion {
		if sub.Kind == OpCreate && d.typ != "" {
			// ShareDB's v:null create on an existing document: a resend
			// of the create (found in the seq table or in memory) is
			// acknowledged, anything else refused.
			last, known := d.seq(sub.Src)
			inMemory := func() ([]Record, error) { return d.records(d.memFrom, d.head) }
			// Without a version, any commit version can be the
			// resend's: 0 is at or before all of them.
			if r, _ := dedupe(sub.Src, sub.Seq, 0, last, known, inMemory); r.dup {
				res, warn := d.duplicate(r.at, r.at)
				return res, warn, nil
			}
			return SubmitResult{}, nil, ErrDocExists
		}
		v = d.head
	}
	if v > d.head {
		return SubmitResult{}, nil, fmt.Errorf("%w: op at version %d, document at %d", ErrVersionAhead, v, d.head)
	}
	var missed []Record
	var missedErr error
	read := false
	since := func() ([]Record, error) {
		if !read {
			missed, missedErr = d.records(v, d.head)
			read = true
		}
		return missed, missedErr
	}
	last, known := d.seq(sub.Src)
	madeAt := v
	if !sub.HasVersion {
		madeAt = 0 // a v:null create: see above
	}
	r, err := dedupe(sub.Src, sub.Seq, madeAt, last, known, since)
	if err != nil {
		return SubmitResult{}, nil, err
	}
	if r.dup {
		res, warn := d.duplicate(v, r.at)
		return res, warn, nil
	}
	if _, err := since(); err != nil {
		return SubmitResult{}, nil, err
	}
	op, err := rebase(sub, missed)
	if err != nil {
		return SubmitResult{}, nil, err
	}
	rec := Record{Version: d.head, Src: sub.Src, Seq: sub.Seq, Kind: sub.Kind, Time: lim.now()}
	switch sub.Kind {
	case OpCreate:
		if d.typ != "" {
			return SubmitResult{}, nil, ErrDocExists
		}
		if n := utf8.RuneCountInString(sub.Data); n > lim.maxDocLen {
			return SubmitResult{}, nil, fmt.Errorf("%w: %d code points (at most %d)", ErrDocTooLarge, n, lim.maxDocLen)
		}
		rec.Type, _ = normType(sub.Type)
		rec.Data = sub.Data
	case OpEdit:
		if d.typ == "" {
			return SubmitResult{}, nil, d.absent()
		}
		if n := d.length; op.BaseLen() <= n && n+op.Delta() > lim.maxDocLen {
			return SubmitResult{}, nil, fmt.Errorf("%w: %d code points (at most %d)", ErrDocTooLarge, n+op.Delta(), lim.maxDocLen)
		}
		rec.Op = op
	case OpDelete:
		// Only a document that exists can be deleted: a delete of nothing
		// would be stored as a record no history can replay.
		if d.typ == "" {
			return SubmitResult{}, nil, d.absent()
		}
	}
	next, err := d.shape.apply(rec)
	if err != nil {
		return SubmitResult{}, nil, err
	}
	d.add(rec, next)
	return SubmitResult{Version: rec.Version, Op: rec.Op, Missed: missed, Record: rec}, nil, nil
}

// absent is the error for an edit or delete of a document without a type
// at the draft's head: ErrDocDeleted when it has a history (it was
// created, then deleted), ErrDocMissing when it was never created.
func (d *draft) absent() error {
	if d.head > 0 {
		return fmt.Errorf("%w: at version %d", ErrDocDeleted, d.head)
	}
	return ErrDocMissing
}

// duplicate answers a resend committed at version at, made against
// version v: the records in [v, at) are what its submitter missed. A
// failure to read them only costs the client a re-fetch, so it comes back
// as warn, not as an error: the op is committed and must be acknowledged.
func (d *draft) duplicate(v, at uint64) (res SubmitResult, warn error) {
	res = SubmitResult{Version: at, Duplicate: true}
	recs, err := d.records(min(v, at), min(at+1, d.head))
	if err != nil {
		return res, err
	}
	if n := len(recs); n > 0 && recs[n-1].Version == at {
		res.Record = recs[n-1]
		res.Op = res.Record.Op
		recs = recs[: n-1 : n-1]
	}
	res.Missed = recs
	return res, nil
}

// rebase transforms sub over missed, the records committed since its
// version, by ShareDB's rules: an edit is transformed over each edit
// (ot.TransformTo with ot.Left, as ShareDB's server does); nothing but a
// delete may follow a concurrent delete (ErrDocDeleted); nothing may
// follow a concurrent create, and a create nothing at all (ErrDocExists).
// It returns the op to commit (nil for a create or delete).
func rebase(sub Submission, missed []Record) (ot.Op, error) {
	op := sub.Op
	// Each step's result is the next one's input: two buffers, used in
	// turn, hold them (ot.TransformTo), so a rebase over many records
	// allocates two ops, not one per record. Both are this rebase's own,
	// so the last result can be kept.
	var bufs [2]ot.Op
	step := 0
	for _, r := range missed {
		switch r.Kind {
		case OpDelete:
			if sub.Kind != OpDelete {
				return nil, fmt.Errorf("%w: at version %d", ErrDocDeleted, r.Version)
			}
		case OpCreate:
			return nil, fmt.Errorf("%w: at version %d", ErrDocExists, r.Version)
		case OpEdit:
			switch sub.Kind {
			case OpCreate:
				return nil, fmt.Errorf("%w: edited at version %d", ErrDocExists, r.Version)
			case OpEdit:
				var err error
				b := &bufs[step%2]
				step++
				if *b, err = ot.TransformTo(*b, op, r.Op, ot.Left); err != nil {
					return nil, fmt.Errorf("%w: transform over version %d: %w", ErrInvalidOp, r.Version, err)
				}
				op = *b
			}
		}
	}
	if sub.Kind != OpEdit {
		return nil, nil
	}
	return op, nil
}
