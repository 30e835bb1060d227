package redisrelay

import (
	"context"
	"errors"
	"fmt"

	"github.com/coedit/coedit/collab"
)

// This file is how a session gets to follow Redis's history of its
// document (collab.ClusterLink.Sync), running doc.go's reseed protocol
// from the session's goroutine.
//
// The node's Store notes, per document, the epoch its records are a
// prefix of (EpochStore). A session that starts reads the note; from
// then on the link's epoch is the session's, and the note follows it
// whenever the session's records are known to be a prefix of the new
// epoch's history. So after a restart the node knows which history its
// records belong to, and Head.Shared tells how much of it survives.

// maxSyncSteps bounds the rounds of one Sync: each round reads the head
// and makes one repair (seed, renew, offer records again) or returns.
// Racing nodes make a few rounds; more means something keeps changing
// the document's state, and the session tries again later.
const maxSyncSteps = 16

// Sync implements collab.ClusterLink.
func (l *link) Sync(ctx context.Context, head uint64, fork func(from uint64) error) (collab.Catchup, error) {
	c := l.c
	if l.current() == "" {
		if err := l.readNote(ctx, head); err != nil {
			return collab.Catchup{}, err
		}
	}
	for range maxSyncSteps {
		var h Head
		var ok bool
		err := c.retry(ctx, func(ctx context.Context) (err error) {
			h, ok, err = c.r.Head(ctx, l.key)
			return err
		})
		if err != nil {
			return collab.Catchup{}, err
		}
		if !ok || !h.Restarted {
			l.renewDue = false // another node renewed, or Redis lost the document
		}
		var recs []collab.Record
		done := false
		switch {
		case !ok && head == 0:
			// Nothing anywhere that this node knows of. Seeding an empty
			// document for a read would leave keys in Redis for every id
			// anyone asks for; the first commit seeds it (Sequence). An
			// epoch the session followed (an empty seed) is gone with
			// Redis's state: the session follows none, so that its
			// first commit seeds anew.
			l.setEpoch("")
			return collab.Catchup{}, nil
		case !ok:
			err = l.seed(ctx, head)
		case h.Restarted && l.renewNow(h, head):
			err = l.renew(ctx, h, head)
		default:
			// A restarted epoch this node has nothing to put back in is
			// read as it is: its renewal is left to a node that has
			// records Redis may have lost, or to this node's next commit.
			recs, done, err = l.catchUp(ctx, h, &head, fork)
		}
		l.dueIfRestarted(err) // a commit of this sync's met the restart: renew next
		switch {
		case errors.Is(err, ErrEpoch):
			continue // another node moved first: look again
		case err != nil:
			return collab.Catchup{}, err
		case done:
			l.note(ctx)
			if n := len(recs); n > 0 {
				l.saw(recs[n-1].Version + 1)
			}
			// The replaced clients came with the head (one round trip),
			// unless this round forked (replace), which noted more.
			replaced := h.Replaced
			if l.forked {
				l.forked = false
				if err := c.retry(ctx, func(ctx context.Context) (err error) {
					replaced, err = c.r.Replaced(ctx, l.key)
					return err
				}); err != nil {
					return collab.Catchup{}, err
				}
			}
			rebased := l.rebased
			l.rebased = false
			return collab.Catchup{Epoch: l.current(), Records: recs, Replaced: replaced, Rebased: rebased}, nil
		}
	}
	return collab.Catchup{}, fmt.Errorf("%w: %s: its state in Redis kept changing", collab.ErrUnavailable, l.key)
}

// readNote sets the link's epoch from the Store's note. Records without
// a note (a store from a single node, or a crash before the note was
// written) belong to no known history; an empty log needs none.
func (l *link) readNote(ctx context.Context, head uint64) error {
	if head == 0 {
		return nil
	}
	note, err := l.c.opts.Store.Epoch(ctx, l.key)
	if err != nil {
		return fmt.Errorf("redisrelay: read the epoch note of %s: %w", l.key, err)
	}
	epoch, lineage := decodeNote(note)
	l.lineage = lineage
	l.setEpoch(epoch)
	l.noted = epoch
	return nil
}

