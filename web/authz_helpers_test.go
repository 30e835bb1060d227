package web

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/gorilla/websocket"
	"go.uber.org/goleak"

	"github.com/coedit/coedit/collab"
)

// Helpers for the auth tests: a server with auth on, tokens, and clients
// that record every byte the server sent them.

var testSecret = []byte("0123456789abcdef0123456789abcdef")

// startAuthServer starts a server with auth on (testSecret) and opts.
func startAuthServer(t *testing.T, opts Options) *testServer {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = quiet
	}
	opts.AuthSecret = testSecret
	return startServer(t, opts, collab.Options{})
}

// token signs a token for sub valid for ttl (negative: already expired)
// with docs.
func token(t *testing.T, secret []byte, sub string, ttl time.Duration, docs ...TokenDoc) string {
	t.Helper()
	c := TokenClaims{Docs: docs}
	c.Subject = sub
	c.ExpiresAt = jwt.NewNumericDate(time.Now().Add(ttl))
	tok, err := SignToken(secret, c)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// rw and ro are token docs entries.
func rw(p string) TokenDoc { return TokenDoc{Pattern: p, Write: true} }
func ro(p string) TokenDoc { return TokenDoc{Pattern: p} }

// bearer is the Authorization header for tok.
func bearer(tok string) http.Header {
	return http.Header{"Authorization": {"Bearer " + tok}}
}

// dialToken opens a WebSocket with tok as a bearer token and handshakes.
func (ts *testServer) dialToken(t *testing.T, tok string) *tclient {
	t.Helper()
	c := ts.dial(t, bearer(tok))
	c.record = true
	c.handshake("")
	return c
}

// dialRefused tries a WebSocket upgrade with hdr, which must be refused
// with status and an error of code; it returns the body.
func (ts *testServer) dialRefused(t *testing.T, url string, hdr http.Header, status int, code string) string {
	t.Helper()
	d := websocket.Dialer{HandshakeTimeout: 10 * time.Second}
	ws, resp, err := d.Dial(url, hdr)
	if err == nil {
		ws.Close()
		t.Fatalf("Dial(%s) with %v succeeded, want status %d %s", url, hdr, status, code)
	}
	if resp == nil {
		t.Fatalf("Dial(%s) = %v, want status %d %s", url, err, status, code)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	checkHTTPError(t, resp.StatusCode, string(body), status, code)
	return string(body)
}

// mustNotContain fails if got holds secret.
func mustNotContain(t *testing.T, what string, got []byte, secret string) {
	t.Helper()
	if strings.Contains(string(got), secret) {
		t.Fatalf("%s holds the protected text %q:\n%s", what, secret, got)
	}
}

// checkNoLeaks registers a cleanup, run after the test's other cleanups
// (servers, hubs, stores), that fails the test if a goroutine started
// during it is still running.
func checkNoLeaks(t *testing.T) {
	t.Helper()
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() {
		http.DefaultClient.CloseIdleConnections()
		if err := goleak.Find(ignore); err != nil {
			t.Errorf("goroutines outlived the test: %v", err)
		}
	})
}

// dialURL opens a WebSocket at url (which may carry ?token=) and
// handshakes.
func (ts *testServer) dialURL(t *testing.T, url string) *tclient {
	t.Helper()
	ws, resp, err := websocket.DefaultDialer.Dial(url, nil)
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		t.Fatalf("Dial = %v (status %d)", err, status)
	}
	t.Cleanup(func() { ws.Close() })
	c := &tclient{t: t, ws: ws, record: true}
	c.handshake("")
	return c
}

// isCloseCode reports whether err is a close frame with code.
func isCloseCode(err error, code int) bool {
	return websocket.IsCloseError(err, code)
}

// startHubOpts are the hub options of the auth tests: the defaults.
func startHubOpts() collab.Options { return collab.Options{} }

// httpDoHeader is a request without a body that returns the response
// headers too.
func (ts *testServer) httpDoHeader(t *testing.T, method, path string, hdr map[string]string) (int, string, http.Header) {
	t.Helper()
	return ts.httpRequest(t, method, path, "", hdr)
}

// httpRequest sends method path to ts with body (as JSON when not empty) and
// hdr, and returns the status, the body and the response headers.
func (ts *testServer) httpRequest(t *testing.T, method, path, body string, hdr map[string]string) (int, string, http.Header) {
	t.Helper()
	req, err := http.NewRequest(method, ts.http.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range hdr {
		if k == "Host" {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	// A redirect's own headers are the tests' to see, not its target's.
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading body: %v", method, path, err)
	}
	client.CloseIdleConnections()
	return resp.StatusCode, string(b), resp.Header
}

// fetchData fetches coll/id over c and returns its text.
func (c *tclient) fetchData(coll, id string) string {
	c.t.Helper()
	c.sendf(`{"a":"f","c":%q,"d":%q}`, coll, id)
	m := c.recv()
	data, _ := m["data"].(map[string]any)
	text, ok := data["data"].(string)
	if !ok {
		c.t.Fatalf("fetch %s/%s = %s, want a snapshot", coll, id, mustJSON(m))
	}
	return text
}
