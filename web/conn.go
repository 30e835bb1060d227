package web

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/gorilla/websocket"
	"golang.org/x/time/rate"

	"github.com/coedit/coedit/collab"
	"github.com/coedit/coedit/ot"
)

// Close codes the server sends when it ends a WebSocket. Besides these,
// gorilla/websocket sends 1009 (message too big) for a frame over
// Options.MaxFrameSize and answers a client's close frame in kind.
const (
	// CloseGoingAway (1001): the server is shutting down.
	CloseGoingAway = websocket.CloseGoingAway
	// CloseSlowConsumer (1013, "try again later"): the client did not
	// read fast enough and its send queue overflowed. It should
	// reconnect and catch up by version.
	CloseSlowConsumer = websocket.CloseTryAgainLater
	// CloseTryAgain (1013 too): a document the client asked for had too
	// many requests waiting (collab.ErrBusy). It should reconnect,
	// catch up by version and resend.
	CloseTryAgain = websocket.CloseTryAgainLater
	// CloseSessionFailed (1011, "internal error"): a document this
	// connection used lost its session to a store failure
	// (collab.ErrSessionFailed), which dropped its subscription there.
	// Closing is how the client learns it: it reconnects, re-subscribes
	// by version and resends its unacknowledged op, as after any drop.
	CloseSessionFailed = websocket.CloseInternalServerErr
	// ClosePolicyViolation (1008): the client kept sending frames that
	// are malformed or over its message rate (Options.MaxBadFrames).
	ClosePolicyViolation = websocket.ClosePolicyViolation
	// CloseSrcReclaimed (4000): a newer connection reclaimed this
	// connection's src in its handshake (see Server).
	CloseSrcReclaimed = 4000
	// CloseTokenExpired (4001): the connection's token expired. The
	// client needs a new token; reconnecting with the old one gets 401.
	CloseTokenExpired = 4001
	// CloseRetry (1012, "service restart"): a request failed for a
	// reason that passes (the cluster's commit point, Redis, is out of
	// reach, or the document is contended). The client reconnects, to
	// this node or another, and resends its unacknowledged op with the
	// same src and seq, which is acknowledged once.
	CloseRetry = websocket.CloseServiceRestart
	// CloseHistoryReplaced (4002): in a cluster, this node dropped
	// records of a document the client subscribed to, because the
	// cluster's history replaced them (Redis lost them; they were
	// offered again as new ops). The client's copy may hold them: it
	// must fetch the document anew, not catch up from its version. Every
	// node refuses its subscribe, fetch or submit past the replaced
	// version with ERR_HISTORY_REPLACED until it does.
	CloseHistoryReplaced = 4002
)

// conn is one WebSocket client. It implements collab.Conn.
//
// Goroutines: the reader is one goroutine at a time, which Server.serveWS
// starts (Server.Close waits until the connection has finished): a small
// goroutine waits for the next frame and hands the connection to a reader
// turn on one of the server's pooled goroutines, which handles what
// arrived and starts the next small one (see read); the one whose read
// fails, because the socket failed or closed, ends the connection
// (finish). A writer turn runs on a pooled goroutine only while something
// is queued (see queue.go). An idle connection thus holds one goroutine,
// blocked in a read on a small stack. The server's ping wheel and the
// token-expiry timer start the writer when they queue something.
// finish stops the expiry timer (a stopped connection gets no more
// pings: pingTick checks stopped), waits for the writer and
// for the request goroutines (nf, nt) the reader started, and then
// disconnects the conn from the hub. Session goroutines call the Send
// methods and reply functions, which only encode and queue.
type conn struct {
	srv *Server
	ws  *websocket.Conn
	nc  *batchConn    // the socket under ws; nil when the upgrade did not go through batchHijacker
	br  *bufio.Reader // what ws reads frames through; nil as nc

	// ctx is cancelled when the reader stops; blocking hub calls use it.
	// The reader creates it at its first use (requestContext).
	ctx    context.Context
	cancel context.CancelFunc

	src atomic.Pointer[string]
	// id is who the connection acts as, from its token; fixed at open.
	id identity
	// expiry closes the connection with CloseTokenExpired when its token
	// expires; nil without auth. serve stops it.
	expiry *time.Timer
	// readable caches, for the reader, whether id may use a presence
	// channel (see channelReadable); it is cleared when it grows past
	// readableCacheSize.
	readable map[string]bool
	// srcFixed is set (reader only, by handle) once a request that
	// involves a document or presence channel was accepted; a later
	// handshake cannot change the src.
	srcFixed bool
	// reclaimed is set (reader only, by handshake) when the connection
	// took back the src of an earlier one: a client reconnecting. Its
	// presence subscribes then ask it, too, for its presence
	// (presenceSubscribe).
	reclaimed bool
	// pingSlot is the connection's group on the server's ping wheel
	// (Server.pingTurn); fixed at open, under the server's mu.
	pingSlot uint8
	// lastKey is the document of the last submit (reader only; see
	// submitKey).
	lastKey collab.Key

	mu          sync.Mutex
	queue       [][]byte
	queuedBytes int
	pingDue     bool
	writing     bool // a writer runs (or the closing one has run): no other may start
	stopped     bool // the reader has returned: no writer starts any more
	closing     bool // no more queueing; the writer sends the close frame
	closeCode   int
	closeReason string

	drained chan struct{} // made by WaitRoom, closed (and forgotten) when the queue empties or closing begins
	stop    chan struct{} // closed when the reader has returned
	writers sync.WaitGroup

	ops  tokenBucket   // submits
	msgs tokenBucket   // every frame, well-formed or not
	bad  *rate.Limiter // malformed frames (Options.MaxBadFrames); made by the reader at the first

	work sync.WaitGroup // nf/nt goroutines
	sem  chan struct{}  // bounds them; made by the reader at the first
}

