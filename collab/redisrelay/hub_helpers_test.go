package redisrelay_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coedit/coedit/collab"
	"github.com/coedit/coedit/collab/redisrelay"
	"github.com/coedit/coedit/internal/redistest"
	"github.com/coedit/coedit/ot"
	"github.com/coedit/coedit/storage"
	"github.com/redis/go-redis/v9"
)

var _ redisrelay.EpochStore = (*storage.DB)(nil)

// hubNode is one coedit node in a test: a Hub over its own bbolt store,
// joined to a Redis through its own client, Relay and Cluster.
type hubNode struct {
	name    string
	path    string
	db      *storage.DB
	relay   *redisrelay.Relay
	cluster *redisrelay.Cluster
	hub     *collab.Hub
	closed  bool
}

// nodeConfig are the knobs tests turn.
type nodeConfig struct {
	path     string // reopen this store (default a new one)
	retryFor time.Duration
	tailLen  int
	idle     time.Duration
	logger   *slog.Logger
	// snapEvery, if set, is the Hub's and the Cluster's SnapshotEvery.
	snapEvery int
	// fsync makes the store sync every commit (storage.SyncAlways);
	// tests default to SyncNone.
	fsync bool
	// store, if set, wraps the node's bbolt store for its Hub and Cluster.
	store func(*storage.DB) redisrelay.EpochStore
	// seq, if set, wraps the node's Cluster as its Hub's Sequencer.
	seq func(collab.Sequencer) collab.Sequencer

	nodeTTL     time.Duration // redisrelay.Options.NodeTTL
	callTimeout time.Duration // redisrelay.ClusterOptions.CallTimeout
	turnTTL     time.Duration // redisrelay.ClusterOptions.TurnTTL
}

// startNode starts a node on Redis at addr (a single node, or cluster
// seeds joined by commas) with key prefix p. A cleanup stops it.
func startNode(t testing.TB, name, addr, p string, cfg nodeConfig) *hubNode {
	t.Helper()
	n := &hubNode{name: name, path: cfg.path}
	if n.path == "" {
		n.path = filepath.Join(t.TempDir(), "coedit.db")
	}
	mode := storage.SyncNone
	if cfg.fsync {
		mode = storage.SyncAlways
	}
	db, err := storage.Open(n.path, storage.Options{Sync: mode})
	if err != nil {
		t.Fatalf("storage.Open(%s) = %v", n.path, err)
	}
	n.db = db
	var c redis.UniversalClient
	if strings.Contains(addr, ",") {
		c = redis.NewClusterClient(&redis.ClusterOptions{Addrs: strings.Split(addr, ","), ContextTimeoutEnabled: true, MaxRetries: 1, DialTimeout: time.Second})
	} else {
		c = redis.NewClient(&redis.Options{Addr: addr, ContextTimeoutEnabled: true, MaxRetries: 1, DialTimeout: time.Second})
	}
	log := cfg.logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	n.relay, err = redisrelay.New(redisrelay.Options{Client: c, Prefix: p, NodeID: name, Logger: log, TailLen: cfg.tailLen, NodeTTL: cfg.nodeTTL})
	if err != nil {
		t.Fatalf("redisrelay.New() = %v", err)
	}
	var st redisrelay.EpochStore = db
	if cfg.store != nil {
		st = cfg.store(db)
	}
	n.cluster, err = redisrelay.NewCluster(redisrelay.ClusterOptions{Relay: n.relay, Store: st, RetryFor: cfg.retryFor, CallTimeout: cfg.callTimeout, SnapshotEvery: cfg.snapEvery, TurnTTL: cfg.turnTTL})
	if err != nil {
		t.Fatalf("NewCluster() = %v", err)
	}
	var sq collab.Sequencer = n.cluster
	if cfg.seq != nil {
		sq = cfg.seq(n.cluster)
	}
	n.hub = collab.NewHub(collab.Options{Store: st, Relay: n.cluster, Sequencer: sq, Logger: log, IdleTimeout: cfg.idle, SnapshotEvery: cfg.snapEvery})
	t.Cleanup(func() {
		n.stop(t)
		c.Close()
	})
	return n
}

