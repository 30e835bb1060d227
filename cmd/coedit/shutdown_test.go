package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// exportReader is a GET of a document's op export over a socket of its
// own, read only as far as the test says: a client that reads slowly.
type exportReader struct {
	conn net.Conn
	body *bufio.Reader
}

// startExport requests url's op export and reads its first line, so the
// export is streaming when it returns.
func startExport(t *testing.T, base, path string) *exportReader {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	req, err := http.NewRequest("GET", base+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := req.Write(conn); err != nil {
		t.Fatal(err)
	}
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET %s = %d %s", path, resp.StatusCode, b)
	}
	e := &exportReader{conn: conn, body: bufio.NewReaderSize(resp.Body, 64<<10)}
	if _, err := e.body.ReadString('\n'); err != nil {
		t.Fatalf("GET %s: first line: %v", path, err)
	}
	return e
}

// bigHistory gives collection c, id d a history of ops ops of size
// bytes each (each op replaces the text with as many new code points),
// so that its export is longer than the socket buffers between the node
// and a client that stops reading can hold.
func bigHistory(t *testing.T, base, path string, ops, size int) {
	t.Helper()
	text := strings.Repeat("a", size)
	if status, body := postJSON(t, base+path, fmt.Sprintf(`{"create":{"type":"text-unicode","data":%q}}`, text)); status != http.StatusOK {
		t.Fatalf("POST create = %d %s", status, body)
	}
	for i := range ops {
		text := strings.Repeat(string(rune('b'+i%20)), size)
		if status, body := postJSON(t, base+path, fmt.Sprintf(`{"op":[%q,{"d":%d}]}`, text, size)); status != http.StatusOK {
			t.Fatalf("POST op %d = %d %s", i, status, body)
		}
	}
}

// TestShutdownCutsSlowExports: SIGTERM with op exports streaming to
// clients that read slowly, and a WebSocket open. The WebSocket is closed
// with 1001 at once; an export whose client reads again ends with the
// retryable ERR_UNAVAILABLE line naming the ?from= of the rest; one whose
// client never reads again is cut when the HTTP server's share of the
// shutdown runs out; the hub and the store close cleanly, and the process
// exits 0 well within --shutdown-timeout. Before, http.Server.Shutdown
// waited for the stalled export until the whole timeout was spent, the
// WebSockets stayed open all that time, the hub and the store found no
// time left, and the process exited 1.
func TestShutdownCutsSlowExports(t *testing.T) {
	const timeout = 6 * time.Second
	c := startServe(t, t.TempDir(), "--sync", "none", "--ops-per-second", "100000", "--shutdown-timeout", timeout.String())
	const path = "/api/docs/c/d/ops"
	// 800 ops of 16 KiB: an export of 13 MiB.
	bigHistory(t, c.url, path, 800, 16<<10)

	ws, _, err := dialCrash(c.url, "")
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	wsClosed := make(chan error, 1)
	go func() {
		ws.SetReadDeadline(time.Now().Add(30 * time.Second))
		for {
			if _, _, err := ws.ReadMessage(); err != nil {
				wsClosed <- err
				return
			}
		}
	}()
	paused := startExport(t, c.url, path)
	startExport(t, c.url, path) // stalled: never read again

	start := time.Now()
	if err := c.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-wsClosed:
		var ce *websocket.CloseError
		if !errors.As(err, &ce) || ce.Code != websocket.CloseGoingAway {
			t.Errorf("WebSocket ended with %v, want close 1001", err)
		}
		if d := time.Since(start); d > time.Second {
			t.Errorf("WebSocket closed %v after SIGTERM, want at once", d)
		}
	case <-time.After(timeout):
		t.Errorf("WebSocket still open %v after SIGTERM", timeout)
	}

	// The paused client reads again: the rest of the page the export was
	// writing, then the error line.
	paused.conn.SetReadDeadline(time.Now().Add(timeout))
	var last, errLine string
	for {
		line, err := paused.body.ReadString('\n')
		if err != nil {
			t.Fatalf("paused export: %v after %.80q, want an error line", err, last)
		}
		if strings.HasPrefix(line, `{"error":`) {
			errLine = line
			break
		}
		last = line
	}
	var prev struct{ V uint64 }
	if err := json.Unmarshal([]byte(last), &prev); err != nil {
		t.Fatalf("last op line %.80q: %v", last, err)
	}
	var got struct {
		Error struct{ Code, Message string }
	}
	if err := json.Unmarshal([]byte(errLine), &got); err != nil || got.Error.Code != "ERR_UNAVAILABLE" ||
		!strings.Contains(got.Error.Message, fmt.Sprintf("?from=%d", prev.V+1)) {
		t.Errorf("paused export ended with %q (%v), want ERR_UNAVAILABLE naming ?from=%d", errLine, err, prev.V+1)
	}

	if code := c.wait(t); code != 0 {
		t.Errorf("exit code after SIGTERM = %d, want 0", code)
	}
	if d := time.Since(start); d > timeout*2/3 {
		t.Errorf("exit %v after SIGTERM, want well within --shutdown-timeout %v", d, timeout)
	}
	logs := c.logs.String()
	for _, bad := range []string{"cannot save snapshot", "close hub", "close store", "close websockets"} {
		if strings.Contains(logs, bad) {
			t.Errorf("logs mention %q", bad)
		}
	}
	if !strings.Contains(logs, "msg=stopped") {
		t.Errorf("logs lack the stopped line")
	}
}

