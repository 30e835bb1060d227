package web

import (
	"bufio"
	"bytes"
	"crypto/subtle"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/coedit/coedit/internal/rawio"
)

// This file routes a cluster's WebSocket editors by document: an upgrade
// that names its document (/ws?doc=collection/id, as the page's does)
// and arrives at a node that is not the document's node is passed,
// bytes and all, to the node that is (Options.Router chooses it). So a
// document's editors meet in one session on one node, whatever node a
// load balancer sent each of them to, and that node is the only one
// that commits the document's ops to Redis: no races between nodes for
// its versions, no copy of each op written and fanned out on every node.
// Routing is a placement, not a rule of correctness: a connection that
// names no document, or arrives while the nodes disagree on the
// members, is served where it landed; one that opens other documents
// besides its own is served, for all of them, where it was passed; and
// Redis still gives each document one order (DESIGN.md §7).
//
// The node that receives a passed upgrade trusts the client address it
// is told only with the cluster's peer token (Router.PeerToken), which
// only the nodes know, and never passes an upgrade that says it was
// passed on again, token or not (a client that says so is served where
// it is: routing is only a placement).

// Router places each document's WebSocket editors on one node of a
// cluster.
type Router interface {
	// Route returns the address (host:port) of the node that serves the
	// editors of doc (the "doc" query parameter of an upgrade, as the
	// client wrote it), or "" when that is this node.
	Route(doc string) string
	// Down tells the router that addr did not take an upgrade passed to
	// it (refused, unreachable, or no answer in time); the upgrade is then
	// served here.
	Down(addr string)
	// PeerToken is the secret the cluster's nodes pass upgrades to each
	// other with, or "" while it is not known: nothing is passed on, and
	// no passed upgrade's client address is trusted, until it is.
	PeerToken() string
}

// The headers a node adds to an upgrade it passes on.
const (
	// headerPeer carries Router.PeerToken.
	headerPeer = "X-Coedit-Peer"
	// headerClient carries the client's address as the passing node
	// counted it.
	headerClient = "X-Coedit-Client"
)

// peerTimeout bounds the dial and the handshake, together, of an upgrade
// passed to another node; past it the upgrade is served here.
const peerTimeout = 2 * time.Second

// clientAddr is the address a connection counts against, and whether
// the upgrade was passed here by another node of the cluster. It is the
// TCP peer's IP, or for a passed upgrade the address the passing node
// gives (headerClient), trusted only with the peer token: any client can
// set forwarding headers.
func (s *Server) clientAddr(r *http.Request) (addr string, passed bool) {
	if s.opts.Router == nil || r.Header.Get(headerPeer) == "" {
		return remoteHost(r.RemoteAddr), false
	}
	if s.fromPeer(r) {
		if ip := net.ParseIP(r.Header.Get(headerClient)); ip != nil {
			return ip.String(), true
		}
	}
	return remoteHost(r.RemoteAddr), true
}

// fromPeer reports whether r carries the cluster's peer token: another
// node passed it here, having checked its Host already.
func (s *Server) fromPeer(r *http.Request) bool {
	if s.opts.Router == nil {
		return false
	}
	tok, want := r.Header.Get(headerPeer), s.opts.Router.PeerToken()
	return tok != "" && want != "" && subtle.ConstantTimeCompare([]byte(tok), []byte(want)) == 1
}

// routeWS passes the upgrade r to the node Options.Router names for its
// document, and reports whether it answered the request. It answers
// nothing, and the caller serves the upgrade here, when the request
// names no document, when this node is the document's, and when the
// other node cannot be reached or does not answer in time.
func (s *Server) routeWS(w http.ResponseWriter, r *http.Request, addr string) bool {
	doc := r.URL.Query().Get("doc")
	if doc == "" {
		return false
	}
	tok := s.opts.Router.PeerToken()
	peer := s.opts.Router.Route(doc)
	if peer == "" || tok == "" {
		return false
	}
	if perr := s.admit(addr); perr != nil {
		s.writeError(w, r, perr)
		return true
	}
	up, br, resp, err := s.dialPeer(r, addr, peer, tok)
	if err != nil {
		s.leave(addr)
		s.opts.Router.Down(peer)
		s.met.proxyFailures.Inc()
		s.log.Warn("websocket: could not pass an upgrade to its document's node; serving it here", "peer", peer, "doc", doc, "err", err)
		return false
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		// The document's node refused it (auth, origin, limits): its
		// answer is the answer.
		defer s.leave(addr)
		defer up.Close()
		for k, v := range resp.Header {
			w.Header()[k] = v
		}
		w.WriteHeader(resp.StatusCode)
		io.Copy(w, io.LimitReader(resp.Body, 64<<10))
		return true
	}
	hj, ok := w.(http.Hijacker)
	if !ok {
		s.leave(addr)
		up.Close()
		http.Error(w, "websocket: cannot take over the connection", http.StatusInternalServerError)
		return true
	}
	cc, cbuf, err := hj.Hijack()
	if err != nil {
		s.leave(addr)
		up.Close()
		return true
	}
	// Both sides read and write with raw system calls, as a served
	// connection does; each has one reader and one writer (its two pumps).
	p := &passed{client: rawio.Wrap(cc), peer: rawio.Wrap(up), timeout: s.opts.WriteTimeout}
	if !s.addPassed(p) {
		cc.Close()
		up.Close()
		s.leave(addr)
		return true
	}
	s.met.proxied.Inc()
	go func() {
		defer s.leave(addr)
		defer s.removePassed(p)
		p.run(resp, br, cbuf.Reader)
	}()
	return true
}

