package redisrelay_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/redis/go-redis/v9"

	"github.com/coedit/coedit/collab"
	"github.com/coedit/coedit/collab/redisrelay"
	"github.com/coedit/coedit/internal/redistest"
)

// writeConcurrently runs writers on every node: each makes edits edits
// to random documents of keys, each at the version its node last showed
// it, and returns the (src, seq) of every acknowledged edit.
func writeConcurrently(t *testing.T, nodes []*hubNode, keys []collab.Key, writersPerNode, edits int) map[string]bool {
	t.Helper()
	return writeConcurrentlyAs(t, "", nodes, keys, writersPerNode, edits)
}

// writeConcurrentlyAs is writeConcurrently with the writers' srcs
// starting with tag (so that a second round uses new srcs).
func writeConcurrentlyAs(t *testing.T, tag string, nodes []*hubNode, keys []collab.Key, writersPerNode, edits int) map[string]bool {
	t.Helper()
	var mu sync.Mutex
	acked := make(map[string]bool)
	var wg sync.WaitGroup
	for ni, n := range nodes {
		for w := range writersPerNode {
			src := fmt.Sprintf("%s%s-w%d", tag, n.name, w)
			rnd := rand.New(rand.NewPCG(uint64(ni), uint64(w)))
			wg.Add(1)
			go func() {
				defer wg.Done()
				for seq := uint64(1); seq <= uint64(edits); seq++ {
					key := keys[rnd.IntN(len(keys))]
					s, err := n.hub.FetchWait(ctx(t), key)
					if err != nil {
						t.Errorf("%s: Fetch = %v", src, err)
						return
					}
					pos := rnd.IntN(utf8.RuneCountInString(s.Data) + 1)
					sub := editSub(src, seq, s.Version, insertAt(pos, fmt.Sprintf("<%s:%d>", src, seq)))
					if _, err := n.hub.SubmitWait(ctx(t), key, sub); err != nil {
						t.Errorf("%s: Submit = %v", src, err)
						return
					}
					mu.Lock()
					acked[fmt.Sprintf("%s/%d", src, seq)] = true
					mu.Unlock()
				}
			}()
		}
	}
	wg.Wait()
	return acked
}

// checkAcked fails unless every acknowledged (src, seq) is in exactly one
// of the logs' records, once.
func checkAcked(t *testing.T, acked map[string]bool, logs ...[]collab.Record) {
	t.Helper()
	seen := make(map[string]int)
	for _, log := range logs {
		for _, r := range log {
			seen[fmt.Sprintf("%s/%d", r.Src, r.Seq)]++
		}
	}
	for id := range acked {
		if seen[id] != 1 {
			t.Fatalf("acknowledged %s is %d times in the logs, want once", id, seen[id])
		}
	}
}

// TestClusterConcurrentWritersConverge: writers on three nodes edit the
// same documents at once, each at the version its node shows; every node
// ends with the same text, version and op log, and every acknowledged
// (src, seq) is in it once.
func TestClusterConcurrentWritersConverge(t *testing.T) {
	_, nodes := startNodes(t, redistest.ServerOptions{}, nodeConfig{}, "a", "b", "c")
	keys := []collab.Key{docKey(1), docKey(2)}
	for _, k := range keys {
		submit(t, nodes[0], k, createSub("setup", uint64(len(k.ID)), "start"))
	}
	acked := writeConcurrently(t, nodes, keys, 2, 25)
	var logs [][]collab.Record
	for _, k := range keys {
		logs = append(logs, converged(t, k, nodes...))
	}
	checkAcked(t, acked, logs...)
	var conflicts uint64
	for _, n := range nodes {
		conflicts += n.hub.Stats().CommitConflicts
	}
	t.Logf("%d edits, %d commit conflicts resolved", len(acked), conflicts)
}

