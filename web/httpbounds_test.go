package web

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/coedit/coedit/collab"
	"github.com/coedit/coedit/ot"
	"github.com/coedit/coedit/storage"
)

// rawHTTP opens a TCP connection to ts and writes req as it is.
func rawHTTP(t *testing.T, ts *testServer, req string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", ts.http.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	return c
}

// closedWithin reads c until the server closes it, failing after limit.
func closedWithin(t *testing.T, c net.Conn, limit time.Duration, what string) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(limit))
	if _, err := io.Copy(io.Discard, c); err != nil {
		t.Fatalf("%s: still open after %v (%v)", what, limit, err)
	}
}

// TestRequestWithoutItsBodyIsDropped: a request that declares a body and
// never sends it holds its connection for Options.RequestTimeout, not for
// good (http.Server's ReadHeaderTimeout covers only the headers), on any
// path: a handler that reads the body, and one that answers without it
// while the server waits to discard it.
func TestRequestWithoutItsBodyIsDropped(t *testing.T) {
	checkNoLeaks(t)
	ts := startServer(t, Options{Logger: quiet, RequestTimeout: 300 * time.Millisecond}, startHubOpts())
	post := rawHTTP(t, ts, "POST /api/docs/notes/a/ops HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 10\r\n\r\n")
	health := rawHTTP(t, ts, "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 10\r\n\r\n")
	closedWithin(t, post, 5*time.Second, "POST without its body")
	closedWithin(t, health, 5*time.Second, "GET /health with a body never sent")
}

// TestStalledExportsAreBounded: clients that stop reading an op export
// hold it for Options.RequestTimeout and exportGrace at most, counted
// from its slot, and at most maxExports
// stream at once; a later one waits for a slot and, if none frees in
// time, gets ERR_SERVER_BUSY. Once the stalled ones are cut, exports are
// served again.
func TestStalledExportsAreBounded(t *testing.T) {
	checkNoLeaks(t)
	const timeout = 1500 * time.Millisecond
	ts := startServer(t, Options{Logger: quiet, RequestTimeout: timeout}, startHubOpts())
	key := collab.Key{Collection: "notes", ID: "big"}
	ctx := context.Background()
	if _, err := ts.hub.SubmitWait(ctx, key, collab.Submission{Kind: collab.OpCreate, Type: ot.URI, Data: ""}); err != nil {
		t.Fatal(err)
	}
	// About 16 MB of export, far past what the sockets' buffers hold.
	chunk := strings.Repeat("x", 64<<10)
	for v := uint64(1); v <= 250; v++ {
		op := ot.Op{{Kind: ot.KindInsert, N: len(chunk), Text: chunk}}
		if _, err := ts.hub.SubmitWait(ctx, key, collab.Submission{Kind: collab.OpEdit, Version: v, HasVersion: true, Op: op}); err != nil {
			t.Fatal(err)
		}
	}
	get := "GET /api/docs/notes/big/ops HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
	var stalled []net.Conn
	for range maxExports {
		c := rawHTTP(t, ts, get)
		c.(*net.TCPConn).SetReadBuffer(4 << 10)
		stalled = append(stalled, c)
	}
	// Each stalled export has its slot once its first bytes arrive.
	for i, c := range stalled {
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Read(make([]byte, 1)); err != nil {
			t.Fatalf("stalled export %d: no answer: %v", i, err)
		}
	}
	start := time.Now()
	status, body := ts.httpDo(t, "GET", "/api/docs/notes/big/ops", "", "", nil)
	if status != http.StatusServiceUnavailable || !strings.Contains(body, CodeServerBusy) {
		t.Fatalf("an export while %d stall = %d %.200s, want 503 %s", maxExports, status, body, CodeServerBusy)
	}
	if waited := time.Since(start); waited > timeout {
		t.Errorf("the busy answer took %v, want it within the request's time (%v)", waited, timeout)
	}
	// The stalled exports end when their time is up (the kernel may
	// still hold what they wrote): their slots are free again, and a
	// reader that reads gets the log.
	deadline := time.Now().Add(10 * time.Second)
	for {
		status, body := ts.httpDo(t, "GET", "/api/docs/notes/big/ops?to=40", "", "", nil)
		if status == http.StatusOK {
			if n := strings.Count(body, "\n"); n != 40 {
				t.Fatalf("an export after the stalled ones ended has %d lines, want 40", n)
			}
			break
		}
		if status != http.StatusServiceUnavailable || time.Now().After(deadline) {
			t.Fatalf("an export after the stalled ones' time = %d %.200s, want 200 within 10 s", status, body)
		}
	}
	for _, c := range stalled {
		c.Close()
	}
}

