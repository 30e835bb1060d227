package web

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/gorilla/websocket"
)

// TestTokenOtherAlgorithmNamed: a token signed with anything but HS256 is
// refused with a message that names its algorithm and says only HS256 is
// accepted, not as a bad signature, which would send an integrator whose
// identity provider signs with RS256 looking for a wrong secret.
func TestTokenOtherAlgorithmNamed(t *testing.T) {
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	a := newAuthenticator(testSecret, func() time.Time { return now })
	claims := TokenClaims{Docs: []TokenDoc{rw("*/*")}}
	claims.Subject = "alice"
	claims.ExpiresAt = jwt.NewNumericDate(now.Add(time.Hour))
	sign := func(m jwt.SigningMethod, key any, kid string) string {
		tok := jwt.NewWithClaims(m, claims)
		if kid != "" {
			tok.Header["kid"] = kid
		}
		s, err := tok.SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	// handMade is a token whose header is exactly header, which the
	// library would not sign.
	handMade := func(header string) string {
		payload, _ := json.Marshal(claims)
		enc := base64.RawURLEncoding.EncodeToString
		return enc([]byte(header)) + "." + enc(payload) + "." + enc([]byte("signature"))
	}
	for _, tc := range []struct {
		name, token, want string
	}{
		{"RS256 with kid", sign(jwt.SigningMethodRS256, rsaKey, "idp-key-1"), `algorithm "RS256": only HS256 is accepted`},
		{"HS384", sign(jwt.SigningMethodHS384, testSecret, ""), `algorithm "HS384": only HS256 is accepted`},
		{"HS512", sign(jwt.SigningMethodHS512, testSecret, ""), `algorithm "HS512": only HS256 is accepted`},
		{"none", sign(jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, ""), `algorithm "none": only HS256 is accepted`},
		{"unknown to the library", handMade(`{"alg":"hs256","typ":"JWT"}`), `algorithm "hs256": only HS256 is accepted`},
		{"no alg", handMade(`{"typ":"JWT"}`), `no algorithm: only HS256 is accepted`},
		{"HS256, wrong key", sign(jwt.SigningMethodHS256, []byte("another secret of the same length"), ""), "bad signature"},
	} {
		_, err := a.verify(tc.token)
		if err == nil || !strings.HasPrefix(err.Error(), ErrBadToken.Error()) || !strings.HasSuffix(err.Error(), ": "+tc.want) {
			t.Errorf("%s: verify = %v, want %v: %s", tc.name, err, ErrBadToken, tc.want)
		}
	}

	// On the wire: 401 ERR_TOKEN_INVALID, the algorithm named.
	ts := startAuthServer(t, Options{})
	status, body := ts.httpDo(t, "GET", "/api/auth", "", "", map[string]string{"Authorization": "Bearer " + sign(jwt.SigningMethodRS256, rsaKey, "idp-key-1")})
	checkHTTPError(t, status, body, http.StatusUnauthorized, CodeTokenInvalid)
	if !strings.Contains(body, `RS256\": only HS256 is accepted`) {
		t.Errorf("GET /api/auth with an RS256 token: body %s does not name the algorithm", body)
	}
}

// TestNonBearerAuthorizationPassedOver: an Authorization header of another
// scheme (basic auth a proxy or a staging setup adds) does not hide the
// token in the query or the cookie.
func TestNonBearerAuthorizationPassedOver(t *testing.T) {
	ts := startAuthServer(t, Options{})
	tok := token(t, testSecret, "alice", time.Hour, rw("*/*"))
	basic := "Basic YWxpY2U6cHc="
	for _, tc := range []struct {
		name, path string
		hdr        map[string]string
	}{
		{"basic and query", "/api/auth?token=" + url.QueryEscape(tok), map[string]string{"Authorization": basic}},
		{"basic and cookie", "/api/auth", map[string]string{"Authorization": basic, "Cookie": TokenCookie + "=" + tok}},
		{"digest and cookie", "/api/auth", map[string]string{"Authorization": `Digest username="alice"`, "Cookie": TokenCookie + "=" + tok}},
	} {
		status, body := ts.httpDo(t, "GET", tc.path, "", "", tc.hdr)
		if status != http.StatusOK || !strings.Contains(body, `"sub":"alice"`) {
			t.Errorf("%s: GET /api/auth = %d %s, want 200 for alice", tc.name, status, body)
		}
	}

	// The WebSocket upgrade reads the token the same way.
	hdr := http.Header{"Authorization": {basic}}
	ws, resp, err := websocket.DefaultDialer.Dial(ts.wsURL+"?token="+url.QueryEscape(tok), hdr)
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		t.Fatalf("upgrade with basic auth and ?token= = %v (status %d), want it accepted", err, status)
	}
	ws.Close()
}

