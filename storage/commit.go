package storage

import (
	"context"
	"fmt"
	"math"
	"slices"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/coedit/coedit/collab"
)

// A commitReq is one Commit, SaveSnapshot or Truncate call in a group
// commit (group.go). Everything that can be checked and encoded without reading
// the store is done by the caller, outside the write transaction.
type commitReq struct {
	key  collab.Key
	dk   []byte
	recs []collab.Record
	vals [][]byte // recs encoded
	snap *collab.Snapshot
	data []byte // snap.Data
	// newSnap is whether snap is newer than the document's latest, as
	// the writer's check found: only then is it kept.
	newSnap bool
	// truncate, when set, asks to drop the document's records from this
	// version on (Truncate, truncate.go); such a request has no records
	// or snapshot.
	truncate *uint64
	// install, when set, replaces the document with a base (InstallBase,
	// base.go); such a request has no records or snapshot and is never
	// queued: InstallBase runs it as a direct bbolt write.
	install *baseReq
	// state is reqQueued, then reqTaken or reqCancelled.
	state atomic.Uint32
	// err is the request's result, set by the leader that wrote it.
	err error
	// lead, set before done is signalled, makes the waiter the next
	// leader instead of giving it its result (group.go).
	lead bool
	// done is signalled once, with err or lead set, for a request that
	// waited in the queue; a leader's own request has none, and neither
	// has an async one.
	done chan struct{}
	// async, for a CommitAsync, is called with err, on the goroutine of
	// whoever wrote the request, in place of done (group.go).
	async func(error)
}

// Request states: a leader takes a queued request, or the caller
// cancels it first; whoever wins the compare-and-swap decides.
const (
	reqQueued uint32 = iota
	reqTaken
	reqCancelled
)

// Commit durably appends recs to key's op log, updates its seq table
// (pruning the entries that fall out of Options.SeqWindow) and metadata
// and, when snap is not nil and newer than the stored snapshot, stores
// snap as the latest snapshot (the one it replaces stays as a milestone
// if the milestone rule in snapshots.go keeps it). See
// collab.Store.Commit for the contract.
//
// recs must have consecutive versions starting at the stored head (else
// collab.ErrVersionConflict) and be well formed (else ErrInvalidRecord);
// snap.Version must be at most the new head (else ErrInvalidSnapshot). A
// failed Commit stores nothing, and does not affect other Commits that
// share its batch; except that after ErrLogFailed (a failed sync) the
// records of its batch may turn out durable at the next Open.
//
// Commit returns when the batch it joined is written and, with
// SyncAlways, synced; it may write that batch itself, on the caller's
// goroutine (group.go). If ctx ends while the call is still queued,
// Commit returns ctx's error and stores nothing; once a leader has taken
// the call into a batch, Commit waits for the outcome, since the write
// may already be durable.
func (db *DB) Commit(ctx context.Context, key collab.Key, recs []collab.Record, snap *collab.Snapshot) error {
	r, err := db.commitReq(key, recs, snap)
	if r == nil {
		return err
	}
	return db.enqueue(ctx, r)
}

// CommitAsync implements collab.AsyncCommitter: Commit, with the caller
// waiting only for the request's place in the queue (group.go).
func (db *DB) CommitAsync(key collab.Key, recs []collab.Record, snap *collab.Snapshot, done func(error)) {
	r, err := db.commitReq(key, recs, snap)
	if r == nil {
		done(err)
		return
	}
	db.enqueueAsync(r, done)
}

