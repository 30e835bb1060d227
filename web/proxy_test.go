package web

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/redis/go-redis/v9"

	"github.com/coedit/coedit/collab/redisrelay"
	"github.com/coedit/coedit/internal/redistest"
)

// fastRoster refreshes every 100 ms, so that tests see members come and
// go quickly.
var fastRoster = redisrelay.RosterOptions{MemberTTL: 300 * time.Millisecond, DownFor: 5 * time.Second}

// routedPair starts two nodes of one cluster that route editors by
// document, and waits until each knows both.
func routedPair(t *testing.T) (a, b *testServer, ra, rb *redisrelay.Roster) {
	t.Helper()
	rs := redistest.StartServer(t, redistest.ServerOptions{})
	prefix := "web:" + t.Name() + ":"
	a, ra = startClusterNode(t, rs.Addr(), prefix, &fastRoster)
	b, rb = startClusterNode(t, rs.Addr(), prefix, &fastRoster)
	waitFor(t, func() bool {
		return len(ra.Members()) == 2 && len(rb.Members()) == 2 && ra.PeerToken() != "" && ra.PeerToken() == rb.PeerToken()
	})
	return a, b, ra, rb
}

// ownedBy returns a document id of collection "docs" whose editors r
// routes to owner ("" for r's own node).
func ownedBy(t *testing.T, r *redisrelay.Roster, owner string) string {
	t.Helper()
	for i := 0; i < 1000; i++ {
		id := fmt.Sprintf("doc%d", i)
		if r.Route("docs/"+id) == owner {
			return id
		}
	}
	t.Fatalf("no document of 1000 routed to %q", owner)
	return ""
}

// dialDoc opens a WebSocket to ts naming document docs/id, with hdr.
func (ts *testServer) dialDoc(t *testing.T, id string, hdr http.Header) (*tclient, *http.Response, error) {
	t.Helper()
	ws, resp, err := websocket.DefaultDialer.Dial(ts.wsURL+"?doc="+url.QueryEscape("docs/"+id), hdr)
	if err != nil {
		return nil, resp, err
	}
	t.Cleanup(func() { ws.Close() })
	return &tclient{t: t, ws: ws}, resp, nil
}

// TestRoutedEditorsMeetOnOneNode: an editor that names its document and
// reaches the other node is passed to the document's node, so both
// editors share one session there: the other node runs no session for
// it and commits nothing, Redis sees no race, and both converge.
func TestRoutedEditorsMeetOnOneNode(t *testing.T) {
	a, b, ra, rb := routedPair(t)
	aAddr := a.http.Listener.Addr().String()
	id := ownedBy(t, ra, "")
	if got := rb.Route("docs/" + id); got != aAddr {
		t.Fatalf("the other node routes docs/%s to %q, want %q: the nodes disagree", id, got, aAddr)
	}

	viaB, _, err := b.dialDoc(t, id, nil)
	if err != nil {
		t.Fatal(err)
	}
	viaB.handshake("")
	viaB.create("docs", id, "", 1)
	atA, _, err := a.dialDoc(t, id, nil)
	if err != nil {
		t.Fatal(err)
	}
	atA.handshake("")
	for _, c := range []*tclient{viaB, atA} {
		c.sendf(`{"a":"s","c":"docs","d":%q}`, id)
		c.expectf(`{"a":"s","c":"docs","d":%q,"data":{"v":1,"data":"","type":%q}}`, id, textURI)
	}
	// Each sends ten ops in turn; each sees the other's.
	for i := 0; i < 10; i++ {
		v := 1 + 2*i
		viaB.sendf(`{"a":"op","c":"docs","d":%q,"v":%d,"seq":%d,"op":["b"]}`, id, v, 2+i)
		viaB.expectf(`{"a":"op","c":"docs","d":%q,"v":%d,"src":%q,"seq":%d}`, id, v, viaB.src, 2+i)
		atA.expectf(`{"a":"op","c":"docs","d":%q,"v":%d,"src":%q,"seq":%d,"op":["b"]}`, id, v, viaB.src, 2+i)
		atA.sendf(`{"a":"op","c":"docs","d":%q,"v":%d,"seq":%d,"op":["a"]}`, id, v+1, 1+i)
		atA.expectf(`{"a":"op","c":"docs","d":%q,"v":%d,"src":%q,"seq":%d}`, id, v+1, atA.src, 1+i)
		viaB.expectf(`{"a":"op","c":"docs","d":%q,"v":%d,"src":%q,"seq":%d,"op":["a"]}`, id, v+1, atA.src, 1+i)
	}
	checkPassed(t, b, 1, "the other node passes its editor on")
	if st := b.hub.Stats(); st.SessionsStarted != 0 || st.OpsCommitted != 0 {
		t.Errorf("the other node started %d sessions and committed %d ops, want none: its editor was not passed on", st.SessionsStarted, st.OpsCommitted)
	}
	if st := a.hub.Stats(); st.OpsCommitted != 21 || st.CommitConflicts != 0 {
		t.Errorf("the document's node committed %d ops with %d conflicts, want 21 with none", st.OpsCommitted, st.CommitConflicts)
	}
	// The passed connection's close reaches the client through the
	// other node, and both nodes let go of it.
	viaB.ws.Close()
	waitFor(t, func() bool {
		return a.srv.Connections() == 1 && b.srv.Connections() == 0 && admittedOf(b.srv) == 0
	})
}

