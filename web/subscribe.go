package web

import (
	"encoding/json"
	"fmt"
	"sync"

	"github.com/coedit/coedit/collab"
	"github.com/coedit/coedit/ot"
)

// This file answers the document requests that fetch or join: f, s, u and
// their bulk forms bf, bs, bu. Which documents a connection joined, and
// the limit on them, belong to the Hub (collab.Options.MaxSubscriptions);
// a subscribe that fails is undone there.

// fetchOrSubscribe answers "f" and "s".
func (c *conn) fetchOrSubscribe(r *request, subscribe bool) *protoError {
	key, perr := r.key(c.srv.opts.MaxNameLen)
	if perr != nil {
		return perr
	}
	if perr := c.mayRead(key); perr != nil {
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
	kept := r.keep() // the reply's, after handle returns
	reply := func(snap collab.Snapshot, err error) {
		if err != nil {
			c.fail(kept, err)
			return
		}
		m := newMsg(kept.action).str("c", key.Collection).str("d", key.ID)
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
	kept := r.keep() // the reply's, after handle returns
	c.srv.hub.Unsubscribe(key, c, func(err error) {
		if err != nil {
			c.fail(kept, err)
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

// tooManySubs is the error for a bulk request naming more documents than
// a connection may subscribe to.
func tooManySubs(max int) *protoError {
	return newError(CodeTooManySubscriptions, fmt.Sprintf("a connection may subscribe to at most %d documents and %d presence channels", max, max))
}

// parseBulk reads "b" of a bulk request on collection coll: an array of
// ids, or an object mapping ids to versions (versioned is true). In an
// array, an id that is not a name coedit serves (checkName) is an entry
// of its own with its error in bad, by index, as ShareDB's bulk replies
// carry an error per document: one such id refused the whole request,
// and with it every good document a sharedb client's bulk named. In an
// object, which is refused whole at any entry's error (bulk), it refuses
// the request.
func (c *conn) parseBulk(r *request, coll string) (docs []collab.BulkDoc, versioned bool, bad map[int]*protoError, perr *protoError) {
	maxName := c.srv.opts.MaxNameLen
	b := r.raw("b")
	if b == nil {
		return nil, false, nil, badlyFormed(`"b" is required: an array of ids or an object of id to version`)
	}
	if err := ot.CheckSurrogates(b); err != nil {
		return nil, false, nil, badlyFormed(`"b": ` + err.Error())
	}
	seen := make(map[string]bool)
	addID := func(id string) *protoError {
		if seen[id] {
			return badlyFormed(fmt.Sprintf(`"b": id %q appears twice`, id))
		}
		seen[id] = true
		return nil
	}
	switch b[0] {
	case '[':
		var ids []json.RawMessage
		if err := json.Unmarshal(b, &ids); err != nil {
			return nil, false, nil, badlyFormed(`"b": ` + err.Error())
		}
		for _, raw := range ids {
			id, err := decodeString(raw)
			if err != nil {
				return nil, false, nil, badlyFormed(`"b": ` + err.Error())
			}
			if perr := addID(id); perr != nil {
				return nil, false, nil, perr
			}
			if perr := checkName(`an id`, id, maxName); perr != nil {
				if bad == nil {
					bad = make(map[int]*protoError)
				}
				bad[len(docs)] = perr
			}
			docs = append(docs, collab.BulkDoc{Key: collab.Key{Collection: coll, ID: id}})
		}
	case '{':
		versioned = true
		var vs map[string]json.RawMessage
		if err := json.Unmarshal(b, &vs); err != nil {
			return nil, false, nil, badlyFormed(`"b": ` + err.Error())
		}
		for id, raw := range vs {
			if perr := checkName(`"b": an id`, id, maxName); perr != nil {
				return nil, false, nil, perr
			}
			v, err := decodeUint(raw)
			if err != nil {
				return nil, false, nil, badlyFormed(fmt.Sprintf(`"b": version of %q: %v`, id, err))
			}
			docs = append(docs, collab.BulkDoc{Key: collab.Key{Collection: coll, ID: id}, From: &v})
		}
	default:
		return nil, false, nil, badlyFormed(`"b" must be an array of ids or an object of id to version`)
	}
	// No bulk request may name more documents than a connection can
	// join, so one request cannot fan out without bound.
	if max := c.srv.hub.MaxSubscriptions(); len(docs) > max {
		return nil, false, nil, tooManySubs(max)
	}
	return docs, versioned, bad, nil
}

// bulk answers "bf" and "bs". With an array of ids the reply carries each
// document's snapshot, or its own error; with an id-to-version object
// each document's missing ops are sent first and the reply is bare, or
// the whole request fails with the first error. A bulk subscribe joins
// every document or, past the limit, none.
//
// Each entry is checked: with an array, an entry whose id is not a name
// coedit serves gets its own ERR_MESSAGE_BADLY_FORMED, and one the token
// may not read its own ERR_FORBIDDEN (neither is read nor joined) while
// the others are served; an id-to-version object with such an entry is
// refused whole, before anything is read.
func (c *conn) bulk(r *request, subscribe bool) *protoError {
	coll, perr := r.name("c", c.srv.opts.MaxNameLen)
	if perr != nil {
		return perr
	}
	docs, versioned, bad, perr := c.parseBulk(r, coll)
	if perr != nil {
		return perr
	}
	if len(docs) == 0 {
		c.send(newMsg(r.action).str("c", coll).raw("b", r.raw("b")).bytes())
		return nil
	}
	agg := &bulkReply{c: c, r: r.keep(), coll: coll, docs: docs, versioned: versioned,
		snaps: make([]collab.Snapshot, len(docs)), errs: make([]error, len(docs))}
	// allowed holds the indexes of the entries the token may read.
	allowed := make([]int, 0, len(docs))
	for i, d := range docs {
		if perr := bad[i]; perr != nil {
			agg.errs[i] = perr
			continue
		}
		if perr := c.mayRead(d.Key); perr != nil {
			if versioned {
				return perr
			}
			agg.errs[i] = perr
			continue
		}
		allowed = append(allowed, i)
	}
	agg.left = len(allowed)
	if len(allowed) == 0 {
		agg.finish()
		return nil
	}
	if subscribe {
		join := make([]collab.BulkDoc, len(allowed))
		for j, i := range allowed {
			join[j] = docs[i]
		}
		if err := c.srv.hub.SubscribeBulk(join, c, func(j int, snap collab.Snapshot, err error) { agg.done(allowed[j], snap, err) }); err != nil {
			pe, _ := toProtoError(err)
			return pe
		}
		return nil
	}
	for _, i := range allowed {
		c.srv.hub.Fetch(docs[i].Key, c, docs[i].From, func(snap collab.Snapshot, err error) { agg.done(i, snap, err) })
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
	docs      []collab.BulkDoc
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
	// A closing hub closes the connection (see conn.fail), whichever
	// document found it closing.
	for _, err := range a.errs {
		if err != nil && isClosed(err) {
			c.fail(r, err)
			return
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
	for i, d := range a.docs {
		if i > 0 {
			m.b = append(m.b, ',')
		}
		m.b = appendString(m.b, d.Key.ID)
		m.b = append(m.b, ':')
		if err := a.errs[i]; err != nil {
			pe, internal := toProtoError(err)
			if internal {
				c.log().Error("bulk request failed", "action", r.action, "doc", d.Key.String(), "err", err)
			}
			c.srv.met.countError(pe.Code)
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
	coll, perr := r.name("c", c.srv.opts.MaxNameLen)
	if perr != nil {
		return perr
	}
	docs, versioned, bad, perr := c.parseBulk(r, coll)
	if perr != nil {
		return perr
	}
	if versioned {
		return badlyFormed(`"b" of "bu" must be an array of ids`)
	}
	for i, d := range docs {
		if bad[i] == nil { // a name never served was never joined
			c.srv.hub.Unsubscribe(d.Key, c, nil)
		}
	}
	c.send(newMsg("bu").str("c", coll).raw("b", r.raw("b")).bytes())
	return nil
}
