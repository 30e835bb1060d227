package web

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/coedit/coedit/collab"
	"github.com/coedit/coedit/ot"
)

// notProvokable lists codes the server can send that this test does not
// cause (no test can with real components, or another test does);
// TestErrorMapping covers their mapping.
var notProvokable = map[string]string{
	CodeTransformOpsNotFound: "the store keeps the whole op log, so the ops since a submit's version are always found",
	CodeUnavailable:          "needs a cluster whose Redis does not answer: TestUnavailableCommitPointClosesWith1012 provokes it (WebSocket close 1012, HTTP 503)",
	CodeHistoryReplaced:      "needs a cluster whose Redis lost records: TestReplacedHistoryClosesWith4002AndRefusesTheOldCopy provokes it",
}

// TestErrorCodesOverWebSocket provokes every error code the WebSocket
// sends, each on a fresh connection, and checks the reply is the request
// echoed with that code, and that none of it touched the documents or a
// bystander connection.
func TestErrorCodesOverWebSocket(t *testing.T) {
	ts := startServer(t, Options{
		Logger: quiet, MaxOpSize: 1024, MaxNameLen: 8192,
		OpsPerSecond: 0.001, OpsBurst: 5,
	}, collab.Options{MaxDocLen: 64, MaxSubscriptions: 2, MaxPresenceBytes: 1500})
	ctx := context.Background()
	submit := func(id string, s collab.Submission) {
		t.Helper()
		if _, err := ts.hub.SubmitWait(ctx, collab.Key{Collection: "docs", ID: id}, s); err != nil {
			t.Fatalf("setup submit to %s: %v", id, err)
		}
	}
	submit("hello", collab.Submission{Kind: collab.OpCreate, Type: ot.URI, Data: "hello"})
	submit("deleted", collab.Submission{Kind: collab.OpCreate, Type: ot.URI, Data: "x"})
	submit("deleted", collab.Submission{Kind: collab.OpDelete, Version: 1, HasVersion: true})
	submit("hello", collab.Submission{Src: "stalesrc", Seq: 5, Kind: collab.OpEdit, Version: 1, HasVersion: true, Op: ot.Op{{Kind: ot.KindInsert, N: 1, Text: "!"}}})

	bystander := ts.connect(t)
	bystander.sendRaw(`{"a":"s","c":"docs","d":"hello","v":null}`)
	bystander.expectf(`{"a":"s","c":"docs","d":"hello","data":{"v":2,"data":"!hello","type":%q}}`, textURI)

	long := strings.Repeat("k", 5000)
	big := strings.Repeat("y", 2000)
	cases := []struct {
		name   string
		hsID   string
		setup  func(c *tclient) // sends what comes before req
		skip   int              // replies to setup
		req    string
		binary bool
		noEcho bool // the frame is not a request: the reply is {"error"} alone
		code   string
	}{
		{name: "invalid JSON", req: `{"a":"f",`, noEcho: true, code: CodeBadlyFormed},
		{name: "not an object", req: `[1,2]`, noEcho: true, code: CodeBadlyFormed},
		{name: "null", req: `null`, noEcho: true, code: CodeBadlyFormed},
		{name: "binary frame", req: `{"a":"pp"}`, binary: true, noEcho: true, code: CodeBadlyFormed},
		{name: "invalid UTF-8", req: "{\"a\":\"f\",\"c\":\"docs\",\"d\":\"\xff\"}", noEcho: true, code: CodeBadlyFormed},
		{name: "no action", req: `{"c":"docs","d":"hello"}`, noEcho: true, code: CodeBadlyFormed},
		{name: "id with a control character", req: `{"a":"s","c":"docs","d":"a\u0001b","v":null}`, code: CodeBadlyFormed},
		{name: "collection with a newline", req: `{"a":"f","c":"do\ncs","d":"hello","v":null}`, code: CodeBadlyFormed},
		{name: "create under a control character", req: `{"a":"op","c":"docs","d":"\u007f","v":0,"seq":1,"create":{"type":"text-unicode","data":""}}`, code: CodeBadlyFormed},
		{name: "bulk id with a control character", req: `{"a":"bs","c":"docs","b":{"hello":1,"x\ty":1}}`, code: CodeBadlyFormed},
		{name: "presence on a control character", req: `{"a":"p","ch":"docs.\u0000","id":"x","p":null,"pv":1,"c":"docs","d":"\u0000","v":0}`, code: CodeBadlyFormed},
		{name: "action not a string", req: `{"a":7}`, noEcho: true, code: CodeBadlyFormed},
		{name: "c not a string", req: `{"a":"s","c":5,"d":"hello"}`, code: CodeBadlyFormed},
		{name: "d empty", req: `{"a":"f","c":"docs","d":""}`, code: CodeBadlyFormed},
		{name: "d missing", req: `{"a":"f","c":"docs"}`, code: CodeBadlyFormed},
		{name: "d lone surrogate", req: `{"a":"f","c":"docs","d":"a\ud800b"}`, code: CodeBadlyFormed},
		{name: "v negative", req: `{"a":"op","c":"docs","d":"hello","v":-1,"seq":1,"op":["x"]}`, code: CodeBadlyFormed},
		{name: "v fraction", req: `{"a":"s","c":"docs","d":"hello","v":1.5}`, code: CodeBadlyFormed},
		{name: "v past 2^53", req: `{"a":"s","c":"docs","d":"hello","v":9007199254740993}`, code: CodeBadlyFormed},
		{name: "seq a string", req: `{"a":"op","c":"docs","d":"hello","v":1,"seq":"1","op":["x"]}`, code: CodeBadlyFormed},
		{name: "seq missing", req: `{"a":"op","c":"docs","d":"hello","v":1,"op":["x"]}`, code: CodeBadlyFormed},
		{name: "seq zero", req: `{"a":"op","c":"docs","d":"hello","v":1,"seq":0,"op":["x"]}`, code: CodeBadlyFormed},
		{name: "ps without ch", req: `{"a":"ps","seq":1}`, code: CodeBadlyFormed},
		{name: "nf without id", req: `{"a":"nf","c":"docs","d":"hello","v":1}`, code: CodeBadlyFormed},
		{name: "nt ts negative", req: `{"a":"nt","id":1,"c":"docs","d":"hello","ts":-5}`, code: CodeBadlyFormed},
		{name: "bulk b a string", req: `{"a":"bf","c":"docs","b":"hello"}`, code: CodeBadlyFormed},
		{name: "bulk version null", req: `{"a":"bs","c":"docs","b":{"hello":null}}`, code: CodeBadlyFormed},
		{name: "bulk repeated id", req: `{"a":"bf","c":"docs","b":["hello","hello"]}`, code: CodeBadlyFormed},
		{name: "bu with versions", req: `{"a":"bu","c":"docs","b":{"hello":1}}`, code: CodeBadlyFormed},
		{name: "hs protocol an object", req: `{"a":"hs","protocol":{}}`, code: CodeBadlyFormed},
		{name: "presence c without d", req: `{"a":"p","ch":"docs.hello","id":"x","p":null,"pv":1,"c":"docs","v":1}`, code: CodeBadlyFormed},
		{name: "presence doc on another channel", req: `{"a":"p","ch":"docs.other","id":"x","p":null,"pv":1,"c":"docs","d":"hello","v":1}`, code: CodeBadlyFormed},
		{name: "presence doc without v", req: `{"a":"p","ch":"docs.hello","id":"x","p":null,"pv":1,"c":"docs","d":"hello"}`, code: CodeBadlyFormed},
		{name: "query without id", req: `{"a":"qf","c":"docs","q":{}}`, code: CodeBadlyFormed},
		{name: "op zero skip", req: `{"a":"op","c":"docs","d":"hello","v":2,"seq":1,"op":[0,"x"]}`, code: CodeOpBadlyFormed},
		{name: "op trailing skip", req: `{"a":"op","c":"docs","d":"hello","v":2,"seq":1,"op":[3]}`, code: CodeOpBadlyFormed},
		{name: "op lone surrogate", req: `{"a":"op","c":"docs","d":"hello","v":2,"seq":1,"op":["\udc00"]}`, code: CodeOpBadlyFormed},
		{name: "op not an array", req: `{"a":"op","c":"docs","d":"hello","v":2,"seq":1,"op":"x"}`, code: CodeOpBadlyFormed},
		{name: "op and del", req: `{"a":"op","c":"docs","d":"hello","v":2,"seq":1,"op":["x"],"del":true}`, code: CodeOpBadlyFormed},
		{name: "no op, create or del", req: `{"a":"op","c":"docs","d":"hello","v":2,"seq":1}`, code: CodeOpBadlyFormed},
		{name: "create not an object", req: `{"a":"op","c":"docs","d":"new1","v":null,"seq":1,"create":"x"}`, code: CodeOpBadlyFormed},
		{name: "create data a number", req: `{"a":"op","c":"docs","d":"new1","v":null,"seq":1,"create":{"type":"text-unicode","data":5}}`, code: CodeOpBadlyFormed},
		{name: "del not true", req: `{"a":"op","c":"docs","d":"hello","v":2,"seq":1,"del":1}`, code: CodeOpBadlyFormed},
		{name: "unknown type", req: `{"a":"op","c":"docs","d":"new1","v":null,"seq":1,"create":{"type":"http://sharejs.org/types/JSONv0","data":{}}}`, code: CodeTypeNotRecognized},
		{name: "create existing", req: `{"a":"op","c":"docs","d":"hello","v":null,"seq":1,"create":{"type":"text-unicode","data":"again"}}`, code: CodeDocAlreadyCreated},
		{name: "edit never created", req: `{"a":"op","c":"docs","d":"none","v":0,"seq":1,"op":["x"]}`, code: CodeDocDoesNotExist},
		{name: "edit before a delete", req: `{"a":"op","c":"docs","d":"deleted","v":1,"seq":1,"op":["x"]}`, code: CodeDocWasDeleted},
		{name: "edit of a deleted document", req: `{"a":"op","c":"docs","d":"deleted","v":2,"seq":1,"op":["x"]}`, code: CodeDocWasDeleted},
		{name: "delete never created", req: `{"a":"op","c":"docs","d":"none","v":0,"seq":1,"del":true}`, code: CodeDocDoesNotExist},
		{name: "delete of a deleted document", req: `{"a":"op","c":"docs","d":"deleted","v":2,"seq":1,"del":true}`, code: CodeDocWasDeleted},
		{name: "version ahead", req: `{"a":"op","c":"docs","d":"hello","v":99,"seq":1,"op":["x"]}`, code: CodeVersionNewer},
		{name: "op past the end", req: `{"a":"op","c":"docs","d":"hello","v":2,"seq":1,"op":[10,"x"]}`, code: CodeOpNotApplied},
		{name: "presence on json0", req: `{"a":"p","ch":"docs.hello","id":"x","p":{"index":0,"length":0},"pv":1,"c":"docs","d":"hello","v":2,"t":"http://sharejs.org/types/JSONv0"}`, code: CodePresenceUnsupported},
		{name: "store refuses the key", req: `{"a":"f","c":"docs","d":"` + long + `"}`, code: CodeUnknownError},
		{name: "unknown action", req: `{"a":"zz","c":"docs"}`, code: CodeUnknownAction},
		{name: "query fetch", req: `{"a":"qf","id":1,"c":"docs","q":{}}`, code: CodeQueryNotSupported},
		{name: "src not the connection's", req: `{"a":"op","c":"docs","d":"hello","v":2,"src":"someoneelse","seq":1,"op":["x"]}`, code: CodeSrcMismatch},
		{name: "stale seq", hsID: "stalesrc", req: `{"a":"op","c":"docs","d":"hello","v":2,"src":"stalesrc","seq":3,"op":["x"]}`, code: CodeStaleSeq},
		{name: "seq reused by a new op", hsID: "stalesrc", req: `{"a":"op","c":"docs","d":"hello","v":2,"src":"stalesrc","seq":5,"op":["x"]}`, code: CodeSeqReused},
		{name: "op too large", req: `{"a":"op","c":"docs","d":"hello","v":2,"seq":1,"op":["` + big + `"]}`, code: CodeOpTooLarge},
		{name: "presence too large", req: `{"a":"p","ch":"room","id":"x","p":"` + big + `","pv":1}`, code: CodeOpTooLarge},
		{name: "presence over the connection's bound", setup: func(c *tclient) {
			c.sendf(`{"a":"p","ch":"room","id":"a","p":"%s","pv":1}`, strings.Repeat("p", 900))
		}, skip: 1, req: `{"a":"p","ch":"room","id":"b","p":"` + strings.Repeat("q", 900) + `","pv":1}`, code: CodePresenceTooLarge},
		{name: "doc too large", req: `{"a":"op","c":"docs","d":"hello","v":2,"seq":1,"op":["` + strings.Repeat("z", 70) + `"]}`, code: CodeDocTooLarge},
		{name: "too many subscriptions", setup: func(c *tclient) {
			c.sendRaw(`{"a":"s","c":"docs","d":"s1"}`)
			c.sendRaw(`{"a":"s","c":"docs","d":"s2"}`)
		}, skip: 2, req: `{"a":"s","c":"docs","d":"s3"}`, code: CodeTooManySubscriptions},
		{name: "too many presence channels", setup: func(c *tclient) {
			c.sendRaw(`{"a":"ps","ch":"c1","seq":1}`)
			c.sendRaw(`{"a":"ps","ch":"c2","seq":2}`)
		}, skip: 2, req: `{"a":"ps","ch":"c3","seq":3}`, code: CodeTooManySubscriptions},
		{name: "bulk over the limit", req: `{"a":"bf","c":"docs","b":["a","b","c"]}`, code: CodeTooManySubscriptions},
	}
	provoked := map[string]bool{}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := ts.dial(t, nil)
			c.t = t
			if tc.hsID != "" {
				c.handshake(tc.hsID)
				if c.src != tc.hsID {
					t.Fatalf("hs reclaim = %q, want %q", c.src, tc.hsID)
				}
			}
			if tc.setup != nil {
				tc.setup(c)
				for range tc.skip {
					if m := c.recv(); m["error"] != nil {
						t.Fatalf("setup reply %s is an error", mustJSON(m))
					}
				}
			}
			typ := websocket.TextMessage
			if tc.binary {
				typ = websocket.BinaryMessage
			}
			if err := c.ws.WriteMessage(typ, []byte(tc.req)); err != nil {
				t.Fatal(err)
			}
			echo := tc.req
			if tc.noEcho {
				echo = ""
			}
			msg := c.expectError(echo, tc.code)
			t.Logf("%s: %s", tc.code, msg)
			// The connection still works after any bad input.
			c.sendRaw(`{"a":"pp"}`)
			c.expect(`{"a":"pp"}`)
		})
		provoked[tc.code] = true
	}

	// The documents are as the setup left them, the bystander saw none
	// of it, and the server is fine.
	bystander.sendRaw(`{"a":"f","c":"docs","d":"hello","v":null}`)
	bystander.expectf(`{"a":"f","c":"docs","d":"hello","data":{"v":2,"data":"!hello","type":%q}}`, textURI)
	bystander.sendRaw(`{"a":"f","c":"docs","d":"deleted"}`)
	bystander.expect(`{"a":"f","c":"docs","d":"deleted","data":{"v":2,"type":null}}`)
	for _, id := range []string{"none", "new1"} {
		bystander.sendf(`{"a":"f","c":"docs","d":%q}`, id)
		bystander.expectf(`{"a":"f","c":"docs","d":%q,"data":{"v":0,"type":null}}`, id)
	}

	// HTTP-only codes.
	status, body := ts.httpDo(t, "POST", "/api/docs/docs/hello/ops", "application/json", `{"v":2,"op":["x"]}`, map[string]string{"Origin": "https://evil.example"})
	checkHTTPError(t, status, body, http.StatusForbidden, CodeOriginNotAllowed)
	provoked[CodeOriginNotAllowed] = true
	// The address's HTTP submit bucket holds OpsBurst (5) and refills at
	// 0.001 a second: the sixth submit would wait past httpPaceMost.
	// (A WebSocket's submits over the rate wait instead: TestOpsOverTheRateWait.)
	for i := range 6 {
		status, body = ts.httpDo(t, "POST", "/api/docs/docs/hello/ops", "application/json", `{"op":["x"]}`, nil)
		if i < 5 && status != http.StatusOK {
			t.Fatalf("HTTP submit %d within the burst = %d %s", i+1, status, body)
		}
	}
	checkHTTPError(t, status, body, http.StatusTooManyRequests, CodeRateLimited)
	provoked[CodeRateLimited] = true

	closed := startServer(t, Options{Logger: quiet}, collab.Options{})
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := closed.hub.Close(cctx); err != nil {
		t.Fatal(err)
	}
	status, body = closed.httpDo(t, "POST", "/api/docs/docs/x/ops", "application/json", `{"v":null,"create":{"type":"text-unicode","data":""}}`, nil)
	checkHTTPError(t, status, body, http.StatusServiceUnavailable, CodeServerClosing)
	provoked[CodeServerClosing] = true

	busy, _ := busyServer(t)
	status, body = busy.httpDo(t, "POST", "/api/docs/docs/busy/ops", "application/json", `{"v":1,"op":["x"]}`, nil)
	checkHTTPError(t, status, body, http.StatusServiceUnavailable, CodeServerBusy)
	provoked[CodeServerBusy] = true
	// The codes of auth, the Host check and the connection limits, on a
	// server that has them on.
	guarded := startServer(t, Options{Logger: quiet, AuthSecret: testSecret, MaxConns: 1, MaxConnsPerAddr: 1}, collab.Options{})
	for _, tc := range []struct {
		hdr    map[string]string
		status int
		code   string
	}{
		{nil, http.StatusUnauthorized, CodeTokenRequired},
		{map[string]string{"Authorization": "Bearer x.y.z"}, http.StatusUnauthorized, CodeTokenInvalid},
		{map[string]string{"Authorization": "Bearer " + token(t, testSecret, "a", -time.Minute)}, http.StatusUnauthorized, CodeTokenExpired},
		{map[string]string{"Authorization": "Bearer " + token(t, testSecret, "a", time.Hour, rw("other/*"))}, http.StatusForbidden, CodeForbidden},
		{map[string]string{"Host": "rebound.example"}, http.StatusMisdirectedRequest, CodeHostNotAllowed},
	} {
		status, body = guarded.httpDo(t, "GET", "/api/docs/docs/hello", "", "", tc.hdr)
		checkHTTPError(t, status, body, tc.status, tc.code)
		provoked[tc.code] = true
	}
	guarded.dialToken(t, token(t, testSecret, "a", time.Hour, rw("*/*")))
	guarded.dialRefused(t, guarded.wsURL, bearer(token(t, testSecret, "a", time.Hour)), http.StatusServiceUnavailable, CodeServerFull)
	provoked[CodeServerFull] = true
	perAddr := startServer(t, Options{Logger: quiet, MaxConnsPerAddr: 1}, collab.Options{})
	perAddr.connect(t)
	perAddr.dialRefused(t, perAddr.wsURL, nil, http.StatusTooManyRequests, CodeTooManyConnections)
	provoked[CodeTooManyConnections] = true
	status, body = perAddr.httpDo(t, "DELETE", "/api/docs/docs/hello", "", "", nil)
	checkHTTPError(t, status, body, http.StatusMethodNotAllowed, CodeMethodNotAllowed)
	provoked[CodeMethodNotAllowed] = true
	status, body = perAddr.httpDo(t, "GET", "/api/nothing", "", "", nil)
	checkHTTPError(t, status, body, http.StatusNotFound, CodeNotFound)
	provoked[CodeNotFound] = true

	for code := range httpStatus {
		if !provoked[code] && notProvokable[code] == "" {
			t.Errorf("error code %s is never provoked by a test", code)
		}
	}
}

