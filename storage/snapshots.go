package storage

import (
	"encoding/binary"
	"fmt"
	"math/bits"

	bolt "go.etcd.io/bbolt"

	"github.com/coedit/coedit/collab"
)

// A document's snapshots live in its snapshots bucket, one sub-bucket per
// snapshot keyed by its version: the newest is the latest snapshot, which
// Load starts from; the older ones are milestones, which SnapshotAt starts
// from for history queries.
//
// A snapshot's sub-bucket holds its header under snapHeaderKey and its
// data in pieces of at most snapChunk bytes under keys 1, 2, ... Two bbolt
// habits make this matter for big documents. bbolt rewrites a page whole
// when any key on it changes: a snapshot kept as one value beside the
// document's bucket headers (format 1) was rewritten by every commit,
// since each commit changes the op bucket's header (a 3.6 MB document
// wrote 3.6 MB per one-character insert). And a value needs one run of
// contiguous pages: a snapshot a few bytes bigger than the one it replaces
// does not fit the run that one freed, so the file grew by the document's
// size again and again. In a bucket of its own a snapshot is written once
// and left alone, and its pieces fit the runs older pieces freed.
const snapChunk = 32 << 10

var snapHeaderKey = []byte{0, 0, 0, 0}

// chunkKey is the key of a snapshot's i-th piece of data, from 0.
func chunkKey(i int) []byte { return binary.BigEndian.AppendUint32(nil, uint32(i+1)) }

// Milestone rule. When a new snapshot replaces the latest one, the old
// latest stays as a milestone only if it is at least
// Options.MilestoneEvery versions past the newest milestone before it and
// the ops between the two weigh at least 1/milestoneOpsShare of its size
// (docMeta.opBytes: encoded records, less any create's text, which is a
// base to replay from). A milestone is worth its space only when the
// replay it saves costs about as much as reading it: a 3.6 MB document
// edited a letter at a time gets one per ~16,000 versions, not one per
// 1,000. Then the milestones thin out with age (see thinMilestones): of
// those less than milestoneRecent × MilestoneEvery versions behind the
// head, one per MilestoneEvery versions is kept; past that, the spacing
// doubles each time the age doubles.
//
// So a document keeps O(log(head / MilestoneEvery)) milestones: at most
// milestoneRecent+1 young ones and milestoneRecent/2+2 more for each
// doubling of its history. A history query at a version of age a replays
// at most about the larger of 2 × MilestoneEvery versions, ops weighing
// 1/milestoneOpsShare of the document, and 4a/milestoneRecent versions.
const (
	milestoneOpsShare = 4
	milestoneRecent   = 4
)

// putSnapshot stores s, with data being s.Data, as a new entry of snaps.
func putSnapshot(snaps *bolt.Bucket, s *collab.Snapshot, data []byte, opBytes uint64) error {
	b, err := snaps.CreateBucket(versionKey(s.Version))
	if err != nil {
		return fmt.Errorf("snapshot %d: %w", s.Version, err)
	}
	// The pieces are appended in key order: full pages waste no space.
	b.FillPercent = 1
	h := snapHeader{version: s.Version, typ: s.Type, size: uint64(len(data)), opBytes: opBytes}
	if err := b.Put(snapHeaderKey, encodeSnapHeader(&h)); err != nil {
		return err
	}
	for i := 0; len(data) > 0; i++ {
		n := min(len(data), snapChunk)
		if err := b.Put(chunkKey(i), data[:n]); err != nil {
			return err
		}
		data = data[n:]
	}
	return nil
}

// readHeader returns the header of snaps' entry at version.
func readHeader(snaps *bolt.Bucket, version uint64) (snapHeader, *bolt.Bucket, error) {
	b := snaps.Bucket(versionKey(version))
	if b == nil {
		return snapHeader{}, nil, fmt.Errorf("%w: snapshot at version %d is missing", ErrCorrupt, version)
	}
	h, err := decodeSnapHeader(b.Get(snapHeaderKey))
	if err != nil {
		return snapHeader{}, nil, fmt.Errorf("%w: snapshot %d header: %w", ErrCorrupt, version, err)
	}
	if h.version != version {
		return snapHeader{}, nil, fmt.Errorf("%w: snapshot has version %d, want %d", ErrCorrupt, h.version, version)
	}
	return h, b, nil
}

