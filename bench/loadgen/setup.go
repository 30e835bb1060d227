package loadgen

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/url"
	"slices"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/coedit/coedit/bench/wire"
	"github.com/coedit/coedit/ot"
)

// setup owns a run's connections: it opens them before the load, and
// drains, checks and closes them after it.
type setup struct {
	g       *gen
	docs    []*doc
	clients []*client
	idle    []*websocket.Conn
	// idleDone gets one channel per idle connection, closed when its
	// reader (gen.drainIdle) returns.
	idleDone []chan struct{}
	// held and heldDone are the connections holding Hocuspocus's
	// documents open through scenario 5's baseline.
	held             []*websocket.Conn
	heldDone         []chan struct{}
	idleBytesPerConn float64
}

// readTimeout bounds each setup and check reply.
const readTimeout = 30 * time.Second

// open creates the documents, then connects and subscribes the editing
// clients and the idle connections, the server's memory sampled before and
// after the idle ones.
func (s *setup) open(ctx context.Context) error {
	o := s.g.o
	s.docs = make([]*doc, o.Docs)
	for i := range s.docs {
		id := fmt.Sprintf("%s-%d", o.Prefix, i)
		idJSON, _ := json.Marshal(id)
		s.docs[i] = &doc{idx: i, id: id, idJSON: idJSON, bySrc: map[string]*client{}, sent: map[sentKey]*sentOp{}}
	}
	hp := o.Protocol == ProtocolHocuspocus
	if !hp {
		// Hocuspocus makes a document when a client first opens it.
		if err := s.create(ctx); err != nil {
			return err
		}
	}
	for _, d := range s.docs {
		d.clients = make([]*client, o.Clients)
		for j := range d.clients {
			c := &client{g: s.g, doc: d, idx: j, done: make(chan struct{}),
				rng: rand.New(rand.NewPCG(o.Seed, uint64(len(s.clients))))}
			d.clients[j] = c
			s.clients = append(s.clients, c)
		}
	}
	err := parallel(ctx, len(s.clients), o.DialParallel, func(i int) error {
		c := s.clients[i]
		if hp {
			ws, err := s.g.joinHocuspocus(ctx, o.URLs[o.urlOf(c.doc.idx, c.idx)], c.doc)
			if err != nil {
				return err
			}
			c.ws = ws
			c.y = &yClient{id: uint64(c.idx) + 1, name: appendVarString(nil, c.doc.id)}
			return nil
		}
		ws, src, err := s.g.dial(ctx, s.g.docURL(o.URLs[o.urlOf(c.doc.idx, c.idx)], c.doc))
		if err != nil {
			return err
		}
		c.ws, c.src = ws, src
		c.srcJSON, _ = json.Marshal(src)
		c.prefix = fmt.Appendf(nil, `{"a":"op","c":%s,"d":%s,"src":%s,"v":`, s.g.collJSON, c.doc.idJSON, c.srcJSON)
		snap, err := s.g.subscribe(ws, c.doc)
		if err != nil {
			return err
		}
		if snap.Type == nil && !o.Relay {
			return fmt.Errorf("loadgen: document %s was not created", c.doc.id)
		}
		c.v, c.text = snap.V, *ot.NewRope(snap.Data)
		return nil
	})
	if err != nil {
		return err
	}
	if !hp {
		for _, d := range s.docs {
			for _, c := range d.clients {
				d.bySrc[c.src] = c
			}
		}
	}
	if o.Idle == 0 {
		return nil
	}
	if hp && o.Clients == 0 {
		// Hocuspocus makes a document when it is first opened and drops it
		// when its last connection closes; ShareDB and coedit have theirs
		// from create. So that the idle connections are measured alone,
		// as there, each document is held open by one more connection
		// from before the baseline.
		s.held, s.heldDone, err = s.follow(ctx, len(s.docs), func(i int) (string, *doc) { return o.URLs[0], s.docs[i] })
		if err != nil {
			return err
		}
	}
	before := s.g.settledRSS()
	s.idle, s.idleDone, err = s.follow(ctx, o.Idle, func(i int) (string, *doc) {
		d := s.docs[i%len(s.docs)]
		return o.URLs[o.urlOf(d.idx, i)], d
	})
	if err != nil {
		return err
	}
	if after := s.g.settledRSS(); before > 0 && after > 0 {
		s.idleBytesPerConn = float64(after-before) / float64(o.Idle)
	}
	return nil
}

// follow opens n connections that follow a document and never edit
// (openIdle), the i-th to at(i), each read by a drainIdle of its own. A
// connection that failed to open is nil in conns, and so is its done.
func (s *setup) follow(ctx context.Context, n int, at func(i int) (string, *doc)) (conns []*websocket.Conn, done []chan struct{}, err error) {
	conns, done = make([]*websocket.Conn, n), make([]chan struct{}, n)
	err = parallel(ctx, n, s.g.o.DialParallel, func(i int) error {
		url, d := at(i)
		ws, err := s.g.openIdle(ctx, url, d)
		if err != nil {
			return err
		}
		conns[i], done[i] = ws, make(chan struct{})
		go s.g.drainIdle(ws, done[i])
		return nil
	})
	return conns, done, err
}

