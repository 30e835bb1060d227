package storage

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/coedit/coedit/collab"
)

// The applier moves logged requests (wal.go) into bbolt. The writer
// acknowledges a group commit once its frame is in the log; the applier
// applies every frame logged so far in one bbolt write transaction, at
// most every Options.ApplyEvery, sooner when applyBytes of frames are
// waiting, and at once when a read needs bbolt to be current (List,
// Check, Epoch, a document with a pending Truncate) or at Close. So
// bbolt's page writes and its two syncs are shared by many group
// commits, and the same pages (a document's op leaf, its bucket root,
// the docs leaf) are written once per apply instead of once per commit.
//
// Until they are applied, the requests stay in memory, indexed by
// document (pendingDoc): the writer checks new requests against them,
// and Load, Ops and SnapshotAt read them over what bbolt holds, so an
// acknowledged record is visible at once.

// applyBytes is how many bytes of frames wait before the writer wakes
// the applier early.
const applyBytes = 8 << 20

// applyFrames is how many frames the replay at Open applies per bbolt
// transaction.
const applyFrames = 4096

// A logBatch is one frame: the requests of one group commit.
type logBatch struct {
	lsn   uint64
	reqs  []*commitReq
	bytes int
}

// pendingRec is a logged record not yet in bbolt.
type pendingRec struct {
	lsn, version, seq uint64
	src               string
	val               []byte
}

type pendingSnap struct {
	lsn  uint64
	snap collab.Snapshot
}

// pendingDoc is what a document's logged but unapplied requests change.
type pendingDoc struct {
	// The document after every logged request: what the writer
	// checks the next request against. snap is 0 and snapKnown false
	// after a Truncate, until it is applied.
	head, snap        uint64
	exists, snapKnown bool
	// recs are the unapplied records, consecutive versions; snaps the
	// unapplied snapshots, in order.
	recs  []pendingRec
	snaps []pendingSnap
	// opaque are the LSNs of unapplied requests whose effect reads cannot
	// model over bbolt (a Truncate; a snapshot logged while the latest
	// snapshot version was unknown): a read waits for them to be applied.
	opaque []uint64
	last   uint64 // LSN of its last logged request
}

// docState is the writer's view of a document while it checks a batch.
type docState struct {
	head, snap        uint64
	exists, snapKnown bool
}

// applyReq asks the applier to apply everything logged so far, then
// (flush) write the stale index entries, then run fn in a write
// transaction of its own.
type applyReq struct {
	flush bool
	fn    func(*bolt.Tx) error
	done  chan error
}

// applier is the applier goroutine; it stops after Close closes
// applyStop, having applied everything and completed the indexes.
func (db *DB) applier() {
	defer close(db.applyDone)
	t := time.NewTicker(db.opts.ApplyEvery)
	defer t.Stop()
	var waiters []*applyReq
	for {
		stop := false
		select {
		case <-db.applyKick:
		case <-t.C:
		case r := <-db.applyReqs:
			waiters = append(waiters, r)
		case <-db.applyStop:
			stop = true
		}
	more:
		for {
			select {
			case r := <-db.applyReqs:
				waiters = append(waiters, r)
			default:
				break more
			}
		}
		flush := stop
		for _, w := range waiters {
			flush = flush || w.flush
		}
		err := db.applyPending(flush)
		for _, w := range waiters {
			werr := err
			if werr == nil && w.fn != nil {
				werr = db.bolt.Update(w.fn)
			}
			w.done <- werr
		}
		waiters = waiters[:0]
		if stop {
			if err == nil {
				db.closeIndex()
			}
			db.pmu.Lock()
			db.applyErr = err
			db.pmu.Unlock()
			return
		}
	}
}

// applyPending applies every logged frame not yet in bbolt, and the
// stale index entries if flush or they are due.
func (db *DB) applyPending(flush bool) error {
	db.pmu.Lock()
	n := len(db.unapplied)
	db.pmu.Unlock()
	flush = flush || db.indexDue()
	if n == 0 && !(flush && len(db.stale) > 0) {
		return nil
	}
	for first := true; first || n > 0; first = false {
		db.pmu.Lock()
		batches := db.unapplied[:applyChunk(db.unapplied[:n])]
		db.pmu.Unlock()
		n -= len(batches)
		if err := db.applyBatches(batches, flush && n == 0); err != nil {
			err = fmt.Errorf("storage: apply the log to %s: %w", db.path, err)
			db.pmu.Lock()
			db.applyErr = err
			db.pmu.Unlock()
			return err
		}
		if len(batches) > 0 {
			db.applied1(batches)
		}
	}
	return nil
}

// applyChunk returns how many of batches one bbolt transaction applies:
// up to applyRecords records (at least one batch). bbolt keeps the nodes
// a transaction changes in memory until it commits, and deleting from a
// big one moves the rest of it (the seq table's pruning does that a lot):
// a transaction much larger than a page's worth per document costs more
// than the syncs it saves.
func applyChunk(batches []*logBatch) int {
	recs := 0
	for i, b := range batches {
		for _, r := range b.reqs {
			recs += len(r.recs) + 1
		}
		if recs >= applyRecords && i > 0 {
			return i
		}
	}
	return len(batches)
}