// TestPingsTakeFromTheMessageBucket: a ping is a frame like any other:
// past the message burst its pong waits for a token, so a ping flood is
// answered at the message rate and no faster.
func TestPingsTakeFromTheMessageBucket(t *testing.T) {
	checkNoLeaks(t)
	const rate, burst, n = 20, 5, 15
	ts := startServer(t, Options{Logger: quiet, MessagesPerSecond: rate, MessagesBurst: burst}, startHubOpts())
	start := time.Now()
	c := ts.connect(t) // the handshake took one token
	pongs := make(chan struct{}, 100)
	c.ws.SetPongHandler(func(string) error { pongs <- struct{}{}; return nil })
	for range n {
		if err := c.ws.WriteControl(websocket.PingMessage, []byte("p"), time.Now().Add(time.Second)); err != nil {
			t.Fatal(err)
		}
	}
	// Pongs are read by the reader's control handler: read until all came.
	c.sendRaw(`{"a":"pp"}`)
	c.expect(`{"a":"pp"}`)
	if len(pongs) != n {
		t.Fatalf("a ping flood got %d pongs, want %d", len(pongs), n)
	}
	// The bucket gave the handshake, n pings and the last frame: burst
	// at once, the rest at the rate. A lower bound only: a slow machine
	// answers later, never sooner.
	if elapsed, least := time.Since(start), time.Duration(n+2-burst)*time.Second/rate; elapsed < least {
		t.Fatalf("%d pings answered in %v, want at least %v at %d a second", n, elapsed, least, rate)
	}
}

// slowOps is a real store whose op reads take d each.
type slowOps struct {
	*storage.DB
	d time.Duration
}

func (s slowOps) Ops(ctx context.Context, key collab.Key, from, to uint64) ([]collab.Record, error) {
	select {
	case <-time.After(s.d):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return s.DB.Ops(ctx, key, from, to)
}

// TestExportOutOfTimeEndsWithItsErrorLine: an op export that runs out of
// Options.RequestTimeout ends with its error line, a retryable one that
// says where to go on from, rather than stopping mid-stream or calling it
// an internal error.
func TestExportOutOfTimeEndsWithItsErrorLine(t *testing.T) {
	ts := startServerStore(t, Options{Logger: quiet, RequestTimeout: 700 * time.Millisecond}, startHubOpts(),
		func(db *storage.DB) collab.Store { return slowOps{DB: db, d: 300 * time.Millisecond} })
	key := collab.Key{Collection: "notes", ID: "long"}
	ctx := context.Background()
	if _, err := ts.hub.SubmitWait(ctx, key, collab.Submission{Kind: collab.OpCreate, Type: ot.URI, Data: ""}); err != nil {
		t.Fatal(err)
	}
	for v := uint64(1); v < 3*opsPage; v++ {
		if _, err := ts.hub.SubmitWait(ctx, key, collab.Submission{Kind: collab.OpEdit, Version: v, HasVersion: true, Op: ot.Op{{Kind: ot.KindInsert, N: 1, Text: "x"}}}); err != nil {
			t.Fatal(err)
		}
	}
	status, body := ts.httpDo(t, "GET", "/api/docs/notes/long/ops", "", "", nil)
	lines := strings.Split(strings.TrimSuffix(body, "\n"), "\n")
	last := lines[len(lines)-1]
	if status != http.StatusOK || len(lines) != 2*opsPage+1 || !strings.Contains(last, `"code":"`+CodeUnavailable+`"`) || !strings.Contains(last, fmt.Sprintf("?from=%d", 2*opsPage)) {
		t.Fatalf("an export out of time = %d, %d lines, last %.300s; want 200, %d records and an %s line saying ?from=%d", status, len(lines), last, 2*opsPage, CodeUnavailable, 2*opsPage)
	}
}
