package web

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"

	"github.com/coedit/coedit/collab"
	"github.com/coedit/coedit/ot"
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

// handle runs one request on the reader goroutine. Requests that need a
// document go to the hub, whose reply functions queue the answer; errors
// found here are answered at once.
func (c *conn) handle(frame []byte) {
	r, perr := parseRequest(frame)
	if perr != nil {
		c.sendError(nil, perr)
		return
	}
	if !c.msgs.Allow() {
		c.sendError(r, newError(CodeRateLimited, "too many messages per second"))
		return
	}
	switch r.action {
	case "hs":
		perr = c.handshake(r)
	case "f":
		perr = c.fetchOrSubscribe(r, false)
	case "s":
		perr = c.fetchOrSubscribe(r, true)
	case "u":
		perr = c.unsubscribe(r)
	case "bf":
		perr = c.bulk(r, false)
	case "bs":
		perr = c.bulk(r, true)
	case "bu":
		perr = c.bulkUnsubscribe(r)
	case "op":
		perr = c.submit(r)
	case "nf":
		perr = c.snapshotAt(r, false)
	case "nt":
		perr = c.snapshotAt(r, true)
	case "p":
		perr = c.presenceUpdate(r)
	case "ps":
		perr = c.presenceSubscribe(r)
	case "pu":
		perr = c.presenceUnsubscribe(r)
	case "pr":
		perr = c.presenceRequest(r)
	case "pp":
		c.send([]byte(`{"a":"pp"}`))
	case "qf", "qs":
		if perr = queryID(r); perr == nil {
			perr = newError(CodeQueryNotSupported, "coedit does not support queries")
		}
	case "qu":
		if perr = queryID(r); perr == nil {
			c.send(newMsg("qu").raw("id", r.raw("id")).bytes())
		}
	default:
		perr = newError(CodeUnknownAction, fmt.Sprintf("unknown action %q", r.action))
	}
	if perr != nil {
		c.sendError(r, perr)
	}
}

