package collab

import (
	"fmt"

	"github.com/coedit/coedit/ot"
)

// transformPresence moves p through recs, the records from p.Version on:
// text presence is transformed (own ops are the ones p.Src made), a
// create or delete clears it, and p.Version follows. Raw presence cannot
// be transformed, so it stops at the first edit, its Version telling the
// receivers where it belongs.
func transformPresence(p *PresenceUpdate, recs []Record) {
	for _, r := range recs {
		if r.Version < p.Version {
			continue
		}
		if r.Version != p.Version {
			return
		}
		switch r.Kind {
		case OpCreate, OpDelete:
			p.Text, p.Raw = nil, nil
		case OpEdit:
			switch {
			case p.Text != nil:
				t := ot.TransformPresence(*p.Text, r.Op, p.Src != "" && r.Src == p.Src)
				p.Text = &t
			case p.Raw != nil:
				return
			}
		}
		p.Version = r.Version + 1
	}
}

// clampPresence holds a non-negative text presence inside a text of n
// code points.
func clampPresence(p ot.Presence, n int) ot.Presence {
	start := min(p.Index, n)
	end := min(p.Index+p.Length, n) // each at most ot.MaxLen: no overflow
	return ot.Presence{Index: start, Length: max(end-start, 0)}
}

// presence handles a document presence update from r.conn: it brings it
// to the head, remembers it (to clear it when the connection leaves),
// relays it to the channel's other subscribers and echoes it.
func (s *session) presence(r *job) {
	p := *r.pres
	head := s.doc.head
	if p.Version > head {
		r.onPresence(PresenceUpdate{}, fmt.Errorf("%w: presence at version %d, document at %d", ErrPresenceVersion, p.Version, head))
		return
	}
	switch {
	case p.Version < s.windowStart() && !p.Cleared():
		// Too old to bring to the head from memory. A session never
		// reads the Store for presence (a stream of old presence would
		// stall the document, issue 9 item 5): it is cleared instead. Its
		// client is far behind; it sends its presence again once it has
		// caught up.
		p.Text, p.Raw = nil, nil
		p.Version = head
	case p.Cleared():
		p.Version = head
	case p.Version < head:
		recs, err := s.records(p.Version, head) // in the window
		if err != nil {
			r.onPresence(PresenceUpdate{}, err)
			return
		}
		transformPresence(&p, recs)
	}
	if p.Text != nil && p.Version == head {
		// A caret or selection past the end of the text is held to it,
		// so receivers get a range of the document they have (a stale
		// client's, or a bad one's up to 2^53-1, which would also
		// overflow JavaScript's integers once an insert moved it).
		t := clampPresence(*p.Text, s.doc.rope.Len())
		p.Text = &t
	}
	k := presKey{p.Channel, p.ID}
	m := s.pres[r.conn]
	if p.Cleared() {
		delete(m, k)
		if len(m) == 0 {
			delete(s.pres, r.conn)
		}
	} else {
		if m == nil {
			m = make(map[presKey]PresenceUpdate)
			s.pres[r.conn] = m
		}
		if old, ok := m[k]; !ok || old.Seq <= p.Seq {
			m[k] = p
		}
	}
	for _, t := range s.h.presenceTargets(p.Channel, r.conn, p.Src) {
		t.SendPresence(p)
	}
	s.h.publishPresence(p)
	s.h.stats.presence.Add(1)
	r.onPresence(p, nil)
}

// clearPresence removes c's presences on channel ("" for all of them)
// with the presence id id ("" for any) and tells the channels' other
// subscribers, at the head version.
func (s *session) clearPresence(c Conn, channel, id string) {
	m := s.pres[c]
	for k, p := range m {
		if channel != "" && k.channel != channel || id != "" && k.id != id {
			continue
		}
		delete(m, k)
		p = cleared(p)
		p.Version = s.doc.head
		for _, t := range s.h.presenceTargets(p.Channel, c, p.Src) {
			t.SendPresence(p)
		}
		s.h.publishPresence(p)
		s.h.stats.presence.Add(1)
	}
	if len(m) == 0 {
		delete(s.pres, c)
	}
}

// transformStoredPresence keeps the remembered presences at the head
// after new records, so a clear or resend refers to the right version.
// Presences a create or delete cleared are forgotten: clients clear them
// themselves when they apply that record.
func (s *session) transformStoredPresence(recs []Record) {
	for c, m := range s.pres {
		for k, p := range m {
			transformPresence(&p, recs)
			if p.Cleared() {
				delete(m, k)
				continue
			}
			m[k] = p
		}
		if len(m) == 0 {
			delete(s.pres, c)
		}
	}
}
