package main

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/coedit/coedit/collab"
	"github.com/coedit/coedit/collab/redisrelay"
	"github.com/coedit/coedit/internal/rawio"
	"github.com/coedit/coedit/internal/statmetrics"
	"github.com/coedit/coedit/storage"
)

// A node with --redis is one node of a cluster (DESIGN.md §7): Redis is
// the commit point, shared log and doorbell, wired as the Hub's Relay
// and Sequencer (collab/redisrelay.Cluster); the node's bbolt store stays
// its durable copy.

var _ redisrelay.EpochStore = (*storage.DB)(nil)

// clusterNode is what startCluster opened.
type clusterNode struct {
	client  redis.UniversalClient
	relay   *redisrelay.Relay
	cluster *redisrelay.Cluster
	calls   *prometheus.HistogramVec
	errors  *prometheus.CounterVec
}

// redisSpec is --redis parsed.
type redisSpec struct {
	cluster bool
	addrs   []string
	single  *redis.Options // for one server
	auth    *url.URL       // credentials and TLS of a cluster's first seed
}

// parseRedis reads --redis: a URL (redis://[user:password@]host:port[/db],
// rediss:// for TLS) or host:port for one server; a comma-separated list
// of seeds (URLs or host:port; the first one's credentials apply to all)
// for a Redis Cluster. A single seed of a cluster is written with a
// trailing comma.
func parseRedis(v string) (redisSpec, error) {
	var spec redisSpec
	parts := strings.Split(v, ",")
	for _, p := range parts {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		if !strings.Contains(p, "://") {
			p = "redis://" + p
		}
		u, err := url.Parse(p)
		if err != nil || (u.Scheme != "redis" && u.Scheme != "rediss") || u.Host == "" {
			return redisSpec{}, fmt.Errorf("%q is not host:port or redis://host:port", p)
		}
		if spec.auth == nil {
			spec.auth = u
		}
		spec.addrs = append(spec.addrs, u.Host)
	}
	if len(spec.addrs) == 0 {
		return redisSpec{}, fmt.Errorf("no Redis address in %q", v)
	}
	spec.cluster = len(parts) > 1
	if !spec.cluster {
		opts, err := redis.ParseURL(spec.auth.String())
		if err != nil {
			return redisSpec{}, err
		}
		spec.single = opts
	}
	return spec, nil
}

// client returns the go-redis client for spec. Every call is bounded by
// its context (ContextTimeoutEnabled), which the relay sets.
func (spec redisSpec) client() redis.UniversalClient {
	if !spec.cluster {
		o := *spec.single
		o.ContextTimeoutEnabled = true
		o.DialTimeout = 2 * time.Second
		o.Dialer = rawDialer(o.DialTimeout, o.TLSConfig)
		return redis.NewClient(&o)
	}
	o := &redis.ClusterOptions{Addrs: spec.addrs, ContextTimeoutEnabled: true, DialTimeout: 2 * time.Second}
	if u := spec.auth.User; u != nil {
		o.Username = u.Username()
		o.Password, _ = u.Password()
	}
	if spec.auth.Scheme == "rediss" {
		single, err := redis.ParseURL(spec.auth.String())
		if err == nil {
			o.TLSConfig = single.TLSConfig
		}
	}
	o.Dialer = rawDialer(o.DialTimeout, o.TLSConfig)
	return redis.NewClusterClient(o)
}

// rawDialer dials Redis with go-redis's own dialer for timeout and tlsConf
// (so its keep-alive and TLS settings hold) and reads and writes a plain
// TCP connection with raw system calls (rawio.Wrap; a TLS connection is
// left as it is), as the server's sockets are: a commit's call to Redis
// then wakes no runtime monitor thread on an idle node (docs/decisions.md,
// "Socket I/O and the log's write as raw system calls").
func rawDialer(timeout time.Duration, tlsConf *tls.Config) func(ctx context.Context, network, addr string) (net.Conn, error) {
	dial := redis.NewDialer(&redis.Options{DialTimeout: timeout, TLSConfig: tlsConf})
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return rawio.Wrap(c), nil
	}
}

