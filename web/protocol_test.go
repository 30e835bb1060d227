package web

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/coedit/coedit/collab"
	"github.com/coedit/coedit/ot"
)

const textURI = ot.URI

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func TestHandshakeIssuesAndReclaimsSrc(t *testing.T) {
	ts := startServer(t, Options{Logger: quiet}, collab.Options{})
	a := ts.connect(t)
	if !regexp.MustCompile(`^[0-9a-f]{32}$`).MatchString(a.src) {
		t.Fatalf("hs id = %q, want 32 hex digits", a.src)
	}
	b := ts.connect(t)
	if b.src == a.src {
		t.Fatalf("two connections got the same src %q", a.src)
	}

	// A src nobody holds is given back to the client that names it.
	old := a.src
	a.ws.Close()
	waitFor(t, func() bool { return ts.srv.Connections() == 1 })
	a2 := ts.dial(t, nil)
	a2.handshake(old)
	if a2.src != old {
		t.Fatalf("reclaimed src = %q, want %q", a2.src, old)
	}

	// A src held by a live connection moves to the newer claim; the
	// older connection is closed with CloseSrcReclaimed.
	b2 := ts.dial(t, nil)
	b2.handshake(b.src)
	if b2.src != b.src {
		t.Fatalf("reclaimed live src = %q, want %q", b2.src, b.src)
	}
	err := b.closeErr(5 * time.Second)
	if !websocket.IsCloseError(err, CloseSrcReclaimed) {
		t.Fatalf("old holder's close = %v, want close code %d", err, CloseSrcReclaimed)
	}

	// An id that cannot be a src is ignored: the issued one stays.
	c := ts.dial(t, nil)
	c.sendRaw(`{"a":"hs","id":"no spaces allowed","protocol":1,"protocolMinor":2}`)
	m := c.recv()
	if id, _ := m["id"].(string); id == "no spaces allowed" || len(id) != 32 {
		t.Fatalf("hs with an invalid id replied %s, want a fresh 32-hex id", mustJSON(m))
	}

	// Once a connection has used its src, a later hs does not change it.
	d := ts.connect(t)
	d.sendRaw(`{"a":"f","c":"docs","d":"hs-later"}`)
	d.expect(`{"a":"f","c":"docs","d":"hs-later","data":{"v":0,"type":null}}`)
	d.sendf(`{"a":"hs","id":%q}`, old+"x")
	d.expectf(`{"a":"hs","protocol":1,"protocolMinor":2,"id":%q,"type":"http://sharejs.org/types/JSONv0"}`, d.src)
}

