package web

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/coedit/coedit/collab"
)

// DocLister lists stored documents; the page handler uses it for its
// document index. *collab.Hub implements it.
type DocLister interface {
	List(ctx context.Context, collection string, limit int) ([]collab.DocInfo, error)
}

var _ DocLister = (*collab.Hub)(nil)

// Options configures a Server. The zero value of each field means the
// documented default.
type Options struct {
	// Hub is the engine the server drives. Required.
	Hub *collab.Hub
	// Logger receives connection and request logs. Default
	// slog.Default().
	Logger *slog.Logger
	// AllowedOrigins lists the browser origins ("https://app.example",
	// scheme and host, port if not the default) allowed to open a
	// WebSocket or call the HTTP API that changes documents; "*" allows
	// every origin. Requests without an Origin header (non-browser
	// clients) are always allowed. Default: the server's own host, and
	// any origin on a loopback host (localhost, 127.0.0.1, [::1]).
	AllowedOrigins []string
	// MaxFrameSize is the largest WebSocket frame and HTTP API body, in
	// bytes; a bigger frame closes the socket with 1009. Default 1 MiB.
	MaxFrameSize int64
	// MaxOpSize is the largest op, create data or presence value, as
	// JSON bytes. Default 512 KiB.
	MaxOpSize int
	// MaxNameLen is the longest collection name, document id and
	// presence id, in bytes. Default 256. (How many documents and
	// presence channels a connection may subscribe to is the Hub's
	// limit, collab.Options.MaxSubscriptions, which also bounds the ids
	// of one bulk request.)
	MaxNameLen int
	// OpsPerSecond and OpsBurst size each connection's token bucket for
	// submits. Defaults: DefaultOpsPerSecond, and a burst of twice the
	// rate in force (at least 1), so a caller that sets only the rate
	// gets a bucket that fits it.
	OpsPerSecond float64
	OpsBurst     int
	// MessagesPerSecond and MessagesBurst size each connection's token
	// bucket for all messages. Defaults: DefaultMessagesPerSecond, and a
	// burst of twice the rate in force (at least 1).
	MessagesPerSecond float64
	MessagesBurst     int
	// SendQueueMessages and SendQueueBytes bound what waits to be written
	// to one connection; past either the connection is closed with 1013
	// (a single message bigger than SendQueueBytes is still sent when
	// the queue is empty). Defaults 65536 messages and 16 MiB.
	SendQueueMessages int
	SendQueueBytes    int
	// HandshakeTimeout bounds the WebSocket upgrade. Default 10s.
	HandshakeTimeout time.Duration
	// PongTimeout is how long a connection may stay silent (no frame, no
	// pong) before it is closed. Default 60s.
	PongTimeout time.Duration
	// PingInterval is how often the server pings. Default 9/10 of
	// PongTimeout.
	PingInterval time.Duration
	// WriteTimeout bounds writing one batch of queued frames; a client
	// that does not take them in time is dropped. Default 10s.
	WriteTimeout time.Duration
	// RequestTimeout bounds the blocking engine calls of nf, nt and the
	// HTTP API, and a plain HTTP request's time to send its body and take
	// its answer (Handler). Default 30s.
	RequestTimeout time.Duration
	// Collectors are registered on the server's /metrics registry beside
	// its own (the Go runtime, the process, the hub's counters, error
	// replies by code, submit latency, slow consumers); cmd adds the
	// store's. Their metric names must not clash with those.
	Collectors []prometheus.Collector
	// AuthSecret turns authentication on: every WebSocket and HTTP API
	// request must carry an HS256 token signed with it (see TokenClaims),
	// and each request is checked against the token's documents. Nil
	// leaves auth off: every client may read and write every document.
	// At least 32 bytes.
	AuthSecret []byte
	// AllowedHosts are the host names (without port) a request's Host may
	// carry besides IP literals and "localhost": the server's public
	// names. "*" turns the DNS-rebinding check off. Default none.
	AllowedHosts []string
	// MaxConns bounds the WebSocket connections of the node, upgrades in
	// progress included; past it an upgrade gets 503 ERR_SERVER_FULL.
	// Default DefaultMaxConns.
	MaxConns int
	// MaxConnsPerAddr bounds the WebSocket connections from one client
	// IP address (the TCP peer: behind a reverse proxy every client is
	// the proxy's address); past it an upgrade gets 429
	// ERR_TOO_MANY_CONNECTIONS. Default DefaultMaxConnsPerAddr.
	MaxConnsPerAddr int
	// MaxBadFrames is how many malformed frames a
	// connection may send in a burst, refilled at MaxBadFrames a minute;
	// past it the connection is closed with 1008. Default 100.
	MaxBadFrames int
	// Ready, if set, is called by /ready besides the server's own check
	// (not closing); an error makes /ready answer 503 with its text.
	Ready func(ctx context.Context) error
	// Router, in a cluster, routes each document's WebSocket editors to
	// one node: an upgrade that names its document (/ws?doc=...) and
	// belongs elsewhere is passed to that node (proxy.go). Nil serves
	// every upgrade here.
	Router Router
}

