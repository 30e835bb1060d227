package web

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/coedit/coedit/collab"
	"github.com/coedit/coedit/ot"
)

// TestAuthMatrixHTTP: with auth on, every HTTP API path answers 401 with
// a coded error for a missing, badly signed or expired token, 403 for a
// document the token does not allow (read for the snapshot and the op
// log, write for a submit), lists only readable documents, and no body
// holds the protected text; the allowed requests work with the token in
// the Authorization header, the query or the cookie.
func TestAuthMatrixHTTP(t *testing.T) {
	checkNoLeaks(t)
	ts := startAuthServer(t, Options{})
	seedAuthDocs(t, ts)
	other := []byte("another secret, also 32 bytes long!")
	paths := []struct{ method, path, body string }{
		{"GET", "/api/docs", ""},
		{"GET", "/api/docs?collection=secret", ""},
		{"GET", "/api/docs/secret/plan", ""},
		{"GET", "/api/docs/secret/plan/ops", ""},
		{"POST", "/api/docs/secret/plan/ops", `{"v":1,"op":["x"]}`},
		{"GET", "/api/auth", ""},
	}
	for _, tc := range []struct {
		name string
		hdr  map[string]string
		code string
	}{
		{"no token", nil, CodeTokenRequired},
		{"bad signature", map[string]string{"Authorization": "Bearer " + token(t, other, "m", time.Hour, rw("*/*"))}, CodeTokenInvalid},
		{"not a bearer token", map[string]string{"Authorization": "Basic YWxpY2U6cHc="}, CodeTokenRequired},
		{"expired", map[string]string{"Authorization": "Bearer " + token(t, testSecret, "alice", -time.Minute, rw("*/*"))}, CodeTokenExpired},
	} {
		for _, p := range paths {
			status, body := ts.httpDo(t, p.method, p.path, "application/json", p.body, tc.hdr)
			checkHTTPError(t, status, body, http.StatusUnauthorized, tc.code)
			mustNotContain(t, tc.name+" "+p.path, []byte(body), secretText)
		}
	}
	status, _, hdr := ts.httpDoHeader(t, "GET", "/api/docs/secret/plan", nil)
	if status != http.StatusUnauthorized || !strings.HasPrefix(hdr.Get("WWW-Authenticate"), "Bearer") {
		t.Fatalf("no token: status %d, WWW-Authenticate %q; want 401 with a Bearer challenge", status, hdr.Get("WWW-Authenticate"))
	}

	alice := map[string]string{"Authorization": "Bearer " + token(t, testSecret, "alice", time.Hour, rw("notes/*"))}
	reader := map[string]string{"Authorization": "Bearer " + token(t, testSecret, "reader", time.Hour, ro("notes/*"))}
	for _, tc := range []struct {
		name             string
		hdr              map[string]string
		method, path, in string
	}{
		{"snapshot", alice, "GET", "/api/docs/secret/plan", ""},
		{"op log", alice, "GET", "/api/docs/secret/plan/ops", ""},
		{"op log range", alice, "GET", "/api/docs/secret/plan/ops?from=0&to=1", ""},
		{"submit", alice, "POST", "/api/docs/secret/plan/ops", `{"v":1,"op":["x"]}`},
		{"create", alice, "POST", "/api/docs/secret/new/ops", `{"v":null,"create":{"type":"text-unicode","data":""}}`},
		{"read-only submit", reader, "POST", "/api/docs/notes/a/ops", `{"v":1,"op":["x"]}`},
	} {
		status, body := ts.httpDo(t, tc.method, tc.path, "application/json", tc.in, tc.hdr)
		checkHTTPError(t, status, body, http.StatusForbidden, CodeForbidden)
		mustNotContain(t, tc.name, []byte(body), secretText)
	}

	// The list holds only readable documents.
	for _, path := range []string{"/api/docs", "/api/docs?collection=secret", "/api/docs?limit=1"} {
		status, body := ts.httpDo(t, "GET", path, "", "", alice)
		if status != http.StatusOK || strings.Contains(body, "secret") {
			t.Fatalf("GET %s as alice = %d %s, want 200 without secret/plan", path, status, body)
		}
	}
	status, body := ts.httpDo(t, "GET", "/api/docs", "", "", alice)
	if status != http.StatusOK || !strings.Contains(body, `"collection":"notes","id":"a"`) {
		t.Fatalf("GET /api/docs as alice = %d %s, want notes/a", status, body)
	}

	// Allowed: read with each way of passing the token, write with a
	// writable token, and /api/auth says who the token names.
	tok := strings.TrimPrefix(alice["Authorization"], "Bearer ")
	for _, hdr := range []map[string]string{alice, reader, {"Cookie": TokenCookie + "=" + tok}} {
		status, body := ts.httpDo(t, "GET", "/api/docs/notes/a", "", "", hdr)
		if status != http.StatusOK || !jsonEqual(t, body, `{"v":1,"data":"hello","type":"`+textURI+`"}`) {
			t.Fatalf("GET notes/a = %d %s", status, body)
		}
	}
	status, body = ts.httpDo(t, "GET", "/api/docs/notes/a/ops?token="+url.QueryEscape(tok), "", "", nil)
	if status != http.StatusOK || len(jsonLines(body)) != 1 {
		t.Fatalf("GET notes/a/ops?token= = %d %s", status, body)
	}
	status, body = ts.httpDo(t, "POST", "/api/docs/notes/a/ops", "application/json", `{"v":1,"src":"job","seq":1,"op":["x"]}`, alice)
	if status != http.StatusOK || !strings.Contains(body, `"v":1`) {
		t.Fatalf("POST notes/a as alice = %d %s", status, body)
	}
	status, body = ts.httpDo(t, "GET", "/api/auth", "", "", alice)
	if status != http.StatusOK || !strings.Contains(body, `"sub":"alice"`) || !strings.Contains(body, `"auth":true`) {
		t.Fatalf("GET /api/auth = %d %s", status, body)
	}
}

