package redisrelay_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coedit/coedit/collab"
	"github.com/coedit/coedit/internal/redistest"
	"github.com/coedit/coedit/ot"
)

// presConn is a testConn that also records the presence it is sent.
type presConn struct {
	*testConn
	pmu      sync.Mutex
	pres     []collab.PresenceUpdate
	requests int
}

func newPresConn(src string) *presConn { return &presConn{testConn: newTestConn(src)} }

func (c *presConn) SendPresence(p collab.PresenceUpdate) {
	c.pmu.Lock()
	c.pres = append(c.pres, p)
	c.pmu.Unlock()
	c.poke()
}

func (c *presConn) SendPresenceRequest(string) {
	c.pmu.Lock()
	c.requests++
	c.pmu.Unlock()
	c.poke()
}

// latest returns the last presence c was sent from src with id, if any.
func (c *presConn) latest(src, id string) (collab.PresenceUpdate, bool) {
	c.pmu.Lock()
	defer c.pmu.Unlock()
	for i := len(c.pres) - 1; i >= 0; i-- {
		if p := c.pres[i]; p.Src == src && p.ID == id {
			return p, true
		}
	}
	return collab.PresenceUpdate{}, false
}

// waitPresence waits until the last presence c got from src with id
// satisfies ok, and returns it.
func (c *presConn) waitPresence(t testing.TB, what, src, id string, ok func(collab.PresenceUpdate) bool) collab.PresenceUpdate {
	t.Helper()
	deadline := time.After(waitLimit)
	for {
		p, seen := c.latest(src, id)
		if seen && ok(p) {
			return p
		}
		select {
		case <-c.changed:
		case <-deadline:
			t.Fatalf("%s: waiting for %s: last presence from %s/%s is %+v (seen %v)", c.src, what, src, id, p, seen)
		}
	}
}

// caretAt reports a text presence at index, length, version.
func caretAt(index, length int, v uint64) func(collab.PresenceUpdate) bool {
	return func(p collab.PresenceUpdate) bool {
		return p.Text != nil && p.Text.Index == index && p.Text.Length == length && p.Version == v
	}
}

func isCleared(p collab.PresenceUpdate) bool { return p.Cleared() }

// subscribePresence joins c to channel on n and waits for the reply.
func subscribePresence(t testing.TB, n *hubNode, channel string, c collab.Conn) {
	t.Helper()
	done := make(chan error, 1)
	n.hub.SubscribePresence(channel, c, func(err error) { done <- err })
	if err := <-done; err != nil {
		t.Fatalf("%s: SubscribePresence(%q) = %v", n.name, channel, err)
	}
}

// postCaret posts c's text presence on key's channel at version v.
func postCaret(t testing.TB, n *hubNode, c collab.Conn, key collab.Key, id string, pv uint64, v uint64, index, length int) collab.PresenceUpdate {
	t.Helper()
	done := make(chan error, 1)
	var got collab.PresenceUpdate
	k := key
	p := collab.PresenceUpdate{Channel: key.Collection + "." + key.ID, ID: id, Seq: pv, Doc: &k, Version: v, Type: ot.URI,
		Text: &ot.Presence{Index: index, Length: length}}
	n.hub.Presence(c, p, func(up collab.PresenceUpdate, err error) { got = up; done <- err })
	if err := <-done; err != nil {
		t.Fatalf("%s: Presence(%+v) = %v", n.name, p, err)
	}
	return got
}

// TestPresenceAcrossNodes: a caret set by a client on node A reaches a
// client on node B, transformed by the ops B has that the caret's version
// does not; a client that subscribes later on B gets it through a
// presence request; a client leaving A clears it on B.
func TestPresenceAcrossNodes(t *testing.T) {
	srv := redistest.StartServer(t, redistest.ServerOptions{})
	presenceAcrossNodes(t, srv.Addr(), docKey(1))
}

