package storage

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/coedit/coedit/collab"
)

// formatVersion is the layout and encoding version this package writes
// and reads, kept in the meta bucket. Open migrates a file of version 1
// (see migrate.go), and takes one of version 2 as it is, noting version
// 3: format 3 only added a document's applied LSN (docMeta.applied), but
// a build of format 2 must not replay the op log of a file that has them,
// since it would apply again what a document already has.
const formatVersion = 3

// Bucket and key names; doc.go describes the layout.
var (
	bucketMeta   = []byte("meta")
	bucketDocs   = []byte("docs")
	bucketDoc    = []byte("doc")
	bucketRecent = []byte("recent")
	bucketByColl = []byte("bycollection")

	keyFormat = []byte("format")

	bucketOps   = []byte("ops")
	bucketSeqs  = []byte("seqs")
	bucketSnaps = []byte("snapshots")
)

// Errors the store returns, besides collab.ErrVersionConflict. Each is
// wrapped with the path or document it concerns.
var (
	// ErrClosed is returned by every method called after Close.
	ErrClosed = errors.New("storage: store closed")
	// ErrLocked is returned by Open when another DB, in this process or
	// another, holds the file's lock for longer than Options.LockTimeout.
	ErrLocked = errors.New("storage: file is locked by another process")
	// ErrFormat is returned by Open for a bbolt file that is not a coedit
	// store or was written in a format version this package cannot read.
	ErrFormat = errors.New("storage: unsupported file format")
	// ErrCorrupt is returned when a stored value cannot be decoded or the
	// store's invariants do not hold (see Check).
	ErrCorrupt = errors.New("storage: store is corrupt")
	// ErrInvalidKey is returned for a document key with an empty
	// collection or id, or longer than 4 KiB.
	ErrInvalidKey = errors.New("storage: invalid document key")
	// ErrInvalidRecord is returned by Commit for records that are not
	// consecutive or are malformed; nothing is stored.
	ErrInvalidRecord = errors.New("storage: invalid record")
	// ErrInvalidSnapshot is returned for a snapshot whose version is past
	// the document's head; nothing is stored.
	ErrInvalidSnapshot = errors.New("storage: invalid snapshot")
	// ErrApplyStalled is returned by Commit, with the apply's error,
	// while applies to bbolt fail and the log holds stallBytes waiting
	// for them; nothing is stored. Commits are taken again once an apply
	// succeeds. It wraps collab.ErrUnavailable too: a client should send
	// the op again later (web closes the WebSocket with 1012, answers
	// HTTP with 503 and Retry-After).
	ErrApplyStalled = errors.New("storage: the log is not being applied")
	// ErrLogFailed is returned by Commit once a write to the log failed
	// in a way that leaves what the disk holds unknown (its sync failed,
	// or a failed write could not be zeroed again): that Commit and
	// every later one, until the store is reopened. The records of the
	// Commit that met the failure may or may not be durable; the next
	// Open finds out. It wraps collab.ErrUnavailable: the client sends
	// the op again, and its src and seq make the resend answer with the
	// op if it was stored after all.
	ErrLogFailed = errors.New("storage: the log failed")
	// ErrLogWrite is returned by Commit when its write to the log failed
	// and was undone (a full disk, a file system gone read-only): nothing
	// of it is stored, and later commits try again. It wraps
	// collab.ErrUnavailable: the client sends the op again later, as for
	// ErrApplyStalled; Stalled reports it until a write succeeds.
	ErrLogWrite = errors.New("storage: the log cannot be written")
)

// SyncMode says when a commit reaches the disk.
type SyncMode uint8

const (
	// SyncAlways syncs the file before Commit returns, so an
	// acknowledged op survives a crash or power loss. The default.
	SyncAlways SyncMode = iota
	// SyncNone leaves writes in the OS page cache (bbolt's NoSync). A
	// process crash loses nothing, a power loss may lose recent commits
	// or worse. For benchmarks and throwaway data only.
	SyncNone
)

// String returns "always" or "none".
func (m SyncMode) String() string {
	switch m {
	case SyncAlways:
		return "always"
	case SyncNone:
		return "none"
	}
	return fmt.Sprintf("SyncMode(%d)", uint8(m))
}

// ParseSyncMode parses "always" or "none", as String writes them.
func ParseSyncMode(s string) (SyncMode, error) {
	switch strings.ToLower(s) {
	case "always":
		return SyncAlways, nil
	case "none":
		return SyncNone, nil
	}
	return 0, fmt.Errorf("storage: unknown sync mode %q (want always or none)", s)
}