// applyRecords bounds the records one apply transaction writes.
const applyRecords = 8192

// applied1 forgets batches, the oldest unapplied ones, now that bbolt
// holds them, and deletes the segments they finish.
func (db *DB) applied1(batches []*logBatch) {
	last := batches[len(batches)-1].lsn
	var drop []segment
	db.pmu.Lock()
	n := 0
	for _, b := range batches {
		n += b.bytes
	}
	db.unappliedBytes -= n
	db.unapplied = db.unapplied[len(batches):]
	for _, b := range batches {
		for _, r := range b.reqs {
			pd := db.pending[string(r.dk)]
			if pd == nil {
				continue
			}
			if pd.last <= last {
				delete(db.pending, string(r.dk))
				continue
			}
			pd.trim(last)
		}
	}
	db.applied = last
	db.applyErr = nil
	// A segment is applied when the next one starts at or before the
	// frame after last; the current (last) segment stays.
	segs := db.wal.segs
	for len(segs) > 1 && segs[1].first <= last+1 {
		drop = append(drop, segs[0])
		segs = segs[1:]
	}
	db.wal.segs = segs
	db.pmu.Unlock()
	for _, s := range drop {
		// bbolt holds these frames durably; if the removal fails or is
		// lost in a crash, Open skips the frames as applied.
		os.Remove(s.path)
	}
}

// trim drops what the frames up to last put in pd.
func (pd *pendingDoc) trim(last uint64) {
	i := 0
	for i < len(pd.recs) && pd.recs[i].lsn <= last {
		i++
	}
	pd.recs = pd.recs[i:]
	i = 0
	for i < len(pd.snaps) && pd.snaps[i].lsn <= last {
		i++
	}
	pd.snaps = pd.snaps[i:]
	i = 0
	for i < len(pd.opaque) && pd.opaque[i] <= last {
		i++
	}
	pd.opaque = pd.opaque[i:]
}

// applyBatches applies batches in one bbolt write transaction, with the
// LSN of the last as the applied point, and writes the stale index
// entries if flush. The checks the writer made hold here too; a
// request that fails one, or a write that fails, rolls the transaction
// back, and the frames stay in the log to be applied later.
func (db *DB) applyBatches(batches []*logBatch, flush bool) error {
	err := db.bolt.Update(func(tx *bolt.Tx) error {
		metas := &db.metas
		metas.reset()
		for _, b := range batches {
			for _, r := range b.reqs {
				if _, err := db.apply(tx, metas, r); err != nil {
					return fmt.Errorf("frame %d: %w", b.lsn, err)
				}
			}
		}
		if err := metas.flushAll(tx); err != nil {
			return writeError{fmt.Errorf("storage: document metadata: %w", err)}
		}
		if flush {
			if _, err := db.flushIndex(tx); err != nil {
				return fmt.Errorf("index: %w", err)
			}
		}
		if len(batches) > 0 {
			last := batches[len(batches)-1].lsn
			return tx.Bucket(bucketMeta).Put(keyApplied, binary.AppendUvarint(nil, last))
		}
		return nil
	})
	if err == nil && flush {
		db.flushed()
	}
	return err
}

// indexDue reports whether the stale index entries should be written
// with the next apply.
func (db *DB) indexDue() bool {
	return len(db.stale) > 0 && (len(db.stale) >= indexFlushMax || time.Since(db.indexFlushed) >= time.Duration(db.indexEvery.Load()))
}

