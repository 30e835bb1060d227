package redisrelay

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"strconv"
	"strings"

	"github.com/coedit/coedit/collab"
)

// Seed is a node's state for a document, offered to Init when Redis has
// none.
type Seed struct {
	// Prev is the epoch the node's history belongs to ("" for a node
	// that never had the document). The new epoch's lineage records that
	// it equals Prev's history below the seeded head, which tells other
	// nodes of Prev how much of their history survives (Head.Shared).
	Prev string
	// Lineage is Prev's own lineage as the node last saw it, newest
	// first. The new epoch's lineage carries it on after Prev (at most
	// maxLineage entries in all), so that a node of an older epoch, down
	// while Redis was lost twice, still finds how much of its history
	// survives.
	Lineage []Fork
	// Doc is the node's snapshot, the records after it (Ops[i].Version
	// == Snapshot.Version+i; the head is Snapshot.Version+len(Ops)) and
	// its seqs. The zero DocState seeds an empty document at version 0.
	Doc collab.DocState
}

// Init seeds a document Redis has no state for, under a new random
// epoch, atomically and only if Redis still has no state for it: when
// nodes race, one wins (won is true, epoch is the new epoch) and the
// others get won false and the winner's epoch, and should then call
// Head and catch up (doc.go, "Redis loss"). A doorbell with no records
// announces the new epoch.
func (r *Relay) Init(ctx context.Context, key collab.Key, seed Seed) (epoch string, won bool, err error) {
	epoch, _, won, err = r.init(ctx, key, seed)
	return epoch, won, err
}

// init is Init, also returning the lineage it wrote when it won.
func (r *Relay) init(ctx context.Context, key collab.Key, seed Seed) (epoch string, lineage []Fork, won bool, err error) {
	snap := seed.Doc.Snapshot
	head := snap.Version + uint64(len(seed.Doc.Ops))
	if head >= maxNumber {
		return "", nil, false, fmt.Errorf("%w: head %d is too large", ErrInvalid, head)
	}
	var snapJSON []byte
	if snap.Version > 0 || snap.Type != "" {
		if snapJSON, err = encodeSnapshot(&snap); err != nil {
			return "", nil, false, err
		}
	}
	lineage = seedLineage(seed.Prev, head, seed.Lineage)
	epoch = randomID()
	srcs := make([]string, 0, len(seed.Doc.Seqs))
	for src := range seed.Doc.Seqs {
		if src != "" {
			srcs = append(srcs, src)
		}
	}
	sort.Strings(srcs)
	args := make([]any, 0, 10+2*len(srcs)+3*len(seed.Doc.Ops))
	args = append(args, epoch, encodeLineage(lineage), head, snap.Version, snapJSON, r.opts.TailLen, r.opts.MaxTailLen, r.pubCmd, len(srcs))
	for _, src := range srcs {
		e := seed.Doc.Seqs[src]
		if e.Seq >= maxNumber || e.Version >= head {
			return "", nil, false, fmt.Errorf("%w: seq entry %q %+v with head %d", ErrInvalid, src, e, head)
		}
		args = append(args, src, seqValue(e))
	}
	args = append(args, snap.Version)
	if args, err = appendRecords(args, snap.Version, seed.Doc.Ops); err != nil {
		return "", nil, false, err
	}
	k := r.keys(key)
	v, err := r.run(ctx, "init", initScript, []string{k.meta, k.log, k.seqs, k.snap, k.channel}, args...)
	if err != nil {
		return "", nil, false, err
	}
	switch reply(v, 0) {
	case "init":
		// A document new to the cluster is seeded at its first touch,
		// which on a busy cluster is every new document: worth a line only
		// when it had a history (a reseed after Redis lost it).
		level := slog.LevelDebug
		if head > 0 || seed.Prev != "" {
			level = slog.LevelInfo
		}
		r.log.Log(ctx, level, "redisrelay: seeded a document", "doc", key.String(), "epoch", epoch, "head", head, "prev", seed.Prev)
		return epoch, lineage, true, nil
	case "exists":
		return reply(v, 1), nil, false, nil
	}
	return "", nil, false, fmt.Errorf("%w: unexpected init reply %v", ErrCorrupt, v)
}

// Renew starts a new epoch for a document whose epoch is the caller's
// but whose state Redis may have lost part of: Redis restarted since the
// epoch began (EpochRestarted) or holds fewer records than the caller
// (EpochBehind). extras are the caller's records from some version at or
// below Redis's head onwards; those Redis lacks are put back at their
// versions (they belong to this same history), and a doorbell under the
// new epoch carries them. It returns the new epoch and head.
//
// If there is nothing to renew (Redis did not restart and extras add
// nothing) it returns the current epoch and head. If the epoch is no
// longer the caller's, it returns *EpochError: another node renewed or
// seeded first; the caller then uses Head.Shared.
func (r *Relay) Renew(ctx context.Context, key collab.Key, epoch string, extras []collab.Record) (newEpoch string, head uint64, err error) {
	rn, err := r.renew(ctx, key, epoch, extras)
	return rn.epoch, rn.head, err
}

