package loadgen

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/coedit/coedit/ot"
)

// TestResyncWaitsForTheOpInFlight: a client that finds a gap in the
// versions while its own op is in flight (a server whose commits publish
// out of order, as ShareDB over a database can) fetches a fresh copy only
// once that op is answered. A snapshot fetched before may or may not hold
// the op, and a copy built on one without it would count the op's ack as
// applied and go on from a text that lacks it. The ops that come while
// the fetch is out are applied on top of its snapshot where it lacks
// them. The frames the client sends go to a WebSocket peer that only
// records them.
func TestResyncWaitsForTheOpInFlight(t *testing.T) {
	c, sent := clientInFlight(t)
	// Another client's op at version 6: version 5's op has not arrived.
	c.handle([]byte(`{"a":"op","c":"c","d":"d","v":6,"src":"other","seq":1,"op":[1,"Y"]}`), time.Now())
	sendsNothing(t, sent, "a gap with an op in flight")
	// The op in flight is acknowledged at version 5: now the fetch.
	c.handle([]byte(`{"a":"op","c":"c","d":"d","v":5,"src":"me","seq":1}`), time.Now())
	if b := nextSent(t, sent, "the ack after the gap"); !strings.Contains(b, `"a":"f"`) {
		t.Fatalf("after the ack the client sent %s, want a fetch", b)
	}
	// While the fetch is out, version 6 comes again and then version 7,
	// which the server sends before the snapshot it read at version 7.
	c.handle([]byte(`{"a":"op","c":"c","d":"d","v":6,"src":"other","seq":1,"op":[1,"Y"]}`), time.Now())
	c.handle([]byte(`{"a":"op","c":"c","d":"d","v":7,"src":"other","seq":2,"op":[7,"Z"]}`), time.Now())
	c.handle([]byte(`{"a":"f","c":"c","d":"d","data":{"v":7,"data":"XhYello","type":"http://sharejs.org/types/textunicode"}}`), time.Now())
	c.mu.Lock()
	defer c.mu.Unlock()
	if got := c.text.String(); got != "XhYelloZ" || c.v != 8 || c.resyncing || c.inflight != nil {
		t.Errorf("after the fetch: copy %q at version %d, resyncing %v, in flight %v; want \"XhYelloZ\" at 8 (the snapshot and the op held for it), neither", got, c.v, c.resyncing, c.inflight)
	}
	if g := c.g; g.errs["GAP"] != 1 || len(g.errs) != 1 {
		t.Errorf("errors %v, want one GAP", g.errs)
	}
}

// TestResyncAfterARefusedOp: when the op in flight is refused while a
// resync waits for it, the fetch goes out then, and the refusal is
// counted.
func TestResyncAfterARefusedOp(t *testing.T) {
	c, sent := clientInFlight(t)
	g := c.g
	c.handle([]byte(`{"a":"op","c":"c","d":"d","v":6,"src":"other","seq":1,"op":[1,"Y"]}`), time.Now())
	sendsNothing(t, sent, "a gap with an op in flight")
	c.handle([]byte(`{"a":"op","c":"c","d":"d","v":5,"src":"me","seq":1,"error":{"code":"ERR_OT_OP_NOT_APPLIED","message":"no"}}`), time.Now())
	if b := nextSent(t, sent, "the refusal"); !strings.Contains(b, `"a":"f"`) {
		t.Fatalf("after the refusal the client sent %s, want a fetch", b)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.inflight != nil || !c.resyncing || c.fetchDue {
		t.Errorf("in flight %v, resyncing %v, fetch due %v; want none, yes, no", c.inflight, c.resyncing, c.fetchDue)
	}
	if g.errs["GAP"] != 1 || g.errs["ERR_OT_OP_NOT_APPLIED"] != 1 {
		t.Errorf("errors %v, want a GAP and the refusal", g.errs)
	}
}

// clientInFlight returns a client of document "d" at version 5, whose op
// in flight (seq 1, an "X" typed at the start of "hello") made its copy
// "Xhello", connected to a WebSocket peer that sends each frame it gets
// to the channel. Its generator is stopping, so it submits nothing of its
// own: the test sends the server's frames.
func clientInFlight(t *testing.T) (*client, <-chan string) {
	t.Helper()
	sent := make(chan string, 16)
	up := websocket.Upgrader{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer ws.Close()
		for {
			_, b, err := ws.ReadMessage()
			if err != nil {
				return
			}
			sent <- string(b)
		}
	}))
	t.Cleanup(srv.Close)
	ws, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(srv.URL, "http"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ws.Close() })
	g := &gen{o: Options{AckTimeout: time.Second}, collJSON: []byte(`"c"`), errs: map[string]uint64{}}
	g.stopping.Store(true)
	d := &doc{id: "d", idJSON: []byte(`"d"`), bySrc: map[string]*client{}, sent: map[sentKey]*sentOp{}}
	in, err := ot.Decode([]byte(`["X"]`))
	if err != nil {
		t.Fatal(err)
	}
	return &client{g: g, doc: d, ws: ws, srcJSON: []byte(`"me"`), text: *ot.NewRope("Xhello"), v: 5,
		inflight: in, inSeq: 1, inStart: time.Now()}, sent
}

// sendsNothing fails t if the client sends a frame within 100 ms.
func sendsNothing(t *testing.T, sent <-chan string, what string) {
	t.Helper()
	select {
	case b := <-sent:
		t.Fatalf("%s: the client sent %s", what, b)
	case <-time.After(100 * time.Millisecond):
	}
}

// nextSent returns the next frame the client sends, failing t after 5 s.
func nextSent(t *testing.T, sent <-chan string, what string) string {
	t.Helper()
	select {
	case b := <-sent:
		return b
	case <-time.After(5 * time.Second):
		t.Fatalf("%s: the client sent nothing", what)
		return ""
	}
}
