package web

import (
	"fmt"
	"net"
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

// connAddr is the address c was admitted with (Server.clientAddr): the
// one another node passed it here for, or its TCP peer's host, computed
// again from its socket (an idle connection does not keep it), which
// gives the same string.
func (s *Server) connAddr(c *conn) string {
	s.mu.Lock()
	addr, ok := s.passedAddr[c]
	delete(s.passedAddr, c)
	s.mu.Unlock()
	if ok {
		return addr
	}
	return remoteHost(c.remote())
}

// remoteHost is the host of a peer's address (host:port).
func remoteHost(addr string) string {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	return host
}