// dialPeer opens a connection to peer and sends it r as an upgrade
// passed on for the client at addr. It returns the connection, the
// reader that holds what followed the answer's headers (the first
// frames), and the answer.
func (s *Server) dialPeer(r *http.Request, addr, peer, tok string) (net.Conn, *bufio.Reader, *http.Response, error) {
	deadline := time.Now().Add(peerTimeout)
	up, err := (&net.Dialer{Deadline: deadline}).Dial("tcp", peer)
	if err != nil {
		return nil, nil, nil, err
	}
	up.SetDeadline(deadline)
	var b bytes.Buffer
	fmt.Fprintf(&b, "GET %s HTTP/1.1\r\nHost: %s\r\n", r.URL.RequestURI(), r.Host)
	h := r.Header.Clone()
	h.Del(headerPeer)
	h.Del(headerClient)
	h.Set(headerPeer, tok)
	h.Set(headerClient, addr)
	h.Write(&b)
	b.WriteString("\r\n")
	if _, err := up.Write(b.Bytes()); err != nil {
		up.Close()
		return nil, nil, nil, err
	}
	br := bufio.NewReader(up)
	resp, err := http.ReadResponse(br, r)
	if err != nil {
		up.Close()
		return nil, nil, nil, err
	}
	if resp.StatusCode >= 500 {
		// Full or shutting down: served here instead.
		resp.Body.Close()
		up.Close()
		return nil, nil, nil, fmt.Errorf("answered %s", resp.Status)
	}
	up.SetDeadline(time.Time{})
	return up, br, resp, nil
}

// passed is an upgrade passed to another node: two TCP connections whose
// bytes are copied both ways until either ends.
type passed struct {
	client, peer net.Conn
	// timeout bounds each write to either side (Options.WriteTimeout),
	// as for a connection served here: a client that stops reading, or a
	// peer that stops, ends the passed connection.
	timeout time.Duration
	once    sync.Once
}

// run answers the client with the peer's 101, then copies: what either
// side had sent past the handshake first, then the rest (pump).
func (p *passed) run(resp *http.Response, peerBuf, clientBuf *bufio.Reader) {
	defer p.close()
	var b bytes.Buffer
	b.WriteString("HTTP/1.1 101 Switching Protocols\r\n")
	resp.Header.Write(&b)
	b.WriteString("\r\n")
	if err := copyBuffered(&b, peerBuf); err != nil {
		return
	}
	p.client.SetWriteDeadline(time.Now().Add(p.timeout))
	if _, err := p.client.Write(b.Bytes()); err != nil {
		return
	}
	go func() {
		defer p.close()
		var cb bytes.Buffer
		if copyBuffered(&cb, clientBuf) != nil {
			return
		}
		p.peer.SetWriteDeadline(time.Now().Add(peerWriteTimeout))
		if _, err := p.peer.Write(cb.Bytes()); err != nil {
			return
		}
		p.pump(p.peer, p.client, peerWriteTimeout)
	}()
	p.pump(p.client, p.peer, p.timeout)
}

// peerWriteTimeout bounds each write of a client's frames to the
// document's node. That node's reader holds a client over its rate back
// (conn.pace) by reading nothing for a while, as TCP then holds the
// client back; a write toward it may wait as long as the client sends
// faster than its rate, and cutting it at WriteTimeout dropped a passed
// client that one served directly only slowed. The peer is another node
// of the cluster; this bounds only one that stopped reading for good.
const peerWriteTimeout = 2 * time.Minute

// pump copies src to dst until either fails, each write bounded by
// timeout. The deadline is moved on only when less than half of it is
// left, so most writes do not touch it. (io.Copy between the two TCP
// connections would splice(2), holding a pipe, two descriptors, for each
// direction of each connection, and nothing would end a splice stuck on
// a client that does not read; a read and write loop with 32 KiB
// buffers measured no costlier than splice: docs/decisions.md; the 4 KiB
// buffers used now were not measured apart.) The buffer is small: frames
// are, and an idle passed connection holds two.
func (p *passed) pump(dst, src net.Conn, timeout time.Duration) {
	buf := make([]byte, 4<<10)
	var until time.Time
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if now := time.Now(); until.Sub(now) < timeout/2 {
				until = now.Add(timeout)
				dst.SetWriteDeadline(until)
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// copyBuffered moves what r has buffered, without reading more, to b.
func copyBuffered(b *bytes.Buffer, r *bufio.Reader) error {
	n := r.Buffered()
	if n == 0 {
		return nil
	}
	buf, err := r.Peek(n)
	if err != nil {
		return err
	}
	b.Write(buf)
	_, err = r.Discard(n)
	return err
}

// close closes both connections, which ends both copies.
func (p *passed) close() {
	p.once.Do(func() {
		p.client.Close()
		p.peer.Close()
	})
}

// addPassed records p so that Close ends it; false when the server is
// closing.
func (s *Server) addPassed(p *passed) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return false
	}
	if s.passed == nil {
		s.passed = make(map[*passed]struct{})
	}
	s.passed[p] = struct{}{}
	return true
}

func (s *Server) removePassed(p *passed) {
	s.mu.Lock()
	delete(s.passed, p)
	s.mu.Unlock()
}

// closePassedLocked ends every passed connection; s.mu is held.
func (s *Server) closePassedLocked() {
	for p := range s.passed {
		p.close()
	}
}
