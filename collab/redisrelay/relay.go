package redisrelay

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/coedit/coedit/collab"
	"github.com/redis/go-redis/v9"
)

// PubSubMode chooses how doorbells are published.
type PubSubMode uint8

const (
	// PubSubAuto uses sharded pub/sub (SPUBLISH, SSUBSCRIBE) when Client
	// is a *redis.ClusterClient and plain pub/sub otherwise.
	PubSubAuto PubSubMode = iota
	// PubSubPlain uses PUBLISH and SUBSCRIBE. In a Redis Cluster every
	// message then reaches every node of the cluster.
	PubSubPlain
	// PubSubSharded uses SPUBLISH and SSUBSCRIBE (Redis 7.0 or later): a
	// message stays on the node that owns the document's slot.
	PubSubSharded
	// PubSubOff publishes nothing (a node that only commits, or tests).
	PubSubOff
)

// Options configures New. The zero value of each field means its
// default, except Client, which is required.
type Options struct {
	// Client is a single-node client (*redis.Client) or a cluster client
	// (*redis.ClusterClient). Set ContextTimeoutEnabled on it, so that a
	// ctx deadline bounds a call even when Redis stops answering;
	// otherwise its ReadTimeout does. The Relay does not close it.
	Client redis.UniversalClient
	// Prefix starts every key and channel name. It may not contain '{'
	// or '}' (the hash tag is the Relay's). Default "coedit:".
	Prefix string
	// TailLen is how many of a document's newest records the stream
	// keeps at least; records since the snapshot in Redis are kept too
	// (up to MaxTailLen), so a node can always load snapshot plus tail.
	// Default 10000.
	TailLen int
	// MaxTailLen bounds the stream even when no snapshot is saved.
	// Default 4 * TailLen.
	MaxTailLen int
	// PubSub chooses plain or sharded pub/sub. Default PubSubAuto.
	PubSub PubSubMode
	// NodeID names this node in logs (default a random id, logged by New).
	NodeID string
	// Logger receives the relay's logs. Default slog.Default(). Where
	// several nodes log to one place, give it the node's name
	// (Logger.With("node", NodeID)), as coedit serve does for every line.
	Logger *slog.Logger
	// NodeTTL is how long this node's heartbeat key lives: the other
	// nodes clear the presence of this node's clients when it has been
	// gone (and silent) for that long, so a node killed without a word
	// leaves no caret behind for longer. It is refreshed every third of
	// it. Default 15s.
	NodeTTL time.Duration
	// PresenceTTL is how long presence from another node lives here
	// without an update (collab.Options.PresenceTTL, which its node
	// applies too; this catches a clear lost while Redis was away).
	// Default collab.DefaultPresenceTTL.
	PresenceTTL time.Duration
	// Observe, if set, is called after every round trip to Redis with
	// the operation's name ("commit", "read", ...), its duration and its
	// error, for latency histograms. It must be fast and not block.
	Observe func(op string, d time.Duration, err error)
}

// Relay is the Redis commit point, shared log and doorbell of a coedit
// cluster (see doc.go). Its methods are safe for concurrent use.
type Relay struct {
	opts    Options
	c       redis.UniversalClient
	log     *slog.Logger
	pubCmd  string // "PUBLISH", "SPUBLISH" or ""
	sharded bool
	stats   counters
	sub     *subscriber
	pres    *presenceBus // presence.go
	index   *docIndex    // list.go
	writer  string       // names this process in commit turns (turn.go)
	// ownTag is how the doorbells of this process's turn-taking commits
	// begin (scripts.go's publish).
	ownTag string
	// pipe queues commit calls for pipelines (pipeline.go).
	pipe pipeliner
}

// writerName names this process in commit turns and doorbells: the node
// id, made fit to go into a JSON string as it is (each control
// character, quote and backslash becomes "_", and so does each run of
// invalid bytes), then a
// random part, so that two processes never share a name even when their
// ids differ only in those characters, or a node restarts under its old
// id. The commit script writes a writer name into the doorbell
// unchecked: CommitInTurn refuses one that is not plainInJSON.
func writerName(nodeID string) string {
	plain := strings.Map(func(c rune) rune {
		if !plainInJSONRune(c) {
			return '_'
		}
		return c
	}, strings.ToValidUTF8(nodeID, "_"))
	return plain + "." + randomID()
}

