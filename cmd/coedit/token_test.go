package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/coedit/coedit/web"
)

const testSecret = "0123456789abcdef0123456789abcdef"

func parseTestToken(t *testing.T, tok string) *web.TokenClaims {
	t.Helper()
	var c web.TokenClaims
	_, err := jwt.ParseWithClaims(strings.TrimSpace(tok), &c, func(*jwt.Token) (any, error) { return []byte(testSecret), nil },
		jwt.WithValidMethods([]string{"HS256"}), jwt.WithExpirationRequired())
	if err != nil {
		t.Fatalf("parse token %q: %v", tok, err)
	}
	return &c
}

func TestTokenCommand(t *testing.T) {
	var out, errOut bytes.Buffer
	args := []string{"--sub", "alice", "--docs", "notes/*", "--docs", "wiki/team-*", "--read-only", "--ttl", "2h", "--auth-secret", testSecret}
	if err := runToken(args, func(string) string { return "" }, &out, &errOut); err != nil {
		t.Fatalf("runToken: %v (%s)", err, errOut.String())
	}
	c := parseTestToken(t, out.String())
	if c.Subject != "alice" {
		t.Errorf("sub = %q, want alice", c.Subject)
	}
	if d := time.Until(c.ExpiresAt.Time); d < 119*time.Minute || d > 121*time.Minute {
		t.Errorf("expires in %v, want 2h", d)
	}
	want := []web.TokenDoc{{Pattern: "notes/*"}, {Pattern: "wiki/team-*"}}
	if len(c.Docs) != len(want) || c.Docs[0] != want[0] || c.Docs[1] != want[1] {
		t.Errorf("docs = %+v, want %+v", c.Docs, want)
	}
}

func TestTokenCommandDefaultsToEveryDocumentFromEnv(t *testing.T) {
	var out bytes.Buffer
	env := func(k string) string {
		if k == "COEDIT_AUTH_SECRET" {
			return testSecret
		}
		return ""
	}
	if err := runToken([]string{"--sub", "bob"}, env, &out, &out); err != nil {
		t.Fatalf("runToken: %v", err)
	}
	c := parseTestToken(t, out.String())
	if len(c.Docs) != 1 || c.Docs[0] != (web.TokenDoc{Pattern: "*/*", Write: true}) {
		t.Errorf("docs = %+v, want every document, writable", c.Docs)
	}
}

func TestTokenCommandRefuses(t *testing.T) {
	noEnv := func(string) string { return "" }
	for _, args := range [][]string{
		{"--auth-secret", testSecret},                               // no subject
		{"--sub", "a"},                                              // no secret
		{"--sub", "a", "--auth-secret", "short"},                    // weak secret
		{"--sub", "a", "--auth-secret", testSecret, "--docs", "/x"}, // bad pattern
		{"--sub", "a", "--auth-secret", testSecret, "--ttl", "-1h"},
	} {
		var out bytes.Buffer
		if err := runToken(args, noEnv, &out, &out); err == nil {
			t.Errorf("runToken(%q) = nil, want an error", args)
		} else if out.Len() > 0 && strings.Count(out.String(), ".") == 2 && !strings.Contains(out.String(), " ") {
			t.Errorf("runToken(%q) printed a token", args)
		}
	}
}
