package web

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coedit/coedit/collab"
)

// appOrigin is the browser app of the CORS tests: another origin than the
// server's, as an app that embeds coedit has.
const appOrigin = "http://app.example.test:18081"

// preflight is the header set a browser sends before a non-simple request.
func preflight(origin, method string) map[string]string {
	return map[string]string{
		"Origin":                         origin,
		"Access-Control-Request-Method":  method,
		"Access-Control-Request-Headers": "authorization,content-type",
	}
}

// corsHeaders returns the Access-Control-* headers of h, for messages and
// for checking there are none.
func corsHeaders(h http.Header) http.Header {
	out := http.Header{}
	for k, v := range h {
		if strings.HasPrefix(k, "Access-Control-") {
			out[k] = v
		}
	}
	return out
}

// varies reports whether h's Vary headers name each of names.
func varies(h http.Header, names ...string) bool {
	var listed []string
	for _, v := range h.Values("Vary") {
		for f := range strings.SplitSeq(v, ",") {
			listed = append(listed, strings.TrimSpace(f))
		}
	}
	for _, n := range names {
		found := false
		for _, l := range listed {
			found = found || strings.EqualFold(l, n)
		}
		if !found {
			return false
		}
	}
	return true
}

// TestCORSPreflight: a preflight for an /api/ path is granted, with the
// path's methods, to the origins the WebSocket accepts, with credentials
// only for one the list names, and refused with a coded error (and no
// Allow-Origin, so the browser sends nothing) to any other origin, for a
// method the path does not serve and for a path the API does not serve.
func TestCORSPreflight(t *testing.T) {
	for _, tc := range []struct {
		name         string
		allowed      []string
		origin       string
		method, path string
		status       int
		code         string // for a refusal
		methods      string // Access-Control-Allow-Methods of a grant
		credentials  bool
	}{
		{"listed", []string{appOrigin}, appOrigin, "POST", "/api/docs/c/d/ops", 204, "", "GET, HEAD, POST", true},
		{"listed, other case and slash", []string{"HTTP://App.Example.test:18081/"}, appOrigin, "POST", "/api/docs/c/d/ops", 204, "", "GET, HEAD, POST", true},
		{"listed, snapshot", []string{appOrigin}, appOrigin, "GET", "/api/docs/c/d", 204, "", "GET, HEAD", true},
		{"listed, list", []string{appOrigin}, appOrigin, "GET", "/api/docs", 204, "", "GET, HEAD", true},
		{"listed, auth", []string{appOrigin}, appOrigin, "GET", "/api/auth", 204, "", "GET, HEAD", true},
		{"listed, escaped id", []string{appOrigin}, appOrigin, "GET", "/api/docs/c/a%2Fb/ops", 204, "", "GET, HEAD, POST", true},
		{"wildcard", []string{"*"}, appOrigin, "POST", "/api/docs/c/d/ops", 204, "", "GET, HEAD, POST", false},
		{"wildcard and listed: the listed one", []string{"*", appOrigin}, appOrigin, "POST", "/api/docs/c/d/ops", 204, "", "GET, HEAD, POST", true},
		{"wildcard and listed: another", []string{"*", appOrigin}, "https://other.example", "POST", "/api/docs/c/d/ops", 204, "", "GET, HEAD, POST", false},
		{"default: loopback", nil, "http://localhost:3000", "POST", "/api/docs/c/d/ops", 204, "", "GET, HEAD, POST", false},
		{"not listed", []string{appOrigin}, "https://evil.example", "POST", "/api/docs/c/d/ops", 403, CodeOriginNotAllowed, "", false},
		{"list replaces the default", []string{appOrigin}, "http://localhost:3000", "GET", "/api/docs", 403, CodeOriginNotAllowed, "", false},
		{"default: foreign", nil, appOrigin, "GET", "/api/docs/c/d", 403, CodeOriginNotAllowed, "", false},
		{"garbage origin", []string{"*"}, "null", "GET", "/api/docs", 403, CodeOriginNotAllowed, "", false},
		{"method not served", []string{appOrigin}, appOrigin, "POST", "/api/docs/c/d", 405, CodeMethodNotAllowed, "", false},
		{"method not served on ops", []string{appOrigin}, appOrigin, "DELETE", "/api/docs/c/d/ops", 405, CodeMethodNotAllowed, "", false},
		{"method in lower case", []string{appOrigin}, appOrigin, "post", "/api/docs/c/d/ops", 405, CodeMethodNotAllowed, "", false},
		{"path not served", []string{appOrigin}, appOrigin, "GET", "/api/nothing", 404, CodeNotFound, "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ts := startServer(t, Options{Logger: quiet, AllowedOrigins: tc.allowed}, collab.Options{})
			status, body, h := ts.httpRequest(t, "OPTIONS", tc.path, "", preflight(tc.origin, tc.method))
			if !varies(h, "Origin", "Access-Control-Request-Method", "Access-Control-Request-Headers") {
				t.Errorf("preflight Vary = %q, want Origin and the request's Access-Control-Request-*", h.Values("Vary"))
			}
			if tc.status != http.StatusNoContent {
				if status != tc.status || !strings.Contains(body, `"code":"`+tc.code+`"`) {
					t.Errorf("preflight %s %s from %s = %d %s, want %d %s", tc.method, tc.path, tc.origin, status, body, tc.status, tc.code)
				}
				if c := corsHeaders(h); len(c) != 0 {
					t.Errorf("refused preflight carries %v, want no Access-Control-* header", c)
				}
				return
			}
			want := http.Header{
				"Access-Control-Allow-Origin":  {tc.origin},
				"Access-Control-Allow-Methods": {tc.methods},
				"Access-Control-Allow-Headers": {"Authorization, Content-Type"},
				"Access-Control-Max-Age":       {"600"},
			}
			if tc.credentials {
				want.Set("Access-Control-Allow-Credentials", "true")
			}
			if status != http.StatusNoContent || body != "" || mustJSON(corsHeaders(h)) != mustJSON(want) {
				t.Errorf("preflight %s %s from %s = %d %q %v, want 204 with %v", tc.method, tc.path, tc.origin, status, body, corsHeaders(h), want)
			}
		})
	}
}

