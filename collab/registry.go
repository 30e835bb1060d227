package collab

import "fmt"

// This file holds the Hub's registry of what each connection joined: the
// documents it subscribed to, the presence channels it subscribed to or
// posted on, and the documents of its presence. It is the one owner of a
// connection's subscriptions and of their limit, Options.MaxSubscriptions;
// web keeps no copy. Disconnect walks it to undo everything a closing
// connection left behind. Everything here is guarded by Hub.pmu.
//
// A document's session keeps its own subscriber set, which is what it
// broadcasts to. The two agree because both follow the same requests in
// the session's order: a Subscribe's registration here is settled by its
// reply, which the session sends after it has added the connection (on
// success) or removed it (on failure).

// connState is what the Hub remembers about one connection.
type connState struct {
	// docs are the documents c subscribed to or is subscribing to.
	docs map[Key]*docJoin
	// presDocs maps a channel to the document of c's presence on it.
	presDocs map[string]Key
	// channels are the presence channels c subscribed to; with docs,
	// what Options.MaxSubscriptions bounds.
	channels map[string]struct{}
	// posted are the channels c sent untyped presence on, to clear it
	// when c leaves.
	posted map[string]struct{}
}

// docJoin is c's registration on one document. A Subscribe registers
// before its request reaches the session, so that the limit counts
// subscribes still in flight; its reply settles the registration.
type docJoin struct {
	// pending counts this registration's Subscribes not yet answered.
	pending int
}

func (cs *connState) empty() bool {
	return len(cs.docs) == 0 && len(cs.presDocs) == 0 && len(cs.channels) == 0 && len(cs.posted) == 0
}

// conn returns c's state, creating it. h.pmu must be held.
func (h *Hub) conn(c Conn) *connState {
	cs := h.conns[c]
	if cs == nil {
		cs = &connState{
			docs:     make(map[Key]*docJoin),
			presDocs: make(map[string]Key),
			channels: make(map[string]struct{}),
			posted:   make(map[string]struct{}),
		}
		h.conns[c] = cs
	}
	return cs
}

// gcConn forgets c when nothing about it remains. h.pmu must be held.
func (h *Hub) gcConn(c Conn, cs *connState) {
	if cs != nil && cs.empty() {
		delete(h.conns, c)
	}
}

// MaxSubscriptions returns the most documents, and separately the most
// presence channels, one connection may subscribe to
// (Options.MaxSubscriptions with its default applied).
func (h *Hub) MaxSubscriptions() int { return h.opts.MaxSubscriptions }

// tooManySubscriptions is the error for a subscribe past the limit.
func (h *Hub) tooManySubscriptions() error {
	max := h.opts.MaxSubscriptions
	return fmt.Errorf("%w: a connection may subscribe to at most %d documents and %d presence channels", ErrTooManySubscriptions, max, max)
}

// joinDocs registers c on every key for a Subscribe, or on none when the
// keys c has not joined yet would take it past Options.MaxSubscriptions.
// Each returned registration must be settled once, by settleDoc.
func (h *Hub) joinDocs(c Conn, keys []Key) ([]*docJoin, error) {
	h.pmu.Lock()
	defer h.pmu.Unlock()
	cs := h.conn(c)
	fresh := make(map[Key]struct{})
	for _, k := range keys {
		if cs.docs[k] == nil {
			fresh[k] = struct{}{}
		}
	}
	if len(cs.docs)+len(fresh) > h.opts.MaxSubscriptions {
		h.gcConn(c, cs)
		return nil, h.tooManySubscriptions()
	}
	joins := make([]*docJoin, len(keys))
	for i, k := range keys {
		j := cs.docs[k]
		if j == nil {
			j = &docJoin{}
			cs.docs[k] = j
		}
		j.pending++
		joins[i] = j
	}
	return joins, nil
}

// settleDoc records the outcome of a Subscribe that registered j on key:
// the rollback of a failed subscribe, in one place. A session that fails
// a subscribe leaves c out of the document, so a failure drops the
// registration, unless another Subscribe to key is still in flight (its
// own reply, which comes later, decides). A registration an Unsubscribe
// replaced is no longer j and is left alone. (A subscribe the closing hub
// refuses never reached the session; dropping its registration then is
// harmless, as every session is stopping.)
func (h *Hub) settleDoc(c Conn, key Key, j *docJoin, err error) {
	h.pmu.Lock()
	defer h.pmu.Unlock()
	cs := h.conns[c]
	if cs == nil || cs.docs[key] != j {
		return
	}
	j.pending--
	if err != nil && j.pending == 0 {
		delete(cs.docs, key)
		h.gcConn(c, cs)
	}
}

// leaveDoc forgets c's subscription to key and its presence there.
func (h *Hub) leaveDoc(c Conn, key Key) {
	h.pmu.Lock()
	defer h.pmu.Unlock()
	cs := h.conns[c]
	if cs == nil {
		return
	}
	delete(cs.docs, key)
	for ch, k := range cs.presDocs {
		if k == key {
			delete(cs.presDocs, ch)
		}
	}
	h.gcConn(c, cs)
}

// Disconnect removes c from every document and presence channel it
// joined, clearing its presence. Call it once when a connection closes,
// after its last request.
func (h *Hub) Disconnect(c Conn) {
	if c == nil {
		return
	}
	type delivery struct {
		to []Conn
		p  PresenceUpdate
	}
	var out []delivery
	h.pmu.Lock()
	cs := h.conns[c]
	delete(h.conns, c)
	if cs == nil {
		h.pmu.Unlock()
		return
	}
	names := make(map[string]struct{}, len(cs.channels)+len(cs.posted))
	for name := range cs.channels {
		names[name] = struct{}{}
	}
	for name := range cs.posted {
		names[name] = struct{}{}
	}
	for name := range names {
		ch := h.channels[name]
		if ch == nil {
			continue
		}
		delete(ch.subs, c)
		lasts := ch.last[c]
		delete(ch.last, c)
		if len(lasts) > 0 {
			to := ch.others(c, c.Src())
			for _, p := range lasts {
				out = append(out, delivery{to, cleared(p)})
			}
		}
		h.gcChannel(name)
	}
	keys := make(map[Key]struct{}, len(cs.docs)+len(cs.presDocs))
	for k := range cs.docs {
		keys[k] = struct{}{}
	}
	for _, k := range cs.presDocs {
		keys[k] = struct{}{}
	}
	h.pmu.Unlock()
	for _, d := range out {
		for _, t := range d.to {
			t.SendPresence(d.p)
		}
	}
	for k := range keys {
		// Only running sessions can hold c; a stopped one had no
		// subscribers, so there is nothing to undo.
		_ = h.send(k, &job{kind: jobDisconnect, conn: c}, false)
	}
}
