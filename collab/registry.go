package collab

import (
	"errors"
	"fmt"
	"time"
)

// This file holds the Hub's registry of what each connection joined: the
// documents it subscribed to, the presence channels it subscribed to or
// posted on, and the documents of its presence. It is the one owner of a
// connection's subscriptions and of their limit, Options.MaxSubscriptions;
// web keeps no copy. Disconnect walks it to undo everything a closing
// connection left behind. Everything here is guarded by Hub.pmu.
//
// Presence counts here too (issue 9, item 7): a document a connection
// holds presence on counts against Options.MaxSubscriptions as a
// document it subscribed to, and a channel it posted untyped presence on
// as a channel it subscribed to; every presence it holds counts against
// Options.MaxPresenceBytes; and a presence not updated for
// Options.PresenceTTL is dropped (presence_expiry.go). This registry is
// the one record of the presence a connection holds: the sessions and
// channels keep the values, but adding, replacing, clearing and expiring
// them is decided here.
//
// A document's session keeps its own subscriber set, which is what it
// broadcasts to. The two agree because both follow the same requests in
// the session's order: a Subscribe's registration here is settled by its
// reply, which the session sends after it has added the connection (on
// success) or removed it (on failure).

// connState is what the Hub remembers about one connection. Every
// connection that subscribed to something has one, for as long as it
// stays, so it is kept small (scenario 5 of issue 11: memory per idle
// subscribed connection): the maps are made at their first entry (reading
// and deleting from a nil map are fine), and the documents are a short
// list until there are many (docSet).
type connState struct {
	// docs are the documents c subscribed to or is subscribing to.
	docs docSet
	// presDocs maps a channel to the document of c's presence on it.
	presDocs map[string]Key
	// channels are the presence channels c subscribed to; with docs,
	// what Options.MaxSubscriptions bounds.
	channels map[string]struct{}
	// posted are the channels c sent untyped presence on, to clear it
	// when c leaves; with channels, what Options.MaxSubscriptions bounds.
	posted map[string]struct{}
	// presKeys counts the channels of presDocs per document: with docs,
	// what Options.MaxSubscriptions bounds.
	presKeys map[Key]int
	// pres is every presence c holds (not cleared), typed or untyped.
	pres map[presID]presEntry
	// presBytes is the sum of pres's sizes: what
	// Options.MaxPresenceBytes bounds.
	presBytes int
}

// presID names one presence of a connection: its channel and id.
type presID struct {
	channel, id string
}

// presEntry is the registry's record of one presence.
type presEntry struct {
	size int       // presenceSize of its value
	at   time.Time // its last update, for Options.PresenceTTL
	doc  *Key      // the document of a document presence, else nil
}

// presenceOverhead is what one presence costs besides its value and
// names, in bytes, in presenceSize: many tiny presences are bounded too.
const presenceOverhead = 128

// presenceSize is what p counts against Options.MaxPresenceBytes.
func presenceSize(p PresenceUpdate) int {
	return presenceOverhead + len(p.Channel) + len(p.ID) + len(p.Raw)
}

// docSet maps documents to a connection's registrations on them. Most
// connections join one document or a few: those are a list (one entry
// is 48 bytes, where a map of one is over 400); past docSetList entries
// they move to a map, so that a connection on thousands of documents
// does not search a list.
type docSet struct {
	list []docEntry
	m    map[Key]*docJoin // once the list grew past docSetList; list is nil then
}

type docEntry struct {
	key  Key
	join *docJoin
}

// docSetList is the most documents a docSet keeps as a list.
const docSetList = 8

func (d *docSet) len() int {
	if d.m != nil {
		return len(d.m)
	}
	return len(d.list)
}

// get returns key's registration, or nil.
func (d *docSet) get(key Key) *docJoin {
	if d.m != nil {
		return d.m[key]
	}
	for _, e := range d.list {
		if e.key == key {
			return e.join
		}
	}
	return nil
}

// set records j as key's registration.
func (d *docSet) set(key Key, j *docJoin) {
	if d.m != nil {
		d.m[key] = j
		return
	}
	for i, e := range d.list {
		if e.key == key {
			d.list[i].join = j
			return
		}
	}
	if len(d.list) < docSetList {
		d.list = append(d.list, docEntry{key, j})
		return
	}
	d.m = make(map[Key]*docJoin, 2*docSetList)
	for _, e := range d.list {
		d.m[e.key] = e.join
	}
	d.m[key] = j
	d.list = nil
}