// newNodeID returns a random node id for logs.
func newNodeID() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// startCluster connects the node to Redis. What it opens is added to cl,
// to be closed after the hub. It does not wait for Redis: a node whose
// Redis is down starts, /ready fails, and requests fail with a retryable
// error until Redis answers.
func startCluster(cfg serveConfig, store *storage.DB, log *slog.Logger, cl *closers) (*clusterNode, error) {
	spec, err := parseRedis(cfg.Redis)
	if err != nil {
		return nil, fmt.Errorf("serve: --redis: %w", err)
	}
	cn := &clusterNode{
		calls: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "coedit_redis_call_seconds",
			Help:    "Round trips to Redis (Lua scripts) by operation: commit, read, head, load, init, renew, snapshot.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2.5, 12),
		}, []string{"op"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "coedit_redis_call_errors_total",
			Help: "Round trips to Redis that failed, by operation.",
		}, []string{"op"}),
	}
	// The error counters exist from the start, at 0, so that an alert on
	// their rate sees them before the first error.
	for _, op := range []string{"commit", "head", "init", "load", "read", "renew", "roster", "snapshot", "mark_replaced"} {
		cn.errors.WithLabelValues(op)
	}
	// go-redis has one logger for the process, read by its goroutines
	// without a lock: set once, with the first node's logger.
	setRedisLogger.Do(func() { redis.SetLogger(&redisLogger{log: log}) })
	cn.client = spec.client()
	cl.add("redis client", func(context.Context) error { return cn.client.Close() })
	cn.relay, err = redisrelay.New(redisrelay.Options{
		Client:  cn.client,
		Prefix:  cfg.RedisPrefix,
		NodeID:  cfg.NodeID,
		NodeTTL: cfg.NodeTTL,
		Logger:  log,
		Observe: func(op string, d time.Duration, err error) {
			cn.calls.WithLabelValues(op).Observe(d.Seconds())
			if err != nil {
				cn.errors.WithLabelValues(op).Inc()
			}
		},
	})
	if err != nil {
		return nil, fmt.Errorf("serve: %w", err)
	}
	cl.add("redis relay", func(context.Context) error { return cn.relay.Close() })
	cn.cluster, err = redisrelay.NewCluster(redisrelay.ClusterOptions{Relay: cn.relay, Store: store, Logger: log})
	if err != nil {
		return nil, fmt.Errorf("serve: %w", err)
	}
	log.Info("coedit joins a cluster", "redis", strings.Join(spec.addrs, ","),
		"redis_cluster", spec.cluster, "prefix", cfg.RedisPrefix)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		cn.watchFirstAnswer(ctx, log, strings.Join(spec.addrs, ","))
	}()
	cl.add("redis watch", func(context.Context) error { cancel(); <-done; return nil })
	return cn, nil
}

// watchFirstAnswer tells the operator, at start, whether Redis answers: a
// mistyped --redis or a Redis that is down otherwise shows only as /ready
// failing and requests refused. It warns when the first PING fails, then
// tries every firstAnswerEvery until one succeeds, and says so.
func (cn *clusterNode) watchFirstAnswer(ctx context.Context, log *slog.Logger, addrs string) {
	warned := false
	for {
		pctx, cancel := context.WithTimeout(ctx, firstAnswerEvery)
		err := cn.ready(pctx)
		cancel()
		switch {
		case ctx.Err() != nil:
			return
		case err == nil:
			if warned {
				log.Info("redis answers: the node serves documents", "redis", addrs)
			}
			return
		case !warned:
			log.Warn("redis does not answer: until it does, /ready fails and requests are refused as retryable", "redis", addrs, "err", err)
			warned = true
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(firstAnswerEvery):
		}
	}
}

// firstAnswerEvery is how often watchFirstAnswer tries Redis.
const firstAnswerEvery = 2 * time.Second

// redisLogger hands go-redis's own log lines (a pool that fails to dial,
// a reconnecting pub/sub) to the node's logger, so that they come out in
// its format (--log-format json) and level, not as plain text on stderr.
// A line that repeats within repeatQuiet is counted, not written
// (repeats): a pool that cannot dial says so a few times a second.
type redisLogger struct {
	log     *slog.Logger
	repeats repeats
}

var setRedisLogger sync.Once

func (l *redisLogger) Printf(ctx context.Context, format string, v ...any) {
	msg := "redis client: " + strings.TrimPrefix(fmt.Sprintf(format, v...), "redis: ")
	write, held := l.repeats.pass(msg, time.Now())
	switch {
	case !write:
	case held > 0:
		l.log.Warn(msg, "component", "go-redis", "repeated_since_last", held)
	default:
		l.log.Warn(msg, "component", "go-redis")
	}
}

// ready is /ready's check: Redis answers a PING (every master of a Redis
// Cluster).
func (cn *clusterNode) ready(ctx context.Context) error {
	var err error
	if cc, ok := cn.client.(*redis.ClusterClient); ok {
		err = cc.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error { return c.Ping(ctx).Err() })
	} else {
		err = cn.client.Ping(ctx).Err()
	}
	if err != nil {
		return fmt.Errorf("redis unreachable: %w", err)
	}
	return nil
}

// collectors returns the cluster's metrics for /metrics.
func (cn *clusterNode) collectors(hub *collab.Hub) []prometheus.Collector {
	return []prometheus.Collector{cn.calls, cn.errors, newClusterCollector(cn.relay, cn.cluster, hub)}
}

// clusterFigures are the relay's, the cluster's and the hub's counters
// at one moment.
type clusterFigures struct {
	relay    redisrelay.Stats
	presence redisrelay.PresenceStats
	cluster  redisrelay.ClusterStats
	hub      collab.Stats
}

