package redisrelay

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/coedit/coedit/collab"
)

// This file is how a node joins Redis's history of a document when its
// records belong to no history it knows: they carry no epoch note (a
// store from a single node, a copy of another node's store, a crash
// before the note was written), or the note names an epoch that is not
// in the lineage of Redis's. The node cannot tell from the epochs how
// much of its log Redis's history shares, so it compares records.

// match is what a node of no known history found comparing its records
// with Redis's.
type match struct {
	// shared: the node's records below it are Redis's history's.
	shared uint64
	// none: no record could be compared (all the node's lie below what
	// Redis keeps, or above its head, or it has none past its base);
	// shared is unset.
	none bool
	// base is where the node's log starts.
	base uint64
}

// matched compares the node's records with Redis's where both hold them:
// from the later of the store's base and the first version Redis keeps,
// to the earlier of the two heads. The records below the first that
// differs are the history's. If the first one compared differs and lies
// above version 0, the node cannot tell what its records were made on
// (another document under the same name, or a copy that went its own
// way below what Redis keeps): Sync fails and says so. (At version 0 a
// differing create is sound to offer again: it is lost by reoffer's
// rules, and so is every record after it.)
func (l *link) matched(ctx context.Context, h Head, head uint64) (match, error) {
	c := l.c
	var m match
	if bs, ok := c.opts.Store.(collab.BaseStore); ok {
		base, err := bs.Base(ctx, l.key)
		if err != nil {
			return m, fmt.Errorf("redisrelay: compare %s's records with Redis's: %w", l.key, err)
		}
		m.base = base
	}
	lo, hi := m.base, min(head, h.Version)
	var theirs []collab.Record
	if lo < hi {
		// What the stream holds of [lo, hi): from its first record on.
		err := c.retry(ctx, func(ctx context.Context) (err error) {
			theirs, _, err = c.r.read(ctx, l.key, h.Epoch, lo, hi)
			return err
		})
		if err != nil {
			return m, err
		}
		lo = hi
		if len(theirs) > 0 {
			lo = theirs[0].Version
		}
	}
	if lo >= hi && m.base == 0 && h.Version == 0 {
		return m, nil // both start from the empty document: shared 0
	}
	if lo >= hi {
		m.none = true
		return m, nil
	}
	ours, err := c.opts.Store.Ops(ctx, l.key, lo, hi)
	if err != nil {
		return m, fmt.Errorf("redisrelay: compare %s's records with Redis's: %w", l.key, err)
	}
	k := 0
	for k < len(ours) && k < len(theirs) && sameRecord(ours[k], theirs[k]) {
		k++
	}
	if k == 0 && lo > 0 {
		return m, fmt.Errorf("%w: %s: this node's records belong to no history it knows, and differ from Redis's at version %d, the first both hold; what they were made on is unknown, so they cannot be offered again",
			collab.ErrUnavailable, l.key, lo)
	}
	m.shared = lo + uint64(k)
	return m, nil
}

// sameRecord reports whether a and b are the same record.
func sameRecord(a, b collab.Record) bool {
	return a.Version == b.Version && a.Src == b.Src && a.Seq == b.Seq && a.Kind == b.Kind &&
		a.Type == b.Type && a.Data == b.Data && a.Time == b.Time && slices.Equal(a.Op, b.Op)
}

// putBack commits the node's records from h.Version to head, which go on
// from every record of Redis's history it compared, at their own
// versions, and follows h.Epoch once they are in. The commit expects
// Redis's head at h.Version (and checks the first record's src and seq),
// atomically: unlike a renewal's put-back, which runs while commits are
// refused, this epoch takes commits meanwhile. If it does not land
// (another node committed, or the first record is in Redis already),
// nothing is written, and the caller reads the head and compares again.
func (l *link) putBack(ctx context.Context, h Head, head uint64) error {
	c := l.c
	extras, err := c.opts.Store.Ops(ctx, l.key, h.Version, head)
	if err != nil {
		return fmt.Errorf("redisrelay: put %s's records back: %w", l.key, err)
	}
	var res Result
	err = c.retry(ctx, func(ctx context.Context) (err error) {
		res, err = c.r.Commit(ctx, l.key, h.Epoch, h.Version, extras)
		return err
	})
	switch {
	case errors.Is(err, ErrStaleSeq), errors.Is(err, ErrTrimmed):
		// Not in: a src's later seq is there, or Redis moved on so far
		// that it no longer keeps what was committed over h.
		return nil
	case err != nil:
		return err
	case res.Outcome != Committed || res.Version != h.Version:
		return nil
	}
	c.log.Info("redisrelay: put back records of no known history that continue Redis's",
		"doc", l.key.String(), "from", h.Version, "records", len(extras), "epoch", h.Epoch)
	l.follow(ctx, h.Epoch, h.Lineage)
	return nil
}

// replace installs Redis's snapshot in place of the node's log of a
// document when none of its records could be compared with Redis's (all
// lie below what Redis keeps or above its head, or it has none past its
// base), and returns the records after the snapshot. The node's records
// from base to head most likely are the history's (a copy far behind),
// but nothing shows it: they are counted lost and logged first, as edits
// made on this node alone would be lost; then the node forks at its base,
// which notes their authors and its clients as holding a replaced history
// (so none of them is caught up from a copy that may hold them), and
// installs. Without a snapshot past the node's head there is nothing to
// install over it, and Sync fails.
func (l *link) replace(ctx context.Context, h Head, headp *uint64, base uint64, fork func(uint64) error) ([]collab.Record, error) {
	c := l.c
	head := *headp
	if h.SnapshotVersion <= head {
		return nil, fmt.Errorf("%w: %s: this node's records belong to no history it knows and cannot be compared with Redis's (they end at version %d, Redis keeps records from its snapshot at %d to its head %d)",
			collab.ErrUnavailable, l.key, head, h.SnapshotVersion, h.Version)
	}
	if head > base {
		// Counted before the fork: a crash between the fork and the
		// install must not leave them uncounted (a failed fork counts
		// them again on the next try).
		c.stats.lost.Add(head - base)
		c.log.Error("redisrelay: replacing this node's log of a document, of no known history, by Redis's snapshot; none of its records could be compared with Redis's, so any made on this node alone are lost",
			"doc", l.key.String(), "base", base, "head", head, "records", head-base, "snapshot", h.SnapshotVersion, "epoch", h.Epoch)
	}
	if err := fork(base); err != nil {
		return nil, err
	}
	c.stats.forks.Add(1)
	*headp = base // should the install fail, the next round starts from there
	l.forget(base)
	l.forked = true
	recs, err := l.install(ctx, h, base, errors.New("redisrelay: none of this node's records could be compared with Redis's"))
	if err != nil {
		return nil, err
	}
	l.follow(ctx, h.Epoch, h.Lineage)
	return recs, nil
}