// del forgets key.
func (d *docSet) del(key Key) {
	if d.m != nil {
		delete(d.m, key)
		return
	}
	for i, e := range d.list {
		if e.key == key {
			last := len(d.list) - 1
			d.list[i] = d.list[last]
			d.list[last] = docEntry{}
			d.list = d.list[:last]
			if last == 0 {
				d.list = nil
			}
			return
		}
	}
}

// keys calls f with each document.
func (d *docSet) keys(f func(Key)) {
	if d.m != nil {
		for k := range d.m {
			f(k)
		}
		return
	}
	for _, e := range d.list {
		f(e.key)
	}
}

// docJoin is c's registration on one document. A Subscribe registers
// before its request reaches the session, so that the limit counts
// subscribes still in flight; its reply settles the registration.
type docJoin struct {
	// pending counts this registration's Subscribes not yet answered.
	pending int
	// joined is set once one of them succeeded: the session then holds
	// the connection until an Unsubscribe or Disconnect tells it not to.
	joined bool
}

func (cs *connState) empty() bool {
	return cs.docs.len() == 0 && len(cs.presDocs) == 0 && len(cs.channels) == 0 && len(cs.posted) == 0 && len(cs.pres) == 0
}

// docCount is the number of documents c joined or holds presence on.
func (cs *connState) docCount() int {
	n := cs.docs.len()
	for k := range cs.presKeys {
		if cs.docs.get(k) == nil {
			n++
		}
	}
	return n
}

// hasDoc reports whether key counts among c's documents already.
func (cs *connState) hasDoc(key Key) bool {
	return cs.docs.get(key) != nil || cs.presKeys[key] > 0
}

// channelCount is the number of channels c subscribed to or posted on.
func (cs *connState) channelCount() int {
	n := len(cs.channels)
	for ch := range cs.posted {
		if _, ok := cs.channels[ch]; !ok {
			n++
		}
	}
	return n
}

// hasChannel reports whether ch counts among c's channels already.
func (cs *connState) hasChannel(ch string) bool {
	_, sub := cs.channels[ch]
	_, posted := cs.posted[ch]
	return sub || posted
}

// setPresDoc records that c's presence on channel is on key.
func (cs *connState) setPresDoc(channel string, key Key) {
	if old, ok := cs.presDocs[channel]; ok {
		if old == key {
			return
		}
		cs.unrefKey(old)
	}
	if cs.presDocs == nil {
		cs.presDocs = make(map[string]Key)
		cs.presKeys = make(map[Key]int)
	}
	cs.presDocs[channel] = key
	cs.presKeys[key]++
}

// addChannel records that c subscribed to the presence channel ch.
func (cs *connState) addChannel(ch string) {
	if cs.channels == nil {
		cs.channels = make(map[string]struct{})
	}
	cs.channels[ch] = struct{}{}
}

// delPresDoc forgets the document of c's presence on channel.
func (cs *connState) delPresDoc(channel string) {
	if old, ok := cs.presDocs[channel]; ok {
		delete(cs.presDocs, channel)
		cs.unrefKey(old)
	}
}

func (cs *connState) unrefKey(key Key) {
	if cs.presKeys[key]--; cs.presKeys[key] <= 0 {
		delete(cs.presKeys, key)
	}
}

// dropPres forgets c's presence id, releasing its bytes.
func (cs *connState) dropPres(id presID) {
	if e, ok := cs.pres[id]; ok {
		cs.presBytes -= e.size
		delete(cs.pres, id)
	}
}

// dropChannelPres forgets every presence c holds on channel.
func (cs *connState) dropChannelPres(channel string) {
	for id := range cs.pres {
		if id.channel == channel {
			cs.dropPres(id)
		}
	}
}

// holdsOn reports whether c still holds a presence on channel.
func (cs *connState) holdsOn(channel string) bool {
	for id := range cs.pres {
		if id.channel == channel {
			return true
		}
	}
	return false
}