// TestClosingHubClosesWebSockets: a request that finds the hub closed
// closes the connection with 1001 rather than failing (so the client
// resends to the next server instead of rolling its op back).
func TestClosingHubClosesWebSockets(t *testing.T) {
	ts := startServer(t, Options{Logger: quiet}, collab.Options{})
	c := ts.connect(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := ts.hub.Close(ctx); err != nil {
		t.Fatal(err)
	}
	c.sendRaw(`{"a":"op","c":"docs","d":"x","v":null,"seq":1,"create":{"type":"text-unicode","data":""}}`)
	if err := c.closeErr(5 * time.Second); !websocket.IsCloseError(err, CloseGoingAway) {
		t.Fatalf("submit to a closed hub: connection ended with %v, want close %d", err, CloseGoingAway)
	}
}

func checkHTTPError(t *testing.T, status int, body string, wantStatus int, wantCode string) {
	t.Helper()
	if status != wantStatus {
		t.Fatalf("status = %d (%s), want %d", status, body, wantStatus)
	}
	if !strings.Contains(body, `"code":"`+wantCode+`"`) || !strings.HasPrefix(body, `{"error":{`) {
		t.Fatalf("body = %s, want {\"error\":{\"code\":%q,...}}", body, wantCode)
	}
}

// TestErrorMapping checks each engine error, wrapped as the engine wraps
// them, maps to its ShareDB code.
func TestErrorMapping(t *testing.T) {
	for _, tc := range []struct {
		err      error
		code     string
		internal bool
	}{
		{collab.ErrDocExists, "ERR_DOC_ALREADY_CREATED", false},
		{collab.ErrDocMissing, "ERR_DOC_DOES_NOT_EXIST", false},
		{collab.ErrDocDeleted, "ERR_DOC_WAS_DELETED", false},
		{collab.ErrVersionAhead, "ERR_OP_VERSION_NEWER_THAN_CURRENT_SNAPSHOT", false},
		{collab.ErrPresenceVersion, "ERR_OP_VERSION_NEWER_THAN_CURRENT_SNAPSHOT", false},
		{collab.ErrOpsMissing, "ERR_SUBMIT_TRANSFORM_OPS_NOT_FOUND", false},
		{collab.ErrUnknownType, "ERR_DOC_TYPE_NOT_RECOGNIZED", false},
		{collab.ErrDocTooLarge, "ERR_DOC_TOO_LARGE", false},
		{collab.ErrPresenceTooLarge, "ERR_PRESENCE_TOO_LARGE", false},
		{collab.ErrSrcMismatch, "ERR_SRC_MISMATCH", false},
		{collab.ErrStaleSeq, "ERR_STALE_SEQ", false},
		{collab.ErrSeqReused, "ERR_SEQ_REUSED", false},
		{collab.ErrInvalidOp, "ERR_OT_OP_NOT_APPLIED", false},
		{fmt.Errorf("%w: %w", collab.ErrInvalidOp, ot.ErrOutOfBounds), "ERR_OT_OP_NOT_APPLIED", false},
		{collab.ErrInvalidKey, "ERR_MESSAGE_BADLY_FORMED", false},
		{collab.ErrInvalidPresence, "ERR_MESSAGE_BADLY_FORMED", false},
		{collab.ErrTooManySubscriptions, "ERR_TOO_MANY_SUBSCRIPTIONS", false},
		{collab.ErrClosed, "ERR_SERVER_CLOSING", false},
		{collab.ErrBusy, "ERR_SERVER_BUSY", false},
		{collab.ErrUnavailable, "ERR_UNAVAILABLE", false},
		{collab.ErrContended, "ERR_UNAVAILABLE", false},
		{collab.ErrHistoryReplaced, "ERR_HISTORY_REPLACED", false},
		{context.DeadlineExceeded, "ERR_UNKNOWN_ERROR", true},
		{errors.New("disk on fire"), "ERR_UNKNOWN_ERROR", true},
	} {
		pe, internal := toProtoError(fmt.Errorf("collab: doc/x: %w", tc.err))
		if pe.Code != tc.code || internal != tc.internal {
			t.Errorf("toProtoError(%v) = %s, internal %v; want %s, internal %v", tc.err, pe.Code, internal, tc.code, tc.internal)
		}
		if _, ok := httpStatus[pe.Code]; !ok {
			t.Errorf("code %s has no HTTP status", pe.Code)
		}
	}
}

// TestErrorTableDocumented checks the doc comment table in errors.go (the
// README copies it) lists every code the server sends.
func TestErrorTableDocumented(t *testing.T) {
	src, err := os.ReadFile("errors.go")
	if err != nil {
		t.Fatal(err)
	}
	for code, status := range httpStatus {
		row := fmt.Sprintf("//\t%-44s%d", code, status)
		if !strings.Contains(string(src), row) {
			t.Errorf("errors.go's table has no row %q", row)
		}
	}
}
