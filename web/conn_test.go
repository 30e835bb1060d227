package web

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/coedit/coedit/collab"
)

// TestSlowConsumerIsDisconnected: a subscriber that reads far slower than
// ops arrive overflows its send queue and is closed with 1013, while the
// submitter and a subscriber that keeps up get every op.
func TestSlowConsumerIsDisconnected(t *testing.T) {
	// Small socket buffers on both ends, so the kernel cannot park much
	// on the slow client's behalf and the send queue fills soon. The queue
	// (64) leaves the watcher room when the machine is loaded and its
	// writer goroutine runs late; the slow client overflows it anyway.
	ts := startServerListener(t, Options{Logger: quiet, SendQueueMessages: 64, OpsPerSecond: 1e6, MessagesPerSecond: 1e6},
		collab.Options{}, func(ln net.Listener) net.Listener { return smallSendBuffers{ln} })
	producer := ts.connect(t)
	producer.create("docs", "slow", "", 1)

	dialer := websocket.Dialer{NetDialContext: (&net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
		})
		return errors.Join(err, serr)
	}}).DialContext}
	ws, _, err := dialer.Dial(ts.wsURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	slow := &tclient{t: t, ws: ws}
	slow.handshake("")
	slow.sendRaw(`{"a":"s","c":"docs","d":"slow","v":1}`)
	slow.expect(`{"a":"s","c":"docs","d":"slow"}`)

	watcher := ts.connect(t)
	watcher.sendRaw(`{"a":"s","c":"docs","d":"slow","v":1}`)
	watcher.expect(`{"a":"s","c":"docs","d":"slow"}`)
	type seen struct {
		n   int
		err error
	}
	watched := make(chan seen, 1)
	var watchTo atomic.Int64   // once set, the last version the watcher must read
	var watcherAt atomic.Int64 // ops the watcher has read
	go func() {
		want := uint64(1)
		for {
			m, err := watcher.tryRecv(10 * time.Second)
			if err != nil {
				watched <- seen{int(want - 1), err}
				return
			}
			if v, _ := m["v"].(float64); m["a"] != "op" || uint64(v) != want {
				watched <- seen{int(want - 1), fmt.Errorf("watcher got %s, want the op at v%d", mustJSON(m), want)}
				return
			}
			watcherAt.Store(int64(want))
			want++
			if to := watchTo.Load(); to > 0 && int64(want-1) >= to {
				watched <- seen{int(want - 1), nil}
				return
			}
		}
	}()

	// The slow client reads one message per 50ms.
	slowErr := make(chan error, 1)
	go func() {
		for {
			ws.SetReadDeadline(time.Now().Add(30 * time.Second))
			if _, _, err := ws.ReadMessage(); err != nil {
				slowErr <- err
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
	}()

	chunk := strings.Repeat("x", 1024)
	n := 0
	for ; n < 6000 && ts.srv.Connections() == 3; n++ {
		// A subscriber that keeps up is one that is never more than a
		// few ops behind: the producer lets the watcher (which decodes
		// every frame on a loaded machine) stay within 16 ops, a quarter
		// of its queue, while the slow client falls further behind.
		for wait := time.Now().Add(10 * time.Second); int64(n)-watcherAt.Load() > 16; {
			if time.Now().After(wait) {
				t.Fatalf("the watcher read %d ops of %d in 10 s", watcherAt.Load(), n)
			}
			time.Sleep(100 * time.Microsecond)
		}
		producer.sendf(`{"a":"op","c":"docs","d":"slow","v":%d,"seq":%d,"op":[%q]}`, n+1, n+2, chunk)
		producer.expectf(`{"a":"op","c":"docs","d":"slow","v":%d,"src":%q,"seq":%d}`, n+1, producer.src, n+2)
	}
	// The close follows the batch the writer is blocked on (up to 64 KiB
	// here, bounded by WriteTimeout), which the slow client reads at
	// 20 KiB/s.
	for wait := time.Now().Add(15 * time.Second); ts.srv.Connections() != 2; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(wait) {
			t.Fatalf("after %d ops of 1 KiB the slow client is still connected", n)
		}
	}
	select {
	case err := <-slowErr:
		if !websocket.IsCloseError(err, CloseSlowConsumer) {
			t.Fatalf("slow client ended with %v, want close %d", err, CloseSlowConsumer)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the slow client never saw its connection close")
	}
	// The watcher kept up with every op.
	producer.sendf(`{"a":"op","c":"docs","d":"slow","v":%d,"seq":%d,"op":["end"]}`, n+1, n+2)
	producer.expectf(`{"a":"op","c":"docs","d":"slow","v":%d,"src":%q,"seq":%d}`, n+1, producer.src, n+2)
	// The watcher stops once it has read the op at version n+1 (one more
	// op wakes it if it already had).
	watchTo.Store(int64(n + 1))
	producer.sendf(`{"a":"op","c":"docs","d":"slow","v":%d,"seq":%d,"op":["!"]}`, n+2, n+3)
	producer.expectf(`{"a":"op","c":"docs","d":"slow","v":%d,"src":%q,"seq":%d}`, n+2, producer.src, n+3)
	s := <-watched
	if s.err != nil || s.n < n+1 {
		t.Fatalf("watcher saw %d ops (err %v), want at least %d", s.n, s.err, n+1)
	}
	t.Logf("slow client dropped after %d ops; the watcher saw all %d", n, s.n)
}

// TestFrameTooLargeIsRefused: a frame over MaxFrameSize is read to its
// end, dropped and answered with ERR_OP_TOO_LARGE echoing the fields its
// start names, so the sharedb client rolls the op back and the
// connection goes on; closing with 1009 left the op pending, and the
// client sent it again at every reconnect, for good. A frame past the
// discard limit still closes the connection with 1009.
func TestFrameTooLargeIsRefused(t *testing.T) {
	ts := startServer(t, Options{Logger: quiet, MaxFrameSize: 1024}, collab.Options{})
	c := ts.connect(t)
	c.create("docs", "x", "", 1)
	c.sendf(`{"a":"op","c":"docs","d":"x","v":1,"src":%q,"seq":2,"op":[%q]}`, c.src, strings.Repeat("a", 2000))
	c.expectError(fmt.Sprintf(`{"a":"op","c":"docs","d":"x","v":1,"src":%q,"seq":2}`, c.src), CodeOpTooLarge)
	// A frame whose start is not an object is refused alone, and so is
	// one whose start is not valid UTF-8: the echo goes in a text frame.
	c.sendf(`[%q]`, strings.Repeat("b", 2000))
	c.expectError("", CodeOpTooLarge)
	c.sendRaw("{\"a\":\"op\",\"c\":\"d\xffs\",\"d\":\"x\",\"op\":[\"" + strings.Repeat("b", 2000) + "\"]}")
	c.expectError("", CodeOpTooLarge)
	// The connection goes on, and a frame at the limit is fine.
	c.sendRaw(`{"a":"op","c":"docs","d":"x","v":1,"seq":3,"op":["ok"]}`)
	c.expectf(`{"a":"op","c":"docs","d":"x","v":1,"src":%q,"seq":3}`, c.src)
	pad := 1024 - len(`{"a":"pp","x":""}`)
	c.sendf(`{"a":"pp","x":%q}`, strings.Repeat("b", pad))
	c.expect(`{"a":"pp"}`)
	if got := c.fetchData("docs", "x"); got != "ok" {
		t.Fatalf("document after the refused frame = %q, want %q", got, "ok")
	}
	_, body := ts.httpDo(t, "GET", "/metrics", "", "", nil)
	if !strings.Contains(body, `coedit_bad_frames_total{reason="size"} 3`) {
		t.Errorf("/metrics: %s", grepLines(body, "coedit_bad_frames_total"))
	}

	d := ts.connect(t)
	d.sendf(`{"a":"pp","x":%q}`, strings.Repeat("c", int(discardLimit(1024))))
	if err := d.closeErr(5 * time.Second); !websocket.IsCloseError(err, websocket.CloseMessageTooBig) {
		t.Fatalf("after a frame past the discard limit: %v, want close %d", err, websocket.CloseMessageTooBig)
	}
}

// TestScalarPrefix: the fields a cut-off frame's start names are kept up
// to the first that is not a scalar or is cut off.
func TestScalarPrefix(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`{"a":"op","c":"docs","d":"x","v":1,"src":"s","seq":2,"op":["aaa`, `{"a":"op","c":"docs","d":"x","v":1,"src":"s","seq":2}`},
		{` { "a" : "op" , "d":"q\"x", "v":null,"x":true,"y":-1.5e3 ,"op":[`, `{"a":"op","d":"q\"x","v":null,"x":true,"y":-1.5e3}`},
		{`{"a":"op","seq":12`, `{"a":"op"}`},
		{`{"a":"op","d":"cut`, `{"a":"op"}`},
		{`{"a":"p","ch":"c.d","p":{"index"`, `{"a":"p","ch":"c.d"}`},
		{`{}`, `{}`},
		{`["a"]`, ``},
		{``, ``},
	} {
		if got := string(scalarPrefix([]byte(tc.in))); got != tc.want {
			t.Errorf("scalarPrefix(%s) = %s, want %s", tc.in, got, tc.want)
		}
	}
}