// Defaults of Options' rate and connection limits.
const (
	DefaultOpsPerSecond      = 100
	DefaultMessagesPerSecond = 1000
	DefaultMaxConns          = 10000
	DefaultMaxConnsPerAddr   = 256
)

// minSecretLen is the shortest Options.AuthSecret: an HS256 key shorter
// than the hash is guessable offline from one token.
const minSecretLen = 32

func (o Options) withDefaults() (Options, error) {
	if o.Hub == nil {
		return o, errors.New("web: Options.Hub is required")
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	setDefault(&o.MaxFrameSize, 1<<20)
	setDefault(&o.MaxOpSize, 512<<10)
	setDefault(&o.MaxNameLen, 256)
	setDefault(&o.OpsPerSecond, DefaultOpsPerSecond)
	setDefault(&o.OpsBurst, burstFor(o.OpsPerSecond))
	setDefault(&o.MessagesPerSecond, DefaultMessagesPerSecond)
	setDefault(&o.MessagesBurst, burstFor(o.MessagesPerSecond))
	setDefault(&o.SendQueueMessages, 65536)
	setDefault(&o.SendQueueBytes, 16<<20)
	setDefault(&o.HandshakeTimeout, 10*time.Second)
	setDefault(&o.PongTimeout, 60*time.Second)
	setDefault(&o.PingInterval, o.PongTimeout*9/10)
	setDefault(&o.WriteTimeout, 10*time.Second)
	setDefault(&o.RequestTimeout, 30*time.Second)
	setDefault(&o.MaxConns, DefaultMaxConns)
	setDefault(&o.MaxConnsPerAddr, DefaultMaxConnsPerAddr)
	setDefault(&o.MaxBadFrames, 100)
	if o.AuthSecret != nil && len(o.AuthSecret) < minSecretLen {
		return o, fmt.Errorf("web: AuthSecret has %d bytes, want at least %d", len(o.AuthSecret), minSecretLen)
	}
	if o.PingInterval >= o.PongTimeout {
		return o, fmt.Errorf("web: PingInterval %v must be shorter than PongTimeout %v", o.PingInterval, o.PongTimeout)
	}
	for _, a := range o.AllowedOrigins {
		if a == "*" {
			continue
		}
		if u, err := url.Parse(a); err != nil || u.Scheme == "" || u.Host == "" {
			return o, fmt.Errorf("web: allowed origin %q is not scheme://host[:port]", a)
		}
	}
	return o, nil
}

// burstFor is the default token bucket size for a rate: two seconds'
// worth, at least 1 and at most math.MaxInt32.
func burstFor(perSecond float64) int {
	b := math.Ceil(2 * perSecond)
	if b >= math.MaxInt32 {
		return math.MaxInt32
	}
	return max(1, int(b))
}

// setDefault sets *v to def when it is zero or negative.
func setDefault[T int | int64 | float64 | time.Duration](v *T, def T) {
	if *v <= 0 {
		*v = def
	}
}

// Server serves coedit's HTTP routes and WebSocket connections over one
// Hub. Create it with New, mount Handler, and call Close on shutdown.
//
// A connection's src is issued at open (32 random hex digits). A client
// that reconnects sends its old src in "hs" and gets it back, so that its
// resent op (which carries that src) is deduplicated. When another live
// connection holds that src, the newer claim wins and the older
// connection is closed with CloseSrcReclaimed: the common case is a
// client whose old socket died without the server noticing yet. Without
// auth any client may claim any src; with auth a src carries a MAC of its
// subject (subjectSrc) and only the same subject may claim it.
//
// Every request passes the Host check first (hosts.go); with auth on, a
// WebSocket upgrade and every HTTP API and page request then needs a
// token (auth.go), and each document request is checked against it
// (authorize.go). /health, /ready, /metrics and the static assets need no
// token.
type Server struct {
	hub   *collab.Hub
	opts  Options
	log   *slog.Logger
	up    websocket.Upgrader
	pages http.Handler
	met   *metrics
	auth  *authenticator // nil: auth off
	// opsRate and msgsRate are the shapes of every connection's submit
	// and message buckets (Options.OpsPerSecond, MessagesPerSecond).
	opsRate, msgsRate *bucketRate
	// httpOps are the HTTP API's submit buckets, one per address.
	httpOps addrBuckets

	mu      sync.Mutex
	closing bool
	conns   map[*conn]struct{}
	srcs    map[string]*conn
	// admitted counts the WebSocket handlers running (upgrades in
	// progress included), in all and by client address, for MaxConns
	// and MaxConnsPerAddr.
	admitted int
	perAddr  map[string]int
	// passed are the upgrades passed to other nodes (proxy.go), and
	// passedAddr the client address of each connection that another node
	// passed here, which it counts against instead of its TCP peer's.
	// exports holds a slot for each op export streaming (maxExports).
	exports    chan struct{}
	passed     map[*passed]struct{}
	passedAddr map[*conn]string
	wg         sync.WaitGroup // connection handlers
	// The ping wheel (pingTurn): one timer for every connection, armed
	// while there are connections; the turns it has run, and when the
	// next one is due.
	pinger   *time.Timer
	turns    uint64
	nextTurn time.Time

	// The goroutines connections' writer and reader turns run on.
	writers, readers turnPool
}

// pingSlots is how many groups the ping wheel splits the connections
// into; one group is pinged every PingInterval/pingSlots.
const pingSlots = 16

// addPingLocked puts c on the ping wheel, in the group pinged last, so
// that its first ping comes between 15/16 of PingInterval and
// PingInterval after now, and one every PingInterval after that. s.mu
// is held.
//
// One timer for the server rather than one per connection: a timer and
// its function value were 140 bytes of every idle connection (scenario
// 5 of issue 11), and the runtime's timer heap is not needed to order
// pings that are all PingInterval apart. A turn goes over every
// connection to find its group, which at 10,000 connections takes a
// fraction of a millisecond every few seconds.
func (s *Server) addPingLocked(c *conn) {
	c.pingSlot = uint8((s.turns + pingSlots - 1) % pingSlots)
	if s.pinger == nil {
		tick := s.opts.PingInterval / pingSlots
		s.nextTurn = time.Now().Add(tick)
		s.pinger = time.AfterFunc(tick, s.pingTurn)
	}
}

// pingTurn is one turn of the ping wheel: it pings the connections of
// the next group and re-arms the timer, unless the server is closing or
// holds no connection (addPingLocked arms it again). Turns are due at
// fixed times, a tick apart, so that a turn that runs late does not
// delay the ones after it: otherwise a busy machine's latency would add
// up pingSlots times over a PingInterval, towards PongTimeout.
func (s *Server) pingTurn() {
	s.mu.Lock()
	if s.closing || len(s.conns) == 0 {
		s.pinger = nil
		s.mu.Unlock()
		return
	}
	slot := uint8(s.turns % pingSlots)
	s.turns++
	var due []*conn
	for c := range s.conns {
		if c.pingSlot == slot {
			due = append(due, c)
		}
	}
	tick := s.opts.PingInterval / pingSlots
	now := time.Now()
	s.nextTurn = s.nextTurn.Add(tick)
	if s.nextTurn.Before(now.Add(-s.opts.PingInterval)) {
		// Far behind (the process was stopped): start again from now
		// rather than run the missed turns back to back.
		s.nextTurn = now
	}
	s.pinger.Reset(s.nextTurn.Sub(now))
	s.mu.Unlock()
	for _, c := range due {
		c.pingTick()
	}
}

// readBufferSize is the WebSocket read buffer of each connection, made
// by batchHijacker. gorilla takes a hijacked reader only when it is over
// 256 bytes. The idle reader waits by reading into it (conn.read): the
// read that waits for a frame also receives it when it fits, as most
// requests do.
const readBufferSize = 288

// New returns a Server over opts.Hub.
func New(opts Options) (*Server, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	s := &Server{
		hub:     opts.Hub,
		opts:    opts,
		log:     opts.Logger,
		conns:   make(map[*conn]struct{}),
		srcs:    make(map[string]*conn),
		perAddr: make(map[string]int),
		exports: make(chan struct{}, maxExports),
	}
	s.writers.turn = (*conn).writeOut
	s.readers.turn = (*conn).readTurn
	if opts.AuthSecret != nil {
		s.auth = newAuthenticator(opts.AuthSecret, time.Now)
	}
	epoch := time.Now()
	s.opsRate = newBucketRate(epoch, opts.OpsPerSecond, opts.OpsBurst)
	s.httpOps.rate = s.opsRate
	s.msgsRate = newBucketRate(epoch, opts.MessagesPerSecond, opts.MessagesBurst)
	s.up = websocket.Upgrader{
		HandshakeTimeout: opts.HandshakeTimeout,
		// No read buffer of gorilla's own: it reads through the one
		// batchHijacker returns (readBufferSize), small because an idle
		// connection holds it for as long as it lives. Frames larger than
		// it are read straight into the message (bufio passes large reads
		// through).
		ReadBufferSize: 0,
		// The write buffer comes from the pool for each message and goes
		// back after it, so an idle connection holds none.
		WriteBufferSize: 4096,
		WriteBufferPool: &sync.Pool{},
		CheckOrigin:     s.originAllowed,
	}
	s.pages = newPageHandler(readableLister{s})
	if s.met, err = newMetrics(s, opts.Collectors); err != nil {
		return nil, fmt.Errorf("web: metrics: %w", err)
	}
	return s, nil
}

// Handler returns the server's routes (see the package doc).
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /ws", s.serveWS)
	mux.HandleFunc("GET /health", s.serveHealth)
	mux.HandleFunc("GET /ready", s.serveReady)
	mux.Handle("GET /metrics", s.met.handler())
	mux.HandleFunc("GET /api/docs", s.serveList)
	mux.HandleFunc("GET /api/docs/{collection}/{id}", s.serveSnapshot)
	mux.HandleFunc("GET /api/docs/{collection}/{id}/ops", s.serveOps)
	mux.HandleFunc("POST /api/docs/{collection}/{id}/ops", s.serveSubmit)
	mux.HandleFunc("GET /api/auth", s.serveAuth)
	mux.HandleFunc("/api/", s.serveAPIElse)
	mux.HandleFunc("GET /d/{collection}/{id}", s.servePage)
	mux.HandleFunc("/", s.servePage)
	// The Host check comes before CORS: a preflight for a name this
	// server does not answer for is refused like any other request.
	return s.bound(s.checkHost(s.cors(mux)))
}

