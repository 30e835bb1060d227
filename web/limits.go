package web

import (
	"fmt"
	"net"
	"sync"
	"time"
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

// addrBuckets holds a token bucket per client address, for the HTTP
// API's submits: a WebSocket connection's ops are held to its own
// bucket, and an address's HTTP submits share one of the same shape
// (Options.OpsPerSecond and OpsBurst), so a token cannot get around the
// op rate by posting. A bucket that has filled up again is forgotten
// once the map grows, as a new one would be the same.
type addrBuckets struct {
	rate *bucketRate
	mu   sync.Mutex
	m    map[string]*tokenBucket
}

// sweepAt is the size past which take forgets the full buckets.
const sweepAt = 1024

// take takes a token from addr's bucket if it is there within most, and
// returns how long the caller must wait for it; else it takes nothing
// and returns how long until one would be.
func (a *addrBuckets) take(addr string, most time.Duration) (time.Duration, bool) {
	now := int64(time.Since(a.rate.epoch))
	a.mu.Lock()
	b := a.m[addr]
	if b == nil {
		if a.m == nil {
			a.m = make(map[string]*tokenBucket)
		}
		if len(a.m) >= sweepAt {
			for k, v := range a.m {
				if v.full(now) {
					delete(a.m, k)
				}
			}
		}
		nb := newTokenBucket(a.rate)
		b = &nb
		a.m[addr] = b
	}
	a.mu.Unlock()
	wait, ok := b.takeWithin(now, int64(most))
	return time.Duration(wait), ok
}