// commitReq checks a Commit's arguments and makes its request; nil with
// the result when there is nothing to write.
func (db *DB) commitReq(key collab.Key, recs []collab.Record, snap *collab.Snapshot) (*commitReq, error) {
	if err := checkKey(key); err != nil {
		return nil, fmt.Errorf("storage: commit: %w", err)
	}
	if err := validateRecords(recs); err != nil {
		return nil, fmt.Errorf("storage: commit %s: %w", key, err)
	}
	// The records stay with the applier after Commit returns, and a
	// caller may reuse its slice: keep a copy (apply reads the fields,
	// never the op, which vals hold encoded).
	r := &commitReq{key: key, dk: docKey(key), recs: slices.Clone(recs)}
	if len(recs) > 0 {
		r.vals = make([][]byte, len(recs))
		for i := range recs {
			r.vals[i] = encodeRecord(&recs[i])
		}
	}
	if snap != nil {
		if len(recs) > 0 {
			if head := recs[0].Version + uint64(len(recs)); snap.Version > head {
				return nil, fmt.Errorf("storage: commit %s: %w: snapshot version %d is past the new head %d",
					key, ErrInvalidSnapshot, snap.Version, head)
			}
		}
		s := *snap
		r.snap = &s
		r.data = []byte(s.Data)
	}
	if len(recs) == 0 && snap == nil {
		if db.isClosed.Load() {
			return nil, fmt.Errorf("storage: commit %s: %w", key, ErrClosed)
		}
		return nil, nil
	}
	return r, nil
}

// SaveSnapshot stores snap as key's latest snapshot if it is newer than
// the stored one (else it does nothing), and keeps or drops the one it
// replaces as a milestone as Commit does. snap.Version past the document's head gives
// ErrInvalidSnapshot. It shares group commits, and their disk syncs,
// with Commit.
func (db *DB) SaveSnapshot(ctx context.Context, key collab.Key, snap collab.Snapshot) error {
	if err := checkKey(key); err != nil {
		return fmt.Errorf("storage: save snapshot: %w", err)
	}
	return db.enqueue(ctx, &commitReq{key: key, dk: docKey(key), snap: &snap, data: []byte(snap.Data)})
}

// validateRecords checks what Commit can check without the store.
func validateRecords(recs []collab.Record) error {
	if len(recs) == 0 {
		return nil
	}
	if uint64(len(recs)) > math.MaxUint64-recs[0].Version {
		return fmt.Errorf("%w: version %d overflows", ErrInvalidRecord, recs[0].Version)
	}
	for i := range recs {
		r := &recs[i]
		if want := recs[0].Version + uint64(i); r.Version != want {
			return fmt.Errorf("%w: record %d has version %d, want %d (versions must be consecutive)",
				ErrInvalidRecord, i, r.Version, want)
		}
		if len(r.Src) > maxKeyLen {
			return fmt.Errorf("%w: version %d: src of %d bytes, at most %d", ErrInvalidRecord, r.Version, len(r.Src), maxKeyLen)
		}
		switch r.Kind {
		case collab.OpEdit:
			if err := r.Op.Validate(); err != nil {
				return fmt.Errorf("%w: version %d: %w", ErrInvalidRecord, r.Version, err)
			}
		case collab.OpCreate:
			if r.Type == "" {
				return fmt.Errorf("%w: version %d: create without a type", ErrInvalidRecord, r.Version)
			}
		case collab.OpDelete:
		default:
			return fmt.Errorf("%w: version %d: unknown kind %d", ErrInvalidRecord, r.Version, r.Kind)
		}
	}
	return nil
}

// write logs batch as one frame, with one write and (SyncAlways) one
// fdatasync, and sets each request's result (err); the leader then
// delivers them (group.go). A request that fails its checks gets its
// error and is not logged; a request that changes nothing is not logged
// either. The checks are those apply makes, against the document as the
// log leaves it (pendingDoc), or as bbolt holds it when nothing of it is
// pending.
func (db *DB) write(batch []*commitReq) {
	db.writeMu.Lock()
	defer db.writeMu.Unlock()
	if db.testWrite != nil {
		db.testWrite(batch)
	}
	db.batches.Add(1)
	clear(db.states)
	accepted := db.accepted[:0]
	var rtx *bolt.Tx
	for _, r := range batch {
		r.err = nil
		st, err := db.state(r.dk, &rtx)
		if err != nil {
			r.err = fmt.Errorf("storage: commit %s: %w", r.key, err)
			continue
		}
		if r.truncate != nil && st.exists && *r.truncate < st.head {
			// The log starts at the base (base.go); nothing below it can
			// be dropped. An install is never pending (it runs direct),
			// so bbolt's base is the document's.
			if err := db.checkTruncateBase(r, &rtx); err != nil {
				r.err = err
				continue
			}
		}
		log, err := check(r, st)
		r.err = err
		if log {
			accepted = append(accepted, r)
		}
	}
	if rtx != nil {
		rtx.Rollback()
	}
	if len(accepted) > 0 {
		if err := db.log(accepted); err != nil {
			for _, r := range batch {
				if r.err == nil {
					r.err = fmt.Errorf("storage: commit %s: %w", r.key, err)
				}
			}
		}
	}
	db.commits.Add(uint64(len(batch)))
	clear(accepted)
	db.accepted = accepted[:0]
}

