package web

import (
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/coedit/coedit/collab"
)

// TestHTTPSubmitsShareTheAddressBucket: an address's HTTP submits take
// from one bucket of the WebSocket op rate's shape, so a token cannot get
// around --ops-per-second by posting. A submit owed a token within
// httpPaceMost waits for it and is served; one owed more is refused with
// 429 ERR_RATE_LIMITED and a Retry-After that says when to come back.
func TestHTTPSubmitsShareTheAddressBucket(t *testing.T) {
	const rate, burst = 10, 2
	ts := startServer(t, Options{Logger: quiet, OpsPerSecond: rate, OpsBurst: burst}, collab.Options{})
	submit := func() (int, string, http.Header) {
		req, err := http.NewRequest("POST", ts.http.URL+"/api/docs/docs/rated/ops", strings.NewReader(`{"op":["x"]}`))
		if err != nil {
			t.Error(err)
			return 0, "", nil
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Error(err)
			return 0, "", nil
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), resp.Header
	}
	start := time.Now()
	if status, body := ts.httpDo(t, "POST", "/api/docs/docs/rated/ops", "application/json", `{"create":{"type":"text-unicode","data":""}}`, nil); status != http.StatusOK {
		t.Fatalf("create = %d %s", status, body)
	}
	// One after another: past the burst each waits an interval, and all
	// are served. By the last one's answer the bucket has given the
	// create and n submits: burst of them at once, the rest at the rate.
	const n = 8
	for i := range n {
		if status, body, _ := submit(); status != http.StatusOK {
			t.Fatalf("submit %d one after another = %d %s, want 200 after a wait", i, status, body)
		}
	}
	if elapsed, least := time.Since(start), time.Duration(1+n-burst)*time.Second/rate; elapsed < least {
		t.Fatalf("%d submits one after another served in %v, want at least %v at %d a second", n, elapsed, least, rate)
	}
	// All at once: those owed more than httpPaceMost are refused.
	const flood = 3 * rate
	var mu sync.Mutex
	ok, refused := 0, 0
	var wg sync.WaitGroup
	for range flood {
		wg.Add(1)
		go func() {
			defer wg.Done()
			status, body, hdr := submit()
			mu.Lock()
			defer mu.Unlock()
			switch status {
			case http.StatusOK:
				ok++
			case http.StatusTooManyRequests:
				refused++
				checkHTTPError(t, status, body, http.StatusTooManyRequests, CodeRateLimited)
				if s, err := strconv.Atoi(hdr.Get("Retry-After")); err != nil || s < 1 {
					t.Errorf("429 with Retry-After %q, want whole seconds, at least 1", hdr.Get("Retry-After"))
				}
			default:
				t.Errorf("submit in a flood = %d %s", status, body)
			}
		}()
	}
	wg.Wait()
	// Within httpPaceMost (1 s) at 10 a second, about 10 (and the burst,
	// if it refilled) may be served; the rest, at least a third, refused.
	if refused < flood/3 || ok > flood-flood/3 {
		t.Fatalf("a flood of %d submits: %d served, %d refused; want at most about %d served", flood, ok, refused, rate+burst)
	}
	status, body := ts.httpDo(t, "GET", "/api/docs/docs/rated", "", "", nil)
	if want := strings.Repeat("x", n+ok); status != http.StatusOK || !strings.Contains(body, `"data":"`+want+`"`) {
		t.Fatalf("the document after the served submits = %d %s, want %d x", status, body, n+ok)
	}
}

