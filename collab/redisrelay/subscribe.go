package redisrelay

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/coedit/coedit/collab"
	"github.com/redis/go-redis/v9"
)

// Handler receives a subscribed document's doorbells. Its functions are
// called from the subscriber's goroutine (one per Redis node), in the
// order Redis sent the messages; they must not block, and may still be
// called briefly after Subscription.Close.
//
// Pub/sub is at most once: a doorbell can be lost while the connection
// is down. That is what Resync is for.
type Handler struct {
	// Deliver receives the records one commit added under epoch, in
	// version order. recs is empty when the doorbell only announces a
	// new epoch (Init or Renew). A record the caller has is skipped; one
	// past a gap means reading the gap (Relay.Read) first; an epoch that
	// is not the caller's means re-joining (doc.go).
	Deliver func(epoch string, recs []collab.Record)
	// Resync is called each time the subscription becomes active: after
	// Subscribe, and after the pub/sub connection broke and was
	// re-established. Doorbells may have been missed before it, so the
	// caller compares its head with Relay.Head (or reads on from its
	// head) once Resync was called.
	Resync func()
	// OthersOnly, when set and while it returns true, skips the
	// doorbells of this Relay's own turn-taking commits. The Cluster's
	// sessions hold those records once the commit call returns, so a
	// node would only decode each of its commits once more; after a call
	// that failed (the commit may have run in Redis all the same) it
	// returns false until the session commits again. A doorbell from
	// another process, or of a commit made without turns, is delivered
	// as ever.
	OthersOnly func() bool
}

// Subscription is one Handler's subscription to one document.
type Subscription struct {
	s  *subscriber
	ch string
	h  Handler
	// raw, when set, takes the messages instead of h.Deliver: a
	// presence channel's (presence.go).
	raw func(payload string)
}

// Subscribe starts delivering key's doorbells to h. One pub/sub
// connection per Redis node carries every subscribed document of this
// Relay; go-redis re-establishes it (pinging it every few seconds) after
// a break, and each of its documents' handlers then gets Resync.
func (r *Relay) Subscribe(ctx context.Context, key collab.Key, h Handler) (*Subscription, error) {
	return r.sub.subscribe(ctx, key, h)
}

// Close ends the subscription. It is safe to call more than once.
func (sub *Subscription) Close() { sub.s.unsubscribe(sub) }

// subscriber owns the Relay's pub/sub connections: one shard (a
// go-redis PubSub and its receive goroutine) per Redis node, and the
// map from channel to handlers. Its goroutines stop when close closes
// their PubSubs; close waits for them.
type subscriber struct {
	r  *Relay
	wg sync.WaitGroup

	mu     sync.Mutex
	closed bool
	chans  map[string]*channelSubs
	shards map[string]*shard // by node address; "" for a single node
}

type channelSubs struct {
	shard  *shard
	active bool // confirmed by Redis since the last (re)connect
	subs   map[*Subscription]struct{}
}

type shard struct {
	addr string
	ps   *redis.PubSub
}

func newSubscriber(r *Relay) *subscriber {
	return &subscriber{r: r, chans: make(map[string]*channelSubs), shards: make(map[string]*shard)}
}

func (s *subscriber) subscribe(ctx context.Context, key collab.Key, h Handler) (*Subscription, error) {
	if h.Deliver == nil || h.Resync == nil {
		return nil, fmt.Errorf("%w: Handler needs Deliver and Resync", ErrInvalid)
	}
	if s.r.pubCmd == "" {
		return nil, fmt.Errorf("%w: pub/sub is off (Options.PubSub)", ErrInvalid)
	}
	sub := &Subscription{s: s, ch: s.r.keys(key).channel, h: h}
	// The lock is held across the SUBSCRIBE write so that a concurrent
	// unsubscribe of the same channel cannot overtake it.
	s.mu.Lock()
	active, err := s.add(ctx, key, sub)
	s.mu.Unlock()
	if err != nil {
		return nil, err
	}
	if active {
		// The channel was confirmed before: no confirmation will come
		// for this subscription, so it gets its first Resync here.
		s.r.stats.resyncs.Add(1)
		h.Resync()
	}
	return sub, nil
}

// add subscribes sub's channel unless it is already; s.mu is held.
// active reports a channel that Redis confirmed already.
func (s *subscriber) add(ctx context.Context, key collab.Key, sub *Subscription) (active bool, err error) {
	ch := sub.ch
	if s.closed {
		return false, ErrClosed
	}
	if cs := s.chans[ch]; cs != nil {
		cs.subs[sub] = struct{}{}
		return cs.active, nil
	}
	addr := ""
	if cc, ok := s.r.c.(*redis.ClusterClient); ok && s.r.sharded {
		node, err := cc.MasterForKey(ctx, ch)
		if err != nil {
			return false, classify("subscribe", err)
		}
		addr = node.Options().Addr
	}
	sh := s.shards[addr]
	switch {
	case sh == nil && s.r.sharded:
		sh = s.start(addr, s.r.c.SSubscribe(ctx, ch))
	case sh == nil:
		sh = s.start(addr, s.r.c.Subscribe(ctx, ch))
	case s.r.sharded:
		err = sh.ps.SSubscribe(ctx, ch)
	default:
		err = sh.ps.Subscribe(ctx, ch)
	}
	if err != nil {
		// go-redis keeps the channel in its set and subscribes it when it
		// reconnects; the confirmation then calls Resync.
		s.r.log.Warn("redisrelay: subscribe failed, will retry on reconnect", "doc", key.String(), "err", err)
	}
	s.chans[ch] = &channelSubs{shard: sh, subs: map[*Subscription]struct{}{sub: {}}}
	return false, nil
}