// TestHTTPSrcTiedToSubject: with auth on, an HTTP submit's src is stored
// in its subject's namespace, so another subject reusing the same src
// and seq commits its own op rather than being taken for a resend of the
// first subject's (and having it dropped).
func TestHTTPSrcTiedToSubject(t *testing.T) {
	ts := startAuthServer(t, Options{})
	seedAuthDocs(t, ts)
	for i, sub := range []string{"alice", "bob"} {
		hdr := map[string]string{"Authorization": "Bearer " + token(t, testSecret, sub, time.Hour, rw("notes/*"))}
		status, body := ts.httpDo(t, "POST", "/api/docs/notes/a/ops", "application/json", `{"v":null,"src":"job","seq":1,"op":["`+sub+`"]}`, hdr)
		if status != http.StatusOK || strings.Contains(body, "duplicate") || !strings.Contains(body, `"v":`+string(rune('1'+i))) {
			t.Fatalf("POST as %s = %d %s, want committed at v%d", sub, status, body, i+1)
		}
	}
}

// TestHostCheck: a request whose Host (and Origin) is a name the server
// does not answer for, as after DNS rebinding, is refused with 421 on the
// WebSocket, the API, the pages, the assets and the probes, even with
// auth off on loopback; IP literals, localhost and configured names pass.
func TestHostCheck(t *testing.T) {
	checkNoLeaks(t)
	ts := startServer(t, Options{Logger: quiet, AllowedHosts: []string{"coedit.example"}}, startHubOpts())
	c := ts.connect(t)
	c.create("docs", "hello", secretText, 1)
	port := ts.http.Listener.Addr().String()[strings.LastIndexByte(ts.http.Listener.Addr().String(), ':'):]
	evil := map[string]string{"Host": "evil.example" + port, "Origin": "http://evil.example" + port}
	for _, p := range []struct{ method, path, body string }{
		{"GET", "/ws", ""},
		{"GET", "/api/docs", ""},
		{"GET", "/api/docs/docs/hello", ""},
		{"GET", "/api/docs/docs/hello/ops", ""},
		{"POST", "/api/docs/docs/hello/ops", `{"v":1,"op":["pwned"]}`},
		{"GET", "/", ""},
		{"GET", "/d/docs/hello", ""},
		{"GET", "/static/js/app.js", ""},
		{"GET", "/metrics", ""},
		{"GET", "/health", ""},
		{"GET", "/api/auth", ""},
	} {
		status, body := ts.httpDo(t, p.method, p.path, "application/json", p.body, evil)
		checkHTTPError(t, status, body, http.StatusMisdirectedRequest, CodeHostNotAllowed)
		mustNotContain(t, p.path, []byte(body), secretText)
	}
	ts.dialRefused(t, ts.wsURL, http.Header{"Host": {"evil.example" + port}, "Origin": {"http://evil.example" + port}}, http.StatusMisdirectedRequest, CodeHostNotAllowed)
	ts.dialRefused(t, ts.wsURL, http.Header{"Host": {"EVIL.example."}}, http.StatusMisdirectedRequest, CodeHostNotAllowed)
	c.sync("docs", "hello")
	if snap := c.fetchData("docs", "hello"); snap != secretText {
		t.Fatalf("docs/hello = %q after the refused POST, want it unchanged", snap)
	}
	for _, host := range []string{"127.0.0.1" + port, "localhost" + port, "[::1]" + port, "coedit.example", "Coedit.Example" + port, "10.1.2.3"} {
		status, body := ts.httpDo(t, "GET", "/api/docs/docs/hello", "", "", map[string]string{"Host": host})
		if status != http.StatusOK {
			t.Errorf("Host %s: %d %s, want 200", host, status, body)
		}
	}
	open := startServer(t, Options{Logger: quiet, AllowedHosts: []string{"*"}}, startHubOpts())
	if status, body := open.httpDo(t, "GET", "/health", "", "", evil); status != http.StatusOK {
		t.Fatalf(`AllowedHosts ["*"]: /health with a foreign Host = %d %s, want 200`, status, body)
	}
}