// MarshalText returns the mode as String spells it, so that a SyncMode
// can be a command-line flag (flag.TextVar).
func (m SyncMode) MarshalText() ([]byte, error) { return []byte(m.String()), nil }

// UnmarshalText sets m from "always" or "none", as ParseSyncMode reads
// them.
func (m *SyncMode) UnmarshalText(b []byte) error {
	v, err := ParseSyncMode(string(b))
	if err != nil {
		return err
	}
	*m = v
	return nil
}

// Options configures Open. The zero value of each field means its
// documented default, so Options{} is the production configuration.
type Options struct {
	// Sync is when commits reach the disk. Default SyncAlways.
	Sync SyncMode
	// LockTimeout is how long Open waits for the file lock that another
	// DB holds before it fails with ErrLocked. Default 2s.
	LockTimeout time.Duration
	// MilestoneEvery is the least distance in versions between two
	// milestones, the older snapshots SnapshotAt starts from; milestones
	// further back are further apart (the rule is in snapshots.go).
	// Default 1000, at most 2^48.
	MilestoneEvery uint64
	// SeqWindow is how many of a document's newest versions its seq
	// table covers: the table keeps a src's entry only while the src's
	// last record is among them, so it never holds more than SeqWindow
	// entries (seqs.go says what a pruned src loses). Default 10,000.
	SeqWindow uint64
	// InitialMmapSize is the size of bbolt's first memory map in bytes.
	// A write that outgrows the map must wait for every read transaction
	// to end, so a map bigger than the file avoids those stalls.
	// Default 64 MiB.
	InitialMmapSize int
	// MaxBatch is the most Commit, SaveSnapshot and Truncate calls that
	// share one group commit (one frame of the op log and its disk
	// sync); the rest wait for the next. Default 1024.
	MaxBatch int
	// ApplyEvery is how often the applier moves requests logged since
	// its last run from the op log into bbolt, in one write transaction:
	// those of each document with about a page (4 KiB) of records
	// waiting, or with a request logged ten intervals ago. It also runs,
	// and applies everything, when 8 MiB of log are waiting, and when a
	// read or Close needs it. Longer shares bbolt's page writes and
	// syncs among more commits, at the cost of memory for the pending
	// requests and of replay time after a crash. Default 500ms.
	ApplyEvery time.Duration
	// MaxBatchDelay is how long the leader of a group commit waits for
	// more calls to join a batch that is not full before it writes it.
	// The default, 0, sets no such wait: calls that arrive while a batch
	// syncs form the next batch, which already groups commits under load
	// (CompanyWait may still hold a small batch back). Set, it replaces
	// CompanyWait.
	MaxBatchDelay time.Duration
	// CompanyWait is the most the leader of a small group commit waits
	// for one more call to join, and it waits only when other documents
	// have been committing at a rate that makes one likely in that time
	// (company.go). Under light load spread over many documents, where
	// each sync would otherwise carry one commit, it trades up to this
	// much latency for fewer syncs; a lone document's commits, and
	// batches that are large already, never wait. The default, 0, takes
	// DefaultCompanyWait; a negative value turns the wait off, as does
	// SyncNone. Ignored when MaxBatchDelay is set.
	CompanyWait time.Duration
}

// DefaultCompanyWait is Options.CompanyWait's default.
const DefaultCompanyWait = 200 * time.Microsecond

// withDefaults returns o with its zero fields set to their defaults, or
// an error for a value that makes no sense.
func (o Options) withDefaults() (Options, error) {
	if o.Sync != SyncAlways && o.Sync != SyncNone {
		return o, fmt.Errorf("storage: invalid Options.Sync %v", o.Sync)
	}
	if o.LockTimeout < 0 || o.InitialMmapSize < 0 || o.MaxBatch < 0 || o.MaxBatchDelay < 0 || o.ApplyEvery < 0 {
		return o, errors.New("storage: negative value in Options")
	}
	if o.LockTimeout == 0 {
		o.LockTimeout = 2 * time.Second
	}
	if o.MilestoneEvery == 0 {
		o.MilestoneEvery = 1000
	}
	if o.MilestoneEvery > 1<<48 {
		return o, fmt.Errorf("storage: Options.MilestoneEvery %d is more than 2^48", o.MilestoneEvery)
	}
	if o.SeqWindow == 0 {
		o.SeqWindow = 10000
	}
	if o.InitialMmapSize == 0 {
		o.InitialMmapSize = 64 << 20
	}
	if o.MaxBatch == 0 {
		o.MaxBatch = 1024
	}
	if o.ApplyEvery == 0 {
		o.ApplyEvery = 500 * time.Millisecond
	}
	switch {
	case o.CompanyWait < 0 || o.Sync == SyncNone || o.MaxBatchDelay > 0:
		o.CompanyWait = 0 // off; without a sync there is nothing to share, and MaxBatchDelay replaces it
	case o.CompanyWait == 0:
		o.CompanyWait = DefaultCompanyWait
	}
	return o, nil
}

