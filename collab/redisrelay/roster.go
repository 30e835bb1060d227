package redisrelay

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// A Roster places each document's WebSocket editors on one node of the
// cluster (web.Router): the members are the nodes that advertise an
// address their peers reach them at, kept in Redis, and a document's
// node is the member its name scores highest with (rendezvous hashing),
// so that every node that sees the same members names the same one, and
// a member that comes or goes moves only the documents it scores highest
// for. A member that does not take an upgrade is passed over here for a
// while (RosterOptions.DownFor), as the others pass over it when they
// find it down too; its entry in Redis lapses after MemberTTL.
//
// Redis keeps the members in a sorted set scored by when each entry
// lapses (Redis's clock, so the nodes' clocks do not matter), and the
// cluster's peer token: a random string set once by the first node,
// which nodes pass upgrades to each other with.
type Roster struct {
	r    *Relay
	self string
	opts RosterOptions
	// fresh is the peer token this node sets if Redis has none.
	fresh string

	members atomic.Pointer[[]string] // sorted; nil until the first refresh
	token   atomic.Pointer[string]

	mu   sync.Mutex
	down map[string]time.Time // member -> until when it is passed over

	stop chan struct{}
	done chan struct{}
	once sync.Once
	// failures counts refreshes failed in a row (keep's goroutine only).
	failures int
}

// RosterOptions configures NewRoster; zero values mean the defaults.
type RosterOptions struct {
	// MemberTTL is how long a member's entry lives in Redis without a
	// refresh; it is refreshed every third of it. Default 6s.
	MemberTTL time.Duration
	// DownFor is how long a member that did not take an upgrade is
	// passed over. Default 10s.
	DownFor time.Duration
}

// NewRoster joins self (host:port, the address the other nodes reach
// this node's HTTP at) to the members and keeps its entry fresh until
// Close. Until the first refresh answers it routes nothing.
func (r *Relay) NewRoster(self string, opts RosterOptions) (*Roster, error) {
	host, port, err := net.SplitHostPort(self)
	if err != nil || host == "" || port == "" || port == "0" {
		return nil, fmt.Errorf("redisrelay: advertised address %q is not host:port", self)
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		return nil, fmt.Errorf("redisrelay: advertised address %q names no host the other nodes can reach", self)
	}
	if opts.MemberTTL <= 0 {
		opts.MemberTTL = 6 * time.Second
	}
	if opts.DownFor <= 0 {
		opts.DownFor = 10 * time.Second
	}
	var fresh [16]byte
	_, _ = rand.Read(fresh[:]) // never fails (crypto/rand documents it)
	ro := &Roster{r: r, self: self, opts: opts, fresh: hex.EncodeToString(fresh[:]), down: make(map[string]time.Time),
		stop: make(chan struct{}), done: make(chan struct{})}
	go ro.keep()
	return ro, nil
}

