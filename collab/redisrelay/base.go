package redisrelay

import (
	"context"
	"errors"
	"fmt"
	"math"

	"github.com/coedit/coedit/collab"
)

// This file is how Redis stays bounded per document and how a node far
// behind still catches up (doc.go, "Snapshots and the tail").
//
// Redis keeps, per document, a snapshot (the snap key, at meta's sv) and
// the stream from min(head-TailLen, sv) on: at least the newest TailLen
// records and every record since the snapshot, never more than
// MaxTailLen. A node that commits refreshes the snapshot when it is
// SnapshotEvery versions behind the head, from its own store's latest
// snapshot (which the session writes every collab.Options.SnapshotEvery
// versions); the same script trims the stream behind it. So the stream
// holds about TailLen records, and a node less than TailLen versions
// behind catches up by reading records, as before.
//
// A node further behind (it was down, or never had the document) finds
// its head below the oldest record Redis holds (Read: ErrTrimmed). It
// then loads Redis's state and installs the snapshot as the base of its
// store's log for the document (BaseStore.InstallBase: one transaction,
// the epoch note with it), and the session reloads and adopts the
// records after the snapshot (collab.Catchup.Rebased).

// BaseStore is an EpochStore that can start a document's op log at a
// snapshot, for a node that is behind the records Redis keeps.
// storage.DB implements it. A Cluster over a Store without it fails such
// a catch-up with collab.ErrOpsMissing.
type BaseStore interface {
	EpochStore
	// InstallBase replaces the store's state of key with snap as the
	// base of its log (head snap.Version, no records), seqs as its seq
	// table and note as its epoch note (SetEpoch's), atomically.
	// snap.Version is past the store's head.
	InstallBase(ctx context.Context, key collab.Key, snap collab.Snapshot, seqs map[string]collab.SeqEntry, note string) error
}

// install brings a node whose head is below the records Redis keeps of
// h.Epoch to Redis's snapshot, installed as the base of its log, and
// returns the records from the snapshot to the head. trimmed is the
// error of the Read that found the gap.
func (l *link) install(ctx context.Context, h Head, head uint64, trimmed error) ([]collab.Record, error) {
	c := l.c
	missing := func(why string) error {
		return fmt.Errorf("%w: %s: this node is at version %d and Redis keeps records from a later one (%w); %s",
			collab.ErrOpsMissing, l.key, head, trimmed, why)
	}
	bs, ok := c.opts.Store.(BaseStore)
	if !ok {
		return nil, missing("the store cannot install Redis's snapshot as a base")
	}
	var st State
	err := c.retry(ctx, func(ctx context.Context) (err error) {
		st, ok, err = c.r.Load(ctx, l.key)
		return err
	})
	switch {
	case errors.Is(err, ErrTrimmed):
		return nil, missing(fmt.Sprintf("Redis lacks records after its snapshot too (%v): raise MaxTailLen", err))
	case err != nil:
		return nil, err
	case !ok:
		return nil, &EpochError{Reason: EpochAbsent}
	case st.Head.Epoch != h.Epoch:
		return nil, &EpochError{Reason: EpochChanged, Epoch: st.Head.Epoch}
	}
	// A restarted epoch installs as it is: Redis's snapshot is at or
	// below its head, and a renewal only adds records from that head on,
	// so what is installed is a prefix of the renewed history too.
	snap := st.Doc.Snapshot
	if snap.Version <= head {
		// Load found every record from the snapshot on, so the Read that
		// failed raced a trim: read again.
		return nil, &EpochError{Reason: EpochChanged, Epoch: st.Head.Epoch}
	}
	// The records after the snapshot carry their own seq entries; the
	// store keeps those below it.
	seqs := make(map[string]collab.SeqEntry, len(st.Doc.Seqs))
	for src, e := range st.Doc.Seqs {
		if e.Version < snap.Version {
			seqs[src] = e
		}
	}
	// The note carries the lineage, as follow's does (a seed from this
	// store carries it on).
	if err := bs.InstallBase(ctx, l.key, snap, seqs, encodeNote(h.Epoch, h.Lineage)); err != nil {
		return nil, fmt.Errorf("redisrelay: install Redis's snapshot of %s at version %d: %w", l.key, snap.Version, err)
	}
	l.noted = h.Epoch
	l.lineage = h.Lineage
	l.rebased = true
	c.stats.installs.Add(1)
	c.log.Info("redisrelay: installed Redis's snapshot as the base of a document's log",
		"doc", l.key.String(), "from", head, "base", snap.Version, "head", st.Head.Version)
	l.setSnapVersion(snap.Version)
	return st.Doc.Ops, nil
}

// saveTimeoutFactor times ClusterOptions.CallTimeout bounds one
// background snapshot save (reading the store and the round trip).
const saveTimeoutFactor = 10

// setSnapVersion notes that Redis's snapshot is at v or later.
func (l *link) setSnapVersion(v uint64) {
	l.mu.Lock()
	l.snapV = max(l.snapV, v)
	l.mu.Unlock()
}

// committed is called after the session's records up to head were
// committed: when Redis's snapshot is SnapshotEvery versions behind, it
// saves the store's latest snapshot to Redis (which trims the stream
// behind it), in the background, one save per document at a time.
func (l *link) committed(head uint64) {
	c := l.c
	l.mu.Lock()
	due := head >= l.snapV+uint64(c.opts.SnapshotEvery) && !l.saving
	if due {
		l.saving = true
	}
	epoch := l.epoch
	l.mu.Unlock()
	if !due {
		return
	}
	go func() {
		defer func() {
			l.mu.Lock()
			l.saving = false
			l.mu.Unlock()
		}()
		// Commits that arrive during a save do not start another, so
		// the saver looks again when it is done: the last commits of a
		// burst must not leave Redis's snapshot (and its trim) behind.
		for {
			// A background save of a big document may take longer than
			// one commit's round trip; nobody waits for it.
			ctx, cancel := context.WithTimeout(context.Background(), saveTimeoutFactor*c.opts.CallTimeout)
			progressed, err := l.saveSnapshot(ctx, epoch)
			cancel()
			if err != nil {
				c.log.Warn("redisrelay: cannot save a snapshot to Redis", "doc", l.key.String(), "err", err)
				return
			}
			l.mu.Lock()
			again := progressed && l.epoch == epoch && l.known >= l.snapV+uint64(c.opts.SnapshotEvery)
			l.mu.Unlock()
			if !again {
				return
			}
		}
	}()
}

// saveSnapshot saves the store's latest snapshot to Redis under epoch.
// The epoch is read before the snapshot: a store whose records were
// replaced since (a fork) then has a snapshot of the new history, which
// Redis refuses under the old epoch, never one of the old history under
// the new epoch.
// It reports whether Redis's snapshot moved on (saved, or found newer).
func (l *link) saveSnapshot(ctx context.Context, epoch string) (bool, error) {
	c := l.c
	if epoch == "" {
		return false, nil
	}
	snap, err := c.opts.Store.SnapshotAt(ctx, l.key, math.MaxUint64)
	if err != nil {
		return false, err
	}
	l.mu.Lock()
	known := l.snapV
	l.mu.Unlock()
	if snap.Version <= known {
		return false, nil // the store has nothing newer yet
	}
	saved, err := c.r.SaveSnapshot(ctx, l.key, epoch, snap)
	if errors.Is(err, ErrEpoch) {
		return false, nil // the session will sync; the next commit tries again
	}
	if err != nil {
		return false, err
	}
	if saved {
		c.stats.snapshots.Add(1)
	}
	l.setSnapVersion(snap.Version)
	return true, nil
}