// TestCORSPreflightNeedsNoToken: a browser sends a preflight without
// credentials, so with auth on it is granted without a token (what it
// grants is only leave to send the real request, which needs one).
func TestCORSPreflightNeedsNoToken(t *testing.T) {
	ts := startAuthServer(t, Options{AllowedOrigins: []string{appOrigin}})
	status, body, h := ts.httpRequest(t, "OPTIONS", "/api/docs/c/d/ops", "", preflight(appOrigin, "POST"))
	if status != http.StatusNoContent || h.Get("Access-Control-Allow-Origin") != appOrigin {
		t.Fatalf("preflight with auth on = %d %s %v, want 204 granting %s", status, body, corsHeaders(h), appOrigin)
	}
}

// TestCORSOptionsWithoutRequestMethod: an OPTIONS that is not a preflight
// (no Access-Control-Request-Method) is what it was before CORS, 405 with
// the path's methods.
func TestCORSOptionsWithoutRequestMethod(t *testing.T) {
	ts := startServer(t, Options{Logger: quiet, AllowedOrigins: []string{appOrigin}}, collab.Options{})
	for _, hdr := range []map[string]string{nil, {"Origin": appOrigin}} {
		status, body, h := ts.httpRequest(t, "OPTIONS", "/api/docs/c/d/ops", "", hdr)
		if status != http.StatusMethodNotAllowed || !strings.Contains(body, CodeMethodNotAllowed) || h.Get("Allow") != "GET, HEAD, POST" {
			t.Errorf("OPTIONS with %v = %d %s (Allow %q), want 405 %s (Allow GET, HEAD, POST)", hdr, status, body, h.Get("Allow"), CodeMethodNotAllowed)
		}
		if h.Get("Access-Control-Allow-Methods") != "" {
			t.Errorf("OPTIONS with %v carries Access-Control-Allow-Methods %q, want none (not a preflight)", hdr, h.Get("Access-Control-Allow-Methods"))
		}
	}
}