// seed offers the node's state of a document Redis has none of (Init):
// the records of the last TailLen versions, the snapshot below them and
// the seqs, so that nodes behind can catch up from the stream. If this
// node wins, it follows the new epoch; else the next round catches up.
func (l *link) seed(ctx context.Context, head uint64) error {
	c := l.c
	st := c.opts.Store
	var seed Seed
	seed.Prev = l.current()
	seed.Lineage = l.lineage
	base := uint64(0)
	if tail := uint64(c.r.opts.TailLen); head > tail {
		base = head - tail
	}
	var err error
	if bs, ok := st.(collab.BaseStore); ok && head > 0 {
		// A log that starts at a base (base.go) seeds from there at most.
		var first uint64
		if first, err = bs.Base(ctx, l.key); err != nil {
			return fmt.Errorf("redisrelay: seed %s from the store: %w", l.key, err)
		}
		base = max(base, first)
	}
	if head > 0 {
		if seed.Doc.Snapshot, err = st.SnapshotAt(ctx, l.key, base); err == nil {
			seed.Doc.Ops, err = st.Ops(ctx, l.key, seed.Doc.Snapshot.Version, head)
		}
		var loaded collab.DocState
		if err == nil {
			loaded, err = st.Load(ctx, l.key)
			seed.Doc.Seqs = loaded.Seqs
		}
		if err == nil && seed.Doc.Snapshot.Version+uint64(len(seed.Doc.Ops)) != head {
			err = fmt.Errorf("%w: the store holds %d records after the snapshot at %d, head %d", collab.ErrOpsMissing, len(seed.Doc.Ops), seed.Doc.Snapshot.Version, head)
		}
		if err != nil {
			return fmt.Errorf("redisrelay: seed %s from the store: %w", l.key, err)
		}
	}
	var epoch string
	var lineage []Fork
	var won bool
	err = c.retry(ctx, func(ctx context.Context) (err error) {
		epoch, lineage, won, err = c.r.init(ctx, l.key, seed)
		return err
	})
	if err != nil {
		return err
	}
	if won {
		c.stats.seeds.Add(1)
		l.follow(ctx, epoch, lineage)
	}
	return nil
}

// renewNow reports whether the session should renew h's epoch, which
// Redis restarted (or failed over) since it began, rather than read it as
// it is: its own commit met the restart (renewDue), or it holds records
// h may lack, which only a renewal puts back (it follows h.Epoch and is
// past its head) or which another history made (renew's first case). A
// node of no known history (no note: a node that only ever read keeps
// none when it joined with an empty store) compares its records first
// (catchUp, nohistory.go); if it must offer any, its commit meets the
// restart and the next round renews.
//
// A node with nothing to put back leaves the renewal to a node that has
// something, or to its first commit: with appendfsync everysec or no
// persistence, Redis's restart may have lost records that some node still
// holds, and a renewal by any other node first would make that node offer
// them again as new ops and tell its clients their copies were replaced,
// where its own renewal puts them back at their versions.
func (l *link) renewNow(h Head, head uint64) bool {
	if l.renewDue {
		return true
	}
	if head == 0 {
		return false
	}
	shared, ok := h.Shared(l.current())
	return ok && head > shared
}

// dueIfRestarted makes the session's next Sync renew (renewNow) when
// err says a commit met Redis's restart.
func (l *link) dueIfRestarted(err error) {
	var ee *EpochError
	if errors.As(err, &ee) && ee.Reason == EpochRestarted {
		l.renewDue = true
	}
}

// renew starts a new epoch after Redis restarted (or failed over) since
// h.Epoch began, putting back the records Redis lost that this node has.
//
// A node that does not follow h.Epoch renews with nothing and does not
// follow the new epoch: it cannot tell whether its records are that
// history's. The next round (catchUp) finds how much of its own history
// the new epoch shares (Head.Shared, through the lineage the renewal
// wrote) and offers the rest again, as for any epoch it does not follow.
// Following the renewed epoch here would take the node's records for
// that history's, unchecked: an op it committed while Redis held another
// history would be lost to the cluster.
func (l *link) renew(ctx context.Context, h Head, head uint64) error {
	if l.current() != h.Epoch {
		_, err := l.renewCall(ctx, h.Epoch, nil)
		return err
	}
	var extras []collab.Record
	if head > h.Version {
		var err error
		if extras, err = l.c.opts.Store.Ops(ctx, l.key, h.Version, head); err != nil {
			return fmt.Errorf("redisrelay: renew %s: %w", l.key, err)
		}
	}
	return l.renewWith(ctx, h.Epoch, extras)
}