// Stats counts what a DB has written since Open.
type Stats struct {
	// Commits is the number of Commit, SaveSnapshot and Truncate calls
	// that were written in a group commit (including those that failed).
	Commits uint64
	// Batches is the number of group commits written; each
	// wrote at most one frame to the op log, with SyncAlways one disk
	// sync. Commits/Batches is the average group commit size.
	Batches uint64
	// CompanyWaits is the number of group commits whose leader waited
	// for another call to join (Options.CompanyWait).
	CompanyWaits uint64
	// Applies is the number of transactions in which the applier moved
	// logged requests into bbolt (apply.go).
	Applies uint64
	// PendingDocs is the number of documents with logged requests not
	// yet in bbolt, and UnappliedBytes the size of the log frames kept
	// for them: how far bbolt trails the log. A timed apply leaves a
	// document with little waiting for up to about 5 s; 8 MiB of frames
	// make the applier take everything.
	PendingDocs    int
	UnappliedBytes int
}

// DB is a coedit document store in one bbolt file. It implements
// collab.Store; all its methods are safe for concurrent use.
//
// Reads run in their own short bbolt read transactions, over the logged
// requests not yet applied to bbolt. Writes (Commit, SaveSnapshot,
// Truncate) are group commits, written by the calls themselves: one call
// at a time leads, and appends its request and every one queued while the
// previous batch was written to the op log as one frame with one sync
// (group.go); the applier goroutine, which Open starts and Close stops,
// moves them into bbolt later, many frames at a time (apply.go).
type DB struct {
	path string
	opts Options
	bolt *bolt.DB

	// The group commit (group.go). cmu guards the fields after it: the
	// requests waiting for the next batch, whether a leader is writing
	// one, whether Close has begun, and how many more requests a leader
	// waiting for company (MaxBatchDelay, CompanyWait) wants (fill ends
	// that wait). idle, on cmu,
	// tells Close that the last leader has finished.
	cmu     sync.Mutex
	queue   []*commitReq
	leading bool
	closed  bool
	want    int
	fill    chan struct{}
	idle    sync.Cond
	// arrivals are the latest calls to join, for CompanyWait (company.go).
	arrivals arrivalRing
	// waitTimer ends a leader's wait (group.go). Not guarded by cmu:
	// only the leader uses it, outside cmu, and leadership passes under
	// cmu.
	waitTimer *time.Timer
	// isClosed lets reads fail fast with ErrClosed once Close has begun.
	isClosed atomic.Bool

	closeOnce sync.Once
	closeErr  error

	commits atomic.Uint64
	batches atomic.Uint64
	// companyWaits counts the leaders that waited for company.
	companyWaits atomic.Uint64
	// testWrite, set by tests before any commit, runs at the start of
	// each group commit's write, with writeMu held; nil otherwise.
	testWrite func(batch []*commitReq)
	// taken counts requests taken into a batch (or to lead one); tests
	// use it to know when a leader is busy.
	taken atomic.Uint64

	// stale and indexFlushed belong to the applier (index.go);
	// staleCount is len(stale) for other goroutines.
	stale        map[string]staleEntry
	indexFlushed time.Time
	staleCount   atomic.Int64
	// indexEvery is indexFlushEvery in nanoseconds; tests lengthen it.
	indexEvery atomic.Int64

	// The op log (wal.go). writeMu is held by the leader while it checks
	// and logs a batch (and by direct): one writer at a time. wal,
	// nextLSN, walErr, states, accepted and frame belong to its holder.
	writeMu sync.Mutex
	wal     *walFile
	nextLSN uint64
	walErr  error
	// logFailed is walErr once it is ErrLogFailed, for Stalled.
	logFailed atomic.Pointer[error]
	// kept are the segments Open kept (Kept).
	kept []string
	// writeFailing is the last log write's ErrLogWrite, nil once a write
	// succeeds; probedAt is when Stalled last tried the disk for it
	// (probeWrite, nanotime).
	writeFailing atomic.Pointer[error]
	probedAt     atomic.Int64
	states       map[string]*docState
	accepted     []*commitReq
	frame        []byte

	// pmu guards what the writer and the applier share: the pending
	// requests by document, the frames not yet applied, the applied
	// point, the applier's last error, and wal.segs.
	pmu            sync.Mutex
	pending        map[string]*pendingDoc
	unapplied      []*logBatch
	unappliedBytes int
	applied        uint64 // the file's applied point: every frame up to it is in bbolt
	applyGen       uint64 // counts apply transactions committed
	rtxGen         uint64 // the writer's: applyGen when its batch's read transaction began (state)
	applyErr       error

	// metas caches the documents' metadata within one of the applier's
	// transactions (applyBatches, metaCache); it belongs to the applier.
	metas metaCache

	// The applier goroutine (apply.go).
	applyKick chan struct{}
	applyReqs chan *applyReq
	applyStop chan struct{}
	applyDone chan struct{}
}

