package collab

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/coedit/coedit/ot"
)

// Conn is one client connection as the engine sees it (a WebSocket in web,
// or an in-process client in tests and replay).
//
// Its Send methods are called from session goroutines and must never
// block: a web connection appends to its bounded send queue and, when the
// queue is full, closes itself (the client reconnects and catches up by
// version). Calls for one document come from that document's one session
// goroutine, in order, so a Conn sees each document's ops, acks and
// replies in version order.
type Conn interface {
	// Src is the connection's id: ShareDB's src, issued at handshake.
	Src() string
	// SendOp delivers a committed record of a document the conn
	// subscribed to, or a catch-up record it asked for. It is never
	// called with the conn's own ops as a broadcast.
	SendOp(key Key, rec Record)
	// SendPresence delivers a presence update on a channel the conn
	// subscribed to (never the conn's own updates, except the echo the
	// protocol defines; see PresenceUpdate).
	SendPresence(p PresenceUpdate)
	// SendPresenceRequest asks the conn to re-send its presence on
	// channel (ShareDB's "pr"), because another client joined.
	SendPresenceRequest(channel string)
}

// Submission is an op a client submits.
type Submission struct {
	Src string
	Seq uint64
	// Version is the version the op was made against. HasVersion false
	// (ShareDB's v:null) is allowed for a create and means "the head".
	Version    uint64
	HasVersion bool
	Kind       OpKind
	Op         ot.Op  // OpEdit
	Type       string // OpCreate: type URI (ot.URI) or name (ot.Name)
	Data       string // OpCreate
}

// SubmitResult is the outcome of a committed or deduplicated submit.
type SubmitResult struct {
	// Version is the commit version (the ack's v).
	Version uint64
	// Op is the op as committed, after transform (OpEdit).
	Op ot.Op
	// Missed are the records the submission was transformed over, in
	// order. When the submit came with a Conn they were already sent to
	// it with SendOp, before the reply.
	Missed []Record
	// Duplicate is true when (Src, Seq) was already committed: nothing
	// was applied, and Version is the original commit version.
	Duplicate bool
}

// PresenceUpdate is one presence message (ShareDB's "p").
type PresenceUpdate struct {
	Channel string // "collection.id" for a document's presence
	ID      string // the presence id (one per client presence object)
	Src     string // the connection that sent it
	Seq     uint64 // ShareDB's pv: per-presence counter
	// Doc is set for typed document presence (ShareDB sends c, d, v, t).
	Doc     *Key
	Version uint64 // the document version Value refers to (with Doc)
	Type    string // the type URI (with Doc)
	// Text is the text presence {index,length} when the document is
	// text-unicode and Value is that shape; the session transforms it
	// over ops from Version to the head. Nil with Raw nil means the
	// presence was cleared (p: null).
	Text *ot.Presence
	// Raw is any other presence value, passed through as JSON untouched.
	Raw []byte
}

// Options configures a Hub. The zero value of each field means the
// documented default.
type Options struct {
	// Store keeps documents durably. Required.
	Store Store
	// IdleTimeout stops a session that has had no subscribers and no
	// requests for this long, after saving a snapshot. Default 30s.
	IdleTimeout time.Duration
	// SnapshotEvery writes a snapshot with the commit every this many
	// versions, bounding how many ops a load replays. Default 500.
	SnapshotEvery int
	// MaxDocLen is the largest document, in code points. Default 16 Mi.
	MaxDocLen int
	// MaxBatch is the most submits one group commit takes from a
	// session's inbox. Default 256.
	MaxBatch int
	// Logger receives the engine's logs. Default slog.Default().
	Logger *slog.Logger
	// Now is the clock for commit timestamps. Default time.Now.
	Now func() time.Time
}

// Errors a Hub returns. web maps each to a ShareDB error code.
var (
	ErrClosed          = errors.New("collab: hub closed")
	ErrDocExists       = errors.New("collab: document already created")        // ERR_DOC_ALREADY_CREATED
	ErrDocMissing      = errors.New("collab: document does not exist")         // ERR_DOC_DOES_NOT_EXIST
	ErrDocDeleted      = errors.New("collab: document was deleted")            // ERR_DOC_WAS_DELETED
	ErrVersionAhead    = errors.New("collab: version newer than the document") // ERR_OP_VERSION_NEWER_THAN_CURRENT_SNAPSHOT
	ErrOpsMissing      = errors.New("collab: ops to transform over not found") // ERR_SUBMIT_TRANSFORM_OPS_NOT_FOUND
	ErrUnknownType     = errors.New("collab: unknown document type")           // ERR_TYPE_CANNOT_BE_PROJECTED... see web
	ErrDocTooLarge     = errors.New("collab: document too large")
	ErrSrcMismatch     = errors.New("collab: op src is not the connection's")
	ErrInvalidOp       = errors.New("collab: op does not apply") // wraps the ot error; ERR_OT_OP_NOT_APPLIED
	ErrPresenceVersion = errors.New("collab: presence version newer than the document")
)

