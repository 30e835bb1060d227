package web

import (
	"fmt"
	"net"
	"net/http"
)

// This file bounds the WebSocket connections a node holds, in all
// (Options.MaxConns) and from one client address (Options.MaxConnsPerAddr),
// so that one client cannot take every file descriptor and every other
// client's place. A half-open connection that never finishes its request
// headers never reaches a handler: http.Server's ReadHeaderTimeout (cmd
// sets it) is what bounds those.

// admit takes a connection slot for a WebSocket handler from addr, or
// returns the error to refuse the upgrade with. The caller calls leave
// with the same addr when the handler returns; Close waits for it.
func (s *Server) admit(addr string) *protoError {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.closing:
		return newError(CodeServerClosing, "server shutting down")
	case s.admitted >= s.opts.MaxConns:
		return newError(CodeServerFull, fmt.Sprintf("the server holds its limit of %d connections; try again later", s.opts.MaxConns))
	case s.perAddr[addr] >= s.opts.MaxConnsPerAddr:
		return newError(CodeTooManyConnections, fmt.Sprintf("at most %d connections from one address", s.opts.MaxConnsPerAddr))
	}
	s.admitted++
	s.perAddr[addr]++
	s.wg.Add(1)
	return nil
}

// leave gives back the slot admit took.
func (s *Server) leave(addr string) {
	s.mu.Lock()
	s.admitted--
	if s.perAddr[addr]--; s.perAddr[addr] <= 0 {
		delete(s.perAddr, addr)
	}
	s.mu.Unlock()
	s.wg.Done()
}

// clientAddr is the address a connection counts against: the TCP peer's
// IP. Forwarding headers are not read: any client can set them.
func clientAddr(r *http.Request) string {
	return remoteHost(r.RemoteAddr)
}

// remoteHost is the host of a peer's address (host:port), as clientAddr
// counts it; a connection that does not keep it computes it again from
// its socket, which gives the same string.
func remoteHost(addr string) string {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	return host
}
