package web

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/coedit/coedit/collab"
	"github.com/coedit/coedit/ot"
)

// The protected document and its text: no reply to a refused request may
// hold it.
const (
	secretText = "TOPSECRET-launch-codes-4711"
	secretEdit = "TOPSECRET-EDIT-0815"
)

// seedAuthDocs creates secret/plan (the protected text) and notes/a.
func seedAuthDocs(t *testing.T, ts *testServer) {
	t.Helper()
	ctx := context.Background()
	for _, d := range []struct{ coll, id, text string }{{"secret", "plan", secretText}, {"notes", "a", "hello"}} {
		if _, err := ts.hub.SubmitWait(ctx, collab.Key{Collection: d.coll, ID: d.id}, collab.Submission{Kind: collab.OpCreate, Type: ot.URI, Data: d.text}); err != nil {
			t.Fatal(err)
		}
	}
}

// TestAuthRefusesUpgradeWithoutValidToken: with auth on, a WebSocket
// upgrade without a token, with a bad signature, an unsigned token or an
// expired one is refused with 401 and a coded error before the upgrade.
func TestAuthRefusesUpgradeWithoutValidToken(t *testing.T) {
	checkNoLeaks(t)
	ts := startAuthServer(t, Options{})
	seedAuthDocs(t, ts)
	other := []byte("another secret, also 32 bytes long!")
	for _, tc := range []struct {
		name string
		hdr  http.Header
		url  string
		code string
	}{
		{"no token", nil, ts.wsURL, CodeTokenRequired},
		{"bad signature", bearer(token(t, other, "mallory", time.Hour, rw("*/*"))), ts.wsURL, CodeTokenInvalid},
		{"garbage", bearer("a.b.c"), ts.wsURL, CodeTokenInvalid},
		{"expired", bearer(token(t, testSecret, "alice", -time.Minute, rw("*/*"))), ts.wsURL, CodeTokenExpired},
		{"expired in query", nil, ts.wsURL + "?token=" + token(t, testSecret, "alice", -time.Minute, rw("*/*")), CodeTokenExpired},
		{"bad cookie", http.Header{"Cookie": {TokenCookie + "=" + token(t, other, "mallory", time.Hour, rw("*/*"))}}, ts.wsURL, CodeTokenInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := ts.dialRefused(t, tc.url, tc.hdr, http.StatusUnauthorized, tc.code)
			mustNotContain(t, "401 body", []byte(body), secretText)
		})
	}
	if n := ts.srv.Connections(); n != 0 {
		t.Fatalf("Connections() = %d after refused upgrades, want 0", n)
	}
	// The three ways of passing a valid token all work.
	tok := token(t, testSecret, "alice", time.Hour, rw("notes/*"))
	for _, hdr := range []http.Header{bearer(tok), {"Cookie": {TokenCookie + "=" + tok}}} {
		c := ts.dial(t, hdr)
		c.handshake("")
		c.sendRaw(`{"a":"f","c":"notes","d":"a"}`)
		c.expectf(`{"a":"f","c":"notes","d":"a","data":{"v":1,"data":"hello","type":%q}}`, textURI)
	}
	q := ts.dialURL(t, ts.wsURL+"?token="+tok)
	q.sendRaw(`{"a":"f","c":"notes","d":"a"}`)
	q.expectf(`{"a":"f","c":"notes","d":"a","data":{"v":1,"data":"hello","type":%q}}`, textURI)
}