func TestSilentClientIsClosedAfterPongTimeout(t *testing.T) {
	ts := startServer(t, Options{Logger: quiet, PongTimeout: 300 * time.Millisecond, PingInterval: 100 * time.Millisecond}, collab.Options{})
	// A client that reads answers pings and stays.
	live := ts.connect(t)
	go func() {
		// Reading runs the ping handler; the loop ends when the test's
		// cleanup closes the socket.
		live.ws.SetReadDeadline(time.Now().Add(time.Minute))
		for {
			if _, _, err := live.ws.ReadMessage(); err != nil {
				return
			}
		}
	}()
	// A client that never reads never answers a ping.
	silent := ts.dial(t, nil)
	_ = silent
	waitFor(t, func() bool { return ts.srv.Connections() == 1 })
	time.Sleep(600 * time.Millisecond) // two pong timeouts
	if n := ts.srv.Connections(); n != 1 {
		t.Fatalf("connections = %d, want the live one only", n)
	}
}

func TestOriginCheck(t *testing.T) {
	for _, tc := range []struct {
		name    string
		allowed []string
		origin  string // "self" for the server's own origin
		ok      bool
	}{
		{"no origin", nil, "", true},
		{"same host", nil, "self", true},
		{"localhost other port", nil, "http://localhost:3000", true},
		{"ipv6 loopback", nil, "http://[::1]:5173", true},
		{"127.0.0.2", nil, "https://127.0.0.2", true},
		{"foreign", nil, "https://evil.example", false},
		{"lookalike", nil, "https://localhost.evil.example", false},
		{"garbage", nil, "::::", false},
		{"listed", []string{"https://app.example"}, "https://app.example", true},
		{"listed trailing slash", []string{"https://app.example/"}, "https://APP.example", true},
		{"not listed", []string{"https://app.example"}, "https://other.example", false},
		{"list replaces the default", []string{"https://app.example"}, "http://localhost:3000", false},
		{"wildcard", []string{"*"}, "https://anything.example", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ts := startServer(t, Options{Logger: quiet, AllowedOrigins: tc.allowed}, collab.Options{})
			origin := tc.origin
			if origin == "self" {
				origin = ts.http.URL
			}
			hdr := http.Header{}
			if origin != "" {
				hdr.Set("Origin", origin)
			}
			ws, resp, err := websocket.DefaultDialer.Dial(ts.wsURL, hdr)
			if tc.ok {
				if err != nil {
					t.Fatalf("Dial with Origin %q = %v, want allowed", origin, err)
				}
				ws.Close()
			} else {
				if err == nil {
					ws.Close()
					t.Fatalf("Dial with Origin %q succeeded, want 403", origin)
				}
				if resp == nil || resp.StatusCode != http.StatusForbidden {
					t.Fatalf("Dial with Origin %q = %v, want status 403", origin, err)
				}
			}
			// The HTTP API's writes apply the same check.
			hdrs := map[string]string{}
			if origin != "" {
				hdrs["Origin"] = origin
			}
			status, body := ts.httpDo(t, "POST", "/api/docs/docs/o/ops", "application/json", `{"v":null,"create":{"type":"text-unicode","data":""}}`, hdrs)
			if tc.ok != (status == http.StatusOK) {
				t.Fatalf("POST with Origin %q = %d %s, want allowed %v", origin, status, body, tc.ok)
			}
		})
	}
	if _, err := New(Options{Hub: collab.NewHub(collab.Options{}), AllowedOrigins: []string{"app.example"}}); err == nil {
		t.Fatal(`New with AllowedOrigins ["app.example"] succeeded, want an error (no scheme)`)
	}
}