var (
	_ collab.Conn         = (*conn)(nil)
	_ collab.SharedSender = (*conn)(nil)
	_ collab.Pacer        = (*conn)(nil)
)

func newConn(srv *Server, ws *websocket.Conn, nc *batchConn, src string, id identity) *conn {
	c := &conn{
		srv:  srv,
		ws:   ws,
		nc:   nc,
		id:   id,
		stop: make(chan struct{}),
		ops:  newTokenBucket(srv.opsRate),
		msgs: newTokenBucket(srv.msgsRate),
	}
	c.src.Store(&src)
	return c
}

// log returns the connection's logger. It is made for each line rather
// than kept: an idle connection then holds none, and lines are few.
func (c *conn) log() *slog.Logger {
	return c.srv.log.With("remote", c.remote())
}

// remote is the client's address (the TCP peer, as net/http's
// Request.RemoteAddr has it), which log adds to each line. It is read
// from the socket when needed rather than kept: an idle connection
// holds no copy. Empty for a conn without a socket (benchmarks).
func (c *conn) remote() string {
	if c.ws == nil {
		return ""
	}
	return c.ws.RemoteAddr().String()
}

// requestContext returns ctx, creating it at the first call. Reader only.
func (c *conn) requestContext() context.Context {
	if c.ctx == nil {
		c.ctx, c.cancel = context.WithCancel(context.Background())
	}
	return c.ctx
}

// Src returns the connection's ShareDB src.
func (c *conn) Src() string { return *c.src.Load() }

// serve starts the connection's reader. It runs on the goroutine
// Server.serveWS starts, which is the first wait for a frame.
func (c *conn) serve() {
	o := &c.srv.opts
	if !c.id.expires.IsZero() {
		c.expiry = time.AfterFunc(time.Until(c.id.expires), c.tokenExpired)
	}
	// Past Options.MaxFrameSize a frame is read on and dropped, and
	// answered with an error (readMessage); past this gorilla closes the
	// connection with 1009.
	c.ws.SetReadLimit(discardLimit(o.MaxFrameSize))
	c.ws.SetReadDeadline(time.Now().Add(o.PongTimeout))
	c.ws.SetPongHandler(func(string) error {
		return c.ws.SetReadDeadline(time.Now().Add(o.PongTimeout))
	})
	// A ping takes from the message bucket like any frame: past it, its
	// pong waits (the reader runs this handler).
	pong := c.ws.PingHandler()
	c.ws.SetPingHandler(func(data string) error {
		if c.isClosing() {
			return nil
		}
		if c.pace("messages", c.msgs.Take()) {
			return nil
		}
		return pong(data)
	})
	c.read()
}

