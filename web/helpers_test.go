package web

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/coedit/coedit/collab"
	"github.com/coedit/coedit/collab/collabtest"
	"github.com/coedit/coedit/storage"
)

// testServer is a Server on a real bbolt file behind httptest.
type testServer struct {
	t     testing.TB
	srv   *Server
	hub   *collab.Hub
	store *storage.DB
	http  *httptest.Server
	wsURL string
}

// startServer starts a server with opts (Hub filled in) over a hub with
// hopts (Store filled in). Cleanup closes everything in the production
// order and checks the store's consistency.
func startServer(t testing.TB, opts Options, hopts collab.Options) *testServer {
	t.Helper()
	return startServerListener(t, opts, hopts, nil)
}

// startServerListener is startServer with a wrapper for the listener.
func startServerListener(t testing.TB, opts Options, hopts collab.Options, wrap func(net.Listener) net.Listener) *testServer {
	t.Helper()
	return startServerWith(t, opts, hopts, wrap, nil)
}

// startServerStore is startServer with a wrapper around the real store
// the hub uses (to make it fail or wait).
func startServerStore(t testing.TB, opts Options, hopts collab.Options, wrapStore func(*storage.DB) collab.Store) *testServer {
	t.Helper()
	return startServerWith(t, opts, hopts, nil, wrapStore)
}

// startServerWith is startServer with optional wrappers for the listener
// and the store.
func startServerWith(t testing.TB, opts Options, hopts collab.Options, wrap func(net.Listener) net.Listener, wrapStore func(*storage.DB) collab.Store) *testServer {
	t.Helper()
	// The hub and store as webtest.Start has them (it imports this
	// package, so the server part is built here): collabtest's cleanup,
	// registered first, runs after the server's.
	nodeOpts := []collabtest.Option{collabtest.WithHub(hopts), collabtest.WithCheck()}
	if wrapStore != nil {
		nodeOpts = append(nodeOpts, collabtest.WithStoreWrapper(wrapStore))
	}
	node := collabtest.Start(t, nodeOpts...)
	opts.Hub = node.Hub
	srv, err := New(opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	hs := httptest.NewUnstartedServer(srv.Handler())
	if wrap != nil {
		hs.Listener = wrap(hs.Listener)
	}
	hs.Start()
	ts := &testServer{t: t, srv: srv, hub: node.Hub, store: node.DB, http: hs,
		wsURL: "ws" + strings.TrimPrefix(hs.URL, "http") + "/ws"}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Close(ctx); err != nil {
			t.Errorf("Server.Close: %v", err)
		}
		hs.Close()
	})
	return ts
}

// tclient is a raw WebSocket client speaking the protocol by hand.
type tclient struct {
	t   *testing.T
	ws  *websocket.Conn
	src string
	// record makes the client keep in received every data frame read
	// and the close reason, for tests that check what it was never sent.
	record   bool
	received []byte
}

// dial opens a WebSocket without the handshake.
func (ts *testServer) dial(t *testing.T, hdr http.Header) *tclient {
	t.Helper()
	ws, resp, err := websocket.DefaultDialer.Dial(ts.wsURL, hdr)
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		t.Fatalf("Dial(%s) = %v (status %d)", ts.wsURL, err, status)
	}
	c := &tclient{t: t, ws: ws}
	t.Cleanup(func() { ws.Close() })
	return c
}

// connect opens a WebSocket and handshakes with no id.
func (ts *testServer) connect(t *testing.T) *tclient {
	t.Helper()
	c := ts.dial(t, nil)
	c.handshake("")
	return c
}

// handshake sends hs with id (none when "") and checks the reply.
func (c *tclient) handshake(id string) {
	c.t.Helper()
	idJSON := "null"
	if id != "" {
		idJSON = jsonString(id)
	}
	c.sendRaw(`{"a":"hs","id":` + idJSON + `,"protocol":1,"protocolMinor":2}`)
	m := c.recv()
	c.src, _ = m["id"].(string)
	c.expectEqual(m, fmt.Sprintf(`{"a":"hs","protocol":1,"protocolMinor":2,"id":%q,"type":"http://sharejs.org/types/JSONv0"}`, c.src))
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// sendRaw sends one text frame.
func (c *tclient) sendRaw(s string) {
	c.t.Helper()
	if err := c.ws.WriteMessage(websocket.TextMessage, []byte(s)); err != nil {
		c.t.Fatalf("WriteMessage(%s): %v", s, err)
	}
}

// sendf sends a frame built with fmt.Sprintf.
func (c *tclient) sendf(format string, args ...any) {
	c.t.Helper()
	c.sendRaw(fmt.Sprintf(format, args...))
}

// recv reads one message as a JSON object, failing after 10s.
func (c *tclient) recv() map[string]any {
	c.t.Helper()
	m, err := c.tryRecv(10 * time.Second)
	if err != nil {
		c.t.Fatalf("recv: %v", err)
	}
	return m
}

// readUntilClosed passes every message to fn until the connection ends
// (or is silent for 10 s) and returns why it ended: the close, for a
// server that closed it.
func (c *tclient) readUntilClosed(fn func(m map[string]any)) error {
	for {
		m, err := c.tryRecv(10 * time.Second)
		if err != nil {
			return err
		}
		fn(m)
	}
}

func (c *tclient) tryRecv(timeout time.Duration) (map[string]any, error) {
	c.ws.SetReadDeadline(time.Now().Add(timeout))
	typ, data, err := c.ws.ReadMessage()
	c.keep(data, err)
	if err != nil {
		return nil, err
	}
	if typ != websocket.TextMessage {
		return nil, fmt.Errorf("frame type %d, want text", typ)
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("frame %s is not a JSON object: %v", data, err)
	}
	return m, nil
}

// expect reads one message and checks it equals want (JSON).
func (c *tclient) expect(want string) map[string]any {
	c.t.Helper()
	m := c.recv()
	c.expectEqual(m, want)
	return m
}

// expectf is expect with fmt.Sprintf.
func (c *tclient) expectf(format string, args ...any) map[string]any {
	c.t.Helper()
	return c.expect(fmt.Sprintf(format, args...))
}

func (c *tclient) expectEqual(got map[string]any, want string) {
	c.t.Helper()
	var w map[string]any
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		c.t.Fatalf("bad want %s: %v", want, err)
	}
	if !reflect.DeepEqual(got, w) {
		c.t.Fatalf("received %s, want %s", mustJSON(got), mustJSON(w))
	}
}

