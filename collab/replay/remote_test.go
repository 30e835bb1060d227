package replay_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/gorilla/websocket"

	"github.com/coedit/coedit/collab"
	"github.com/coedit/coedit/collab/collabtest"
	"github.com/coedit/coedit/collab/replay"
	"github.com/coedit/coedit/editlog"
	"github.com/coedit/coedit/ot"
	"github.com/coedit/coedit/web"
	"github.com/coedit/coedit/web/webtest"
)

// startWeb serves node's hub over HTTP and WebSocket on a loopback port
// (webtest.Serve). The rate limits are raised: a replay submits as fast
// as the server acknowledges.
func startWeb(t *testing.T, node *collabtest.Server) *webtest.Server {
	t.Helper()
	return webtest.Serve(t, node.Hub, web.Options{OpsPerSecond: 1e6, OpsBurst: 1e6, MessagesPerSecond: 1e6, MessagesBurst: 1e6})
}

// TestReplayRemoteEditLogs replays every edit log over real WebSockets
// against a node served by package web, one connection per src, then
// exports the node's op log over HTTP and replays that offline into a
// fresh node: all three must end in the expected document.
func TestReplayRemoteEditLogs(t *testing.T) {
	for _, file := range editLogs(t) {
		l, err := editlog.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		t.Run(l.Name, func(t *testing.T) {
			node := collabtest.Start(t)
			srv := startWeb(t, node)
			res, err := replay.Remote(t.Context(), srv.WSURL, l)
			if err != nil {
				t.Fatalf("ReplayRemote(%s): %v", l.Name, err)
			}
			if res.Final.Data != l.Header.Final || res.Records != len(l.Records) {
				t.Errorf("ReplayRemote(%s) = %d records, final %q; want %d, %q", l.Name, res.Records, res.Final.Data, len(l.Records), l.Header.Final)
			}

			export := fetchExport(t, srv.URL, res.Key.Collection, res.Key.ID)
			if err := export.Validate(); err != nil {
				t.Fatalf("exported op log is not a valid edit log: %v", err)
			}
			again, err := replay.Run(t.Context(), collabtest.Start(t).Hub, export, replay.WithKey("export", l.Name))
			if err != nil {
				t.Fatalf("Replay(export of %s): %v", l.Name, err)
			}
			if again.Final.Version != res.Final.Version || again.Final.Data != res.Final.Data || again.Final.Type != res.Final.Type {
				t.Errorf("replayed export = %+v, want %+v", again.Final, res.Final)
			}
			if again.Duplicates != 0 || again.Records != int(res.Final.Version) {
				t.Errorf("replayed export = %d records, %d duplicates; want %d, 0 (an export has no resends)", again.Records, again.Duplicates, res.Final.Version)
			}
		})
	}
}

// fetchExport reads GET /api/docs/{c}/{id}/ops as an edit log.
func fetchExport(t *testing.T, base, collection, id string) *editlog.Log {
	t.Helper()
	resp, err := http.Get(base + "/api/docs/" + collection + "/" + id + "/ops")
	if err != nil {
		t.Fatalf("GET ops: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET ops: %s", resp.Status)
	}
	l, err := editlog.Read(resp.Body)
	if err != nil {
		t.Fatalf("reading the exported op log: %v", err)
	}
	return l
}

// TestReplayRemoteErrors checks the remote replay's refusals: a document
// that exists, and an op the server rejects.
func TestReplayRemoteErrors(t *testing.T) {
	node := collabtest.Start(t)
	url := startWeb(t, node).WSURL
	l, err := editlog.Read(strings.NewReader(`{"editlog":1,"initial":"abc","final":"abcd"}
{"src":"a","seq":1,"v":1,"op":[3,"d"]}
`))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := replay.Remote(t.Context(), url, l, replay.WithKey("c", "x")); err != nil {
		t.Fatalf("first ReplayRemote: %v", err)
	}
	if _, err := replay.Remote(t.Context(), url, l, replay.WithKey("c", "x")); !errors.Is(err, replay.ErrNotFresh) {
		t.Errorf("ReplayRemote into an existing document = %v, want ErrNotFresh", err)
	}

	bad, err := editlog.Read(strings.NewReader(`{"editlog":1,"initial":"abc"}
{"src":"a","seq":1,"v":1,"op":[9,"d"]}
`))
	if err != nil {
		t.Fatal(err)
	}
	_, err = replay.Remote(t.Context(), url, bad, replay.WithKey("c", "bad"))
	var re *replay.RemoteError
	if !errors.As(err, &re) || re.Code != "ERR_OT_OP_NOT_APPLIED" || !strings.Contains(err.Error(), "line 2") {
		t.Errorf("ReplayRemote(op past the end) = %v, want ERR_OT_OP_NOT_APPLIED naming line 2", err)
	}

	if _, err := replay.Remote(t.Context(), "ws://127.0.0.1:1/ws", l); err == nil || !strings.Contains(err.Error(), "dial") {
		t.Errorf("ReplayRemote(no server) = %v, want a dial error", err)
	}
}

