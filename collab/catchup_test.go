package collab_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/coedit/coedit/collab"
	"github.com/coedit/coedit/ot"
	"github.com/coedit/coedit/storage"
)

// gateStore is a real store whose Ops reads can be held at a gate until
// released, and which counts them. It stands for a slow disk.
type gateStore struct {
	*storage.DB
	ops     atomic.Int32
	entered chan struct{} // an Ops call is waiting at the gate

	mu   sync.Mutex
	gate chan struct{} // non-nil: Ops waits until it is closed
}

func newGateStore(t *testing.T) *gateStore {
	db, _ := openStore(t, storage.SyncNone)
	return &gateStore{DB: db, entered: make(chan struct{}, 1024)}
}

// hold makes Ops calls wait until the returned release is called; the
// test's cleanup releases them too, before the hub closes.
func (s *gateStore) hold(t *testing.T) (release func()) {
	s.mu.Lock()
	g := make(chan struct{})
	s.gate = g
	s.mu.Unlock()
	var once sync.Once
	release = func() {
		once.Do(func() {
			s.mu.Lock()
			s.gate = nil
			s.mu.Unlock()
			close(g)
		})
	}
	t.Cleanup(release)
	return release
}

func (s *gateStore) Ops(ctx context.Context, key collab.Key, from, to uint64) ([]collab.Record, error) {
	s.ops.Add(1)
	s.mu.Lock()
	g := s.gate
	s.mu.Unlock()
	if g != nil {
		s.entered <- struct{}{}
		select {
		case <-g:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return s.DB.Ops(ctx, key, from, to)
}

// buildDoc stores key with n records (a create of "", then an insert of
// "x" and its delete, in turn) through the store in large commits, with
// a snapshot of the head, so that a session loads it at once. The text
// stays short, so failure messages that print snapshots stay short.
func buildDoc(t testing.TB, db *storage.DB, key collab.Key, n int) {
	t.Helper()
	const batch = 5000
	var recs []collab.Record
	for v := range n {
		op := ins(0, "x")
		if v%2 == 0 {
			op = del(0, 1)
		}
		rec := collab.Record{Version: uint64(v), Src: "builder", Seq: uint64(v + 1), Kind: collab.OpEdit, Op: op, Time: 1}
		if v == 0 {
			rec = collab.Record{Version: 0, Src: "builder", Seq: 1, Kind: collab.OpCreate, Type: ot.URI, Time: 1}
		}
		recs = append(recs, rec)
		if len(recs) == batch || v == n-1 {
			var snap *collab.Snapshot
			if v == n-1 {
				snap = &collab.Snapshot{Version: uint64(n), Type: ot.URI, Data: strings.Repeat("x", v%2)}
			}
			if err := db.Commit(ctxBG, key, recs, snap); err != nil {
				t.Fatalf("building %s: %v", key, err)
			}
			recs = recs[:0]
		}
	}
}

// TestOldFetchesDoNotStallLiveSubmit: on a 100,000-op document, 40
// fetches from version 0 by a client that then goes away do not delay
// another client's submit: their reads of the op log run on the Hub's
// readers, not on the document's session, so the submit is answered while
// the first read is still held at the store; once the client is gone its
// requests are dropped, with no further reads. The session used to read
// the whole log for each fetch before anything else (issue 9, item 5:
// 40 such fetches raised a submit's latency from 0.4 ms to 8.2 s).
func TestOldFetchesDoNotStallLiveSubmit(t *testing.T) {
	const n = 100_000
	store := newGateStore(t)
	buildDoc(t, store.DB, docX, n)
	h := startHub(t, collab.Options{Store: store})
	live := newConn("live")
	live.subscribe(h, docX, nil)
	if s := live.waitN(t, "snapshot", 1)[0]; s.err != nil || s.snap.Version != n {
		t.Fatalf("live subscribe = %+v, want the head %d", s, n)
	}

	release := store.hold(t)
	gone := newConn("gone")
	for range 40 {
		gone.fetch(h, docX, u64(0))
	}
	<-store.entered // the first fetch's read waits at the store
	live.submit(h, docX, editSub("live", 1, n, ins(0, "L")))
	if ack := live.waitN(t, "ack", 1)[0]; ack.err != nil || ack.res.Version != n {
		t.Fatalf("live submit while old reads wait = %+v, want committed at %d", ack, n)
	}
	if got := gone.count("snapshot"); got != 0 {
		t.Fatalf("%d old fetches answered before their read was released, want 0", got)
	}
	gone.close()
	release()
	for _, e := range gone.waitN(t, "snapshot", 40) {
		if !errors.Is(e.err, collab.ErrConnClosed) {
			t.Fatalf("fetch of a closed connection = %v, want ErrConnClosed", e.err)
		}
	}
	if got := store.ops.Load(); got != 1 {
		t.Fatalf("store read %d times for the 40 fetches, want 1 (the one in flight when the client left)", got)
	}
}

// TestCatchUpIsOrderedWhileWindowMoves: a subscriber far behind gets
// every version once, in order, then the reply, then live ops, while
// other clients commit meanwhile and the in-memory window moves past
// where its catch-up read began; it is not sent live ops before it has
// caught up (issue 9, item 6). Its later requests wait behind the
// catch-up, in order.
func TestCatchUpIsOrderedWhileWindowMoves(t *testing.T) {
	store := newGateStore(t)
	buildDoc(t, store.DB, docX, 3000)
	h := startHub(t, collab.Options{Store: store, Window: 4})
	w := newConn("w")
	w.subscribe(h, docX, nil)
	w.waitN(t, "snapshot", 1)

	release := store.hold(t)
	c := newConn("c")
	c.subscribe(h, docX, u64(10))
	<-store.entered
	c.fetch(h, docX, nil)
	for i := range 20 { // commits while c's read waits: the window moves on
		w.submit(h, docX, editSub("w", uint64(i+1), uint64(3000+i), ins(0, "w")))
		w.waitN(t, "ack", i+1)
	}
	if got := c.count("snapshot"); got != 0 {
		t.Fatalf("c was answered %d times before its catch-up was read", got)
	}
	release()
	c.waitN(t, "snapshot", 2)
	w.submit(h, docX, editSub("w", 21, 3020, ins(0, "w")))
	c.waitN(t, "op", 3021-10)

	var versions []uint64
	var kinds []string
	for _, e := range c.snapshotEvents() {
		kinds = append(kinds, e.kind)
		switch e.kind {
		case "op":
			versions = append(versions, e.rec.Version)
		case "snapshot":
			if e.err != nil || e.snap.Version != 3020 {
				t.Fatalf("c's reply = %+v, want the snapshot at 3020", e)
			}
		}
	}
	if want := seqVersions(10, 3021); !slices.Equal(versions, want) {
		t.Fatalf("c got %d versions from %v, want %d: 10 to 3020 in order", len(versions), versions[:min(5, len(versions))], len(want))
	}
	// Both replies come after [10, 3020) and before the live op at 3020.
	if i := slices.Index(kinds, "snapshot"); i != 3010 || kinds[i+1] != "snapshot" || len(kinds) != 3013 {
		t.Fatalf("c's events: replies at %d of %d, want at 3010 and 3011 of 3013", i, len(kinds))
	}
}

// TestOldSubmitServedByReaders: a submit made far before the window is
// rebased by the readers over the records it missed, which a Conn is
// sent before its ack (and a submit without one gets in Missed); a
// resend among them is found and acknowledged at its version.
func TestOldSubmitServedByReaders(t *testing.T) {
	h, _ := newHub(t, collab.Options{Window: 4, WindowBytes: 1 << 20})
	mustSubmit(t, h, docX, createSub("", 0, "ab"))
	mustSubmit(t, h, docX, editSub("A", 1, 1, ins(2, "!")))
	for i := range 20 {
		mustSubmit(t, h, docX, editSub("B", uint64(i+1), uint64(i+2), ins(0, "b")))
	}
	c := newConn("C")
	c.submit(h, docX, editSub("C", 1, 1, ins(1, "C")))
	ack := c.waitN(t, "ack", 1)[0]
	if ack.err != nil || ack.res.Version != 22 {
		t.Fatalf("old submit = %+v, want committed at 22", ack)
	}
	if got, want := c.opVersions(), seqVersions(1, 22); !slices.Equal(got, want) {
		t.Fatalf("C was sent %v before its ack, want %v", got, want)
	}
	if got := mustFetch(t, h, docX).Data; got != strings.Repeat("b", 20)+"aCb!" {
		t.Fatalf("text = %q", got)
	}
	res := mustSubmit(t, h, docX, editSub("D", 1, 2, ins(0, "D")))
	if res.Version != 23 || len(res.Missed) != 21 || res.Missed[0].Version != 2 || res.Missed[20].Version != 22 {
		t.Fatalf("old submit without a Conn = version %d with %d missed, want 23 with [2, 23)", res.Version, len(res.Missed))
	}
	again := newConn("A")
	again.submit(h, docX, editSub("A", 1, 1, ins(2, "!")))
	if a := again.waitN(t, "ack", 1)[0]; a.err != nil || !a.res.Duplicate || a.res.Version != 1 {
		t.Fatalf("old resend = %+v, want a duplicate at 1", a)
	}
	if got := mustFetch(t, h, docX).Version; got != 24 {
		t.Fatalf("version after the resend = %d, want 24", got)
	}
}

func seqVersions(from, to uint64) []uint64 {
	var out []uint64
	for v := from; v < to; v++ {
		out = append(out, v)
	}
	return out
}

// TestOldPresenceClearedWithoutRead: a document presence made at a
// version older than the window is cleared, at the head, rather than
// transformed over records read from the store on the session goroutine.
func TestOldPresenceClearedWithoutRead(t *testing.T) {
	store := newGateStore(t)
	h := startHub(t, collab.Options{Store: store, Window: 4, WindowBytes: 1 << 20})
	mustSubmit(t, h, docX, createSub("", 0, "hello"))
	for i := range 20 {
		mustSubmit(t, h, docX, editSub("B", uint64(i+1), uint64(i+1), ins(0, "b")))
	}
	c, w := newConn("c"), newConn("w")
	subscribePresence(t, h, w, chX)
	reads := store.ops.Load()
	c.presence(h, docPresence("p", 1, 2, 1, 0))
	e := c.waitN(t, "presence-ack", 1)[0]
	if e.err != nil || !e.pres.Cleared() || e.pres.Version != 21 {
		t.Fatalf("old presence = %+v, want it cleared at 21", e)
	}
	if got := w.waitN(t, "presence", 1)[0].pres; !got.Cleared() {
		t.Fatalf("watcher got %+v, want a cleared presence", got)
	}
	if got := store.ops.Load(); got != reads {
		t.Fatalf("store read %d times for an old presence, want 0", got-reads)
	}
}

// TestSessionInboxBounded: past Options.MaxInbox requests waiting in a
// session, a request fails at once with ErrBusy instead of queuing
// without bound; the waiting ones are served.
func TestSessionInboxBounded(t *testing.T) {
	store := &blockingCommitStore{entered: make(chan struct{}, 1), release: make(chan struct{})}
	db, _ := openStore(t, storage.SyncNone)
	store.DB = db
	h := startHub(t, collab.Options{Store: store, MaxInbox: 3})
	mustSubmit(t, h, docX, createSub("", 0, "hello"))
	store.block.Store(true)
	c := newConn("c")
	c.submit(h, docX, editSub("c", 1, 1, ins(0, "x")))
	<-store.entered // the session is in Store.Commit
	t.Cleanup(func() { store.once.Do(func() { close(store.release) }) })
	for i := range 3 {
		c.fetch(h, docX, nil)
		if n := c.count("snapshot"); n != 0 {
			t.Fatalf("fetch %d answered while the session is held", i)
		}
	}
	var got error
	h.Fetch(docX, c, nil, func(_ collab.Snapshot, err error) { got = err }) // answered on this goroutine
	if !errors.Is(got, collab.ErrBusy) {
		t.Fatalf("a fourth request waiting = %v, want ErrBusy", got)
	}
	store.block.Store(false)
	store.once.Do(func() { close(store.release) })
	for _, e := range c.waitN(t, "snapshot", 3) {
		if e.err != nil || e.snap.Version != 2 {
			t.Fatalf("queued fetch = %+v, want the snapshot at 2", e)
		}
	}
	if st := h.Stats(); st.Busy != 1 {
		t.Fatalf("Stats().Busy = %d, want 1", st.Busy)
	}
}

// blockingCommitStore is a real store whose Commit can be held.
type blockingCommitStore struct {
	*storage.DB
	block   atomic.Bool
	entered chan struct{}
	release chan struct{}
	once    sync.Once
}

func (s *blockingCommitStore) Commit(ctx context.Context, key collab.Key, recs []collab.Record, snap *collab.Snapshot) error {
	if s.block.Load() {
		s.entered <- struct{}{}
		<-s.release
	}
	return s.DB.Commit(ctx, key, recs, snap)
}

// TestCloseCancelsCatchUps: Close does not wait for a catch-up read in
// progress: it cancels it, the request is answered with ErrClosed, and
// the readers and sessions stop.
func TestCloseCancelsCatchUps(t *testing.T) {
	store := newGateStore(t)
	buildDoc(t, store.DB, docX, 3000)
	h := collab.NewHub(collab.Options{Store: store})
	store.hold(t)
	c := newConn("c")
	c.subscribe(h, docX, u64(0))
	<-store.entered
	ctx, cancel := context.WithTimeout(ctxBG, waitLimit)
	defer cancel()
	if err := h.Close(ctx); err != nil {
		t.Fatalf("Close with a catch-up read held = %v", err)
	}
	if e := c.waitN(t, "snapshot", 1)[0]; !errors.Is(e.err, collab.ErrClosed) {
		t.Fatalf("subscribe whose catch-up Close cancelled = %v, want ErrClosed", e.err)
	}
}

// TestHeldRequestsBounded: the requests a connection sends a document
// while it catches up wait behind the catch-up, in order, up to
// Options.MaxInbox; past it (held, or still in the inbox) they fail with
// ErrBusy instead of piling up.
func TestHeldRequestsBounded(t *testing.T) {
	store := newGateStore(t)
	buildDoc(t, store.DB, docX, 3000)
	h := startHub(t, collab.Options{Store: store, MaxInbox: 2})
	release := store.hold(t)
	c := newConn("c")
	c.fetch(h, docX, u64(0))
	<-store.entered
	for range 3 {
		c.fetch(h, docX, nil)
	}
	e := c.waitN(t, "snapshot", 1)[0]
	if !errors.Is(e.err, collab.ErrBusy) {
		t.Fatalf("third request held behind a catch-up = %v, want ErrBusy", e.err)
	}
	release()
	got := c.waitN(t, "snapshot", 4)
	for i, e := range got[1:] {
		if e.err != nil || e.snap.Version != 3000 {
			t.Fatalf("reply %d after the catch-up = %+v, want the snapshot at 3000", i, e)
		}
	}
	if n := c.count("op"); n != 3000 {
		t.Fatalf("catch-up sent %d ops, want 3000", n)
	}
}

// TestSubscribedResendFoundByReadersGetsWhatItMissed: a subscriber that
// resends an op made before the window is out of the subscribers while
// the readers look for it; once they find it, it is acknowledged and
// sent the records committed meanwhile before it joins again, so it sees
// every version once and in order.
func TestSubscribedResendFoundByReadersGetsWhatItMissed(t *testing.T) {
	store := newGateStore(t)
	h, c := subscribedAt22(t, store, 1)
	release := store.hold(t)
	c.submit(h, docX, editSub("A", 1, 1, ins(2, "!"))) // a resend of version 1
	<-store.entered
	mustSubmit(t, h, docX, editSub("B", 21, 22, ins(0, "b"))) // 22 and 23, while it is out
	mustSubmit(t, h, docX, editSub("B", 22, 23, ins(0, "b")))
	release()
	if a := c.waitN(t, "ack", 1)[0]; a.err != nil || !a.res.Duplicate || a.res.Version != 1 {
		t.Fatalf("resend = %+v, want a duplicate at 1", a)
	}
	mustSubmit(t, h, docX, editSub("B", 23, 24, ins(0, "b"))) // 24, a broadcast
	c.waitN(t, "op", 3)
	if got, want := c.opVersions(), []uint64{22, 23, 24}; !slices.Equal(got, want) {
		t.Fatalf("A was sent %v, want %v", got, want)
	}
}
