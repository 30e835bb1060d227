package web

import (
	"net"
	"net/http"
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
