package collab

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coedit/coedit/ot"
)

// Submission is an op a client submits.
type Submission struct {
	// Src is the submitting connection's id. With a Src, (Src, Seq) makes
	// the submission idempotent: a resend is acknowledged at its original
	// version instead of being applied again. "" (the HTTP API) opts out.
	Src string
	// Seq is the submitter's sequence number. For one document it grows
	// with every op a src submits.
	Seq uint64
	// Version is the version the op was made against. HasVersion false
	// (ShareDB's v:null) is allowed for a create and means "the head".
	Version    uint64
	HasVersion bool
	// Kind says whether this is an edit, a create or a delete.
	Kind OpKind
	// Op is the edit (OpEdit).
	Op ot.Op
	// Type is the new document's type (OpCreate): ot.URI or ot.Name.
	Type string
	// Data is the new document's text (OpCreate).
	Data string
}

// SubmitResult is the outcome of a committed or deduplicated submit.
type SubmitResult struct {
	// Version is the commit version (the ack's v).
	Version uint64
	// Op is the op as committed, after transform (OpEdit). For a
	// Duplicate it is the op committed the first time, when the session
	// could read it.
	Op ot.Op
	// Missed are the records the submission was transformed over, in
	// order. When the submit came with a Conn they were already sent to
	// it with SendOp, before the reply; those older than the session's
	// window were sent by the Hub's readers and are left out here. For a
	// Duplicate they are the records between the submission's version
	// and its original commit.
	Missed []Record
	// Duplicate is true when (Src, Seq) was already committed: nothing
	// was applied, and Version is the original commit version.
	Duplicate bool
	// Record is the record as committed: the one this submit committed,
	// or for a Duplicate the one committed the first time (the zero
	// Record when the session could not read it).
	Record Record
}

// PresenceUpdate is one presence message (ShareDB's "p").
type PresenceUpdate struct {
	// Channel is the presence channel: "collection.id" for a document's
	// presence, any string for untyped presence.
	Channel string
	// ID is the presence id (one per client presence object).
	ID string
	// Src is the connection that sent it; the Hub sets it from the Conn.
	Src string
	// Seq is ShareDB's pv: a per-presence counter.
	Seq uint64
	// Doc is set for typed document presence (ShareDB sends c, d, v, t).
	Doc *Key
	// Version is the document version Value refers to (with Doc).
	Version uint64
	// Type is the type URI (with Doc).
	Type string
	// Text is the text presence {index,length} when the document is
	// text-unicode and Value is that shape; the session transforms it
	// over ops from Version to the head. Nil with Raw nil means the
	// presence was cleared (p: null).
	Text *ot.Presence
	// Raw is any other presence value, passed through as JSON untouched
	// (and, on a document, not transformed: its Version stays as sent).
	Raw []byte
}

// Cleared reports whether p clears its presence (ShareDB's p: null).
func (p PresenceUpdate) Cleared() bool { return p.Text == nil && p.Raw == nil }

// Options configures a Hub. The zero value of each field means the
// documented default.
type Options struct {
	// Store keeps documents durably. Required.
	Store Store
	// IdleTimeout stops a session that has had no subscribers and no
	// requests for this long, after saving a snapshot. Default 30s.
	IdleTimeout time.Duration
	// Pipeline lets a session plan its next group commits while the
	// Store writes the last (pipeline.go), when the Store is an
	// AsyncCommitter and the Hub its documents' only writer (no
	// Sequencer); replies still wait for their group to be durable. A
	// Store whose Commit wraps another's must not set it: CommitAsync
	// would bypass the wrapper.
	Pipeline bool
	// SnapshotEvery writes a snapshot with the commit every this many
	// versions, bounding how many ops a load replays. Default 500.
	SnapshotEvery int
	// MaxDocLen is the largest document, in code points. Default 16 Mi.
	MaxDocLen int
	// MaxBatch is the most submits one group commit takes from a
	// session's inbox. Default 256.
	MaxBatch int
	// MaxInbox bounds the requests (submits, fetches and subscribes,
	// presence) waiting in one session: in its inbox, and held behind a
	// connection's catch-up. Past it a request fails with ErrBusy at
	// once, so a flood of requests cannot grow a session without bound
	// or delay everyone behind it. Default 4096.
	MaxInbox int
	// Readers is how many goroutines read the records that requests far
	// behind the head need (older than a session's in-memory window)
	// from the Store and send them, so that such reads never run on, or
	// wait for, a session goroutine. They are shared by all documents.
	// Default 4.
	Readers int
	// MaxSubscriptions is the most documents one connection may
	// subscribe to, and separately the most presence channels; past it
	// a subscribe fails with ErrTooManySubscriptions. It bounds the
	// memory one client can pin. Default 1000.
	MaxSubscriptions int
	// MaxPresenceBytes bounds the presence one connection holds, over
	// all its channels and documents: the sum of its values (as JSON
	// bytes) plus 128 bytes and the channel and id of each. An update
	// past it fails with ErrPresenceTooLarge. Default 1 MiB.
	MaxPresenceBytes int
	// PresenceTTL is how long a presence lives without an update: then
	// it is dropped and cleared for the others, so a connection cannot
	// pin presence (or the session holding it) for its whole life by
	// posting once. Clients that keep a presence up re-send it within
	// this time (or on a presence request, "pr"). Default 10 minutes.
	PresenceTTL time.Duration
	// Window is how many recent records a session keeps in memory to
	// transform late submits and serve catch-up; older ones are read
	// from the Store. Default 1000.
	Window int
	// WindowBytes bounds the same window by the size of its records (op
	// text and create data, in bytes), so that a few huge ops cannot pin
	// much memory in a session. Default 8 MiB; a session holds at most
	// twice Window records and twice WindowBytes bytes.
	WindowBytes int
	// SeqWindow bounds a session's seq table as storage.Options.SeqWindow
	// bounds the Store's: a src stays in it while its last op is among
	// the document's newest SeqWindow versions (see seqTable). Default
	// 10,000, the Store's default.
	SeqWindow uint64
	// Relay connects the sessions of one document across nodes. Nil
	// means a private in-process relay: a single node, where the session
	// itself orders every document's ops.
	Relay Relay
	// Sequencer is the commit point that orders each document's records
	// when several nodes accept submits for it. Nil means this node is
	// its documents' only writer: every commit is accepted.
	Sequencer Sequencer
	// Logger receives the engine's logs. Default slog.Default().
	Logger *slog.Logger
	// Now is the clock for commit timestamps. Default time.Now.
	Now func() time.Time
}