// readSnapshot returns snaps' entry at version, data and all.
func readSnapshot(snaps *bolt.Bucket, version uint64) (collab.Snapshot, error) {
	h, b, err := readHeader(snaps, version)
	if err != nil {
		return collab.Snapshot{}, err
	}
	// A damaged header must not make us allocate what is not there:
	// append grows past this cap if the pieces really hold more.
	data := make([]byte, 0, min(h.size, 64<<20))
	c := b.Cursor()
	first, _ := c.First() // the header: it sorts before every piece
	i := 0
	for k, v := c.Next(); k != nil; k, v = c.Next() {
		if string(k) != string(chunkKey(i)) || len(v) == 0 || len(v) > snapChunk {
			return collab.Snapshot{}, fmt.Errorf("%w: snapshot %d: piece %x of %d bytes where piece %d belongs", ErrCorrupt, version, k, len(v), i)
		}
		data = append(data, v...)
		i++
	}
	if string(first) != string(snapHeaderKey) || uint64(len(data)) != h.size {
		return collab.Snapshot{}, fmt.Errorf("%w: snapshot %d has %d bytes of data, its header says %d", ErrCorrupt, version, len(data), h.size)
	}
	return collab.Snapshot{Version: version, Type: h.typ, Data: string(data)}, nil
}

// retire decides, once a newer snapshot has replaced the one at version
// old as the latest, whether old stays as a milestone (see the milestone
// rule), and then thins the milestones for a document at head. The
// snapshot at a document's base (base.go) always stays: the log starts
// there, so nothing else rebuilds the versions up to the next milestone.
// (thinMilestones keeps it too: it is the oldest.)
func (db *DB) retire(doc, snaps *bolt.Bucket, old, head uint64) error {
	h, _, err := readHeader(snaps, old)
	if err != nil {
		return err
	}
	base, err := readBase(doc)
	if err != nil {
		return err
	}
	if old == base {
		return thinMilestones(snaps, head, db.opts.MilestoneEvery)
	}
	var prev snapHeader // the newest milestone before old, or version 0
	c := snaps.Cursor()
	if k, _ := c.Seek(versionKey(old)); k != nil {
		if k, _ = c.Prev(); k != nil {
			v, err := decodeVersionKey(k)
			if err != nil {
				return fmt.Errorf("%w: snapshot key: %w", ErrCorrupt, err)
			}
			if prev, _, err = readHeader(snaps, v); err != nil {
				return err
			}
		}
	}
	ops := uint64(0)
	if h.opBytes > prev.opBytes {
		ops = h.opBytes - prev.opBytes
	}
	if old-prev.version < db.opts.MilestoneEvery || ops < h.size/milestoneOpsShare {
		if err := snaps.DeleteBucket(versionKey(old)); err != nil {
			return err
		}
	}
	return thinMilestones(snaps, head, db.opts.MilestoneEvery)
}

// thinMilestones deletes the milestones that the age rule no longer keeps
// for a document at head, with every being Options.MilestoneEvery. A milestone at version m, head-m versions old,
// belongs to a window of versions [k×w, (k+1)×w) whose width w is
// MilestoneEvery while it is younger than milestoneRecent ×
// MilestoneEvery, and doubles each time its age doubles past that; only
// the oldest milestone in each window stays. As a milestone ages its
// window only widens to one that contains the old one, so what is kept
// never needs a milestone that was deleted, and each window of each width
// keeps one: about milestoneRecent/2+1 milestones per doubling of age.
// The latest snapshot (the newest entry) is never a milestone.
func thinMilestones(snaps *bolt.Bucket, head, every uint64) error {
	var drop [][]byte
	var kept uint64
	haveKept := false
	c := snaps.Cursor()
	last, _ := c.Last()
	for k, _ := c.First(); k != nil && string(k) != string(last); k, _ = c.Next() {
		m, err := decodeVersionKey(k)
		if err != nil {
			return fmt.Errorf("%w: snapshot key: %w", ErrCorrupt, err)
		}
		w := every
		if age := head - m; age >= milestoneRecent*every {
			w = every << bits.Len64(age/(milestoneRecent*every))
		}
		if haveKept && kept/w == m/w {
			drop = append(drop, k)
			continue
		}
		kept, haveKept = m, true
	}
	for _, k := range drop {
		if err := snaps.DeleteBucket(k); err != nil {
			return err
		}
	}
	return nil
}