// TestAuthReportsTokenExp: GET /api/auth reports the token's own exp, not
// exp plus the leeway the server allows for clock skew.
func TestAuthReportsTokenExp(t *testing.T) {
	ts := startAuthServer(t, Options{})
	exp := time.Now().Add(time.Hour).Truncate(time.Second)
	c := TokenClaims{Docs: []TokenDoc{ro("*/*")}}
	c.Subject = "alice"
	c.ExpiresAt = jwt.NewNumericDate(exp)
	tok, err := SignToken(testSecret, c)
	if err != nil {
		t.Fatal(err)
	}
	status, body := ts.httpDo(t, "GET", "/api/auth", "", "", map[string]string{"Authorization": "Bearer " + tok})
	var got struct {
		Auth bool   `json:"auth"`
		Sub  string `json:"sub"`
		Exp  int64  `json:"exp"`
	}
	if status != http.StatusOK || json.Unmarshal([]byte(body), &got) != nil {
		t.Fatalf("GET /api/auth = %d %s", status, body)
	}
	if !got.Auth || got.Sub != "alice" || got.Exp != exp.Unix() {
		t.Errorf("GET /api/auth = %s, want auth true, sub alice, exp %d", body, exp.Unix())
	}
}

// TestTooManyConnectionsRetryAfter: the 429 an upgrade gets past
// MaxConnsPerAddr, and the 503 past MaxConns, say when to try again, as
// the HTTP API's 503s do.
func TestTooManyConnectionsRetryAfter(t *testing.T) {
	ts := startServer(t, Options{Logger: quiet, MaxConnsPerAddr: 1}, startHubOpts())
	ts.connect(t)
	ws, resp, err := websocket.DefaultDialer.Dial(ts.wsURL, nil)
	if err == nil {
		ws.Close()
		t.Fatal("a second upgrade from the address was accepted")
	}
	if resp == nil || resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("second upgrade: %v, %+v; want 429", err, resp)
	}
	resp.Body.Close()
	ra := resp.Header.Get("Retry-After")
	if n, err := strconv.Atoi(ra); err != nil || n < 1 || n > 60 {
		t.Errorf("429 Retry-After = %q, want a few seconds", ra)
	}

	// The 503 of a node at MaxConns says so too.
	full := startServer(t, Options{Logger: quiet, MaxConns: 1}, startHubOpts())
	full.connect(t)
	ws, resp, err = websocket.DefaultDialer.Dial(full.wsURL, nil)
	if err == nil {
		ws.Close()
		t.Fatal("an upgrade past MaxConns was accepted")
	}
	if resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("upgrade past MaxConns: %v, %+v; want 503", err, resp)
	}
	resp.Body.Close()
	ra = resp.Header.Get("Retry-After")
	if n, err := strconv.Atoi(ra); err != nil || n < 1 || n > 60 {
		t.Errorf("503 Retry-After = %q, want a few seconds", ra)
	}
}

// TestTokenMintedByHand: what the README tells an integrator holds. A
// token made without a JWT library, HMAC-SHA256 keyed with the secret's
// own bytes (not hex-decoded), is accepted, and aud, iss and iat are not
// checked; keyed with the hex-decoded secret it is refused.
func TestTokenMintedByHand(t *testing.T) {
	secret := []byte("9f2c4e1a7b3d5f6081a2c3e4f5061728394a5b6c7d8e9f001122334455667788")
	now := time.Now()
	a := newAuthenticator(secret, func() time.Time { return now })
	payload, err := json.Marshal(map[string]any{
		"sub": "alice", "exp": now.Add(time.Hour).Unix(), "docs": []TokenDoc{rw("notes/*")},
		"aud": "some-other-service", "iss": "https://idp.example", "iat": now.Add(time.Hour).Unix(),
	})
	if err != nil {
		t.Fatal(err)
	}
	mint := func(key []byte) string {
		enc := base64.RawURLEncoding.EncodeToString
		signed := enc([]byte(`{"alg":"HS256","typ":"JWT"}`)) + "." + enc(payload)
		m := hmac.New(sha256.New, key)
		m.Write([]byte(signed))
		return signed + "." + enc(m.Sum(nil))
	}
	if c, err := a.verify(mint(secret)); err != nil || c.Subject != "alice" {
		t.Errorf("verify(token keyed with the secret's bytes) = %+v, %v; want alice", c, err)
	}
	decoded, err := hex.DecodeString(string(secret))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.verify(mint(decoded)); err == nil {
		t.Error("verify(token keyed with the hex-decoded secret) accepted it")
	}
}
