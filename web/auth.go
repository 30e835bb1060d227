package web

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/coedit/coedit/collab"
)

// This file holds authentication: HS256 tokens (JWTs) that name a subject,
// an expiry and the documents the holder may read or write, and the src
// binding that lets only the same subject reclaim a src.

// TokenCookie is the cookie the server reads a token from when the request
// has no bearer token in an Authorization header and no token query
// parameter. An embedding app's login sets it for the page.
const TokenCookie = "coedit_token"

// Token errors, answered with 401 before the WebSocket upgrade and on the
// HTTP API.
var (
	// ErrNoToken: auth is on and the request carries no token.
	ErrNoToken = errors.New("web: no token")
	// ErrBadToken: the token is malformed, not HS256, badly signed, or
	// lacks a subject or an expiry.
	ErrBadToken = errors.New("web: invalid token")
	// ErrTokenExpired: the token's expiry has passed.
	ErrTokenExpired = errors.New("web: token expired")
)

// TokenDoc is one entry of a token's "docs" claim.
type TokenDoc struct {
	// Pattern is a document pattern (collab.Grant.Pattern).
	Pattern string `json:"pattern"`
	// Write allows submits; without it the entry is read-only.
	Write bool `json:"write,omitempty"`
}

// TokenClaims are the claims of a coedit token: the registered "sub" and
// "exp" (both required) and "docs", the documents it allows. A token
// without "docs" allows no document.
type TokenClaims struct {
	jwt.RegisteredClaims
	Docs []TokenDoc `json:"docs,omitempty"`
}

// Access returns the collab.Access the claims grant.
func (c *TokenClaims) Access() collab.Access {
	a := collab.Access{Subject: c.Subject}
	for _, d := range c.Docs {
		a.Grants = append(a.Grants, collab.Grant{Pattern: d.Pattern, Write: d.Write})
	}
	return a
}

// SignToken returns an HS256 token for claims, signed with secret. cmd's
// `coedit token` uses it; an embedding app may mint tokens with any JWT
// library the same way.
func SignToken(secret []byte, claims TokenClaims) (string, error) {
	for _, d := range claims.Docs {
		if err := collab.CheckPattern(d.Pattern); err != nil {
			return "", err
		}
	}
	return jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(secret)
}

// tokenLeeway is the clock skew allowed between the token's issuer and
// this server, on exp (and nbf when present; iat is not checked).
const tokenLeeway = 5 * time.Second

// authenticator checks tokens against one secret.
type authenticator struct {
	secret []byte
	parser *jwt.Parser
	now    func() time.Time
	// leeway is added to a token's exp: the token is accepted, and a
	// connection holding it stays open, until exp+leeway.
	leeway time.Duration
}

func newAuthenticator(secret []byte, now func() time.Time) *authenticator {
	return newAuthenticatorLeeway(secret, now, tokenLeeway)
}

// newAuthenticatorLeeway is newAuthenticator with another leeway (tests
// of expiry use none).
func newAuthenticatorLeeway(secret []byte, now func() time.Time, leeway time.Duration) *authenticator {
	return &authenticator{
		secret: secret,
		now:    now,
		leeway: leeway,
		parser: jwt.NewParser(
			jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
			jwt.WithExpirationRequired(),
			jwt.WithLeeway(leeway),
			// No check of iat: an issuer whose clock runs ahead would have
			// its fresh tokens refused as not valid yet; exp bounds them.
			jwt.WithTimeFunc(now),
		),
	}
}

// verify parses and checks a token and returns its claims.
func (a *authenticator) verify(token string) (*TokenClaims, error) {
	var claims TokenClaims
	tok, err := a.parser.ParseWithClaims(token, &claims, func(*jwt.Token) (any, error) { return a.secret, nil })
	switch {
	case errors.Is(err, jwt.ErrTokenExpired):
		return nil, ErrTokenExpired
	case err != nil:
		// The library's message may quote the token's parts; say only
		// what kind of failure it was.
		return nil, fmt.Errorf("%w: %s", ErrBadToken, tokenFailure(tok, err))
	case claims.Subject == "":
		return nil, fmt.Errorf("%w: no subject", ErrBadToken)
	}
	for _, d := range claims.Docs {
		if err := collab.CheckPattern(d.Pattern); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrBadToken, err)
		}
	}
	return &claims, nil
}

