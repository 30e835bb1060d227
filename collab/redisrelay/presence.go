package redisrelay

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coedit/coedit/collab"
	"github.com/coedit/coedit/ot"
	"github.com/redis/go-redis/v9"
)

// This file carries presence between nodes (collab.PresenceRelay; see
// collab/presence_relay.go for the Hub's side). Presence is ephemeral: it
// goes over pub/sub only, never into a key, and a message lost while
// Redis is out of reach is not sent again (the clients re-send their
// presence when they move, and on the presence request each node makes
// when its subscription comes back).
//
// Each presence channel has a pub/sub channel
//
//	<prefix>{<tag>}:pres
//
// where <tag> is the document's hash tag for a channel "<collection>.<id>"
// (split at the first '.'), so that in a Redis Cluster the presence of a
// document goes through the same node, and the same sharded pub/sub
// connection, as its doorbells: a presence published after a commit
// arrives after that commit's doorbell. Any other channel name is escaped
// as a tag of its own.
//
// A message is JSON: the origin (this process: node id plus a random
// incarnation), "p" (a presence update or clear, as the origin relayed it)
// or "r" (a presence request), and the update's fields.
//
// Each node remembers the presence others published on the channels it
// subscribes to (origin, value, when), and clears it for its own
// subscribers when:
//
//   - its origin stops: each node keeps a heartbeat key
//     <prefix>node:<origin> with a time to live of Options.NodeTTL,
//     refreshed every third of it; a node whose key is gone, and from
//     which nothing was heard for NodeTTL, is dead, and its presence is
//     cleared (a node killed with kill -9 sends no clears);
//   - it was not updated for Options.PresenceTTL (the origin clears it
//     then too; this catches a clear lost to a Redis outage).
//
// A client that moved to another node (same src) keeps its presence: an
// update from a new origin takes the presence over, and a later clear
// from the old origin, or its death, does not clear it.

// presenceBus is a Relay's presence side. Its goroutines (publisher and
// housekeeper) start with its first use and stop in close, which waits
// for them.
type presenceBus struct {
	r      *Relay
	origin string
	out    chan pubMsg
	wake   chan struct{}
	quit   chan struct{}
	wg     sync.WaitGroup
	stats  presenceCounters

	mu      sync.Mutex
	started bool
	closed  bool
	chans   map[string]*presChan // by presence channel name
	dirty   map[string]struct{}  // channels whose subscription must be reconciled
	alive   map[string]time.Time // origin -> when it last showed life
}

// presChan is one presence channel this node subscribes to.
type presChan struct {
	name    string
	rch     string
	members map[*presLink]struct{}
	sub     *Subscription // nil while not subscribed
	remote  map[remoteID]*remoteEntry
}

type remoteID struct{ src, id string }

// remoteEntry is a presence another node published.
type remoteEntry struct {
	origin string
	p      collab.PresenceUpdate
	at     time.Time
}

type pubMsg struct {
	ch      string
	payload []byte
}

// presLink is one collab.PresenceLink.
type presLink struct {
	b    *presenceBus
	name string
	m    collab.PresenceMember
}

// PresenceStats are the presence relay's counters. They only grow.
type PresenceStats struct {
	// Published counts messages published, Dropped those dropped because
	// the publish queue was full or Redis failed them.
	Published, Dropped uint64
	// Received counts messages from other nodes, Bad those that did not
	// decode.
	Received, Bad uint64
	// Expired counts remote presence cleared because it was not updated
	// for PresenceTTL, Orphaned that cleared because its node stopped.
	Expired, Orphaned uint64
}

type presenceCounters struct {
	published, dropped, received, bad, expired, orphaned atomic.Uint64
}

// PresenceStats returns the presence relay's counters.
func (r *Relay) PresenceStats() PresenceStats {
	s := &r.pres.stats
	return PresenceStats{
		Published: s.published.Load(), Dropped: s.dropped.Load(),
		Received: s.received.Load(), Bad: s.bad.Load(),
		Expired: s.expired.Load(), Orphaned: s.orphaned.Load(),
	}
}

var _ collab.PresenceRelay = (*Cluster)(nil)