// TestReplayRemoteToken replays against a server with authentication
// on, with the token in a header (WithToken) and in the URL; no error
// may show the token.
func TestReplayRemoteToken(t *testing.T) {
	secret := []byte(strings.Repeat("k", 32))
	srv := webtest.Start(t, web.Options{AuthSecret: secret})
	claims := web.TokenClaims{Docs: []web.TokenDoc{{Pattern: "*/*", Write: true}}}
	claims.Subject = "replayer"
	claims.ExpiresAt = jwt.NewNumericDate(time.Now().Add(time.Hour))
	token, err := web.SignToken(secret, claims)
	if err != nil {
		t.Fatal(err)
	}
	l, err := editlog.Read(strings.NewReader(`{"editlog":1,"initial":"abc","final":"abcd"}
{"src":"a","seq":1,"v":1,"op":[3,"d"]}
`))
	if err != nil {
		t.Fatal(err)
	}
	noLeak := func(what string, err error, secret string) {
		t.Helper()
		if err != nil && strings.Contains(err.Error(), secret) {
			t.Errorf("%s: error %q shows the token", what, err)
		}
	}

	if _, err := replay.Remote(t.Context(), srv.WSURL, l, replay.WithKey("c", "header"), replay.WithToken(token)); err != nil {
		t.Errorf("Remote(WithToken) = %v, want nil", err)
	}
	inURL := srv.WSURL + "?token=" + token
	if _, err := replay.Remote(t.Context(), inURL, l, replay.WithKey("c", "query")); err != nil {
		t.Errorf("Remote(?token=) = %v, want nil", err)
	}
	_, err = replay.Remote(t.Context(), inURL, l, replay.WithKey("c", "query"))
	if !errors.Is(err, replay.ErrNotFresh) || !strings.Contains(err.Error(), "token=REDACTED") {
		t.Errorf("Remote(?token=) into an existing document = %v, want ErrNotFresh showing token=REDACTED", err)
	}
	noLeak("Remote(?token=) into an existing document", err, token)

	_, err = replay.Remote(t.Context(), srv.WSURL, l, replay.WithKey("c", "none"))
	if err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("Remote(no token) = %v, want a dial error with HTTP 401", err)
	}
	_, err = replay.Remote(t.Context(), srv.WSURL+"?token=not-a-valid-token-s3cr3t", l, replay.WithKey("c", "bad"))
	if err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("Remote(?token=bad) = %v, want a dial error with HTTP 401", err)
	}
	noLeak("Remote(?token=bad)", err, "s3cr3t")
	_, err = replay.Remote(t.Context(), "ws://127.0.0.1:1/ws?token=s3cr3t%zz", l)
	if err == nil {
		t.Errorf("Remote(a URL that does not parse) = nil, want an error")
	}
	noLeak("Remote(a URL that does not parse)", err, "s3cr3t")
}