// catchUp has the applier apply everything logged before it was called
// (and write the stale index entries, if flush), then run fn, if not
// nil, in a write transaction of its own.
func (db *DB) catchUp(ctx context.Context, flush bool, fn func(*bolt.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if db.isClosed.Load() {
		return ErrClosed
	}
	r := &applyReq{flush: flush, fn: fn, done: make(chan error, 1)}
	select {
	case db.applyReqs <- r:
	case <-db.applyDone:
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	if fn != nil {
		return <-r.done // fn may be running: wait for its outcome
	}
	select {
	case err := <-r.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// overlay is a copy of a document's pending requests for a read.
type overlay struct {
	head  uint64
	recs  []pendingRec
	snaps []pendingSnap
}

// base is the first version not in bbolt: every record below it is.
func (o *overlay) base() uint64 {
	if len(o.recs) > 0 {
		return o.recs[0].version
	}
	return o.head
}

// record decodes the pending record at version v.
func (o *overlay) record(v uint64) (collab.Record, error) {
	if len(o.recs) == 0 || v < o.recs[0].version || v-o.recs[0].version >= uint64(len(o.recs)) {
		return collab.Record{}, fmt.Errorf("%w: logged record at version %d is missing", ErrCorrupt, v)
	}
	p := &o.recs[v-o.recs[0].version]
	r, err := decodeRecord(v, p.val)
	if err != nil {
		return collab.Record{}, fmt.Errorf("%w: logged record at version %d: %w", ErrCorrupt, v, err)
	}
	return r, nil
}

// overlayFor returns a copy of dk's pending requests, nil if it has
// none. A document with requests the overlay cannot model is first
// caught up.
func (db *DB) overlayFor(ctx context.Context, dk []byte) (*overlay, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if db.isClosed.Load() {
		return nil, ErrClosed
	}
	for {
		db.pmu.Lock()
		pd := db.pending[string(dk)]
		if pd == nil {
			db.pmu.Unlock()
			return nil, nil
		}
		if len(pd.opaque) == 0 {
			o := &overlay{head: pd.head, recs: pd.recs[:len(pd.recs):len(pd.recs)], snaps: pd.snaps[:len(pd.snaps):len(pd.snaps)]}
			db.pmu.Unlock()
			return o, nil
		}
		db.pmu.Unlock()
		if err := db.catchUp(ctx, false, nil); err != nil {
			return nil, err
		}
	}
}

// pendingFor reports whether dk has logged requests not yet in bbolt.
func (db *DB) pendingFor(dk []byte) bool {
	db.pmu.Lock()
	defer db.pmu.Unlock()
	return db.pending[string(dk)] != nil
}

// anyPending reports whether anything logged is not yet in bbolt.
func (db *DB) anyPending() bool {
	db.pmu.Lock()
	defer db.pmu.Unlock()
	return len(db.unapplied) > 0
}

// direct runs fn in a bbolt write transaction of its own, after every
// logged request is applied and with the writer held, so that fn sees
// and may change the documents as they stand; the writer reads them
// from bbolt afresh afterwards. For rare writes outside the log (an
// epoch note, a document's log base).
func (db *DB) direct(ctx context.Context, fn func(*bolt.Tx) error) error {
	db.writeMu.Lock()
	defer db.writeMu.Unlock()
	return db.catchUp(ctx, false, fn)
}

// openLog applies the log's frames past bbolt's applied point at Open,
// deletes the segments and starts a new one.
func (db *DB) openLog() error {
	if _, err := os.Stat(db.wal.dir); errors.Is(err, os.ErrNotExist) {
		if err := os.Mkdir(db.wal.dir, 0o700); err != nil {
			return fmt.Errorf("log: %w", err)
		}
		if db.wal.sync {
			if err := syncDir(filepath.Dir(db.wal.dir)); err != nil {
				return fmt.Errorf("log: %w", err)
			}
		}
	}
	var applied uint64
	err := db.bolt.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bucketMeta).Get(keyApplied); v != nil {
			n, k := binary.Uvarint(v)
			if k <= 0 {
				return fmt.Errorf("%w: applied log point", ErrCorrupt)
			}
			applied = n
		}
		return nil
	})
	if err != nil {
		return err
	}
	segs, err := listSegments(db.wal.dir)
	if err != nil {
		return fmt.Errorf("log: %w", err)
	}
	var batches []*logBatch
	last, err := replayLog(segs, applied, func(lsn uint64, reqs []*commitReq) error {
		batches = append(batches, &logBatch{lsn: lsn, reqs: reqs})
		if applyChunk(batches) == len(batches) && len(batches) < applyFrames {
			return nil
		}
		err := db.applyBatches(batches, false)
		batches = batches[:0]
		return err
	})
	if err == nil && len(batches) > 0 {
		err = db.applyBatches(batches, false)
	}
	if err != nil {
		return fmt.Errorf("replay the log: %w", err)
	}
	for _, s := range segs {
		if err := os.Remove(s.path); err != nil {
			return fmt.Errorf("log: %w", err)
		}
	}
	seg, err := db.wal.create(last + 1)
	if err != nil {
		return fmt.Errorf("log: %w", err)
	}
	db.wal.segs = []segment{seg}
	db.nextLSN = last + 1
	db.applied = last
	return nil
}

// closeLog deletes the segments, all applied, and closes the current
// one, at Close after the applier stopped cleanly.
func (db *DB) closeLog(clean bool) error {
	if db.wal.f == nil {
		return nil
	}
	err := db.wal.f.Close()
	db.wal.f = nil
	if !clean {
		return err
	}
	for _, s := range db.wal.segs {
		if rerr := os.Remove(s.path); rerr != nil && !errors.Is(rerr, os.ErrNotExist) && err == nil {
			err = rerr
		}
	}
	db.wal.segs = nil
	return err
}

// update runs fn in a bbolt write transaction of its own, as direct does:
// for a store-level write outside the log, which must see every logged
// request applied and must not race the writer. fn runs on the
// applier's goroutine, so it may mark index entries stale (markStale).
func (db *DB) update(ctx context.Context, fn func(*bolt.Tx) error) error {
	return db.direct(ctx, fn)
}