// state returns the writer's view of document dk for this batch.
func (db *DB) state(dk []byte, rtx **bolt.Tx) (*docState, error) {
	if st, ok := db.states[string(dk)]; ok {
		return st, nil
	}
	var st *docState
	db.pmu.Lock()
	if pd := db.pending[string(dk)]; pd != nil {
		st = &docState{head: pd.head, snap: pd.snap, exists: pd.exists, snapKnown: pd.snapKnown}
	}
	gen := db.applyGen
	db.pmu.Unlock()
	if st == nil {
		// Nothing of dk is pending, and only the writer logs: bbolt
		// holds it as it stands. The batch's read transaction may be
		// older than that: when the applier has applied more since it
		// began, dk's records may have left pending after it began, and
		// it would show dk as it was before them. It is begun again.
		// (applyGen moves on after each apply transaction commits, so
		// one begun after reading it sees every apply up to it.)
		if *rtx != nil && gen != db.rtxGen {
			(*rtx).Rollback()
			*rtx = nil
		}
		if *rtx == nil {
			db.rtxGen = gen
			tx, err := db.bolt.Begin(false)
			if err != nil {
				return nil, err
			}
			*rtx = tx
		}
		m, ok, err := readMeta(*rtx, dk)
		if err != nil {
			return nil, err
		}
		st = &docState{head: m.head, snap: m.snap, exists: ok, snapKnown: true}
	}
	db.states[string(dk)] = st
	return st, nil
}

// checkTruncateBase refuses a Truncate below the document's base with
// ErrBeforeBase, as truncate would when the applier ran it.
func (db *DB) checkTruncateBase(r *commitReq, rtx **bolt.Tx) error {
	if *rtx == nil {
		tx, err := db.bolt.Begin(false)
		if err != nil {
			return fmt.Errorf("storage: truncate %s: %w", r.key, err)
		}
		*rtx = tx
	}
	base, err := docBase(*rtx, r.dk)
	if err != nil {
		return fmt.Errorf("storage: truncate %s: %w", r.key, err)
	}
	if *r.truncate < base {
		return fmt.Errorf("%w: truncate from %d, base %d", ErrBeforeBase, *r.truncate, base)
	}
	return nil
}

// checkCommit checks r (records and snapshot, not a truncate) against a
// document whose head and latest snapshot are head and snap: the records
// must start at head and the snapshot must not pass the new head. It
// returns the new head and whether r's snapshot is newer than snap.
// The writer (check, against the log's view) and the applier (apply,
// against bbolt) make the same checks through it.
func checkCommit(r *commitReq, head, snap uint64) (uint64, bool, error) {
	if len(r.recs) > 0 && r.recs[0].Version != head {
		return 0, false, fmt.Errorf("storage: commit %s at version %d: stored head is %d: %w",
			r.key, r.recs[0].Version, head, collab.ErrVersionConflict)
	}
	head += uint64(len(r.recs))
	if r.snap != nil && r.snap.Version > head {
		return 0, false, fmt.Errorf("storage: snapshot %s: %w: version %d is past the head %d",
			r.key, ErrInvalidSnapshot, r.snap.Version, head)
	}
	return head, r.snap != nil && r.snap.Version > snap, nil
}

// check makes apply's checks of r against st, and updates st as logging
// r would. It reports whether r must be logged.
func check(r *commitReq, st *docState) (bool, error) {
	if r.truncate != nil {
		if !st.exists || *r.truncate >= st.head {
			return false, nil
		}
		st.head = *r.truncate
		st.snap, st.snapKnown = 0, false
		return true, nil
	}
	head, saveSnap, err := checkCommit(r, st.head, st.snap)
	r.newSnap = saveSnap
	if err != nil || (len(r.recs) == 0 && !saveSnap) {
		return false, err
	}
	st.head = head
	if len(r.recs) > 0 {
		st.exists = true
	}
	if saveSnap && st.snapKnown {
		st.snap = r.snap.Version
	}
	return true, nil
}

