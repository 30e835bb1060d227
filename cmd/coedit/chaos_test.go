package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/redis/go-redis/v9"

	"github.com/coedit/coedit/internal/redistest"
	"github.com/coedit/coedit/ot"
)

// The chaos test: three `coedit serve --redis` nodes over one redis-server
// with appendfsync always, ShareDB-protocol clients editing a few
// documents over all nodes (one op in flight each, resent with its src and
// seq after every reconnect), while nodes are killed with SIGKILL and
// restarted, and Redis is killed, shut down or paused. Afterwards every
// acknowledged op is in every node's log exactly once at its version, no
// (src, seq) is there twice, the logs are contiguous and replay to the
// snapshots, and every node and client holds the same text.
//
//	go test ./cmd/coedit -run TestChaosCluster -chaos.duration 2m -chaos.seeds 5 -chaos.seed 100
var (
	chaosDuration  = flag.Duration("chaos.duration", 12*time.Second, "chaos test: how long faults are injected")
	chaosSeed      = flag.Uint64("chaos.seed", 0, "chaos test: first seed (0: from the clock)")
	chaosSeeds     = flag.Int("chaos.seeds", 1, "chaos test: how many consecutive seeds to run")
	chaosDocs      = flag.Int("chaos.docs", 3, "chaos test: documents")
	chaosClients   = flag.Int("chaos.clients", 3, "chaos test: clients per document")
	chaosAdvertise = flag.String("chaos.advertise", "seed", "chaos test: nodes with --advertise: on, off, or seed (odd seeds on)")
	chaosFaults    = flag.String("chaos.faults", "nodekill,rediskill,redisshutdown,redispause", "chaos test: comma-separated faults to inject (nodekill, nodestop, rediskill, redisshutdown, redispause)")
	chaosOut       = flag.String("chaos.out", filepath.Join(os.TempDir(), "coedit-chaos"), "chaos test: directory for the logs of each run (kept for failing runs)")
	chaosKeep      = flag.Bool("chaos.keep", false, "chaos test: keep the logs of passing runs too")
	chaosSync      = flag.String("chaos.sync", "always", "chaos test: the nodes' --sync")
	chaosMaxPause  = flag.Duration("chaos.maxpause", 2500*time.Millisecond, "chaos test: longest SIGSTOP of Redis (at least 1 s)")
	chaosHTTPW     = flag.Int("chaos.httpwriters", 1, "chaos test: HTTP API writers per document (src and seq, resent on failure)")
	chaosMaxDown   = flag.Duration("chaos.maxdown", 2*time.Second, "chaos test: longest time Redis stays down after a kill or SHUTDOWN")
	chaosNodeDown  = flag.Duration("chaos.maxnodedown", 2600*time.Millisecond, "chaos test: longest time a killed node stays down")
	chaosPark      = flag.Duration("chaos.park", 0, "chaos test: kill node 2 at the start and keep it down this long (0: no)")
	chaosDrop      = flag.Int("chaos.drop", 300, "chaos test: a client with an op in flight drops its connection once in this many ticks (0: never)")
)

const chaosColl = "chaos"

func TestChaosCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("chaos test skipped in -short mode")
	}
	seed := *chaosSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano()%100000) + 1
	}
	for i := range *chaosSeeds {
		s := seed + uint64(i)
		t.Run(fmt.Sprintf("seed=%d", s), func(t *testing.T) { chaosOnce(t, s) })
	}
}

// ---- the run and its processes ----

type chaosRun struct {
	t     *testing.T
	seed  uint64
	dir   string
	start time.Time
	rs    *redistest.Server
	nodes []*chaosNode

	evMu   sync.Mutex
	events *os.File

	anomMu    sync.Mutex
	anomalies []string

	redisDown atomic.Bool // killed or paused: for the event log only
}

func (r *chaosRun) logf(format string, args ...any) {
	r.evMu.Lock()
	defer r.evMu.Unlock()
	fmt.Fprintf(r.events, "%8.3fs %s\n", time.Since(r.start).Seconds(), fmt.Sprintf(format, args...))
}

// anomaly records something a correct cluster never does (the test fails).
func (r *chaosRun) anomaly(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	r.logf("ANOMALY %s", msg)
	r.anomMu.Lock()
	r.anomalies = append(r.anomalies, fmt.Sprintf("%.3fs %s", time.Since(r.start).Seconds(), msg))
	r.anomMu.Unlock()
}

type chaosNode struct {
	run     *chaosRun
	i       int
	addr    string
	dataDir string
	args    []string
	logPath string

	mu      sync.Mutex
	cmd     *exec.Cmd
	exited  chan struct{}
	up      atomic.Bool
	stopped atomic.Bool
	starts  int
}

// signal sends sig to the running node; false if it does not run.
func (n *chaosNode) signal(sig syscall.Signal) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd == nil {
		return false
	}
	return n.cmd.Process.Signal(sig) == nil
}

func (n *chaosNode) url() string { return "http://" + n.addr }

// start runs the node and waits until it serves.
func (n *chaosNode) start() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.starts++
	f, err := os.OpenFile(n.logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	fmt.Fprintf(f, "==== start %d at %.3fs ====\n", n.starts, time.Since(n.run.start).Seconds())
	cmd := exec.Command(coeditBin, n.args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		f.Close()
		return err
	}
	cmd.Stdout = io.Discard
	if err := cmd.Start(); err != nil {
		f.Close()
		return err
	}
	serving := make(chan struct{})
	exited := make(chan struct{})
	scanned := make(chan struct{})
	go func() {
		defer close(scanned)
		defer f.Close()
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 4<<20)
		once := false
		for sc.Scan() {
			line := sc.Text()
			fmt.Fprintln(f, line)
			if !once && strings.Contains(line, `msg="coedit serving"`) {
				once = true
				close(serving)
			}
		}
	}()
	go func() {
		<-scanned
		cmd.Wait()
		close(exited)
	}()
	select {
	case <-serving:
	case <-exited:
		return fmt.Errorf("node %d exited at start: %v", n.i, cmd.ProcessState)
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		<-exited
		return fmt.Errorf("node %d did not serve within 30 s", n.i)
	}
	n.cmd, n.exited = cmd, exited
	n.up.Store(true)
	return nil
}

// kill ends the node with SIGKILL.
func (n *chaosNode) kill() {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.up.Store(false)
	if n.cmd == nil {
		return
	}
	n.cmd.Process.Kill()
	<-n.exited
	n.cmd = nil
}

// alive reports whether the node's process still runs (it may have exited
// by itself, which is a finding).
func (n *chaosNode) alive() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd == nil {
		return false
	}
	select {
	case <-n.exited:
		return false
	default:
		return true
	}
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