// start begins receiving on ps; s.mu is held.
func (s *subscriber) start(addr string, ps *redis.PubSub) *shard {
	sh := &shard{addr: addr, ps: ps}
	s.shards[addr] = sh
	in := ps.ChannelWithSubscriptions(redis.WithChannelSize(1024))
	s.wg.Add(1)
	go s.receive(sh, in)
	return sh
}

// receive dispatches one shard's messages until its PubSub is closed
// (go-redis then closes in).
func (s *subscriber) receive(sh *shard, in <-chan any) {
	defer s.wg.Done()
	for m := range in {
		switch m := m.(type) {
		case *redis.Message:
			s.doorbell(m)
		case *redis.Subscription:
			s.confirmed(sh, m)
		}
	}
}

func (s *subscriber) doorbell(m *redis.Message) {
	st := &s.r.stats
	st.doorbells.Add(1)
	s.mu.Lock()
	cs := s.chans[m.Channel]
	own := strings.HasPrefix(m.Payload, s.r.ownTag)
	var hs []Handler
	var raws []func(string)
	skipped := false
	if cs != nil {
		for sub := range cs.subs {
			switch {
			case sub.raw != nil:
				raws = append(raws, sub.raw)
			case own && sub.h.OthersOnly != nil && sub.h.OthersOnly():
				skipped = true
			default:
				hs = append(hs, sub.h)
			}
		}
	}
	s.mu.Unlock()
	for _, raw := range raws {
		raw(m.Payload)
	}
	if skipped {
		st.ownDoorbells.Add(1)
	}
	if len(hs) == 0 {
		return
	}
	epoch, recs, err := decodeDoorbell([]byte(m.Payload))
	if err != nil {
		st.badDoorbells.Add(1)
		s.r.log.Error("redisrelay: bad doorbell", "channel", m.Channel, "err", err)
		return
	}
	for _, h := range hs {
		h.Deliver(epoch, recs)
	}
}

// confirmed handles Redis's answer to a (re)subscription: the channel
// is active again, and its handlers re-check what they may have missed.
// An unsubscribe confirmation needs nothing: either the channel was
// left, or (in a cluster, when its slot moved to another node) Redis
// dropped it, which doc.go lists as not handled yet.
func (s *subscriber) confirmed(sh *shard, m *redis.Subscription) {
	s.mu.Lock()
	if m.Kind != "subscribe" && m.Kind != "ssubscribe" {
		if cs := s.chans[m.Channel]; cs != nil && cs.shard == sh {
			s.r.log.Warn("redisrelay: Redis dropped a subscription", "channel", m.Channel, "kind", m.Kind)
		}
		s.mu.Unlock()
		return
	}
	cs := s.chans[m.Channel]
	var hs []Handler
	if cs != nil && cs.shard == sh {
		cs.active = true
		for sub := range cs.subs {
			hs = append(hs, sub.h)
		}
	}
	s.mu.Unlock()
	s.r.stats.resyncs.Add(uint64(len(hs)))
	for _, h := range hs {
		h.Resync()
	}
}

func (s *subscriber) unsubscribe(sub *Subscription) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cs := s.chans[sub.ch]
	if cs == nil {
		return
	}
	if _, ok := cs.subs[sub]; !ok {
		return
	}
	delete(cs.subs, sub)
	if len(cs.subs) > 0 || s.closed {
		return
	}
	delete(s.chans, sub.ch)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	var err error
	if s.r.sharded {
		err = cs.shard.ps.SUnsubscribe(ctx, sub.ch)
	} else {
		err = cs.shard.ps.Unsubscribe(ctx, sub.ch)
	}
	if err != nil {
		// go-redis forgot the channel anyway: a reconnect will not
		// subscribe it again, and a stray message finds no handler.
		s.r.log.Debug("redisrelay: unsubscribe", "channel", sub.ch, "err", err)
	}
}

// close closes every shard's PubSub and waits for the receive
// goroutines to drain.
func (s *subscriber) close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	shards := s.shards
	s.shards = nil
	s.chans = make(map[string]*channelSubs)
	s.mu.Unlock()
	for _, sh := range shards {
		_ = sh.ps.Close()
	}
	s.wg.Wait()
}
