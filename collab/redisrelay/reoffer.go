package redisrelay

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/coedit/coedit/collab"
	"github.com/coedit/coedit/ot"
)

// reoffer offers the node's records [shared, head), which the history h
// does not hold (Redis lost them and another node moved on), to Redis
// again, as a client that was offline would offer its pending ops: each
// keeps its src and seq, is transformed over the records h committed
// from shared on (and over those committed meanwhile), and is committed
// at the head. A record whose src and seq h holds already is skipped: it
// is there (an earlier reoffer was interrupted, or its client resent it
// to another node), so running reoffer again is harmless. A record with
// no src is given one made of the epoch and its version, for the same
// reason.
//
// Records that cannot be offered (a concurrent create or delete in h
// makes them meaningless, their src committed a later seq in h, or
// Redis no longer keeps the records of h from shared on) are
// logged as lost and counted (ClusterStats.Lost): that is the cost of a
// Redis that lost acknowledged writes (doc.go, README).
func (l *link) reoffer(ctx context.Context, h Head, shared, head uint64) error {
	c := l.c
	old, err := c.opts.Store.Ops(ctx, l.key, shared, head)
	if err == nil && uint64(len(old)) != head-shared {
		err = fmt.Errorf("%w: the store has %d of the records [%d, %d)", collab.ErrOpsMissing, len(old), shared, head)
	}
	if err != nil {
		return fmt.Errorf("redisrelay: offer %s again: %w", l.key, err)
	}
	prev := l.current()
	c.log.Warn("redisrelay: Redis's history of a document replaced records this node has; offering them again",
		"doc", l.key.String(), "epoch", h.Epoch, "from", shared, "records", len(old), "previous_epoch", prev)
	pending := make([]collab.Record, len(old))
	for i, r := range old {
		if r.Src == "" {
			r.Src, r.Seq = fmt.Sprintf("reoffer:%s:%d:%d", prev, r.Version, r.Time), 1
		}
		pending[i] = r
	}
	var theirs []collab.Record
	err = c.retry(ctx, func(ctx context.Context) (err error) {
		theirs, err = c.r.Read(ctx, l.key, h.Epoch, shared, h.Version)
		return err
	})
	if errors.Is(err, ErrTrimmed) {
		// Redis no longer keeps what h committed from shared on (it
		// moved on past its tail since): there is nothing to transform
		// the records over. Those whose src h's seq table shows last
		// at their seq are in h already (another node offered them, or
		// their client resent them); the rest are lost.
		in, err := l.seqsReached(ctx, pending)
		if err != nil {
			return err
		}
		for i, r := range pending {
			if !in[i] {
				l.lose(r, fmt.Sprintf("Redis no longer keeps the records from version %d it would be transformed over", shared))
			}
		}
		return nil
	}
	if err != nil {
		return err
	}
	pending = l.rebase(pending, theirs)
	at := h.Version
	for len(pending) > 0 {
		p := pending[0]
		p.Version, p.Time = at, time.Now().UnixMilli()
		var res Result
		err := c.retry(ctx, func(ctx context.Context) (err error) {
			res, err = c.r.Commit(ctx, l.key, h.Epoch, at, []collab.Record{p})
			if err == nil && res.Outcome == Duplicate && res.Version >= at {
				res.Missed, err = c.r.Read(ctx, l.key, h.Epoch, at, maxNumber)
			}
			return err
		})
		if errors.Is(err, ErrStaleSeq) {
			l.lose(p, "its src committed a later seq in the cluster's history")
			pending = pending[1:]
			continue
		}
		if err != nil {
			return err
		}
		switch {
		case res.Outcome == Committed:
			c.stats.reoffered.Add(1)
			pending = pending[1:]
			at++
		case res.Outcome == Duplicate && res.Version < at:
			pending = pending[1:] // in the history already, below where it was offered
		default:
			// Committed meanwhile by others (a conflict, or the record
			// itself resent elsewhere): transform over those and go on.
			pending = l.rebase(pending, res.Missed)
			at += uint64(len(res.Missed))
		}
	}
	return nil
}