// read waits for the connection's next frame on a small goroutine of its
// own, then hands the connection to a reader turn (readTurn) on one of
// the server's pooled goroutines, and returns. When the read fails (the
// socket failed or closed) it ends the connection instead (finish).
//
// Why two goroutines: handling a request (JSON decoding, hub calls)
// grows a goroutine's stack to 8 KiB, and the runtime shrinks a stack
// only during a garbage collection, which an idle server does not run. A
// reader that waited for the next frame on the stack that handled the
// last one would keep those 8 KiB for as long as the connection sits
// idle; a new goroutine waits on the smallest stack. Handling on that
// small goroutine grew it in two copies per frame (5% of the CPU in a
// closed loop); a pooled goroutine has grown already.
//
// An idle reader waits in a fill of the buffered reader gorilla reads
// frames through (c.br.Peek(1)), not in gorilla's ReadMessage: the calls
// down to the socket's wait in ReadMessage take about 1,300 bytes of
// stack, past what a 2 KiB stack leaves before it grows (1,120), so every
// idle connection held a 4 KiB stack; the fill's (bufio, net, poll) take
// about 660. The fill's read(2) is the one that waits and the one that
// receives the frame's bytes, into the buffer ReadMessage then reads
// from: a wait that only peeked at the socket (MSG_PEEK) cost a busy
// connection one or two more system calls per frame. Nothing is waited
// for when a frame is buffered already.
func (c *conn) read() {
	if c.br == nil {
		// No buffer to wait in (the upgrade did not go through
		// batchHijacker): the frame is waited for in gorilla's read.
		c.readTurn()
		return
	}
	if c.br.Buffered() == 0 {
		if _, err := c.br.Peek(1); err != nil {
			c.finish(err)
			return
		}
	}
	c.srv.readers.run(c)
}

// readTurn reads and handles the frames a connection has received, on a
// pooled goroutine (turnPool) that keeps the stack handling grew, then
// hands the wait for the next frame to a new small goroutine (read).
//
// A client that sends part of a frame and stops holds its turn's
// goroutine, with the stack it grew, in gorilla's read until the rest
// comes or the read deadline (PongTimeout) passes; the per-frame
// goroutine before the pool was held the same way, on a smaller stack.
func (c *conn) readTurn() {
	for {
		if err := c.readFrame(); err != nil {
			c.finish(err)
			return
		}
		if c.br == nil || c.br.Buffered() == 0 {
			break
		}
	}
	go c.read()
}

// finish ends the connection once its reader has stopped, and releases
// everything it holds: it stops the timers, closes the socket, waits for
// the writer and the request goroutines (nf, nt), and disconnects the conn
// from the hub and the server.
func (c *conn) finish(err error) {
	c.mu.Lock()
	c.stopped = true
	c.mu.Unlock()
	if c.expiry != nil {
		c.expiry.Stop()
	}
	if c.cancel != nil {
		c.cancel()
	}
	close(c.stop)
	// The socket has failed, or the client closed it, or the writer
	// closed it; closing it here ends a write to a client that is gone.
	c.ws.Close()
	c.writers.Wait()
	c.work.Wait()
	c.srv.hub.Disconnect(c)
	c.srv.release(c)
	c.log().Debug("websocket closed", "src", c.Src(), "reason", err)
	c.srv.leave(c.srv.connAddr(c))
}

// tokenExpired closes the connection when its token expires.
func (c *conn) tokenExpired() {
	c.log().Info("closing websocket: token expired", "src", c.Src())
	c.closeWith(CloseTokenExpired, "token expired")
}

// readFrame reads one frame and answers it; it returns an error when the
// connection fails or closes. Every frame takes a token from the message
// bucket before anything answers it, malformed frames included, so no
// kind of frame is answered faster than the rate (one over it waits);
// malformed frames also take from the bad-frame bucket, and a connection
// that empties it is closed with 1008. Once the connection is closing
// nothing more is answered or done.
func (c *conn) readFrame() error {
	typ, frame, err := readMessage(c.ws, c.srv.opts.MaxFrameSize)
	var big *frameTooLarge
	if errors.As(err, &big) {
		if c.isClosing() || c.pace("messages", c.msgs.Take()) {
			return nil
		}
		c.refuseTooLarge(big.prefix)
		return nil
	}
	if err != nil {
		if errors.Is(err, websocket.ErrReadLimit) {
			c.discardUpload()
		}
		return err
	}
	if c.isClosing() {
		return nil // the writer is sending the close frame
	}
	if !c.id.expires.IsZero() && !time.Now().Before(c.id.expires) {
		// The timer has not fired yet; the token must not serve one
		// more request meanwhile.
		c.tokenExpired()
		return nil
	}
	if c.pace("messages", c.msgs.Take()) {
		return nil
	}
	switch {
	case typ != websocket.TextMessage:
		c.refuse(nil, "binary", badlyFormed("binary frames are not supported: send each message as a JSON text frame"))
	case !utf8.Valid(frame):
		c.refuse(nil, "utf8", badlyFormed("frame is not valid UTF-8"))
	default:
		c.handle(frame)
	}
	return nil
}