// TestShutdownDrainAnswersNotReady: with --drain, /ready answers 503 from
// the moment SIGTERM arrives, while /health, the HTTP API and the open
// WebSocket go on being served, until the drain is over; then the node
// stops (the listener refuses connections) and exits 0. Before, the
// listener closed first, so that a probe never saw the 503 the README
// promised.
func TestShutdownDrainAnswersNotReady(t *testing.T) {
	const drain = 1500 * time.Millisecond
	c := startServe(t, t.TempDir(), "--drain", drain.String(), "--shutdown-timeout", "5s")
	if status, body := postJSON(t, c.url+"/api/docs/notes/n/ops", `{"create":{"type":"text-unicode","data":"x"}}`); status != http.StatusOK {
		t.Fatalf("POST create = %d %s", status, body)
	}
	if status, body := fetchURL(t, c.url+"/ready"); status != http.StatusOK {
		t.Fatalf("GET /ready before SIGTERM = %d %s", status, body)
	}
	ws, _, err := dialCrash(c.url, "")
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()

	start := time.Now()
	if err := c.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// Probes as a load balancer sends them, each on a new connection.
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: time.Second}
	get := func(path string) (int, string, error) {
		resp, err := client.Get(c.url + path)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), err
	}
	var notReady time.Duration
	for notReady == 0 {
		status, body, err := get("/ready")
		switch {
		case err != nil:
			t.Fatalf("GET /ready %v after SIGTERM: %v, want 503 during the drain", time.Since(start), err)
		case status == http.StatusServiceUnavailable && strings.Contains(body, "shutting down"):
			notReady = time.Since(start)
		case status != http.StatusOK || time.Since(start) > drain/2:
			t.Fatalf("GET /ready %v after SIGTERM = %d %s, want 503 shutting down", time.Since(start), status, body)
		}
	}
	if status, body, err := get("/health"); err != nil || status != http.StatusOK {
		t.Errorf("GET /health during the drain = %d %s %v, want 200", status, body, err)
	}
	if status, body, err := get("/api/docs/notes/n"); err != nil || status != http.StatusOK || !strings.Contains(body, `"data":"x"`) {
		t.Errorf("GET snapshot during the drain = %d %s %v, want the document", status, body, err)
	}
	if err := ws.WriteMessage(websocket.TextMessage, []byte(`{"a":"f","c":"notes","d":"n"}`)); err != nil {
		t.Fatal(err)
	}
	ws.SetReadDeadline(time.Now().Add(drain / 2))
	if _, msg, err := ws.ReadMessage(); err != nil || !strings.Contains(string(msg), `"data":"x"`) {
		t.Errorf("WebSocket fetch during the drain = %s, %v; want the document", msg, err)
	}
	ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, _, err = ws.ReadMessage()
	var ce *websocket.CloseError
	if closed := time.Since(start); !errors.As(err, &ce) || ce.Code != websocket.CloseGoingAway || closed < drain {
		t.Errorf("WebSocket ended %v after SIGTERM with %v, want 1001 once the drain of %v is over", closed, err, drain)
	}
	if code := c.wait(t); code != 0 {
		t.Errorf("exit code after SIGTERM = %d, want 0", code)
	}
	if _, _, err := get("/ready"); err == nil {
		t.Errorf("GET /ready after the exit succeeded")
	}
}