func TestCreateSubscribeSubmitBroadcast(t *testing.T) {
	ts := startServer(t, Options{Logger: quiet}, collab.Options{})
	a, b := ts.connect(t), ts.connect(t)

	// A never-created document: type null, no data.
	b.sendRaw(`{"a":"s","c":"docs","d":"x","v":null}`)
	b.expect(`{"a":"s","c":"docs","d":"x","data":{"v":0,"type":null}}`)

	// Create with v null; B sees the create broadcast.
	a.sendRaw(`{"a":"op","c":"docs","d":"x","v":null,"seq":1,"x":{"source":true},"create":{"type":"text-unicode","data":"héllo 🌍"}}`)
	a.expectf(`{"a":"op","c":"docs","d":"x","v":0,"src":%q,"seq":1}`, a.src)
	b.expectf(`{"a":"op","c":"docs","d":"x","v":0,"src":%q,"seq":1,"create":{"type":%q,"data":"héllo 🌍"}}`, a.src, textURI)

	// An edit: ack to A without the op, broadcast to B with it.
	a.sendRaw(`{"seq":2,"op":[7,"!"],"v":1,"d":"x","c":"docs","a":"op"}`)
	a.expectf(`{"a":"op","c":"docs","d":"x","v":1,"src":%q,"seq":2}`, a.src)
	b.expectf(`{"a":"op","c":"docs","d":"x","v":1,"src":%q,"seq":2,"op":[7,"!"]}`, a.src)
	// A never gets its own op back.
	if extra := a.sync("docs", "x"); len(extra) != 0 {
		t.Fatalf("submitter received %s, want nothing", mustJSON(extra))
	}

	// Fetch with v null returns the snapshot; subscribe from a version
	// replays [v, head) first, own ops included, then a bare reply.
	b.sendRaw(`{"a":"f","c":"docs","d":"x","v":null}`)
	b.expectf(`{"a":"f","c":"docs","d":"x","data":{"v":2,"data":"héllo 🌍!","type":%q}}`, textURI)
	a.sendRaw(`{"a":"s","c":"docs","d":"x","v":0}`)
	a.expectf(`{"a":"op","c":"docs","d":"x","v":0,"src":%q,"seq":1,"create":{"type":%q,"data":"héllo 🌍"}}`, a.src, textURI)
	a.expectf(`{"a":"op","c":"docs","d":"x","v":1,"src":%q,"seq":2,"op":[7,"!"]}`, a.src)
	a.expect(`{"a":"s","c":"docs","d":"x"}`)
	// Fetch from a version sends the ops and a bare reply too.
	b.sendRaw(`{"a":"f","c":"docs","d":"x","v":1}`)
	b.expectf(`{"a":"op","c":"docs","d":"x","v":1,"src":%q,"seq":2,"op":[7,"!"]}`, a.src)
	b.expect(`{"a":"f","c":"docs","d":"x"}`)

	// Unsubscribe: B no longer gets broadcasts.
	b.sendRaw(`{"a":"u","c":"docs","d":"x"}`)
	b.expect(`{"a":"u","c":"docs","d":"x"}`)
	a.sendRaw(`{"a":"op","c":"docs","d":"x","v":2,"seq":3,"op":[{"d":1}]}`)
	a.expectf(`{"a":"op","c":"docs","d":"x","v":2,"src":%q,"seq":3}`, a.src)
	if extra := b.sync("docs", "x"); len(extra) != 0 {
		t.Fatalf("unsubscribed client received %s, want nothing", mustJSON(extra))
	}

	// Delete: acked, broadcast with del:true, then the doc has type null.
	b.sendRaw(`{"a":"s","c":"docs","d":"x","v":null}`)
	b.expectf(`{"a":"s","c":"docs","d":"x","data":{"v":3,"data":"éllo 🌍!","type":%q}}`, textURI)
	a.sendRaw(`{"a":"op","c":"docs","d":"x","v":3,"seq":4,"del":true}`)
	a.expectf(`{"a":"op","c":"docs","d":"x","v":3,"src":%q,"seq":4}`, a.src)
	b.expectf(`{"a":"op","c":"docs","d":"x","v":3,"src":%q,"seq":4,"del":true}`, a.src)
	b.sendRaw(`{"a":"f","c":"docs","d":"x"}`)
	b.expect(`{"a":"f","c":"docs","d":"x","data":{"v":4,"type":null}}`)
}

func TestSubmitGetsMissedOpsBeforeAck(t *testing.T) {
	ts := startServer(t, Options{Logger: quiet}, collab.Options{})
	a, b := ts.connect(t), ts.connect(t)
	a.create("docs", "m", "hello", 1)
	a.sendRaw(`{"a":"s","c":"docs","d":"m","v":1}`)
	a.expect(`{"a":"s","c":"docs","d":"m"}`)

	// B edits at the head: no transform, A gets the broadcast.
	b.sendRaw(`{"a":"op","c":"docs","d":"m","v":1,"seq":1,"op":["A"]}`)
	b.expectf(`{"a":"op","c":"docs","d":"m","v":1,"src":%q,"seq":1}`, b.src)
	a.expectf(`{"a":"op","c":"docs","d":"m","v":1,"src":%q,"seq":1,"op":["A"]}`, b.src)

	// C submits against v1 too: it first receives B's op, which its op
	// was transformed over, then its ack at v2.
	c := ts.connect(t)
	c.sendRaw(`{"a":"op","c":"docs","d":"m","v":1,"seq":1,"op":["B"]}`)
	c.expectf(`{"a":"op","c":"docs","d":"m","v":1,"src":%q,"seq":1,"op":["A"]}`, b.src)
	c.expectf(`{"a":"op","c":"docs","d":"m","v":2,"src":%q,"seq":1}`, c.src)
	// The server transforms the incoming op with "left": the later
	// insert at the same place lands first.
	a.expectf(`{"a":"op","c":"docs","d":"m","v":2,"src":%q,"seq":1,"op":["B"]}`, c.src)
	a.sendRaw(`{"a":"f","c":"docs","d":"m"}`)
	a.expectf(`{"a":"f","c":"docs","d":"m","data":{"v":3,"data":"BAhello","type":%q}}`, textURI)
}

