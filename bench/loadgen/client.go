package loadgen

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"github.com/coedit/coedit/bench/wire"
	"github.com/coedit/coedit/ot"
)

// doc is one document under load and the ops its clients have sent that
// other clients have yet to receive (for fan-out latency).
type doc struct {
	idx     int // in the run's documents
	id      string
	idJSON  []byte
	clients []*client
	// bySrc finds a broadcast's sender; written during setup only.
	bySrc map[string]*client
	// finalV and finalText are what the clients agreed on at the end
	// (converged).
	finalV    uint64
	finalText string

	// mu guards the map; entries are looked up under the read lock, so
	// the clients of a hot document do not queue on one mutex for every
	// broadcast they receive.
	mu   sync.RWMutex
	sent map[sentKey]*sentOp
}

type sentKey struct {
	client int // index in doc.clients
	seq    uint64
}

// sentOp is an op on its way to the document's other clients: when it
// was submitted (or fell due), and how many have yet to receive it.
type sentOp struct {
	start time.Time
	left  atomic.Int32
}

// client is one editing connection: a ShareDB client with one op in flight
// at most, keeping its copy of the document's text the way the sharedb
// client does (its own op applied at once; a remote op transformed against
// the op in flight).
//
// The reader goroutine (read) and, in open loop, the scheduler goroutine
// (schedule) share everything below mu, and write to the socket only
// while holding it, so there is one writer at a time.
type client struct {
	g       *gen
	doc     *doc
	idx     int // in doc.clients
	ws      *websocket.Conn
	src     string
	srcJSON []byte
	prefix  []byte        // an op frame up to the version: {"a":"op","c":…,"d":…,"src":…,"v":
	done    chan struct{} // closed when read returns
	reading bool          // read was started (by drive)
	y       *yClient      // with Options.Protocol hocuspocus: its Yjs state; nil for ShareDB

	mu        sync.Mutex
	v         uint64  // the version the text is at
	text      ot.Rope // this client's copy; with Options.Relay, its own edits only
	seq       uint64
	inflight  ot.Op // nil when nothing is in flight
	inSeq     uint64
	inStart   time.Time   // when the op in flight was submitted or fell due
	inSent    time.Time   // when it was written to the socket
	due       []time.Time // open loop: ops that fell due while one was in flight
	resyncing bool        // the copy was found broken: a fetch is out, or waits for the op in flight
	// fetchDue is set while resyncing when the fetch waits for the op in
	// flight to be answered (resync).
	fetchDue bool
	// held are the frames of other clients' ops that came while the
	// fetch was out, for after its snapshot.
	held [][]byte
	dead bool // the connection failed
	rng  *rand.Rand
	buf  []byte
}

// read handles the server's frames until the connection ends.
func (c *client) read() {
	defer close(c.done)
	var buf bytes.Buffer
	for {
		_, r, err := c.ws.NextReader()
		if err == nil {
			buf.Reset()
			_, err = buf.ReadFrom(r)
		}
		if err != nil {
			c.mu.Lock()
			c.dead = true
			c.mu.Unlock()
			if !c.g.closing.Load() {
				c.g.countError("DISCONNECT")
			}
			return
		}
		c.handle(buf.Bytes(), time.Now())
	}
}

// handle processes one frame from the server.
func (c *client) handle(frame []byte, now time.Time) {
	if c.y != nil {
		c.handleYjs(frame, now)
		return
	}
	var f wire.Fields
	if wire.Scan(frame, &f) != nil {
		c.g.countError("BAD_FRAME")
		return
	}
	switch string(f.A) {
	case `"op"`:
		c.handleOp(&f, frame, now)
	case `"f"`:
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.resyncing && !c.fetchDue && f.Error != nil {
			// The fetch was refused: the client edits no more, and the
			// run's errors say why.
			c.g.countError(errorCode(f.Error))
			return
		}
		if c.resyncing && !c.fetchDue && f.Data != nil {
			if err := c.setSnapshot(f.Data); err != nil {
				c.g.countError("BAD_SNAPSHOT")
				return
			}
			c.resyncing = false
			// The ops that came while the fetch was out, on top of the
			// snapshot: those it holds are passed over by version. A gap
			// among them sends another fetch, whose snapshot holds the
			// rest (they were sent before it).
			held := c.held
			c.held = nil
			for _, b := range held {
				var hf wire.Fields
				if c.resyncing || wire.Scan(b, &hf) != nil {
					break
				}
				c.remote(&hf)
			}
			c.next()
		}
	}
}

