package web

import (
	"encoding/json"
	"fmt"
)

// ShareDB protocol constants (sharedb@7 lib/protocol.js, lib/types.js).
const (
	protocolMajor = 1
	protocolMinor = 2
	// json0URI is ShareDB's default type. The handshake must name it even
	// though coedit serves text-unicode, or the client refuses the server
	// (ERR_DEFAULT_TYPE_MISMATCH).
	json0URI = "http://sharejs.org/types/JSONv0"
	// maxClientSrcLen bounds a src a client sends: reclaimed in its
	// handshake or named on an op (WebSocket or HTTP API). Issued srcs
	// are 32 hex digits; an HTTP src is stored with httpSrcPrefix, so
	// this stays well below collab.MaxSrcLen, the engine's hard bound.
	maxClientSrcLen = 64
)

// actions lists the message types ("a") the server serves; run answers
// each: dispatch.go (hs, pp, queries), subscribe.go (f, s, u, bf, bs, bu),
// submit.go (op), history.go (nf, nt) and presence.go (p, ps, pu, pr).
var actions = []string{"hs", "f", "s", "u", "bf", "bs", "bu", "op", "nf", "nt", "p", "ps", "pu", "pr", "pp", "qf", "qs", "qu"}

// run answers r, or returns the error to answer it with; known is false
// for an action the server does not serve. fixesSrc marks the actions
// that involve a document or a presence channel: once one has been
// accepted, the connection's src is fixed (the Hub has seen the conn, and
// collab.Conn.Src must not change from then on; ops or presence already
// carry the src). A switch, not a table of functions, so that the
// compiler can see that r, on handle's stack, stays there.
func (c *conn) run(r *request) (perr *protoError, fixesSrc, known bool) {
	switch r.action {
	case "hs":
		return c.handshake(r), false, true
	case "f":
		return c.fetchOrSubscribe(r, false), true, true
	case "s":
		return c.fetchOrSubscribe(r, true), true, true
	case "u":
		return c.unsubscribe(r), false, true
	case "bf":
		return c.bulk(r, false), true, true
	case "bs":
		return c.bulk(r, true), true, true
	case "bu":
		return c.bulkUnsubscribe(r), false, true
	case "op":
		return c.submit(r), true, true
	case "nf":
		return c.snapshotAt(r, false), false, true
	case "nt":
		return c.snapshotAt(r, true), false, true
	case "p":
		return c.presenceUpdate(r), true, true
	case "ps":
		return c.presenceSubscribe(r), true, true
	case "pu":
		return c.presenceUnsubscribe(r), false, true
	case "pr":
		return c.presenceRequest(r), true, true
	case "pp":
		return c.ping(r), false, true
	case "qf", "qs":
		return c.query(r), false, true
	case "qu":
		return c.queryUnsubscribe(r), false, true
	}
	return nil, false, false
}

// handle runs one request on the reader goroutine. Requests that need a
// document go to the hub, whose reply functions queue the answer; errors
// found here are answered at once.
func (c *conn) handle(frame []byte) {
	var r request
	if perr := parseRequest(frame, &r); perr != nil {
		c.refuse(nil, "json", perr)
		return
	}
	perr, fixesSrc, known := c.run(&r)
	switch {
	case !known:
		c.sendError(&r, newError(CodeUnknownAction, fmt.Sprintf("unknown action %q", r.action)))
	case perr != nil:
		c.sendError(&r, perr)
	case fixesSrc:
		c.srcFixed = true
	}
}

// handshake answers "hs". A client that reconnects sends the id it was
// given before; it gets it back as its src, so that its resent op is
// recognised (see Server.claim), unless this connection already used its
// src for a document or presence request, or, with auth on, the src was
// issued to another subject. A refused claim is not an error: the reply
// names the connection's own fresh src, which the client adopts (a resent
// op under the old src is then refused with ERR_SRC_MISMATCH).
func (c *conn) handshake(r *request) *protoError {
	for _, f := range []string{"protocol", "protocolMinor"} {
		if v := r.raw(f); v != nil {
			if _, err := decodeUint(v); err != nil && v[0] != '"' {
				return badlyFormed(fmt.Sprintf("%q must be a number or a string", f))
			}
		}
	}
	if v := r.raw("id"); v != nil && !c.srcFixed {
		if id, err := decodeString(v); err == nil && validSrc(id) && id != c.Src() && c.srv.mayReclaim(id, c.id) {
			c.srv.claim(c, id)
			c.reclaimed = true
		}
	}
	c.send(newMsg("hs").int("protocol", protocolMajor).int("protocolMinor", protocolMinor).
		str("id", c.Src()).str("type", json0URI).bytes())
	return nil
}

// validSrc reports whether id may be a src: 1 to 64 ASCII letters,
// digits, '-' or '_' (ids the server issues are 32 hex digits).
func validSrc(id string) bool {
	if id == "" || len(id) > maxClientSrcLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		b := id[i]
		if !(b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9' || b == '-' || b == '_') {
			return false
		}
	}
	return true
}

// ping answers "pp".
func (c *conn) ping(*request) *protoError {
	c.send([]byte(`{"a":"pp"}`))
	return nil
}

// query answers "qf" and "qs": coedit has no queries.
func (c *conn) query(r *request) *protoError {
	if perr := queryID(r); perr != nil {
		return perr
	}
	return newError(CodeQueryNotSupported, "coedit does not support queries")
}

// queryUnsubscribe answers "qu", which needs no work: no query runs.
func (c *conn) queryUnsubscribe(r *request) *protoError {
	if perr := queryID(r); perr != nil {
		return perr
	}
	c.send(newMsg("qu").raw("id", r.raw("id")).bytes())
	return nil
}

// queryID checks the numeric "id" every query message carries.
func queryID(r *request) *protoError {
	v := r.raw("id")
	if v == nil {
		return badlyFormed(`a query message needs a numeric "id"`)
	}
	var f float64
	if err := json.Unmarshal(v, &f); err != nil {
		return badlyFormed(`a query message needs a numeric "id"`)
	}
	return nil
}