// conn returns c's state, creating it. h.pmu must be held.
func (h *Hub) conn(c Conn) *connState {
	cs := h.conns[c]
	if cs == nil {
		cs = &connState{}
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
	return fmt.Errorf("%w: a connection may subscribe to (or hold presence on) at most %d documents and %d presence channels", ErrTooManySubscriptions, max, max)
}

// notePresence records p, from c, in the registry before it is relayed,
// or refuses it: a presence on a document or untyped channel c has not
// joined yet counts against Options.MaxSubscriptions
// (ErrTooManySubscriptions), and its value against
// Options.MaxPresenceBytes (ErrPresenceTooLarge). A cleared presence
// releases what it held. h.pmu must be held.
func (h *Hub) notePresence(cs *connState, p PresenceUpdate, now time.Time) error {
	id := presID{p.Channel, p.ID}
	if p.Cleared() {
		cs.dropPres(id)
		if !cs.holdsOn(p.Channel) {
			if p.Doc != nil {
				cs.delPresDoc(p.Channel)
			} else {
				delete(cs.posted, p.Channel)
			}
		}
		return nil
	}
	max := h.opts.MaxSubscriptions
	if p.Doc != nil {
		if !cs.hasDoc(*p.Doc) && cs.docCount() >= max {
			return h.tooManySubscriptions()
		}
	} else if !cs.hasChannel(p.Channel) && cs.channelCount() >= max {
		return h.tooManySubscriptions()
	}
	size := presenceSize(p)
	if total := cs.presBytes - cs.pres[id].size + size; total > h.opts.MaxPresenceBytes {
		return fmt.Errorf("%w: this one would bring a connection's presence to %d bytes (at most %d)", ErrPresenceTooLarge, total, h.opts.MaxPresenceBytes)
	}
	if p.Doc != nil {
		cs.setPresDoc(p.Channel, *p.Doc)
	} else {
		if cs.posted == nil {
			cs.posted = make(map[string]struct{})
		}
		cs.posted[p.Channel] = struct{}{}
	}
	if cs.pres == nil {
		cs.pres = make(map[presID]presEntry)
	}
	cs.presBytes += size - cs.pres[id].size
	cs.pres[id] = presEntry{size: size, at: now, doc: p.Doc}
	return nil
}

// joinDocs registers c on every key for a Subscribe, or on none when the
// keys c has not joined yet would take it past Options.MaxSubscriptions.
// Each returned registration must be settled once, by settleDoc.
func (h *Hub) joinDocs(c Conn, keys []Key) ([]*docJoin, error) {
	h.pmu.Lock()
	defer h.pmu.Unlock()
	cs := h.conn(c)
	nfresh := 0
	if len(keys) == 1 {
		if !cs.hasDoc(keys[0]) {
			nfresh = 1
		}
	} else {
		fresh := make(map[Key]struct{})
		for _, k := range keys {
			if !cs.hasDoc(k) {
				fresh[k] = struct{}{}
			}
		}
		nfresh = len(fresh)
	}
	if cs.docCount()+nfresh > h.opts.MaxSubscriptions {
		h.gcConn(c, cs)
		return nil, h.tooManySubscriptions()
	}
	joins := make([]*docJoin, len(keys))
	for i, k := range keys {
		j := cs.docs.get(k)
		if j == nil {
			j = &docJoin{}
			cs.docs.set(k, j)
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
// own reply, which comes later, decides), or an earlier one succeeded and
// this one failed before the session served it (ErrBusy: its inbox or
// its held requests were full; ErrConnClosed: the connection is
// closing): the session still holds c from the earlier one, and only the
// registration makes Disconnect tell it to let go. A registration an
// Unsubscribe replaced is no longer j and is left alone. (A subscribe the closing hub refuses never reached the
// session; dropping its registration then is harmless, as every session
// is stopping.)
func (h *Hub) settleDoc(c Conn, key Key, j *docJoin, err error) {
	h.pmu.Lock()
	defer h.pmu.Unlock()
	cs := h.conns[c]
	if cs == nil || cs.docs.get(key) != j {
		return
	}
	j.pending--
	if err == nil {
		j.joined = true
	}
	kept := j.joined && (errors.Is(err, ErrBusy) || errors.Is(err, ErrConnClosed))
	if err != nil && j.pending == 0 && !kept {
		cs.docs.del(key)
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
	cs.docs.del(key)
	for ch, k := range cs.presDocs {
		if k == key {
			cs.delPresDoc(ch)
			cs.dropChannelPres(ch)
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
		h.unsubscribed(ch, c)
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
	keys := make(map[Key]struct{}, cs.docs.len()+len(cs.presDocs))
	cs.docs.keys(func(k Key) { keys[k] = struct{}{} })
	for _, k := range cs.presDocs {
		keys[k] = struct{}{}
	}
	h.pmu.Unlock()
	for _, d := range out {
		for _, t := range d.to {
			t.SendPresence(d.p)
		}
		h.publishPresence(d.p)
	}
	for k := range keys {
		// Only running sessions can hold c; a stopped one had no
		// subscribers, so there is nothing to undo.
		_ = h.send(k, &job{kind: jobDisconnect, conn: c}, false)
	}
}