var chaosHTTP = &http.Client{Timeout: 15 * time.Second}

func chaosGet(url string) (int, []byte, error) {
	resp, err := chaosHTTP.Get(url)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// ---- the client ----

type chaosAck struct {
	src string
	seq uint64
	v   uint64
}

type chaosClient struct {
	run *chaosRun
	id  int
	doc string
	rng *rand.Rand

	mu       sync.Mutex
	src      string
	seq      uint64
	v        uint64
	text     string
	hasSnap  bool
	inflight *chaosPending
	acks     []chaosAck
	// seen is what the client applied at each version: "src/seq" of each op
	// it was sent or had acknowledged.
	seen       map[uint64]string
	node       int
	lastAckAt  time.Time
	reconnects int
	resends    int
	closeCodes map[int]int
	errCodes   map[string]int
	dropped    int
	quick      bool // reconnect at once, to the same node when it is up

	stopGen atomic.Bool
	stop    chan struct{}
	done    chan struct{}
}

type chaosPending struct {
	op     ot.Op
	seq    uint64
	sentAt time.Time
	sends  int
	firstV uint64
}

type chaosMsg struct {
	A    string          `json:"a"`
	C    string          `json:"c"`
	D    string          `json:"d"`
	Src  string          `json:"src"`
	Seq  uint64          `json:"seq"`
	V    *uint64         `json:"v"`
	Op   json.RawMessage `json:"op"`
	Cr   json.RawMessage `json:"create"`
	Del  json.RawMessage `json:"del"`
	Data *struct {
		V    uint64  `json:"v"`
		Data string  `json:"data"`
		Type *string `json:"type"`
	} `json:"data"`
	Error *struct{ Code, Message string } `json:"error"`
	ID    string                          `json:"id"`
}

func (c *chaosClient) key(src string, seq uint64) string { return fmt.Sprintf("%s/%d", src, seq) }

// loop connects, serves the connection until it breaks, and reconnects,
// until stop is closed.
func (c *chaosClient) loop() {
	defer close(c.done)
	backoff := 20 * time.Millisecond
	for {
		select {
		case <-c.stop:
			return
		default:
		}
		ws, err := c.dial()
		if err != nil {
			select {
			case <-c.stop:
				return
			case <-time.After(backoff + time.Duration(c.rng.IntN(50))*time.Millisecond):
			}
			backoff = min(backoff*2, 500*time.Millisecond)
			continue
		}
		backoff = 20 * time.Millisecond
		c.serve(ws)
		ws.Close()
		c.mu.Lock()
		quick := c.quick
		c.mu.Unlock()
		if quick {
			continue
		}
		select {
		case <-c.stop:
			return
		case <-time.After(time.Duration(c.rng.IntN(150)) * time.Millisecond):
		}
	}
}

// dial picks a live node and does the handshake, reclaiming c.src.
func (c *chaosClient) dial() (*websocket.Conn, error) {
	var up []*chaosNode
	for _, n := range c.run.nodes {
		if n.up.Load() {
			up = append(up, n)
		}
	}
	if len(up) == 0 {
		return nil, errors.New("no node up")
	}
	n := up[c.rng.IntN(len(up))]
	c.mu.Lock()
	if c.quick {
		c.quick = false
		if c.rng.IntN(2) == 0 && c.run.nodes[c.node].up.Load() {
			n = c.run.nodes[c.node]
		}
	}
	c.mu.Unlock()
	d := websocket.Dialer{HandshakeTimeout: 5 * time.Second}
	ws, _, err := d.Dial("ws://"+n.addr+"/ws?doc="+chaosColl+"/"+c.doc, nil)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	src := c.src
	c.mu.Unlock()
	idJSON := "null"
	if src != "" {
		idJSON = fmt.Sprintf("%q", src)
	}
	ws.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if err := ws.WriteMessage(websocket.TextMessage, []byte(`{"a":"hs","id":`+idJSON+`,"protocol":1,"protocolMinor":2}`)); err != nil {
		ws.Close()
		return nil, err
	}
	ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	var hs chaosMsg
	for {
		_, data, err := ws.ReadMessage()
		if err != nil {
			ws.Close()
			return nil, err
		}
		if json.Unmarshal(data, &hs) == nil && hs.A == "hs" {
			break
		}
	}
	ws.SetReadDeadline(time.Time{})
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.src == "" {
		c.src = hs.ID
	} else if hs.ID != c.src {
		c.run.anomaly("client %d: reclaimed src %s at node %d, got %s", c.id, c.src, n.i, hs.ID)
		ws.Close()
		return nil, errors.New("src not reclaimed")
	}
	c.node = n.i
	c.reconnects++
	return ws, nil
}

type chaosFrame struct {
	data []byte
	err  error
}

func (c *chaosClient) send(ws *websocket.Conn, v any) error {
	var b []byte
	switch x := v.(type) {
	case string:
		b = []byte(x)
	default:
		var err error
		if b, err = json.Marshal(v); err != nil {
			panic(err)
		}
	}
	ws.SetWriteDeadline(time.Now().Add(5 * time.Second))
	return ws.WriteMessage(websocket.TextMessage, b)
}

func (c *chaosClient) opFrame(p *chaosPending, withSrc bool) string {
	opJSON, err := p.op.MarshalJSON()
	if err != nil {
		panic(err)
	}
	src := ""
	if withSrc {
		src = fmt.Sprintf(`"src":%q,`, c.src)
	}
	return fmt.Sprintf(`{"a":"op","c":%q,"d":%q,"v":%d,%s"seq":%d,"op":%s}`, chaosColl, c.doc, c.v, src, p.seq, opJSON)
}

// serve runs one connection: resend the op in flight, subscribe, then
// apply what comes and make new ops, one in flight at a time.
func (c *chaosClient) serve(ws *websocket.Conn) {
	frames := make(chan chaosFrame, 256)
	go func() {
		defer close(frames)
		for {
			_, data, err := ws.ReadMessage()
			frames <- chaosFrame{data, err}
			if err != nil {
				return
			}
		}
	}()
	defer func() {
		ws.Close()
		for range frames { // drain until the reader ends
		}
	}()

	c.mu.Lock()
	var first []string
	if c.inflight != nil {
		c.inflight.sends++
		c.resends++
		c.inflight.sentAt = time.Now()
		first = append(first, c.opFrame(c.inflight, true))
		c.run.logf("client %d (%s) node %d: resend seq %d at v%d", c.id, c.src, c.node, c.inflight.seq, c.v)
	}
	if c.hasSnap {
		first = append(first, fmt.Sprintf(`{"a":"s","c":%q,"d":%q,"v":%d}`, chaosColl, c.doc, c.v))
	} else {
		first = append(first, fmt.Sprintf(`{"a":"s","c":%q,"d":%q,"v":null}`, chaosColl, c.doc))
	}
	c.mu.Unlock()
	for _, f := range first {
		if err := c.send(ws, f); err != nil {
			return
		}
	}
	tick := time.NewTicker(time.Duration(8+c.rng.IntN(25)) * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-c.stop:
			return
		case f := <-frames:
			if f.err != nil {
				var ce *websocket.CloseError
				if errors.As(f.err, &ce) {
					c.mu.Lock()
					c.closeCodes[ce.Code]++
					c.mu.Unlock()
					if ce.Code == 4002 || ce.Code == 1011 {
						c.run.logf("client %d: closed %d %q", c.id, ce.Code, ce.Text)
					}
					if ce.Code == 4002 {
						c.run.anomaly("client %d: closed 4002 (history replaced) with appendfsync always: %q", c.id, ce.Text)
					}
				} else {
					c.mu.Lock()
					c.closeCodes[0]++
					c.mu.Unlock()
				}
				return
			}
			if !c.handle(ws, f.data) {
				return
			}
		case <-tick.C:
			if *chaosDrop > 0 && c.rng.IntN(*chaosDrop) == 0 {
				c.mu.Lock()
				drop := c.inflight != nil
				if drop {
					c.dropped++
					c.run.logf("client %d (%s) node %d: drops its connection with seq %d in flight", c.id, c.src, c.node, c.inflight.seq)
					c.quick = true
				}
				c.mu.Unlock()
				if drop {
					ws.UnderlyingConn().Close()
					return
				}
			}
			if !c.maybeSubmit(ws) {
				return
			}
		}
	}
}