func TestResendIsAcknowledgedOnce(t *testing.T) {
	ts := startServer(t, Options{Logger: quiet}, collab.Options{})
	a := ts.connect(t)
	a.create("docs", "r", "ab", 1)
	a.sendRaw(`{"a":"op","c":"docs","d":"r","v":1,"seq":2,"op":[1,"-"]}`)
	a.expectf(`{"a":"op","c":"docs","d":"r","v":1,"src":%q,"seq":2}`, a.src)
	// Another client edits, so the resend comes back behind the head.
	o := ts.connect(t)
	o.sendRaw(`{"a":"op","c":"docs","d":"r","v":2,"seq":1,"op":["Z"]}`)
	o.expectf(`{"a":"op","c":"docs","d":"r","v":2,"src":%q,"seq":1}`, o.src)

	// Same connection, same src and seq: acked at the original version.
	a.sendf(`{"a":"op","c":"docs","d":"r","v":1,"src":%q,"seq":2,"op":[1,"-"]}`, a.src)
	for {
		m := a.recv()
		if m["seq"] == float64(2) && m["src"] == a.src {
			a.expectEqual(m, fmt.Sprintf(`{"a":"op","c":"docs","d":"r","v":1,"src":%q,"seq":2}`, a.src))
			break
		}
	}

	// After a reconnect that reclaims the src, the resend is acked at the
	// original version too.
	src := a.src
	a.ws.Close()
	waitFor(t, func() bool { return ts.srv.Connections() == 1 })
	a2 := ts.dial(t, nil)
	a2.handshake(src)
	a2.sendf(`{"a":"op","c":"docs","d":"r","v":1,"src":%q,"seq":2,"op":[1,"-"]}`, src)
	for {
		m := a2.recv()
		if m["seq"] == float64(2) && m["src"] == src {
			a2.expectEqual(m, fmt.Sprintf(`{"a":"op","c":"docs","d":"r","v":1,"src":%q,"seq":2}`, src))
			break
		}
	}
	a2.sendRaw(`{"a":"f","c":"docs","d":"r"}`)
	a2.expectf(`{"a":"f","c":"docs","d":"r","data":{"v":3,"data":"Za-b","type":%q}}`, textURI)
}

// TestBulkBadIDAlone: in a bulk request with an array of ids, an id that
// is not a name coedit serves gets an error of its own and the others are
// served, as ShareDB's bulk replies carry errors per document: the
// sharedb client's startBulk/endBulk puts every document it subscribes in
// one request, and one bad id refused them all.
func TestBulkBadIDAlone(t *testing.T) {
	ts := startServer(t, Options{Logger: quiet}, collab.Options{})
	a, b := ts.connect(t), ts.connect(t)
	a.create("docs", "ok1", "one", 1)
	long := strings.Repeat("x", 300)
	b.sendf(`{"a":"bs","c":"docs","b":["ok1","ok2","%s","a\tb"]}`, long)
	m := b.recv()
	data, _ := m["data"].(map[string]any)
	for _, id := range []string{long, "a\tb"} {
		e, _ := data[id].(map[string]any)
		if errObj, _ := e["error"].(map[string]any); errObj["code"] != CodeBadlyFormed {
			t.Fatalf("bs reply %s: want an %s entry for %.20q", mustJSON(m), CodeBadlyFormed, id)
		}
		delete(data, id)
	}
	b.expectEqual(m, fmt.Sprintf(`{"a":"bs","c":"docs","data":{"ok1":{"v":1,"data":"one","type":%q},"ok2":{"v":0,"type":null}}}`, textURI))
	// The good ones are joined.
	a.sendRaw(`{"a":"op","c":"docs","d":"ok1","v":1,"seq":2,"op":["1"]}`)
	a.expectf(`{"a":"op","c":"docs","d":"ok1","v":1,"src":%q,"seq":2}`, a.src)
	b.expectf(`{"a":"op","c":"docs","d":"ok1","v":1,"src":%q,"seq":2,"op":["1"]}`, a.src)
	// bu of the same array leaves them all.
	b.sendf(`{"a":"bu","c":"docs","b":["ok1","ok2","%s","a\tb"]}`, long)
	b.expectf(`{"a":"bu","c":"docs","b":["ok1","ok2","%s","a\tb"]}`, long)
	// Each entry's error counts, as a whole request's did.
	_, body := ts.httpDo(t, "GET", "/metrics", "", "", nil)
	if !strings.Contains(body, `coedit_errors_total{code="ERR_MESSAGE_BADLY_FORMED"} 2`) {
		t.Errorf("/metrics: %s", grepLines(body, "ERR_MESSAGE_BADLY_FORMED"))
	}
}

