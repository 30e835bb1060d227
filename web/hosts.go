package web

import (
	"net"
	"net/http"
	"strconv"
	"strings"
)

// hostAllowed is the DNS-rebinding defence, checked on the WebSocket
// upgrade and every HTTP path: the request's Host must name this server.
//
// A rebinding attack needs a host name the attacker controls that resolves
// to this server, so a Host that is an IP literal is always allowed (a page
// whose origin is an IP address is that address's own page), and so are
// the loopback names. Any other name must be in Options.AllowedHosts
// (compared without the port, case-insensitively); "*" there turns the
// check off.
func (s *Server) hostAllowed(r *http.Request) bool {
	host := r.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.Trim(host, "[]"), ".")
	if host == "" {
		// HTTP/1.0 without Host: not a browser, which always sends one.
		return true
	}
	if net.ParseIP(host) != nil || strings.EqualFold(host, "localhost") {
		return true
	}
	for _, a := range s.opts.AllowedHosts {
		if a == "*" || strings.EqualFold(a, host) {
			return true
		}
	}
	return false
}

// checkHost wraps every route with hostAllowed: a request for another
// name gets 421 ERR_HOST_NOT_ALLOWED, whatever its path (the WebSocket,
// the API, the pages, /metrics, /health).
func (s *Server) checkHost(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !s.hostAllowed(r) && !s.fromPeer(r) {
			s.writeError(w, r, newError(CodeHostNotAllowed, "this server does not answer for host "+strconv.Quote(r.Host)+"; add it to the allowed hosts (--hosts) if it is one of the server's names"))
			return
		}
		next.ServeHTTP(w, r)
	})
}
