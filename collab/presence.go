package collab

import "fmt"

// This file holds the Hub's registry of connections and presence
// channels. Document presence is transformed and relayed by the
// document's session (see session_presence.go); channel membership and
// untyped presence live here, under Hub.pmu.

// connState is what the Hub remembers about one connection so that
// Disconnect can undo it.
type connState struct {
	// docs are the documents c subscribed to.
	docs map[Key]struct{}
	// presDocs maps a channel to the document of c's presence on it.
	presDocs map[string]Key
	// channels are the presence channels c subscribed to or sent
	// untyped presence on.
	channels map[string]struct{}
}

func (cs *connState) empty() bool {
	return len(cs.docs) == 0 && len(cs.presDocs) == 0 && len(cs.channels) == 0
}

// channel is one presence channel.
type channel struct {
	subs map[Conn]struct{}
	// last holds each connection's latest untyped presence, by presence
	// id, to clear it when the connection leaves.
	last map[Conn]map[string]PresenceUpdate
}

// conn returns c's state, creating it. h.pmu must be held.
func (h *Hub) conn(c Conn) *connState {
	cs := h.conns[c]
	if cs == nil {
		cs = &connState{
			docs:     make(map[Key]struct{}),
			presDocs: make(map[string]Key),
			channels: make(map[string]struct{}),
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

// channel returns the named channel, creating it. h.pmu must be held.
func (h *Hub) channel(name string) *channel {
	ch := h.channels[name]
	if ch == nil {
		ch = &channel{subs: make(map[Conn]struct{}), last: make(map[Conn]map[string]PresenceUpdate)}
		h.channels[name] = ch
	}
	return ch
}

// gcChannel drops a channel nobody uses. h.pmu must be held.
func (h *Hub) gcChannel(name string) {
	if ch := h.channels[name]; ch != nil && len(ch.subs) == 0 && len(ch.last) == 0 {
		delete(h.channels, name)
	}
}

// others returns the subscribers of ch other than c and other than
// connections with src (a src never receives its own presence). h.pmu
// must be held.
func (ch *channel) others(c Conn, src string) []Conn {
	out := make([]Conn, 0, len(ch.subs))
	for t := range ch.subs {
		if t != c && (src == "" || t.Src() != src) {
			out = append(out, t)
		}
	}
	return out
}

// presenceTargets returns the subscribers of channel that should receive
// a presence update from c (with src).
func (h *Hub) presenceTargets(channel string, c Conn, src string) []Conn {
	h.pmu.Lock()
	defer h.pmu.Unlock()
	ch := h.channels[channel]
	if ch == nil {
		return nil
	}
	return ch.others(c, src)
}

func (h *Hub) trackDoc(c Conn, key Key) {
	h.pmu.Lock()
	h.conn(c).docs[key] = struct{}{}
	h.pmu.Unlock()
}

func (h *Hub) untrackDoc(c Conn, key Key) {
	if c == nil {
		return
	}
	h.pmu.Lock()
	if cs := h.conns[c]; cs != nil {
		delete(cs.docs, key)
		for ch, k := range cs.presDocs {
			if k == key {
				delete(cs.presDocs, ch)
			}
		}
		h.gcConn(c, cs)
	}
	h.pmu.Unlock()
}

// cleared returns p with its value removed (ShareDB's p: null).
func cleared(p PresenceUpdate) PresenceUpdate {
	p.Text = nil
	p.Raw = nil
	return p
}

// SubscribePresence joins c to a presence channel and sends every other
// subscriber a presence request. reply may be nil.
func (h *Hub) SubscribePresence(channel string, c Conn, reply func(error)) {
	if reply == nil {
		reply = func(error) {}
	}
	if err := h.usable(); err != nil {
		reply(err)
		return
	}
	if channel == "" || c == nil {
		reply(fmt.Errorf("%w: subscribe needs a channel and a connection", ErrInvalidPresence))
		return
	}
	h.pmu.Lock()
	ch := h.channel(channel)
	ch.subs[c] = struct{}{}
	h.conn(c).channels[channel] = struct{}{}
	targets := ch.others(c, c.Src())
	h.pmu.Unlock()
	for _, t := range targets {
		t.SendPresenceRequest(channel)
	}
	reply(nil)
}

// UnsubscribePresence leaves a channel; the others get c's presences
// cleared. reply may be nil.
func (h *Hub) UnsubscribePresence(channel string, c Conn, reply func(error)) {
	if reply == nil {
		reply = func(error) {}
	}
	if c == nil {
		reply(fmt.Errorf("%w: unsubscribe needs a connection", ErrInvalidPresence))
		return
	}
	h.pmu.Lock()
	var lasts map[string]PresenceUpdate
	var targets []Conn
	if ch := h.channels[channel]; ch != nil {
		delete(ch.subs, c)
		lasts = ch.last[c]
		delete(ch.last, c)
		targets = ch.others(c, c.Src())
		h.gcChannel(channel)
	}
	docKey, hasDoc := Key{}, false
	if cs := h.conns[c]; cs != nil {
		docKey, hasDoc = cs.presDocs[channel]
		delete(cs.presDocs, channel)
		delete(cs.channels, channel)
		h.gcConn(c, cs)
	}
	h.pmu.Unlock()
	for _, p := range lasts {
		p = cleared(p)
		for _, t := range targets {
			t.SendPresence(p)
		}
	}
	if hasDoc {
		// The session clears c's document presence at the head version;
		// no session means there is none to clear.
		_ = h.send(docKey, &job{kind: jobClearPresence, conn: c, channel: channel}, false)
	}
	reply(nil)
}

// Presence publishes p from c. Document presence (p.Doc set) goes
// through the document's session, which transforms p.Text to the head
// and sets p.Version; reply gets the update as relayed (the protocol
// echoes it to the sender). Untyped presence passes through unchanged.
// The Hub sets p.Src to c.Src().
func (h *Hub) Presence(c Conn, p PresenceUpdate, reply func(PresenceUpdate, error)) {
	if reply == nil {
		reply = func(PresenceUpdate, error) {}
	}
	if err := h.usable(); err != nil {
		reply(PresenceUpdate{}, err)
		return
	}
	if c == nil || p.Channel == "" || p.ID == "" {
		reply(PresenceUpdate{}, fmt.Errorf("%w: presence needs a connection, a channel and an id", ErrInvalidPresence))
		return
	}
	p.Src = c.Src()
	if p.Doc != nil {
		key := *p.Doc
		if err := checkKey(key); err != nil {
			reply(PresenceUpdate{}, err)
			return
		}
		p.Doc = &key
		if p.Text != nil {
			t := *p.Text
			p.Text = &t
		}
		h.pmu.Lock()
		h.conn(c).presDocs[p.Channel] = key
		h.pmu.Unlock()
		if err := h.send(key, &job{kind: jobPresence, conn: c, pres: p, onPresence: reply}, true); err != nil {
			reply(PresenceUpdate{}, err)
		}
		return
	}
	h.pmu.Lock()
	ch := h.channel(p.Channel)
	h.conn(c).channels[p.Channel] = struct{}{}
	if p.Cleared() {
		if m := ch.last[c]; m != nil {
			delete(m, p.ID)
			if len(m) == 0 {
				delete(ch.last, c)
			}
		}
	} else {
		m := ch.last[c]
		if m == nil {
			m = make(map[string]PresenceUpdate)
			ch.last[c] = m
		}
		if old, ok := m[p.ID]; !ok || old.Seq <= p.Seq {
			m[p.ID] = p
		}
	}
	targets := ch.others(c, p.Src)
	h.gcChannel(p.Channel)
	h.pmu.Unlock()
	for _, t := range targets {
		t.SendPresence(p)
	}
	h.stats.presence.Add(1)
	reply(p, nil)
}

// RequestPresence asks the other subscribers of channel to re-send their
// presence (ShareDB "pr" from a client).
func (h *Hub) RequestPresence(channel string, c Conn) {
	src := ""
	if c != nil {
		src = c.Src()
	}
	for _, t := range h.presenceTargets(channel, c, src) {
		t.SendPresenceRequest(channel)
	}
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
	for name := range cs.channels {
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