// handshake answers "hs". A client that reconnects sends the id it was
// given before; it gets it back as its src, so that its resent op is
// recognised (see Server.claim), unless this connection already used its
// src for a document request.
func (c *conn) handshake(r *request) *protoError {
	for _, f := range []string{"protocol", "protocolMinor"} {
		if v := r.raw(f); v != nil {
			if _, err := decodeUint(v); err != nil && v[0] != '"' {
				return badlyFormed(fmt.Sprintf("%q must be a number or a string", f))
			}
		}
	}
	if v := r.raw("id"); v != nil && !c.engaged {
		if id, err := decodeString(v); err == nil && validSrc(id) && id != c.Src() {
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

// addSub records a subscription to key. added is false when the conn was
// subscribed already.
func (c *conn) addSub(key collab.Key) (added bool, perr *protoError) {
	c.subMu.Lock()
	defer c.subMu.Unlock()
	if _, ok := c.subs[key]; ok {
		return false, nil
	}
	if len(c.subs) >= c.srv.opts.MaxSubscriptions {
		return false, tooManySubs(c.srv.opts.MaxSubscriptions)
	}
	c.subs[key] = struct{}{}
	return true, nil
}

func (c *conn) removeSub(key collab.Key) {
	c.subMu.Lock()
	delete(c.subs, key)
	c.subMu.Unlock()
}

func tooManySubs(max int) *protoError {
	return newError(CodeTooManySubscriptions, fmt.Sprintf("a connection may subscribe to at most %d documents and %d presence channels", max, max))
}

// fetchOrSubscribe answers "f" and "s".
func (c *conn) fetchOrSubscribe(r *request, subscribe bool) *protoError {
	o := &c.srv.opts
	key, perr := r.key(o.MaxNameLen)
	if perr != nil {
		return perr
	}
	v, hasV, perr := r.uint("v")
	if perr != nil {
		return perr
	}
	var from *uint64
	if hasV {
		from = &v
	}
	added := false
	if subscribe {
		if added, perr = c.addSub(key); perr != nil {
			return perr
		}
	}
	c.engaged = true
	reply := func(snap collab.Snapshot, err error) {
		if err != nil {
			if added {
				c.removeSub(key)
			}
			c.fail(r, err)
			return
		}
		m := newMsg(r.action).str("c", key.Collection).str("d", key.ID)
		if from == nil {
			m.raw("data", encodeSnapshot(snap))
		}
		c.send(m.bytes())
	}
	if subscribe {
		c.srv.hub.Subscribe(key, c, from, reply)
	} else {
		c.srv.hub.Fetch(key, c, from, reply)
	}
	return nil
}

// unsubscribe answers "u".
func (c *conn) unsubscribe(r *request) *protoError {
	key, perr := r.key(c.srv.opts.MaxNameLen)
	if perr != nil {
		return perr
	}
	c.removeSub(key)
	c.srv.hub.Unsubscribe(key, c, func(err error) {
		if err != nil {
			c.fail(r, err)
			return
		}
		c.send(newMsg("u").str("c", key.Collection).str("d", key.ID).bytes())
	})
	return nil
}

// encodeSnapshot returns ShareDB's snapshot data {v,data,type}: type null
// and no data for a document that does not exist.
func encodeSnapshot(s collab.Snapshot) []byte {
	m := &msg{b: make([]byte, 0, 48+len(s.Data))}
	m.b = append(m.b, `{"v":`...)
	m.b = appendUint(m.b, s.Version)
	if s.Type == "" {
		m.b = append(m.b, `,"type":null}`...)
		return m.b
	}
	m.str("data", s.Data).str("type", s.Type)
	return append(m.b, '}')
}

// bulkEntry is one document of a bulk request.
type bulkEntry struct {
	id    string
	from  *uint64
	added bool // subscribe: newly subscribed by this request
}

// parseBulk reads "b": an array of ids, or an object mapping ids to
// versions (versioned is true).
func (c *conn) parseBulk(r *request) (entries []bulkEntry, versioned bool, perr *protoError) {
	o := &c.srv.opts
	b := r.raw("b")
	if b == nil {
		return nil, false, badlyFormed(`"b" is required: an array of ids or an object of id to version`)
	}
	if err := ot.CheckSurrogates(b); err != nil {
		return nil, false, badlyFormed(`"b": ` + err.Error())
	}
	seen := make(map[string]bool)
	addID := func(id string) *protoError {
		switch {
		case id == "":
			return badlyFormed(`"b": an id must not be empty`)
		case len(id) > o.MaxNameLen:
			return badlyFormed(fmt.Sprintf(`"b": an id is longer than %d bytes`, o.MaxNameLen))
		case seen[id]:
			return badlyFormed(fmt.Sprintf(`"b": id %q appears twice`, id))
		}
		seen[id] = true
		return nil
	}
	switch b[0] {
	case '[':
		var ids []json.RawMessage
		if err := json.Unmarshal(b, &ids); err != nil {
			return nil, false, badlyFormed(`"b": ` + err.Error())
		}
		for _, raw := range ids {
			id, err := decodeString(raw)
			if err != nil {
				return nil, false, badlyFormed(`"b": ` + err.Error())
			}
			if perr := addID(id); perr != nil {
				return nil, false, perr
			}
			entries = append(entries, bulkEntry{id: id})
		}
	case '{':
		versioned = true
		var vs map[string]json.RawMessage
		if err := json.Unmarshal(b, &vs); err != nil {
			return nil, false, badlyFormed(`"b": ` + err.Error())
		}
		for id, raw := range vs {
			if perr := addID(id); perr != nil {
				return nil, false, perr
			}
			v, err := decodeUint(raw)
			if err != nil {
				return nil, false, badlyFormed(fmt.Sprintf(`"b": version of %q: %v`, id, err))
			}
			entries = append(entries, bulkEntry{id: id, from: &v})
		}
	default:
		return nil, false, badlyFormed(`"b" must be an array of ids or an object of id to version`)
	}
	if len(entries) > o.MaxSubscriptions {
		return nil, false, tooManySubs(o.MaxSubscriptions)
	}
	return entries, versioned, nil
}

// bulk answers "bf" and "bs". With an array of ids the reply carries each
// document's snapshot, or its own error; with an id-to-version object
// each document's missing ops are sent first and the reply is bare, or
// the whole request fails with the first error.
func (c *conn) bulk(r *request, subscribe bool) *protoError {
	o := &c.srv.opts
	coll, perr := r.needStr("c", o.MaxNameLen)
	if perr != nil {
		return perr
	}
	entries, versioned, perr := c.parseBulk(r)
	if perr != nil {
		return perr
	}
	if subscribe {
		c.subMu.Lock()
		n := len(c.subs)
		for i := range entries {
			if _, ok := c.subs[collab.Key{Collection: coll, ID: entries[i].id}]; !ok {
				entries[i].added = true
				n++
			}
		}
		if n > o.MaxSubscriptions {
			c.subMu.Unlock()
			return tooManySubs(o.MaxSubscriptions)
		}
		for _, e := range entries {
			c.subs[collab.Key{Collection: coll, ID: e.id}] = struct{}{}
		}
		c.subMu.Unlock()
	}
	c.engaged = true
	if len(entries) == 0 {
		c.send(newMsg(r.action).str("c", coll).raw("b", r.raw("b")).bytes())
		return nil
	}
	agg := &bulkReply{c: c, r: r, coll: coll, entries: entries, versioned: versioned,
		snaps: make([]collab.Snapshot, len(entries)), errs: make([]error, len(entries)), left: len(entries)}
	for i, e := range entries {
		key := collab.Key{Collection: coll, ID: e.id}
		reply := func(snap collab.Snapshot, err error) { agg.done(i, snap, err) }
		if subscribe {
			c.srv.hub.Subscribe(key, c, e.from, reply)
		} else {
			c.srv.hub.Fetch(key, c, e.from, reply)
		}
	}
	return nil
}

// bulkReply collects the per-document replies of a bulk request, which
// come from several session goroutines, and sends one reply after the
// last.
type bulkReply struct {
	c         *conn
	r         *request
	coll      string
	entries   []bulkEntry
	versioned bool

	mu    sync.Mutex
	snaps []collab.Snapshot
	errs  []error
	left  int
}

func (a *bulkReply) done(i int, snap collab.Snapshot, err error) {
	a.mu.Lock()
	a.snaps[i], a.errs[i] = snap, err
	a.left--
	last := a.left == 0
	a.mu.Unlock()
	if last {
		a.finish()
	}
}

func (a *bulkReply) finish() {
	c, r := a.c, a.r
	for i, err := range a.errs {
		if err == nil {
			continue
		}
		if isClosed(err) {
			c.fail(r, err)
			return
		}
		if a.entries[i].added {
			c.removeSub(collab.Key{Collection: a.coll, ID: a.entries[i].id})
		}
	}
	if a.versioned {
		for _, err := range a.errs {
			if err != nil {
				c.fail(r, err)
				return
			}
		}
		c.send(newMsg(r.action).str("c", a.coll).raw("b", r.raw("b")).bytes())
		return
	}
	m := newMsg(r.action).str("c", a.coll)
	m.key("data")
	m.b = append(m.b, '{')
	for i, e := range a.entries {
		if i > 0 {
			m.b = append(m.b, ',')
		}
		m.b = appendString(m.b, e.id)
		m.b = append(m.b, ':')
		if err := a.errs[i]; err != nil {
			pe, internal := toProtoError(err)
			if internal {
				c.log.Error("bulk request failed", "action", r.action, "doc", a.coll+"/"+e.id, "err", err)
			}
			m.b = append(m.b, `{"error":`...)
			m.b = append(m.b, errorObject(pe)...)
			m.b = append(m.b, '}')
		} else {
			m.b = append(m.b, encodeSnapshot(a.snaps[i])...)
		}
	}
	m.b = append(m.b, '}')
	c.send(m.bytes())
}

// bulkUnsubscribe answers "bu".
func (c *conn) bulkUnsubscribe(r *request) *protoError {
	coll, perr := r.needStr("c", c.srv.opts.MaxNameLen)
	if perr != nil {
		return perr
	}
	entries, versioned, perr := c.parseBulk(r)
	if perr != nil {
		return perr
	}
	if versioned {
		return badlyFormed(`"b" of "bu" must be an array of ids`)
	}
	for _, e := range entries {
		key := collab.Key{Collection: coll, ID: e.id}
		c.removeSub(key)
		c.srv.hub.Unsubscribe(key, c, nil)
	}
	c.send(newMsg("bu").str("c", coll).raw("b", r.raw("b")).bytes())
	return nil
}

// submit answers "op": the hub sends the ops the submission is
// transformed over, then this replies with the ack.
func (c *conn) submit(r *request) *protoError {
	o := &c.srv.opts
	key, perr := r.key(o.MaxNameLen)
	if perr != nil {
		return perr
	}
	s, perr := parseSubmission(r, o.MaxOpSize)
	if perr != nil {
		return perr
	}
	src, hasSrc, perr := r.str("src", maxClientSrcLen)
	if perr != nil {
		return perr
	}
	if hasSrc && src != c.Src() {
		return newError(CodeSrcMismatch, fmt.Sprintf("op src %q is not this connection's src %q (send it in the handshake to reclaim it)", src, c.Src()))
	}
	if s.Seq == 0 {
		return badlyFormed(`"seq" is required: a positive integer`)
	}
	if !c.ops.Allow() {
		return newError(CodeRateLimited, fmt.Sprintf("more than %g ops per second", o.OpsPerSecond))
	}
	s.Src = c.Src()
	c.engaged = true
	acked := c.srv.met.startSubmit()
	c.srv.hub.Submit(key, c, s, func(res collab.SubmitResult, err error) {
		if err != nil {
			c.fail(r, err)
			return
		}
		acked()
		c.send(newMsg("op").str("c", key.Collection).str("d", key.ID).uint("v", res.Version).
			str("src", s.Src).uint("seq", s.Seq).bytes())
	})
	return nil
}

// parseSubmission reads the op fields shared by the WebSocket and the
// HTTP API: v (null for the head), seq, and exactly one of op, create
// and del. It leaves Src to the caller.
func parseSubmission(r *request, maxOpSize int) (collab.Submission, *protoError) {
	var s collab.Submission
	var perr *protoError
	if s.Version, s.HasVersion, perr = r.uint("v"); perr != nil {
		return s, perr
	}
	seq, hasSeq, perr := r.uint("seq")
	if perr != nil {
		return s, perr
	}
	if hasSeq && seq == 0 {
		return s, badlyFormed(`"seq" must be a positive integer`)
	}
	s.Seq = seq
	_, hasOp := r.fields["op"]
	create, del := r.raw("create"), r.raw("del")
	if n := btoi(hasOp) + btoi(create != nil) + btoi(del != nil); n != 1 {
		return s, newError(CodeOpBadlyFormed, "an op message needs exactly one of op, create and del")
	}
	switch {
	case hasOp:
		raw := r.fields["op"]
		if len(raw) > maxOpSize {
			return s, opTooLarge("op", len(raw), maxOpSize)
		}
		op, err := ot.Decode(raw)
		if err != nil {
			return s, newError(CodeOpBadlyFormed, err.Error())
		}
		s.Kind, s.Op = collab.OpEdit, op
	case create != nil:
		if len(create) > maxOpSize {
			return s, opTooLarge("create", len(create), maxOpSize)
		}
		var f map[string]json.RawMessage
		if err := json.Unmarshal(create, &f); err != nil || f == nil {
			return s, newError(CodeOpBadlyFormed, `"create" must be an object {"type","data"}`)
		}
		cr := request{fields: f}
		typ, ok, perr := cr.str("type", 256)
		if perr != nil || !ok {
			return s, newError(CodeOpBadlyFormed, `"create.type" must be a type name or URI`)
		}
		if typ != ot.URI && typ != ot.Name {
			return s, newError(CodeTypeNotRecognized, fmt.Sprintf("unknown type %q: coedit serves %s", typ, ot.URI))
		}
		if data := cr.raw("data"); data != nil {
			text, err := decodeString(data)
			if err != nil {
				return s, newError(CodeOpBadlyFormed, `"create.data" of a text-unicode document must be a string: `+err.Error())
			}
			s.Data = text
		}
		s.Kind, s.Type = collab.OpCreate, typ
	default:
		if string(del) != "true" {
			return s, newError(CodeOpBadlyFormed, `"del" must be true`)
		}
		s.Kind = collab.OpDelete
	}
	return s, nil
}

func opTooLarge(what string, n, max int) *protoError {
	return newError(CodeOpTooLarge, fmt.Sprintf("%s is %d bytes, more than the %d allowed", what, n, max))
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// snapshotAt answers "nf" (a version) and "nt" (a timestamp) on a
// goroutine of its own: rebuilding an old version may replay many ops,
// and the reader must keep reading meanwhile (pongs included).
func (c *conn) snapshotAt(r *request, byTime bool) *protoError {
	o := &c.srv.opts
	key, perr := r.key(o.MaxNameLen)
	if perr != nil {
		return perr
	}
	id := r.raw("id")
	if id == nil {
		return badlyFormed(`"id" is required`)
	}
	field := "v"
	if byTime {
		field = "ts"
	}
	at, hasAt, perr := r.uint(field)
	if perr != nil {
		return perr
	}
	c.sem <- struct{}{}
	c.work.Add(1)
	go func() {
		defer c.work.Done()
		defer func() { <-c.sem }()
		ctx, cancel := context.WithTimeout(c.ctx, o.RequestTimeout)
		defer cancel()
		var snap collab.Snapshot
		var err error
		switch {
		case !hasAt:
			snap, err = c.srv.hub.FetchWait(ctx, key)
		case byTime:
			snap, err = c.srv.hub.SnapshotAtTime(ctx, key, int64(at))
		default:
			snap, err = c.srv.hub.SnapshotAt(ctx, key, at)
		}
		if err != nil {
			c.fail(r, err)
			return
		}
		m := newMsg(r.action).raw("id", id).uint("v", snap.Version)
		if snap.Type == "" {
			m.null("type")
		} else {
			m.str("type", snap.Type).str("data", snap.Data)
		}
		c.send(m.null("m").bytes())
	}()
	return nil
}

// channel reads a presence channel "ch".
func (c *conn) channel(r *request) (string, *protoError) {
	return r.needStr("ch", 2*c.srv.opts.MaxNameLen+1)
}

// presenceUpdate answers "p": the hub relays it to the channel's other
// subscribers (transformed to the head for text presence on a document)
// and this echoes it, as relayed, to the sender.
func (c *conn) presenceUpdate(r *request) *protoError {
	o := &c.srv.opts
	ch, perr := c.channel(r)
	if perr != nil {
		return perr
	}
	id, perr := r.needStr("id", o.MaxNameLen)
	if perr != nil {
		return perr
	}
	pv, _, perr := r.uint("pv")
	if perr != nil {
		return perr
	}
	p := collab.PresenceUpdate{Channel: ch, ID: id, Src: c.Src(), Seq: pv}
	coll, hasC, perr := r.str("c", o.MaxNameLen)
	if perr != nil {
		return perr
	}
	doc, hasD, perr := r.str("d", o.MaxNameLen)
	if perr != nil {
		return perr
	}
	if hasC != hasD {
		return badlyFormed(`document presence needs both "c" and "d"`)
	}
	if hasC {
		p.Doc = &collab.Key{Collection: coll, ID: doc}
		v, hasV, perr := r.uint("v")
		if perr != nil {
			return perr
		}
		if !hasV {
			return badlyFormed(`document presence needs "v"`)
		}
		p.Version = v
		t, hasT, perr := r.str("t", 256)
		if perr != nil {
			return perr
		}
		if hasT {
			if t != ot.URI && t != ot.Name {
				return newError(CodePresenceUnsupported, fmt.Sprintf("type %q does not support presence", t))
			}
			p.Type = ot.URI
		}
	}
	if raw := r.raw("p"); raw != nil {
		if len(raw) > o.MaxOpSize {
			return opTooLarge("presence", len(raw), o.MaxOpSize)
		}
		if p.Type == ot.URI {
			if tp, err := ot.DecodePresence(raw); err == nil {
				p.Text = &tp
			}
		}
		if p.Text == nil {
			p.Raw = raw
		}
	}
	c.engaged = true
	c.srv.hub.Presence(c, p, func(up collab.PresenceUpdate, err error) {
		if err != nil {
			c.fail(r, err)
			return
		}
		c.send(encodePresence(up))
	})
	return nil
}

// presenceSubscribe answers "ps".
func (c *conn) presenceSubscribe(r *request) *protoError {
	ch, perr := c.channel(r)
	if perr != nil {
		return perr
	}
	if _, _, perr := r.uint("seq"); perr != nil {
		return perr
	}
	c.subMu.Lock()
	_, had := c.presence[ch]
	if !had && len(c.presence) >= c.srv.opts.MaxSubscriptions {
		c.subMu.Unlock()
		return tooManySubs(c.srv.opts.MaxSubscriptions)
	}
	c.presence[ch] = struct{}{}
	c.subMu.Unlock()
	c.engaged = true
	c.srv.hub.SubscribePresence(ch, c, func(err error) {
		if err != nil {
			if !had {
				c.subMu.Lock()
				delete(c.presence, ch)
				c.subMu.Unlock()
			}
			c.fail(r, err)
			return
		}
		c.send(presenceAck(r, ch))
	})
	return nil
}

// presenceUnsubscribe answers "pu".
func (c *conn) presenceUnsubscribe(r *request) *protoError {
	ch, perr := c.channel(r)
	if perr != nil {
		return perr
	}
	if _, _, perr := r.uint("seq"); perr != nil {
		return perr
	}
	c.subMu.Lock()
	delete(c.presence, ch)
	c.subMu.Unlock()
	c.srv.hub.UnsubscribePresence(ch, c, func(err error) {
		if err != nil {
			c.fail(r, err)
			return
		}
		c.send(presenceAck(r, ch))
	})
	return nil
}

// presenceAck is the reply to "ps" and "pu": {a,ch,seq}.
func presenceAck(r *request, ch string) []byte {
	m := newMsg(r.action).str("ch", ch)
	if seq := r.raw("seq"); seq != nil {
		m.raw("seq", seq)
	}
	return m.bytes()
}

// presenceRequest answers "pr": the channel's other subscribers are asked
// to re-send their presence. The reply is a bare {"a":"pr"}, as ShareDB
// sends it.
func (c *conn) presenceRequest(r *request) *protoError {
	ch, perr := c.channel(r)
	if perr != nil {
		return perr
	}
	c.engaged = true
	c.srv.hub.RequestPresence(ch, c)
	c.send([]byte(`{"a":"pr"}`))
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