// renewWith renews epoch, which the session follows, with extras, and
// follows the new epoch.
func (l *link) renewWith(ctx context.Context, epoch string, extras []collab.Record) error {
	rn, err := l.renewCall(ctx, epoch, extras)
	if err != nil {
		return err
	}
	// The lineage is the one the script wrote.
	l.follow(ctx, rn.epoch, rn.lineage)
	return nil
}

// renewCall calls the relay's renew, retrying, and counts a renewal.
func (l *link) renewCall(ctx context.Context, epoch string, extras []collab.Record) (renewal, error) {
	c := l.c
	var rn renewal
	err := c.retry(ctx, func(ctx context.Context) (err error) {
		rn, err = c.r.renew(ctx, l.key, epoch, extras)
		return err
	})
	if err == nil && rn.epoch != epoch {
		c.stats.renewals.Add(1)
	}
	if err == nil || errors.Is(err, ErrEpoch) {
		l.renewDue = false // renewed, by this node or another
	}
	return rn, err
}

// catchUp handles a healthy epoch h: it follows it if the session's
// records are a prefix of its history (offering them again and forking
// if they are not), puts back records Redis lost, or returns the records
// the session lacks (done).
func (l *link) catchUp(ctx context.Context, h Head, head *uint64, fork func(uint64) error) ([]collab.Record, bool, error) {
	c := l.c
	if cur := l.current(); cur != h.Epoch {
		shared, ok := h.Shared(cur)
		if *head == 0 {
			shared, ok = 0, true // nothing of the node's to place
		}
		if !ok {
			// No history the node knows (nohistory.go).
			m, err := l.matched(ctx, h, *head)
			switch {
			case err != nil:
				return nil, false, err
			case m.none:
				recs, err := l.replace(ctx, h, head, m.base, fork)
				return recs, err == nil, err
			case m.shared == h.Version && *head > h.Version:
				// Landed or not, the next round reads the head again: if
				// another node committed meanwhile, it compares anew
				// rather than offering records over a stale head.
				return nil, false, l.putBack(ctx, h, *head)
			}
			shared = m.shared
		}
		if *head > shared {
			if err := l.reoffer(ctx, h, shared, *head); err != nil {
				return nil, false, err
			}
			if err := fork(shared); err != nil {
				return nil, false, err
			}
			c.stats.forks.Add(1)
			*head = shared
			l.forget(shared)
			l.follow(ctx, h.Epoch, h.Lineage)
			return nil, false, nil // the records offered moved Redis's head
		}
		l.follow(ctx, h.Epoch, h.Lineage)
	}
	l.lineage = h.Lineage // the same epoch's, for a link whose note had none
	if *head > h.Version {
		// Redis holds fewer records of this epoch than the node: it lost
		// them (EpochBehind). Put them back.
		extras, err := c.opts.Store.Ops(ctx, l.key, h.Version, *head)
		if err != nil {
			return nil, false, fmt.Errorf("redisrelay: renew %s: %w", l.key, err)
		}
		return nil, false, l.renewWith(ctx, h.Epoch, extras)
	}
	l.setSnapVersion(h.SnapshotVersion)
	if *head == h.Version {
		return nil, true, nil
	}
	var recs []collab.Record
	err := c.retry(ctx, func(ctx context.Context) (err error) {
		recs, err = c.r.Read(ctx, l.key, h.Epoch, *head, h.Version)
		return err
	})
	if errors.Is(err, ErrTrimmed) {
		recs, err = l.install(ctx, h, *head, err) // base.go
	}
	return recs, err == nil, err
}

// Stored implements collab.StoredNoter: once the session's Store holds
// records it adopted, the link notes their epoch beside them (a note
// written before, with the Store still empty, keeps nothing; a node that
// only reads a document commits nothing that would write it).
func (l *link) Stored() { l.note(context.Background()) }

var _ collab.StoredNoter = (*link)(nil)