// testRedis is a test's redis-server and the key prefix its nodes share.
type testRedis struct {
	srv    *redistest.Server
	prefix string
}

// startNodes starts a redis-server with opts and, under a key prefix of
// the test's own, a node on it for each name, all with cfg. The returned
// testRedis starts more nodes (or restarts one on its store) under the
// same prefix.
func startNodes(t *testing.T, opts redistest.ServerOptions, cfg nodeConfig, names ...string) (*testRedis, []*hubNode) {
	t.Helper()
	r := &testRedis{srv: redistest.StartServer(t, opts), prefix: prefix(t)}
	nodes := make([]*hubNode, len(names))
	for i, name := range names {
		nodes[i] = r.startNode(t, name, cfg)
	}
	return r, nodes
}

// startNode starts another node on r.
func (r *testRedis) startNode(t *testing.T, name string, cfg nodeConfig) *hubNode {
	t.Helper()
	return startNode(t, name, r.srv.Addr(), r.prefix, cfg)
}

// createDoc creates docKey(1) with text on n, as (x, 1), and returns its
// key.
func createDoc(t *testing.T, n *hubNode, text string) collab.Key {
	t.Helper()
	key := docKey(1)
	submit(t, n, key, createSub("x", 1, text))
	return key
}

// stop closes the node's hub, relay and store (as a graceful shutdown).
func (n *hubNode) stop(t testing.TB) {
	t.Helper()
	if n.closed {
		return
	}
	n.closed = true
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	if err := n.hub.Close(ctx); err != nil {
		t.Errorf("%s: Hub.Close() = %v", n.name, err)
	}
	n.relay.Close()
	if err := n.db.Close(); err != nil {
		t.Errorf("%s: store Close() = %v", n.name, err)
	}
}

// testConn is an in-process connection: it records the ops it is sent.
type testConn struct {
	src string

	mu      sync.Mutex
	ops     map[collab.Key][]collab.Record
	resets  int
	changed chan struct{}
}

func newTestConn(src string) *testConn {
	return &testConn{src: src, ops: make(map[collab.Key][]collab.Record), changed: make(chan struct{}, 1)}
}

func (c *testConn) Src() string { return c.src }
func (c *testConn) SendOp(key collab.Key, rec collab.Record) {
	c.mu.Lock()
	c.ops[key] = append(c.ops[key], rec)
	c.mu.Unlock()
	c.poke()
}
func (c *testConn) SendPresence(collab.PresenceUpdate) {}
func (c *testConn) SendPresenceRequest(string)         {}
func (c *testConn) Closed() bool                       { return false }

// Drop counts the drops that tell c its copy's history was replaced.
func (c *testConn) Drop(_ collab.Key, err error) {
	if !errors.Is(err, collab.ErrHistoryReplaced) {
		return
	}
	c.mu.Lock()
	c.resets++
	c.mu.Unlock()
	c.poke()
}

func (c *testConn) poke() {
	select {
	case c.changed <- struct{}{}:
	default:
	}
}

// received returns the versions c was sent for key.
func (c *testConn) received(key collab.Key) []collab.Record {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]collab.Record(nil), c.ops[key]...)
}

// waitOps waits until c was sent ops up to version to (exclusive).
func (c *testConn) waitOps(t testing.TB, key collab.Key, to uint64) []collab.Record {
	t.Helper()
	deadline := time.After(waitLimit)
	for {
		got := c.received(key)
		if n := len(got); n > 0 && got[n-1].Version+1 >= to {
			return got
		}
		select {
		case <-c.changed:
		case <-deadline:
			t.Fatalf("%s: waiting for ops of %v up to %d, have %d", c.src, key, to, len(got))
		}
	}
}

// subscribe subscribes c to key on n from version 0 and waits.
func subscribe(t testing.TB, n *hubNode, key collab.Key, c collab.Conn) collab.Snapshot {
	t.Helper()
	ch := make(chan error, 1)
	var snap collab.Snapshot
	zero := uint64(0)
	n.hub.Subscribe(key, c, &zero, func(s collab.Snapshot, err error) { snap = s; ch <- err })
	select {
	case err := <-ch:
		if err != nil {
			t.Fatalf("%s: Subscribe(%v) = %v", n.name, key, err)
		}
	case <-time.After(waitLimit):
		t.Fatalf("%s: Subscribe(%v) did not answer", n.name, key)
	}
	return snap
}

