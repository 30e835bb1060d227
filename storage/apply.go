package storage

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
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
// the applier early, to apply everything.
const applyBytes = 8 << 20

// stallBytes is how much of the log may wait for bbolt while applies
// fail (a full disk, a failed bbolt sync): past it, commits are refused
// with ErrApplyStalled until an apply succeeds, so that the pending
// state in memory and the log's segments stay bounded.
const stallBytes = 4 * applyBytes

// A timed apply (every Options.ApplyEvery) applies only the documents
// that are due: those with applyDocBytes of records and snapshots
// logged, a Truncate or a snapshot reads cannot model, or a request
// logged applyDocTicks intervals ago (5 s by default). Each apply
// rewrites a few bbolt pages per document it touches (its op leaf and
// the branch above, its bucket's root, its seq table, its metadata's
// leaf) whatever the number of its records, so a document with a few
// small edits waits until it fills about a page. The rest wait in
// memory, readable as before, and hold the file's applied point
// (keyApplied), and so their log segments, back for that long.
const (
	applyDocBytes = 4 << 10
	applyDocTicks = 10
)

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
	// first is at or below the LSN of its oldest unapplied request:
	// every request of the document logged before it is in bbolt.
	// since is about when that request was logged, and bytes is what
	// its unapplied records and snapshots weigh: what makes it due.
	first uint64
	since time.Time
	bytes int
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
		// Only the timer's applies leave documents that are not due.
		stop, all := false, true
		select {
		case <-db.applyKick:
		case <-t.C:
			all = false
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
		err := db.applyPending(all || len(waiters) > 0, flush)
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

// applyPending applies logged requests: every one logged so far if all,
// else those of the documents due (dueDocs); and the stale index entries
// if flush or they are due.
func (db *DB) applyPending(all, flush bool) error {
	flush = flush || db.indexDue()
	db.pmu.Lock()
	frames := db.unapplied[:len(db.unapplied):len(db.unapplied)]
	todo, hold := db.dueDocs(time.Now(), all)
	floor := db.applied
	db.pmu.Unlock()
	if !all && len(todo) == 0 {
		frames = nil
	}
	if len(frames) == 0 && !(flush && len(db.stale) > 0) {
		return nil
	}
	for first := true; first || len(frames) > 0; first = false {
		n := applyChunk(frames, todo)
		chunk := frames[:n]
		frames = frames[n:]
		// The file's applied point: every request in the frames up to
		// it is in bbolt. A document that is not due holds it below its
		// oldest unapplied request; pendingDoc.first is only a bound on
		// that, which may be below a point already noted (a document
		// trimmed after an earlier chunk, or one whose chunk failed), so
		// the point never goes back: log segments up to it may be gone.
		point := floor
		if len(chunk) > 0 {
			point = max(floor, min(chunk[len(chunk)-1].lsn, hold))
			floor = point
		}
		if err := db.applyBatches(chunk, todo, point, flush && len(frames) == 0); err != nil {
			err = fmt.Errorf("storage: apply the log to %s: %w", db.path, err)
			db.pmu.Lock()
			db.applyErr = err
			db.pmu.Unlock()
			return err
		}
		if len(chunk) > 0 {
			db.applied1(chunk, todo, point)
		}
	}
	return nil
}

// applyTodo is what an apply takes from the frames it is given: for each
// document it applies, the LSN its unapplied requests start from
// (pendingDoc.first, as the apply began). The frames a quiet document
// holds back also hold requests of the others that earlier applies took;
// those are passed over without being counted against a transaction's
// size or their document's metadata being read. A nil applyTodo takes
// every request: the replay at Open, which has no pending documents and
// checks each request against its document's note (docMeta.applied).
type applyTodo map[string]uint64

// takes reports whether the request r in frame lsn is the apply's to do.
func (t applyTodo) takes(r *commitReq, lsn uint64) bool {
	if t == nil {
		return true
	}
	first, ok := t[string(r.dk)]
	return ok && lsn >= first
}

// dueDocs returns the documents an apply applies: every pending one if
// all, else those a timed apply takes (see applyDocBytes); and the
// highest LSN below every other pending document's oldest unapplied
// request. pmu is held.
func (db *DB) dueDocs(now time.Time, all bool) (applyTodo, uint64) {
	due := make(applyTodo)
	hold := uint64(math.MaxUint64)
	age := applyDocTicks * db.opts.ApplyEvery
	for dk, pd := range db.pending {
		if all || pd.bytes >= applyDocBytes || len(pd.opaque) > 0 || now.Sub(pd.since) >= age {
			due[dk] = pd.first
		} else {
			hold = min(hold, pd.first-1)
		}
	}
	return due, hold
}

// applyChunk returns how many of batches one bbolt transaction applies:
// up to applyRecords records that todo takes, and at least one batch.
// bbolt keeps the nodes a transaction changes in memory until it
// commits, and deleting from a big one moves the rest of it (the seq
// table's pruning does that a lot): a transaction much larger than a
// page's worth per document costs more than the syncs it saves.
func applyChunk(batches []*logBatch, todo applyTodo) int {
	recs := 0
	for i, b := range batches {
		for _, r := range b.reqs {
			if todo.takes(r, b.lsn) {
				recs += len(r.recs) + 1
			}
		}
		if recs >= applyRecords && i > 0 {
			return i
		}
	}
	return len(batches)
}

// applyRecords bounds the records one apply transaction writes.
const applyRecords = 8192

// applied1 notes that the requests in batches that todo takes are in
// bbolt, with the file's applied point now
// point: it forgets those requests and the frames up to point, and
// deletes the segments those finish.
func (db *DB) applied1(batches []*logBatch, todo applyTodo, point uint64) {
	last := batches[len(batches)-1].lsn
	now := time.Now()
	var drop []segment
	db.pmu.Lock()
	for _, b := range batches {
		for _, r := range b.reqs {
			if !todo.takes(r, b.lsn) {
				continue
			}
			pd := db.pending[string(r.dk)]
			if pd == nil {
				continue
			}
			if pd.last <= last {
				delete(db.pending, string(r.dk))
				continue
			}
			if pd.first <= last {
				pd.trim(last)
				pd.first, pd.since = last+1, now
			}
		}
	}
	n, k := 0, 0
	for k < len(db.unapplied) && db.unapplied[k].lsn <= point {
		n += db.unapplied[k].bytes
		k++
	}
	db.unappliedBytes -= n
	clear(db.unapplied[:k])
	db.unapplied = db.unapplied[k:]
	db.applied = point
	db.applyGen++
	db.applyErr = nil
	// A segment is applied when the next one starts at or before the
	// frame after the applied point; the current (last) segment stays.
	segs := db.wal.segs
	for len(segs) > 1 && segs[1].first <= db.applied+1 {
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
	pd.bytes = 0
	for i := range pd.recs {
		pd.bytes += len(pd.recs[i].val)
	}
	for i := range pd.snaps {
		pd.bytes += len(pd.snaps[i].snap.Data)
	}
}

// applyBatches applies the requests in batches that todo takes in one
// bbolt write transaction, with point as the
// file's applied point, and writes the stale index entries if flush. A
// request that a document has had already (docMeta.applied) is passed
// over. The checks the writer made hold here too; a request that fails
// one, or a write that fails, rolls the transaction back, and the frames
// stay in the log to be applied later.
func (db *DB) applyBatches(batches []*logBatch, todo applyTodo, point uint64, flush bool) error {
	err := db.bolt.Update(func(tx *bolt.Tx) error {
		metas := &db.metas
		metas.reset()
		for _, b := range batches {
			for _, r := range b.reqs {
				if !todo.takes(r, b.lsn) {
					continue
				}
				p, err := metas.foundApplied(tx, r.dk)
				if err != nil {
					return fmt.Errorf("frame %d: storage: %s: %w", b.lsn, r.key, err)
				}
				if b.lsn <= p {
					continue // applied by an earlier transaction
				}
				if _, err := db.apply(tx, metas, r, b.lsn); err != nil {
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
			meta := tx.Bucket(bucketMeta)
			if err := meta.Put(keyApplied, binary.AppendUvarint(nil, point)); err != nil {
				return err
			}
			// Every document's applied LSN is at most this, so Open
			// numbers new frames past it (openLog).
			last := batches[len(batches)-1].lsn
			reached, _, err := readUvarint(meta, keyReached)
			if err != nil {
				return err
			}
			if last > reached {
				return meta.Put(keyReached, binary.AppendUvarint(nil, last))
			}
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
// deletes the segments and starts a new one. hadLog says the bbolt file
// ran with a log before this Open.
func (db *DB) openLog(hadLog bool) error {
	var applied, reached uint64
	hasReached, unsynced := false, false
	err := db.bolt.View(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		unsynced = meta.Get(keyUnsynced) != nil
		var err error
		if applied, _, err = readUvarint(meta, keyApplied); err != nil {
			return err
		}
		if reached, hasReached, err = readUvarint(meta, keyReached); err != nil || hasReached {
			return err
		}
		// A format 3 file from the morning before log-reached came in
		// (format 2 files get it when marked 3, initLayout): the
		// highest frame its documents note.
		return tx.Bucket(bucketDocs).ForEach(func(dk, v []byte) error {
			m, err := decodeMeta(v)
			if err != nil {
				return fmt.Errorf("%w: metadata of %q: %w", ErrCorrupt, dk, err)
			}
			reached = max(reached, m.applied)
			return nil
		})
	})
	if err != nil {
		return err
	}
	if _, err := os.Stat(db.wal.dir); errors.Is(err, os.ErrNotExist) {
		if hadLog {
			// The directory went missing since the last Open: a copy of
			// the bbolt file alone, say. After a crash it held acknowledged records
			// bbolt lacks; making it anew would lose them without a word.
			return fmt.Errorf("%w: the op log %s is missing, which holds the acknowledged edits %s lacks after a crash: restore it from the copy of the data directory it came from; to start without it (after a clean stop it held nothing; after a crash its edits are lost), create it empty", ErrCorrupt, db.wal.dir, filepath.Base(db.path))
		}
		if err := os.Mkdir(db.wal.dir, 0o700); err != nil {
			return fmt.Errorf("log: %w", err)
		}
		if db.wal.sync {
			if err := syncDir(filepath.Dir(db.wal.dir)); err != nil {
				return fmt.Errorf("log: %w", err)
			}
		}
	}
	segs, err := listSegments(db.wal.dir)
	if err != nil {
		return fmt.Errorf("log: %w", err)
	}
	var batches []*logBatch
	last, read, err := replayLog(segs, applied, !unsynced, func(lsn uint64, reqs []*commitReq) error {
		batches = append(batches, &logBatch{lsn: lsn, reqs: reqs})
		if applyChunk(batches, nil) == len(batches) && len(batches) < applyFrames {
			return nil
		}
		err := db.applyBatches(batches, nil, lsn, false)
		batches = batches[:0]
		return err
	})
	if err == nil && len(batches) > 0 {
		err = db.applyBatches(batches, nil, batches[len(batches)-1].lsn, false)
	}
	if err != nil {
		return fmt.Errorf("replay the log: %w", err)
	}
	for i, s := range segs {
		// A segment with bytes past what was read that are not zeros (a
		// crash's torn frame, or damage replay could not tell from one)
		// is kept beside the log, not deleted, for an operator to look
		// at: Kept lists them.
		keep, err := nonZeroFrom(s.path, read[i])
		if err != nil {
			return fmt.Errorf("log: %w", err)
		}
		if keep {
			kept := s.path + keptSuffix
			if err := os.Rename(s.path, kept); err != nil {
				return fmt.Errorf("log: %w", err)
			}
			db.kept = append(db.kept, kept)
			continue
		}
		if err := os.Remove(s.path); err != nil {
			return fmt.Errorf("log: %w", err)
		}
	}
	if len(segs) > 0 && db.wal.sync {
		// The removals durable before the note of the sync mode changes
		// (noteUnsynced): an unsynced log's segments must not outlive
		// the note that said so.
		if err := syncDir(db.wal.dir); err != nil {
			return fmt.Errorf("log: %w", err)
		}
	}
	// New frames are numbered past every frame a document notes as
	// applied to it, which a log that lost its unsynced tail (--sync
	// none and a machine crash) may no longer hold; replaying them under
	// LSNs a document notes would pass them over.
	next := max(last, reached) + 1
	if next-1 > last || !hasReached {
		// Note the point too, or the next Open would find the new
		// segment's first frame past it with nothing between.
		if err := db.bolt.Update(func(tx *bolt.Tx) error {
			meta := tx.Bucket(bucketMeta)
			if err := meta.Put(keyApplied, binary.AppendUvarint(nil, next-1)); err != nil {
				return err
			}
			return meta.Put(keyReached, binary.AppendUvarint(nil, next-1))
		}); err != nil {
			return fmt.Errorf("log: %w", err)
		}
	}
	if err := db.noteUnsynced(unsynced); err != nil {
		return fmt.Errorf("log: %w", err)
	}
	seg, err := db.wal.create(next)
	if err != nil {
		return fmt.Errorf("log: %w", err)
	}
	db.wal.segs = []segment{seg}
	db.nextLSN = next
	db.applied = next - 1
	return nil
}

// keptSuffix names a segment Open kept rather than deleted: replay could
// not read all of it, and what it could not read is not zeros.
const keptSuffix = ".kept"

// nonZeroFrom reports whether the file at path holds a byte other than
// zero from offset from on.
func nonZeroFrom(path string, from int64) (bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return false, err
	}
	defer f.Close()
	if _, err := f.Seek(from, io.SeekStart); err != nil {
		return false, err
	}
	buf := make([]byte, 64<<10)
	for {
		n, err := f.Read(buf)
		for _, b := range buf[:n] {
			if b != 0 {
				return true, nil
			}
		}
		if err == io.EOF {
			return false, nil
		}
		if err != nil {
			return false, err
		}
	}
}

// Kept returns the log segments Open kept beside the log (named with
// keptSuffix): replay could not read all of one, and the rest is not
// zeros, as a crash's torn last write leaves, or damage. Nothing in them
// was acknowledged unless the damage is bit rot; they are the operator's
// to look at and delete.
func (db *DB) Kept() []string { return db.kept }

// noteUnsynced notes in bbolt, before the log's first frame of this
// Open, whether its frames go unsynced (SyncNone), where was says the
// last Open's. The next Open reads it: a crash may tear any unsynced
// frame, not only the last, so a whole frame behind a torn one is
// damage only if the frames were synced (replayLog). The note is synced
// under SyncNone too, so that a machine crash in the run cannot leave
// the last Open's "synced" in its place.
func (db *DB) noteUnsynced(was bool) error {
	now := db.opts.Sync == SyncNone
	if now == was {
		return nil
	}
	if err := db.bolt.Update(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if now {
			return meta.Put(keyUnsynced, []byte{1})
		}
		return meta.Delete(keyUnsynced)
	}); err != nil {
		return err
	}
	if now {
		return db.bolt.Sync()
	}
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