// TestCORSActualResponses: every answer under /api/ to an allowed origin,
// errors included, lets it read the answer and the headers that say why
// (WWW-Authenticate, Allow, Retry-After); an answer to any other origin,
// or to a request without Origin, grants nothing.
func TestCORSActualResponses(t *testing.T) {
	const foreign = "https://evil.example"
	ts := startAuthServer(t, Options{AllowedOrigins: []string{appOrigin}})
	writer := "Bearer " + token(t, testSecret, "app", time.Hour, rw("c/*"))
	reader := "Bearer " + token(t, testSecret, "viewer", time.Hour, ro("c/*"))
	// With src and seq, so that the same submit from each origin in turn
	// is answered 200 (a resend) where it is let through.
	create := `{"v":null,"src":"app","seq":1,"create":{"type":"text-unicode","data":"hi"}}`
	for _, tc := range []struct {
		name         string
		method, path string
		auth, body   string
		status       int
		header       string // a header the app must be able to read, beside the body
	}{
		{"submit", "POST", "/api/docs/c/d/ops", writer, create, 200, ""},
		{"snapshot", "GET", "/api/docs/c/d", reader, "", 200, ""},
		{"op log", "GET", "/api/docs/c/d/ops", reader, "", 200, ""},
		{"list", "GET", "/api/docs", reader, "", 200, ""},
		{"auth", "GET", "/api/auth", reader, "", 200, ""},
		{"no token", "GET", "/api/docs/c/d", "", "", 401, "WWW-Authenticate"},
		{"bad token", "GET", "/api/auth", "Bearer nope", "", 401, "WWW-Authenticate"},
		{"read-only token writes", "POST", "/api/docs/c/d/ops", reader, `{"v":1,"op":["x"]}`, 403, ""},
		{"method not served", "POST", "/api/docs", writer, "", 405, "Allow"},
		{"path not served", "GET", "/api/nothing", writer, "", 404, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, origin := range []string{appOrigin, foreign, ""} {
				hdr := map[string]string{}
				if origin != "" {
					hdr["Origin"] = origin
				}
				if tc.auth != "" {
					hdr["Authorization"] = tc.auth
				}
				status, body, h := ts.httpRequest(t, tc.method, tc.path, tc.body, hdr)
				if !varies(h, "Origin") {
					t.Errorf("%s %s from %q: Vary = %q, want Origin", tc.method, tc.path, origin, h.Values("Vary"))
				}
				if origin == foreign {
					// Only the submit checks Origin itself; every answer
					// is kept from the foreign page by the missing grant.
					if c := corsHeaders(h); len(c) != 0 {
						t.Errorf("%s %s from %s = %d, carries %v, want no Access-Control-* header", tc.method, tc.path, origin, status, c)
					}
					if strings.HasSuffix(tc.path, "/ops") && tc.method == "POST" && status != http.StatusForbidden {
						t.Errorf("POST %s from %s = %d %s, want 403", tc.path, origin, status, body)
					}
					continue
				}
				if status != tc.status {
					t.Fatalf("%s %s from %q = %d %s, want %d", tc.method, tc.path, origin, status, body, tc.status)
				}
				if tc.header != "" && h.Get(tc.header) == "" {
					t.Errorf("%s %s = %d without %s", tc.method, tc.path, status, tc.header)
				}
				if origin == "" {
					if c := corsHeaders(h); len(c) != 0 {
						t.Errorf("%s %s without Origin carries %v, want no Access-Control-* header", tc.method, tc.path, c)
					}
					continue
				}
				want := http.Header{
					"Access-Control-Allow-Origin":      {appOrigin},
					"Access-Control-Allow-Credentials": {"true"},
					"Access-Control-Expose-Headers":    {"Retry-After, WWW-Authenticate, Allow"},
				}
				if mustJSON(corsHeaders(h)) != mustJSON(want) {
					t.Errorf("%s %s from %s = %d, CORS headers %v, want %v", tc.method, tc.path, origin, status, corsHeaders(h), want)
				}
				// Every header the API set that a page cannot read
				// without being told must be exposed.
				exposed := map[string]bool{}
				for n := range strings.SplitSeq(h.Get("Access-Control-Expose-Headers"), ",") {
					exposed[http.CanonicalHeaderKey(strings.TrimSpace(n))] = true
				}
				for k := range h {
					if !corsReadable(k) && !exposed[k] {
						t.Errorf("%s %s = %d sets %s, which Access-Control-Expose-Headers does not name", tc.method, tc.path, status, k)
					}
				}
			}
		})
	}
}