// TestAuthMatrixWebSocket: a token for notes/* is refused every read and
// write of secret/plan, presence on its channels sent or received, and
// history, each with ERR_FORBIDDEN and no byte of the document's text in
// anything it is sent, while a second connection edits that document; a
// read-only token cannot submit; the allowed requests still work.
func TestAuthMatrixWebSocket(t *testing.T) {
	checkNoLeaks(t)
	ts := startAuthServer(t, Options{})
	seedAuthDocs(t, ts)
	boss := ts.dialToken(t, token(t, testSecret, "boss", time.Hour, rw("*/*")))
	boss.sendRaw(`{"a":"s","c":"secret","d":"plan"}`)
	boss.expectf(`{"a":"s","c":"secret","d":"plan","data":{"v":1,"data":%q,"type":%q}}`, secretText, textURI)
	for _, ch := range []string{"secret.plan", "secret.plan#users"} {
		boss.sendf(`{"a":"ps","ch":%q,"seq":1}`, ch)
		boss.expectf(`{"a":"ps","ch":%q,"seq":1}`, ch)
	}

	alice := ts.dialToken(t, token(t, testSecret, "alice", time.Hour, rw("notes/*")))
	refused := []struct{ name, req string }{
		{"fetch", `{"a":"f","c":"secret","d":"plan"}`},
		{"fetch from a version", `{"a":"f","c":"secret","d":"plan","v":0}`},
		{"subscribe", `{"a":"s","c":"secret","d":"plan"}`},
		{"subscribe from a version", `{"a":"s","c":"secret","d":"plan","v":0}`},
		{"bulk subscribe by version", `{"a":"bs","c":"secret","b":{"plan":0}}`},
		{"bulk fetch by version", `{"a":"bf","c":"secret","b":{"plan":0}}`},
		{"snapshot at a version", `{"a":"nf","id":1,"c":"secret","d":"plan","v":1}`},
		{"snapshot at a time", `{"a":"nt","id":2,"c":"secret","d":"plan","ts":99999999999}`},
		{"snapshot at the head", `{"a":"nf","id":3,"c":"secret","d":"plan"}`},
		{"submit", `{"a":"op","c":"secret","d":"plan","v":1,"seq":1,"op":["mine"]}`},
		{"delete", `{"a":"op","c":"secret","d":"plan","v":1,"seq":2,"del":true}`},
		{"create", `{"a":"op","c":"secret","d":"new","v":null,"seq":3,"create":{"type":"text-unicode","data":""}}`},
		{"presence subscribe", `{"a":"ps","ch":"secret.plan","seq":1}`},
		{"presence subscribe, users channel", `{"a":"ps","ch":"secret.plan#users","seq":2}`},
		{"presence subscribe, untyped channel", `{"a":"ps","ch":"lobby","seq":3}`},
		{"document presence", `{"a":"p","ch":"secret.plan","id":"x","pv":1,"p":{"index":0,"length":0},"c":"secret","d":"plan","v":1,"t":"text-unicode"}`},
		{"document presence on an allowed channel", `{"a":"p","ch":"notes.a","id":"x","pv":2,"p":{"index":0,"length":0},"c":"secret","d":"plan","v":1,"t":"text-unicode"}`},
		{"untyped presence", `{"a":"p","ch":"secret.plan#users","id":"x","pv":3,"p":{"name":"alice"}}`},
		{"presence request", `{"a":"pr","ch":"secret.plan"}`},
	}
	for _, tc := range refused {
		alice.sendRaw(tc.req)
		alice.expectError(tc.req, CodeForbidden)
	}
	// Bulk requests by id refuse each entry they may not read, and
	// serve the others.
	alice.sendRaw(`{"a":"bf","c":"secret","b":["plan","other"]}`)
	alice.expect(`{"a":"bf","c":"secret","data":{"plan":{"error":{"code":"ERR_FORBIDDEN","message":"your token does not allow reading secret/plan"}},"other":{"error":{"code":"ERR_FORBIDDEN","message":"your token does not allow reading secret/other"}}}}`)
	alice.sendRaw(`{"a":"bs","c":"secret","b":["plan"]}`)
	alice.expect(`{"a":"bs","c":"secret","data":{"plan":{"error":{"code":"ERR_FORBIDDEN","message":"your token does not allow reading secret/plan"}}}}`)
	alice.sendRaw(`{"a":"bf","c":"notes","b":["a"]}`)
	alice.expectf(`{"a":"bf","c":"notes","data":{"a":{"v":1,"data":"hello","type":%q}}}`, textURI)

	// boss edits the document and posts presence on its channels: alice,
	// who holds no subscription there, receives none of it.
	boss.sendf(`{"a":"op","c":"secret","d":"plan","v":1,"seq":1,"op":[%q]}`, secretEdit)
	boss.expectf(`{"a":"op","c":"secret","d":"plan","v":1,"src":%q,"seq":1}`, boss.src)
	boss.sendRaw(`{"a":"p","ch":"secret.plan","id":"b","pv":1,"p":{"index":3,"length":0},"c":"secret","d":"plan","v":2,"t":"text-unicode"}`)
	boss.recv()
	boss.sendf(`{"a":"p","ch":"secret.plan#users","id":"b","pv":1,"p":{"name":%q}}`, secretEdit)
	boss.recv()

	// The allowed requests work: read, subscribe, write and presence on
	// notes/a.
	alice.sendRaw(`{"a":"s","c":"notes","d":"a"}`)
	alice.expectf(`{"a":"s","c":"notes","d":"a","data":{"v":1,"data":"hello","type":%q}}`, textURI)
	alice.sendRaw(`{"a":"op","c":"notes","d":"a","v":1,"seq":4,"op":["hi "]}`)
	alice.expectf(`{"a":"op","c":"notes","d":"a","v":1,"src":%q,"seq":4}`, alice.src)
	alice.sendRaw(`{"a":"ps","ch":"notes.a#users","seq":4}`)
	alice.expect(`{"a":"ps","ch":"notes.a#users","seq":4}`)
	alice.sendRaw(`{"a":"nf","id":9,"c":"notes","d":"a","v":1}`)
	alice.expect(`{"a":"nf","id":9,"v":1,"data":"hello","type":"http://sharejs.org/types/text-unicode","m":null}`)
	alice.sync("notes", "a")
	mustNotContain(t, "alice's frames", alice.received, secretText)
	mustNotContain(t, "alice's frames", alice.received, secretEdit)

	// A read-only token reads but cannot write.
	reader := ts.dialToken(t, token(t, testSecret, "reader", time.Hour, ro("notes/*")))
	reader.sendRaw(`{"a":"f","c":"notes","d":"a"}`)
	reader.expectf(`{"a":"f","c":"notes","d":"a","data":{"v":2,"data":"hi hello","type":%q}}`, textURI)
	for _, req := range []string{
		`{"a":"op","c":"notes","d":"a","v":2,"seq":1,"op":["x"]}`,
		`{"a":"op","c":"notes","d":"b","v":null,"seq":2,"create":{"type":"text-unicode","data":""}}`,
	} {
		reader.sendRaw(req)
		reader.expectError(req, CodeForbidden)
	}
	mustNotContain(t, "reader's frames", reader.received, secretText)
	snap, err := ts.hub.FetchWait(context.Background(), collab.Key{Collection: "secret", ID: "plan"})
	if err != nil || snap.Data != secretEdit+secretText || snap.Version != 2 {
		t.Fatalf("secret/plan = %+v, %v; want only boss's edit at v2", snap, err)
	}
	if _, err := ts.hub.FetchWait(context.Background(), collab.Key{Collection: "notes", ID: "b"}); err != nil {
		t.Fatal(err)
	}
}

