package redisrelay_test

import (
	"errors"
	"fmt"
	"strconv"
	"testing"

	"github.com/coedit/coedit/collab"
	"github.com/coedit/coedit/collab/redisrelay"
	"github.com/coedit/coedit/collab/redisrelay/redisrelaytest"
	"github.com/coedit/coedit/internal/redistest"
	"github.com/redis/go-redis/v9"
)

// farTail and farSnap are the Redis tail and snapshot spacing of these
// tests: small, so that a few hundred commits are far behind.
const (
	farTail = 20
	farSnap = 5
)

func farConfig() nodeConfig { return nodeConfig{tailLen: farTail, snapEvery: farSnap} }

// editN commits n edits on node n, each by src at the head, with seqs
// from seq on.
func editN(t *testing.T, n *hubNode, key collab.Key, src string, seq uint64, count int) {
	t.Helper()
	for i := range count {
		s := fetch(t, n, key)
		submit(t, n, key, editSub(src, seq+uint64(i), s.Version, insertAt(0, fmt.Sprintf("%s%d.", src, i))))
	}
}

// redisState returns what Redis holds of key under prefix p: the stream's
// length, its first version, and the snapshot's version.
func redisState(t *testing.T, c *redis.Client, p string, key collab.Key) (length int64, first, sv uint64) {
	t.Helper()
	base := p + "{" + key.Collection + "." + key.ID + "}:"
	length, err := c.XLen(ctx(t), base+"log").Result()
	if err != nil {
		t.Fatalf("XLEN = %v", err)
	}
	msgs, err := c.XRangeN(ctx(t), base+"log", "-", "+", 1).Result()
	if err != nil || len(msgs) != 1 {
		t.Fatalf("XRANGE first = %v, %v", msgs, err)
	}
	fmt.Sscanf(msgs[0].ID, "%d-1", &first)
	s, err := c.HGet(ctx(t), base+"meta", "sv").Result()
	if err != nil {
		t.Fatalf("HGET sv = %v", err)
	}
	sv, _ = strconv.ParseUint(s, 10, 64)
	return length, first, sv
}

// waitTrimmed waits until Redis's snapshot of key is within farTail of
// head (the saves run in the background) and checks that the stream is
// bounded: the newest TailLen records and those since the snapshot.
func waitTrimmed(t *testing.T, c *redis.Client, p string, key collab.Key, head uint64) (first uint64) {
	t.Helper()
	waitFor(t, "Redis's snapshot to follow the head", func() bool {
		_, _, sv := redisState(t, c, p, key)
		return sv+farTail >= head
	})
	length, first, sv := redisState(t, c, p, key)
	if want := min(head-farTail, sv); first != want || uint64(length) != head-first {
		t.Fatalf("Redis keeps %d records from %d (snapshot at %d, head %d), want those from %d", length, first, sv, head, want)
	}
	return first
}

// sameFrom fails unless nodes a and b have the same text and version of
// key, and the same records from version from on.
func sameFrom(t *testing.T, key collab.Key, from uint64, a, b *hubNode) collab.Snapshot {
	t.Helper()
	sa, sb := fetch(t, a, key), fetch(t, b, key)
	if sa != sb {
		t.Fatalf("%s has %+v, %s has %+v", a.name, sa, b.name, sb)
	}
	la, err := a.hub.Ops(ctx(t), key, from, 1<<62)
	if err != nil {
		t.Fatalf("%s: Ops(%d) = %v", a.name, from, err)
	}
	lb, err := b.hub.Ops(ctx(t), key, from, 1<<62)
	if err != nil {
		t.Fatalf("%s: Ops(%d) = %v", b.name, from, err)
	}
	if !sameRecords(la, lb) || uint64(len(la)) != sa.Version-from {
		t.Fatalf("records from %d differ: %s has %d, %s has %d (head %d)", from, a.name, len(la), b.name, len(lb), sa.Version)
	}
	return sa
}

// belowBaseRefused checks that node n answers reads below its base with
// collab.ErrOpsMissing, never with data.
func belowBaseRefused(t *testing.T, n *hubNode, key collab.Key, base uint64) {
	t.Helper()
	if recs, err := n.hub.Ops(ctx(t), key, 0, base+1); !errors.Is(err, collab.ErrOpsMissing) {
		t.Fatalf("%s: Ops(0, %d) = %d records, %v, want ErrOpsMissing", n.name, base+1, len(recs), err)
	}
	if s, err := n.hub.SnapshotAt(ctx(t), key, base-1); !errors.Is(err, collab.ErrOpsMissing) {
		t.Fatalf("%s: SnapshotAt(%d) = %+v, %v, want ErrOpsMissing", n.name, base-1, s, err)
	}
	if s, err := n.hub.SnapshotAtTime(ctx(t), key, 0); !errors.Is(err, collab.ErrOpsMissing) {
		t.Fatalf("%s: SnapshotAtTime(0) = %+v, %v, want ErrOpsMissing", n.name, s, err)
	}
}

