// Package storage is coedit's durable document store: collab.Store over
// one bbolt file per node.
//
// Start with Open, which returns a DB; Options documents the knobs (sync
// mode, lock timeout, milestone spacing, seq window, mmap size,
// batching), and its zero value is the production default. Close it when
// done.
//
// # Writes: group commit into an op log
//
// Commit, SaveSnapshot and Truncate calls, from any number of sessions,
// are group commits written by the callers themselves (group.go): a call
// that finds no write in flight leads, on its own goroutine; calls that
// arrive meanwhile queue, and the oldest of them leads the next batch,
// with everything queued by then (up to Options.MaxBatch). The leader
// checks each request against the document's head, and appends the ones
// that pass to the op log (wal.go) as one frame, with one write and,
// under SyncAlways, one fdatasync, before any of them returns. A call
// whose first record is not at the document's head fails with
// collab.ErrVersionConflict and logs nothing, while the rest of its batch
// commits. Checks that need no stored state (consecutive versions,
// well-formed records) and the encoding run before the call queues.
//
// The applier goroutine (apply.go) moves logged requests into the bbolt
// file in large batches, one write transaction per Options.ApplyEvery, so
// bbolt's page writes and syncs are shared by many group commits; a
// document with little logged waits for a page's worth, or a few seconds.
// It records in bbolt the frame up to which it applied everything, and
// in each document's metadata the last request it applied to it; Open
// replays the frames past the first, skipping what a document already
// has, and deletes log segments that bbolt holds.
//
// # Reads
//
// Load, Ops, SnapshotAt and List each run in short read transactions; Ops
// reads a long range in chunks of a thousand records. Load, Ops and
// SnapshotAt read the logged requests the applier has not applied yet
// over bbolt, so an acknowledged commit is visible at once; List, Check,
// the epoch note and reads of a document with a pending Truncate first
// have the applier catch up. Check verifies the whole file.
//
// # Layout
//
// The op log is a directory beside the file (its path plus "-wal") of
// segment files; wal.go describes the frames. Top-level buckets of the
// bbolt file (format version 3; Open migrates a version 1 file, see
// migrate.go, and notes a version 2 file as 3):
//
//	meta          "format" → 3, "log-applied" → LSN of the frame up to
//	              which every frame is applied (it never goes back),
//	              "log-reached" → the highest frame any apply took requests
//	              from (Open numbers new frames past it), "index-clean"
//	              (index.go)
//	docs          docKey → metadata: head version, latest snapshot version,
//	              seq floor, op log weight, type, created and modified
//	              times (of the latest create and latest record), deleted
//	              flag, LSN of the last logged request applied to it
//	doc           docKey → a bucket per document:
//	                ops/         big-endian uint64 version → record (src,
//	                             seq, kind, op components, type, data, time)
//	                seqs/        src → (seq, version) of its last record, for
//	                             the srcs whose last record is among the
//	                             newest Options.SeqWindow versions (seqs.go)
//	                snapshots/   big-endian uint64 version → a bucket per
//	                             snapshot: header, then the data in pieces of
//	                             32 KiB (snapshots.go). The newest is the
//	                             latest snapshot; the others are milestones.
//	recent        newest-first modified time + docKey → ""
//	bycollection  collection + newest-first modified time + id → ""
//
// The two indexes are updated lazily (index.go): a commit marks its
// document's entries stale and the applier rewrites the stale ones
// together at most once a second, before List and Check, and at Close.
// The meta bucket's "index-clean" key says Close completed them; without
// it Open rebuilds both indexes from docs, as after a crash.
//
// docKey is the collection, prefixed with its length as a uvarint, then
// the id. Values use a compact binary encoding of uvarints and
// length-prefixed strings (see encoding.go); ot.Op is stored as its
// components, not as JSON.
//
// # What is kept
//
// The op log is never trimmed: every committed record stays, so any past
// version can be rebuilt and a resend is always recognised. The one
// exception is a cluster node that installs a base (base.go): its log then
// starts at the base's snapshot, and older versions answer ErrBeforeBase. Snapshots are
// bounded: the latest, plus milestones that thin out with age and that
// are kept only where they save a replay worth their size
// (snapshots.go: O(log) of them per document). The seq table is bounded
// by Options.SeqWindow.
package storage