// plainInJSON reports whether s can go between a JSON string's quotes as
// it is: valid UTF-8 with no control character, quote or backslash.
func plainInJSON(s string) bool {
	return utf8.ValidString(s) && !strings.ContainsFunc(s, func(c rune) bool { return !plainInJSONRune(c) })
}

func plainInJSONRune(c rune) bool {
	return c >= 0x20 && c != 0x7f && c != '"' && c != '\\'
}

// New returns a Relay over opts.Client. It does not contact Redis.
func New(opts Options) (*Relay, error) {
	if opts.Client == nil {
		return nil, fmt.Errorf("%w: Options.Client is nil", ErrInvalid)
	}
	if opts.Prefix == "" {
		opts.Prefix = "coedit:"
	}
	if strings.ContainsAny(opts.Prefix, "{}") {
		return nil, fmt.Errorf("%w: Options.Prefix %q contains a brace", ErrInvalid, opts.Prefix)
	}
	if opts.TailLen <= 0 {
		opts.TailLen = 10000
	}
	if opts.MaxTailLen <= 0 {
		opts.MaxTailLen = 4 * opts.TailLen
	}
	opts.MaxTailLen = max(opts.MaxTailLen, opts.TailLen)
	if opts.NodeTTL <= 0 {
		opts.NodeTTL = 15 * time.Second
	}
	if opts.PresenceTTL <= 0 {
		opts.PresenceTTL = collab.DefaultPresenceTTL
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.NodeID == "" {
		opts.NodeID = randomID()
		opts.Logger.Info("redisrelay: generated a node id", "node", opts.NodeID)
	}
	r := &Relay{opts: opts, c: opts.Client, log: opts.Logger, writer: writerName(opts.NodeID)}
	r.ownTag = `{"w":"` + r.writer + `",`
	if !contextTimeouts(opts.Client) {
		r.log.Warn("redisrelay: the Redis client ignores context deadlines (set ContextTimeoutEnabled): a stalled Redis holds calls for its ReadTimeout")
	}
	_, cluster := opts.Client.(*redis.ClusterClient)
	switch opts.PubSub {
	case PubSubAuto:
		r.sharded = cluster
	case PubSubSharded:
		r.sharded = true
	}
	switch {
	case opts.PubSub == PubSubOff:
	case r.sharded:
		r.pubCmd = "SPUBLISH"
	default:
		r.pubCmd = "PUBLISH"
	}
	r.sub = newSubscriber(r)
	r.pres = newPresenceBus(r)
	r.index = newDocIndex(r)
	return r, nil
}

// NodeID returns the node id from Options (or the generated one).
func (r *Relay) NodeID() string { return r.opts.NodeID }

// Close ends every subscription and waits for the subscriber's
// goroutines. It does not close Options.Client. Calls other than
// Subscribe keep working until the client is closed.
func (r *Relay) Close() error {
	r.pres.close()
	r.index.close()
	r.sub.close()
	return nil
}

// run runs a script and records the round trip.
func (r *Relay) run(ctx context.Context, op string, s *redis.Script, keys []string, args ...any) ([]any, error) {
	start := time.Now()
	v, err := s.Run(ctx, r.c, keys, args...).Slice()
	r.record(op, time.Since(start), err)
	if err != nil {
		err = classify(op, err)
	}
	return v, err
}

// record counts a script call that took d and failed with err (nil if
// it did not), and tells Options.Observe.
func (r *Relay) record(op string, d time.Duration, err error) {
	r.stats.calls.Add(1)
	r.stats.callNanos.Add(uint64(d))
	if err != nil {
		r.stats.callErrors.Add(1)
	}
	if r.opts.Observe != nil {
		r.opts.Observe(op, d, err)
	}
}

// contextTimeouts reports whether c lets a ctx deadline bound a call.
func contextTimeouts(c redis.UniversalClient) bool {
	switch c := c.(type) {
	case *redis.Client:
		return c.Options().ContextTimeoutEnabled
	case *redis.ClusterClient:
		return c.Options().ContextTimeoutEnabled
	}
	return true // other clients: nothing to check
}

// randomID returns 16 random hex digits, for epochs and node ids.
func randomID() string {
	var b [8]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand documents it)
	return hex.EncodeToString(b[:])
}