// TestPagesWithAuth: with auth on, the list and the editor need a token
// (a 401 page says so, and which problem it is); a token in the page's
// URL moves into an HttpOnly cookie with a redirect to the URL without
// it; the list shows only readable documents; the editor of a document
// the token does not allow is a 403 page; the assets need no token.
func TestPagesWithAuth(t *testing.T) {
	checkNoLeaks(t)
	ts := startAuthServer(t, Options{})
	seedAuthDocs(t, ts)
	for _, tc := range []struct{ path, tok, want string }{
		{"/", "", "Sign-in needed"},
		{"/d/notes/a", "", "Sign-in needed"},
		{"/new", "", "Sign-in needed"},
		{"/d/notes/a?token=" + token(t, testSecret, "alice", -time.Minute, rw("*/*")), "", "Access expired"},
		{"/d/notes/a?token=junk", "", "Access token not accepted"},
		{"/", token(t, testSecret, "alice", -time.Minute, rw("*/*")), "Access expired"},
	} {
		hdr := map[string]string{}
		if tc.tok != "" {
			hdr["Cookie"] = TokenCookie + "=" + tc.tok
		}
		status, body, h := ts.httpDoHeader(t, "GET", tc.path, hdr)
		if status != http.StatusUnauthorized || !strings.Contains(body, tc.want) || h.Get("WWW-Authenticate") == "" {
			t.Errorf("GET %s = %d, want 401 %q; body:\n%s", tc.path, status, tc.want, body)
		}
	}

	tok := token(t, testSecret, "alice", time.Hour, rw("notes/*"))
	status, _, h := ts.httpDoHeader(t, "GET", "/d/notes/a?x=1&token="+tok, nil)
	loc, cookie := h.Get("Location"), h.Get("Set-Cookie")
	if status != http.StatusSeeOther || loc != "/d/notes/a?x=1" {
		t.Fatalf("GET /d/notes/a?token= = %d to %q, want 303 to /d/notes/a?x=1", status, loc)
	}
	for _, want := range []string{TokenCookie + "=" + tok, "HttpOnly", "SameSite=Lax", "Path=/", "Max-Age="} {
		if !strings.Contains(cookie, want) {
			t.Fatalf("Set-Cookie %q lacks %q", cookie, want)
		}
	}
	withCookie := map[string]string{"Cookie": TokenCookie + "=" + tok}
	status, body, _ := ts.httpDoHeader(t, "GET", "/d/notes/a", withCookie)
	if status != http.StatusOK || !strings.Contains(body, `data-collection="notes"`) {
		t.Fatalf("editor with the cookie = %d:\n%s", status, body)
	}
	status, body, _ = ts.httpDoHeader(t, "GET", "/d/secret/plan", withCookie)
	if status != http.StatusForbidden || !strings.Contains(body, "No access") {
		t.Fatalf("editor of secret/plan as alice = %d, want 403:\n%s", status, body)
	}
	for _, path := range []string{"/", "/?c=secret", "/?c=notes"} {
		status, body, _ = ts.httpDoHeader(t, "GET", path, withCookie)
		if status != http.StatusOK || strings.Contains(body, "/d/secret/plan") {
			t.Fatalf("list %s as alice = %d, want 200 without secret/plan:\n%s", path, status, body)
		}
	}
	if _, body, _ = ts.httpDoHeader(t, "GET", "/?c=notes", withCookie); !strings.Contains(body, "/d/notes/a") {
		t.Fatalf("list of notes as alice does not show notes/a:\n%s", body)
	}
	if status, _, _ = ts.httpDoHeader(t, "GET", "/static/js/app.js", nil); status != http.StatusOK {
		t.Fatalf("asset without a token = %d, want 200", status)
	}
}