func TestBulkFetchSubscribeUnsubscribe(t *testing.T) {
	ts := startServer(t, Options{Logger: quiet, MaxNameLen: 8192}, collab.Options{})
	a, b := ts.connect(t), ts.connect(t)
	a.create("docs", "b1", "one", 1)
	a.create("docs", "b2", "two", 2)

	// bf with ids: snapshots in data; a never-created doc is type null;
	// a document the store refuses fails alone.
	long := make([]byte, 5000)
	for i := range long {
		long[i] = 'k'
	}
	b.sendf(`{"a":"bf","c":"docs","b":["b1","none","%s"]}`, long)
	m := b.recv()
	data, _ := m["data"].(map[string]any)
	if e, _ := data[string(long)].(map[string]any); e == nil || e["error"] == nil {
		t.Fatalf("bf reply %s: want an error entry for the long id", mustJSON(m))
	}
	delete(data, string(long))
	b.expectEqual(m, fmt.Sprintf(`{"a":"bf","c":"docs","data":{"b1":{"v":1,"data":"one","type":%q},"none":{"v":0,"type":null}}}`, textURI))

	// bs with ids subscribes and returns snapshots.
	b.sendRaw(`{"a":"bs","c":"docs","b":["b1","b2"]}`)
	b.expectf(`{"a":"bs","c":"docs","data":{"b1":{"v":1,"data":"one","type":%[1]q},"b2":{"v":1,"data":"two","type":%[1]q}}}`, textURI)
	a.sendRaw(`{"a":"op","c":"docs","d":"b2","v":1,"seq":3,"op":["2"]}`)
	a.expectf(`{"a":"op","c":"docs","d":"b2","v":1,"src":%q,"seq":3}`, a.src)
	b.expectf(`{"a":"op","c":"docs","d":"b2","v":1,"src":%q,"seq":3,"op":["2"]}`, a.src)

	// bu unsubscribes them all.
	b.sendRaw(`{"a":"bu","c":"docs","b":["b1","b2"]}`)
	b.expect(`{"a":"bu","c":"docs","b":["b1","b2"]}`)
	a.sendRaw(`{"a":"op","c":"docs","d":"b1","v":1,"seq":4,"op":["1"]}`)
	a.expectf(`{"a":"op","c":"docs","d":"b1","v":1,"src":%q,"seq":4}`, a.src)
	if extra := b.sync("docs", "b1"); len(extra) != 0 {
		t.Fatalf("after bu received %s, want nothing", mustJSON(extra))
	}

	// bs with versions: the missed ops, then a bare reply echoing b.
	b.sendRaw(`{"a":"bs","c":"docs","b":{"b1":1,"b2":2}}`)
	b.expectf(`{"a":"op","c":"docs","d":"b1","v":1,"src":%q,"seq":4,"op":["1"]}`, a.src)
	b.expect(`{"a":"bs","c":"docs","b":{"b1":1,"b2":2}}`)
	// bf with versions: the same, without subscribing.
	c := ts.connect(t)
	c.sendRaw(`{"a":"bf","c":"docs","b":{"b2":0}}`)
	c.expectf(`{"a":"op","c":"docs","d":"b2","v":0,"src":%q,"seq":2,"create":{"type":%q,"data":"two"}}`, a.src, textURI)
	c.expectf(`{"a":"op","c":"docs","d":"b2","v":1,"src":%q,"seq":3,"op":["2"]}`, a.src)
	c.expect(`{"a":"bf","c":"docs","b":{"b2":0}}`)
	// With versions, one failing document fails the request.
	c.sendf(`{"a":"bf","c":"docs","b":{"b2":0,"%s":0}}`, long)
	var got map[string]any
	for got = c.recv(); got["a"] == "op"; got = c.recv() {
	}
	checkErrorReply(t, got, fmt.Sprintf(`{"a":"bf","c":"docs","b":{"b2":0,"%s":0}}`, long), CodeUnknownError)
	// An empty bulk request is answered at once.
	c.sendRaw(`{"a":"bs","c":"docs","b":[]}`)
	c.expect(`{"a":"bs","c":"docs","b":[]}`)
}

