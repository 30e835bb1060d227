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

// TestMalformedFramesTakeFromMessageRate: malformed frames (binary, not
// UTF-8, not a JSON object) take a token from the message bucket before
// they are answered, like any message: past the burst they are answered
// with ERR_RATE_LIMITED.
func TestMalformedFramesTakeFromMessageRate(t *testing.T) {
	ts := startServer(t, Options{Logger: quiet, MessagesPerSecond: 0.001, MessagesBurst: 4, MaxBadFrames: 1000}, startHubOpts())
	c := ts.connect(t) // the handshake takes one token
	for i := 0; i < 3; i++ {
		c.ws.WriteMessage(websocket.BinaryMessage, []byte(`{"a":"pp"}`))
		c.expectError("", CodeBadlyFormed)
	}
	for _, frame := range []string{"\xff\xfe", "[1,2]", `{"a":"pp"}`} {
		c.sendRaw(frame)
		m := c.recv()
		if e, _ := m["error"].(map[string]any); e["code"] != CodeRateLimited {
			t.Fatalf("frame %q past the burst: reply %s, want %s", frame, mustJSON(m), CodeRateLimited)
		}
	}
}

// TestMalformedFloodClosedWith1008: a client flooding malformed frames is
// answered at most for the message burst and the bad-frame allowance,
// then closed with 1008; the flood is counted in /metrics, and a
// well-behaved client on the same node is unaffected.
func TestMalformedFloodClosedWith1008(t *testing.T) {
	checkNoLeaks(t)
	const burst, maxBad = 10, 50
	ts := startServer(t, Options{Logger: quiet, MessagesPerSecond: 10, MessagesBurst: burst, MaxBadFrames: maxBad}, startHubOpts())
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
	// The buckets refill while the flood runs (messages at 10/s, bad
	// frames at maxBad a minute): allow for what refilled, nothing more.
	refill := int(math.Ceil(elapsed.Seconds()*10)) + int(math.Ceil(elapsed.Seconds()*maxBad/60))
	if replies > burst+maxBad+refill {
		t.Fatalf("%d of %d malformed frames answered in %v, want at most %d", replies, sent, elapsed, burst+maxBad+refill)
	}

	// The bystander still works.
	good.sendRaw(`{"a":"op","c":"docs","d":"calm","v":1,"seq":2,"op":["still "]}`)
	good.expectf(`{"a":"op","c":"docs","d":"calm","v":1,"src":%q,"seq":2}`, good.src)
	if got := good.fetchData("docs", "calm"); got != "still steady" {
		t.Fatalf("bystander's document = %q", got)
	}
	_, body := ts.httpDo(t, "GET", "/metrics", "", "", nil)
	for _, want := range []string{`coedit_abuse_closed_total 1`, `coedit_bad_frames_total{reason="binary"}`, `coedit_bad_frames_total{reason="rate"}`} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

// TestFloodCloseWritesWhatWasQueued: a client closed with 1008 for
// flooding gets every reply queued before the close, then the close: each
// message within the burst answered, and each over the rate refused with
// ERR_RATE_LIMITED, in order. Dropping the queue at the close told such a
// client nothing of why, and left replies within its allowance unsent.
func TestFloodCloseWritesWhatWasQueued(t *testing.T) {
	checkNoLeaks(t)
	const burst, maxBad = 40, 20
	ts := startServer(t, Options{Logger: quiet, MessagesPerSecond: 0.001, MessagesBurst: burst, MaxBadFrames: maxBad}, startHubOpts())
	c := ts.connect(t) // the handshake took one token
	sent := 0
	for i := 0; i < burst+maxBad+10; i++ {
		if err := c.ws.WriteMessage(websocket.TextMessage, []byte(`{"a":"pp"}`)); err != nil {
			break // the server has closed the connection
		}
		sent++
	}
	pongs, limited := 0, 0
	closeErr := c.readUntilClosed(func(m map[string]any) {
		e, _ := m["error"].(map[string]any)
		switch {
		case e == nil && m["a"] == "pp" && limited == 0:
			pongs++
		case e != nil && e["code"] == CodeRateLimited:
			limited++
		default:
			t.Fatalf("after %d pongs and %d refusals: unexpected reply %s", pongs, limited, mustJSON(m))
		}
	})
	if !isCloseCode(closeErr, ClosePolicyViolation) {
		t.Fatalf("flood of %d frames ended with %v, want close %d", sent, closeErr, ClosePolicyViolation)
	}
	if pongs != burst-1 || limited != maxBad {
		t.Fatalf("before the close: %d pongs and %d ERR_RATE_LIMITED, want %d and %d", pongs, limited, burst-1, maxBad)
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