// TestClusterResendToAnotherNodeIsAckedOnce: an op committed on node A
// whose ack was lost is resent (same src and seq, same version) to node
// B, which acknowledges it at its original version without applying it
// again, whether B's session is new or has been running.
func TestClusterResendToAnotherNodeIsAckedOnce(t *testing.T) {
	_, n := startNodes(t, redistest.ServerOptions{}, nodeConfig{}, "a", "b")
	a, b := n[0], n[1]
	key := createDoc(t, a, "hello")
	fetch(t, b, key) // b's session runs from now on
	first := submit(t, a, key, editSub("x", 2, 1, insertAt(5, "!")))
	again := submit(t, b, key, editSub("x", 2, 1, insertAt(5, "!")))
	// When a's doorbell has not reached b yet, b plans the resend as a new
	// record at version 1; if it comes out byte for byte as a's (the same
	// millisecond), Redis answers that it is committed (a repeat, known by
	// its content), and b acknowledges it as its own commit. Either way the
	// op is acknowledged at its original version and applied once.
	if again.Version != first.Version || !again.Duplicate && !reflect.DeepEqual(again.Record, first.Record) {
		t.Fatalf("resend on b = %+v, want a duplicate at version %d (or a's record repeated: %+v)", again, first.Version, first.Record)
	}
	other := docKey(2)
	submit(t, a, other, createSub("y", 1, ""))
	first = submit(t, a, other, editSub("y", 2, 1, insertAt(0, "z")))
	again = submit(t, b, other, editSub("y", 2, 1, insertAt(0, "z"))) // no session on b yet
	if !again.Duplicate || again.Version != first.Version {
		t.Fatalf("resend to a new session on b = %+v, want a duplicate at version %d", again, first.Version)
	}
	hasOnce(t, converged(t, key, a, b), "x", 2)
	hasOnce(t, converged(t, other, a, b), "y", 2)
}

// TestClusterDuplicateFromRedisIsCaughtUp: when Redis answers a commit
// with Duplicate (the first record's src and seq were committed by
// another node, whose doorbell this node has not handled yet), Sequence
// returns the records from the session's head on, so that the session
// adopts them and acknowledges the resend at its original version.
func TestClusterDuplicateFromRedisIsCaughtUp(t *testing.T) {
	r, n := startNodes(t, redistest.ServerOptions{}, nodeConfig{}, "a")
	a := n[0]
	key := createDoc(t, a, "hello")
	res := submit(t, a, key, editSub("x", 2, 1, insertAt(0, "<")))

	b := r.startNode(t, "b", nodeConfig{})
	l, err := b.cluster.JoinCluster(key, collab.Member{Deliver: func(string, []collab.Record) {}, Resync: func() {}})
	if err != nil {
		t.Fatalf("JoinCluster = %v", err)
	}
	defer l.Leave()
	// The link follows the document's epoch; Sequence is then asked as
	// by a session at version 1 that has not seen version 1's record.
	if _, err := l.Sync(ctx(t), 0, nil); err != nil {
		t.Fatalf("Sync(0) = %v", err)
	}
	resend := res.Record
	resend.Time++ // planned again on b: same src, seq and version, another commit time
	missed, err := b.cluster.Sequence(ctx(t), key, []collab.Record{resend})
	if err != nil || len(missed) != 1 || missed[0].Version != 1 || missed[0].Src != "x" || missed[0].Seq != 2 {
		t.Fatalf("Sequence(resend at 1) = %v, %v; want the record at 1 as missed", missed, err)
	}
	// A resend made at a version past its original is not one.
	resend.Version = 2
	if _, err := b.cluster.Sequence(ctx(t), key, []collab.Record{resend}); err == nil {
		t.Fatalf("Sequence(resend at 2, committed at 1) = nil error, want ErrStaleSeq")
	}
}