// Defaults of Options.
const (
	DefaultIdleTimeout      = 30 * time.Second
	DefaultSnapshotEvery    = 500
	DefaultMaxDocLen        = 16 << 20
	DefaultMaxBatch         = 256
	DefaultMaxInbox         = 4096
	DefaultReaders          = 4
	DefaultMaxSubscriptions = 1000
	DefaultWindow           = 1000
	DefaultWindowBytes      = 8 << 20
	DefaultSeqWindow        = 10000
	DefaultMaxPresenceBytes = 1 << 20
	DefaultPresenceTTL      = 10 * time.Minute
)

// withDefaults returns o with its zero (or negative) fields set to their
// defaults.
func (o Options) withDefaults() Options {
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = DefaultIdleTimeout
	}
	if o.SnapshotEvery <= 0 {
		o.SnapshotEvery = DefaultSnapshotEvery
	}
	if o.MaxDocLen <= 0 {
		o.MaxDocLen = DefaultMaxDocLen
	}
	if o.MaxBatch <= 0 {
		o.MaxBatch = DefaultMaxBatch
	}
	if o.MaxInbox <= 0 {
		o.MaxInbox = DefaultMaxInbox
	}
	if o.Readers <= 0 {
		o.Readers = DefaultReaders
	}
	if o.MaxSubscriptions <= 0 {
		o.MaxSubscriptions = DefaultMaxSubscriptions
	}
	if o.MaxPresenceBytes <= 0 {
		o.MaxPresenceBytes = DefaultMaxPresenceBytes
	}
	if o.PresenceTTL <= 0 {
		o.PresenceTTL = DefaultPresenceTTL
	}
	if o.Window <= 0 {
		o.Window = DefaultWindow
	}
	if o.WindowBytes <= 0 {
		o.WindowBytes = DefaultWindowBytes
	}
	if o.SeqWindow == 0 {
		o.SeqWindow = DefaultSeqWindow
	}
	if o.Relay == nil {
		o.Relay = NewLocalRelay(0)
	}
	if o.Sequencer == nil {
		o.Sequencer = soleSequencer{}
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

// Errors a Hub returns, possibly wrapped with details (test with
// errors.Is). web maps each to a ShareDB error code.
var (
	// ErrClosed: the Hub is closed (or was built without a Store).
	ErrClosed = errors.New("collab: hub closed")
	// ErrDocExists: a create on a document that exists, or an op made
	// before a concurrent create. ShareDB ERR_DOC_ALREADY_CREATED.
	ErrDocExists = errors.New("collab: document already created")
	// ErrDocMissing: an edit or delete of a document that was never
	// created. ShareDB ERR_DOC_DOES_NOT_EXIST.
	ErrDocMissing = errors.New("collab: document does not exist")
	// ErrDocDeleted: an edit or delete of a deleted document, or an edit
	// made before a concurrent delete. ShareDB ERR_DOC_WAS_DELETED.
	ErrDocDeleted = errors.New("collab: document was deleted")
	// ErrVersionAhead: a version past the document's head.
	// ShareDB ERR_OP_VERSION_NEWER_THAN_CURRENT_SNAPSHOT.
	ErrVersionAhead = errors.New("collab: version newer than the document")
	// ErrOpsMissing: the ops between a submit's version and the head
	// could not be read. ShareDB ERR_SUBMIT_TRANSFORM_OPS_NOT_FOUND.
	ErrOpsMissing = errors.New("collab: ops to transform over not found")
	// ErrUnknownType: a create with a type other than text-unicode.
	// ShareDB ERR_DOC_TYPE_NOT_RECOGNIZED.
	ErrUnknownType = errors.New("collab: unknown document type")
	// ErrDocTooLarge: the op would make the document longer than
	// Options.MaxDocLen code points.
	ErrDocTooLarge = errors.New("collab: document too large")
	// ErrSrcMismatch: a submit whose Src is not its connection's.
	ErrSrcMismatch = errors.New("collab: op src is not the connection's")
	// ErrInvalidOp: the op is malformed or does not apply to the
	// document; it wraps the ot error. ShareDB ERR_OT_OP_NOT_APPLIED.
	ErrInvalidOp = errors.New("collab: op does not apply")
	// ErrPresenceVersion: a document presence whose version is past the
	// head.
	ErrPresenceVersion = errors.New("collab: presence version newer than the document")
	// ErrStaleSeq: a submit whose seq is older than the last one its src
	// committed to the document, and that is not among the ops since its
	// version, so it is neither new nor a resend. It is not applied.
	ErrStaleSeq = errors.New("collab: seq older than the src's last committed op")
	// ErrSeqReused: a submit whose seq is the one its src last committed
	// to the document, made at a version after that commit: a new op
	// that reuses a seq, not a resend (which is made at or before its
	// commit version). It is not applied.
	ErrSeqReused = errors.New("collab: seq reused by a new op")
	// ErrSessionFailed: a document's session lost its state (its Store
	// failed it in a way it could not recover from) and stopped. Every
	// request it held is answered with it and every subscriber is
	// dropped (Conn.Drop); the next request starts a new session, which
	// loads the document again, so the request may be sent again.
	ErrSessionFailed = errors.New("collab: document session failed")
	// ErrBusy: the document's session has Options.MaxInbox requests
	// waiting. Nothing was done; the request may be sent again later (web
	// closes a WebSocket with 1013, so the client reconnects and resends).
	ErrBusy = errors.New("collab: document busy: too many requests waiting")
	// ErrConnClosed: the request's Conn closed before it was served; it
	// was dropped. Nothing was done; nobody is left to tell.
	ErrConnClosed = errors.New("collab: connection closed")
	// ErrInvalidKey: a document key with an empty collection or id.
	ErrInvalidKey = errors.New("collab: invalid document key")
	// ErrInvalidPresence: a presence update without a channel or id.
	ErrInvalidPresence = errors.New("collab: invalid presence")
	// ErrPresenceTooLarge: a presence update that would take its
	// connection's presence past Options.MaxPresenceBytes.
	ErrPresenceTooLarge = errors.New("collab: too much presence")
	// ErrTooManySubscriptions: a subscribe, or a presence on a document
	// or channel not joined yet, that would take a connection past
	// Options.MaxSubscriptions documents or presence channels.
	ErrTooManySubscriptions = errors.New("collab: too many subscriptions")
)

// Hub owns the sessions of one node: at most one Session goroutine per
// document, started on first use and stopped when idle.
//
// Asynchronous methods (Submit, Subscribe, Fetch, Unsubscribe, Presence...)
// take a reply function. It is called exactly once: by the document's
// session goroutine, after any SendOp calls the request causes on the same
// Conn, so a connection can write replies and broadcasts in one order; or,
// when the request is answered without a session (ErrClosed,
// ErrSrcMismatch, ErrInvalidKey, ErrTooManySubscriptions, an Unsubscribe
// from a document with no session, untyped presence), on the calling
// goroutine before the method returns. reply must not block. The *Wait
// variants block for callers that have no Conn (the HTTP API, replay,
// tests).
//
// All methods are safe for concurrent use.
type Hub struct {
	opts    Options
	log     *slog.Logger
	initErr error

	// mu guards closed and sessions. Requests are queued on a session
	// while mu is held, so Close cannot miss one.
	mu       sync.Mutex
	closed   bool
	sessions map[Key]*session
	// wg counts running session goroutines.
	wg sync.WaitGroup
	// quit is closed by Close; the Hub's own goroutines (presence
	// expiry, the catch-up readers) stop on it, and bg counts them.
	quit     chan struct{}
	bg       sync.WaitGroup
	expiring atomic.Bool // the expiry goroutine was started
	reads    readPool

	// pmu guards the registry of what each connection joined
	// (registry.go) and the presence channels (presence.go).
	pmu      sync.Mutex
	conns    map[Conn]*connState
	channels map[string]*channel

	stats counters
}

// NewHub returns a Hub over opts.Store. A Hub without a Store refuses
// every request with an error wrapping ErrClosed.
func NewHub(opts Options) *Hub {
	opts = opts.withDefaults()
	h := &Hub{
		opts:     opts,
		log:      opts.Logger,
		sessions: make(map[Key]*session),
		quit:     make(chan struct{}),
		conns:    make(map[Conn]*connState),
		channels: make(map[string]*channel),
	}
	if opts.Store == nil {
		h.initErr = fmt.Errorf("%w: Options.Store is nil", ErrClosed)
	}
	return h
}

// Close stops accepting requests, lets every session finish its pending
// commits, saves a snapshot of each, and waits for them to stop. It does
// not close the Store. If ctx ends first, Close returns its error and the
// sessions go on finishing in the background. Requests made after Close
// began fail with ErrClosed.
func (h *Hub) Close(ctx context.Context) error {
	h.mu.Lock()
	if !h.closed {
		close(h.quit)
	}
	h.closed = true
	h.stopReaders()
	ss := make([]*session, 0, len(h.sessions))
	for _, s := range h.sessions {
		ss = append(ss, s)
	}
	h.mu.Unlock()
	for _, s := range ss {
		s.shutdown()
	}
	done := make(chan struct{})
	// This goroutine ends when the last session does; Close waits for it
	// unless ctx ends first.
	go func() {
		h.wg.Wait()
		h.bg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("collab: close: sessions still stopping: %w", ctx.Err())
	}
}

// usable returns why the hub cannot take requests, or nil.
func (h *Hub) usable() error {
	if h.initErr != nil {
		return h.initErr
	}
	h.mu.Lock()
	closed := h.closed
	h.mu.Unlock()
	if closed {
		return ErrClosed
	}
	return nil
}

// errNoSession is returned by send when create is false and the document
// has no running session.
var errNoSession = errors.New("collab: no session")

// send queues r on key's session, starting one if create is set. A
// session that has begun to stop refuses the request, and a new session
// takes it, so a request racing an idle stop is never lost. A session
// with Options.MaxInbox requests waiting refuses it with ErrBusy.
func (h *Hub) send(key Key, r *job, create bool) error {
	if h.initErr != nil {
		return h.initErr
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return ErrClosed
	}
	if s := h.sessions[key]; s != nil {
		err := s.enqueue(r)
		if !errors.Is(err, errStopped) {
			return err
		}
	}
	if !create {
		return errNoSession
	}
	s := newSession(h, key)
	_ = s.enqueue(r) // a new session takes its first request
	h.sessions[key] = s
	h.wg.Add(1)
	h.stats.sessionsStarted.Add(1)
	go s.run()
	return nil
}

// forget removes s from the session map once it has stopped.
func (h *Hub) forget(s *session) {
	h.mu.Lock()
	if h.sessions[s.key] == s {
		delete(h.sessions, s.key)
	}
	h.mu.Unlock()
	h.stats.sessionsStopped.Add(1)
}

func checkKey(key Key) error {
	if key.Collection == "" || key.ID == "" {
		return fmt.Errorf("%w: %q", ErrInvalidKey, key.String())
	}
	return nil
}

// Submit submits an op to key. When c is not nil, s.Src must equal
// c.Src() (else ErrSrcMismatch), the records s is transformed over are sent
// to c with SendOp before reply, and c never receives its own op as a
// broadcast. reply gets the result once the op is durable, or an error
// with the document untouched.
func (h *Hub) Submit(key Key, c Conn, s Submission, reply func(SubmitResult, error)) {
	if reply == nil {
		reply = func(SubmitResult, error) {}
	}
	if err := checkKey(key); err != nil {
		reply(SubmitResult{}, err)
		return
	}
	if c != nil && s.Src != c.Src() {
		reply(SubmitResult{}, fmt.Errorf("%w: submit src %q on connection %q", ErrSrcMismatch, s.Src, c.Src()))
		return
	}
	r := &job{kind: jobSubmit, conn: c, sub: s, onSubmit: reply}
	if err := h.send(key, r, true); err != nil {
		reply(SubmitResult{}, err)
	}
}

// SubmitWait is Submit for callers without a Conn. If ctx ends first it
// returns ctx's error, and the op may still be committed.
func (h *Hub) SubmitWait(ctx context.Context, key Key, s Submission) (SubmitResult, error) {
	type out struct {
		res SubmitResult
		err error
	}
	ch := make(chan out, 1)
	h.Submit(key, nil, s, func(res SubmitResult, err error) { ch <- out{res, err} })
	select {
	case o := <-ch:
		return o.res, o.err
	case <-ctx.Done():
		return SubmitResult{}, ctx.Err()
	}
}