// corsReadable reports whether a page may read response header k without
// Access-Control-Expose-Headers (the CORS-safelisted ones), or has no use
// for it (the transport's and CORS's own).
func corsReadable(k string) bool {
	switch k {
	case "Cache-Control", "Content-Language", "Content-Length", "Content-Type", "Expires", "Last-Modified", "Pragma",
		"Date", "Vary", "X-Content-Type-Options":
		return true
	}
	return strings.HasPrefix(k, "Access-Control-")
}

// TestCORSWildcardActual: through "*" an origin may read the API's answers
// but is not granted credentials, so a page cannot use the visitor's
// cookie; the default (loopback) likewise.
func TestCORSWildcardActual(t *testing.T) {
	for _, tc := range []struct {
		allowed []string
		origin  string
	}{
		{[]string{"*"}, appOrigin},
		{nil, "http://127.0.0.1:5173"},
	} {
		ts := startServer(t, Options{Logger: quiet, AllowedOrigins: tc.allowed}, collab.Options{})
		status, body, h := ts.httpRequest(t, "POST", "/api/docs/c/d/ops", `{"v":null,"create":{"type":"text-unicode","data":""}}`, map[string]string{"Origin": tc.origin})
		if status != http.StatusOK || h.Get("Access-Control-Allow-Origin") != tc.origin || h.Get("Access-Control-Allow-Credentials") != "" {
			t.Errorf("POST from %s with origins %q = %d %s %v, want 200 granting the origin without credentials", tc.origin, tc.allowed, status, body, corsHeaders(h))
		}
	}
}

// TestCORSOnlyAPI: paths outside /api/ answer no CORS, to a preflight or
// otherwise, and the Host check comes before CORS.
func TestCORSOnlyAPI(t *testing.T) {
	ts := startServer(t, Options{Logger: quiet, AllowedOrigins: []string{"*", appOrigin}}, collab.Options{})
	for _, path := range []string{"/", "/d/c/d", "/health", "/ready", "/metrics", "/ws", "/api"} {
		for _, method := range []string{"GET", "OPTIONS"} {
			hdr := map[string]string{"Origin": appOrigin}
			if method == "OPTIONS" {
				hdr = preflight(appOrigin, "GET")
			}
			status, _, h := ts.httpRequest(t, method, path, "", hdr)
			if c := corsHeaders(h); len(c) != 0 {
				t.Errorf("%s %s = %d carries %v, want no Access-Control-* header", method, path, status, c)
			}
		}
	}
	hdr := preflight(appOrigin, "GET")
	hdr["Host"] = "rebound.example"
	status, body, h := ts.httpRequest(t, "OPTIONS", "/api/docs", "", hdr)
	if status != http.StatusMisdirectedRequest || !strings.Contains(body, CodeHostNotAllowed) || len(corsHeaders(h)) != 0 {
		t.Errorf("preflight for Host rebound.example = %d %s %v, want 421 %s and no Access-Control-* header", status, body, corsHeaders(h), CodeHostNotAllowed)
	}
}

// TestCORSRateLimitedReadable: a submit refused for its rate is readable
// by an allowed origin, Retry-After included, so that the app knows when
// to send it again.
func TestCORSRateLimitedReadable(t *testing.T) {
	ts := startServer(t, Options{Logger: quiet, AllowedOrigins: []string{appOrigin}, OpsPerSecond: 0.01, OpsBurst: 1}, collab.Options{})
	hdr := map[string]string{"Origin": appOrigin}
	submit := `{"v":null,"src":"app","seq":1,"create":{"type":"text-unicode","data":""}}`
	if status, body, _ := ts.httpRequest(t, "POST", "/api/docs/c/d/ops", submit, hdr); status != http.StatusOK {
		t.Fatalf("first POST = %d %s, want 200", status, body)
	}
	status, body, h := ts.httpRequest(t, "POST", "/api/docs/c/d/ops", submit, hdr)
	if status != http.StatusTooManyRequests || !strings.Contains(body, CodeRateLimited) || h.Get("Retry-After") == "" {
		t.Fatalf("second POST = %d %s (Retry-After %q), want 429 %s with Retry-After", status, body, h.Get("Retry-After"), CodeRateLimited)
	}
	if h.Get("Access-Control-Allow-Origin") != appOrigin || !strings.Contains(h.Get("Access-Control-Expose-Headers"), "Retry-After") {
		t.Errorf("429 carries %v, want it readable by %s with Retry-After exposed", corsHeaders(h), appOrigin)
	}
}