func (c *client) handleOp(f *wire.Fields, frame []byte, now time.Time) {
	seq, _ := wire.Uint(f.Seq)
	own := bytes.Equal(f.Src, c.srcJSON)
	if !own && f.Error == nil {
		c.g.fanout(c.doc, c.idx, f.Src, seq, now)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if f.Error != nil {
		c.g.countError(errorCode(f.Error))
		if own && c.inflight != nil && seq == c.inSeq {
			// The op was refused: the copy still has it applied.
			c.inflight = nil
			c.resync()
			c.sendDueFetch()
		}
		return
	}
	if own && c.inflight != nil && seq == c.inSeq {
		c.g.acked(now.Sub(c.inStart))
		c.inflight = nil
		c.sendDueFetch()
		if !c.g.o.Relay && !c.resyncing {
			if v, ok := wire.Uint(f.V); !ok || v != c.v {
				c.g.countError("ACK_VERSION")
				c.resync()
			} else {
				c.v++
			}
		}
		c.next()
		return
	}
	if own || c.g.o.Relay {
		return
	}
	if c.resyncing {
		if !c.fetchDue {
			// The fetch is out, and its snapshot may be older than this
			// op: a server may read it before committing the op, and
			// send the op first. The op waits for the snapshot.
			c.held = append(c.held, bytes.Clone(frame))
		}
		return
	}
	c.remote(f)
}

// remote applies another client's op to the copy if it is at the copy's
// version, passes it over if it is older, and resyncs on a gap or an op
// that does not apply. c.mu is held.
func (c *client) remote(f *wire.Fields) {
	v, ok := wire.Uint(f.V)
	switch {
	case !ok:
		c.g.countError("BAD_FRAME")
		return
	case v < c.v:
		return // already applied: a duplicate delivery
	case v > c.v:
		c.g.countError("GAP")
		c.resync()
		return
	}
	if err := c.applyRemote(f); err != nil {
		c.g.countError("BAD_OP")
		c.resync()
		return
	}
	c.v++
}

// applyRemote applies another client's op at the copy's version: the op
// in flight is transformed over it (winning ties, as the server will
// transform it) and the remote op over the one in flight.
func (c *client) applyRemote(f *wire.Fields) error {
	switch {
	case f.Create != nil:
		var cr struct{ Data string }
		if err := json.Unmarshal(f.Create, &cr); err != nil {
			return err
		}
		c.text = *ot.NewRope(cr.Data)
		return nil
	case f.Del != nil:
		c.text = ot.Rope{}
		return nil
	}
	op, err := ot.Decode(f.Op)
	if err != nil {
		return err
	}
	if c.inflight != nil {
		mine, err := ot.Transform(c.inflight, op, ot.Left)
		if err != nil {
			return err
		}
		if op, err = ot.Transform(op, c.inflight, ot.Right); err != nil {
			return err
		}
		c.inflight = mine
	}
	return c.text.Apply(op)
}

// next submits the client's next op if one is due: at once in closed loop,
// or the oldest op that fell due in open loop. c.mu is held.
func (c *client) next() {
	if c.inflight != nil || c.resyncing || c.dead || c.g.stopping.Load() {
		return
	}
	if c.g.o.Rate == 0 {
		c.submit(time.Now())
		return
	}
	if len(c.due) > 0 {
		start := c.due[0]
		c.due = c.due[1:]
		c.submit(start)
	}
}

// submit sends a random edit of the copy, counting its latency from start.
// c.mu is held and nothing is in flight.
func (c *client) submit(start time.Time) {
	if c.y != nil {
		c.submitYjs(start)
		return
	}
	op := randomEdit(c.rng, c.text.Len())
	if err := c.text.Apply(op); err != nil {
		panic(fmt.Sprintf("loadgen: a random edit does not apply to its own document: %v", err)) // a bug in randomEdit
	}
	c.seq++
	c.inflight, c.inSeq, c.inStart = op, c.seq, start
	c.doc.record(c.idx, c.seq, start)
	b := append(c.buf[:0], c.prefix...)
	b = strconv.AppendUint(b, c.v, 10)
	b = append(b, `,"seq":`...)
	b = strconv.AppendUint(b, c.seq, 10)
	b = append(b, `,"op":`...)
	js, _ := op.MarshalJSON()
	b = append(b, js...)
	b = append(b, '}')
	c.buf = b
	c.inSent = time.Now()
	c.write(b)
}

// resync asks for a fresh copy of the document after finding its own
// broken (a gap in versions, an op that does not apply, a refused op).
// c.mu is held.
//
// With an op in flight the fetch waits for the op's answer: a snapshot
// fetched meanwhile may or may not hold the op (the server may answer the
// fetch before it commits the op), and the copy could not tell which.
// Once the op is acknowledged its commit is in every later snapshot. The
// ops that arrive before the fetch is sent are passed over (its snapshot
// holds them); those that arrive while it is out wait for the snapshot
// (held).
func (c *client) resync() {
	if c.resyncing {
		return
	}
	c.resyncing = true
	if c.inflight != nil {
		c.fetchDue = true
		return
	}
	c.fetch()
}

// sendDueFetch sends the fetch a resync left waiting for the op in flight,
// which has just been answered. c.mu is held.
func (c *client) sendDueFetch() {
	if c.fetchDue {
		c.fetchDue = false
		c.fetch()
	}
}

// fetch asks for the document's snapshot. c.mu is held.
func (c *client) fetch() {
	c.write(fetchFrame(c.g.collJSON, c.doc.idJSON))
}

// fetchFrame asks for the latest snapshot of a document, its collection
// and id given as JSON strings.
func fetchFrame(collJSON, idJSON []byte) []byte {
	return fmt.Appendf(nil, `{"a":"f","c":%s,"d":%s,"v":null}`, collJSON, idJSON)
}

// write sends a frame (binary to Hocuspocus, text to ShareDB); c.mu is
// held. A failed write ends the connection, which the reader then reports.
func (c *client) write(b []byte) {
	t := websocket.TextMessage
	if c.y != nil {
		t = websocket.BinaryMessage
	}
	c.ws.SetWriteDeadline(time.Now().Add(c.g.o.AckTimeout))
	if err := c.ws.WriteMessage(t, b); err != nil {
		c.ws.Close()
	}
}

// setSnapshot replaces the copy with a snapshot {v, data, type}.
func (c *client) setSnapshot(raw []byte) error {
	var s snapshot
	if err := json.Unmarshal(raw, &s); err != nil {
		return err
	}
	c.v = s.V
	c.text = *ot.NewRope(s.Data)
	return nil
}

// snapshot is a document's state in a subscribe or fetch reply.
type snapshot struct {
	V    uint64  `json:"v"`
	Data string  `json:"data"`
	Type *string `json:"type"`
}

// record notes an op on its way to the document's other clients.
func (d *doc) record(client int, seq uint64, start time.Time) {
	if len(d.clients) < 2 {
		return
	}
	e := &sentOp{start: start}
	e.left.Store(int32(len(d.clients) - 1))
	d.mu.Lock()
	d.sent[sentKey{client, seq}] = e
	d.mu.Unlock()
}

// errorCode returns the code of an error object {"code":…,"message":…}.
func errorCode(raw []byte) string {
	var e struct{ Code string }
	if json.Unmarshal(raw, &e) != nil || e.Code == "" {
		return "UNKNOWN"
	}
	return e.Code
}

// drainIdle reads and discards an idle connection's frames until it ends.
func (g *gen) drainIdle(ws *websocket.Conn, done chan<- struct{}) {
	defer close(done)
	for {
		_, r, err := ws.NextReader()
		if err == nil {
			_, err = io.Copy(io.Discard, r)
		}
		if err != nil {
			if !g.closing.Load() {
				g.countError("IDLE_DISCONNECT")
			}
			return
		}
	}
}