// TestTokensNeverLogged: with debug logging, requests carrying valid,
// badly signed and expired tokens in the header, the query and the
// cookie, over the WebSocket, the API and the pages, leave no token in
// the log or in /metrics.
func TestTokensNeverLogged(t *testing.T) {
	var logs lockedLog
	ts := startAuthServer(t, Options{Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	seedAuthDocs(t, ts)
	toks := []string{
		token(t, testSecret, "alice", time.Hour, rw("notes/*")),
		token(t, []byte("another secret, also 32 bytes long!"), "m", time.Hour, rw("*/*")),
		token(t, testSecret, "alice", -time.Minute, rw("*/*")),
	}
	for _, tok := range toks {
		for _, hdr := range []map[string]string{{"Authorization": "Bearer " + tok}, {"Cookie": TokenCookie + "=" + tok}} {
			for _, path := range []string{"/api/docs", "/api/docs/secret/plan", "/api/docs/notes/a/ops", "/", "/d/secret/plan"} {
				ts.httpDo(t, "GET", path, "", "", hdr)
			}
			ts.httpDo(t, "POST", "/api/docs/secret/plan/ops", "application/json", `{"v":1,"op":["x"]}`, hdr)
		}
		ts.httpDo(t, "GET", "/api/docs/notes/a?token="+tok, "", "", nil)
		ts.httpDoHeader(t, "GET", "/d/notes/a?token="+tok, nil)
		if ws, _, err := websocket.DefaultDialer.Dial(ts.wsURL+"?token="+tok, nil); err == nil {
			ws.WriteMessage(websocket.TextMessage, []byte(`{"a":"f","c":"secret","d":"plan"}`))
			ws.ReadMessage()
			ws.Close()
		}
	}
	_, metrics := ts.httpDo(t, "GET", "/metrics", "", "", nil)
	waitFor(t, func() bool { return ts.srv.Connections() == 0 })
	for i, tok := range toks {
		sig := tok[strings.LastIndexByte(tok, '.')+1:]
		if strings.Contains(logs.String(), sig) || strings.Contains(metrics, sig) {
			t.Fatalf("token %d appears in the log or /metrics; log:\n%s", i, logs.String())
		}
	}
	if !strings.Contains(logs.String(), "websocket") {
		t.Fatalf("the debug log is empty; the test checks nothing:\n%s", logs.String())
	}
}

// lockedLog is a log sink safe for the server's goroutines.
type lockedLog struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestListForACollectionToken: a token whose grants name their
// collections ("notes/*") lists its documents from those collections, so
// it finds them however many documents of other collections changed
// since (a listing of all read the newest maxListScan of every
// collection, and came back empty once they were others'). A token with
// a wildcard collection still scans.
func TestListForACollectionToken(t *testing.T) {
	defer func(n int) { maxListScan = n }(maxListScan)
	maxListScan = 20
	ts := startServer(t, Options{Logger: quiet, AuthSecret: testSecret}, collab.Options{})
	ctx := context.Background()
	create := func(c, id string) {
		t.Helper()
		if _, err := ts.hub.SubmitWait(ctx, collab.Key{Collection: c, ID: id}, collab.Submission{Kind: collab.OpCreate, Type: ot.URI, Data: id}); err != nil {
			t.Fatal(err)
		}
	}
	create("notes", "mine")
	create("wiki", "ours")
	for i := range 3 * maxListScan {
		create("other", fmt.Sprint("d", i))
	}
	for _, tc := range []struct {
		grants []TokenDoc
		want   string
	}{
		{[]TokenDoc{rw("notes/*")}, "notes/mine"},
		{[]TokenDoc{rw("notes/*"), rw("wiki/our*")}, "notes/mine wiki/ours"}, // created in one ms: compared sorted
		{[]TokenDoc{rw("*/mine")}, ""},                                       // past the scan: a wildcard collection cannot be listed one by one
	} {
		hdr := map[string]string{"Authorization": "Bearer " + token(t, testSecret, "u", time.Hour, tc.grants...)}
		status, body := ts.httpDo(t, "GET", "/api/docs", "", "", hdr)
		var got struct {
			Docs []struct{ Collection, ID string }
		}
		if err := json.Unmarshal([]byte(body), &got); status != http.StatusOK || err != nil {
			t.Fatalf("GET /api/docs with %v = %d %s", tc.grants, status, body)
		}
		var names []string
		for _, d := range got.Docs {
			names = append(names, d.Collection+"/"+d.ID)
		}
		slices.Sort(names)
		if s := strings.Join(names, " "); s != tc.want {
			t.Errorf("GET /api/docs with %v lists %q, want %q", tc.grants, s, tc.want)
		}
	}
}