// insertAt is an edit inserting text at pos (code points).
func insertAt(pos int, text string) ot.Op {
	var op ot.Op
	if pos > 0 {
		op = append(op, ot.Component{Kind: ot.KindSkip, N: pos})
	}
	return append(op, ot.Component{Kind: ot.KindInsert, N: len([]rune(text)), Text: text})
}

// submit submits on n and fails the test on error.
func submit(t testing.TB, n *hubNode, key collab.Key, s collab.Submission) collab.SubmitResult {
	t.Helper()
	res, err := n.hub.SubmitWait(ctx(t), key, s)
	if err != nil {
		t.Fatalf("%s: Submit(%v, %s/%d) = %v", n.name, key, s.Src, s.Seq, err)
	}
	return res
}

// createSub and editSub build submissions.
func createSub(src string, seq uint64, text string) collab.Submission {
	return collab.Submission{Src: src, Seq: seq, HasVersion: true, Kind: collab.OpCreate, Type: ot.URI, Data: text}
}

func editSub(src string, seq, v uint64, op ot.Op) collab.Submission {
	return collab.Submission{Src: src, Seq: seq, Version: v, HasVersion: true, Kind: collab.OpEdit, Op: op}
}

// fetch returns n's snapshot of key.
func fetch(t testing.TB, n *hubNode, key collab.Key) collab.Snapshot {
	t.Helper()
	s, err := n.hub.FetchWait(ctx(t), key)
	if err != nil {
		t.Fatalf("%s: Fetch(%v) = %v", n.name, key, err)
	}
	return s
}

// opLog returns n's whole op log of key (it catches up first).
func opLog(t testing.TB, n *hubNode, key collab.Key) []collab.Record {
	t.Helper()
	recs, err := n.hub.Ops(ctx(t), key, 0, 1<<62)
	if err != nil {
		t.Fatalf("%s: Ops(%v) = %v", n.name, key, err)
	}
	return recs
}

// converged checks that every node has the same text, version and op
// log of key, with every (src, seq) once, and returns the log.
func converged(t testing.TB, key collab.Key, nodes ...*hubNode) []collab.Record {
	t.Helper()
	first := fetch(t, nodes[0], key)
	log0 := opLog(t, nodes[0], key)
	checkLog(t, log0)
	if uint64(len(log0)) != first.Version {
		t.Fatalf("%s: log of %v has %d records, head %d", nodes[0].name, key, len(log0), first.Version)
	}
	for _, n := range nodes[1:] {
		if s := fetch(t, n, key); s != first {
			t.Fatalf("%s: %v = %+v, %s has %+v", n.name, key, s, nodes[0].name, first)
		}
		if l := opLog(t, n, key); !sameRecords(l, log0) {
			t.Fatalf("%s: op log of %v differs from %s's:\n%v\n%v", n.name, key, nodes[0].name, l, log0)
		}
	}
	return log0
}

// hasOnce fails unless log holds (src, seq) exactly once.
func hasOnce(t testing.TB, log []collab.Record, src string, seq uint64) {
	t.Helper()
	n := 0
	for _, r := range log {
		if r.Src == src && r.Seq == seq {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("(%s, %d) is %d times in the log, want once", src, seq, n)
	}
}

// isRetryable reports whether err is one a client should resend after.
func isRetryable(err error) bool {
	return errors.Is(err, collab.ErrUnavailable) || errors.Is(err, collab.ErrContended)
}

// submitRetrying submits s on n as a client would: resending (same src
// and seq) after a retryable error, at the version it last knew.
func submitRetrying(t testing.TB, n *hubNode, key collab.Key, s collab.Submission) collab.SubmitResult {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for {
		res, err := n.hub.SubmitWait(ctx(t), key, s)
		if err == nil {
			return res
		}
		if !isRetryable(err) || time.Now().After(deadline) {
			t.Fatalf("%s: Submit(%v, %s/%d) = %v", n.name, key, s.Src, s.Seq, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func docKey(i int) collab.Key { return collab.Key{Collection: "notes", ID: fmt.Sprintf("d%d", i)} }
