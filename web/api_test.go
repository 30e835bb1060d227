package web

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coedit/coedit/collab"
	"github.com/coedit/coedit/ot"
)

// fakeClock returns a clock that moves 1s per call from start (Unix ms).
func fakeClock(start int64) func() time.Time {
	var mu sync.Mutex
	now := time.UnixMilli(start)
	return func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		now = now.Add(time.Second)
		return now
	}
}

func TestHTTPHealthAndReady(t *testing.T) {
	var notReady atomic.Pointer[error]
	ready := func(context.Context) error {
		if err := notReady.Load(); err != nil {
			return *err
		}
		return nil
	}
	ts := startServer(t, Options{Logger: quiet, Ready: ready}, collab.Options{})
	ts.connect(t)
	for _, tc := range []struct {
		path, want string
		status     int
	}{
		{"/health", `{"status":"ok","connections":1}`, 200},
		{"/ready", `{"status":"ready"}`, 200},
	} {
		status, body := ts.httpDo(t, "GET", tc.path, "", "", nil)
		if status != tc.status || !jsonEqual(t, body, tc.want) {
			t.Errorf("GET %s = %d %s, want %d %s", tc.path, status, body, tc.status, tc.want)
		}
	}
	err := errors.New("redis unreachable")
	notReady.Store(&err)
	status, body := ts.httpDo(t, "GET", "/ready", "", "", nil)
	if status != http.StatusServiceUnavailable || !jsonEqual(t, body, `{"status":"not ready","error":"redis unreachable"}`) {
		t.Errorf("GET /ready with a failing check = %d %s, want 503", status, body)
	}
}