// TestClusterNodeDownPastTail: node b is down while node a commits far
// more than Redis's tail. Redis keeps a bounded tail and a snapshot; b
// restarts on its old store, installs the snapshot as its log's base,
// and converges; edits on b reach a.
func TestClusterNodeDownPastTail(t *testing.T) {
	srv := redistest.StartServer(t, redistest.ServerOptions{})
	c := newClient(t, srv.Addr())
	p := prefix(t)
	a := startNode(t, "a", srv.Addr(), p, farConfig())
	b := startNode(t, "b", srv.Addr(), p, farConfig())
	key := docKey(1)
	submit(t, a, key, createSub("a", 1, "start"))
	editN(t, a, key, "a", 2, 10)
	sameFrom(t, key, 0, a, b)
	b.stop(t)

	editN(t, a, key, "a", 12, 150)
	head := fetch(t, a, key).Version
	first := waitTrimmed(t, c, p, key, head)
	if first <= 11 {
		t.Fatalf("Redis keeps records from %d: b (at 11) is not behind its tail", first)
	}

	cfg := farConfig()
	cfg.path = b.path
	b2 := startNode(t, "b2", srv.Addr(), p, cfg)
	sameFrom(t, key, head, a, b2)
	if st := b2.cluster.Stats(); st.Installs != 1 {
		t.Fatalf("b2 stats %+v, want 1 install", st)
	}
	base, err := b2.db.Base(ctx(t), key)
	if err != nil || base < first || base > head {
		t.Fatalf("b2's base = %d, %v, want in [%d, %d]", base, err, first, head)
	}
	sameFrom(t, key, base, a, b2)
	belowBaseRefused(t, b2, key, base)

	// Both go on together, from either node.
	editN(t, b2, key, "b", 1, 30)
	editN(t, a, key, "a", 162, 5)
	s := sameFrom(t, key, base, a, b2)
	if s.Version != head+35 {
		t.Fatalf("version %d, want %d", s.Version, head+35)
	}
	if err := b2.db.Check(ctx(t)); err != nil {
		t.Fatalf("b2's store: Check = %v", err)
	}
}

// TestClusterNewNodeLongHistory: a node that never had a document
// serves it although Redis no longer holds its early records: fetch,
// subscribe and edits work, and reads of the history it lacks say so.
func TestClusterNewNodeLongHistory(t *testing.T) {
	srv := redistest.StartServer(t, redistest.ServerOptions{})
	c := newClient(t, srv.Addr())
	p := prefix(t)
	a := startNode(t, "a", srv.Addr(), p, farConfig())
	key := docKey(2)
	submit(t, a, key, createSub("a", 1, "long"))
	editN(t, a, key, "a", 2, 120)
	head := fetch(t, a, key).Version
	first := waitTrimmed(t, c, p, key, head)

	n := startNode(t, "c", srv.Addr(), p, farConfig())
	conn := newTestConn("watcher")
	ch := make(chan error, 1)
	var got collab.Snapshot
	n.hub.Subscribe(key, conn, nil, func(s collab.Snapshot, err error) { got = s; ch <- err })
	if err := <-ch; err != nil {
		t.Fatalf("c: Subscribe = %v", err)
	}
	if want := fetch(t, a, key); got != want {
		t.Fatalf("c: Subscribe snapshot = %+v, a has %+v", got, want)
	}
	base, err := n.db.Base(ctx(t), key)
	if err != nil || base < first {
		t.Fatalf("c's base = %d, %v, want at least %d", base, err, first)
	}
	belowBaseRefused(t, n, key, base)
	// A subscribe from a version c does not hold is refused, coded.
	zero := uint64(0)
	n.hub.Subscribe(key, newTestConn("old"), &zero, func(_ collab.Snapshot, err error) { ch <- err })
	if err := <-ch; !errors.Is(err, collab.ErrOpsMissing) {
		t.Fatalf("c: Subscribe from 0 = %v, want ErrOpsMissing", err)
	}
	editN(t, a, key, "a", 200, 3)
	conn.waitOps(t, key, head+3)
	editN(t, n, key, "c", 1, 3)
	sameFrom(t, key, base, a, n)
}