// TestClusterNewNodeCatchesUp: a node that never had a document loads it
// from Redis, op log and all, before it answers.
func TestClusterNewNodeCatchesUp(t *testing.T) {
	r, n := startNodes(t, redistest.ServerOptions{}, nodeConfig{}, "a")
	a := n[0]
	key := createDoc(t, a, "")
	for v := uint64(1); v < 40; v++ {
		submit(t, a, key, editSub("x", v+1, v, insertAt(0, "a")))
	}
	c := r.startNode(t, "c", nodeConfig{})
	if s := fetch(t, c, key); s.Version != 40 || utf8.RuneCountInString(s.Data) != 39 {
		t.Fatalf("new node's Fetch = %+v, want version 40", s)
	}
	converged(t, key, a, c)
	// Reads of history on a node without a session catch up too.
	d := r.startNode(t, "d", nodeConfig{})
	if log := opLog(t, d, key); len(log) != 40 {
		t.Fatalf("new node's op log has %d records, want 40", len(log))
	}
}

// TestClusterRemoteSubscriberGetsEveryOpInOrder: a subscriber on node B
// gets every op committed on node A once, in version order, also when
// the pub/sub connections are killed meanwhile (CLIENT KILL TYPE pubsub):
// the session catches up from the stream when it resubscribes.
func TestClusterRemoteSubscriberGetsEveryOpInOrder(t *testing.T) {
	r, nodes := startNodes(t, redistest.ServerOptions{}, nodeConfig{}, "a", "b")
	a, b := nodes[0], nodes[1]
	key := createDoc(t, a, "")
	sub := newTestConn("sub")
	subscribe(t, b, key, sub)
	admin := newClient(t, r.srv.Addr())
	const n = 200
	for v := uint64(1); v < n; v++ {
		submit(t, a, key, editSub("x", v+1, v, insertAt(0, "a")))
		if v%50 == 0 {
			if err := admin.Do(ctx(t), "CLIENT", "KILL", "TYPE", "pubsub").Err(); err != nil {
				t.Fatalf("CLIENT KILL TYPE pubsub = %v", err)
			}
		}
	}
	got := sub.waitOps(t, key, n)
	for i, r := range got {
		if r.Version != uint64(i) {
			t.Fatalf("subscriber's op %d has version %d: every op once, in order, wanted", i, r.Version)
		}
	}
	if st := b.relay.Stats(); st.Resyncs < 2 {
		t.Errorf("relay stats %+v: want resyncs after the kills", st)
	}
}

// TestClusterUsesShardedPubSubOnRedisCluster: the nodes converge over a
// 3-master Redis Cluster too (keys of a document in one slot, sharded
// pub/sub).
func TestClusterUsesShardedPubSubOnRedisCluster(t *testing.T) {
	rc := redistest.StartCluster(t, redistest.ServerOptions{})
	addrs := fmt.Sprint(rc.Addrs()[0], ",", rc.Addrs()[1], ",", rc.Addrs()[2])
	p := prefix(t)
	nodes := []*hubNode{
		startNode(t, "a", addrs, p, nodeConfig{}),
		startNode(t, "b", addrs, p, nodeConfig{}),
		startNode(t, "c", addrs, p, nodeConfig{}),
	}
	keys := []collab.Key{docKey(1), docKey(2), docKey(3)}
	for _, k := range keys {
		submit(t, nodes[1], k, createSub("setup", uint64(len(k.ID)), ""))
	}
	acked := writeConcurrently(t, nodes, keys, 1, 20)
	var logs [][]collab.Record
	for _, k := range keys {
		logs = append(logs, converged(t, k, nodes...))
	}
	checkAcked(t, acked, logs...)
}

