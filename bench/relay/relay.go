// Package relay is a bare WebSocket relay with ShareDB's message pattern
// and none of its work: the ceiling the comparison measures coedit and
// ShareDB against. A frame comes in, the sender gets an ack, and the
// document's other subscribers get a copy of the frame, byte for byte. No
// OT, no storage, no JSON decoding: wire.Scan finds the few fields that
// route a frame (a, c, d, seq, src) without decoding anything.
//
// The architecture is today's coedit's without the work: gorilla
// websocket, one reader and one writer goroutine per connection, one
// goroutine per document that orders its ops and fans them out. So the
// gap between coedit and the relay is what coedit's work costs, and the
// relay itself shows what the hand-offs between goroutines cost.
//
// It answers just enough of the protocol for the load generator's
// --relay mode: hs (a fresh src), s and f (the document's version, an
// empty text, the type once created), op (create or edit: the next
// version; the op itself is not looked at), pp. Other actions are
// ignored. It is not a server for real clients: the text it reports is
// always empty, and ops are not transformed, so copies diverge.
package relay

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"github.com/coedit/coedit/bench/wire"
)

// maxQueue is how many frames may wait for one connection's writer (as
// coedit's default); a connection that falls further behind is closed.
// The queue is a slice that grows only while frames wait, so an idle
// connection holds none. docInbox is how many messages may wait for a
// document's goroutine; a reader blocks beyond. It is small so that a
// quiet document costs little: the relay is the floor for memory too.
const (
	maxQueue = 65536
	docInbox = 64
)

// Server is the relay. Its zero value is not usable; call New.
type Server struct {
	upgrader websocket.Upgrader
	nextSrc  atomic.Uint64

	mu     sync.Mutex
	docs   map[string]*doc
	conns  map[*conn]struct{}
	closed bool
	// wg counts connection handlers and document goroutines; Close
	// waits for it.
	wg sync.WaitGroup
}

// New returns a relay with no documents.
func New() *Server {
	return &Server{docs: map[string]*doc{}, conns: map[*conn]struct{}{},
		upgrader: websocket.Upgrader{CheckOrigin: func(*http.Request) bool { return true },
			// Write buffers are borrowed per write, so an idle
			// connection holds none.
			WriteBufferPool: &sync.Pool{}}}
}

// conn is one WebSocket. The handler goroutine reads; writer drains the
// queue.
type conn struct {
	ws     *websocket.Conn
	src    string
	wake   chan struct{} // capacity 1: frames are queued
	done   chan struct{} // closed by kill
	once   sync.Once
	joined []*doc // documents subscribed to; handler goroutine only

	mu    sync.Mutex
	queue [][]byte
}