// TestPacedClientKeepsItsConnection: a client that keeps sending faster
// than its message rate, and answers every ping, is slowed and keeps its
// connection. Its pongs wait behind the frames the paced reader has not
// read yet, and the read deadline moved on only at a pong, so such a
// client was dropped at the pong timeout instead (a 1006, no reason).
func TestPacedClientKeepsItsConnection(t *testing.T) {
	// Pings come every 9/10 of the pong timeout; at twice the rate the
	// backlog before each pong grows by more than the rest of it.
	ts := startServer(t, Options{Logger: quiet, MessagesPerSecond: 5, MessagesBurst: 2, PongTimeout: 600 * time.Millisecond}, collab.Options{})
	ws, ended := dialReading(t, ts.wsURL)
	start := time.Now()
	for time.Since(start) < 4*time.Second {
		if err := ws.WriteMessage(websocket.TextMessage, []byte(`{"a":"pp"}`)); err != nil {
			t.Fatalf("writing after %v: %v", time.Since(start).Round(time.Millisecond), err)
		}
		select {
		case err := <-ended:
			t.Fatalf("a client at twice its rate, answering pings, was dropped after %v: %v", time.Since(start).Round(time.Millisecond), err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// fixedRouter passes every upgrade that names a document to one node.
type fixedRouter struct{ to string }

func (r fixedRouter) Route(string) string { return r.to }
func (fixedRouter) Down(string)           {}
func (fixedRouter) PeerToken() string     { return "peer-token-for-tests" }

// TestPacedPassedClientKeepsItsConnection: a client over its rate whose
// upgrade another node passed to the document's node is slowed there, as
// one served directly is, and keeps its connection. The passing node's
// writes toward the paced node wait meanwhile; bounded by its
// WriteTimeout, they cut such a client off.
func TestPacedPassedClientKeepsItsConnection(t *testing.T) {
	owner := startServer(t, Options{Logger: quiet, MessagesPerSecond: 1, MessagesBurst: 1, Router: fixedRouter{}}, collab.Options{})
	front := startServer(t, Options{Logger: quiet, WriteTimeout: 300 * time.Millisecond, Router: fixedRouter{to: owner.http.Listener.Addr().String()}}, collab.Options{})
	ws, ended := dialReading(t, front.wsURL+"?doc=docs/x")
	frame := []byte(`{"a":"pp","x":"` + strings.Repeat("x", 256<<10) + `"}`)
	start := time.Now()
	ws.SetWriteDeadline(start.Add(3 * time.Second))
	for time.Since(start) < 3*time.Second {
		if ws.WriteMessage(websocket.TextMessage, frame) != nil {
			break // held back by TCP until the deadline
		}
	}
	select {
	case err := <-ended:
		t.Fatalf("a passed client over its rate was dropped after %v: %v", time.Since(start).Round(time.Millisecond), err)
	case <-time.After(300 * time.Millisecond):
	}
}

// TestHTTPSubmitBucketsPerSubject: with auth, HTTP submits take from
// their token subject's bucket, not their address's: behind one proxy
// address, one writer over its rate does not starve another.
func TestHTTPSubmitBucketsPerSubject(t *testing.T) {
	ts := startServer(t, Options{Logger: quiet, AuthSecret: testSecret, OpsPerSecond: 0.001, OpsBurst: 2}, collab.Options{})
	bearer := func(sub string) map[string]string {
		return map[string]string{"Authorization": "Bearer " + token(t, testSecret, sub, time.Hour, rw("docs/*"))}
	}
	if status, body := ts.httpDo(t, "POST", "/api/docs/docs/a/ops", "application/json", `{"create":{"type":"text-unicode","data":""}}`, bearer("alice")); status != http.StatusOK {
		t.Fatalf("create = %d %s", status, body)
	}
	for i := range 2 {
		status, body := ts.httpDo(t, "POST", "/api/docs/docs/a/ops", "application/json", `{"op":["x"]}`, bearer("alice"))
		if i == 0 && status != http.StatusOK {
			t.Fatalf("alice's second submit = %d %s", status, body)
		}
		if i == 1 {
			checkHTTPError(t, status, body, http.StatusTooManyRequests, CodeRateLimited)
		}
	}
	if status, body := ts.httpDo(t, "POST", "/api/docs/docs/a/ops", "application/json", `{"op":["y"]}`, bearer("bob")); status != http.StatusOK {
		t.Fatalf("bob's submit from the same address after alice's ran out = %d %s, want 200", status, body)
	}
}

// dialReading dials url and reads (and drops) what the server sends
// until the connection ends, which the channel then reports.
func dialReading(t *testing.T, url string) (*websocket.Conn, <-chan error) {
	t.Helper()
	ws, _, err := websocket.DefaultDialer.Dial(url, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ws.Close() })
	ended := make(chan error, 1)
	go func() {
		for {
			if _, _, err := ws.ReadMessage(); err != nil {
				ended <- err
				return
			}
		}
	}()
	return ws, ended
}