// openIdle opens a connection to url that follows d and never edits.
func (g *gen) openIdle(ctx context.Context, url string, d *doc) (*websocket.Conn, error) {
	if g.o.Protocol == ProtocolHocuspocus {
		return g.joinHocuspocus(ctx, url, d)
	}
	ws, _, err := g.dial(ctx, g.docURL(url, d))
	if err != nil {
		return nil, err
	}
	if _, err := g.subscribe(ws, d); err != nil {
		ws.Close()
		return nil, err
	}
	return ws, nil
}

// settledRSS returns the server's resident memory after a second's rest,
// so that what the last connections allocated is counted; 0 without a PID.
func (g *gen) settledRSS() int64 {
	if g.o.PID == 0 {
		return 0
	}
	time.Sleep(time.Second)
	p, err := g.readServer(false)
	if err != nil {
		return 0
	}
	return p.rss
}

// create creates every document, with creates pipelined: from one
// connection to the one URL; with several (a cluster's nodes), from a
// connection per document that names it to the first URL (docURL), so
// that a cluster routing by document creates it on its node and no
// other node opens it; with Affinity, from one connection to each
// document's own URL. A document that exists already is used as it is.
func (s *setup) create(ctx context.Context) error {
	o := s.g.o
	if len(o.URLs) == 1 {
		return s.createOn(ctx, o.URLs[0], s.docs)
	}
	if !o.Affinity {
		return parallel(ctx, len(s.docs), o.DialParallel, func(i int) error {
			return s.createOn(ctx, s.g.docURL(o.URLs[0], s.docs[i]), s.docs[i:i+1])
		})
	}
	byURL := make([][]*doc, len(o.URLs))
	for _, d := range s.docs {
		u := o.urlOf(d.idx, 0)
		byURL[u] = append(byURL[u], d)
	}
	for u, docs := range byURL {
		if len(docs) > 0 {
			if err := s.createOn(ctx, o.URLs[u], docs); err != nil {
				return err
			}
		}
	}
	return nil
}

// createOn creates docs from one connection to url.
func (s *setup) createOn(ctx context.Context, url string, docs []*doc) error {
	ws, src, err := s.g.dial(ctx, url)
	if err != nil {
		return err
	}
	defer ws.Close()
	srcJSON, _ := json.Marshal(src)
	data, _ := json.Marshal(map[string]string{"type": typeURI, "data": initialText})
	errc := make(chan error, 1)
	go func() {
		for range docs {
			f, err := readUntil(ws, `"op"`, nil)
			if err == nil && f.Error != nil {
				if code := errorCode(f.Error); code != "ERR_DOC_ALREADY_CREATED" {
					err = fmt.Errorf("loadgen: create %s: %s", f.D, f.Error)
				}
			}
			if err != nil {
				errc <- err
				return
			}
		}
		errc <- nil
	}()
	for i, d := range docs {
		frame := fmt.Appendf(nil, `{"a":"op","c":%s,"d":%s,"src":%s,"v":null,"seq":%d,"create":%s}`, s.g.collJSON, d.idJSON, srcJSON, i+1, data)
		if err := ws.WriteMessage(websocket.TextMessage, frame); err != nil {
			return fmt.Errorf("loadgen: create %s: %w", d.id, err)
		}
	}
	return <-errc
}

// typeURI is ShareDB's text-unicode type, which every server under test
// must know.
const typeURI = "http://sharejs.org/types/text-unicode"

// docURL is base naming d in the query (doc=collection/id), as coedit's
// page names the one document a connection edits: a coedit cluster with
// --advertise passes each document's editors to one node by it, and
// servers that do not route ignore it.
func (g *gen) docURL(base string, d *doc) string {
	u, err := url.Parse(base)
	if err != nil {
		return base // dial reports it
	}
	q := u.Query()
	q.Set("doc", g.o.Collection+"/"+d.id)
	u.RawQuery = q.Encode()
	return u.String()
}

// dial connects to url and does ShareDB's handshake, returning the src the
// server issued.
func (g *gen) dial(ctx context.Context, url string) (*websocket.Conn, string, error) {
	ws, err := dialSocket(ctx, url)
	if err != nil {
		return nil, "", err
	}
	if err := ws.WriteMessage(websocket.TextMessage, []byte(`{"a":"hs","id":null,"protocol":1,"protocolMinor":2}`)); err != nil {
		ws.Close()
		return nil, "", fmt.Errorf("loadgen: %s: handshake: %w", url, err)
	}
	f, err := readUntil(ws, `"hs"`, nil)
	src, ok := wire.Str(f.ID)
	if err != nil || !ok || src == "" {
		ws.Close()
		return nil, "", fmt.Errorf("loadgen: %s: handshake: no id in the reply (%v)", url, err)
	}
	return ws, src, nil
}