// send queues a frame, or closes the connection if its queue is full.
func (c *conn) send(frame []byte) {
	c.mu.Lock()
	full := len(c.queue) >= maxQueue
	if !full {
		c.queue = append(c.queue, frame)
	}
	c.mu.Unlock()
	if full {
		c.kill()
		return
	}
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

func (c *conn) kill() {
	c.once.Do(func() {
		close(c.done)
		c.ws.Close()
	})
}

// writer writes queued frames, one WebSocket message each, until the
// connection is killed.
func (c *conn) writer() {
	for {
		select {
		case <-c.wake:
		case <-c.done:
			return
		}
		c.mu.Lock()
		frames := c.queue
		c.queue = nil
		c.mu.Unlock()
		c.ws.SetWriteDeadline(time.Now().Add(10 * time.Second))
		for _, f := range frames {
			if err := c.ws.WriteMessage(websocket.TextMessage, f); err != nil {
				c.kill()
				return
			}
		}
	}
}

// doc is one document: its goroutine (run) owns everything below inbox.
type doc struct {
	c, d  []byte // JSON strings, as the frames carry them
	inbox chan docMsg

	v       uint64
	created bool
	subs    map[*conn]struct{}
}

type docMsg struct {
	kind     byte // 's' subscribe, 'f' fetch, 'u' unsubscribe (on close), 'o' op
	create   bool // an op that creates the document
	conn     *conn
	frame    []byte
	src, seq []byte // raw JSON values within frame
}

// run handles the document's messages until its inbox is closed.
func (d *doc) run() {
	for m := range d.inbox {
		switch m.kind {
		case 's', 'f':
			if m.kind == 's' {
				d.subs[m.conn] = struct{}{}
			}
			typ := "null"
			if d.created {
				typ = `"http://sharejs.org/types/text-unicode"`
			}
			m.conn.send(fmt.Appendf(nil, `{"a":"%c","c":%s,"d":%s,"data":{"v":%d,"data":"","type":%s}}`, m.kind, d.c, d.d, d.v, typ))
		case 'u':
			delete(d.subs, m.conn)
		case 'o':
			d.op(m)
		}
	}
}

// op orders one submitted op: the sender gets an ack at the next version,
// every other subscriber the frame as it came.
func (d *doc) op(m docMsg) {
	if m.create {
		if d.created {
			m.conn.send(fmt.Appendf(nil, `{"a":"op","c":%s,"d":%s,"src":%s,"seq":%s,"error":{"code":"ERR_DOC_ALREADY_CREATED","message":"relay: document already created"}}`,
				d.c, d.d, m.src, m.seq))
			return
		}
		d.created = true
	}
	ack := make([]byte, 0, 64+len(d.c)+len(d.d)+len(m.src))
	ack = append(ack, `{"src":`...)
	ack = append(ack, m.src...)
	ack = append(ack, `,"seq":`...)
	ack = append(ack, m.seq...)
	ack = append(ack, `,"v":`...)
	ack = strconv.AppendUint(ack, d.v, 10)
	ack = append(ack, `,"a":"op","c":`...)
	ack = append(ack, d.c...)
	ack = append(ack, `,"d":`...)
	ack = append(ack, d.d...)
	ack = append(ack, '}')
	d.v++
	m.conn.send(ack)
	for s := range d.subs {
		if s != m.conn {
			s.send(m.frame)
		}
	}
}

// ServeHTTP upgrades the request to a WebSocket and serves it until it
// closes.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ws, err := s.upgrader.Upgrade(w, r, nil)
	if err != nil {
		return // the upgrader has answered
	}
	c := &conn{ws: ws, wake: make(chan struct{}, 1), done: make(chan struct{}),
		src: fmt.Sprintf("%032x", s.nextSrc.Add(1))}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		ws.Close()
		return
	}
	s.conns[c] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()
	defer s.wg.Done()

	var writers sync.WaitGroup
	writers.Go(c.writer)
	s.read(c)
	c.kill()
	writers.Wait()
	for _, d := range c.joined {
		d.inbox <- docMsg{kind: 'u', conn: c}
	}
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
}

// read handles c's frames until it closes. Each frame is read into its
// own buffer, since an op's frame is queued to other connections as is.
func (s *Server) read(c *conn) {
	for {
		_, frame, err := c.ws.ReadMessage()
		if err != nil {
			return
		}
		var f wire.Fields
		if wire.Scan(frame, &f) != nil {
			continue
		}
		switch string(f.A) {
		case `"hs"`:
			c.send(fmt.Appendf(nil, `{"a":"hs","protocol":1,"protocolMinor":2,"id":"%s","type":"http://sharejs.org/types/JSONv0"}`, c.src))
		case `"pp"`:
			c.send([]byte(`{"a":"pp"}`))
		case `"s"`, `"f"`, `"op"`:
			d := s.doc(f.C, f.D)
			if d == nil {
				return // closing
			}
			kind := f.A[1]
			if kind == 's' {
				c.joined = append(c.joined, d)
			}
			if kind == 'o' && f.Src == nil {
				f.Src = []byte(`"` + c.src + `"`)
			}
			d.inbox <- docMsg{kind: kind, create: f.Create != nil, conn: c, frame: frame, src: f.Src, seq: f.Seq}
		}
	}
}

// doc returns the document c/d (JSON strings), starting its goroutine on
// first use; nil once the server is closing.
func (s *Server) doc(c, d []byte) *doc {
	key := string(c) + "\x00" + string(d)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	if x := s.docs[key]; x != nil {
		return x
	}
	x := &doc{c: append([]byte(nil), c...), d: append([]byte(nil), d...), inbox: make(chan docMsg, docInbox), subs: map[*conn]struct{}{}}
	s.docs[key] = x
	s.wg.Go(x.run)
	return x
}

// Close closes every connection, waits for their handlers, then stops the
// document goroutines and waits for them. The http.Server serving s must
// be shut down first or alongside, so no new connection arrives.
func (s *Server) Close(ctx context.Context) error {
	s.mu.Lock()
	s.closed = true
	for c := range s.conns {
		c.kill()
	}
	s.mu.Unlock()
	// Handlers finish, then nothing sends to a document any more.
	for {
		s.mu.Lock()
		n := len(s.conns)
		s.mu.Unlock()
		if n == 0 {
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
	s.mu.Lock()
	for _, d := range s.docs {
		close(d.inbox)
	}
	s.docs = nil
	s.mu.Unlock()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