// handle processes one frame; false means drop the connection.
func (c *chaosClient) handle(ws *websocket.Conn, data []byte) bool {
	var m chaosMsg
	if err := json.Unmarshal(data, &m); err != nil {
		c.run.anomaly("client %d: undecodable frame %q: %v", c.id, data, err)
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	switch m.A {
	case "s":
		if m.Error != nil {
			c.errCodes["s:"+m.Error.Code]++
			c.run.logf("client %d node %d: subscribe error %s: %s", c.id, c.node, m.Error.Code, m.Error.Message)
			if m.Error.Code == "ERR_HISTORY_REPLACED" {
				c.run.anomaly("client %d: subscribe refused ERR_HISTORY_REPLACED with appendfsync always", c.id)
				if c.inflight == nil {
					c.hasSnap = false
				}
			}
			return false
		}
		if m.Data != nil {
			if c.hasSnap {
				c.run.anomaly("client %d: snapshot reply to a versioned subscribe", c.id)
				return false
			}
			if m.Data.Type == nil {
				c.run.anomaly("client %d: document %s has no type at v%d", c.id, c.doc, m.Data.V)
				return false
			}
			c.text, c.v, c.hasSnap = m.Data.Data, m.Data.V, true
		}
		return true
	case "op":
	case "pp", "p", "pr", "ps", "pu", "hs":
		return true
	default:
		c.run.anomaly("client %d: unexpected message %s", c.id, data)
		return true
	}
	if m.D != c.doc || m.C != chaosColl {
		c.run.anomaly("client %d: op of another document: %s", c.id, data)
		return true
	}
	if m.Error != nil {
		c.errCodes["op:"+m.Error.Code]++
		if c.inflight != nil && m.Seq == c.inflight.seq {
			// A rejected op: a ShareDB client rolls back. Over WebSocket no
			// error is expected here (the server closes 1012 for outages).
			c.run.anomaly("client %d (%s): op seq %d refused %s: %s", c.id, c.src, m.Seq, m.Error.Code, m.Error.Message)
			c.inflight = nil
			c.hasSnap = false // fetch anew
			return false
		}
		c.run.anomaly("client %d: error for no op in flight: %s", c.id, data)
		return false
	}
	if m.V == nil {
		c.run.anomaly("client %d: op without v: %s", c.id, data)
		return false
	}
	v := *m.V
	if !c.hasSnap {
		return true // before the snapshot arrives: the snapshot covers it
	}
	own := m.Src == c.src
	if own && c.inflight != nil && m.Seq == c.inflight.seq {
		if v != c.v {
			if v < c.v {
				c.run.anomaly("client %d (%s): seq %d acknowledged at v%d, below the client's v%d (ops already applied there: %q)", c.id, c.src, m.Seq, v, c.v, c.seen[v])
			} else {
				c.run.logf("client %d: ack of seq %d at v%d past the client's v%d: re-subscribe", c.id, m.Seq, v, c.v)
			}
			return false
		}
		c.acks = append(c.acks, chaosAck{c.src, m.Seq, v})
		c.seen[v] = c.key(c.src, m.Seq)
		c.v = v + 1
		c.inflight = nil
		c.lastAckAt = time.Now()
		return true
	}
	if v < c.v {
		if prev, ok := c.seen[v]; ok && m.Src != "" && prev != c.key(m.Src, m.Seq) {
			c.run.anomaly("client %d: v%d was %s, now sent as %s", c.id, v, prev, c.key(m.Src, m.Seq))
		}
		return true // a duplicate delivery
	}
	if v > c.v {
		c.run.logf("client %d node %d: op at v%d past the client's v%d: re-subscribe", c.id, c.node, v, c.v)
		return false
	}
	if own {
		if m.Op == nil {
			// An ack of an op that is not in flight: a duplicate ack of an op
			// already applied would have v < c.v.
			c.run.anomaly("client %d (%s): ack of seq %d at v%d with seq %v in flight", c.id, c.src, m.Seq, v, c.inflightSeq())
			return false
		}
		c.run.anomaly("client %d (%s): own op seq %d delivered at v%d, in flight %v (an op committed twice?)", c.id, c.src, m.Seq, v, c.inflightSeq())
	}
	if m.Cr != nil || m.Del != nil {
		c.run.anomaly("client %d: create/del at v%d: %s", c.id, v, data)
		return false
	}
	op, err := ot.Decode(m.Op)
	if err != nil {
		c.run.anomaly("client %d: undecodable op at v%d: %v", c.id, v, err)
		return false
	}
	if c.inflight != nil {
		mine, err1 := ot.Transform(c.inflight.op, op, ot.Left)
		theirs, err2 := ot.Transform(op, c.inflight.op, ot.Right)
		if err1 != nil || err2 != nil {
			c.run.anomaly("client %d: transform at v%d: %v %v", c.id, v, err1, err2)
			return false
		}
		c.inflight.op, op = mine, theirs
	}
	text, err := ot.Apply(c.text, op)
	if err != nil {
		c.run.anomaly("client %d: op at v%d does not apply to the client's copy: %v", c.id, v, err)
		c.hasSnap, c.inflight = false, nil
		return false
	}
	c.text = text
	c.seen[v] = c.key(m.Src, m.Seq)
	c.v = v + 1
	return true
}

func (c *chaosClient) inflightSeq() any {
	if c.inflight == nil {
		return nil
	}
	return c.inflight.seq
}

var chaosAlphabet = []rune("abcdefghijklmnopqrstuvwxyzé中💃")

// randomOp is a small insert or delete (with its text) on runes.
func chaosRandomOp(rng *rand.Rand, runes []rune) ot.Op {
	var op ot.Op
	if len(runes) > 0 && (rng.IntN(3) == 0 || len(runes) > 300) {
		pos := rng.IntN(len(runes))
		k := 1 + rng.IntN(min(3, len(runes)-pos))
		if pos > 0 {
			op = append(op, ot.Component{Kind: ot.KindSkip, N: pos})
		}
		return append(op, ot.Component{Kind: ot.KindDelete, N: k, Text: string(runes[pos : pos+k])})
	}
	pos := rng.IntN(len(runes) + 1)
	k := 1 + rng.IntN(3)
	ins := make([]rune, k)
	for i := range ins {
		ins[i] = chaosAlphabet[rng.IntN(len(chaosAlphabet))]
	}
	if pos > 0 {
		op = append(op, ot.Component{Kind: ot.KindSkip, N: pos})
	}
	return append(op, ot.Component{Kind: ot.KindInsert, N: k, Text: string(ins)})
}

// maybeSubmit makes and sends a new op when none is in flight.
func (c *chaosClient) maybeSubmit(ws *websocket.Conn) bool {
	c.mu.Lock()
	if c.inflight != nil {
		if time.Since(c.inflight.sentAt) > 20*time.Second {
			c.run.anomaly("client %d (%s): seq %d unacknowledged for 20 s on node %d (sent %d times)", c.id, c.src, c.inflight.seq, c.node, c.inflight.sends)
			c.inflight.sentAt = time.Now()
			c.mu.Unlock()
			return false
		}
		c.mu.Unlock()
		return true
	}
	if !c.hasSnap || c.stopGen.Load() || c.rng.IntN(3) != 0 {
		c.mu.Unlock()
		return true
	}
	op := chaosRandomOp(c.rng, []rune(c.text))
	text, err := ot.Apply(c.text, op)
	if err != nil {
		c.run.anomaly("client %d: own op does not apply: %v", c.id, err)
		c.mu.Unlock()
		return true
	}
	c.text = text
	c.seq++
	c.inflight = &chaosPending{op: op, seq: c.seq, sentAt: time.Now(), sends: 1, firstV: c.v}
	frame := c.opFrame(c.inflight, false)
	c.mu.Unlock()
	return c.send(ws, frame) == nil
}

// ---- the HTTP API writer ----

// chaosWriter submits over the HTTP API with its own src and seq, one op
// at a time, made on a snapshot it fetched; a failed POST (connection
// error, 5xx) is sent again, same body, to any node, until it is answered.
type chaosWriter struct {
	run  *chaosRun
	id   int
	doc  string
	rng  *rand.Rand
	src  string
	seq  uint64
	busy atomic.Bool

	mu      sync.Mutex
	acks    []chaosAck
	retries int
	dups    int

	stopGen atomic.Bool
	done    chan struct{}
}

func (r *chaosRun) upNode(rng *rand.Rand) *chaosNode {
	var up []*chaosNode
	for _, n := range r.nodes {
		if n.up.Load() {
			up = append(up, n)
		}
	}
	if len(up) == 0 {
		return nil
	}
	return up[rng.IntN(len(up))]
}

func (w *chaosWriter) loop() {
	defer close(w.done)
	for !w.stopGen.Load() {
		time.Sleep(time.Duration(20+w.rng.IntN(80)) * time.Millisecond)
		n := w.run.upNode(w.rng)
		if n == nil {
			continue
		}
		status, body, err := chaosGet(n.url() + "/api/docs/" + chaosColl + "/" + w.doc)
		var snap struct {
			V    uint64 `json:"v"`
			Data string `json:"data"`
		}
		if err != nil || status != 200 || json.Unmarshal(body, &snap) != nil {
			continue
		}
		op := chaosRandomOp(w.rng, []rune(snap.Data))
		opJSON, _ := op.MarshalJSON()
		w.busy.Store(true)
		w.seq++
		req := fmt.Sprintf(`{"v":%d,"src":%q,"seq":%d,"op":%s}`, snap.V, w.src, w.seq, opJSON)
		start := time.Now()
		for attempt := 0; ; attempt++ {
			n := w.run.upNode(w.rng)
			if n == nil {
				time.Sleep(50 * time.Millisecond)
				continue
			}
			status, body, err := chaosPost(n.url()+"/api/docs/"+chaosColl+"/"+w.doc+"/ops", req)
			if err == nil && status == 200 {
				var a struct {
					V         uint64 `json:"v"`
					Src       string `json:"src"`
					Seq       uint64 `json:"seq"`
					Duplicate bool   `json:"duplicate"`
				}
				if err := json.Unmarshal(body, &a); err != nil || a.Seq != w.seq {
					w.run.anomaly("writer %d: answer %q to %s", w.id, body, req)
					break
				}
				w.mu.Lock()
				w.acks = append(w.acks, chaosAck{a.Src, a.Seq, a.V})
				if a.Duplicate {
					w.dups++
				}
				w.mu.Unlock()
				if attempt > 0 || a.Duplicate {
					w.run.logf("writer %d: seq %d acknowledged at v%d after %d retries (duplicate %v, node %d)", w.id, w.seq, a.V, attempt, a.Duplicate, n.i)
				}
				break
			}
			if err == nil && status < 500 {
				w.run.anomaly("writer %d (%s): seq %d refused by node %d (attempt %d): %d %s", w.id, w.src, w.seq, n.i, attempt, status, body)
				break
			}
			w.mu.Lock()
			w.retries++
			w.mu.Unlock()
			if time.Since(start) > 60*time.Second {
				w.run.anomaly("writer %d: seq %d not answered for 60 s: %d %v %.200s", w.id, w.seq, status, err, body)
				break
			}
			time.Sleep(time.Duration(50+w.rng.IntN(250)) * time.Millisecond)
		}
		w.busy.Store(false)
	}
}

func chaosPost(url, body string) (int, []byte, error) {
	resp, err := chaosHTTP.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// ---- faults ----

func (r *chaosRun) redisShutdown() {
	cl := redis.NewClient(&redis.Options{Addr: r.rs.Addr(), MaxRetries: -1, DialTimeout: time.Second, ReadTimeout: 5 * time.Second})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	err := cl.Shutdown(ctx).Err()
	cancel()
	cl.Close()
	r.logf("redis SHUTDOWN: %v", err)
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		c, err := net.DialTimeout("tcp", r.rs.Addr(), 200*time.Millisecond)
		if err != nil {
			break
		}
		c.Close()
		time.Sleep(20 * time.Millisecond)
	}
	r.rs.Kill() // reaps it (or kills it if SHUTDOWN did not end it)
}

func (r *chaosRun) inject(rng *rand.Rand, until time.Time, faults map[string]bool, wg *sync.WaitGroup) (count map[string]int) {
	count = map[string]int{}
	var redisBusy atomic.Bool
	var kinds []string
	for _, k := range []string{"nodekill", "nodestop", "rediskill", "redisshutdown", "redispause"} {
		if faults[k] {
			kinds = append(kinds, k)
		}
	}
	if len(kinds) == 0 {
		return
	}
	for time.Now().Before(until) {
		time.Sleep(time.Duration(300+rng.IntN(1700)) * time.Millisecond)
		if !time.Now().Before(until) {
			break
		}
		if redisBusy.Load() && !faults["nodekill"] {
			continue
		}
		kind := kinds[rng.IntN(len(kinds))]
		if faults["nodekill"] && (rng.IntN(2) == 0 || redisBusy.Load()) {
			kind = "nodekill" // nodes die as often as Redis has any fault, and during its faults
		}
		switch kind {
		case "nodekill":
			var up []*chaosNode
			for _, n := range r.nodes {
				if n.up.Load() {
					up = append(up, n)
				}
			}
			if len(up) < 2 {
				continue // keep one node up
			}
			n := up[rng.IntN(len(up))]
			down := 100*time.Millisecond + time.Duration(rng.Int64N(int64(max(*chaosNodeDown-100*time.Millisecond, time.Millisecond))))
			r.logf("FAULT kill -9 node %d (down %v)", n.i, down)
			n.kill()
			count[kind]++
			wg.Add(1)
			go func() {
				defer wg.Done()
				time.Sleep(down)
				if err := n.start(); err != nil {
					r.anomaly("restart node %d: %v", n.i, err)
					return
				}
				r.logf("node %d restarted", n.i)
			}()
		case "nodestop":
			var up []*chaosNode
			for _, n := range r.nodes {
				if n.up.Load() && !n.stopped.Load() {
					up = append(up, n)
				}
			}
			if len(up) < 2 {
				continue
			}
			n := up[rng.IntN(len(up))]
			d := 500*time.Millisecond + time.Duration(rng.IntN(5500))*time.Millisecond
			r.logf("FAULT SIGSTOP node %d for %v", n.i, d)
			if !n.signal(syscall.SIGSTOP) {
				continue
			}
			n.stopped.Store(true)
			count[kind]++
			wg.Add(1)
			go func() {
				defer wg.Done()
				time.Sleep(d)
				n.signal(syscall.SIGCONT)
				n.stopped.Store(false)
				r.logf("node %d continued", n.i)
			}()
		default:
			count[kind]++
			down := time.Duration(rng.Int64N(int64(max(*chaosMaxDown, time.Millisecond))))
			pause := time.Second + time.Duration(rng.Int64N(int64(max(*chaosMaxPause-time.Second, time.Millisecond))))
			redisBusy.Store(true)
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer redisBusy.Store(false)
				switch kind {
				case "rediskill":
					r.logf("FAULT kill -9 redis (down %v)", down)
					r.rs.Kill()
					time.Sleep(down)
					r.rs.Restart()
					r.logf("redis restarted")
				case "redisshutdown":
					r.logf("FAULT redis SHUTDOWN (down %v)", down)
					r.redisShutdown()
					time.Sleep(down)
					r.rs.Restart()
					r.logf("redis restarted")
				case "redispause":
					r.logf("FAULT SIGSTOP redis for %v", pause)
					r.rs.Pause()
					time.Sleep(pause)
					r.rs.Resume()
					r.logf("redis resumed")
				}
			}()
		}
	}
	return count
}