// TestClusterReadOfUnknownDocumentLeavesNoKeys: reading a document
// nobody created leaves nothing in Redis (else every id anyone asks for
// would); its first commit seeds it.
func TestClusterReadOfUnknownDocumentLeavesNoKeys(t *testing.T) {
	r, n := startNodes(t, redistest.ServerOptions{}, nodeConfig{}, "a", "b")
	a, b := n[0], n[1]
	key := docKey(1)
	if s := fetch(t, a, key); s.Version != 0 || s.Type != "" {
		t.Fatalf("Fetch of an unknown document = %+v, want version 0 and no type", s)
	}
	opLog(t, a, key)
	admin := newClient(t, r.srv.Addr())
	if keys, err := admin.Keys(ctx(t), r.prefix+"*").Result(); err != nil || len(keys) != 0 {
		t.Fatalf("Redis keys after reads = %v, %v; want none", keys, err)
	}
	submit(t, b, key, createSub("x", 1, "made"))
	if s := fetch(t, a, key); s.Version != 1 || s.Data != "made" {
		t.Fatalf("Fetch on a after b created it = %+v", s)
	}
	submit(t, a, key, editSub("x", 2, 1, insertAt(0, ">")))
	converged(t, key, a, b)
}

// TestClusterOwnDoorbellsPassedOver: a node's subscriber passes over the
// doorbells of its own commits without decoding them for its sessions,
// which hold those records already, while another node's sessions and
// a plain Handler on the committing node still get every one.
func TestClusterOwnDoorbellsPassedOver(t *testing.T) {
	_, n := startNodes(t, redistest.ServerOptions{}, nodeConfig{}, "a", "b")
	a, b := n[0], n[1]
	key := createDoc(t, a, "hello")
	ca, cb := newTestConn("ca"), newTestConn("cb")
	subscribe(t, a, key, ca)
	subscribe(t, b, key, cb)
	var mu sync.Mutex
	var observed []collab.Record
	obs, err := a.relay.Subscribe(ctx(t), key, redisrelay.Handler{
		Deliver: func(_ string, recs []collab.Record) {
			mu.Lock()
			observed = append(observed, recs...)
			mu.Unlock()
		},
		Resync: func() {},
	})
	if err != nil {
		t.Fatalf("Subscribe() = %v", err)
	}
	defer obs.Close()
	sa0, sb0 := a.relay.Stats(), b.relay.Stats()
	const edits = 5
	for i := range uint64(edits) {
		submit(t, a, key, editSub("x", 2+i, 1+i, insertAt(0, "<")))
	}
	cb.waitOps(t, key, 1+edits)
	converged(t, key, a, b)
	deadline := time.Now().Add(5 * time.Second)
	for {
		mu.Lock()
		got := len(observed)
		mu.Unlock()
		if got >= edits {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a plain Handler on node a got %d records of its %d commits, want every one", got, edits)
		}
		time.Sleep(10 * time.Millisecond)
	}
	// The plain Handler got the last edit's doorbell after the
	// subscriber had counted it, so every own doorbell is counted now.
	sa, sb := a.relay.Stats(), b.relay.Stats()
	if sa.OwnDoorbells != sa.Commits || sa.Commits-sa0.Commits < edits {
		t.Fatalf("node a passed over %d of its own doorbells and made %d commits (%d in the test), want one per commit, at least %d", sa.OwnDoorbells, sa.Commits, sa.Commits-sa0.Commits, edits)
	}
	if got := sb.OwnDoorbells - sb0.OwnDoorbells; got != 0 {
		t.Fatalf("node b passed over %d doorbells, but made no commit", got)
	}
}