// pace waits d on the reader, which reads nothing meanwhile: the wait a
// frame over one of the connection's rates owes its bucket (limit names
// it; tokenBucket.Take). It reports whether the connection began closing
// meanwhile, when nothing more is answered.
func (c *conn) pace(limit string, d time.Duration) (closing bool) {
	if d <= 0 {
		return false
	}
	c.srv.met.rateWaits.WithLabelValues(limit).Add(d.Seconds())
	for d > 0 {
		step := min(d, paceStep)
		time.Sleep(step)
		d -= step
		if c.isClosing() {
			return true
		}
	}
	// The client's pongs wait behind the frames it sent, unread while
	// this reader slept, and the read deadline moves on only when a pong
	// is read: a client kept over the rate would be dropped at the pong
	// timeout, not slowed. It sent this frame, so it is there.
	c.ws.SetReadDeadline(time.Now().Add(c.srv.opts.PongTimeout))
	return false
}

// paceStep is how often a paced reader looks whether its connection is
// closing, so that a long wait (a low configured rate) does not hold a
// shutdown.
const paceStep = 50 * time.Millisecond

// refuse answers a frame that is malformed (reason names how), counting
// it against the bad-frame bucket; past that bucket the connection is
// closed with 1008 instead. r is the request when the frame parsed as
// one, to echo.
func (c *conn) refuse(r *request, reason string, perr *protoError) {
	c.srv.met.badFrames.WithLabelValues(reason).Inc()
	if c.bad == nil {
		o := &c.srv.opts
		c.bad = rate.NewLimiter(rate.Limit(float64(o.MaxBadFrames)/60), o.MaxBadFrames)
	}
	if !c.bad.Allow() {
		c.srv.met.abuseClosed.Inc()
		c.log().Info("closing websocket: too many malformed frames", "src", c.Src(), "last", reason)
		c.closeAfterQueued(ClosePolicyViolation, "too many malformed frames")
		return
	}
	c.sendError(r, perr)
}

// isClosing reports whether the connection is being closed.
func (c *conn) isClosing() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closing
}

// Bounds on discardUpload: it stops once the client has sent nothing for
// drainIdle, after drainFor in all, or after reading the larger of
// drainBytes and twice Options.MaxFrameSize.
const (
	drainIdle  = 250 * time.Millisecond
	drainFor   = 5 * time.Second
	drainBytes = 8 << 20
)

// discardUpload reads and drops what the client still sends after a frame
// over the read limit, for which gorilla has already written the 1009
// close. Closing the socket with that upload unread would make the kernel
// answer with a reset, which loses the close frame on the way to the
// client and fails its write: the client would see a dropped connection
// instead of learning why. Once the client has read the close it stops
// sending (it answers with its own close frame), the reads go quiet, and
// the socket then closes with nothing unread. The bounds keep a client
// that never stops from holding the reader.
func (c *conn) discardUpload() {
	nc := c.ws.NetConn()
	end := time.Now().Add(drainFor)
	limit := discardLimit(c.srv.opts.MaxFrameSize)
	buf := make([]byte, 32<<10)
	for read := int64(0); read < limit; {
		deadline := time.Now().Add(drainIdle)
		if deadline.After(end) {
			deadline = end
		}
		nc.SetReadDeadline(deadline)
		n, err := nc.Read(buf)
		read += int64(n)
		if err != nil {
			return
		}
	}
}

// sendError replies to r (nil when the frame was not a request) with e.
func (c *conn) sendError(r *request, e *protoError) {
	c.srv.met.countError(e.Code)
	c.send(echoError(r, e))
}