// TestClusterResendPastTail: ops committed long ago (more than Redis's
// tail) are resent, at the versions they were made at, to a node that
// never had the document. One still in Redis's seq table (which keeps
// the srcs of twice the tail) is acknowledged at its version; one older
// than that is refused with ErrOpsMissing (the node has neither its
// records nor its seq); neither is committed again.
func TestClusterResendPastTail(t *testing.T) {
	srv := redistest.StartServer(t, redistest.ServerOptions{})
	c := newClient(t, srv.Addr())
	p := prefix(t)
	a := startNode(t, "a", srv.Addr(), p, farConfig())
	key := docKey(3)
	submit(t, a, key, createSub("a", 1, "x"))
	older := editSub("older", 3, 1, insertAt(1, "?"))
	submit(t, a, key, older)
	editN(t, a, key, "a", 2, 3*farTail)
	v := fetch(t, a, key).Version
	old := editSub("old", 7, v, insertAt(1, "!"))
	res := submit(t, a, key, old)
	editN(t, a, key, "a", 100, farTail+10)
	head := fetch(t, a, key).Version
	if first := waitTrimmed(t, c, p, key, head); first <= res.Version {
		t.Fatalf("Redis keeps records from %d: the op at %d is not past the tail", first, res.Version)
	}

	n := startNode(t, "c", srv.Addr(), p, farConfig())
	again, err := n.hub.SubmitWait(ctx(t), key, old)
	if err != nil {
		t.Fatalf("c: resend = %v", err)
	}
	if !again.Duplicate || again.Version != res.Version {
		t.Fatalf("c: resend = %+v, want a duplicate at %d", again, res.Version)
	}
	if base, err := n.db.Base(ctx(t), key); err != nil || base <= res.Version {
		t.Fatalf("c's base = %d, %v, want past %d", base, err, res.Version)
	}
	if _, err := n.hub.SubmitWait(ctx(t), key, older); !errors.Is(err, collab.ErrOpsMissing) {
		t.Fatalf("c: resend of the older op = %v, want ErrOpsMissing", err)
	}
	if s := fetch(t, n, key); s.Version != head {
		t.Fatalf("c: version %d after the resends, a has %d", s.Version, head)
	}
	log := opLog(t, a, key)
	hasOnce(t, log, "old", 7)
	hasOnce(t, log, "older", 3)
}

// TestClusterReseedFromBase: Redis comes back empty and the first node
// to touch a document is one whose log starts at a base: it seeds Redis
// from its base on, and the node with the whole history converges with it.
func TestClusterReseedFromBase(t *testing.T) {
	srv := redistest.StartServer(t, redistest.ServerOptions{})
	c := newClient(t, srv.Addr())
	p := prefix(t)
	a := startNode(t, "a", srv.Addr(), p, farConfig())
	key := docKey(5)
	submit(t, a, key, createSub("a", 1, "x"))
	editN(t, a, key, "a", 2, 3*farTail)
	waitTrimmed(t, c, p, key, fetch(t, a, key).Version)
	a.stop(t)

	n := startNode(t, "c", srv.Addr(), p, farConfig())
	fetch(t, n, key)
	n.stop(t)
	srv.RestartEmpty()
	cfg := farConfig()
	cfg.path = n.path
	n2 := startNode(t, "c2", srv.Addr(), p, cfg)
	editN(t, n2, key, "c", 1, 3)
	if st := n2.cluster.Stats(); st.Seeds != 1 {
		t.Fatalf("c2 stats %+v, want 1 seed", st)
	}
	cfg.path = a.path
	a2 := startNode(t, "a2", srv.Addr(), p, cfg)
	base, err := n2.db.Base(ctx(t), key)
	if err != nil || base == 0 {
		t.Fatalf("c2's base = %d, %v", base, err)
	}
	sameFrom(t, key, base, a2, n2)
}