// TestPresenceDeliveredOnlyForReadableDocuments: a channel name can stand
// for two documents ("a.b.c" is the channel of a/b.c and of a.b/c); a
// connection allowed to read a/b.c joins it, and receives document
// presence of a/b.c but not of a.b/c.
func TestPresenceDeliveredOnlyForReadableDocuments(t *testing.T) {
	ts := startAuthServer(t, Options{})
	ctx := context.Background()
	for _, k := range []collab.Key{{Collection: "a", ID: "b.c"}, {Collection: "a.b", ID: "c"}} {
		if _, err := ts.hub.SubmitWait(ctx, k, collab.Submission{Kind: collab.OpCreate, Type: ot.URI, Data: "xyz"}); err != nil {
			t.Fatal(err)
		}
	}
	boss := ts.dialToken(t, token(t, testSecret, "boss", time.Hour, rw("*/*")))
	carol := ts.dialToken(t, token(t, testSecret, "carol", time.Hour, ro("a/b.c")))
	carol.sendRaw(`{"a":"ps","ch":"a.b.c","seq":1}`)
	carol.expect(`{"a":"ps","ch":"a.b.c","seq":1}`)
	boss.sendRaw(`{"a":"ps","ch":"a.b.c","seq":1}`)
	boss.expect(`{"a":"ps","ch":"a.b.c","seq":1}`)
	carol.expect(`{"a":"pr","ch":"a.b.c"}`)
	// Presence of a.b/c on the shared channel: not for carol.
	boss.sendRaw(`{"a":"p","ch":"a.b.c","id":"p1","pv":1,"p":{"index":1,"length":0},"c":"a.b","d":"c","v":1,"t":"text-unicode"}`)
	boss.recv()
	// Presence of a/b.c: for carol, and it arrives first.
	boss.sendRaw(`{"a":"p","ch":"a.b.c","id":"p2","pv":1,"p":{"index":2,"length":0},"c":"a","d":"b.c","v":1,"t":"text-unicode"}`)
	boss.recv()
	m := carol.recv()
	if m["a"] != "p" || m["d"] != "b.c" || m["c"] != "a" {
		t.Fatalf("carol received %s, want the presence of a/b.c", mustJSON(m))
	}
}