// seqsReached reports, for each record, whether the document's seq
// table in Redis holds its src last at its seq: then the history holds
// that op. A false may still be one it holds (its src went on to later
// seqs, or the table, which keeps the srcs of about two tails' records,
// dropped it).
func (l *link) seqsReached(ctx context.Context, recs []collab.Record) ([]bool, error) {
	c := l.c
	var srcs []string
	for _, r := range recs {
		if r.Src != "" && !slices.Contains(srcs, r.Src) {
			srcs = append(srcs, r.Src)
		}
	}
	in := make([]bool, len(recs))
	if len(srcs) == 0 {
		return in, nil
	}
	var vals []any
	err := c.retry(ctx, func(ctx context.Context) (err error) {
		vals, err = c.r.c.HMGet(ctx, c.r.keys(l.key).seqs, srcs...).Result()
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("redisrelay: read %s's seq table: %w", l.key, err)
	}
	last := make(map[string]uint64, len(srcs))
	for i, v := range vals {
		if s, ok := v.(string); ok {
			e, err := parseSeqValue(s)
			if err != nil {
				return nil, fmt.Errorf("redisrelay: %s: %w", l.key, err)
			}
			last[srcs[i]] = e.Seq
		}
	}
	for i, r := range recs {
		seq, ok := last[r.Src]
		in[i] = ok && r.Src != "" && seq == r.Seq // a later seq does not show this one is there
	}
	return in, nil
}

// rebase transforms pending, a chain of records each made on the one
// before, over theirs, records of the history they are offered to, as a
// client transforms its pending ops over ops from the server. A record
// of theirs with the src and seq of the first pending one is that record
// (acknowledged, in the client's terms): it is dropped from pending and
// the rest is not transformed over it.
func (l *link) rebase(pending, theirs []collab.Record) []collab.Record {
	for _, n := range theirs {
		if len(pending) == 0 {
			break
		}
		if p := pending[0]; p.Src != "" && p.Src == n.Src && p.Seq == n.Seq {
			pending = pending[1:]
			continue
		}
		var lost []collab.Record
		pending, lost = transformChain(pending, n)
		for _, r := range lost {
			l.lose(r, fmt.Sprintf("it cannot follow the record at version %d of the cluster's history (a concurrent create or delete)", n.Version))
		}
	}
	return pending
}

// lose logs a record that could not be offered again.
func (l *link) lose(r collab.Record, why string) {
	l.c.stats.lost.Add(1)
	l.c.log.Error("redisrelay: a record Redis lost cannot be offered again and is dropped",
		"doc", l.key.String(), "src", r.Src, "seq", r.Seq, "version", r.Version, "why", why)
}

// transformChain transforms pending (each made on the one before) over
// n, made on the same document as pending[0], by ShareDB's rules: edits
// transform (pending on the left, as the server transforms an incoming
// op); nothing but a delete may follow a concurrent delete, and nothing
// may follow a concurrent create, nor a create an edit. It returns the
// records that stay, transformed, and those that cannot be applied.
func transformChain(pending []collab.Record, n collab.Record) (kept, lost []collab.Record) {
	kept = make([]collab.Record, 0, len(pending))
	for i, p := range pending {
		switch {
		case n.Kind == collab.OpCreate:
			// The document was (re)created under pending: none applies.
			return kept, append(lost, pending[i:]...)
		case n.Kind == collab.OpDelete && p.Kind == collab.OpEdit:
			lost = append(lost, p) // an edit of a deleted document
			continue
		case n.Kind == collab.OpDelete:
			// p deletes again or creates anew: the rest is made on p,
			// which n does not change.
			return append(append(kept, p), pending[i+1:]...), lost
		case p.Kind == collab.OpCreate:
			// n edits a document p would create again.
			return kept, append(lost, pending[i:]...)
		case p.Kind == collab.OpDelete:
			// n edits a document p deletes: the rest follows p.
			return append(append(kept, p), pending[i+1:]...), lost
		}
		pOp, err1 := ot.Transform(p.Op, n.Op, ot.Left)
		nOp, err2 := ot.Transform(n.Op, p.Op, ot.Right)
		if err1 != nil || err2 != nil {
			return kept, append(lost, pending[i:]...)
		}
		p.Op, n.Op = pOp, nOp
		kept = append(kept, p)
	}
	return kept, lost
}