var _ collab.Store = (*DB)(nil)

// Open opens the store at path, creating the file (mode 0600) if it does
// not exist, and starts its applier. The caller must Close it.
//
// bbolt locks the file for as long as it is open, against other processes
// and against a second Open in this process alike; Open waits up to
// opts.LockTimeout for that lock and then fails with ErrLocked.
func Open(path string, opts Options) (*DB, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	_, statErr := os.Stat(path)
	created := errors.Is(statErr, fs.ErrNotExist)
	bdb, err := bolt.Open(path, 0o600, &bolt.Options{
		Timeout:         opts.LockTimeout,
		NoSync:          opts.Sync == SyncNone,
		InitialMmapSize: opts.InitialMmapSize,
		FreelistType:    bolt.FreelistMapType,
		// The free list is not written on every commit (one page and
		// its encoding fewer per group commit), only by the last commit
		// of a clean Close (closeIndex); after a crash bbolt rebuilds it
		// on Open by scanning the file, which is derived data and costs
		// time only at start.
		NoFreelistSync: true,
	})
	if errors.Is(err, berrors.ErrTimeout) {
		return nil, fmt.Errorf("storage: open %s: %w (waited %v)", path, ErrLocked, opts.LockTimeout)
	}
	if err != nil {
		return nil, fmt.Errorf("storage: open %s: %w", path, err)
	}
	// hadLog: the file had run with an op log before this Open (it noted
	// log-reached), so the log's directory must be there (openLog).
	hadLog := false
	err = bdb.Update(func(tx *bolt.Tx) error {
		if meta := tx.Bucket(bucketMeta); meta != nil {
			hadLog = meta.Get(keyReached) != nil
		}
		if err := initLayout(tx, opts); err != nil {
			return err
		}
		return openIndex(tx)
	})
	if err != nil {
		bdb.Close()
		return nil, fmt.Errorf("storage: open %s: %w", path, err)
	}
	if created && opts.Sync == SyncAlways {
		// bbolt syncs the file, never its directory entry: without this a
		// power loss could take the new file, and every commit
		// acknowledged in it, away.
		if err := syncDir(filepath.Dir(path)); err != nil {
			bdb.Close()
			return nil, fmt.Errorf("storage: open %s: %w", path, err)
		}
	}
	db := &DB{
		path: path,
		opts: opts,
		bolt: bdb,
		fill: make(chan struct{}, 1),

		stale:        make(map[string]staleEntry),
		indexFlushed: time.Now(),

		wal:     &walFile{dir: path + walSuffix, sync: opts.Sync == SyncAlways},
		states:  make(map[string]*docState),
		pending: make(map[string]*pendingDoc),
		metas:   metaCache{m: make(map[string]*cachedMeta)},

		applyKick: make(chan struct{}, 1),
		applyReqs: make(chan *applyReq),
		applyStop: make(chan struct{}),
		applyDone: make(chan struct{}),
	}
	db.idle.L = &db.cmu
	db.indexEvery.Store(int64(indexFlushEvery))
	if err := db.openLog(hadLog); err != nil {
		db.closeLog(false)
		bdb.Close()
		return nil, fmt.Errorf("storage: open %s: %w", path, err)
	}
	go db.applier()
	return db, nil
}

