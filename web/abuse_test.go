package web

import (
	"fmt"
	"math"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// TestFramesOverTheRateWait: every frame, malformed ones included, takes
// a token from the message bucket before it is answered; past the burst
// a frame waits for its token instead of being refused, so a client over
// the rate is slowed to it and every frame is answered as it would be.
func TestFramesOverTheRateWait(t *testing.T) {
	const rate, burst = 20, 4
	ts := startServer(t, Options{Logger: quiet, MessagesPerSecond: rate, MessagesBurst: burst, MaxBadFrames: 1000}, startHubOpts())
	start := time.Now()
	c := ts.connect(t) // the handshake takes one token
	for i := 0; i < burst-1; i++ {
		c.ws.WriteMessage(websocket.BinaryMessage, []byte(`{"a":"pp"}`))
		c.expectError("", CodeBadlyFormed)
	}
	// The bucket is empty: each frame now waits an interval (50 ms).
	const n = 10
	for i := 0; i < n; i++ {
		if i%2 == 0 {
			c.sendRaw(`{"a":"pp"}`)
		} else {
			c.sendRaw("[1,2]")
		}
	}
	for i := 0; i < n; i++ {
		m := c.recv()
		if i%2 == 0 {
			if m["a"] != "pp" || m["error"] != nil {
				t.Fatalf("ping %d past the burst: reply %s, want a pong", i, mustJSON(m))
			}
		} else if e, _ := m["error"].(map[string]any); e["code"] != CodeBadlyFormed {
			t.Fatalf("frame %d past the burst: reply %s, want %s", i, mustJSON(m), CodeBadlyFormed)
		}
	}
	// The bucket gave the handshake, burst-1 frames and n more: burst at
	// once, the rest at the rate. A lower bound only: a slow machine
	// answers later, never sooner.
	if elapsed, least := time.Since(start), time.Duration(n)*time.Second/rate; elapsed < least {
		t.Fatalf("%d frames past the burst answered in %v, want at least %v at %d a second", n, elapsed, least, rate)
	}
	_, body := ts.httpDo(t, "GET", "/metrics", "", "", nil)
	if !strings.Contains(body, `coedit_rate_wait_seconds_total{limit="messages"} 0.`) {
		t.Errorf("/metrics: the readers' waits are not counted:\n%s", grepLines(body, "coedit_rate_wait"))
	}
}

// grepLines returns the lines of s that contain sub.
func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestMalformedFloodClosedWith1008: a client flooding malformed frames is
// answered at most for the message burst and the bad-frame allowance,
// then closed with 1008; the flood is counted in /metrics, and a
// well-behaved client on the same node is unaffected.
func TestMalformedFloodClosedWith1008(t *testing.T) {
	checkNoLeaks(t)
	const maxBad = 50
	ts := startServer(t, Options{Logger: quiet, MessagesPerSecond: 1000, MessagesBurst: 10, MaxBadFrames: maxBad}, startHubOpts())
	good := ts.connect(t)
	good.create("docs", "calm", "steady", 1)

	flood := ts.dial(t, nil)
	start := time.Now()
	sent := 0
	for i := 0; i < 3000; i++ {
		var err error
		switch i % 3 {
		case 0:
			err = flood.ws.WriteMessage(websocket.BinaryMessage, []byte{0, 1, 2})
		case 1:
			err = flood.ws.WriteMessage(websocket.TextMessage, []byte("\xff"))
		default:
			err = flood.ws.WriteMessage(websocket.TextMessage, []byte("not json"))
		}
		if err != nil {
			break // the server has closed the connection
		}
		sent++
	}
	replies := 0
	closeErr := flood.readUntilClosed(func(map[string]any) { replies++ })
	elapsed := time.Since(start)
	if !isCloseCode(closeErr, ClosePolicyViolation) {
		t.Fatalf("flood of %d frames ended with %v, want close %d", sent, closeErr, ClosePolicyViolation)
	}
	// The bad-frame allowance refills at maxBad a minute while the flood
	// runs: allow for what refilled, nothing more.
	refill := int(math.Ceil(elapsed.Seconds() * maxBad / 60))
	if replies > maxBad+refill {
		t.Fatalf("%d of %d malformed frames answered in %v, want at most %d", replies, sent, elapsed, maxBad+refill)
	}

	// The bystander still works.
	good.sendRaw(`{"a":"op","c":"docs","d":"calm","v":1,"seq":2,"op":["still "]}`)
	good.expectf(`{"a":"op","c":"docs","d":"calm","v":1,"src":%q,"seq":2}`, good.src)
	if got := good.fetchData("docs", "calm"); got != "still steady" {
		t.Fatalf("bystander's document = %q", got)
	}
	_, body := ts.httpDo(t, "GET", "/metrics", "", "", nil)
	for _, want := range []string{`coedit_abuse_closed_total 1`, `coedit_bad_frames_total{reason="binary"}`, `coedit_bad_frames_total{reason="json"}`} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

// TestFloodCloseWritesWhatWasQueued: a client closed with 1008 for
// flooding gets every reply queued before the close, then the close: its
// good frames answered, and each malformed one within the allowance
// refused with its error, in order. Dropping the queue at the close told
// such a client nothing of why, and left replies it was owed unsent.
func TestFloodCloseWritesWhatWasQueued(t *testing.T) {
	checkNoLeaks(t)
	const good, maxBad = 30, 20
	ts := startServer(t, Options{Logger: quiet, MessagesPerSecond: 1e6, MaxBadFrames: maxBad}, startHubOpts())
	c := ts.connect(t)
	sent := 0
	for i := 0; i < good+maxBad+10; i++ {
		frame := `{"a":"pp"}`
		if i >= good {
			frame = "not json"
		}
		if err := c.ws.WriteMessage(websocket.TextMessage, []byte(frame)); err != nil {
			break // the server has closed the connection
		}
		sent++
	}
	pongs, refused := 0, 0
	closeErr := c.readUntilClosed(func(m map[string]any) {
		e, _ := m["error"].(map[string]any)
		switch {
		case e == nil && m["a"] == "pp" && refused == 0:
			pongs++
		case e != nil && e["code"] == CodeBadlyFormed:
			refused++
		default:
			t.Fatalf("after %d pongs and %d refusals: unexpected reply %s", pongs, refused, mustJSON(m))
		}
	})
	if !isCloseCode(closeErr, ClosePolicyViolation) {
		t.Fatalf("flood of %d frames ended with %v, want close %d", sent, closeErr, ClosePolicyViolation)
	}
	if pongs != good || refused != maxBad {
		t.Fatalf("before the close: %d pongs and %d refusals, want %d and %d", pongs, refused, good, maxBad)
	}
}

// TestConnectionLimits: past MaxConnsPerAddr an upgrade from the same
// address gets 429, past MaxConns any upgrade gets 503, each with a coded
// error; a slot is free again once its connection has closed.
func TestConnectionLimits(t *testing.T) {
	checkNoLeaks(t)
	perAddr := startServer(t, Options{Logger: quiet, MaxConnsPerAddr: 2}, startHubOpts())
	a := perAddr.connect(t)
	perAddr.connect(t)
	perAddr.dialRefused(t, perAddr.wsURL, nil, http.StatusTooManyRequests, CodeTooManyConnections)
	a.ws.Close()
	waitFor(t, func() bool { return perAddr.srv.Connections() == 1 })
	perAddr.connect(t)

	full := startServer(t, Options{Logger: quiet, MaxConns: 1}, startHubOpts())
	full.connect(t)
	full.dialRefused(t, full.wsURL, nil, http.StatusServiceUnavailable, CodeServerFull)
}

// TestHandshakeFlood: hundreds of connections that send half an upgrade
// request and stall do not keep a well-behaved client from connecting,
// which must finish its handshake within a second. The connection limits
// are set far below the flood: a stalled upgrade must hold no slot of
// MaxConns or MaxConnsPerAddr (the flood comes from the client's own
// address), or counting connections where they are accepted rather than
// where they are upgraded would let a few hundred sockets lock every
// client out. (What ends the stalled sockets is http.Server's
// ReadHeaderTimeout, which cmd/coedit sets.)
func TestHandshakeFlood(t *testing.T) {
	checkNoLeaks(t)
	ts := startServer(t, Options{Logger: quiet, MaxConns: 4, MaxConnsPerAddr: 2}, startHubOpts())
	addr := ts.http.Listener.Addr().String()
	var stalled []net.Conn
	defer func() {
		for _, c := range stalled {
			c.Close()
		}
	}()
	for i := 0; i < 500; i++ {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatalf("half-open connection %d: %v", i, err)
		}
		stalled = append(stalled, c)
		fmt.Fprintf(c, "GET /ws HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Ver", addr)
	}
	d := websocket.Dialer{HandshakeTimeout: time.Second}
	ws, _, err := d.Dial(ts.wsURL, nil)
	if err != nil {
		t.Fatalf("a client during the flood could not connect within a second: %v", err)
	}
	defer ws.Close()
	ws.SetReadDeadline(time.Now().Add(time.Second))
	ws.WriteMessage(websocket.TextMessage, []byte(`{"a":"hs","id":null}`))
	if _, msg, err := ws.ReadMessage(); err != nil || !strings.Contains(string(msg), `"a":"hs"`) {
		t.Fatalf("handshake during the flood = %s, %v", msg, err)
	}
}