// TestClusterNodeNameNeedingEscapes: node ids that JSON would have to
// escape (a quote, a backslash, a control character) still name valid
// doorbells: each node passes over its own, by a name made plain
// (writerName), and decodes every one of the other's.
func TestClusterNodeNameNeedingEscapes(t *testing.T) {
	_, n := startNodes(t, redistest.ServerOptions{}, nodeConfig{}, `q"1`, "q\\2\x01")
	a, b := n[0], n[1]
	key := createDoc(t, a, "hello")
	ca, cb := newTestConn("ca"), newTestConn("cb")
	subscribe(t, a, key, ca)
	subscribe(t, b, key, cb)
	s0 := []redisrelay.Stats{a.relay.Stats(), b.relay.Stats()}
	const edits = 3
	for i := range uint64(edits) {
		submit(t, a, key, editSub("x", 2+i, 1+i, insertAt(0, "<")))
		submit(t, b, key, editSub("y", 1+i, 1, insertAt(0, ">"))) // at version 1: b transforms
	}
	converged(t, key, a, b)
	ca.waitOps(t, key, 1+2*edits)
	cb.waitOps(t, key, 1+2*edits)
	// Every commit since both subscribed rings on both nodes: each
	// passes over its own and decodes the other's.
	commits := []uint64{a.relay.Stats().Commits - s0[0].Commits, b.relay.Stats().Commits - s0[1].Commits}
	deadline := time.Now().Add(5 * time.Second)
	for i, node := range n {
		// A doorbell is counted heard before it is counted as its own:
		// wait for both counts, then check them exactly.
		for st := node.relay.Stats(); st.Doorbells-s0[i].Doorbells < commits[0]+commits[1] || st.OwnDoorbells-s0[i].OwnDoorbells < commits[i]; st = node.relay.Stats() {
			if time.Now().After(deadline) {
				t.Fatalf("node %q heard %d doorbells, %d of them its own; want one per commit (%d), one per own commit (%d)",
					node.name, st.Doorbells-s0[i].Doorbells, st.OwnDoorbells-s0[i].OwnDoorbells, commits[0]+commits[1], commits[i])
			}
			time.Sleep(10 * time.Millisecond)
		}
		st := node.relay.Stats()
		if st.BadDoorbells != 0 {
			t.Fatalf("node %q: %d doorbells it could not decode, want none", node.name, st.BadDoorbells)
		}
		if own := st.OwnDoorbells - s0[i].OwnDoorbells; own != commits[i] || own < edits {
			t.Fatalf("node %q passed over %d of its own doorbells, made %d commits, want one per commit, at least %d", node.name, own, commits[i], edits)
		}
	}
}

// spinScript keeps Redis busy for ARGV[1] milliseconds, so that commands
// sent meanwhile run only after it.
const spinScript = `
local s = redis.call('TIME')
while true do
  local t = redis.call('TIME')
  if (t[1] - s[1]) * 1000 + (t[2] - s[2]) / 1000 >= tonumber(ARGV[1]) then return 1 end
end`

// spinRedis keeps Redis busy for ms milliseconds with spinScript on c
// (connected first, so the script goes out at once), and returns once
// the spin has begun; the function it returns waits for the spin's end.
func spinRedis(t *testing.T, c *redis.Client, ms int) func() {
	t.Helper()
	if err := c.Ping(ctx(t)).Err(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- c.Eval(context.Background(), spinScript, nil, ms).Err() }()
	time.Sleep(100 * time.Millisecond) // the spin has begun
	return func() {
		t.Helper()
		if err := <-done; err != nil {
			t.Fatalf("spin script = %v", err)
		}
	}
}

// TestClusterCommitOfUnknownOutcomeIsCaughtUp: a commit whose answer
// never came (Redis ran it after the node stopped waiting) is in the
// cluster all the same. The node passes over its own doorbells, so its
// session must catch up with Redis instead: its subscribers get the op.
func TestClusterCommitOfUnknownOutcomeIsCaughtUp(t *testing.T) {
	r, n := startNodes(t, redistest.ServerOptions{}, nodeConfig{retryFor: time.Millisecond, callTimeout: 150 * time.Millisecond}, "a")
	a := n[0]
	key := createDoc(t, a, "hello")
	ca := newTestConn("ca")
	subscribe(t, a, key, ca)
	busy := newClient(t, r.srv.Addr())
	spun := spinRedis(t, busy, 600)
	if _, err := a.hub.SubmitWait(ctx(t), key, editSub("x", 2, 1, insertAt(0, "<"))); !errors.Is(err, collab.ErrUnavailable) {
		t.Fatalf("Submit while Redis is busy = %v, want ErrUnavailable", err)
	}
	spun()
	recs := ca.waitOps(t, key, 2)
	if got := recs[len(recs)-1]; got.Src != "x" || got.Seq != 2 {
		t.Fatalf("subscriber on node a got %+v last, want the op Redis committed late (x, 2)", got)
	}
}