// TestPresenceAcrossNodesOnRedisCluster: the same over a 3-master Redis
// Cluster (sharded pub/sub), for documents on every master.
func TestPresenceAcrossNodesOnRedisCluster(t *testing.T) {
	cl := redistest.StartCluster(t, redistest.ServerOptions{})
	addr := strings.Join(cl.Addrs(), ",")
	c := newClusterClient(t, cl.Addrs())
	masters := make(map[string]bool)
	for i := 10; len(masters) < 3; i++ {
		key := docKey(i)
		m, err := c.MasterForKey(ctx(t), "{"+key.Collection+"."+key.ID+"}:pres")
		if err != nil {
			t.Fatalf("MasterForKey = %v", err)
		}
		if masters[m.Options().Addr] {
			continue
		}
		masters[m.Options().Addr] = true
		t.Run(m.Options().Addr, func(t *testing.T) { presenceAcrossNodes(t, addr, key) })
	}
}

func presenceAcrossNodes(t *testing.T, addr string, key collab.Key) {
	p := prefix(t)
	a := startNode(t, "A", addr, p, nodeConfig{})
	b := startNode(t, "B", addr, p, nodeConfig{})
	channel := key.Collection + "." + key.ID
	submit(t, a, key, createSub("setup", 1, "hello"))

	ca, cb := newPresConn("client-a"), newPresConn("client-b")
	subscribe(t, a, key, ca)
	subscribe(t, b, key, cb)
	subscribePresence(t, a, channel, ca)
	subscribePresence(t, b, channel, cb)
	// Each node's channel joins Redis in the background; once it has, the
	// node asks its own clients and the other nodes' clients to re-send
	// their presence. Three requests in all mean at least one crossed
	// nodes, so both joined: a request reaches a node only if it joined
	// before the other node published it, after its own join.
	waitFor(t, "both nodes' presence channels joined", func() bool { return requests(ca)+requests(cb) >= 3 })

	// b inserts "XYZ" at 0 (version 1 to 2); a, still at version 1, puts
	// its caret after "hello". Whichever node brings the caret to the
	// head, b must see it after "XYZhello".
	submit(t, b, key, editSub("client-b", 1, 1, insertAt(0, "XYZ")))
	postCaret(t, a, ca, key, "pa", 1, 1, 5, 0)
	cb.waitPresence(t, "a's caret moved by b's insert", "client-a", "pa", caretAt(8, 0, 2))

	// And the other way: b's selection at version 2 reaches a.
	postCaret(t, b, cb, key, "pb", 1, 2, 1, 2)
	ca.waitPresence(t, "b's selection", "client-b", "pb", caretAt(1, 2, 2))

	// A client subscribing on B later sees a's caret: B asks A's clients
	// to re-send (a test Conn does not answer a request, so count it and
	// re-send as a ShareDB client would).
	cb2 := newPresConn("client-b2")
	subscribe(t, b, key, cb2)
	before := requests(ca)
	subscribePresence(t, b, channel, cb2)
	waitFor(t, "a presence request reaching node A's client", func() bool { return requests(ca) > before })
	postCaret(t, a, ca, key, "pa", 2, 2, 8, 0)
	cb2.waitPresence(t, "a's caret re-sent", "client-a", "pa", caretAt(8, 0, 2))

	// a leaves: its caret is cleared on B.
	a.hub.Disconnect(ca)
	cb.waitPresence(t, "a's caret cleared", "client-a", "pa", isCleared)
	cb2.waitPresence(t, "a's caret cleared", "client-a", "pa", isCleared)
}

func requests(c *presConn) int {
	c.pmu.Lock()
	defer c.pmu.Unlock()
	return c.requests
}

