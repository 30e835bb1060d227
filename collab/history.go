package collab

import (
	"context"
	"fmt"
	"math"

	"github.com/coedit/coedit/ot"
)

// The Hub's reads of a document's history and of the store's listing go
// to the Store directly: the op log holds every committed op, so they do
// not involve (or wait for) the document's session. In a cluster the
// session first catches up with the commit point (Hub.catchUp), so the
// Store holds what the cluster had when the read began.

// SnapshotAt returns key's snapshot at version v (ShareDB "nf"); a v past
// the head gives ErrVersionAhead. It reads the Store, whose op log holds
// every committed op, and does not involve the document's session.
func (h *Hub) SnapshotAt(ctx context.Context, key Key, v uint64) (Snapshot, error) {
	if err := h.usable(); err != nil {
		return Snapshot{}, err
	}
	if err := checkKey(key); err != nil {
		return Snapshot{}, err
	}
	if err := h.catchUp(ctx, key); err != nil {
		return Snapshot{}, err
	}
	st := h.opts.Store
	base, err := st.SnapshotAt(ctx, key, v)
	if err != nil {
		return Snapshot{}, fmt.Errorf("collab: snapshot %s at %d: %w", key, v, err)
	}
	if base.Version > v {
		return Snapshot{}, fmt.Errorf("collab: snapshot %s at %d: store returned version %d", key, v, base.Version)
	}
	recs, err := st.Ops(ctx, key, base.Version, v)
	if err != nil {
		return Snapshot{}, fmt.Errorf("collab: snapshot %s at %d: %w", key, v, err)
	}
	if head := base.Version + uint64(len(recs)); head < v {
		return Snapshot{}, fmt.Errorf("%w: version %d, head %d", ErrVersionAhead, v, head)
	}
	return replay(base, recs)
}

// SnapshotAtTime returns key's snapshot after the last op committed at or
// before ts (Unix ms) (ShareDB "nt"). It binary-searches the op log by
// commit time, which assumes commit times do not go backwards.
func (h *Hub) SnapshotAtTime(ctx context.Context, key Key, ts int64) (Snapshot, error) {
	if err := h.usable(); err != nil {
		return Snapshot{}, err
	}
	if err := checkKey(key); err != nil {
		return Snapshot{}, err
	}
	if err := h.catchUp(ctx, key); err != nil {
		return Snapshot{}, err
	}
	st := h.opts.Store
	latest, err := st.SnapshotAt(ctx, key, math.MaxUint64)
	if err != nil {
		return Snapshot{}, fmt.Errorf("collab: snapshot %s at time %d: %w", key, ts, err)
	}
	tail, err := st.Ops(ctx, key, latest.Version, math.MaxUint64)
	if err != nil {
		return Snapshot{}, fmt.Errorf("collab: snapshot %s at time %d: %w", key, ts, err)
	}
	head := latest.Version + uint64(len(tail))
	timeAt := func(v uint64) (int64, error) {
		if v >= latest.Version {
			return tail[v-latest.Version].Time, nil
		}
		recs, err := st.Ops(ctx, key, v, v+1)
		if err != nil {
			return 0, err
		}
		if len(recs) != 1 {
			return 0, fmt.Errorf("%w: record %d", ErrOpsMissing, v)
		}
		return recs[0].Time, nil
	}
	// Find the first version whose record was committed after ts; the
	// snapshot just before it is the answer. A log that starts at a base
	// (BaseStore) is searched from there; an answer at or below the base
	// cannot be told (no record says when the base's ops were made).
	var first uint64
	if bs, ok := st.(BaseStore); ok {
		if first, err = bs.Base(ctx, key); err != nil {
			return Snapshot{}, fmt.Errorf("collab: snapshot %s at time %d: %w", key, ts, err)
		}
	}
	lo, hi := first, head
	for lo < hi {
		mid := lo + (hi-lo)/2
		t, err := timeAt(mid)
		if err != nil {
			return Snapshot{}, fmt.Errorf("collab: snapshot %s at time %d: %w", key, ts, err)
		}
		if t > ts {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	if lo == first && first > 0 {
		return Snapshot{}, fmt.Errorf("%w: %s at time %d: the ops before version %d are not on this node", ErrOpsMissing, key, ts, first)
	}
	if lo >= latest.Version {
		return replay(latest, tail[:lo-latest.Version])
	}
	return h.SnapshotAt(ctx, key, lo)
}

// Ops returns key's committed records with from <= Version < to.
func (h *Hub) Ops(ctx context.Context, key Key, from, to uint64) ([]Record, error) {
	if err := h.usable(); err != nil {
		return nil, err
	}
	if err := checkKey(key); err != nil {
		return nil, err
	}
	if from >= to {
		return nil, nil
	}
	if err := h.catchUp(ctx, key); err != nil {
		return nil, err
	}
	recs, err := h.opts.Store.Ops(ctx, key, from, to)
	if err != nil {
		return nil, fmt.Errorf("collab: ops %s [%d, %d): %w", key, from, to, err)
	}
	return recs, nil
}

// List lists documents (see Store.List): in a cluster whose Relay is a
// ClusterLister, those of every node (list.go).
func (h *Hub) List(ctx context.Context, collection string, limit int) ([]DocInfo, error) {
	if err := h.usable(); err != nil {
		return nil, err
	}
	return h.list(ctx, collection, limit)
}

// replay applies recs to base and returns the resulting snapshot.
func replay(base Snapshot, recs []Record) (Snapshot, error) {
	d := docState{typ: base.Type, rope: ot.NewRope(base.Data), head: base.Version}
	for _, r := range recs {
		if err := d.applyRecord(r); err != nil {
			return Snapshot{}, err
		}
	}
	return d.snapshot(), nil
}