// renewal is what renew replies: the epoch that is now the document's,
// its head, and its lineage as Redis holds it.
type renewal struct {
	epoch   string
	head    uint64
	lineage []Fork
}

// renew is Renew, also returning the epoch's lineage.
func (r *Relay) renew(ctx context.Context, key collab.Key, epoch string, extras []collab.Record) (renewal, error) {
	if epoch == "" {
		return renewal{}, fmt.Errorf("%w: renew without an epoch", ErrInvalid)
	}
	first := uint64(0)
	if len(extras) > 0 {
		first = extras[0].Version
	}
	newEpoch := randomID()
	args := make([]any, 0, 6+3*len(extras))
	args = append(args, epoch, newEpoch, r.opts.TailLen, r.opts.MaxTailLen, r.pubCmd, first)
	args, err := appendRecords(args, first, extras)
	if err != nil {
		return renewal{}, err
	}
	k := r.keys(key)
	v, err := r.run(ctx, "renew", renewScript, []string{k.meta, k.log, k.seqs, k.channel}, args...)
	if err != nil {
		return renewal{}, err
	}
	switch reply(v, 0) {
	case "renewed", "current":
		rn := renewal{epoch: reply(v, 1), head: replyUint(v, 2)}
		if rn.lineage, err = decodeLineage(reply(v, 3)); err != nil {
			return renewal{}, err
		}
		if rn.epoch == newEpoch {
			r.log.Info("redisrelay: renewed a document's epoch", "doc", key.String(), "from", epoch, "epoch", newEpoch, "head", rn.head)
		}
		return rn, nil
	case "gap":
		return renewal{}, fmt.Errorf("%w: records from version %d, Redis's head of %s is %d", ErrInvalid, first, key, replyUint(v, 1))
	}
	return renewal{}, epochError(v)
}

// SaveSnapshot keeps snap in Redis if it is newer than the snapshot
// there, and trims the stream below it (keeping at least TailLen
// records) and the seq table (keeping the srcs whose last record is at
// most TailLen versions older than the oldest record kept). saved is false when Redis has a snapshot at or above
// snap.Version. The epoch must be the document's and Redis must not
// have restarted since it began (*EpochError otherwise).
func (r *Relay) SaveSnapshot(ctx context.Context, key collab.Key, epoch string, snap collab.Snapshot) (saved bool, err error) {
	b, err := encodeSnapshot(&snap)
	if err != nil {
		return false, err
	}
	k := r.keys(key)
	v, err := r.run(ctx, "snapshot", snapshotScript, []string{k.meta, k.log, k.snap, k.seqs}, epoch, snap.Version, b, r.opts.TailLen, r.opts.MaxTailLen)
	if err != nil {
		return false, err
	}
	switch reply(v, 0) {
	case "saved":
		return true, nil
	case "old":
		return false, nil
	case "ahead":
		return false, &EpochError{Reason: EpochBehind, Head: replyUint(v, 1)}
	}
	return false, epochError(v)
}

// maxLineage is how many epochs a lineage names at most (the renew
// script keeps as many: change both). Every restart of Redis renews
// the epoch of each document edited after it, even one that lost
// nothing, so a node down across more restarts than this, while the
// document moved on past the records Redis keeps, finds no known history
// and replaces its log (nohistory.go), marking the authors of its records
// as holding a replaced history. 8 let a cluster's routine restarts do
// that to a node kept down a while (the chaos test); 64 names cost a
// document's meta hash about 2.7 KB.
const maxLineage = 64

// seedLineage is the lineage of an epoch seeded at head from prev's
// history: prev below head, then what prev continued, each bounded by
// head (the new history holds nothing of theirs at or past it).
func seedLineage(prev string, head uint64, prevLineage []Fork) []Fork {
	if prev == "" {
		return nil
	}
	l := []Fork{{Epoch: prev, Base: head}}
	for _, f := range prevLineage {
		if len(l) == maxLineage {
			break
		}
		l = append(l, Fork{Epoch: f.Epoch, Base: min(f.Base, head)})
	}
	return l
}

// decodeLineage reads encodeLineage's form ("" is none).
func decodeLineage(l string) ([]Fork, error) {
	if l == "" {
		return nil, nil
	}
	var lineage []Fork
	for f := range strings.SplitSeq(l, ",") {
		e, b, _ := strings.Cut(f, ":")
		base, err := strconv.ParseUint(b, 10, 64)
		if err != nil || e == "" {
			return nil, fmt.Errorf("%w: lineage %q", ErrCorrupt, l)
		}
		lineage = append(lineage, Fork{Epoch: e, Base: base})
	}
	return lineage, nil
}

// encodeLineage writes a lineage as the meta hash's l field holds it:
// "epoch:base,..." newest first.
func encodeLineage(l []Fork) string {
	var b strings.Builder
	for i, f := range l {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%s:%d", f.Epoch, f.Base)
	}
	return b.String()
}
