package web

import (
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/coedit/coedit/collab"
)

// This file guards the browser pages when auth is on, and answers
// GET /api/auth.
//
// An embedding app hands the page a token in one of two ways: it sets the
// coedit_token cookie itself (its login shares a parent domain with
// coedit, or a reverse proxy puts both on one origin), or it links to a
// page with ?token=. The server moves a token from a page's URL into an
// HttpOnly cookie and redirects to the URL without it, so the token does
// not stay in the address bar, the history, or a link a user copies to
// share the document; the page's WebSocket and HTTP requests then carry
// the cookie. The static assets need no token: they hold no data.

// servePage serves the browser pages: with auth on, only to a request
// with a valid token, and the editor only for a document it may read.
// The list shows only readable documents (readableLister).
func (s *Server) servePage(w http.ResponseWriter, r *http.Request) {
	if strings.HasPrefix(r.URL.Path, "/static/") {
		s.pages.ServeHTTP(w, r)
		return
	}
	if s.auth != nil && r.URL.Query().Has("token") && (r.Method == http.MethodGet || r.Method == http.MethodHead) {
		s.takeURLToken(w, r)
		return
	}
	id, err := s.authenticate(r)
	if err != nil {
		s.renderAuthError(w, err)
		return
	}
	if coll, docID := r.PathValue("collection"), r.PathValue("id"); coll != "" && docID != "" {
		if key := (collab.Key{Collection: coll, ID: docID}); !id.access.CanRead(key) {
			pageErrors.renderError(w, http.StatusForbidden, "No access to this document",
				"Your access token does not allow this document. Ask for a link that includes it.")
			return
		}
	}
	s.pages.ServeHTTP(w, r.WithContext(withIdentity(r.Context(), id)))
}

// pageErrors renders the pages' error screens.
var pageErrors = &pageHandler{tmpl: pageTemplates}

// takeURLToken moves a page URL's token into the TokenCookie and
// redirects to the URL without it; an invalid token gets the error page.
func (s *Server) takeURLToken(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	tok := q.Get("token")
	id, err := s.auth.identity(tok)
	if err != nil {
		s.renderAuthError(w, err)
		return
	}
	http.SetCookie(w, &http.Cookie{
		Name:     TokenCookie,
		Value:    tok,
		Path:     "/",
		MaxAge:   max(1, int(time.Until(id.expires).Seconds())),
		HttpOnly: true,
		// Lax: sent when a user follows a link from the embedding app
		// (Strict would not be), never on a cross-site request from a
		// page, such as a WebSocket another site opens.
		SameSite: http.SameSiteLaxMode,
		Secure:   isHTTPS(r),
	})
	q.Del("token")
	u := *r.URL
	u.RawQuery = q.Encode()
	hd := w.Header()
	hd.Set("Cache-Control", "no-store")
	hd.Set("Referrer-Policy", "no-referrer")
	http.Redirect(w, r, u.RequestURI(), http.StatusSeeOther)
}

// isHTTPS reports whether the browser reached the server over HTTPS:
// directly, or through a proxy that says so. Trusting the header only
// decides the cookie's Secure flag for the client that sent it.
func isHTTPS(r *http.Request) bool {
	return r.TLS != nil || strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https")
}

// renderAuthError shows the page for a missing, invalid or expired token,
// with status 401.
func (s *Server) renderAuthError(w http.ResponseWriter, err error) {
	title, msg := "Sign-in needed", "This coedit server needs an access token. Open this page from your application, which passes one on."
	switch {
	case errors.Is(err, ErrTokenExpired):
		title, msg = "Access expired", "Your access token has expired. Open this page again from your application to get a new one."
	case errors.Is(err, ErrBadToken):
		title, msg = "Access token not accepted", "The access token is not valid for this server. Open this page again from your application to get a new one."
	}
	w.Header().Set("WWW-Authenticate", `Bearer realm="coedit"`)
	pageErrors.renderError(w, http.StatusUnauthorized, title, msg)
}

// serveAuth answers GET /api/auth, which tells the page (and an embedding
// app) whether the request's token is accepted: {"auth":false} without
// auth, {"auth":true,"sub","exp"} (the token's exp claim, in Unix
// seconds) with a valid token, 401 with the token's error otherwise.
func (s *Server) serveAuth(w http.ResponseWriter, r *http.Request) {
	if s.auth == nil {
		writeJSON(w, http.StatusOK, map[string]any{"auth": false})
		return
	}
	id, err := s.authenticate(r)
	if err != nil {
		s.writeAuthError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"auth": true, "sub": id.access.Subject, "exp": id.exp.Unix()})
}