func TestHTTPSubmitAndRead(t *testing.T) {
	ts := startServer(t, Options{Logger: quiet, MaxFrameSize: 4096}, collab.Options{Now: fakeClock(1_700_000_000_000)})
	post := func(path, body string) (int, string) {
		t.Helper()
		return ts.httpDo(t, "POST", path, "application/json", body, nil)
	}
	okPost := func(body, want string) {
		t.Helper()
		status, got := post("/api/docs/notes/a%2Fb/ops", body)
		if status != http.StatusOK || !jsonEqual(t, got, want) {
			t.Fatalf("POST %s = %d %s, want 200 %s", body, status, got, want)
		}
	}
	okPost(`{"v":null,"src":"c1","seq":1,"create":{"type":"text-unicode","data":"hello"}}`,
		`{"v":0,"src":"http:c1","seq":1,"create":{"type":"`+ot.URI+`","data":"hello"}}`)
	okPost(`{"v":1,"src":"c1","seq":2,"op":[5," world"]}`, `{"v":1,"src":"http:c1","seq":2,"op":[5," world"]}`)
	okPost(`{"v":1,"src":"c2","seq":1,"op":[">"]}`, `{"v":2,"src":"http:c2","seq":1,"op":[">"]}`)
	// Made at v1, transformed over both ops: the committed op is returned.
	okPost(`{"op":[5,"!"],"seq":1,"src":"c3","v":1}`, `{"v":3,"src":"http:c3","seq":1,"op":[6,"!"]}`)
	// A resend is answered with the op as first committed, once.
	okPost(`{"v":1,"src":"c1","seq":2,"op":[5," world"]}`, `{"v":1,"src":"http:c1","seq":2,"op":[5," world"],"duplicate":true}`)
	// Without src and seq the op gets a src of its own, used once
	// (TestClusterSubmitsWithoutSrcAreEachTheirOwn).
	status, got := post("/api/docs/notes/a%2Fb/ops", `{"v":4,"op":[{"d":1}]}`)
	var rec struct {
		V   int    `json:"v"`
		Src string `json:"src"`
		Seq int    `json:"seq"`
	}
	if status != http.StatusOK || json.Unmarshal([]byte(got), &rec) != nil || rec.V != 4 ||
		!strings.HasPrefix(rec.Src, anonSrcPrefix) || len(rec.Src) != len(anonSrcPrefix)+32 || rec.Seq != 1 {
		t.Fatalf("POST without src = %d %s, want 200 at v4 with a src %s<32 hex digits> and seq 1", status, got, anonSrcPrefix)
	}

	for _, tc := range []struct {
		name, path, ctype, body string
		status                  int
		code                    string
	}{
		{"src without seq", "/api/docs/notes/a%2Fb/ops", "application/json", `{"v":5,"src":"c1","op":["x"]}`, 400, CodeBadlyFormed},
		{"seq without src", "/api/docs/notes/a%2Fb/ops", "application/json", `{"v":5,"seq":9,"op":["x"]}`, 400, CodeBadlyFormed},
		{"not JSON", "/api/docs/notes/a%2Fb/ops", "application/json", `{"v":`, 400, CodeBadlyFormed},
		{"bad op", "/api/docs/notes/a%2Fb/ops", "application/json", `{"v":5,"op":[0]}`, 400, CodeOpBadlyFormed},
		{"missing doc", "/api/docs/notes/nope/ops", "application/json", `{"v":0,"op":["x"]}`, 404, CodeDocDoesNotExist},
		{"version ahead", "/api/docs/notes/a%2Fb/ops", "application/json", `{"v":50,"op":["x"]}`, 409, CodeVersionNewer},
		{"past the end", "/api/docs/notes/a%2Fb/ops", "application/json", `{"v":5,"op":[90,"x"]}`, 422, CodeOpNotApplied},
		{"already created", "/api/docs/notes/a%2Fb/ops", "application/json; charset=utf-8", `{"create":{"type":"text-unicode"}}`, 409, CodeDocAlreadyCreated},
		{"body too large", "/api/docs/notes/a%2Fb/ops", "application/json", `{"v":5,"op":["` + strings.Repeat("x", 5000) + `"]}`, 413, CodeOpTooLarge},
		{"text/plain", "/api/docs/notes/a%2Fb/ops", "text/plain", `{"v":5,"op":["x"]}`, 415, CodeBadlyFormed},
		{"no content type", "/api/docs/notes/a%2Fb/ops", "", `{"v":5,"op":["x"]}`, 415, CodeBadlyFormed},
		{"id not UTF-8", "/api/docs/notes/%ff/ops", "application/json", `{"v":0,"create":{"type":"text-unicode"}}`, 400, CodeBadlyFormed},
		{"id with a NUL", "/api/docs/notes/a%00b/ops", "application/json", `{"v":0,"create":{"type":"text-unicode"}}`, 400, CodeBadlyFormed},
		{"collection with a newline", "/api/docs/no%0Ates/a/ops", "application/json", `{"v":0,"create":{"type":"text-unicode"}}`, 400, CodeBadlyFormed},
	} {
		status, body := ts.httpDo(t, "POST", tc.path, tc.ctype, tc.body, nil)
		if status != tc.status || !strings.Contains(body, `"code":"`+tc.code+`"`) {
			t.Errorf("%s: POST = %d %s, want %d %s", tc.name, status, body, tc.status, tc.code)
		}
	}

	// Snapshots.
	for _, tc := range []struct{ path, want string }{
		{"/api/docs/notes/a%2Fb", `{"v":5,"type":"` + ot.URI + `","data":"hello! world"}`},
		{"/api/docs/notes/never", `{"v":0,"type":null}`},
	} {
		status, body := ts.httpDo(t, "GET", tc.path, "", "", nil)
		if status != http.StatusOK || !jsonEqual(t, body, tc.want) {
			t.Errorf("GET %s = %d %s, want 200 %s", tc.path, status, body, tc.want)
		}
	}

	// The op log as JSON Lines, whole and sliced.
	wantLines := []string{
		`{"v":0,"src":"http:c1","seq":1,"create":{"type":"` + ot.URI + `","data":"hello"},"m":{"ts":1700000001000}}`,
		`{"v":1,"src":"http:c1","seq":2,"op":[5," world"],"m":{"ts":1700000002000}}`,
		`{"v":2,"src":"http:c2","seq":1,"op":[">"],"m":{"ts":1700000003000}}`,
		`{"v":3,"src":"http:c3","seq":1,"op":[6,"!"],"m":{"ts":1700000004000}}`,
		`{"v":4,"src":` + jsonString(rec.Src) + `,"seq":1,"op":[{"d":1}],"m":{"ts":1700000005000}}`,
	}
	for _, tc := range []struct {
		query    string
		from, to int
	}{{"", 0, 5}, {"?from=1&to=3", 1, 3}, {"?from=3", 3, 5}, {"?to=1", 0, 1}, {"?from=9", 5, 5}, {"?from=2&to=2", 2, 2}} {
		status, body := ts.httpDo(t, "GET", "/api/docs/notes/a%2Fb/ops"+tc.query, "", "", nil)
		lines := jsonLines(body)
		if status != http.StatusOK || len(lines) != tc.to-tc.from {
			t.Fatalf("GET ops%s = %d, %d lines %q; want 200, %d lines", tc.query, status, len(lines), body, tc.to-tc.from)
		}
		for i, l := range lines {
			if !jsonEqual(t, l, wantLines[tc.from+i]) {
				t.Errorf("GET ops%s line %d = %s, want %s", tc.query, i, l, wantLines[tc.from+i])
			}
		}
	}
	status, body := ts.httpDo(t, "GET", "/api/docs/notes/a%2Fb/ops?from=-1", "", "", nil)
	checkHTTPError(t, status, body, 400, CodeBadlyFormed)

	// Delete, then the snapshot has type null.
	okPost(`{"v":5,"src":"c1","seq":3,"del":true}`, `{"v":5,"src":"http:c1","seq":3,"del":true}`)
	status, body = ts.httpDo(t, "GET", "/api/docs/notes/a%2Fb", "", "", nil)
	if status != http.StatusOK || !jsonEqual(t, body, `{"v":6,"type":null}`) {
		t.Errorf("GET deleted doc = %d %s", status, body)
	}
}