// dialSocket opens a WebSocket to url, for either protocol.
func dialSocket(ctx context.Context, url string) (*websocket.Conn, error) {
	d := websocket.Dialer{HandshakeTimeout: readTimeout}
	ws, _, err := d.DialContext(ctx, url, nil)
	if err != nil {
		return nil, fmt.Errorf("loadgen: dial %s: %w", url, err)
	}
	return ws, nil
}

// subscribe subscribes ws to d and returns its snapshot.
func (g *gen) subscribe(ws *websocket.Conn, d *doc) (snapshot, error) {
	frame := fmt.Appendf(nil, `{"a":"s","c":%s,"d":%s,"v":null}`, g.collJSON, d.idJSON)
	if err := ws.WriteMessage(websocket.TextMessage, frame); err != nil {
		return snapshot{}, fmt.Errorf("loadgen: subscribe %s: %w", d.id, err)
	}
	f, err := readUntil(ws, `"s"`, d.idJSON)
	if err == nil && f.Error != nil {
		err = fmt.Errorf("server refused: %s", f.Error)
	}
	if err != nil {
		return snapshot{}, fmt.Errorf("loadgen: subscribe %s: %w", d.id, err)
	}
	var snap snapshot
	if err := json.Unmarshal(f.Data, &snap); err != nil {
		return snapshot{}, fmt.Errorf("loadgen: subscribe %s: snapshot %s: %w", d.id, f.Data, err)
	}
	return snap, nil
}

// readUntil reads frames until one whose action is the JSON string a (and
// whose document is docJSON, when given), skipping others such as
// ShareDB's init greeting. The returned fields point into a fresh frame.
func readUntil(ws *websocket.Conn, a string, docJSON []byte) (wire.Fields, error) {
	ws.SetReadDeadline(time.Now().Add(readTimeout))
	defer ws.SetReadDeadline(time.Time{})
	for {
		_, frame, err := ws.ReadMessage()
		if err != nil {
			return wire.Fields{}, err
		}
		var f wire.Fields
		if err := wire.Scan(frame, &f); err != nil {
			return wire.Fields{}, fmt.Errorf("%w: %.200s", err, frame)
		}
		if string(f.A) == a && (docJSON == nil || bytes.Equal(f.D, docJSON)) {
			return f, nil
		}
	}
}

// parallel calls f(0..n-1), at most k at a time, and returns the first
// error. It returns once every call has returned.
func parallel(ctx context.Context, n, k int, f func(i int) error) error {
	var (
		wg    sync.WaitGroup
		once  sync.Once
		first error
	)
	sem := make(chan struct{}, k)
	for i := range n {
		if ctx.Err() != nil {
			once.Do(func() { first = ctx.Err() })
			break
		}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			if err := f(i); err != nil {
				once.Do(func() { first = err })
			}
		})
	}
	wg.Wait()
	return first
}

// stuck returns a client whose op has waited longer than the ack timeout.
func (s *setup) stuck(now time.Time) *client {
	for _, c := range s.clients {
		c.mu.Lock()
		late := c.inflight != nil && !c.dead && now.Sub(c.inSent) > s.g.o.AckTimeout
		c.mu.Unlock()
		if late {
			return c
		}
	}
	return nil
}

// drain waits until no live client has an op in flight.
func (s *setup) drain(ctx context.Context) error {
	deadline := time.Now().Add(s.g.o.AckTimeout)
	for {
		busy := 0
		for _, c := range s.clients {
			c.mu.Lock()
			if (c.inflight != nil || c.resyncing) && !c.dead {
				busy++
			}
			c.mu.Unlock()
		}
		if busy == 0 {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			s.g.countError("ACK_TIMEOUT")
			return fmt.Errorf("%w: %d clients", errStuck, busy)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// drainFanout waits, after every op was acknowledged, until every op
// reached every other client of its document, for at most AckTimeout
// or 10 s (an op the server refused never arrives), and returns how many
// deliveries are still missing then.
func (s *setup) drainFanout(ctx context.Context) int {
	deadline := time.Now().Add(min(s.g.o.AckTimeout, 10*time.Second))
	for {
		pending := 0
		for _, d := range s.docs {
			d.mu.RLock()
			for _, e := range d.sent {
				pending += int(e.left.Load())
			}
			d.mu.RUnlock()
		}
		if pending == 0 || time.Now().After(deadline) || ctx.Err() != nil {
			return pending
		}
		time.Sleep(time.Millisecond)
	}
}

// close closes every connection and waits for their readers.
func (s *setup) close() {
	s.g.closing.Store(true)
	for _, c := range s.clients {
		if c.ws != nil {
			c.ws.Close()
		}
	}
	for _, ws := range slices.Concat(s.idle, s.held) {
		if ws != nil {
			ws.Close()
		}
	}
	for _, c := range s.clients {
		if c.reading {
			<-c.done
		}
	}
	for _, done := range slices.Concat(s.idleDone, s.heldDone) {
		if done != nil {
			<-done
		}
	}
}