// rosterScript refreshes a member and reads the roster. KEYS[1] is the
// members' sorted set, KEYS[2] the peer token; ARGV[1] the member ("" to
// only read), ARGV[2] its time to live in ms, ARGV[3] a token to set if
// there is none. It returns the token and then the live members.
var rosterScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('SET', KEYS[2], ARGV[3], 'NX')
if ARGV[1] ~= '' then redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1]) end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local out = {redis.call('GET', KEYS[2])}
for _, m in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do out[#out + 1] = m end
return out
`)

// rosterKeys are the members' and the token's keys, in one hash slot.
func (r *Relay) rosterKeys() []string {
	return []string{r.opts.Prefix + "{roster}:members", r.opts.Prefix + "{roster}:token"}
}

// keep refreshes the entry every third of MemberTTL until Close, and
// removes it then.
func (ro *Roster) keep() {
	defer close(ro.done)
	tick := time.NewTicker(ro.opts.MemberTTL / 3)
	defer tick.Stop()
	for {
		ro.refresh()
		select {
		case <-ro.stop:
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			_ = ro.r.c.ZRem(ctx, ro.r.rosterKeys()[0], ro.self).Err()
			return
		case <-tick.C:
		}
	}
}

// refresh renews this node's entry and reads the members and the token;
// on an error it keeps what it had.
func (ro *Roster) refresh() {
	ctx, cancel := context.WithTimeout(context.Background(), ro.opts.MemberTTL/3)
	defer cancel()
	v, err := ro.r.run(ctx, "roster", rosterScript, ro.r.rosterKeys(), ro.self, ro.opts.MemberTTL.Milliseconds(), ro.fresh)
	if err != nil {
		// A few failures are Redis being away, which the rest of the
		// node reports; more, and routing is off without another sign.
		if ro.failures++; ro.failures == 3 {
			var refused redis.Error
			if errors.As(err, &refused) {
				// Redis answered with an error: a setting, not an outage.
				ro.r.log.Warn("redisrelay: Redis refuses the roster's script: editors are served where they land until it runs (are its commands allowed: TIME, SET, GET, ZADD, ZREMRANGEBYSCORE, ZRANGE?)", "err", err)
			} else {
				ro.r.log.Warn("redisrelay: Redis does not answer: editors are served where they land, and commits wait, then fail as retryable, until it does", "err", err)
			}
		} else {
			ro.r.log.Debug("redisrelay: roster refresh", "err", err)
		}
		return
	}
	if ro.failures >= 3 {
		ro.r.log.Info("redisrelay: Redis answers again: the roster is read again")
	}
	ro.failures = 0
	if len(v) == 0 {
		return
	}
	if tok, ok := v[0].(string); ok && tok != "" {
		ro.token.Store(&tok)
	}
	ms := make([]string, 0, len(v))
	for _, m := range v[1:] {
		if s, ok := m.(string); ok {
			ms = append(ms, s)
		}
	}
	sort.Strings(ms)
	ro.members.Store(&ms)
}

// Members returns the members this node knows of (this one included once
// its entry is in), sorted.
func (ro *Roster) Members() []string {
	if p := ro.members.Load(); p != nil {
		return append([]string(nil), *p...)
	}
	return nil
}

// PeerToken returns the cluster's peer token, or "" until the first
// refresh has read it.
func (ro *Roster) PeerToken() string {
	if p := ro.token.Load(); p != nil {
		return *p
	}
	return ""
}

// Route returns the member that serves doc's editors, or "" when it is
// this node, or when this node does not know the members yet.
func (ro *Roster) Route(doc string) string {
	p := ro.members.Load()
	if p == nil || ro.PeerToken() == "" {
		return ""
	}
	now := time.Now()
	ro.mu.Lock()
	defer ro.mu.Unlock()
	best, bestScore := ro.self, rendezvous(ro.self, doc)
	for _, m := range *p {
		if m == ro.self {
			continue
		}
		if until, ok := ro.down[m]; ok {
			if now.Before(until) {
				continue
			}
			delete(ro.down, m)
		}
		if s := rendezvous(m, doc); s > bestScore || (s == bestScore && m < best) {
			best, bestScore = m, s
		}
	}
	if best == ro.self {
		return ""
	}
	return best
}

// Down passes over addr for RosterOptions.DownFor.
func (ro *Roster) Down(addr string) {
	if addr == ro.self {
		return
	}
	ro.mu.Lock()
	ro.down[addr] = time.Now().Add(ro.opts.DownFor)
	ro.mu.Unlock()
}

// Close removes this node from the members and stops refreshing. The
// other nodes stop routing to it at their next refresh.
func (ro *Roster) Close() {
	ro.once.Do(func() { close(ro.stop) })
	<-ro.done
}

// rendezvous scores a member for a document: FNV-1a over both names,
// then a 64-bit finaliser so that nearby names spread. Every node
// computes the same score, whatever its platform.
func rendezvous(member, doc string) uint64 {
	const offset, prime = 14695981039346656037, 1099511628211
	h := uint64(offset)
	for i := 0; i < len(member); i++ {
		h = (h ^ uint64(member[i])) * prime
	}
	h = (h ^ 0xff) * prime // between the names: a byte no UTF-8 text holds
	for i := 0; i < len(doc); i++ {
		h = (h ^ uint64(doc[i])) * prime
	}
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb34fe1a85ccd
	h ^= h >> 33
	return h
}