func TestHTTPList(t *testing.T) {
	ts := startServer(t, Options{Logger: quiet}, collab.Options{Now: fakeClock(1_000_000)})
	create := func(coll, id string) {
		t.Helper()
		status, body := ts.httpDo(t, "POST", "/api/docs/"+coll+"/"+id+"/ops", "application/json", `{"create":{"type":"text-unicode","data":"x"}}`, nil)
		if status != http.StatusOK {
			t.Fatalf("create %s/%s = %d %s", coll, id, status, body)
		}
	}
	create("notes", "first")  // ts 1001000
	create("notes", "second") // 1002000
	create("other", "third")  // 1003000
	status, body := ts.httpDo(t, "POST", "/api/docs/notes/first/ops", "application/json", `{"v":1,"op":["y"]}`, nil)
	if status != 200 {
		t.Fatalf("edit = %d %s", status, body)
	} // 1004000

	u := ot.URI
	for _, tc := range []struct{ query, want string }{
		{"", fmt.Sprintf(`{"docs":[
			{"collection":"notes","id":"first","v":2,"type":%[1]q,"created":1001000,"modified":1004000},
			{"collection":"other","id":"third","v":1,"type":%[1]q,"created":1003000,"modified":1003000},
			{"collection":"notes","id":"second","v":1,"type":%[1]q,"created":1002000,"modified":1002000}]}`, u)},
		{"?collection=notes&limit=1", fmt.Sprintf(`{"docs":[
			{"collection":"notes","id":"first","v":2,"type":%q,"created":1001000,"modified":1004000}]}`, u)},
		{"?collection=none", `{"docs":[]}`},
	} {
		status, body := ts.httpDo(t, "GET", "/api/docs"+tc.query, "", "", nil)
		if status != http.StatusOK || !jsonEqual(t, body, tc.want) {
			t.Errorf("GET /api/docs%s = %d %s, want %s", tc.query, status, body, tc.want)
		}
	}
	status, body = ts.httpDo(t, "GET", "/api/docs?limit=x", "", "", nil)
	checkHTTPError(t, status, body, 400, CodeBadlyFormed)
}

// TestHTTPOpsExportPages exports a log longer than one read page.
func TestHTTPOpsExportPages(t *testing.T) {
	ts := startServer(t, Options{Logger: quiet}, collab.Options{})
	key := collab.Key{Collection: "big", ID: "log"}
	ctx := context.Background()
	if _, err := ts.hub.SubmitWait(ctx, key, collab.Submission{Kind: collab.OpCreate, Type: ot.URI}); err != nil {
		t.Fatal(err)
	}
	const n = 2*opsPage + 10
	for i := 1; i < n; i++ {
		s := collab.Submission{Src: "w", Seq: uint64(i), Version: uint64(i), HasVersion: true, Kind: collab.OpEdit, Op: ot.Op{{Kind: ot.KindInsert, N: 1, Text: "a"}}}
		if _, err := ts.hub.SubmitWait(ctx, key, s); err != nil {
			t.Fatal(err)
		}
	}
	status, body := ts.httpDo(t, "GET", "/api/docs/big/log/ops?from=5", "", "", nil)
	lines := jsonLines(body)
	if status != 200 || len(lines) != n-5 {
		t.Fatalf("GET ops = %d, %d lines; want 200, %d", status, len(lines), n-5)
	}
	for i, l := range lines {
		v := 5 + i
		if !strings.HasPrefix(l, fmt.Sprintf(`{"v":%d,"src":"w","seq":%d,"op":["a"],"m":{"ts":`, v, v)) {
			t.Fatalf("line %d = %s, want the op at v%d", i, l, v)
		}
	}
}