// expectError reads one message and checks it is request (JSON) echoed
// with an error of code; it returns the error message.
func (c *tclient) expectError(request, code string) string {
	c.t.Helper()
	m := c.recv()
	return checkErrorReply(c.t, m, request, code)
}

func checkErrorReply(t *testing.T, m map[string]any, request, code string) string {
	t.Helper()
	e, ok := m["error"].(map[string]any)
	if !ok {
		t.Fatalf("received %s, want an error %s echoing %s", mustJSON(m), code, request)
	}
	msg, _ := e["message"].(string)
	if e["code"] != code || msg == "" {
		t.Fatalf("received error %s, want code %s with a message (reply %s)", mustJSON(e), code, mustJSON(m))
	}
	delete(m, "error")
	var w map[string]any
	if request != "" {
		if err := json.Unmarshal([]byte(request), &w); err != nil {
			t.Fatalf("bad request %s: %v", request, err)
		}
	} else {
		w = map[string]any{}
	}
	if !reflect.DeepEqual(m, w) {
		t.Fatalf("error reply echoes %s, want %s", mustJSON(m), mustJSON(w))
	}
	return msg
}

// sync waits until key's session has processed everything c sent it
// before: a fetch is answered after them, so any op they caused c to
// receive arrives first. It returns the messages that arrived meanwhile.
func (c *tclient) sync(coll, id string) []map[string]any {
	c.t.Helper()
	c.sendf(`{"a":"f","c":%q,"d":%q,"v":999999999}`, coll, id)
	var got []map[string]any
	for {
		m := c.recv()
		if m["a"] == "f" && m["c"] == coll && m["d"] == id {
			if _, hasErr := m["error"]; !hasErr {
				return got
			}
		}
		got = append(got, m)
	}
}

// closeErr reads until the connection ends and returns the close error.
func (c *tclient) closeErr(timeout time.Duration) error {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		c.ws.SetReadDeadline(deadline)
		_, data, err := c.ws.ReadMessage()
		c.keep(data, err)
		if err != nil {
			return err
		}
	}
}

// keep records a frame read, or the close reason in err, when c records.
func (c *tclient) keep(data []byte, err error) {
	if !c.record {
		return
	}
	c.received = append(c.received, data...)
	if ce := (*websocket.CloseError)(nil); errors.As(err, &ce) {
		c.received = append(c.received, ce.Text...)
	}
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprintf("%#v", v)
	}
	return string(b)
}

// create creates coll/id with text through c and checks the ack.
func (c *tclient) create(coll, id, text string, seq int) {
	c.t.Helper()
	c.sendf(`{"a":"op","c":%q,"d":%q,"v":null,"seq":%d,"create":{"type":"http://sharejs.org/types/text-unicode","data":%s}}`, coll, id, seq, jsonString(text))
	c.expectf(`{"a":"op","c":%q,"d":%q,"v":0,"src":%q,"seq":%d}`, coll, id, c.src, seq)
}

// httpDo performs an HTTP request against ts and returns status and body.
func (ts *testServer) httpDo(t *testing.T, method, path, contentType, body string, hdr map[string]string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, ts.http.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for k, v := range hdr {
		if k == "Host" {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading body: %v", method, path, err)
	}
	return resp.StatusCode, string(b)
}

// jsonEqual reports whether two JSON texts are equal as values.
func jsonEqual(t *testing.T, got, want string) bool {
	t.Helper()
	var g, w any
	if err := json.Unmarshal([]byte(got), &g); err != nil {
		t.Fatalf("got %q is not JSON: %v", got, err)
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatalf("want %q is not JSON: %v", want, err)
	}
	return reflect.DeepEqual(g, w)
}

// jsonLines splits a JSON Lines body.
func jsonLines(body string) []string {
	var out []string
	for _, l := range bytes.Split([]byte(body), []byte("\n")) {
		if len(bytes.TrimSpace(l)) > 0 {
			out = append(out, string(l))
		}
	}
	return out
}