func TestCloseClosesWebSocketsWith1001(t *testing.T) {
	ts := startServer(t, Options{Logger: quiet}, collab.Options{})
	clients := []*tclient{ts.connect(t), ts.connect(t)}
	clients[0].create("docs", "bye", "x", 1)
	clients[1].sendRaw(`{"a":"s","c":"docs","d":"bye"}`)
	clients[1].recv()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := ts.srv.Close(ctx); err != nil {
		t.Fatalf("Close = %v", err)
	}
	if n := ts.srv.Connections(); n != 0 {
		t.Fatalf("after Close: %d connections, want 0", n)
	}
	for i, c := range clients {
		if err := c.closeErr(5 * time.Second); !websocket.IsCloseError(err, CloseGoingAway) {
			t.Fatalf("client %d: %v, want close %d", i, err, CloseGoingAway)
		}
	}
	if _, resp, err := websocket.DefaultDialer.Dial(ts.wsURL, nil); err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("Dial after Close = %v, want status 503", err)
	}
	status, body := ts.httpDo(t, "GET", "/ready", "", "", nil)
	if status != http.StatusServiceUnavailable || !jsonEqual(t, body, `{"status":"closing"}`) {
		t.Fatalf("GET /ready after Close = %d %s, want 503 closing", status, body)
	}
}