// fail replies to r with the protocol error for err. A closing hub, or a
// document session that failed, closes the connection instead: the client
// reconnects to a live server (session) and resends, where an error would
// make it roll back its op.
func (c *conn) fail(r *request, err error) {
	switch {
	case isClosed(err):
		c.closeAfterQueued(CloseGoingAway, "server shutting down")
		return
	case errors.Is(err, collab.ErrSessionFailed):
		c.Drop(collab.Key{}, err)
		return
	case errors.Is(err, collab.ErrBusy):
		// Retryable: the client reconnects, catches up by version and
		// resends, where an error would roll its op back.
		c.log().Info("closing websocket: document busy", "src", c.Src(), "err", err)
		c.closeAfterQueued(CloseTryAgain, "document busy: reconnect and resend")
		return
	case errors.Is(err, collab.ErrConnClosed):
		return // nobody is left to tell
	}
	if retryable(err) {
		c.log().Info("closing websocket for a retryable failure", "src", c.Src(), "action", r.action, "err", err)
		c.srv.met.countError(CodeUnavailable)
		c.closeAfterQueued(CloseRetry, "try again: the commit point is unavailable")
		return
	}
	pe, internal := toProtoError(err)
	if internal {
		c.log().Error("request failed", "action", r.action, "src", c.Src(), "err", err)
	}
	c.sendError(r, pe)
}

// Drop implements collab.Conn: key's session dropped this connection's
// subscription and presence there. The protocol has no message that
// tells a client it was unsubscribed, so the connection closes, with the
// code for err: CloseHistoryReplaced when the cluster's history replaced
// records the client may hold (collab.ErrHistoryReplaced; its subscribe
// again at its version is refused with ERR_HISTORY_REPLACED, and it
// fetches the document anew), else CloseSessionFailed (the session
// failed; the client reconnects and re-subscribes by version).
func (c *conn) Drop(key collab.Key, err error) {
	if errors.Is(err, collab.ErrHistoryReplaced) {
		c.log().Info("closing websocket: a document's history was replaced", "src", c.Src(), "doc", key.String(), "err", err)
		c.closeWith(CloseHistoryReplaced, "history of "+key.String()+" replaced: fetch it again")
		return
	}
	c.log().Warn("closing websocket: a document session failed", "src", c.Src(), "doc", key.String(), "err", err)
	c.closeWith(CloseSessionFailed, "document session failed: reconnect and subscribe again")
}

// SendPresence queues a presence message, unless it is document presence
// on a document the connection may not read: a channel name can stand for
// more than one document (see channelReadable), and the subscribe check
// only proved one of them readable.
func (c *conn) SendPresence(p collab.PresenceUpdate) {
	if p.Doc != nil && !c.id.access.CanRead(*p.Doc) {
		return
	}
	c.send(encodePresence(p))
}

// SendPresenceRequest queues a presence request ("pr").
func (c *conn) SendPresenceRequest(channel string) {
	c.send(newMsg("pr").str("ch", channel).bytes())
}

// encodePresence encodes p as ShareDB's "p" message.
func encodePresence(p collab.PresenceUpdate) []byte {
	m := newMsg("p").str("ch", p.Channel).str("src", p.Src).str("id", p.ID)
	switch {
	case p.Text != nil:
		m.raw("p", ot.EncodePresence(*p.Text))
	case p.Raw != nil:
		m.raw("p", p.Raw)
	default:
		m.null("p")
	}
	m.uint("pv", p.Seq)
	if p.Doc != nil {
		m.str("c", p.Doc.Collection).str("d", p.Doc.ID).uint("v", p.Version)
		if p.Type != "" {
			m.str("t", p.Type)
		} else {
			m.null("t")
		}
	}
	return m.bytes()
}

