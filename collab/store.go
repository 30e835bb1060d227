package collab

import (
	"context"
	"errors"
)

// ErrVersionConflict is returned by Store.Commit when the first record's
// version is not the document's stored head version. A single node never
// sees it unless two processes share a store; it is a bug or a lost race.
var ErrVersionConflict = errors.New("collab: version conflict in store")

// Store is durable storage for documents: an op log, snapshots with
// milestones, and the per-src last-seq table. storage.DB implements it over
// bbolt.
//
// All methods are safe for concurrent use by many goroutines. Calls for one
// document come from its one Session, so a Store need not order them.
type Store interface {
	// Load returns the document's latest snapshot, the ops after it, and
	// its seq table, which may leave out srcs whose last op is old (see
	// DocState.Seqs). A document the store has never seen loads as a
	// zero DocState (version 0, no type) with no error.
	Load(ctx context.Context, key Key) (DocState, error)

	// Commit durably appends recs, which have consecutive versions
	// starting at the document's stored head, updates the seq table from
	// their Src/Seq (and may drop old srcs from it), and, when snap is not
	// nil, stores snap as the document's latest snapshot (snap.Version is
	// at most the new head). It returns only once all of it is durable (with the store's sync
	// mode) or returns an error and stores none of it; except that an
	// error wrapping ErrUnavailable may leave it stored (a disk sync that
	// failed: what the disk holds is unknown until the store is opened
	// again), so the client is told to send again, and its src and seq
	// find the op if it was kept. Concurrent Commits
	// from different documents may share one disk sync (group commit).
	// A first record whose version is not the stored head gives
	// ErrVersionConflict.
	Commit(ctx context.Context, key Key, recs []Record, snap *Snapshot) error

	// Ops returns the committed records with from <= Version < to, in
	// order. A to past the head is clipped to the head. Records below the
	// store's retention are returned too: the op log is kept whole.
	Ops(ctx context.Context, key Key, from, to uint64) ([]Record, error)

	// SnapshotAt returns the newest stored snapshot or milestone whose
	// Version is at most v (a Store chooses which milestones it keeps);
	// the caller applies Ops from there. For a v older than every
	// milestone it returns the zero Snapshot (version 0), from which the
	// whole log replays.
	SnapshotAt(ctx context.Context, key Key, v uint64) (Snapshot, error)

	// SaveSnapshot stores snap as the document's latest snapshot if it is
	// newer than the stored one. Sessions call it when they go idle.
	SaveSnapshot(ctx context.Context, key Key, snap Snapshot) error

	// List returns the documents of a collection ("" for all), newest
	// modification first, at most limit (0 for all).
	List(ctx context.Context, collection string, limit int) ([]DocInfo, error)

	// Close flushes and closes the store.
	Close() error
}

// BaseStore is implemented by a Store whose op log of a document may
// start past version 0 (storage.DB, for a cluster node that installed the
// cluster's snapshot as a base: collab/redisrelay). Ops and SnapshotAt
// below the base fail with an error wrapping ErrOpsMissing; a session
// reads the base when it loads, to acknowledge a resend made before it
// from its seq table without the records it cannot read.
type BaseStore interface {
	// Base returns the version key's op log starts at (0 for a log from
	// the document's creation).
	Base(ctx context.Context, key Key) (uint64, error)
}
