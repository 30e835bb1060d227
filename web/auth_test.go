package web

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/coedit/coedit/collab"
)

func TestTokenVerify(t *testing.T) {
	secret := []byte("0123456789abcdef0123456789abcdef")
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	a := newAuthenticator(secret, func() time.Time { return now })
	claims := func(sub string, exp time.Time, docs ...TokenDoc) TokenClaims {
		c := TokenClaims{Docs: docs}
		c.Subject = sub
		if !exp.IsZero() {
			c.ExpiresAt = jwt.NewNumericDate(exp)
		}
		return c
	}
	sign := func(c TokenClaims, key any, m jwt.SigningMethod) string {
		s, err := jwt.NewWithClaims(m, c).SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	good := claims("alice", now.Add(time.Hour), TokenDoc{Pattern: "notes/*", Write: true})
	at := func(iat, nbf time.Duration) TokenClaims {
		c := good
		if iat != 0 {
			c.IssuedAt = jwt.NewNumericDate(now.Add(iat))
		}
		if nbf != 0 {
			c.NotBefore = jwt.NewNumericDate(now.Add(nbf))
		}
		return c
	}
	noneAlg := sign(good, jwt.UnsafeAllowNoneSignatureType, jwt.SigningMethodNone)
	tests := []struct {
		name  string
		token string
		want  error
	}{
		{"good", sign(good, secret, jwt.SigningMethodHS256), nil},
		{"bad signature", sign(good, []byte("another secret of the same length"), jwt.SigningMethodHS256), ErrBadToken},
		{"expired", sign(claims("alice", now.Add(-time.Minute)), secret, jwt.SigningMethodHS256), ErrTokenExpired},
		{"no expiry", sign(claims("alice", time.Time{}), secret, jwt.SigningMethodHS256), ErrBadToken},
		{"no subject", sign(claims("", now.Add(time.Hour)), secret, jwt.SigningMethodHS256), ErrBadToken},
		{"HS512", sign(good, secret, jwt.SigningMethodHS512), ErrBadToken},
		{"alg none", noneAlg, ErrBadToken},
		{"garbage", "not.a.token", ErrBadToken},
		// iat is not checked: an issuer's clock ahead of ours must not
		// make its fresh tokens fail (exp bounds them).
		{"issued in the future", sign(at(time.Hour, 0), secret, jwt.SigningMethodHS256), nil},
		{"valid in the future", sign(at(0, time.Hour), secret, jwt.SigningMethodHS256), ErrBadToken},
		{"issued within the leeway", sign(at(2*time.Second, 0), secret, jwt.SigningMethodHS256), nil},
		{"issued in the past", sign(at(-time.Hour, -time.Hour), secret, jwt.SigningMethodHS256), nil},
		{"bad pattern", sign(claims("alice", now.Add(time.Hour), TokenDoc{Pattern: "/x"}), secret, jwt.SigningMethodHS256), ErrBadToken},
	}
	for _, tt := range tests {
		c, err := a.verify(tt.token)
		if !errors.Is(err, tt.want) {
			t.Errorf("%s: verify = %v, want %v", tt.name, err, tt.want)
			continue
		}
		if err != nil && strings.Contains(err.Error(), tt.token) {
			t.Errorf("%s: the error quotes the token: %v", tt.name, err)
		}
		if err == nil {
			acc := c.Access()
			if acc.Subject != "alice" || !acc.CanWrite(collab.Key{Collection: "notes", ID: "x"}) || acc.CanRead(collab.Key{Collection: "wiki", ID: "x"}) {
				t.Errorf("%s: access = %+v", tt.name, acc)
			}
		}
	}
}

func TestSignTokenRefusesBadPatterns(t *testing.T) {
	c := TokenClaims{Docs: []TokenDoc{{Pattern: ""}}}
	if _, err := SignToken([]byte("k"), c); err == nil {
		t.Fatal("SignToken with an empty pattern: no error")
	}
}

func TestRequestTokenSources(t *testing.T) {
	r := httptest.NewRequest("GET", "/ws?token=fromquery", nil)
	r.AddCookie(&http.Cookie{Name: TokenCookie, Value: "fromcookie"})
	if got := requestToken(r); got != "fromquery" {
		t.Errorf("query and cookie: requestToken = %q, want fromquery", got)
	}
	r.Header.Set("Authorization", "Bearer fromheader")
	if got := requestToken(r); got != "fromheader" {
		t.Errorf("header, query and cookie: requestToken = %q, want fromheader", got)
	}
	r.Header.Set("Authorization", "Basic abc")
	if got := requestToken(r); got != "fromquery" {
		t.Errorf("Basic auth, query and cookie: requestToken = %q, want fromquery", got)
	}
	r.Header.Add("Authorization", "Bearer fromsecondheader")
	if got := requestToken(r); got != "fromsecondheader" {
		t.Errorf("Basic and Bearer headers: requestToken = %q, want fromsecondheader", got)
	}
	r = httptest.NewRequest("GET", "/", nil)
	r.Header.Set("Authorization", "Basic abc")
	if got := requestToken(r); got != "" {
		t.Errorf("Basic auth only: requestToken = %q, want none", got)
	}
	r = httptest.NewRequest("GET", "/", nil)
	r.AddCookie(&http.Cookie{Name: TokenCookie, Value: "fromcookie"})
	if got := requestToken(r); got != "fromcookie" {
		t.Errorf("cookie: requestToken = %q, want fromcookie", got)
	}
}

func TestSrcBoundToSubject(t *testing.T) {
	a := newAuthenticator([]byte("secret"), time.Now)
	src := a.subjectSrc(newSrc(), "alice")
	if !a.srcBelongsTo(src, "alice") {
		t.Fatal("a src does not belong to the subject it was issued to")
	}
	if a.srcBelongsTo(src, "mallory") {
		t.Fatal("a src belongs to another subject")
	}
	if a.srcBelongsTo(newSrc(), "alice") || a.srcBelongsTo("", "alice") {
		t.Fatal("an unbound src belongs to a subject")
	}
	other := newAuthenticator([]byte("other secret"), time.Now)
	if other.srcBelongsTo(src, "alice") {
		t.Fatal("a src checks out under another secret")
	}
}