// PublishPresence implements collab.PresenceRelay.
func (c *Cluster) PublishPresence(p collab.PresenceUpdate) { c.r.pres.publish(p) }

// RequestPresence implements collab.PresenceRelay.
func (c *Cluster) RequestPresence(channel string) { c.r.pres.request(channel) }

// JoinPresence implements collab.PresenceRelay.
func (c *Cluster) JoinPresence(channel string, m collab.PresenceMember) collab.PresenceLink {
	return c.r.pres.join(channel, m)
}

func newPresenceBus(r *Relay) *presenceBus {
	return &presenceBus{
		r:      r,
		origin: r.opts.NodeID + "." + randomID(),
		out:    make(chan pubMsg, 4096),
		wake:   make(chan struct{}, 1),
		quit:   make(chan struct{}),
		chans:  make(map[string]*presChan),
		dirty:  make(map[string]struct{}),
		alive:  make(map[string]time.Time),
	}
}

// presenceChannel returns the pub/sub channel of presence channel name.
func (r *Relay) presenceChannel(name string) string {
	t := escape(name)
	if coll, id, ok := strings.Cut(name, "."); ok && coll != "" && id != "" {
		t = tag(collab.Key{Collection: coll, ID: id})
	}
	return r.opts.Prefix + "{" + t + "}:pres"
}

// heartbeatKey is the key that says origin is alive.
func (r *Relay) heartbeatKey(origin string) string { return r.opts.Prefix + "node:" + origin }

// start starts the goroutines unless they run or the bus is closed. b.mu
// must be held.
func (b *presenceBus) start() bool {
	if b.closed || b.r.pubCmd == "" {
		return false
	}
	if !b.started {
		b.started = true
		b.wg.Add(2)
		go b.publisher()
		go b.housekeeper()
	}
	return true
}

// publish queues p for the other nodes; it drops it when the queue is
// full (Redis is slow or away: presence is ephemeral).
func (b *presenceBus) publish(p collab.PresenceUpdate) {
	b.mu.Lock()
	if !b.start() {
		b.mu.Unlock()
		return
	}
	// The src is here now: what another node said of it is stale.
	if ch := b.chans[p.Channel]; ch != nil {
		delete(ch.remote, remoteID{p.Src, p.ID})
	}
	b.mu.Unlock()
	b.send(p.Channel, encodePresenceMsg(b.origin, p))
}

// joined runs when Redis confirms this node's subscription of channel
// (also after a reconnect). It asks the other nodes' subscribers to
// re-send, and this node's own subscribers too, so that their presence
// is published now that the channel is joined. Two nodes that join at
// about the same time may each publish their request before the other's
// subscription lands; Redis orders both confirmations, and the node
// confirmed second hears nothing it missed only if both halves are
// done: its request reaches the first node's clients, and its own
// clients' re-sends reach the first node.
func (b *presenceBus) joined(channel string) {
	b.request(channel)
	b.mu.Lock()
	var members []*presLink
	if ch := b.chans[channel]; ch != nil {
		members = ch.memberList()
	}
	b.mu.Unlock()
	for _, l := range members {
		l.m.Request()
	}
}

// request asks the other nodes' subscribers of channel to re-send.
func (b *presenceBus) request(channel string) {
	b.mu.Lock()
	ok := b.start()
	b.mu.Unlock()
	if ok {
		b.send(channel, encodeRequestMsg(b.origin, channel))
	}
}

func (b *presenceBus) send(channel string, payload []byte) {
	select {
	case b.out <- pubMsg{b.r.presenceChannel(channel), payload}:
	default:
		b.stats.dropped.Add(1)
	}
}

// join adds a member to channel and has the housekeeper subscribe it.
func (b *presenceBus) join(channel string, m collab.PresenceMember) collab.PresenceLink {
	l := &presLink{b: b, name: channel, m: m}
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.start() {
		return l
	}
	ch := b.chans[channel]
	if ch == nil {
		ch = &presChan{name: channel, rch: b.r.presenceChannel(channel),
			members: make(map[*presLink]struct{}), remote: make(map[remoteID]*remoteEntry)}
		b.chans[channel] = ch
	}
	ch.members[l] = struct{}{}
	b.reconcile(channel)
	return l
}