// TestSrcReclaimTiedToSubject: with auth on, an issued src is bound to
// its subject: another subject's handshake naming it gets a fresh src and
// leaves the holder connected, and cannot submit under it; the same
// subject reclaims it.
func TestSrcReclaimTiedToSubject(t *testing.T) {
	checkNoLeaks(t)
	ts := startAuthServer(t, Options{})
	seedAuthDocs(t, ts)
	aliceTok := token(t, testSecret, "alice", time.Hour, rw("notes/*"))
	alice := ts.dialToken(t, aliceTok)
	if len(alice.src) != 64 || !validSrc(alice.src) {
		t.Fatalf("issued src %q: want 64 letters and digits", alice.src)
	}
	mallory := ts.dial(t, bearer(token(t, testSecret, "mallory", time.Hour, rw("notes/*"))))
	mallory.sendf(`{"a":"hs","id":%q,"protocol":1,"protocolMinor":2}`, alice.src)
	m := mallory.recv()
	if m["id"] == alice.src || !validSrc(m["id"].(string)) {
		t.Fatalf("mallory's handshake naming alice's src got %s, want a fresh src", mustJSON(m))
	}
	mallory.src = m["id"].(string)
	req := `{"a":"op","c":"notes","d":"a","v":1,"src":"` + alice.src + `","seq":1,"op":["x"]}`
	mallory.sendRaw(req)
	mallory.expectError(req, CodeSrcMismatch)
	// alice is still connected and still holds her src.
	alice.sendRaw(`{"a":"op","c":"notes","d":"a","v":1,"seq":1,"op":["A"]}`)
	alice.expectf(`{"a":"op","c":"notes","d":"a","v":1,"src":%q,"seq":1}`, alice.src)

	// alice's new connection takes her src back; the old one is closed.
	again := ts.dial(t, bearer(aliceTok))
	again.handshake(alice.src)
	if again.src != alice.src {
		t.Fatalf("alice's reclaim got src %q, want %q", again.src, alice.src)
	}
	if err := alice.closeErr(5 * time.Second); !isCloseCode(err, CloseSrcReclaimed) {
		t.Fatalf("alice's old connection ended with %v, want %d", err, CloseSrcReclaimed)
	}
	// Her resend under the src is a duplicate, acknowledged at v1.
	again.sendRaw(`{"a":"op","c":"notes","d":"a","v":1,"seq":1,"op":["A"]}`)
	again.expectf(`{"a":"op","c":"notes","d":"a","v":1,"src":%q,"seq":1}`, alice.src)
}

// TestTokenExpiryClosesConnection: a connection whose token expires is
// closed with 4001, and neither its subscription nor a reconnection with
// the same token gets anything after that.
func TestTokenExpiryClosesConnection(t *testing.T) {
	checkNoLeaks(t)
	ts := startAuthServer(t, Options{})
	// No leeway, so the test waits only for the token's own second.
	ts.srv.auth = newAuthenticatorLeeway(testSecret, time.Now, 0)
	seedAuthDocs(t, ts)
	tok := token(t, testSecret, "alice", 2*time.Second, rw("notes/*"))
	c := ts.dialToken(t, tok)
	c.sendRaw(`{"a":"s","c":"notes","d":"a"}`)
	c.recv()
	if err := c.closeErr(10 * time.Second); !isCloseCode(err, CloseTokenExpired) {
		t.Fatalf("connection with an expiring token ended with %v, want close %d", err, CloseTokenExpired)
	}
	ts.dialRefused(t, ts.wsURL, bearer(tok), http.StatusUnauthorized, CodeTokenExpired)
	waitFor(t, func() bool { return ts.srv.Connections() == 0 })
}