func TestRedactURL(t *testing.T) {
	tests := []struct{ in, want string }{
		{"ws://127.0.0.1:8080/ws", "ws://127.0.0.1:8080/ws"},
		{"ws://h/ws?token=abc.def.ghi", "ws://h/ws?token=REDACTED"},
		{"wss://h/ws?a=1&token=abc&b=2", "wss://h/ws?a=1&token=REDACTED&b=2"},
		{"ws://h/ws?%74oken=abc", "ws://h/ws?%74oken=REDACTED"},
		{"ws://h/ws?token=a&token=b", "ws://h/ws?token=REDACTED&token=REDACTED"},
		{"ws://user:pw@h/ws", "ws://user:xxxxx@h/ws"},
		{"ws://h/ws?token=s3cr3t%zz", "ws://h/ws?token=REDACTED"},
		{"ws://h:bad/ws?token=s3cr3t", "ws://h:bad/ws?REDACTED"},
	}
	for _, tt := range tests {
		if got := replay.RedactURL(tt.in); got != tt.want {
			t.Errorf("RedactURL(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// TestReplayRemoteRateLimited replays against a server that refuses
// every other submit with ERR_RATE_LIMITED: the refused submits are sent
// again and the replay ends right. A coedit server slows a connection
// over its rate instead of refusing, so the server here is a fake.
func TestReplayRemoteRateLimited(t *testing.T) {
	srv := startRefusingServer(t)
	var b strings.Builder
	b.WriteString(`{"editlog":1,"initial":"","final":"0123456789"}` + "\n")
	b.WriteString(`{"src":"a","seq":1,"v":1,"op":["0"]}` + "\n")
	for i := 1; i < 10; i++ {
		fmt.Fprintf(&b, `{"src":"a","seq":%d,"v":%d,"op":[%d,"%d"]}`+"\n", i+1, i+1, i, i)
	}
	in := b.String()
	l, err := editlog.Read(strings.NewReader(in))
	if err != nil {
		t.Fatalf("Read: %v\n%s", err, in)
	}
	res, err := replay.Remote(t.Context(), srv, l)
	if err != nil {
		t.Fatalf("ReplayRemote under a rate limit: %v", err)
	}
	if res.Final.Data != "0123456789" || res.RateLimited != 11 {
		t.Errorf("ReplayRemote = final %q after %d rate-limited submits; want 0123456789 after 11 (one per submit)", res.Final.Data, res.RateLimited)
	}
}

// startRefusingServer serves one document over a minimal ShareDB
// protocol (hs, f, op against the head) and refuses the first attempt
// of every submit with ERR_RATE_LIMITED. It returns its ws:// URL.
func startRefusingServer(t *testing.T) string {
	var (
		mu     sync.Mutex
		doc    collab.Snapshot
		conns  int
		denied = map[string]bool{} // src/seq refused once
	)
	up := websocket.Upgrader{}
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer conn.Close()
		var src string
		for {
			var m struct {
				A      string          `json:"a"`
				C      string          `json:"c"`
				D      string          `json:"d"`
				ID     *string         `json:"id"`
				Seq    uint64          `json:"seq"`
				Op     json.RawMessage `json:"op"`
				Create *struct{ Type, Data string }
			}
			if err := conn.ReadJSON(&m); err != nil {
				return
			}
			mu.Lock()
			var reply map[string]any
			switch m.A {
			case "hs":
				conns++
				src = fmt.Sprintf("srv%d", conns)
				if m.ID != nil {
					src = *m.ID
				}
				reply = map[string]any{"a": "hs", "id": src, "protocol": 1, "protocolMinor": 2}
			case "f":
				var typ any
				if doc.Type != "" {
					typ = doc.Type
				}
				reply = map[string]any{"a": "f", "c": m.C, "d": m.D, "data": map[string]any{"v": doc.Version, "type": typ, "data": doc.Data}}
			case "op":
				reply = map[string]any{"a": "op", "c": m.C, "d": m.D, "src": src, "seq": m.Seq}
				key := fmt.Sprint(src, "/", m.Seq)
				switch {
				case !denied[key]:
					denied[key] = true
					reply["error"] = map[string]string{"code": "ERR_RATE_LIMITED", "message": "slow down"}
				case m.Create != nil:
					doc = collab.Snapshot{Version: doc.Version + 1, Type: m.Create.Type, Data: m.Create.Data}
					reply["v"] = doc.Version - 1
				default:
					op, err := ot.Decode(m.Op)
					if err == nil {
						doc.Data, err = ot.Apply(doc.Data, op)
					}
					if err != nil {
						t.Errorf("fake server: op %s: %v", m.Op, err)
					}
					doc.Version++
					reply["v"] = doc.Version - 1
				}
			}
			mu.Unlock()
			if err := conn.WriteJSON(reply); err != nil {
				return
			}
		}
	}))
	t.Cleanup(hs.Close)
	return "ws" + strings.TrimPrefix(hs.URL, "http") + "/ws"
}

// TestReplayRemoteMoreSrcsThanConnections replays a log of 30 srcs, each
// twice, and a resend of one after its connection was closed, against a
// server that allows 8 connections per address, holding at most 4 open:
// the connection used longest ago is closed for the next src, and a src
// that comes back claims its server src back, so its resend is still
// recognised. An op log exported after HTTP submits without a src (one
// src each) failed so, past 256 of them, against coedit's default limit.
func TestReplayRemoteMoreSrcsThanConnections(t *testing.T) {
	srv := webtest.Start(t, web.Options{MaxConnsPerAddr: 8, OpsPerSecond: 1e6, OpsBurst: 1e6, MessagesPerSecond: 1e6, MessagesBurst: 1e6})
	const n = 30
	var b strings.Builder
	fmt.Fprintf(&b, `{"editlog":1,"initial":"","final":%q}`+"\n", strings.Repeat("y", n)+strings.Repeat("x", n))
	for i := range n {
		fmt.Fprintf(&b, `{"src":"s%d","seq":1,"v":%d,"op":["x"]}`+"\n", i, 1+i)
	}
	for i := range n {
		fmt.Fprintf(&b, `{"src":"s%d","seq":2,"v":%d,"op":["y"]}`+"\n", i, 1+n+i)
	}
	fmt.Fprintf(&b, `{"src":"s0","seq":2,"v":%d,"op":["y"]}`+"\n", 1+n) // a resend, long after
	l, err := editlog.Read(strings.NewReader(b.String()))
	if err != nil {
		t.Fatal(err)
	}
	res, err := replay.Remote(t.Context(), srv.WSURL, l, replay.WithConns(4))
	if err != nil {
		t.Fatalf("ReplayRemote with more srcs than connections: %v", err)
	}
	if res.Committed != 2*n+1 || res.Duplicates != 1 || res.Final.Version != 2*n+1 {
		t.Errorf("ReplayRemote = %d committed, %d duplicates, version %d; want %d, 1, %d", res.Committed, res.Duplicates, res.Final.Version, 2*n+1, 2*n+1)
	}
}