// readMessage is gorilla's ReadMessage with the frame returned at its
// own size. ReadMessage reads through io.ReadAll, which starts at 512
// bytes and doubles: a typical op frame of 100 to 200 bytes cost a
// 512-byte allocation, about a tenth of what a server allocated per op.
// The frame is read into a pooled buffer instead and copied out: the
// copy must be a frame's own, as requests keep slices of it past the
// read (a submit's reply echoes it on failure; presence keeps raw JSON).
func readMessage(ws *websocket.Conn, limit int64) (int, []byte, error) {
	typ, r, err := ws.NextReader()
	if err != nil {
		return typ, nil, err
	}
	buf := framePool.Get().(*bytes.Buffer)
	buf.Reset()
	var frame []byte
	if _, err = buf.ReadFrom(io.LimitReader(r, limit+1)); err == nil {
		if int64(buf.Len()) > limit {
			big := &frameTooLarge{prefix: bytes.Clone(buf.Bytes()[:min(buf.Len(), tooLargePrefix)])}
			if _, err = io.Copy(io.Discard, r); err == nil {
				err = big
			}
		} else {
			frame = bytes.Clone(buf.Bytes())
		}
	}
	if buf.Cap() <= maxPooledFrame {
		framePool.Put(buf)
	}
	return typ, frame, err
}

// frameTooLarge is readMessage's error for a frame over the limit, read
// to its end and dropped; prefix is its first bytes, which name what it
// was (refuseTooLarge).
type frameTooLarge struct{ prefix []byte }

func (e *frameTooLarge) Error() string { return "web: frame over the size limit" }

// tooLargePrefix is how much of a frame over the limit is kept to answer
// it: the sharedb client writes an op's scalar fields (a, c, d, v, src,
// seq) before the op.
const tooLargePrefix = 4 << 10

// discardLimit is the size past which a frame over the limit is no
// longer read and dropped: the connection is closed with 1009 instead,
// so that one frame costs the node a bounded read.
func discardLimit(limit int64) int64 { return max(drainBytes, 2*limit) }

// refuseTooLarge answers a frame over Options.MaxFrameSize, which was
// read and dropped, with ERR_OP_TOO_LARGE echoing the scalar fields its
// first bytes hold, and counts it as a bad frame. The sharedb client then
// rolls back the op it was (its reply names a, c and d) and goes on:
// closing with 1009, as the server did, left the op pending, so the
// client sent it again at every reconnect and was closed again, for good.
func (c *conn) refuseTooLarge(prefix []byte) {
	perr := newError(CodeOpTooLarge, fmt.Sprintf("the frame is larger than the %d bytes allowed", c.srv.opts.MaxFrameSize))
	var r request
	// The echo is sent in a text frame: only valid UTF-8 without lone
	// surrogates, as a frame that is answered must be.
	if head := scalarPrefix(prefix); head != nil && utf8.Valid(head) && ot.CheckSurrogates(head) == nil && parseRequest(head, &r) == nil {
		c.refuse(&r, "size", perr)
		return
	}
	c.refuse(nil, "size", perr)
}

// scalarPrefix returns, as a JSON object, the members at the start of a
// JSON object cut short (b) whose values are strings, numbers, true,
// false or null, up to the first member that is anything else or is cut
// off; nil if b does not start an object.
func scalarPrefix(b []byte) []byte {
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '{' {
		return nil
	}
	out := []byte{'{'}
	for i++; ; {
		i = skipSpace(b, i)
		if i >= len(b) || b[i] != '"' {
			break
		}
		kEnd := stringEnd(b, i)
		if kEnd < 0 {
			break
		}
		key := b[i:kEnd]
		i = skipSpace(b, kEnd)
		if i >= len(b) || b[i] != ':' {
			break
		}
		i = skipSpace(b, i+1)
		vEnd := -1
		if i < len(b) && b[i] == '"' {
			vEnd = stringEnd(b, i)
		} else if i < len(b) && strings.IndexByte("-0123456789tfn", b[i]) >= 0 {
			vEnd = i
			for vEnd < len(b) && strings.IndexByte(",} \t\r\n", b[vEnd]) < 0 {
				vEnd++
			}
			if vEnd == len(b) {
				vEnd = -1 // cut off
			}
		}
		if vEnd < 0 {
			break
		}
		if len(out) > 1 {
			out = append(out, ',')
		}
		out = append(append(append(out, key...), ':'), b[i:vEnd]...)
		if i = skipSpace(b, vEnd); i >= len(b) || b[i] != ',' {
			break
		}
		i++
	}
	return append(out, '}')
}

// maxPooledFrame bounds the read buffers framePool keeps: one that grew
// past it for a big frame is let go.
const maxPooledFrame = 64 << 10

// framePool holds the buffers readMessage reads frames into.
var framePool = sync.Pool{New: func() any { return bytes.NewBuffer(make([]byte, 0, 4<<10)) }}
