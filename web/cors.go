package web

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// CORS for the HTTP API. A browser app on another origin (the app that
// embeds coedit, on its own host) calls /api/ with a Bearer token, which
// makes every call, GETs included, a non-simple request: without a
// granted preflight and an Access-Control-Allow-Origin on each answer the
// browser shows the app nothing but "Failed to fetch". The origins served
// are the ones the WebSocket accepts (originAllowed), so one list,
// --origins, says which pages may use coedit at all. Only /api/ answers
// CORS: the page, its assets, /metrics and the probes are not an app's to
// read from another origin.

const (
	// corsAllowHeaders are the request headers an app may send: its token
	// and the submit's JSON Content-Type. Anything else the API ignores.
	corsAllowHeaders = "Authorization, Content-Type"
	// corsExposeHeaders are the response headers, beyond the ones CORS
	// always lets a page read (Content-Type, Cache-Control, ...), that the
	// API sets for its callers: when to retry (429 ERR_RATE_LIMITED, 503
	// ERR_SERVER_BUSY and ERR_UNAVAILABLE), why a token was refused
	// (401), and which methods a path serves (405).
	corsExposeHeaders = "Retry-After, WWW-Authenticate, Allow"
	// corsMaxAge is how long, in seconds, a browser may reuse a granted
	// preflight: long enough that an app's steady traffic is not doubled,
	// short enough that a change to --origins reaches open pages soon.
	corsMaxAge = 600
	// corsPreflightVary names what a preflight's answer depends on, for
	// caches between the browser and the server.
	corsPreflightVary = "Origin, Access-Control-Request-Method, Access-Control-Request-Headers"
)

// cors answers the CORS of the HTTP API (paths under /api/) around next:
// it answers preflights itself, before any route (a preflight carries no
// token and must not need one), and marks every other answer under /api/,
// errors included, readable by an allowed origin, so that an app can tell
// a 401 from a 403 from a 429. Paths outside /api/ pass through untouched.
func (s *Server) cors(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.URL.Path, "/api/") {
			next.ServeHTTP(w, r)
			return
		}
		origin := r.Header.Get("Origin")
		if r.Method == http.MethodOptions && origin != "" && r.Header.Get("Access-Control-Request-Method") != "" {
			s.servePreflight(w, r)
			return
		}
		h := w.Header()
		// On every answer, granted or not: a cache must not hand one
		// origin's answer (with or without Allow-Origin) to another.
		h.Add("Vary", "Origin")
		if origin != "" && s.originAllowed(r) {
			s.grantOrigin(h, origin)
			h.Set("Access-Control-Expose-Headers", corsExposeHeaders)
		}
		next.ServeHTTP(w, r)
	})
}

// servePreflight answers a CORS preflight for an /api/ path: 204 granting
// the path's methods (apiAllow) and corsAllowHeaders to an allowed
// origin. It refuses, without Access-Control-Allow-Origin (so the browser
// sends nothing) and with a coded error: an origin originAllowed rejects
// (403), a path the API does not serve (404), a method the path does not
// serve (405). It does not check the requested headers: the browser
// compares them with Access-Control-Allow-Headers itself.
func (s *Server) servePreflight(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Add("Vary", corsPreflightVary)
	origin := r.Header.Get("Origin")
	if !s.originAllowed(r) {
		s.writeError(w, r, newError(CodeOriginNotAllowed, "origin "+strconv.Quote(origin)+" is not allowed"))
		return
	}
	allow := apiAllow(r)
	if allow == "" {
		s.writeError(w, r, newError(CodeNotFound, "the HTTP API has no "+r.URL.Path))
		return
	}
	method := r.Header.Get("Access-Control-Request-Method")
	if !listsMethod(allow, method) {
		h.Set("Allow", allow)
		s.writeError(w, r, newError(CodeMethodNotAllowed, strconv.Quote(method)+" is not served for "+r.URL.Path+": use "+allow))
		return
	}
	s.grantOrigin(h, origin)
	h.Set("Access-Control-Allow-Methods", allow)
	h.Set("Access-Control-Allow-Headers", corsAllowHeaders)
	h.Set("Access-Control-Max-Age", strconv.Itoa(corsMaxAge))
	w.WriteHeader(http.StatusNoContent)
}

// grantOrigin lets origin, which originAllowed accepted, read the answer;
// with credentials (the coedit_token cookie) only when
// Options.AllowedOrigins names it. Through "*", or the default of the
// server's own host and any loopback origin, a page is trusted with its
// own token, not with the visitor's cookie: otherwise any site (or any
// local dev server) could read every document the visitor may.
func (s *Server) grantOrigin(h http.Header, origin string) {
	h.Set("Access-Control-Allow-Origin", origin)
	if s.originListed(origin) {
		h.Set("Access-Control-Allow-Credentials", "true")
	}
}

// originListed reports whether Options.AllowedOrigins names origin
// itself; "*" names none.
func (s *Server) originListed(origin string) bool {
	u, err := url.Parse(origin)
	return err == nil && u.Host != "" && s.listed(u, false)
}

// listsMethod reports whether allow, a list as apiAllow returns it, holds
// method. Methods are case-sensitive (browsers send the standard ones in
// upper case).
func listsMethod(allow, method string) bool {
	for m := range strings.SplitSeq(allow, ", ") {
		if m == method {
			return true
		}
	}
	return false
}