// Hub owns the sessions of one node: at most one Session goroutine per
// document, started on first use and stopped when idle.
//
// Asynchronous methods (Submit, Subscribe, Fetch, Unsubscribe, Presence...)
// take a reply function. The document's session goroutine calls it exactly
// once, after any SendOp calls the request causes on the same Conn, so a
// connection can write replies and broadcasts in one order. reply must not
// block. The *Wait variants block for callers that have no Conn (the HTTP
// API, replay, tests).
type Hub struct {
	opts Options
}

// NewHub returns a Hub over opts.Store.
func NewHub(opts Options) *Hub { panic("TODO") }

// Close stops accepting requests, lets every session finish its pending
// commits, saves a snapshot of each, and waits for them to stop. It does
// not close the Store.
func (h *Hub) Close(ctx context.Context) error { panic("TODO") }

// Submit submits an op to key. When c is not nil, s.Src must equal
// c.Src() (else ErrSrcMismatch), the records s is transformed over are sent
// to c with SendOp before reply, and c never receives its own op as a
// broadcast. reply gets the result once the op is durable, or an error
// with the document untouched.
func (h *Hub) Submit(key Key, c Conn, s Submission, reply func(SubmitResult, error)) {
	panic("TODO")
}

// SubmitWait is Submit for callers without a Conn.
func (h *Hub) SubmitWait(ctx context.Context, key Key, s Submission) (SubmitResult, error) {
	panic("TODO")
}

// Subscribe joins c to key's live op stream. With from nil, reply gets
// the current snapshot. With from set, c first gets the records in
// [*from, head) with SendOp (its own included), then reply (with the
// head's snapshot, which the protocol does not send). A from past the
// head sends nothing and is not an error.
func (h *Hub) Subscribe(key Key, c Conn, from *uint64, reply func(Snapshot, error)) {
	panic("TODO")
}

// Fetch is Subscribe without joining the stream.
func (h *Hub) Fetch(key Key, c Conn, from *uint64, reply func(Snapshot, error)) {
	panic("TODO")
}

// FetchWait returns key's current snapshot.
func (h *Hub) FetchWait(ctx context.Context, key Key) (Snapshot, error) { panic("TODO") }

// Unsubscribe removes c from key's stream and clears c's presence there.
// reply may be nil.
func (h *Hub) Unsubscribe(key Key, c Conn, reply func(error)) { panic("TODO") }

// SnapshotAt returns key's snapshot at version v (ShareDB "nf"); a v past
// the head gives ErrVersionAhead.
func (h *Hub) SnapshotAt(ctx context.Context, key Key, v uint64) (Snapshot, error) {
	panic("TODO")
}

// SnapshotAtTime returns key's snapshot after the last op committed at or
// before ts (Unix ms) (ShareDB "nt").
func (h *Hub) SnapshotAtTime(ctx context.Context, key Key, ts int64) (Snapshot, error) {
	panic("TODO")
}

// Ops returns key's committed records with from <= Version < to.
func (h *Hub) Ops(ctx context.Context, key Key, from, to uint64) ([]Record, error) {
	panic("TODO")
}

// List lists stored documents (see Store.List).
func (h *Hub) List(ctx context.Context, collection string, limit int) ([]DocInfo, error) {
	panic("TODO")
}

// SubscribePresence joins c to a presence channel and sends every other
// subscriber a presence request. reply may be nil.
func (h *Hub) SubscribePresence(channel string, c Conn, reply func(error)) { panic("TODO") }

// UnsubscribePresence leaves a channel; the others get c's presences
// cleared. reply may be nil.
func (h *Hub) UnsubscribePresence(channel string, c Conn, reply func(error)) { panic("TODO") }

// Presence publishes p from c. Document presence (p.Doc set) goes
// through the document's session, which transforms p.Text to the head
// and sets p.Version; reply gets the update as relayed (the protocol
// echoes it to the sender). Untyped presence passes through unchanged.
func (h *Hub) Presence(c Conn, p PresenceUpdate, reply func(PresenceUpdate, error)) {
	panic("TODO")
}

// RequestPresence asks the other subscribers of channel to re-send their
// presence (ShareDB "pr" from a client).
func (h *Hub) RequestPresence(channel string, c Conn) { panic("TODO") }

// Disconnect removes c from every document and presence channel it
// joined, clearing its presence. Call it once when a connection closes.
func (h *Hub) Disconnect(c Conn) { panic("TODO") }