// Leave implements collab.PresenceLink.
func (l *presLink) Leave() {
	b := l.b
	b.mu.Lock()
	defer b.mu.Unlock()
	ch := b.chans[l.name]
	if ch == nil {
		return
	}
	delete(ch.members, l)
	if len(ch.members) == 0 {
		ch.remote = make(map[remoteID]*remoteEntry) // nobody here to clear it for
		b.reconcile(l.name)
	}
}

// reconcile has the housekeeper subscribe or unsubscribe channel as its
// members say. b.mu must be held.
func (b *presenceBus) reconcile(channel string) {
	b.dirty[channel] = struct{}{}
	select {
	case b.wake <- struct{}{}:
	default:
	}
}

// publisher publishes the queue, pipelining what has piled up, until
// close.
func (b *presenceBus) publisher() {
	defer b.wg.Done()
	batch := make([]pubMsg, 0, 256)
	for {
		select {
		case <-b.quit:
			// What the node's last clients left (their clears, as the
			// server shut their connections) still goes out.
			select {
			case m := <-b.out:
				batch = append(batch[:0], m)
			default:
				return
			}
		case m := <-b.out:
			batch = append(batch[:0], m)
		}
	drain:
		for len(batch) < cap(batch) {
			select {
			case m := <-b.out:
				batch = append(batch, m)
			default:
				break drain
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		cmds, err := b.r.c.Pipelined(ctx, func(p redis.Pipeliner) error {
			for _, m := range batch {
				// The channel is the key: a Redis Cluster client routes a
				// sharded publish by it, which it cannot tell for a
				// command it has no information on yet.
				cmd := redis.NewIntCmd(ctx, b.r.pubCmd, m.ch, m.payload)
				cmd.SetFirstKeyPos(1)
				_ = p.Process(ctx, cmd)
			}
			return nil
		})
		cancel()
		if err != nil {
			failed := 0
			for _, c := range cmds {
				if c.Err() != nil {
					failed++
				}
			}
			b.stats.dropped.Add(uint64(max(failed, 1)))
			b.stats.published.Add(uint64(len(batch) - max(failed, 1)))
			select {
			case <-b.quit:
				return // closing, and Redis is away: do not wait for it
			default:
			}
			continue
		}
		b.stats.published.Add(uint64(len(batch)))
	}
}

// housekeeper (un)subscribes channels, keeps this node's heartbeat, and
// clears the presence of dead nodes and expired presence, until close.
func (b *presenceBus) housekeeper() {
	defer b.wg.Done()
	every := max(b.r.opts.NodeTTL/3, 10*time.Millisecond)
	t := time.NewTicker(every)
	defer t.Stop()
	b.beat()
	for {
		select {
		case <-b.quit:
			return
		case <-b.wake:
			b.subscribeDirty()
		case <-t.C:
			b.beat()
			b.sweep(time.Now())
		}
	}
}

// beat refreshes this node's heartbeat key.
func (b *presenceBus) beat() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := b.r.c.Set(ctx, b.r.heartbeatKey(b.origin), "1", b.r.opts.NodeTTL).Err(); err != nil {
		b.r.log.Debug("redisrelay: presence heartbeat", "err", err)
	}
}

// subscribeDirty subscribes the channels that have members and are not
// subscribed, and unsubscribes those that have none.
func (b *presenceBus) subscribeDirty() {
	b.mu.Lock()
	names := make([]string, 0, len(b.dirty))
	for n := range b.dirty {
		names = append(names, n)
	}
	clear(b.dirty)
	b.mu.Unlock()
	for _, name := range names {
		b.mu.Lock()
		ch := b.chans[name]
		var drop *Subscription
		want := false
		switch {
		case ch == nil:
		case len(ch.members) == 0:
			drop, ch.sub = ch.sub, nil
			delete(b.chans, name)
		case ch.sub == nil:
			want = true
		}
		b.mu.Unlock()
		if drop != nil {
			drop.Close()
		}
		if !want {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		sub, err := b.r.sub.subscribeRaw(ctx, ch.rch,
			func(payload string) { b.receive(name, payload) },
			func() { b.joined(name) })
		cancel()
		b.mu.Lock()
		switch {
		case err != nil:
			// Only a closing subscriber refuses; a broken connection is
			// retried by go-redis.
			b.r.log.Debug("redisrelay: presence subscribe", "channel", name, "err", err)
		case b.chans[name] != ch || len(ch.members) == 0:
			drop = sub // left while subscribing
		default:
			ch.sub = sub
		}
		b.mu.Unlock()
		if drop != nil && err == nil {
			sub.Close()
		}
	}
}

// receive handles a message on the pub/sub channel of presence channel
// name (the subscriber's goroutine calls it).
func (b *presenceBus) receive(name, payload string) {
	m, err := decodePresenceMsg([]byte(payload))
	if err != nil || m.Ch != name {
		b.stats.bad.Add(1)
		b.r.log.Warn("redisrelay: bad presence message", "channel", name, "err", err)
		return
	}
	if m.O == b.origin {
		return
	}
	b.stats.received.Add(1)
	now := time.Now()
	b.mu.Lock()
	b.alive[m.O] = now
	ch := b.chans[name]
	if ch == nil || len(ch.members) == 0 {
		b.mu.Unlock()
		return
	}
	members := ch.memberList()
	if m.K == "r" {
		b.mu.Unlock()
		for _, l := range members {
			l.m.Request()
		}
		return
	}
	p, err := m.update()
	if err != nil {
		b.mu.Unlock()
		b.stats.bad.Add(1)
		return
	}
	id := remoteID{p.Src, p.ID}
	e := ch.remote[id]
	switch {
	case e != nil && e.origin != m.O && p.Seq < e.p.Seq:
		// An older word from the node the client left.
		b.mu.Unlock()
		return
	case p.Cleared():
		if e == nil || e.origin != m.O {
			b.mu.Unlock()
			return // not shown here, or shown for another node now
		}
		delete(ch.remote, id)
	default:
		ch.remote[id] = &remoteEntry{origin: m.O, p: p, at: now}
	}
	b.mu.Unlock()
	for _, l := range members {
		l.m.Deliver(p)
	}
}

// memberList returns ch's members. b.mu must be held.
func (ch *presChan) memberList() []*presLink {
	out := make([]*presLink, 0, len(ch.members))
	for l := range ch.members {
		out = append(out, l)
	}
	return out
}

// sweep clears the presence of nodes whose heartbeat is gone, and
// presence not updated for PresenceTTL.
func (b *presenceBus) sweep(now time.Time) {
	nodeTTL, presTTL := b.r.opts.NodeTTL, b.r.opts.PresenceTTL
	// Which origins to ask about: those with presence here that were not
	// heard of for a while.
	b.mu.Lock()
	ask := make(map[string]struct{})
	for _, ch := range b.chans {
		for _, e := range ch.remote {
			if now.Sub(b.alive[e.origin]) >= nodeTTL/3 {
				ask[e.origin] = struct{}{}
			}
		}
	}
	b.mu.Unlock()
	dead := make(map[string]bool)
	for origin := range ask {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		n, err := b.r.c.Exists(ctx, b.r.heartbeatKey(origin)).Result()
		cancel()
		switch {
		case err != nil:
			// Redis cannot tell: nobody is declared dead meanwhile.
		case n > 0:
			b.mu.Lock()
			b.alive[origin] = now
			b.mu.Unlock()
		default:
			dead[origin] = true
		}
	}
	type clearing struct {
		to []*presLink
		p  collab.PresenceUpdate
	}
	var out []clearing
	b.mu.Lock()
	for _, ch := range b.chans {
		var members []*presLink
		for id, e := range ch.remote {
			orphan := dead[e.origin] && now.Sub(b.alive[e.origin]) >= nodeTTL
			if !orphan && now.Sub(e.at) < presTTL {
				continue
			}
			delete(ch.remote, id)
			if orphan {
				b.stats.orphaned.Add(1)
			} else {
				b.stats.expired.Add(1)
			}
			if members == nil {
				members = ch.memberList()
			}
			p := e.p
			p.Text, p.Raw = nil, nil
			out = append(out, clearing{members, p})
		}
	}
	// Forget origins nothing here refers to.
	used := make(map[string]struct{})
	for _, ch := range b.chans {
		for _, e := range ch.remote {
			used[e.origin] = struct{}{}
		}
	}
	for o := range b.alive {
		if _, ok := used[o]; !ok {
			delete(b.alive, o)
		}
	}
	b.mu.Unlock()
	for _, c := range out {
		for _, l := range c.to {
			l.m.Deliver(c.p)
		}
	}
}

// close stops the goroutines and deletes the heartbeat key, so the other
// nodes clear this node's presence (should its clients' clears have been
// lost) within NodeTTL.
func (b *presenceBus) close() {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return
	}
	b.closed = true
	started := b.started
	b.mu.Unlock()
	if !started {
		return
	}
	close(b.quit)
	b.wg.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = b.r.c.Del(ctx, b.r.heartbeatKey(b.origin)).Err()
}

// subscribeRaw subscribes channel ch for the presence bus: raw gets each
// message's payload, resync is called when the subscription becomes
// active (as Handler.Resync).
func (s *subscriber) subscribeRaw(ctx context.Context, ch string, raw func(string), resync func()) (*Subscription, error) {
	sub := &Subscription{s: s, ch: ch, h: Handler{Resync: resync}, raw: raw}
	s.mu.Lock()
	active, err := s.add(ctx, collab.Key{Collection: "presence", ID: ch}, sub)
	s.mu.Unlock()
	if err != nil {
		return nil, err
	}
	if active {
		resync()
	}
	return sub, nil
}

// presenceMsg is a presence message on the wire.
type presenceMsg struct {
	O   string          `json:"o"`  // origin
	K   string          `json:"k"`  // "p" update, "r" request
	Ch  string          `json:"ch"` // presence channel
	ID  string          `json:"id,omitempty"`
	Src string          `json:"src,omitempty"`
	PV  uint64          `json:"pv,omitempty"`
	C   *string         `json:"c,omitempty"` // document presence: collection
	D   string          `json:"d,omitempty"` // and id
	V   uint64          `json:"v,omitempty"`
	T   string          `json:"t,omitempty"`
	X   bool            `json:"x,omitempty"` // P is a text presence
	P   json.RawMessage `json:"p,omitempty"` // absent: cleared
}

func encodePresenceMsg(origin string, p collab.PresenceUpdate) []byte {
	m := presenceMsg{O: origin, K: "p", Ch: p.Channel, ID: p.ID, Src: p.Src, PV: p.Seq}
	if p.Doc != nil {
		c := p.Doc.Collection
		m.C, m.D, m.V, m.T = &c, p.Doc.ID, p.Version, p.Type
	}
	switch {
	case p.Text != nil:
		m.X, m.P = true, ot.EncodePresence(*p.Text)
	case p.Raw != nil:
		m.P = p.Raw
	}
	b, _ := json.Marshal(m) // cannot fail: strings and valid JSON
	return b
}

func encodeRequestMsg(origin, channel string) []byte {
	b, _ := json.Marshal(presenceMsg{O: origin, K: "r", Ch: channel})
	return b
}

func decodePresenceMsg(data []byte) (presenceMsg, error) {
	var m presenceMsg
	if err := json.Unmarshal(data, &m); err != nil {
		return m, err
	}
	if m.O == "" || m.Ch == "" || m.K != "p" && m.K != "r" {
		return m, fmt.Errorf("%w: presence message without origin, channel or kind", ErrInvalid)
	}
	return m, nil
}

// update returns the presence update m carries.
func (m presenceMsg) update() (collab.PresenceUpdate, error) {
	if m.ID == "" {
		return collab.PresenceUpdate{}, fmt.Errorf("%w: presence without an id", ErrInvalid)
	}
	p := collab.PresenceUpdate{Channel: m.Ch, ID: m.ID, Src: m.Src, Seq: m.PV}
	if m.C != nil {
		p.Doc = &collab.Key{Collection: *m.C, ID: m.D}
		p.Version, p.Type = m.V, m.T
	}
	switch {
	case len(m.P) == 0 || string(m.P) == "null":
	case m.X:
		t, err := ot.DecodePresence(m.P)
		if err != nil {
			return collab.PresenceUpdate{}, err
		}
		p.Text = &t
	default:
		p.Raw = append([]byte(nil), m.P...)
	}
	return p, nil
}