func TestSnapshotByVersionAndTime(t *testing.T) {
	// A clock that moves 1s per commit, so every op has its own time.
	var mu sync.Mutex
	now := time.UnixMilli(1_000_000)
	clock := func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		now = now.Add(time.Second)
		return now
	}
	ts := startServer(t, Options{Logger: quiet}, collab.Options{Now: clock})
	a := ts.connect(t)
	a.create("docs", "h", "a", 1)
	a.sendRaw(`{"a":"op","c":"docs","d":"h","v":1,"seq":2,"op":[1,"b"]}`)
	a.expectf(`{"a":"op","c":"docs","d":"h","v":1,"src":%q,"seq":2}`, a.src)
	a.sendRaw(`{"a":"op","c":"docs","d":"h","v":2,"seq":3,"op":[2,"c"]}`)
	a.expectf(`{"a":"op","c":"docs","d":"h","v":2,"src":%q,"seq":3}`, a.src)
	recs, err := ts.hub.Ops(context.Background(), collab.Key{Collection: "docs", ID: "h"}, 0, 3)
	if err != nil || len(recs) != 3 {
		t.Fatalf("Ops = %d records, %v; want 3", len(recs), err)
	}

	for _, tc := range []struct{ req, want string }{
		{`{"a":"nf","id":1,"c":"docs","d":"h","v":0}`, `{"a":"nf","id":1,"v":0,"type":null,"m":null}`},
		{`{"a":"nf","id":2,"c":"docs","d":"h","v":1}`, `{"a":"nf","id":2,"v":1,"type":"` + textURI + `","data":"a","m":null}`},
		{`{"a":"nf","id":3,"c":"docs","d":"h","v":2}`, `{"a":"nf","id":3,"v":2,"type":"` + textURI + `","data":"ab","m":null}`},
		{`{"a":"nf","id":4,"c":"docs","d":"h","v":null}`, `{"a":"nf","id":4,"v":3,"type":"` + textURI + `","data":"abc","m":null}`},
		{fmt.Sprintf(`{"a":"nt","id":5,"c":"docs","d":"h","ts":%d}`, recs[1].Time), `{"a":"nt","id":5,"v":2,"type":"` + textURI + `","data":"ab","m":null}`},
		{fmt.Sprintf(`{"a":"nt","id":6,"c":"docs","d":"h","ts":%d}`, recs[0].Time-1), `{"a":"nt","id":6,"v":0,"type":null,"m":null}`},
		{`{"a":"nt","id":7,"c":"docs","d":"h","ts":null}`, `{"a":"nt","id":7,"v":3,"type":"` + textURI + `","data":"abc","m":null}`},
		{`{"a":"nf","id":"str-id","c":"docs","d":"never","v":0}`, `{"a":"nf","id":"str-id","v":0,"type":null,"m":null}`},
	} {
		a.sendRaw(tc.req)
		a.expect(tc.want)
	}
	a.sendRaw(`{"a":"nf","id":9,"c":"docs","d":"h","v":4}`)
	a.expectError(`{"a":"nf","id":9,"c":"docs","d":"h","v":4}`, CodeVersionNewer)
}