// checkPassed reports a test error unless ts has passed want upgrades on
// to other nodes; why says what the count shows. It returns whether the
// count was want.
func checkPassed(t *testing.T, ts *testServer, want float64, why string) bool {
	t.Helper()
	got := scrape(t, ts)["coedit_ws_passed_total"]
	if got != want {
		t.Errorf("coedit_ws_passed_total = %v, want %v: %s", got, want, why)
	}
	return got == want
}

// admittedOf is how many WebSocket slots s holds (its own connections
// and the ones it passed on).
func admittedOf(s *Server) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.admitted
}

// TestPassedClientAddressNeedsThePeerToken: a node counts a passed
// upgrade against the client address the passing node gives only when it
// carries the cluster's peer token; with a wrong one, the TCP peer's
// address counts, and a request that says it was passed on is never
// passed again.
func TestPassedClientAddressNeedsThePeerToken(t *testing.T) {
	a, b, ra, _ := routedPair(t)
	a.srv.opts.MaxConnsPerAddr = 1
	id := ownedBy(t, ra, "")
	hdr := func(token, client string) http.Header {
		return http.Header{headerPeer: {token}, headerClient: {client}}
	}
	dial := func(h http.Header) int {
		c, resp, err := a.dialDoc(t, id, h)
		if err != nil {
			if resp == nil {
				t.Fatalf("dial: %v", err)
			}
			return resp.StatusCode
		}
		c.handshake("")
		return http.StatusSwitchingProtocols
	}
	tok := ra.PeerToken()
	for _, step := range []struct {
		token, client string
		want          int
	}{
		{"wrong-token-0123456789", "10.1.1.1", 101}, // counts as 127.0.0.1
		{"wrong-token-0123456789", "10.1.1.2", 429}, // 127.0.0.1 again
		{tok, "10.1.1.3", 101},
		{tok, "10.1.1.4", 101},
		{tok, "10.1.1.3", 429},
	} {
		if got := dial(hdr(step.token, step.client)); got != step.want {
			t.Fatalf("upgrade with token %q for client %s: status %d, want %d", step.token, step.client, got, step.want)
		}
	}

	// At the other node, an upgrade for a's document that says it was
	// passed on already (with any token) is served there.
	c, _, err := b.dialDoc(t, id, hdr("not-the-token-0123456789", "10.2.2.2"))
	if err != nil {
		t.Fatal(err)
	}
	c.handshake("")
	c.sendf(`{"a":"s","c":"docs","d":%q}`, id)
	c.expectf(`{"a":"s","c":"docs","d":%q,"data":{"v":0,"type":null}}`, id)
	checkPassed(t, b, 0, "an upgrade that says it was passed on is not passed again")
	if b.hub.Stats().SessionsStarted == 0 {
		t.Error("the other node served no session for it")
	}
}

// TestUnreachableNodeIsServedHere: a member whose address takes no
// connection (a node killed before its entry lapsed) does not strand its
// documents' editors: the upgrade is served where it landed, and the
// member is passed over until it is back.
func TestUnreachableNodeIsServedHere(t *testing.T) {
	rs := redistest.StartServer(t, redistest.ServerOptions{})
	prefix := "web:" + t.Name() + ":"
	a, ra := startClusterNode(t, rs.Addr(), prefix, &fastRoster)
	// A dead member: an entry for an address nobody listens at.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()
	deadRoster := joinRoster(t, rs.Addr(), prefix, dead)
	waitFor(t, func() bool { return len(ra.Members()) == 2 })
	id := ownedBy(t, ra, dead)

	c, _, err := a.dialDoc(t, id, nil)
	if err != nil {
		t.Fatal(err)
	}
	c.handshake("")
	c.create("docs", id, "here", 1)
	if got := scrape(t, a)["coedit_ws_pass_failures_total"]; got != 1 {
		t.Errorf("pass failures = %v, want 1", got)
	}
	if got := ra.Route("docs/" + id); got != "" {
		t.Errorf("after the failure the document routes to %q, want this node while the dead one is passed over", got)
	}
	deadRoster.Close()
}

// joinRoster adds addr to the roster of the cluster at prefix, as a
// node that advertises it would, until the test ends or Close.
func joinRoster(t *testing.T, redisAddr, prefix, addr string) *redisrelay.Roster {
	t.Helper()
	client := redis.NewClient(&redis.Options{Addr: redisAddr, ContextTimeoutEnabled: true, MaxRetries: 1})
	relay, err := redisrelay.New(redisrelay.Options{Client: client, Prefix: prefix, NodeID: "ghost", Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	ro, err := relay.NewRoster(addr, fastRoster)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ro.Close()
		relay.Close()
		client.Close()
	})
	return ro
}