// bound gives a plain HTTP request (anything but a WebSocket upgrade)
// Options.RequestTimeout to send its body and to take its answer, on the
// connection's deadlines. http.Server's ReadHeaderTimeout covers only the
// headers: a request that declared a body and sent none, or a client that
// stopped reading an op export, held its connection, its goroutine and
// the export's page of records for good. An upgrade is the WebSocket's
// to bound (its handshake, write and ping timeouts).
func (s *Server) bound(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !websocket.IsWebSocketUpgrade(r) {
			rc := http.NewResponseController(w)
			d := time.Now().Add(s.opts.RequestTimeout)
			rc.SetReadDeadline(d)
			rc.SetWriteDeadline(d)
		}
		next.ServeHTTP(w, r)
	})
}

// Connections returns the number of open WebSocket connections.
func (s *Server) Connections() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

// Close closes every WebSocket with 1001 (going away), refuses new ones,
// and waits until each connection has left the hub or ctx ends. It does
// not close the hub. http.Server.Shutdown does not track WebSockets, so
// a server shuts down with both; Close may come first (coedit serve's
// order: clients learn at once), since an upgrade that arrives after it
// is refused under the same lock, and it also ends op exports early
// (closingNow).
func (s *Server) Close(ctx context.Context) error {
	s.mu.Lock()
	s.closing = true
	if s.pinger != nil {
		s.pinger.Stop()
		s.pinger = nil
	}
	for c := range s.conns {
		c.closeAfterQueued(CloseGoingAway, "server shutting down")
	}
	s.closePassedLocked()
	s.mu.Unlock()
	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	// The pools let their idle goroutines go now, and each busy one when
	// its turn ends (a turn started from now on still runs).
	s.writers.close()
	s.readers.close()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("web: close: %d connections still open: %w", s.Connections(), ctx.Err())
	}
}