// tokenFailure names a jwt error without its details.
func tokenFailure(tok *jwt.Token, err error) string {
	// Another algorithm is named first: the library reports one outside
	// WithValidMethods as a bad signature, and one it does not know as
	// unverifiable, and either would send an integrator whose identity
	// provider signs with RS256 looking for a wrong secret. The header
	// is set once it has decoded, whatever failed after.
	if tok != nil && tok.Header != nil {
		alg, _ := tok.Header["alg"].(string)
		switch {
		case alg == "":
			return "no algorithm: only HS256 is accepted"
		case alg != jwt.SigningMethodHS256.Alg():
			return fmt.Sprintf("algorithm %q: only HS256 is accepted", clip([]byte(alg)))
		}
	}
	switch {
	case errors.Is(err, jwt.ErrTokenMalformed):
		return "malformed"
	case errors.Is(err, jwt.ErrTokenSignatureInvalid), errors.Is(err, jwt.ErrSignatureInvalid):
		return "bad signature"
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return "no expiry"
	case errors.Is(err, jwt.ErrTokenNotValidYet), errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return "not valid yet"
	}
	return "rejected"
}

// requestToken returns the token a request carries: the Authorization
// bearer token, else the token query parameter, else the TokenCookie.
// An Authorization header of another scheme is passed over, not taken
// for the absence of a token: a proxy or a staging setup's basic auth
// adds one to requests that carry their token elsewhere.
func requestToken(r *http.Request) string {
	for _, h := range r.Header.Values("Authorization") {
		if scheme, tok, ok := strings.Cut(h, " "); ok && strings.EqualFold(scheme, "Bearer") {
			if tok = strings.TrimSpace(tok); tok != "" {
				return tok
			}
		}
	}
	if t := r.URL.Query().Get("token"); t != "" {
		return t
	}
	if c, err := r.Cookie(TokenCookie); err == nil {
		return c.Value
	}
	return ""
}

// identity is who a request or connection acts as.
type identity struct {
	access collab.Access
	// expires is when the token stops being accepted (its exp plus the
	// leeway); zero without auth.
	expires time.Time
	// exp is the token's own exp claim, which GET /api/auth reports: an
	// app that renews tokens before they expire goes by the claim it
	// minted, not by this server's allowance for clock skew.
	exp time.Time
}

// authenticate returns the identity of r: everyone when auth is off, the
// token's grants when it is on.
func (s *Server) authenticate(r *http.Request) (identity, error) {
	if s.auth == nil {
		return identity{access: collab.Everyone}, nil
	}
	tok := requestToken(r)
	if tok == "" {
		return identity{}, ErrNoToken
	}
	return s.auth.identity(tok)
}

// identity verifies tok and returns who it names.
func (a *authenticator) identity(tok string) (identity, error) {
	claims, err := a.verify(tok)
	if err != nil {
		return identity{}, err
	}
	exp := claims.ExpiresAt.Time
	return identity{access: claims.Access(), expires: exp.Add(a.leeway), exp: exp}, nil
}

// writeAuthError answers a request whose token is missing, invalid or
// expired: 401 with the coded error and, as RFC 6750 asks, a
// WWW-Authenticate challenge. Neither names the token.
func (s *Server) writeAuthError(w http.ResponseWriter, r *http.Request, err error) {
	challenge := `Bearer realm="coedit"`
	if !errors.Is(err, ErrNoToken) {
		challenge += `, error="invalid_token"`
	}
	w.Header().Set("WWW-Authenticate", challenge)
	s.writeError(w, r, err)
}

// httpSrc returns the src an HTTP API submit is stored under: src in the
// HTTP namespace (see serveSubmit) and, with auth on, in its subject's,
// so that one subject's POST cannot pose as another's resend (and have
// that one's next op dropped as a duplicate). The subject appears only as
// a MAC: srcs are sent to every subscriber.
func (s *Server) httpSrc(src string, id identity) string {
	if s.auth == nil {
		return httpSrcPrefix + src
	}
	return httpSrcPrefix + s.auth.srcMAC("http", id.access.Subject) + ":" + src
}

// srcMACLen is the length, in hex digits, of the subject binding that
// follows a src's random part when auth is on.
const srcMACLen = 32

// subjectSrc returns a src bound to subject: 32 random hex digits followed
// by a MAC of them and the subject. Any node with the same secret can
// check, without shared state, that a src presented in "hs" was issued to
// the same subject.
func (a *authenticator) subjectSrc(random, subject string) string {
	return random + a.srcMAC(random, subject)
}

func (a *authenticator) srcMAC(random, subject string) string {
	m := hmac.New(sha256.New, a.secret)
	m.Write([]byte("coedit src\x00"))
	m.Write([]byte(subject))
	m.Write([]byte{0})
	m.Write([]byte(random))
	return hex.EncodeToString(m.Sum(nil))[:srcMACLen]
}

// srcBelongsTo reports whether src was issued to subject.
func (a *authenticator) srcBelongsTo(src, subject string) bool {
	if len(src) <= srcMACLen {
		return false
	}
	random, mac := src[:len(src)-srcMACLen], src[len(src)-srcMACLen:]
	return hmac.Equal([]byte(mac), []byte(a.srcMAC(random, subject)))
}