// TestPresenceAfterReconnect: a client that reconnects (reclaims its
// src) is asked for its presence when it subscribes a channel again, so
// that its caret, cleared for the others at the drop, comes back without
// waiting for it to move; a client that did not reconnect is not asked.
func TestPresenceAfterReconnect(t *testing.T) {
	ts := startServer(t, Options{Logger: quiet}, collab.Options{})
	a, b := ts.connect(t), ts.connect(t)
	for _, c := range []*tclient{a, b} {
		c.sendRaw(`{"a":"ps","ch":"room","seq":1}`)
		c.expect(`{"a":"ps","ch":"room","seq":1}`)
	}
	a.expect(`{"a":"pr","ch":"room"}`)
	a.sendRaw(`{"a":"p","ch":"room","id":"caret","p":{"at":3},"pv":1}`)
	a.expectf(`{"a":"p","ch":"room","src":%q,"id":"caret","p":{"at":3},"pv":1}`, a.src)
	b.expectf(`{"a":"p","ch":"room","src":%q,"id":"caret","p":{"at":3},"pv":1}`, a.src)

	a.ws.Close()
	b.expectf(`{"a":"p","ch":"room","src":%q,"id":"caret","p":null,"pv":1}`, a.src)
	again := ts.dial(t, nil)
	again.handshake(a.src)
	again.sendRaw(`{"a":"ps","ch":"room","seq":2}`)
	again.expect(`{"a":"ps","ch":"room","seq":2}`)
	again.expect(`{"a":"pr","ch":"room"}`)
	b.expect(`{"a":"pr","ch":"room"}`)

	// A fresh connection's subscribe asks the others only.
	c := ts.connect(t)
	c.sendRaw(`{"a":"ps","ch":"room","seq":1}`)
	c.expect(`{"a":"ps","ch":"room","seq":1}`)
	again.expect(`{"a":"pr","ch":"room"}`)
	b.expect(`{"a":"pr","ch":"room"}`)
	c.sendRaw(`{"a":"pp"}`)
	c.expect(`{"a":"pp"}`)
}