// Stalled returns ErrLogFailed once the log failed, ErrLogWrite while
// writes to the log fail (a full disk), ErrApplyStalled, with the
// apply's error, while applies to bbolt fail and stallBytes of the log
// wait for them (Commit refuses meanwhile), and nil otherwise: for a
// readiness check. While writes fail it tries the disk itself, at most
// once a second (probeWrite), so that a node taken out of service for it
// is ready again once space is freed, with no commit to find out.
func (db *DB) Stalled() error {
	if err := db.logFailed.Load(); err != nil {
		return *err
	}
	if err := db.writeFailing.Load(); err != nil && !db.probeWrite() {
		return *err
	}
	return db.applyStalled()
}

// probeWrite tries whether the log can be written again after a failed
// write, and reports whether it can: it grows the current segment's
// zeroed tail, as the next write would have to. It tries at most once a
// second, and not while the writer is busy (the writer is what clears
// writeFailing, on its next write).
func (db *DB) probeWrite() bool {
	now := nanotime()
	last := db.probedAt.Load()
	if (last != 0 && now-last < int64(time.Second)) || !db.probedAt.CompareAndSwap(last, now) {
		return false
	}
	if !db.writeMu.TryLock() {
		return false
	}
	defer db.writeMu.Unlock()
	if db.walErr != nil || db.wal.f == nil {
		return false
	}
	if err := db.wal.grow(db.wal.alloc + 1); err != nil {
		return false
	}
	db.writeFailing.Store(nil)
	return true
}

// applyStalled is Stalled's part for the applies.
func (db *DB) applyStalled() error {
	db.pmu.Lock()
	stalled, aerr, behind := db.applyErr != nil && db.unappliedBytes >= stallBytes, db.applyErr, db.unappliedBytes
	db.pmu.Unlock()
	if !stalled {
		return nil
	}
	return fmt.Errorf("%w (%w): %d MiB of the log wait for bbolt: %w", ErrApplyStalled, collab.ErrUnavailable, behind>>20, aerr)
}

// log appends reqs to the log as one frame and, once it is durable,
// makes them pending: visible to reads and queued for the applier.
func (db *DB) log(reqs []*commitReq) error {
	if db.walErr != nil {
		return db.walErr
	}
	if err := db.applyStalled(); err != nil {
		// Nothing is acknowledged that memory and the log would have to
		// hold without bound; commits go on once an apply succeeds.
		return err
	}
	lsn := db.nextLSN
	e := enc{b: append(db.frame[:0], make([]byte, frameHeader)...)}
	e.uvarint(lsn)
	e.uvarint(uint64(len(reqs)))
	for _, r := range reqs {
		appendRequest(&e, r)
	}
	if len(e.b)-frameHeader >= maxFrame {
		return fmt.Errorf("%w: a group commit of %d bytes", ErrInvalidRecord, len(e.b))
	}
	sealFrame(e.b)
	if cap(e.b) <= 1<<20 {
		db.frame = e.b
	}
	fatal, err := db.wal.append(e.b)
	if err != nil {
		if fatal {
			db.walErr = fmt.Errorf("%w (%w): the log of %s is unusable until the store is reopened: %w", ErrLogFailed, collab.ErrUnavailable, db.path, err)
			db.logFailed.Store(&db.walErr)
			return db.walErr
		}
		// Undone (append zeroed what it wrote): nothing is stored, and
		// the next commit tries again. Retryable, so that a client sends
		// the op again rather than roll it back.
		err = fmt.Errorf("%w (%w): %w", ErrLogWrite, collab.ErrUnavailable, err)
		db.writeFailing.Store(&err)
		return err
	}
	if db.writeFailing.Load() != nil {
		db.writeFailing.Store(nil)
	}
	db.nextLSN++
	var seg *segment
	if db.wal.size >= segmentSize {
		// A failed start of a new segment leaves the current one in use.
		if s, err := db.wal.create(lsn + 1); err == nil {
			seg = &s
		}
	}
	now := time.Now()
	db.pmu.Lock()
	for _, r := range reqs {
		st := db.states[string(r.dk)]
		pd := db.pending[string(r.dk)]
		if pd == nil {
			pd = &pendingDoc{first: lsn, since: now}
			db.pending[string(r.dk)] = pd
		}
		pd.head, pd.snap, pd.exists, pd.snapKnown = st.head, st.snap, st.exists, st.snapKnown
		pd.last = lsn
		for i := range r.recs {
			rec := &r.recs[i]
			pd.recs = append(pd.recs, pendingRec{lsn: lsn, version: rec.Version, seq: rec.Seq, src: rec.Src, val: r.vals[i]})
			pd.bytes += len(r.vals[i])
		}
		// A snapshot weighs only when it is kept: what trim counts.
		switch {
		case r.truncate != nil:
			pd.opaque = append(pd.opaque, lsn)
		case r.snap != nil && !st.snapKnown:
			pd.opaque = append(pd.opaque, lsn)
		case r.newSnap && st.snap == r.snap.Version:
			pd.snaps = append(pd.snaps, pendingSnap{lsn: lsn, snap: *r.snap})
			pd.bytes += len(r.data)
		}
	}
	db.unapplied = append(db.unapplied, &logBatch{lsn: lsn, reqs: slices.Clone(reqs), bytes: len(e.b)})
	db.unappliedBytes += len(e.b)
	kick := db.unappliedBytes >= applyBytes
	if seg != nil {
		db.wal.segs = append(db.wal.segs, *seg)
	}
	db.pmu.Unlock()
	if kick {
		select {
		case db.applyKick <- struct{}{}:
		default:
		}
	}
	return nil
}