// TestConcurrentClientsConverge runs several clients submitting to one
// document at once (-race checks the connection code), then checks every
// client's ops were acked once and the server's text holds them all.
func TestConcurrentClientsConverge(t *testing.T) {
	ts := startServer(t, Options{Logger: quiet}, collab.Options{})
	setup := ts.connect(t)
	setup.create("docs", "conc", "", 1)
	const clients, perClient = 4, 50
	cs := make([]*tclient, clients)
	for i := range cs {
		cs[i] = ts.connect(t)
		cs[i].sendRaw(`{"a":"s","c":"docs","d":"conc","v":1}`)
		cs[i].expect(`{"a":"s","c":"docs","d":"conc"}`)
	}
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for i, c := range cs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			v := 1
			for n := 1; n <= perClient; n++ {
				if err := c.ws.WriteMessage(websocket.TextMessage, []byte(fmt.Sprintf(`{"a":"op","c":"docs","d":"conc","v":%d,"seq":%d,"op":["<%d.%d>"]}`, v, n, i, n))); err != nil {
					errs <- err
					return
				}
				for {
					m, err := c.tryRecv(10 * time.Second)
					if err != nil {
						errs <- err
						return
					}
					mv, _ := m["v"].(float64)
					if m["src"] == c.src && m["seq"] == float64(n) {
						if _, hasOp := m["op"]; hasOp {
							errs <- fmt.Errorf("client %d got its own op back: %s", i, mustJSON(m))
							return
						}
						v = int(mv) + 1
						break
					}
					if m["a"] != "op" {
						errs <- fmt.Errorf("client %d: unexpected %s", i, mustJSON(m))
						return
					}
					v = max(v, int(mv)+1)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	snap, err := ts.hub.FetchWait(context.Background(), collab.Key{Collection: "docs", ID: "conc"})
	if err != nil {
		t.Fatal(err)
	}
	if snap.Version != 1+clients*perClient {
		t.Fatalf("version = %d, want %d", snap.Version, 1+clients*perClient)
	}
	for i := range clients {
		for n := 1; n <= perClient; n++ {
			if tok := fmt.Sprintf("<%d.%d>", i, n); strings.Count(snap.Data, tok) != 1 {
				t.Fatalf("token %s appears %d times in the text, want once", tok, strings.Count(snap.Data, tok))
			}
		}
	}
}

// smallSendBuffers gives every accepted TCP connection a 4 KiB send
// buffer.
type smallSendBuffers struct{ net.Listener }

func (l smallSendBuffers) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		if err := tc.SetWriteBuffer(4096); err != nil {
			c.Close()
			return nil, err
		}
	}
	return c, err
}
