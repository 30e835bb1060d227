package collab

import (
	"errors"
	"fmt"
)

// This file holds the Hub's presence channels: who subscribed to each,
// and the untyped presence posted on it, under Hub.pmu. Document presence
// is transformed and relayed by the document's session (see
// session_presence.go); what each connection joined is in registry.go.

// channel is one presence channel.
type channel struct {
	subs map[Conn]struct{}
	// remote is the channel's membership of the other nodes' presence
	// (presence_relay.go), while it has subscribers here.
	remote PresenceLink
	// last holds each connection's latest untyped presence, by presence
	// id, to clear it when the connection leaves.
	last map[Conn]map[string]PresenceUpdate
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

// cleared returns p with its value removed (ShareDB's p: null).
func cleared(p PresenceUpdate) PresenceUpdate {
	p.Text = nil
	p.Raw = nil
	return p
}

// SubscribePresence joins c to a presence channel and sends every other
// subscriber a presence request. A channel past Options.MaxSubscriptions
// fails with ErrTooManySubscriptions. reply may be nil.
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
	cs := h.conn(c)
	if !cs.hasChannel(channel) && cs.channelCount() >= h.opts.MaxSubscriptions {
		h.gcConn(c, cs)
		h.pmu.Unlock()
		reply(h.tooManySubscriptions())
		return
	}
	cs.addChannel(channel)
	ch := h.channel(channel)
	ch.subs[c] = struct{}{}
	// A channel joining the other nodes requests their presence once
	// its subscription is active; otherwise it is requested here.
	joined := h.joinRemote(channel, ch)
	targets := ch.others(c, c.Src())
	h.pmu.Unlock()
	for _, t := range targets {
		t.SendPresenceRequest(channel)
	}
	if !joined {
		h.requestRemotePresence(channel)
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
		h.unsubscribed(ch, c)
		lasts = ch.last[c]
		delete(ch.last, c)
		targets = ch.others(c, c.Src())
		h.gcChannel(channel)
	}
	docKey, hasDoc := Key{}, false
	if cs := h.conns[c]; cs != nil {
		docKey, hasDoc = cs.presDocs[channel]
		cs.delPresDoc(channel)
		cs.dropChannelPres(channel)
		delete(cs.channels, channel)
		delete(cs.posted, channel)
		h.gcConn(c, cs)
	}
	h.pmu.Unlock()
	for _, p := range lasts {
		p = cleared(p)
		for _, t := range targets {
			t.SendPresence(p)
		}
		h.publishPresence(p)
	}
	if hasDoc {
		// The session clears c's document presence at the head version;
		// no session means there is none to clear.
		_ = h.send(docKey, &job{kind: jobClearPresence, conn: c, pres: &PresenceUpdate{Channel: channel}}, false)
	}
	reply(nil)
}

// Presence publishes p from c. Document presence (p.Doc set) goes
// through the document's session, which transforms p.Text to the head
// and sets p.Version; reply gets the update as relayed (the protocol
// echoes it to the sender). Untyped presence passes through unchanged.
// The Hub sets p.Src to c.Src().
//
// What c holds is bounded: a document or channel it has not joined yet
// counts against Options.MaxSubscriptions (ErrTooManySubscriptions), the
// values it holds against Options.MaxPresenceBytes (ErrPresenceTooLarge),
// and a presence not updated for Options.PresenceTTL is cleared.
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
		cs := h.conn(c)
		err := h.notePresence(cs, p, h.opts.Now())
		h.gcConn(c, cs)
		h.pmu.Unlock()
		if err != nil {
			reply(PresenceUpdate{}, err)
			return
		}
		if !p.Cleared() {
			h.startExpiry()
		}
		// Clearing needs no session where none runs: it holds nothing.
		err = h.send(key, &job{kind: jobPresence, conn: c, pres: &p, onPresence: reply}, !p.Cleared())
		switch {
		case errors.Is(err, errNoSession):
			reply(p, nil)
		case err != nil:
			reply(PresenceUpdate{}, err)
		}
		return
	}
	h.pmu.Lock()
	cs := h.conn(c)
	if err := h.notePresence(cs, p, h.opts.Now()); err != nil {
		h.gcConn(c, cs)
		h.pmu.Unlock()
		reply(PresenceUpdate{}, err)
		return
	}
	h.gcConn(c, cs)
	if !p.Cleared() {
		// startExpiry takes h.mu, which is never taken inside h.pmu.
		defer h.startExpiry()
	}
	ch := h.channel(p.Channel)
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
	h.publishPresence(p)
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
	h.requestRemotePresence(channel)
}