// initLayout creates the buckets of an empty file, or checks that a file
// holds a store of our format version, migrating one of version 1.
func initLayout(tx *bolt.Tx, opts Options) error {
	meta := tx.Bucket(bucketMeta)
	if meta == nil {
		empty := true
		tx.ForEach(func([]byte, *bolt.Bucket) error { empty = false; return nil })
		if !empty {
			return fmt.Errorf("%w: a bbolt file with no %q bucket is not a coedit store", ErrFormat, bucketMeta)
		}
		for _, name := range [][]byte{bucketMeta, bucketDocs, bucketDoc, bucketRecent, bucketByColl} {
			if _, err := tx.CreateBucket(name); err != nil {
				return err
			}
		}
		return noteFormat(tx.Bucket(bucketMeta))
	}
	v, n := binary.Uvarint(meta.Get(keyFormat))
	if n <= 0 {
		return fmt.Errorf("%w: no readable format version", ErrFormat)
	}
	if v != formatVersion && v != 1 && v != 2 {
		return fmt.Errorf("%w: format version %d, this build reads 1 to %d", ErrFormat, v, formatVersion)
	}
	for _, name := range [][]byte{bucketDocs, bucketDoc, bucketRecent, bucketByColl} {
		if tx.Bucket(name) == nil {
			return fmt.Errorf("%w: bucket %q is missing", ErrCorrupt, name)
		}
	}
	switch v {
	case 1:
		if err := migrateV1(tx, opts); err != nil {
			return err
		}
		return noteFormat(meta)
	case 2:
		return noteFormat(meta)
	}
	return nil
}

// noteFormat marks a new or migrated file as of this format. Its
// documents note no applied frame yet, so log-reached starts at 0 and
// Open need not look for the highest note (openLog).
func noteFormat(meta *bolt.Bucket) error {
	if err := meta.Put(keyFormat, binary.AppendUvarint(nil, formatVersion)); err != nil {
		return err
	}
	return meta.Put(keyReached, binary.AppendUvarint(nil, 0))
}

// syncDir makes the entries of directory dir durable. Windows cannot
// sync a directory, and needs not.
func syncDir(dir string) error {
	if runtime.GOOS == "windows" {
		return nil
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync directory: %w", err)
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("sync directory: %w", err)
	}
	return nil
}

// Path returns the file's path, as given to Open.
func (db *DB) Path() string { return db.path }

// Stats returns the DB's counters.
func (db *DB) Stats() Stats {
	st := Stats{Commits: db.commits.Load(), Batches: db.batches.Load(), CompanyWaits: db.companyWaits.Load()}
	db.pmu.Lock()
	st.Applies, st.PendingDocs, st.UnappliedBytes = db.applyGen, len(db.pending), db.unappliedBytes
	db.pmu.Unlock()
	return st
}

// Close stops accepting commits, waits for every commit already queued
// to be logged (by the leaders of their batches), has the applier move the whole log
// into bbolt and deletes it, and closes the file, waiting for
// read transactions in progress. Calls after Close fail with ErrClosed; a
// second Close returns nil.
func (db *DB) Close() error {
	first := false
	db.closeOnce.Do(func() {
		first = true
		db.isClosed.Store(true)
		db.stopCommits()
		close(db.applyStop)
		<-db.applyDone
		db.pmu.Lock()
		applyErr := db.applyErr
		db.pmu.Unlock()
		// The log stays whole unless bbolt holds all of it.
		if err := db.closeLog(applyErr == nil); err != nil && applyErr == nil {
			applyErr = fmt.Errorf("storage: close %s: log: %w", db.path, err)
		}
		db.closeErr = applyErr
		if err := db.bolt.Close(); err != nil && db.closeErr == nil {
			db.closeErr = fmt.Errorf("storage: close %s: %w", db.path, err)
		}
	})
	if !first {
		return nil
	}
	return db.closeErr
}

// view runs fn in a read transaction, after checking ctx and that the DB
// is open.
func (db *DB) view(ctx context.Context, fn func(*bolt.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if db.isClosed.Load() {
		return ErrClosed
	}
	err := db.bolt.View(fn)
	if errors.Is(err, berrors.ErrDatabaseNotOpen) {
		return ErrClosed
	}
	return err
}

// checkKey rejects keys the store cannot hold or list.
func checkKey(k collab.Key) error {
	if k.Collection == "" || k.ID == "" {
		return fmt.Errorf("%w: %q: collection and id must not be empty", ErrInvalidKey, k.String())
	}
	if len(k.Collection)+len(k.ID) > maxKeyLen {
		return fmt.Errorf("%w: %d bytes long, at most %d", ErrInvalidKey, len(k.Collection)+len(k.ID), maxKeyLen)
	}
	return nil
}

// readMeta returns the document's metadata, ok false for a document the
// store has never seen.
func readMeta(tx *bolt.Tx, dk []byte) (m docMeta, ok bool, err error) {
	v := tx.Bucket(bucketDocs).Get(dk)
	if v == nil {
		return docMeta{}, false, nil
	}
	m, err = decodeMeta(v)
	if err != nil {
		return docMeta{}, false, fmt.Errorf("%w: metadata: %w", ErrCorrupt, err)
	}
	return m, true, nil
}