// newClusterCollector reports the relay's, the cluster's and the hub's
// cluster counters, read at scrape time.
func newClusterCollector(r *redisrelay.Relay, cl *redisrelay.Cluster, hub *collab.Hub) *statmetrics.Collector[clusterFigures] {
	c := statmetrics.New(func() clusterFigures {
		return clusterFigures{relay: r.Stats(), presence: r.PresenceStats(), cluster: cl.Stats(), hub: hub.Stats()}
	})
	c.Counter("coedit_redis_commits_total", "Batches of records this node committed to Redis.", func(f clusterFigures) uint64 { return f.relay.Commits })
	c.Counter("coedit_redis_conflicts_total", "Commits Redis refused because other nodes had committed first (the node caught up and retried).", func(f clusterFigures) uint64 { return f.relay.Conflicts })
	c.Counter("coedit_redis_duplicates_total", "Commits whose first op Redis already had (a resend), answered at its version.", func(f clusterFigures) uint64 { return f.relay.Duplicates })
	c.Counter("coedit_redis_epoch_errors_total", "Commits refused because the document's epoch changed (Redis restarted or was reseeded).", func(f clusterFigures) uint64 { return f.relay.EpochErrors })
	c.Counter("coedit_redis_gap_reads_total", "Reads of the shared log to fill gaps and catch up.", func(f clusterFigures) uint64 { return f.relay.GapReads })
	c.Counter("coedit_redis_gap_records_total", "Records read from the shared log to fill gaps and catch up.", func(f clusterFigures) uint64 { return f.relay.GapRecords })
	c.Counter("coedit_redis_doorbells_total", "Pub/sub messages received.", func(f clusterFigures) uint64 { return f.relay.Doorbells })
	c.Counter("coedit_redis_own_doorbells_total", "Doorbells of this node's own commits, which its sessions pass over without decoding.", func(f clusterFigures) uint64 { return f.relay.OwnDoorbells })
	c.Counter("coedit_redis_commit_pipelines_total", "Pipelines that carried commits queued while others were in flight (each commit in one also counts as a commit).", func(f clusterFigures) uint64 { return f.relay.Pipelines })
	c.Counter("coedit_redis_resyncs_total", "Subscriptions (re)confirmed, each followed by a catch-up.", func(f clusterFigures) uint64 { return f.relay.Resyncs })
	c.Counter("coedit_cluster_retries_total", "Redis round trips repeated because Redis was unreachable.", func(f clusterFigures) uint64 { return f.cluster.Retries })
	c.Counter("coedit_cluster_seeds_total", "Documents this node seeded into a Redis that had none of them.", func(f clusterFigures) uint64 { return f.cluster.Seeds })
	c.Counter("coedit_cluster_renewals_total", "Epochs this node renewed after Redis restarted or lost records.", func(f clusterFigures) uint64 { return f.cluster.Renewals })
	c.Counter("coedit_cluster_forks_total", "Catch-ups that found this node's records replaced by the cluster's history.", func(f clusterFigures) uint64 { return f.cluster.Forks })
	c.Counter("coedit_cluster_reoffered_total", "Records Redis lost that this node offered again.", func(f clusterFigures) uint64 { return f.cluster.Reoffered })
	c.Counter("coedit_cluster_lost_total", "Records Redis lost that could not be offered again (logged).", func(f clusterFigures) uint64 { return f.cluster.Lost })
	c.Counter("coedit_cluster_installs_total", "Catch-ups that installed Redis's snapshot as the base of this node's log (the node was behind Redis's tail).", func(f clusterFigures) uint64 { return f.cluster.Installs })
	c.Counter("coedit_redis_turn_waits_total", "Commits told to wait for another node's turn on the document (redisrelay/turn.go).", func(f clusterFigures) uint64 { return f.relay.Waits })
	c.Counter("coedit_cluster_turn_doorbells_total", "Turn waits that took the records they missed from the holder's doorbell.", func(f clusterFigures) uint64 { return f.cluster.TurnDoorbells })
	c.Counter("coedit_cluster_snapshots_total", "Snapshots this node saved to Redis (each trims the document's stream behind it).", func(f clusterFigures) uint64 { return f.cluster.Snapshots })
	c.Counter("coedit_presence_published_total", "Presence messages this node published to the others.", func(f clusterFigures) uint64 { return f.presence.Published })
	c.Counter("coedit_presence_dropped_total", "Presence messages not published (queue full or Redis unreachable).", func(f clusterFigures) uint64 { return f.presence.Dropped })
	c.Counter("coedit_presence_received_total", "Presence messages received from the other nodes.", func(f clusterFigures) uint64 { return f.presence.Received })
	c.Counter("coedit_presence_orphaned_total", "Presence of other nodes' clients cleared because their node stopped (its heartbeat expired).", func(f clusterFigures) uint64 { return f.presence.Orphaned })
	c.Counter("coedit_presence_expired_total", "Presence of other nodes' clients cleared because it was not updated for the presence TTL.", func(f clusterFigures) uint64 { return f.presence.Expired })
	c.Counter("coedit_commit_conflicts_total", "Group commits planned again after a conflict at the commit point.", func(f clusterFigures) uint64 { return f.hub.CommitConflicts })
	c.Counter("coedit_cluster_syncs_total", "Catch-ups of sessions with the cluster's head.", func(f clusterFigures) uint64 { return f.hub.Syncs })
	c.Counter("coedit_cluster_sync_errors_total", "Catch-ups that failed (Redis unreachable).", func(f clusterFigures) uint64 { return f.hub.SyncErrors })
	return c
}
