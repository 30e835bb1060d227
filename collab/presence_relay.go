package collab

import (
	"errors"
)

// This file carries presence between the nodes of a cluster. On one node
// the Hub relays presence to the subscribers of a channel on that node
// (presence.go, session_presence.go). When Options.Relay also implements
// PresenceRelay (collab/redisrelay.Cluster), the Hub also:
//
//   - publishes every presence it relays (updates and clears, typed or
//     untyped, as relayed: document presence after its session brought it
//     to the head), so the other nodes hand it to their subscribers;
//   - joins a channel on the relay while it has a subscriber here, and
//     hands what other nodes publish on it to those subscribers: untyped
//     presence as it comes, document presence through the document's
//     session, which brings it to this node's head (ops in version order,
//     the same transform as for local presence) before sending it;
//   - passes presence requests ("pr", and the one a "ps" implies) to the
//     other nodes, whose subscribers then re-send their presence, so a
//     client joining on one node sees the carets of clients on another.
//
// The relay, not the Hub, remembers what other nodes published: it clears
// the presence of a node that stopped (its heartbeat expired) or that was
// not updated for the presence TTL, by delivering a cleared update. Every
// rule of local presence holds for remote presence too: a client receives
// only presence of documents it may read (the Conn filters, as for local
// presence), never its own (same src), and presence it may not get in
// time is dropped rather than held.

// PresenceRelay is implemented by a Relay that also carries presence
// between nodes. Delivery is at most once: presence is ephemeral, and
// losing some while the nodes cannot reach each other is acceptable.
//
// Its methods must not block and must not call back into the Hub before
// they return; they may be called with Hub locks held.
type PresenceRelay interface {
	// PublishPresence sends p, as this node relayed it, to the other
	// nodes' subscribers of p.Channel.
	PublishPresence(p PresenceUpdate)
	// RequestPresence asks the other nodes to make their subscribers of
	// channel re-send their presence (ShareDB "pr").
	RequestPresence(channel string)
	// JoinPresence delivers to m what other nodes publish on channel,
	// until Leave. When the membership becomes active (and again after
	// the relay lost and regained its connection) the relay requests the
	// others' presence itself.
	JoinPresence(channel string, m PresenceMember) PresenceLink
}

// PresenceMember is the Hub's side of a PresenceRelay membership. Its
// functions are called from the relay's goroutines, must not block, and
// may still be called briefly after Leave.
type PresenceMember struct {
	// Deliver receives a presence update, or a clear, from another node.
	Deliver func(p PresenceUpdate)
	// Request asks this node's subscribers of the channel to re-send
	// their presence.
	Request func()
}

// PresenceLink is one channel's membership of a PresenceRelay.
type PresenceLink interface {
	// Leave ends the membership.
	Leave()
}

// presenceRelay returns the Relay as a PresenceRelay, or nil.
func (h *Hub) presenceRelay() PresenceRelay {
	pr, _ := h.opts.Relay.(PresenceRelay)
	return pr
}

// publishPresence publishes p to the other nodes, if there are any.
func (h *Hub) publishPresence(p PresenceUpdate) {
	if pr := h.presenceRelay(); pr != nil {
		pr.PublishPresence(p)
	}
}

// requestRemotePresence asks the other nodes' subscribers of channel to
// re-send their presence.
func (h *Hub) requestRemotePresence(channel string) {
	if pr := h.presenceRelay(); pr != nil {
		pr.RequestPresence(channel)
	}
}

// joinRemote joins ch, which just got its first subscriber, to the other
// nodes. It reports whether it did (the relay then requests the others'
// presence itself). h.pmu must be held.
func (h *Hub) joinRemote(name string, ch *channel) bool {
	pr := h.presenceRelay()
	if pr == nil || ch.remote != nil {
		return false
	}
	ch.remote = pr.JoinPresence(name, PresenceMember{
		Deliver: h.remotePresence,
		Request: func() { h.remoteRequest(name) },
	})
	return true
}

// unsubscribed removes c from ch's subscribers and leaves the other nodes
// when it was the last one. h.pmu must be held.
func (h *Hub) unsubscribed(ch *channel, c Conn) {
	delete(ch.subs, c)
	if len(ch.subs) == 0 && ch.remote != nil {
		ch.remote.Leave()
		ch.remote = nil
	}
}

// remotePresence hands a presence update from another node to the
// channel's subscribers here: document presence through its session (to
// bring it to this node's head), untyped presence directly.
func (h *Hub) remotePresence(p PresenceUpdate) {
	if h.usable() != nil || p.Channel == "" || p.ID == "" {
		return
	}
	targets := h.presenceTargets(p.Channel, nil, p.Src)
	if len(targets) == 0 {
		return
	}
	if p.Doc != nil && checkKey(*p.Doc) == nil {
		// An update needs the document's head, so it may start the
		// session; a clear needs none, and goes directly where none runs.
		err := h.send(*p.Doc, &job{kind: jobRemotePresence, pres: &p}, !p.Cleared())
		if !errors.Is(err, errNoSession) {
			return // queued, or dropped (a busy or stopping session)
		}
	}
	for _, t := range targets {
		t.SendPresence(p)
	}
	h.stats.presence.Add(1)
}

// remoteRequest answers another node's presence request: this node's
// subscribers of channel re-send their presence.
func (h *Hub) remoteRequest(channel string) {
	if h.usable() != nil {
		return
	}
	for _, t := range h.presenceTargets(channel, nil, "") {
		t.SendPresenceRequest(channel)
	}
}

// remotePresence brings a document presence from another node to the
// head, as session.presence does for local presence, and sends it to the
// channel's subscribers here. A presence past the head (its node has ops
// this one has not seen yet) makes a session in a cluster catch up first;
// one still past the head is dropped (its client sends the next soon).
// The session does not remember it: the other node does, and clears it.
func (s *session) remotePresence(p PresenceUpdate) {
	head := s.doc.head
	if p.Version > head && !p.Cleared() && s.cluster != nil {
		if err := s.sync(); err != nil {
			s.h.log.Debug("collab: cannot catch up for a remote presence", "doc", s.key.String(), "err", err)
		}
		head = s.doc.head
	}
	switch {
	case p.Cleared():
		p.Version = head
	case p.Version > head:
		return
	case p.Version < s.windowStart():
		// Too old to bring to the head from memory (see presence).
		p.Text, p.Raw = nil, nil
		p.Version = head
	case p.Version < head:
		recs, err := s.records(p.Version, head)
		if err != nil {
			return
		}
		transformPresence(&p, recs)
	}
	for _, t := range s.h.presenceTargets(p.Channel, nil, p.Src) {
		t.SendPresence(p)
	}
	s.h.stats.presence.Add(1)
}
