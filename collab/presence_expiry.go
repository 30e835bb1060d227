package collab

import "time"

// This file expires presence (Options.PresenceTTL): a presence not
// updated for that long is dropped and cleared for the others. Without
// it a connection that posted once held its presence, and the session of
// a document presence, for as long as it stayed connected.
//
// The Hub's registry (registry.go) records when each presence was last
// updated. One goroutine of the Hub, started with the first presence and
// stopped by Close, sweeps it every quarter of the TTL: untyped presence
// is dropped from its channel here, document presence by the document's
// session (jobExpirePresence), which clears it at the head.

// startExpiry starts the expiry goroutine once, unless the Hub is
// closing. Close stops it (h.quit) and waits for it (h.bg).
func (h *Hub) startExpiry() {
	if h.expiring.Load() {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed || h.expiring.Load() {
		return
	}
	h.expiring.Store(true)
	h.bg.Add(1)
	go h.expireLoop()
}

// expireLoop sweeps the registry for expired presence until the Hub
// closes.
func (h *Hub) expireLoop() {
	defer h.bg.Done()
	t := time.NewTicker(max(h.opts.PresenceTTL/4, time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-h.quit:
			return
		case <-t.C:
			h.expirePresence(h.opts.Now())
		}
	}
}

// expirePresence drops every presence last updated a PresenceTTL or more
// before now and tells the others.
func (h *Hub) expirePresence(now time.Time) {
	type clearing struct {
		to []Conn
		p  PresenceUpdate
	}
	type docClear struct {
		key Key
		c   Conn
		id  presID
	}
	var out []clearing
	var docs []docClear
	ttl := h.opts.PresenceTTL
	h.pmu.Lock()
	for c, cs := range h.conns {
		for id, e := range cs.pres {
			if now.Sub(e.at) < ttl {
				continue
			}
			cs.dropPres(id)
			if e.doc != nil {
				docs = append(docs, docClear{*e.doc, c, id})
				if !cs.holdsOn(id.channel) {
					cs.delPresDoc(id.channel)
				}
				continue
			}
			if !cs.holdsOn(id.channel) {
				delete(cs.posted, id.channel)
			}
			ch := h.channels[id.channel]
			if ch == nil {
				continue
			}
			if m := ch.last[c]; m != nil {
				if p, ok := m[id.id]; ok {
					delete(m, id.id)
					out = append(out, clearing{ch.others(c, c.Src()), cleared(p)})
				}
				if len(m) == 0 {
					delete(ch.last, c)
				}
			}
			h.gcChannel(id.channel)
		}
		h.gcConn(c, cs)
	}
	h.pmu.Unlock()
	for _, o := range out {
		for _, t := range o.to {
			t.SendPresence(o.p)
		}
		h.publishPresence(o.p)
		h.stats.presence.Add(1)
	}
	for _, d := range docs {
		// No session means nothing is held there to clear.
		_ = h.send(d.key, &job{kind: jobExpirePresence, conn: d.c, pres: &PresenceUpdate{Channel: d.id.channel, ID: d.id.id}}, false)
	}
}