// TestPresenceOfDeadNodeExpires: a node that published a caret and died
// without a word (its heartbeat key expires, no clear is ever sent) has
// its caret cleared on the other nodes within about its NodeTTL. The
// dead node is played by a test client speaking the wire format, so that
// it publishes an old version too: node B must bring it to its head.
func TestPresenceOfDeadNodeExpires(t *testing.T) {
	srv := redistest.StartServer(t, redistest.ServerOptions{})
	p := prefix(t)
	const nodeTTL = 600 * time.Millisecond
	b := startNode(t, "B", srv.Addr(), p, nodeConfig{nodeTTL: nodeTTL})
	key := docKey(2)
	channel := key.Collection + "." + key.ID
	submit(t, b, key, createSub("setup", 1, "hello"))
	submit(t, b, key, editSub("setup", 2, 1, insertAt(0, "XYZ"))) // head 2

	cb := newPresConn("client-b")
	subscribe(t, b, key, cb)
	subscribePresence(t, b, channel, cb)

	ghost := newClient(t, srv.Addr())
	origin := "ghost.1"
	if err := ghost.Set(ctx(t), p+"node:"+origin, "1", nodeTTL).Err(); err != nil {
		t.Fatalf("SET heartbeat = %v", err)
	}
	// The ghost's caret on "llo" at version 1, before the insert.
	msg, _ := json.Marshal(map[string]any{"o": origin, "k": "p", "ch": channel, "id": "g1", "src": "ghost-client", "pv": 1,
		"c": key.Collection, "d": key.ID, "v": 1, "t": ot.URI, "x": true, "p": map[string]int{"index": 2, "length": 3}})
	rch := fmt.Sprintf("%s{%s.%s}:pres", p, key.Collection, key.ID)
	// B subscribes asynchronously: publish until it hears.
	waitFor(t, "node B to receive the ghost's caret", func() bool {
		if err := ghost.Publish(ctx(t), rch, msg).Err(); err != nil {
			t.Fatalf("PUBLISH = %v", err)
		}
		_, seen := cb.latest("ghost-client", "g1")
		return seen
	})
	died := time.Now()
	cb.waitPresence(t, "the ghost's caret at the head", "ghost-client", "g1", caretAt(5, 3, 2))
	cb.waitPresence(t, "the dead node's caret cleared", "ghost-client", "g1", isCleared)
	// Its heartbeat key lives nodeTTL, then B waits nodeTTL more without
	// news, checking every third: 2*nodeTTL plus two checks, and slack for
	// a loaded machine.
	if took := time.Since(died); took > 2*nodeTTL+2*nodeTTL/3+time.Second {
		t.Errorf("the dead node's caret was cleared after %v, want within about %v", took, 2*nodeTTL+2*nodeTTL/3)
	}
	if st := b.relay.PresenceStats(); st.Orphaned != 1 {
		t.Errorf("PresenceStats().Orphaned = %d, want 1", st.Orphaned)
	}
}

// TestPresenceMovedClientSurvivesOldNode: a client whose node died and
// who re-sent its caret through another node keeps it when the old node
// is declared dead.
func TestPresenceMovedClientSurvivesOldNode(t *testing.T) {
	srv := redistest.StartServer(t, redistest.ServerOptions{})
	p := prefix(t)
	const nodeTTL = 600 * time.Millisecond
	a := startNode(t, "A", srv.Addr(), p, nodeConfig{nodeTTL: nodeTTL})
	b := startNode(t, "B", srv.Addr(), p, nodeConfig{nodeTTL: nodeTTL})
	key := docKey(3)
	channel := key.Collection + "." + key.ID
	submit(t, b, key, createSub("setup", 1, "hello"))
	cb := newPresConn("client-b")
	subscribe(t, b, key, cb)
	subscribePresence(t, b, channel, cb)

	ghost := newClient(t, srv.Addr())
	rch := fmt.Sprintf("%s{%s.%s}:pres", p, key.Collection, key.ID)
	msg, _ := json.Marshal(map[string]any{"o": "ghost.1", "k": "p", "ch": channel, "id": "m1", "src": "mover", "pv": 1,
		"c": key.Collection, "d": key.ID, "v": 1, "t": ot.URI, "x": true, "p": map[string]int{"index": 1, "length": 0}})
	waitFor(t, "node B to receive the ghost's caret", func() bool {
		ghost.Publish(ctx(t), rch, msg)
		_, seen := cb.latest("mover", "m1")
		return seen
	})
	// The client moves to A (same src) and re-sends its caret.
	mover := newPresConn("mover")
	subscribe(t, a, key, mover)
	postCaret(t, a, mover, key, "m1", 2, 1, 4, 0)
	cb.waitPresence(t, "the moved client's caret", "mover", "m1", caretAt(4, 0, 1))
	// Long past the ghost's death, the caret is still there.
	time.Sleep(3 * nodeTTL)
	if p, _ := cb.latest("mover", "m1"); !caretAt(4, 0, 1)(p) {
		t.Fatalf("the moved client's caret became %+v after its old node died", p)
	}
}