// writeError marks an error from a bbolt write (as opposed to a failed
// check) made for one request.
type writeError struct{ err error }

func (e writeError) Error() string { return e.err.Error() }
func (e writeError) Unwrap() error { return e.err }

// apply checks r, logged in frame lsn, against the stored document and
// writes it in tx, noting lsn as the document's applied point. It
// reports whether it wrote anything. A failed check returns its error with
// nothing written; a failed write returns a writeError, and tx must then
// be rolled back.
func (db *DB) apply(tx *bolt.Tx, metas *metaCache, r *commitReq, lsn uint64) (bool, error) {
	if r.truncate != nil {
		if err := metas.flush(tx, r.dk); err != nil {
			return false, writeError{fmt.Errorf("storage: truncate %s: %w", r.key, err)}
		}
		return db.applyTruncate(tx, r, lsn)
	}
	m, exists, err := metas.read(tx, r.dk)
	if err != nil {
		return false, fmt.Errorf("storage: commit %s: %w", r.key, err)
	}
	_, saveSnap, err := checkCommit(r, m.head, m.snap)
	if err != nil || (len(r.recs) == 0 && !saveSnap) {
		// Nothing to write. The document's applied point stays where
		// it is: applying r again, to the document as it is, changes
		// nothing either.
		return false, err
	}
	m.applied = lsn
	if err := db.put(tx, metas, r, m, exists, saveSnap); err != nil {
		return false, writeError{fmt.Errorf("storage: commit %s: %w", r.key, err)}
	}
	return true, nil
}