// TestRoutedEditorFollowsTheDocumentWhenItsNodeStops: an editor passed to
// the document's node is closed with 1001 when that node shuts down, and
// reconnecting through the same node it is served there (the stopped
// node left the roster), with every acknowledged op.
func TestRoutedEditorFollowsTheDocumentWhenItsNodeStops(t *testing.T) {
	a, b, ra, rb := routedPair(t)
	id := ownedBy(t, ra, "")
	c, _, err := b.dialDoc(t, id, nil)
	if err != nil {
		t.Fatal(err)
	}
	c.handshake("")
	c.create("docs", id, "", 1)
	for i := 0; i < 5; i++ {
		c.sendf(`{"a":"op","c":"docs","d":%q,"v":%d,"seq":%d,"op":[%q]}`, id, 1+i, 2+i, fmt.Sprint(i))
		c.expectf(`{"a":"op","c":"docs","d":%q,"v":%d,"src":%q,"seq":%d}`, id, 1+i, c.src, 2+i)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ra.Close()
	if err := a.srv.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.closeErr(10 * time.Second); !websocket.IsCloseError(err, CloseGoingAway) {
		t.Fatalf("the passed editor's connection ended with %v, want close 1001 from the stopping node", err)
	}
	waitFor(t, func() bool { return len(rb.Members()) == 1 })
	again, _, err := b.dialDoc(t, id, nil)
	if err != nil {
		t.Fatal(err)
	}
	again.handshake(c.src)
	again.sendf(`{"a":"f","c":"docs","d":%q}`, id)
	again.expectf(`{"a":"f","c":"docs","d":%q,"data":{"v":6,"data":"43210","type":%q}}`, id, textURI)
	if b.hub.Stats().SessionsStarted == 0 {
		t.Error("the other node served no session after the document's node stopped")
	}
}

// TestPassedClientThatStopsReadingIsLetGo: a passed client that stops
// reading is dropped by the document's node after its write timeout, as
// a client served there would be; the passing node then lets go of its
// side too. Its copy to the client used to block for ever on the full
// socket, holding the connection's slot, descriptors and goroutines.
func TestPassedClientThatStopsReadingIsLetGo(t *testing.T) {
	a, b, ra, _ := routedPair(t)
	for _, ts := range []*testServer{a, b} {
		ts.srv.opts.WriteTimeout = 300 * time.Millisecond
	}
	id := ownedBy(t, ra, "")
	slow, _, err := b.dialDoc(t, id, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !checkPassed(t, b, 1, "the slow client must be a passed one") {
		t.FailNow()
	}
	slow.handshake("")
	slow.create("docs", id, "", 1)
	slow.sendf(`{"a":"s","c":"docs","d":%q}`, id)
	slow.expectf(`{"a":"s","c":"docs","d":%q,"data":{"v":1,"data":"","type":%q}}`, id, textURI)
	// slow reads nothing more; another editor sends big ops.
	w, _, err := a.dialDoc(t, id, nil)
	if err != nil {
		t.Fatal(err)
	}
	w.handshake("")
	big := jsonString(strings.Repeat("x", 400<<10))
	for i := 0; i < 24; i++ {
		w.sendf(`{"a":"op","c":"docs","d":%q,"v":%d,"seq":%d,"op":[%s]}`, id, 1+i, 1+i, big)
		w.expectf(`{"a":"op","c":"docs","d":%q,"v":%d,"src":%q,"seq":%d}`, id, 1+i, w.src, 1+i)
	}
	waitFor(t, func() bool { return admittedOf(b.srv) == 0 })
}

// TestPassedUpgradeSkipsTheHostCheck: nodes that answer for different
// names (each its own --addr host, say) pass upgrades to each other: the
// passing node checked the client's Host, and the document's node takes
// its word for it, with the peer token.
func TestPassedUpgradeSkipsTheHostCheck(t *testing.T) {
	a, b, ra, _ := routedPair(t)
	a.srv.opts.AllowedHosts = []string{"node-a.example"}
	b.srv.opts.AllowedHosts = []string{"node-b.example"}
	id := ownedBy(t, ra, "")
	c, resp, err := b.dialDoc(t, id, http.Header{"Host": {"node-b.example"}})
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		t.Fatalf("upgrade at node b for a's document, Host node-b.example: %v (status %d)", err, status)
	}
	c.handshake("")
	if !checkPassed(t, b, 1, "node b passes the upgrade for a's document on") {
		t.FailNow()
	}
	// The Host check still holds for everyone else, at both nodes.
	for _, ts := range []*testServer{a, b} {
		if _, resp, err := ts.dialDoc(t, id, http.Header{"Host": {"evil.example"}}); err == nil || resp == nil || resp.StatusCode != http.StatusMisdirectedRequest {
			t.Fatalf("upgrade with Host evil.example: %v, %v; want 421", err, resp)
		}
	}
}