// TestClusterFailedCommitsAskOneCatchUpPerSpell: a commit call that
// fails asks its session to catch up, since the commit may yet run in
// Redis; while no commit has succeeded since, the session's own
// doorbells are delivered anyway, so further failures ask nothing more.
// A commit that succeeds ends the spell; the next failure asks again.
func TestClusterFailedCommitsAskOneCatchUpPerSpell(t *testing.T) {
	r, n := startNodes(t, redistest.ServerOptions{}, nodeConfig{}, "a")
	key := createDoc(t, n[0], "hello") // at version 1
	b := r.startNode(t, "b", nodeConfig{retryFor: time.Millisecond, callTimeout: 100 * time.Millisecond})
	var resyncs atomic.Int64
	l, err := b.cluster.JoinCluster(key, collab.Member{Deliver: func(string, []collab.Record) {}, Resync: func() { resyncs.Add(1) }})
	if err != nil {
		t.Fatalf("JoinCluster = %v", err)
	}
	defer l.Leave()
	if _, err := l.Sync(ctx(t), 0, nil); err != nil {
		t.Fatalf("Sync(0) = %v", err)
	}
	// The subscription's own first Resync, once Redis confirms it.
	waitFor(t, "the subscription's first Resync", func() bool { return resyncs.Load() > 0 })
	time.Sleep(50 * time.Millisecond) // a second one would come now
	subResyncs := b.relay.Stats().Resyncs
	base := resyncs.Load()
	if base == 0 || int64(subResyncs) != base {
		t.Fatalf("after joining: %d Resyncs, the subscriber counts %d; want its first one", base, subResyncs)
	}

	busy := newClient(t, r.srv.Addr())
	seq := uint64(0)
	rec := func(v uint64) []collab.Record {
		seq++
		return []collab.Record{{Version: v, Src: "y", Seq: seq, Kind: collab.OpEdit, Op: insertAt(0, "y"), Time: time.Now().UnixMilli()}}
	}
	// failing makes commit calls while Redis runs a script for a second,
	// each failing at its 100 ms CallTimeout.
	failing := func(calls int) {
		t.Helper()
		spun := spinRedis(t, busy, 1000)
		for i := range calls {
			if _, err := b.cluster.Sequence(ctx(t), key, rec(1)); !errors.Is(err, collab.ErrUnavailable) {
				t.Fatalf("commit call %d while Redis is busy = %v, want ErrUnavailable", i+1, err)
			}
		}
		spun()
	}
	// own is how many Resyncs the commit calls asked for.
	own := func() int64 {
		return resyncs.Load() - base - int64(b.relay.Stats().Resyncs-subResyncs)
	}

	failing(3)
	if got := own(); got != 1 {
		t.Fatalf("three failed commit calls asked for %d catch-ups, want 1", got)
	}
	// The late commits ran or not; a commit at Redis's head succeeds.
	v := uint64(1)
	for {
		missed, err := b.cluster.Sequence(ctx(t), key, rec(v))
		if err != nil {
			t.Fatalf("commit at %d once Redis is free = %v", v, err)
		}
		if len(missed) == 0 {
			break
		}
		v = missed[len(missed)-1].Version + 1
	}
	if got := own(); got != 1 {
		t.Fatalf("after a successful commit: %d catch-ups asked, want still 1", got)
	}
	failing(1)
	if got := own(); got != 2 {
		t.Fatalf("a failed commit call after a successful one: %d catch-ups asked in all, want 2", got)
	}
}