// serveWS upgrades to a WebSocket and runs the connection. Before the
// upgrade it checks, in order: shutdown (503), the token (401), the
// Origin (403), and the connection limits (503, 429), each answered with
// a coded JSON error.
func (s *Server) serveWS(w http.ResponseWriter, r *http.Request) {
	id, err := s.authenticate(r)
	if err != nil {
		s.writeAuthError(w, r, err)
		return
	}
	if !s.originAllowed(r) {
		s.writeError(w, r, newError(CodeOriginNotAllowed, "origin "+strconv.Quote(r.Header.Get("Origin"))+" is not allowed"))
		return
	}
	addr, passedHere := s.clientAddr(r)
	if s.opts.Router != nil && !passedHere && s.routeWS(w, r, addr) {
		return
	}
	if perr := s.admit(addr); perr != nil {
		if perr.Code == CodeTooManyConnections || perr.Code == CodeServerFull {
			// A slot frees only when another connection (of the
			// address's, or any) closes, seldom within a second: a
			// client that honours the header waits a few rather than
			// hammering.
			w.Header().Set("Retry-After", "5")
		}
		s.writeError(w, r, perr)
		return
	}
	hj := &batchHijacker{ResponseWriter: w}
	ws, err := s.up.Upgrade(hj, r, nil)
	if err != nil {
		s.leave(addr)
		s.log.Debug("websocket upgrade failed", "remote", r.RemoteAddr, "origin", r.Header.Get("Origin"), "err", err)
		return // Upgrade replied
	}
	src := newSrc()
	if s.auth != nil {
		src = s.auth.subjectSrc(src, id.access.Subject)
	}
	c := newConn(s, ws, hj.conn, src, id)
	c.br = hj.br
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(CloseGoingAway, "server shutting down"), time.Now().Add(time.Second))
		ws.Close()
		s.leave(addr)
		return
	}
	s.conns[c] = struct{}{}
	s.srcs[c.Src()] = c
	if passedHere {
		if s.passedAddr == nil {
			s.passedAddr = make(map[*conn]string)
		}
		s.passedAddr[c] = addr
	}
	s.addPingLocked(c)
	s.mu.Unlock()
	// The reader runs on goroutines other than this handler's (a small
	// one of its own that waits, and the server's pooled reader turns:
	// see conn.read) so that this handler returns and net/http lets go
	// of what it held for the request (its buffered reader and writer,
	// the request, the handler's stack). s.wg, which admit added to,
	// waits until the last connection has called leave (conn.finish,
	// with the same addr: connAddr).
	go c.serve()
}