// ---- the run ----

type chaosLogLine struct {
	V   uint64          `json:"v"`
	Src string          `json:"src"`
	Seq uint64          `json:"seq"`
	Op  json.RawMessage `json:"op"`
	Cr  *struct {
		Type string `json:"type"`
		Data string `json:"data"`
	} `json:"create"`
	Del bool `json:"del"`
}

func chaosOnce(t *testing.T, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 0xc4a05))
	dir := filepath.Join(*chaosOut, fmt.Sprintf("seed-%d", seed))
	os.RemoveAll(dir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	ev, err := os.Create(filepath.Join(dir, "events.log"))
	if err != nil {
		t.Fatal(err)
	}
	r := &chaosRun{t: t, seed: seed, dir: dir, start: time.Now(), events: ev}
	defer func() {
		ev.Close()
		if t.Failed() || *chaosKeep {
			t.Logf("logs of seed %d kept in %s", seed, dir)
		} else {
			os.RemoveAll(dir)
		}
	}()
	advertise := seed%2 == 1
	switch *chaosAdvertise {
	case "on":
		advertise = true
	case "off":
		advertise = false
	}
	faults := map[string]bool{}
	for _, f := range strings.Split(*chaosFaults, ",") {
		if f = strings.TrimSpace(f); f != "" {
			faults[f] = true
		}
	}
	r.logf("seed %d, advertise %v, faults %v, duration %v", seed, advertise, *chaosFaults, *chaosDuration)

	r.rs = redistest.StartServer(t, redistest.ServerOptions{AOF: true, Args: []string{"--maxmemory-policy", "noeviction"}})
	defer func() {
		if t.Failed() {
			os.WriteFile(filepath.Join(dir, "redis.log"), []byte(r.rs.Log()), 0o644)
		}
	}()
	for i := range 3 {
		addr, err := freeAddr()
		if err != nil {
			t.Fatal(err)
		}
		n := &chaosNode{run: r, i: i, addr: addr, dataDir: t.TempDir(), logPath: filepath.Join(dir, fmt.Sprintf("node%d.log", i))}
		n.args = []string{"serve", "--addr", addr, "--data", n.dataDir, "--redis", r.rs.Addr(),
			"--node-id", fmt.Sprintf("n%d", i), "--sync", *chaosSync}
		if advertise {
			n.args = append(n.args, "--advertise", addr)
		}
		if err := n.start(); err != nil {
			t.Fatal(err)
		}
		r.nodes = append(r.nodes, n)
	}
	defer func() {
		for _, n := range r.nodes {
			n.kill()
		}
	}()
	docs := make([]string, *chaosDocs)
	for i := range docs {
		docs[i] = fmt.Sprintf("d%d", i)
		resp, err := chaosHTTP.Post(r.nodes[i%3].url()+"/api/docs/"+chaosColl+"/"+docs[i]+"/ops", "application/json",
			strings.NewReader(`{"create":{"type":"text-unicode","data":"hello"}}`))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("create %s: %d %s", docs[i], resp.StatusCode, b)
		}
	}

	var clients []*chaosClient
	for i := range *chaosDocs * *chaosClients {
		c := &chaosClient{run: r, id: i, doc: docs[i%len(docs)], rng: rand.New(rand.NewPCG(seed, uint64(i)+1)),
			seen: map[uint64]string{}, closeCodes: map[int]int{}, errCodes: map[string]int{},
			stop: make(chan struct{}), done: make(chan struct{})}
		clients = append(clients, c)
		go c.loop()
	}
	var writers []*chaosWriter
	for i := range *chaosDocs * *chaosHTTPW {
		w := &chaosWriter{run: r, id: i, doc: docs[i%len(docs)], rng: rand.New(rand.NewPCG(seed, uint64(i)+1000)),
			src: fmt.Sprintf("w%d-%d", seed, i), done: make(chan struct{})}
		writers = append(writers, w)
		go w.loop()
	}
	stopClients := sync.OnceFunc(func() {
		for _, w := range writers {
			w.stopGen.Store(true)
		}
		for _, w := range writers {
			<-w.done
		}
		for _, c := range clients {
			close(c.stop)
		}
		for _, c := range clients {
			<-c.done
		}
	})
	defer stopClients()

	// Faults.
	time.Sleep(500 * time.Millisecond)
	var restarts sync.WaitGroup
	if *chaosPark > 0 {
		n := r.nodes[2]
		r.logf("FAULT park: kill -9 node 2 for %v", *chaosPark)
		n.kill()
		restarts.Add(1)
		go func() {
			defer restarts.Done()
			time.Sleep(*chaosPark)
			if err := n.start(); err != nil {
				r.anomaly("restart parked node 2: %v", err)
				return
			}
			r.logf("parked node 2 restarted")
		}()
	}
	count := r.inject(rng, time.Now().Add(*chaosDuration), faults, &restarts)
	restarts.Wait()
	r.logf("faults over: %v", count)
	t.Logf("seed %d (advertise %v): faults %v", seed, advertise, count)
	for _, n := range r.nodes {
		if !n.alive() {
			r.anomaly("node %d is not running after the faults (exited by itself?)", n.i)
			if err := n.start(); err != nil {
				t.Fatalf("start node %d: %v", n.i, err)
			}
		}
	}

	// Settle: no new ops; every op in flight acknowledged.
	for _, c := range clients {
		c.stopGen.Store(true)
	}
	for _, w := range writers {
		w.stopGen.Store(true)
	}
	for _, w := range writers {
		<-w.done
	}
	deadline := time.Now().Add(40 * time.Second)
	for {
		pending := 0
		var which []string
		for _, c := range clients {
			c.mu.Lock()
			if c.inflight != nil || !c.hasSnap {
				pending++
				which = append(which, fmt.Sprintf("client %d (%s, node %d, v%d, inflight %v, snap %v)", c.id, c.src, c.node, c.v, c.inflightSeq(), c.hasSnap))
			}
			c.mu.Unlock()
		}
		if pending == 0 {
			break
		}
		if time.Now().After(deadline) {
			r.anomaly("after 40 s of settling, %d clients still have an op in flight or no copy: %s", pending, strings.Join(which, "; "))
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	r.logf("settled: ops in flight acknowledged")

	// Converge: each client's version reaches the nodes' head.
	heads := map[string]uint64{}
	snaps := map[string][]string{}
	deadline = time.Now().Add(20 * time.Second)
	for {
		ok := true
		var why []string
		for _, d := range docs {
			var hv []uint64
			var texts []string
			for _, n := range r.nodes {
				status, body, err := chaosGet(n.url() + "/api/docs/" + chaosColl + "/" + d)
				var s struct {
					V    uint64 `json:"v"`
					Data string `json:"data"`
				}
				if err != nil || status != 200 || json.Unmarshal(body, &s) != nil {
					ok = false
					why = append(why, fmt.Sprintf("node %d %s: %d %v %.200s", n.i, d, status, err, body))
					continue
				}
				hv = append(hv, s.V)
				texts = append(texts, s.Data)
			}
			if len(hv) == 3 {
				if hv[0] != hv[1] || hv[1] != hv[2] || texts[0] != texts[1] || texts[1] != texts[2] {
					ok = false
					why = append(why, fmt.Sprintf("%s: node heads %v", d, hv))
				}
				heads[d] = hv[0]
				snaps[d] = texts
			}
		}
		for _, c := range clients {
			c.mu.Lock()
			if c.v != heads[c.doc] || (len(snaps[c.doc]) > 0 && c.text != snaps[c.doc][0]) {
				ok = false
				why = append(why, fmt.Sprintf("client %d %s at node %d: v%d, head v%d", c.id, c.doc, c.node, c.v, heads[c.doc]))
			}
			c.mu.Unlock()
		}
		if ok {
			break
		}
		if time.Now().After(deadline) {
			r.anomaly("no convergence after 20 s: %s", strings.Join(why, "; "))
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	stopClients()
	r.logf("converged (or gave up)")

	// The logs.
	totalAcks, totalResends, drops, wacks, wretries, wdups := 0, 0, 0, 0, 0, 0
	for _, w := range writers {
		wacks += len(w.acks)
		wretries += w.retries
		wdups += w.dups
	}
	closeCodes := map[int]int{}
	errCodes := map[string]int{}
	for _, c := range clients {
		totalAcks += len(c.acks)
		totalResends += c.resends
		drops += c.dropped
		for k, v := range c.closeCodes {
			closeCodes[k] += v
		}
		for k, v := range c.errCodes {
			errCodes[k] += v
		}
	}
	for _, d := range docs {
		var logs []string
		for _, n := range r.nodes {
			status, body, err := chaosGet(n.url() + "/api/docs/" + chaosColl + "/" + d + "/ops")
			from := uint64(0)
			if err == nil && status == 409 && heads[d] > 0 {
				// A node that installed a base (it was further behind than
				// Redis's tail) serves only the ops after it: find the base.
				lo, hi := uint64(1), heads[d]
				for lo < hi {
					mid := (lo + hi) / 2
					if st, _, err := chaosGet(fmt.Sprintf("%s/api/docs/%s/%s/ops?from=%d", n.url(), chaosColl, d, mid)); err == nil && st == 200 {
						hi = mid
					} else {
						lo = mid + 1
					}
				}
				from = lo
				status, body, err = chaosGet(fmt.Sprintf("%s/api/docs/%s/%s/ops?from=%d", n.url(), chaosColl, d, from))
				r.logf("node %d %s: serves ops from v%d on (a base)", n.i, d, from)
				t.Logf("node %d %s: serves ops from v%d on only (installed a base)", n.i, d, from)
			}
			if err != nil || status != 200 {
				r.anomaly("node %d: GET ops of %s: %d %v %.300s", n.i, d, status, err, body)
				continue
			}
			if from == 0 {
				logs = append(logs, string(body))
			}
			at := map[string]uint64{}
			byV := map[uint64]string{}
			text := ""
			next := from
			for _, line := range strings.Split(strings.TrimSpace(string(body)), "\n") {
				var l chaosLogLine
				if err := json.Unmarshal([]byte(line), &l); err != nil {
					r.anomaly("node %d %s: log line %q: %v", n.i, d, line, err)
					break
				}
				if l.V != next {
					r.anomaly("node %d %s: log not contiguous: v%d after v%d", n.i, d, l.V, next-1)
				}
				next = l.V + 1
				if l.Cr != nil {
					text = l.Cr.Data
					continue
				}
				k := fmt.Sprintf("%s/%d", l.Src, l.Seq)
				byV[l.V] = k
				if prev, dup := at[k]; dup {
					r.anomaly("node %d %s: op %s committed twice, at v%d and v%d", n.i, d, k, prev, l.V)
				}
				at[k] = l.V
				op, err := ot.Decode(l.Op)
				if err != nil {
					r.anomaly("node %d %s: op at v%d: %v", n.i, d, l.V, err)
					continue
				}
				if from > 0 {
					continue // no text to replay onto
				}
				if text, err = ot.Apply(text, op); err != nil {
					r.anomaly("node %d %s: op at v%d does not apply to the log's text: %v", n.i, d, l.V, err)
				}
			}
			if next != heads[d] {
				r.anomaly("node %d %s: log ends at v%d, head v%d", n.i, d, next, heads[d])
			}
			if from == 0 && len(snaps[d]) > n.i && text != snaps[d][n.i] {
				r.anomaly("node %d %s: the log replays to %q, the snapshot is %q", n.i, d, text, snaps[d][n.i])
			}
			acks := map[string][]chaosAck{}
			for _, c := range clients {
				acks[c.doc] = append(acks[c.doc], c.acks...)
			}
			for _, w := range writers {
				acks[w.doc] = append(acks[w.doc], w.acks...)
			}
			for _, a := range acks[d] {
				if a.v < from {
					continue
				}
				k := fmt.Sprintf("%s/%d", a.src, a.seq)
				if v, ok := at[k]; !ok {
					r.anomaly("node %d %s: acknowledged op %s (acked at v%d) is not in the log; v%d there is %s", n.i, d, k, a.v, a.v, byV[a.v])
				} else if v != a.v {
					r.anomaly("node %d %s: acknowledged op %s acked at v%d is in the log at v%d", n.i, d, k, a.v, v)
				}
			}
			for _, c := range clients {
				if c.doc != d {
					continue
				}
				for v, k := range c.seen {
					if v >= from && byV[v] != k {
						r.anomaly("node %d %s: client %d applied %s at v%d, the log has %q there", n.i, d, c.id, k, v, byV[v])
					}
				}
			}
		}
		for i := 1; i < len(logs); i++ {
			if stripTS(logs[i]) != stripTS(logs[0]) {
				r.anomaly("%s: node %d's op log differs from node 0's", d, i)
			}
		}
	}
	t.Logf("seed %d: %d acks, %d resends (%d after own drops), close codes %v, error replies %v, heads %v; HTTP writers: %d acks, %d retried POSTs, %d duplicates",
		seed, totalAcks, totalResends, drops, closeCodes, errCodes, heads, wacks, wretries, wdups)
	r.logf("%d acks, %d resends, close codes %v, error replies %v, heads %v", totalAcks, totalResends, closeCodes, errCodes, heads)

	// Node log lines worth reading.
	for _, n := range r.nodes {
		b, _ := os.ReadFile(n.logPath)
		var bad []string
		for _, line := range strings.Split(string(b), "\n") {
			if strings.Contains(line, "level=ERROR") || strings.Contains(line, "panic") || strings.Contains(line, "DATA RACE") {
				bad = append(bad, line)
			}
		}
		if len(bad) > 0 {
			t.Logf("node %d: %d ERROR lines, first: %.400s", n.i, len(bad), bad[0])
		}
	}
	if totalAcks == 0 {
		r.anomaly("no op acknowledged at all")
	}
	if len(r.anomalies) > 0 {
		k := min(len(r.anomalies), 40)
		t.Errorf("seed %d: %d anomalies (first %d):\n%s", seed, len(r.anomalies), k, strings.Join(r.anomalies[:k], "\n"))
	}
}

// stripTS drops the commit times of an op log (each node may stamp
// records it received itself).
func stripTS(s string) string {
	var out []string
	for _, line := range strings.Split(s, "\n") {
		if i := strings.Index(line, `,"m":{`); i >= 0 {
			line = line[:i]
		}
		out = append(out, line)
	}
	return strings.Join(out, "\n")
}

// ---- targeted reproductions of what the chaos runs found ----

var (
	chaosRepro         = flag.Bool("chaos.repro", false, "run the targeted reproductions (TestChaosRepro*)")
	chaosReproRestarts = flag.Int("chaos.repro.restarts", 9, "TestChaosReproForgottenLineage: Redis restarts while the node is down")
	chaosReproIdle     = flag.Bool("chaos.repro.idle", false, "TestChaosReproForgottenLineage: leave the node up, its session of the document idle (stopped after 30 s), instead of killing it")
	chaosReproOps      = flag.Int("chaos.repro.ops", 11000, "TestChaosReproForgottenLineage: ops committed while the node is down")
)

// TestChaosReproForgottenLineage: Redis with appendfsync always (it loses
// nothing); a node is down while Redis restarts more than the 8 epochs a
// lineage names (each document's first commit after a restart renews its
// epoch) and the document moves more than Redis's tail (10,000 ops) past
// the node's log. When the node comes back, its records belong to "no
// known history" and none can be compared with Redis's stream, so it
// replaces its log by Redis's snapshot and forks at version 0: every
// author of its records is noted as holding a replaced history, and a
// client that wrote one op through that node long ago, and has edited
// through a healthy node since, gets its next op refused with
// ERR_HISTORY_REPLACED (the ShareDB client rolls that edit back).
func TestChaosReproForgottenLineage(t *testing.T) {
	if !*chaosRepro {
		t.Skip("run with -chaos.repro")
	}
	rs := redistest.StartServer(t, redistest.ServerOptions{AOF: true})
	// n0 only takes the filler ops: --sync none makes them quicker and
	// changes nothing here (Redis, AOF always, holds every op).
	n0 := startServe(t, t.TempDir(), "--redis", rs.Addr(), "--node-id", "n0", "--sync", "none")
	dir1 := t.TempDir()
	n1 := startServe(t, dir1, "--redis", rs.Addr(), "--node-id", "n1")
	const doc = "notes/lineage"
	if status, body := postJSON(t, n0.url+"/api/docs/"+doc+"/ops", `{"create":{"type":"text-unicode","data":""}}`); status != http.StatusOK {
		t.Fatalf("create = %d %s", status, body)
	}
	// Client A writes one op through n1.
	readOp := func(ws *websocket.Conn, seq uint64) chaosMsg {
		t.Helper()
		for {
			var m chaosMsg
			ws.SetReadDeadline(time.Now().Add(20 * time.Second))
			if err := ws.ReadJSON(&m); err != nil {
				var ce *websocket.CloseError
				if errors.As(err, &ce) {
					t.Fatalf("waiting for the reply to seq %d, the server closed the WebSocket with %d %q", seq, ce.Code, ce.Text)
				}
				t.Fatalf("read reply to seq %d: %v", seq, err)
			}
			if m.Error != nil && m.A != "op" {
				t.Logf("error reply: %+v", m)
			}
			if m.A == "op" && m.Seq == seq && (m.Op == nil || m.Error != nil) {
				return m
			}
		}
	}
	ws, src, err := dialCrash(n1.url, "")
	if err != nil {
		t.Fatal(err)
	}
	ws.WriteMessage(websocket.TextMessage, []byte(`{"a":"op","c":"notes","d":"lineage","v":1,"seq":1,"op":["A"]}`))
	if m := readOp(ws, 1); m.Error != nil {
		t.Fatalf("A's op 1: %+v", m.Error)
	}
	ws.Close()
	if *chaosReproIdle {
		time.Sleep(40 * time.Second) // n1's session of the document stops (IdleTimeout 30 s)
	} else {
		n1.cmd.Process.Kill() // SIGKILL
		n1.wait(t)
	}

	// A goes on through n0, subscribed (reading all along, so that it
	// answers the server's pings); other writers fill the document while
	// Redis is restarted (kill -9, AOF always: nothing lost).
	ws, _, err = dialCrash(n0.url, src)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	ws.SetReadDeadline(time.Time{})
	frames := make(chan chaosMsg, 1<<16)
	go func() {
		defer close(frames)
		for {
			var m chaosMsg
			if err := ws.ReadJSON(&m); err != nil {
				var ce *websocket.CloseError
				if errors.As(err, &ce) {
					t.Logf("n0 closed A's WebSocket: %d %q", ce.Code, ce.Text)
				}
				return
			}
			frames <- m
		}
	}()
	readOp = func(_ *websocket.Conn, seq uint64) chaosMsg {
		t.Helper()
		timeout := time.After(20 * time.Second)
		got, last := 0, chaosMsg{}
		for {
			select {
			case m, ok := <-frames:
				if !ok {
					t.Fatalf("A's WebSocket closed before the reply to seq %d", seq)
				}
				if m.Error != nil && m.A != "op" {
					t.Logf("A got an error reply: %+v", m)
				}
				if m.A == "op" && m.Seq == seq && (m.Op == nil || m.Error != nil) {
					return m
				}
				got++
				last = m
			case <-timeout:
				t.Logf("A read %d other frames, the last %+v", got, last)
				t.Fatalf("no reply to seq %d in 20 s", seq)
			}
		}
	}
	post := func(n int) {
		var wg sync.WaitGroup
		for w := range 32 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := w; i < n; i += 32 {
					for {
						status, _, err := chaosPost(n0.url+"/api/docs/"+doc+"/ops", `{"op":["x"]}`)
						if err == nil && status == 200 {
							break
						}
						time.Sleep(50 * time.Millisecond)
					}
				}
			}()
		}
		wg.Wait()
	}
	per := *chaosReproOps / max(1, *chaosReproRestarts)
	for range *chaosReproRestarts {
		start := time.Now()
		post(per)
		t.Logf("%d ops in %v", per, time.Since(start))
		rs.Restart()
		post(1) // the document's first commit after the restart renews its epoch
	}
	post(*chaosReproOps - per**chaosReproRestarts)
	v, _ := snapshotOf(t, n0.url, doc)
	ws.WriteMessage(websocket.TextMessage, []byte(`{"a":"s","c":"notes","d":"lineage","v":null}`))
	t.Logf("document at v%d after %d Redis restarts; A (%s) subscribed on n0", v, *chaosReproRestarts, src)

	// n1 comes back (or was up all along) and opens the document.
	if !*chaosReproIdle {
		n1 = startServe(t, dir1, "--redis", rs.Addr(), "--node-id", "n1")
	}
	if status, body := fetchURL(t, n1.url+"/api/docs/"+doc); status != http.StatusOK {
		t.Fatalf("GET on n1 = %d %.200s", status, body)
	}
	time.Sleep(500 * time.Millisecond)
	for _, line := range strings.Split(n1.logs.String(), "\n") {
		if strings.Contains(line, "level=ERROR") || strings.Contains(line, "level=WARN") && strings.Contains(line, "replaced") {
			t.Logf("n1: %.400s", line)
		}
	}
	// A's next op, at the head it is subscribed at.
	v, _ = snapshotOf(t, n0.url, doc)
	ws.WriteMessage(websocket.TextMessage, []byte(fmt.Sprintf(`{"a":"op","c":"notes","d":"lineage","v":%d,"seq":2,"op":["B"]}`, v)))
	m := readOp(ws, 2)
	if m.Error != nil {
		t.Errorf("A's op through the healthy node n0 refused: %s: %s", m.Error.Code, m.Error.Message)
	}
}