// TestSnapshotTrimsSeqs: saving a snapshot bounds the seq table too: a
// src whose last record is more than TailLen versions older than the
// oldest record Redis keeps is dropped, the others stay.
func TestSnapshotTrimsSeqs(t *testing.T) {
	srv := redistest.StartServer(t, redistest.ServerOptions{})
	c := newClient(t, srv.Addr())
	p := prefix(t)
	r := node(t, srv.Addr(), p, redisrelay.Options{TailLen: 5, MaxTailLen: 100})
	epoch := initDoc(t, r, doc)
	commit(t, r, doc, epoch, 0, create(0, "s0", 1, ""))
	for v := uint64(1); v < 40; v++ {
		commit(t, r, doc, epoch, v, rec(v, fmt.Sprintf("s%d", v), 1, "x"))
	}
	seqs := p + "{" + doc.Collection + "." + doc.ID + "}:seqs"
	if n, err := c.HLen(ctx(t), seqs).Result(); err != nil || n != 40 {
		t.Fatalf("HLEN before = %d, %v, want 40", n, err)
	}
	if saved, err := r.SaveSnapshot(ctx(t), doc, epoch, collab.Snapshot{Version: 30, Type: "http://sharejs.org/types/textv1", Data: "x"}); err != nil || !saved {
		t.Fatalf("SaveSnapshot = %v, %v", saved, err)
	}
	// The stream keeps 30..39 (since the snapshot); seqs from 25 on stay.
	got, err := c.HKeys(ctx(t), seqs).Result()
	if err != nil || len(got) != 15 {
		t.Fatalf("seqs after = %v, %v, want the 15 srcs s25..s39", got, err)
	}
	for _, src := range got {
		var v int
		if fmt.Sscanf(src, "s%d", &v); v < 25 {
			t.Fatalf("seqs after = %v, has %s", got, src)
		}
	}
}

// TestReofferPastTheTailLosesWhatItCannotTransform: Redis lost a's
// records 3..6 (a failover, made here on Redis directly) while a was
// down; b, which held only 0..2, renewed, took an op from a's client,
// and edited on past Redis's tail. When a comes back, Redis's history
// shares a's below 3, but Redis no longer keeps the records from 3 that
// a's would have to be transformed over. They are lost (logged and
// counted, as any record a Redis loss makes unofferable), but for one
// the seq table shows in the history: the client's resend of seq 3 to b.
// Its next op (seq 7) shows none of 3..6 there. a forks at 3 and catches
// up from Redis's snapshot; it used to fail every sync with ErrTrimmed.
func TestReofferPastTheTailLosesWhatItCannotTransform(t *testing.T) {
	for _, tc := range []struct {
		name string
		seq  uint64 // the seq a's client sends b
		lost uint64
	}{
		{"resent", 3, 3},
		{"next", 7, 4},
	} {
		t.Run(tc.name, func(t *testing.T) { reofferPastTheTail(t, tc.seq, tc.lost) })
	}
}

func reofferPastTheTail(t *testing.T, seq, lost uint64) {
	r, nodes := startNodes(t, redistest.ServerOptions{}, farConfig(), "a", "b")
	a, b := nodes[0], nodes[1]
	key := createDoc(t, a, "")
	editN(t, a, key, "a", 1, 2)
	fetch(t, b, key) // b follows, at version 3
	b.stop(t)
	editN(t, a, key, "a", 3, 4)
	a.stop(t)
	raw := newClient(t, r.srv.Addr())
	base := redisrelay.KeyBase(r.prefix, key)
	c := ctx(t)
	// Redis "restarted" without them, and without a snapshot past them.
	redisrelaytest.LoseTail(t, raw, r.prefix, key, 3, 7)
	raw.HSet(c, base+"seqs", "a", "2 2") // a's entry as of version 3
	raw.HSet(c, base+"meta", "sv", 0)
	raw.Del(c, base+"snap")
	cfg := farConfig()
	cfg.path = b.path
	b = r.startNode(t, "b2", cfg)
	submit(t, b, key, editSub("a", seq, 3, insertAt(0, "again")))
	// Past the tail, but not so far that the seq table drops a.
	editN(t, b, key, "b", 1, farTail+5)
	head := fetch(t, b, key).Version
	if first := waitTrimmed(t, raw, r.prefix, key, head); first <= 3 {
		t.Fatalf("Redis's stream starts at %d, not past a's records", first)
	}
	cfg.path = a.path
	a = r.startNode(t, "a2", cfg)
	s := fetch(t, a, key)
	if st := a.cluster.Stats(); st.Lost != lost || st.Forks != 1 || st.Reoffered != 0 {
		t.Fatalf("a: %+v, want %d of its 4 records lost, 1 fork", st, lost)
	}
	base2, err := a.db.Base(c, key)
	if err != nil {
		t.Fatal(err)
	}
	sameFrom(t, key, base2, a, b)
	// The author of the lost records is told its copy was replaced.
	if _, err := a.hub.SubmitWait(c, key, editSub("a", 8, s.Version, insertAt(0, "x"))); !errors.Is(err, collab.ErrHistoryReplaced) {
		t.Fatalf("a: the lost records' author's submit = %v, want ErrHistoryReplaced", err)
	}
	editN(t, a, key, "c", 1, 1)
	if s2 := fetch(t, b, key); s2.Version != s.Version+1 {
		t.Fatalf("b at %d after a's edit, want %d", s2.Version, s.Version+1)
	}
}