// claim gives src to c, closing the connection that held it.
func (s *Server) claim(c *conn, src string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if old := s.srcs[src]; old != nil && old != c {
		old.log().Info("src reclaimed by a new connection", "src", src)
		old.closeWith(CloseSrcReclaimed, "src reclaimed by a newer connection")
	}
	if s.srcs[c.Src()] == c {
		delete(s.srcs, c.Src())
	}
	s.srcs[src] = c
	c.src.Store(&src)
}

// mayReclaim reports whether a connection acting as id may take src
// back in its handshake: always without auth, only src's own subject
// with it.
func (s *Server) mayReclaim(src string, id identity) bool {
	return s.auth == nil || s.auth.srcBelongsTo(src, id.access.Subject)
}

// release forgets c once it has left the hub.
func (s *Server) release(c *conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.conns, c)
	if s.srcs[c.Src()] == c {
		delete(s.srcs, c.Src())
	}
}

// newSrc returns a new src: a random (version 4) UUID spelled as 32 hex
// digits without dashes, the shape ShareDB's own ids have.
func newSrc() string {
	u := uuid.New()
	return hex.EncodeToString(u[:])
}

// originAllowed is the Origin check for WebSocket upgrades and HTTP API
// writes (see Options.AllowedOrigins).
func (s *Server) originAllowed(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" {
		return false
	}
	if len(s.opts.AllowedOrigins) > 0 {
		return s.listed(u, true)
	}
	if strings.EqualFold(u.Host, r.Host) {
		return true
	}
	host := u.Hostname()
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// listed reports whether Options.AllowedOrigins names the origin u, or,
// with star, holds "*".
func (s *Server) listed(u *url.URL, star bool) bool {
	for _, a := range s.opts.AllowedOrigins {
		if (star && a == "*") || (a != "*" && strings.EqualFold(strings.TrimSuffix(a, "/"), u.Scheme+"://"+u.Host)) {
			return true
		}
	}
	return false
}

// isClosed reports an error from a hub that is shutting down.
func isClosed(err error) bool { return errors.Is(err, collab.ErrClosed) }

// serveHealth is the liveness probe: the process is up and serving.
func (s *Server) serveHealth(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"status": "ok", "connections": s.Connections()})
}

// readyTimeout bounds /ready's check, so that a Redis that hangs (paused,
// or a network that drops packets) is answered 503 within a probe's usual
// timeout of a second, not seen as a probe that timed out.
const readyTimeout = 800 * time.Millisecond

// serveReady is the readiness probe: 503 while closing or when
// Options.Ready fails (within readyTimeout).
func (s *Server) serveReady(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	closing := s.closing
	s.mu.Unlock()
	if closing {
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{"status": "closing"})
		return
	}
	if s.opts.Ready != nil {
		ctx, cancel := context.WithTimeout(r.Context(), readyTimeout)
		defer cancel()
		if err := s.opts.Ready(ctx); err != nil {
			writeJSON(w, http.StatusServiceUnavailable, map[string]any{"status": "not ready", "error": err.Error()})
			return
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"status": "ready"})
}