// put writes r's records, seq entries, snapshot and the document's new
// metadata, and marks its index entries stale.
func (db *DB) put(tx *bolt.Tx, metas *metaCache, r *commitReq, m docMeta, exists, saveSnap bool) error {
	old := m
	doc, err := tx.Bucket(bucketDoc).CreateBucketIfNotExists(r.dk)
	if err != nil {
		return err
	}
	if len(r.recs) > 0 {
		ops, err := doc.CreateBucketIfNotExists(bucketOps)
		if err != nil {
			return err
		}
		seqs, err := doc.CreateBucketIfNotExists(bucketSeqs)
		if err != nil {
			return err
		}
		for i := range r.recs {
			rec := &r.recs[i]
			if err := ops.Put(versionKey(rec.Version), r.vals[i]); err != nil {
				return err
			}
			m.opBytes += uint64(len(r.vals[i]) - len(rec.Data))
			if rec.Src != "" {
				e := encodeSeqEntry(collab.SeqEntry{Seq: rec.Seq, Version: rec.Version})
				if err := seqs.Put([]byte(rec.Src), e); err != nil {
					return err
				}
			}
			m.modified = rec.Time
			switch rec.Kind {
			case collab.OpCreate:
				m.typ, m.created, m.deleted = rec.Type, rec.Time, false
			case collab.OpDelete:
				m.typ, m.deleted = "", true
			}
		}
		m.head += uint64(len(r.recs))
		if floor := seqFloor(m.head, db.opts.SeqWindow); floor > m.seqFloor {
			if err := pruneSeqs(ops, seqs, m.seqFloor, floor); err != nil {
				return err
			}
			m.seqFloor = floor
		}
	}
	if saveSnap {
		snaps, err := doc.CreateBucketIfNotExists(bucketSnaps)
		if err != nil {
			return err
		}
		if err := putSnapshot(snaps, r.snap, r.data, m.opBytes); err != nil {
			return err
		}
		replaced := m.snap
		m.snap = r.snap.Version
		if replaced > 0 {
			if err := db.retire(doc, snaps, replaced, m.head); err != nil {
				return err
			}
		}
	}
	if err := metas.put(tx, r.dk, m); err != nil {
		return err
	}
	if !exists || old.modified != m.modified {
		// The index entries move later, with others (index.go).
		db.markStale(r.dk, r.key, old.modified, exists)
	}
	return nil
}

// metaCache holds, within one write transaction, the metadata of the
// documents it changed: a document with several requests in the
// transaction (the applier's usual case) has its metadata read and
// decoded once and written once, at flushAll, instead of once per
// request. Everything else in the transaction that reads the docs bucket
// (a truncate, the index flush) is preceded by a flush of what it reads.
type metaCache struct {
	m map[string]*cachedMeta
	// found is each document's applied point as the transaction first
	// found it (foundApplied).
	found map[string]uint64
}

type cachedMeta struct {
	meta   docMeta
	exists bool
	dirty  bool
}

// reset empties the cache for a new transaction.
func (c *metaCache) reset() {
	clear(c.m)
	clear(c.found)
}

// foundApplied returns dk's applied point (docMeta.applied) as the
// transaction first found it: a frame may hold several of a document's
// requests, which all come after the point the first of them sets, and
// a truncate's flush may drop the document from m.
func (c *metaCache) foundApplied(tx *bolt.Tx, dk []byte) (uint64, error) {
	if p, ok := c.found[string(dk)]; ok {
		return p, nil
	}
	m, _, err := c.read(tx, dk)
	if err != nil {
		return 0, err
	}
	if c.found == nil {
		c.found = make(map[string]uint64)
	}
	c.found[string(dk)] = m.applied
	return m.applied, nil
}

// read returns dk's metadata as the transaction has it.
func (c *metaCache) read(tx *bolt.Tx, dk []byte) (docMeta, bool, error) {
	if e := c.m[string(dk)]; e != nil {
		return e.meta, e.exists, nil
	}
	m, ok, err := readMeta(tx, dk)
	if err != nil {
		return m, ok, err
	}
	c.m[string(dk)] = &cachedMeta{meta: m, exists: ok}
	return m, ok, nil
}

// put sets dk's metadata, to be written at flushAll.
func (c *metaCache) put(tx *bolt.Tx, dk []byte, m docMeta) error {
	e := c.m[string(dk)]
	if e == nil {
		e = &cachedMeta{}
		c.m[string(dk)] = e
	}
	e.meta, e.exists, e.dirty = m, true, true
	return nil
}

// flush writes dk's metadata if it changed, and forgets it.
func (c *metaCache) flush(tx *bolt.Tx, dk []byte) error {
	e := c.m[string(dk)]
	if e == nil {
		return nil
	}
	delete(c.m, string(dk))
	if !e.dirty {
		return nil
	}
	return tx.Bucket(bucketDocs).Put(dk, encodeMeta(&e.meta))
}

// flushAll writes every changed document's metadata, and forgets them.
func (c *metaCache) flushAll(tx *bolt.Tx) error {
	docs := tx.Bucket(bucketDocs)
	for dk, e := range c.m {
		if e.dirty {
			if err := docs.Put([]byte(dk), encodeMeta(&e.meta)); err != nil {
				return err
			}
		}
	}
	clear(c.m)
	return nil
}