func TestPresence(t *testing.T) {
	ts := startServer(t, Options{Logger: quiet}, collab.Options{})
	a, b := ts.connect(t), ts.connect(t)
	a.create("docs", "p", "hello world", 1)
	for _, c := range []*tclient{a, b} {
		c.sendRaw(`{"a":"s","c":"docs","d":"p","v":1}`)
		c.expect(`{"a":"s","c":"docs","d":"p"}`)
	}
	a.sendRaw(`{"a":"ps","ch":"docs.p","seq":1}`)
	a.expect(`{"a":"ps","ch":"docs.p","seq":1}`)
	// B joining asks A (the other subscriber) to re-send its presence.
	b.sendRaw(`{"a":"ps","ch":"docs.p","seq":1}`)
	b.expect(`{"a":"ps","ch":"docs.p","seq":1}`)
	a.expect(`{"a":"pr","ch":"docs.p"}`)

	// Text presence: echoed to A as the ack and relayed to B, with src.
	a.sendf(`{"a":"p","ch":"docs.p","id":"caret-a","p":{"index":6,"length":5},"pv":1,"c":"docs","d":"p","v":1,"t":%q}`, textURI)
	want := fmt.Sprintf(`{"a":"p","ch":"docs.p","src":%q,"id":"caret-a","p":{"index":6,"length":5},"pv":1,"c":"docs","d":"p","v":1,"t":%q}`, a.src, textURI)
	a.expect(want)
	b.expect(want)

	// B inserts 3 code points at 0; A's presence sent at the old version
	// is transformed to the head before it is relayed.
	b.sendRaw(`{"a":"op","c":"docs","d":"p","v":1,"seq":1,"op":[">> "]}`)
	b.expectf(`{"a":"op","c":"docs","d":"p","v":1,"src":%q,"seq":1}`, b.src)
	a.expectf(`{"a":"op","c":"docs","d":"p","v":1,"src":%q,"seq":1,"op":[">> "]}`, b.src)
	a.sendf(`{"a":"p","ch":"docs.p","id":"caret-a","p":{"index":1,"length":2},"pv":2,"c":"docs","d":"p","v":1,"t":%q}`, textURI)
	want = fmt.Sprintf(`{"a":"p","ch":"docs.p","src":%q,"id":"caret-a","p":{"index":4,"length":2},"pv":2,"c":"docs","d":"p","v":2,"t":%q}`, a.src, textURI)
	a.expect(want)
	b.expect(want)

	// A value that is not {index,length} passes through untransformed.
	a.sendf(`{"a":"p","ch":"docs.p","id":"caret-a","p":{"name":"Ann","color":"#f00"},"pv":3,"c":"docs","d":"p","v":2,"t":%q}`, textURI)
	want = fmt.Sprintf(`{"a":"p","ch":"docs.p","src":%q,"id":"caret-a","p":{"name":"Ann","color":"#f00"},"pv":3,"c":"docs","d":"p","v":2,"t":%q}`, a.src, textURI)
	a.expect(want)
	b.expect(want)

	// Untyped presence on any channel passes through.
	for _, c := range []*tclient{a, b} {
		c.sendRaw(`{"a":"ps","ch":"room","seq":2}`)
		c.expect(`{"a":"ps","ch":"room","seq":2}`)
	}
	a.expect(`{"a":"pr","ch":"room"}`)
	b.sendRaw(`{"a":"p","ch":"room","id":"me","p":["any",{"json":1}],"pv":7}`)
	want = fmt.Sprintf(`{"a":"p","ch":"room","src":%q,"id":"me","p":["any",{"json":1}],"pv":7}`, b.src)
	b.expect(want)
	a.expect(want)

	// pr from A: B is asked, A gets a bare {"a":"pr"}.
	a.sendRaw(`{"a":"pr","ch":"room"}`)
	a.expect(`{"a":"pr"}`)
	b.expect(`{"a":"pr","ch":"room"}`)

	// pu: B's presence on room is cleared for A.
	b.sendRaw(`{"a":"pu","ch":"room","seq":3}`)
	b.expect(`{"a":"pu","ch":"room","seq":3}`)
	a.expectf(`{"a":"p","ch":"room","src":%q,"id":"me","p":null,"pv":7}`, b.src)

	// A disconnecting clears its document presence for B.
	a.ws.Close()
	m := b.recv()
	if m["a"] != "p" || m["id"] != "caret-a" || m["p"] != nil || m["src"] != a.src {
		t.Fatalf("after A left, B received %s, want caret-a cleared", mustJSON(m))
	}
}

func TestPingQueriesAndUnknownActions(t *testing.T) {
	ts := startServer(t, Options{Logger: quiet}, collab.Options{})
	c := ts.connect(t)
	c.sendRaw(`{"a":"pp"}`)
	c.expect(`{"a":"pp"}`)
	c.sendRaw(`{"a":"qf","id":1,"c":"docs","q":{"$sort":{"x":1}},"o":{}}`)
	c.expectError(`{"a":"qf","id":1,"c":"docs","q":{"$sort":{"x":1}},"o":{}}`, CodeQueryNotSupported)
	c.sendRaw(`{"a":"qs","id":2,"c":"docs","q":{}}`)
	c.expectError(`{"a":"qs","id":2,"c":"docs","q":{}}`, CodeQueryNotSupported)
	c.sendRaw(`{"a":"qu","id":2}`)
	c.expect(`{"a":"qu","id":2}`)
	c.sendRaw(`{"a":"init","protocol":1}`)
	c.expectError(`{"a":"init","protocol":1}`, CodeUnknownAction)
}

// waitFor polls cond until it holds, failing after 10s.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatal("condition not reached within 10s")
		case <-time.After(5 * time.Millisecond):
		}
	}
}
