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

// action is how the dispatcher runs one message type.
type action struct {
	// run answers the request, or returns the error to answer it with.
	run func(c *conn, r *request) *protoError
	// fixesSrc marks the actions that involve a document or a presence
	// channel. Once one has been accepted, the connection's src is
	// fixed: the Hub has seen the conn (collab.Conn.Src must not change
	// from then on), and ops or presence already carry the src.
	fixesSrc bool
}

// actions maps each message type ("a") the server serves to its handler:
// dispatch.go (hs, pp, queries), subscribe.go (f, s, u, bf, bs, bu),
// submit.go (op), history.go (nf, nt) and presence.go (p, ps, pu, pr).
var actions = map[string]action{
	"hs": {run: (*conn).handshake},
	"f":  {run: func(c *conn, r *request) *protoError { return c.fetchOrSubscribe(r, false) }, fixesSrc: true},
	"s":  {run: func(c *conn, r *request) *protoError { return c.fetchOrSubscribe(r, true) }, fixesSrc: true},
	"u":  {run: (*conn).unsubscribe},
	"bf": {run: func(c *conn, r *request) *protoError { return c.bulk(r, false) }, fixesSrc: true},
	"bs": {run: func(c *conn, r *request) *protoError { return c.bulk(r, true) }, fixesSrc: true},
	"bu": {run: (*conn).bulkUnsubscribe},
	"op": {run: (*conn).submit, fixesSrc: true},
	"nf": {run: func(c *conn, r *request) *protoError { return c.snapshotAt(r, false) }},
	"nt": {run: func(c *conn, r *request) *protoError { return c.snapshotAt(r, true) }},
	"p":  {run: (*conn).presenceUpdate, fixesSrc: true},
	"ps": {run: (*conn).presenceSubscribe, fixesSrc: true},
	"pu": {run: (*conn).presenceUnsubscribe},
	"pr": {run: (*conn).presenceRequest, fixesSrc: true},
	"pp": {run: (*conn).ping},
	"qf": {run: (*conn).query},
	"qs": {run: (*conn).query},
	"qu": {run: (*conn).queryUnsubscribe},
}

// handle runs one request on the reader goroutine. Requests that need a
// document go to the hub, whose reply functions queue the answer; errors
// found here are answered at once.
// limited says the frame found the message bucket empty: it is refused
// (see conn.refuse), echoed when it parses.
func (c *conn) handle(frame []byte, limited bool) {
	r, perr := parseRequest(frame)
	if perr != nil || limited {
		c.refuse(r, "json", limited, perr)
		return
	}
	a, ok := actions[r.action]
	if !ok {
		c.sendError(r, newError(CodeUnknownAction, fmt.Sprintf("unknown action %q", r.action)))
		return
	}
	if perr := a.run(c, r); perr != nil {
		c.sendError(r, perr)
		return
	}
	if a.fixesSrc {
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