// TestHTTPSrcNamespace checks that an HTTP writer cannot pose as a
// WebSocket client: reusing a live client's src and next seq over POST
// must not make that client's real op look like a duplicate, and no
// client can reclaim an HTTP writer's src in its handshake.
func TestHTTPSrcNamespace(t *testing.T) {
	ts := startServer(t, Options{Logger: quiet}, collab.Options{})
	ws := ts.connect(t)
	ws.create("ns", "doc", "abc", 1)

	body := fmt.Sprintf(`{"v":1,"src":%q,"seq":2,"op":["X"]}`, ws.src)
	status, got := ts.httpDo(t, "POST", "/api/docs/ns/doc/ops", "application/json", body, nil)
	if want := fmt.Sprintf(`{"v":1,"src":"http:%s","seq":2,"op":["X"]}`, ws.src); status != http.StatusOK || !jsonEqual(t, got, want) {
		t.Fatalf("POST %s = %d %s, want 200 %s", body, status, got, want)
	}
	// The client's own seq 2 is a new op, transformed over the POST.
	ws.sendf(`{"a":"op","c":"ns","d":"doc","v":1,"seq":2,"op":[3,"!"]}`)
	ws.expectf(`{"a":"op","c":"ns","d":"doc","v":1,"src":"http:%s","seq":2,"op":["X"]}`, ws.src)
	ws.expectf(`{"a":"op","c":"ns","d":"doc","v":2,"src":%q,"seq":2}`, ws.src)
	status, got = ts.httpDo(t, "GET", "/api/docs/ns/doc", "", "", nil)
	if want := `{"v":3,"type":"` + ot.URI + `","data":"Xabc!"}`; status != http.StatusOK || !jsonEqual(t, got, want) {
		t.Fatalf("GET snapshot = %d %s, want 200 %s", status, got, want)
	}

	// A handshake cannot claim the HTTP writer's src: it gets a fresh id.
	other := ts.dial(t, nil)
	other.handshake("http:" + ws.src)
	if other.src == "http:"+ws.src {
		t.Fatalf("hs with id %q reclaimed it; want a fresh src", "http:"+ws.src)
	}
}

// TestHTTPUnservedAPIPaths: what no route serves under /api/ is answered
// with a coded JSON error, as the rest of the API is (the mux's answers
// are plain text): 405 with the Allow header for a path served for other
// methods, 404 for any other.
func TestHTTPUnservedAPIPaths(t *testing.T) {
	ts := startServer(t, Options{Logger: quiet}, collab.Options{})
	for _, tc := range []struct {
		method, path string
		status       int
		code, allow  string
	}{
		{"DELETE", "/api/docs/notes/a", 405, CodeMethodNotAllowed, "GET, HEAD"},
		{"PUT", "/api/docs/notes/a%2Fb/ops", 405, CodeMethodNotAllowed, "GET, HEAD, POST"},
		{"PUT", "/api/%64ocs/notes/a", 405, CodeMethodNotAllowed, "GET, HEAD"},
		{"POST", "/api/docs", 405, CodeMethodNotAllowed, "GET, HEAD"},
		{"POST", "/api/auth", 405, CodeMethodNotAllowed, "GET, HEAD"},
		{"GET", "/api/docs/notes", 404, CodeNotFound, ""},
		{"GET", "/api/nothing", 404, CodeNotFound, ""},
		{"GET", "/api/docs/notes/a/ops/more", 404, CodeNotFound, ""},
	} {
		req, err := http.NewRequest(tc.method, ts.http.URL+tc.path, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.status || !strings.Contains(string(body), `"code":"`+tc.code+`"`) || resp.Header.Get("Allow") != tc.allow {
			t.Errorf("%s %s = %d %s (Allow %q), want %d %s (Allow %q)", tc.method, tc.path, resp.StatusCode, body, resp.Header.Get("Allow"), tc.status, tc.code, tc.allow)
		}
	}
}
