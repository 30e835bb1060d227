package collab_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/coedit/coedit/collab"
	"github.com/coedit/coedit/storage"
)

// TestSubscribeAtVersion: join first, then the records since the version
// (the conn's own included), then the reply; then live ops.
func TestSubscribeAtVersion(t *testing.T) {
	h, _ := newHub(t, collab.Options{Window: 2})
	mustSubmit(t, h, docX, createSub("me", 1, "a"))
	for i := range 4 {
		mustSubmit(t, h, docX, editSub("me", uint64(i+2), uint64(i+1), ins(0, "b")))
	}
	c := newConn("me")
	c.subscribe(h, docX, u64(1)) // [1, 5): older than the window of 2
	snap := c.waitN(t, "snapshot", 1)[0]
	if snap.err != nil || snap.snap.Version != 5 || snap.snap.Data != "bbbba" {
		t.Fatalf("subscribe reply = %+v, want bbbba at 5", snap)
	}
	if got, want := c.kinds(), []string{"op", "op", "op", "op", "snapshot"}; !slices.Equal(got, want) {
		t.Fatalf("events = %v, want %v", got, want)
	}
	if got, want := c.opVersions(), []uint64{1, 2, 3, 4}; !slices.Equal(got, want) {
		t.Fatalf("catch-up versions = %v, want %v", got, want)
	}
	mustSubmit(t, h, docX, editSub("other", 1, 5, ins(0, "c")))
	if got := c.waitN(t, "op", 5)[4].rec; got.Version != 5 || got.Src != "other" {
		t.Fatalf("live op = %+v, want other's op at 5", got)
	}

	// At the head, or past it: the reply alone, no error.
	for _, from := range []uint64{6, 99} {
		d := newConn("d")
		d.subscribe(h, docX, u64(from))
		if e := d.waitN(t, "snapshot", 1)[0]; e.err != nil || d.count("op") != 0 {
			t.Fatalf("subscribe from %d: %v, %d ops; want no error, no ops", from, e.err, d.count("op"))
		}
	}
	// From nil: the snapshot.
	e := newConn("e")
	e.subscribe(h, docX, nil)
	if got := e.waitN(t, "snapshot", 1)[0].snap; got.Data != "cbbbba" || got.Version != 6 {
		t.Fatalf("subscribe(nil) = %+v, want cbbbba at 6", got)
	}
	// Unsubscribed: no more ops.
	done := make(chan error, 1)
	h.Unsubscribe(docX, e, func(err error) { done <- err })
	if err := <-done; err != nil {
		t.Fatalf("Unsubscribe = %v", err)
	}
	mustSubmit(t, h, docX, editSub("other", 2, 6, ins(0, "d")))
	c.waitN(t, "op", 6)
	if n := e.count("op"); n != 0 {
		t.Fatalf("unsubscribed conn got %d ops, want 0", n)
	}
}

// TestFetch: a fetch with a version sends the missing records and the
// reply but does not join the stream.
func TestFetch(t *testing.T) {
	h, _ := newHub(t, collab.Options{})
	mustSubmit(t, h, docX, createSub("", 0, "a"))
	mustSubmit(t, h, docX, editSub("", 0, 1, ins(1, "b")))
	c := newConn("c")
	c.fetch(h, docX, u64(0))
	if got := c.waitN(t, "snapshot", 1)[0].snap; got.Data != "ab" || got.Version != 2 {
		t.Fatalf("fetch reply = %+v", got)
	}
	if got := c.opVersions(); !slices.Equal(got, []uint64{0, 1}) {
		t.Fatalf("fetch ops = %v, want [0 1]", got)
	}
	mustSubmit(t, h, docX, editSub("", 0, 2, ins(2, "c")))
	mustFetch(t, h, docX)
	if n := c.count("op"); n != 2 {
		t.Fatalf("after fetch the conn got %d ops, want 2 (not subscribed)", n)
	}
}

// TestSnapshotAt: versions and times, across stored milestones.
func TestSnapshotAt(t *testing.T) {
	db, err := storage.Open(t.TempDir()+"/s.db", storage.Options{Sync: storage.SyncNone, MilestoneEvery: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var mu sync.Mutex
	clock := int64(1000)
	now := func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		clock += 1000
		return time.UnixMilli(clock)
	}
	h := startHub(t, collab.Options{Store: db, SnapshotEvery: 2, Now: now})
	texts := []string{"", "a"} // texts[v] is the text at version v
	mustSubmit(t, h, docX, createSub("", 0, "a"))
	for i := range 6 {
		s := string(rune('b' + i))
		mustSubmit(t, h, docX, editSub("", 0, uint64(i+1), ins(i+1, s)))
		texts = append(texts, texts[len(texts)-1]+s)
	}
	for v, want := range texts {
		got, err := h.SnapshotAt(ctxBG, docX, uint64(v))
		if err != nil || got.Data != want || got.Version != uint64(v) {
			t.Errorf("SnapshotAt(%d) = %+v, %v; want %q", v, got, err, want)
		}
		if (got.Type == "") != (v == 0) {
			t.Errorf("SnapshotAt(%d).Type = %q", v, got.Type)
		}
	}
	if _, err := h.SnapshotAt(ctxBG, docX, 8); !errors.Is(err, collab.ErrVersionAhead) {
		t.Errorf("SnapshotAt(8) = %v, want ErrVersionAhead", err)
	}
	// Record at version v was committed at 2000 + 1000v.
	for _, tc := range []struct {
		ts   int64
		want uint64
	}{{0, 0}, {1999, 0}, {2000, 1}, {2500, 1}, {4000, 3}, {8000, 7}, {1 << 50, 7}} {
		got, err := h.SnapshotAtTime(ctxBG, docX, tc.ts)
		if err != nil || got.Version != tc.want || got.Data != texts[tc.want] {
			t.Errorf("SnapshotAtTime(%d) = %+v, %v; want version %d", tc.ts, got, err, tc.want)
		}
	}
	recs, err := h.Ops(ctxBG, docX, 2, 5)
	if err != nil || len(recs) != 3 || recs[0].Version != 2 {
		t.Errorf("Ops(2, 5) = %d records, %v", len(recs), err)
	}
	infos, err := h.List(ctxBG, "docs", 0)
	if err != nil || len(infos) != 1 || infos[0].Key != docX || infos[0].Version != 7 {
		t.Errorf("List = %+v, %v", infos, err)
	}
}

// TestIdleStopAndReload: an unused session saves a snapshot and stops; a
// subscribed one stays; a later request reloads the document.
func TestIdleStopAndReload(t *testing.T) {
	h, db := newHub(t, collab.Options{IdleTimeout: 20 * time.Millisecond})
	mustSubmit(t, h, docX, createSub("", 0, "a"))
	mustSubmit(t, h, docX, editSub("", 0, 1, ins(1, "b")))
	waitFor(t, "the session to stop", func() bool { return h.Stats().Sessions == 0 })
	st, err := db.Load(ctxBG, docX)
	if err != nil || st.Snapshot.Version != 2 || st.Snapshot.Data != "ab" || len(st.Ops) != 0 {
		t.Fatalf("stored after idle stop: %+v, %v; want a snapshot ab at 2", st, err)
	}
	if got := mustFetch(t, h, docX); got.Data != "ab" || got.Version != 2 {
		t.Fatalf("reloaded = %+v", got)
	}
	c := newConn("c")
	c.subscribe(h, docX, nil)
	c.waitN(t, "snapshot", 1)
	time.Sleep(100 * time.Millisecond) // several idle timeouts
	if st := h.Stats(); st.Sessions != 1 {
		t.Fatalf("Sessions = %d with a subscriber, want 1", st.Sessions)
	}
	h.Disconnect(c)
	waitFor(t, "the session to stop after disconnect", func() bool { return h.Stats().Sessions == 0 })
	if st := h.Stats(); st.Conns != 0 || st.SessionsStarted != st.SessionsStopped {
		t.Fatalf("Stats = %+v, want no conns and every session stopped", st)
	}
}

// TestIdleRace: requests keep arriving while sessions time out after
// 1ms; none is lost or answered twice.
func TestIdleRace(t *testing.T) {
	h, _ := newHub(t, collab.Options{IdleTimeout: time.Millisecond})
	mustSubmit(t, h, docX, createSub("", 0, ""))
	for i := range 300 {
		res := mustSubmit(t, h, docX, editSub("a", uint64(i+1), uint64(i+1), ins(i, "x")))
		if res.Version != uint64(i+1) {
			t.Fatalf("submit %d committed at %d", i, res.Version)
		}
		if i%7 == 0 {
			time.Sleep(time.Duration(i%3) * time.Millisecond)
		}
	}
	if got := mustFetch(t, h, docX); got.Version != 301 || len(got.Data) != 300 {
		t.Fatalf("doc = version %d, %d bytes", got.Version, len(got.Data))
	}
	t.Logf("%d sessions started", h.Stats().SessionsStarted)
}

// TestCloseWithPendingSubmits: Close lets queued submits commit; every
// acknowledged op is in the store after reopening, later ones get
// ErrClosed.
func TestCloseWithPendingSubmits(t *testing.T) {
	db, path := openStore(t, storage.SyncAlways)
	h := collab.NewHub(collab.Options{Store: db})
	keys := []collab.Key{{Collection: "docs", ID: "a"}, {Collection: "docs", ID: "b"}}
	for _, k := range keys {
		mustSubmit(t, h, k, createSub("", 0, ""))
	}
	type acked struct {
		key collab.Key
		src string
		seq uint64
		v   uint64
	}
	// Writers queue submits without waiting, so many are pending when
	// Close begins.
	var mu sync.Mutex
	var got []acked
	closedErrs, total := 0, 0
	var wg sync.WaitGroup
	for w := range 8 {
		key := keys[w%2]
		src := fmt.Sprint("w", w)
		for seq := uint64(1); seq <= 100; seq++ {
			wg.Add(1)
			total++
			h.Submit(key, nil, collab.Submission{Src: src, Seq: seq, Kind: collab.OpEdit, Op: ins(0, "x")},
				func(res collab.SubmitResult, err error) {
					defer wg.Done()
					mu.Lock()
					defer mu.Unlock()
					switch {
					case errors.Is(err, collab.ErrClosed):
						closedErrs++
					case err != nil:
						t.Errorf("submit = %v", err)
					default:
						got = append(got, acked{key, src, seq, res.Version})
					}
				})
		}
	}
	ctx, cancel := context.WithTimeout(ctxBG, waitLimit)
	defer cancel()
	if err := h.Close(ctx); err != nil {
		t.Fatalf("Close = %v", err)
	}
	wg.Wait()
	if len(got)+closedErrs != total {
		t.Fatalf("%d acked + %d refused, want %d answers", len(got), closedErrs, total)
	}
	for w := range 2 {
		h.Submit(keys[w], nil, createSub("", 0, ""), func(_ collab.SubmitResult, err error) {
			if !errors.Is(err, collab.ErrClosed) {
				t.Errorf("submit after Close = %v, want ErrClosed", err)
			}
		})
	}
	if _, err := h.FetchWait(ctxBG, keys[0]); !errors.Is(err, collab.ErrClosed) {
		t.Fatalf("FetchWait after Close = %v, want ErrClosed", err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db2, err := storage.Open(path, storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db2.Close()
	stored := map[acked]bool{}
	for _, k := range keys {
		st, err := db2.Load(ctxBG, k)
		if err != nil {
			t.Fatal(err)
		}
		if len(st.Ops) != 0 {
			t.Errorf("%s: %d ops after the snapshot, want 0 (Close saves a snapshot)", k, len(st.Ops))
		}
		recs, err := db2.Ops(ctxBG, k, 1, st.Snapshot.Version)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range recs {
			stored[acked{k, r.Src, r.Seq, r.Version}] = true
		}
		if n := len([]rune(st.Snapshot.Data)); n != len(recs) {
			t.Errorf("%s: snapshot of %d code points, %d edits", k, n, len(recs))
		}
	}
	if len(got) != total {
		t.Errorf("%d of %d submits queued before Close were acknowledged, want all", len(got), total)
	}
	for _, a := range got {
		if !stored[a] {
			t.Errorf("acknowledged %+v is not in the store", a)
		}
	}
	t.Logf("%d acknowledged, %d stored", len(got), len(stored))
}

// TestRemoteRecords: two Hubs with their own stores share a LocalRelay.
// Records committed on one reach the other's subscribers in order, a gap
// is filled from the relay's log, and each store holds them all.
func TestRemoteRecords(t *testing.T) {
	relay := collab.NewLocalRelay(100)
	dbA, _ := openStore(t, storage.SyncNone)
	dbB, _ := openStore(t, storage.SyncNone)
	a := startHub(t, collab.Options{Store: dbA, Relay: relay})
	b := startHub(t, collab.Options{Store: dbB, Relay: relay})

	// Node a commits before b has a session for the document.
	mustSubmit(t, a, docX, createSub("w", 1, "hi"))
	sub := newConn("reader")
	sub.subscribe(b, docX, nil)
	if s := sub.waitN(t, "snapshot", 1)[0].snap; s.Version != 0 {
		t.Fatalf("b's first snapshot = %+v, want version 0 (b never saw the doc)", s)
	}
	for i := range 3 {
		mustSubmit(t, a, docX, editSub("w", uint64(i+2), uint64(i+1), ins(2+i, "!")))
	}
	ops := sub.waitN(t, "op", 4)
	for i, e := range ops {
		if e.rec.Version != uint64(i) {
			t.Fatalf("b's subscriber got versions %v, want 0..3 in order", sub.opVersions())
		}
	}
	if got := mustFetch(t, b, docX); got.Data != "hi!!!" || got.Version != 4 {
		t.Fatalf("b's doc = %+v, want hi!!! at 4", got)
	}
	recs, err := dbB.Ops(ctxBG, docX, 0, 10)
	if err != nil || len(recs) != 4 {
		t.Fatalf("b's store: %d records, %v; want 4", len(recs), err)
	}
	// b's seq table came with the records: a resend reaching b is acked.
	res, err := b.SubmitWait(ctxBG, docX, editSub("w", 2, 1, ins(2, "!")))
	if err != nil || !res.Duplicate || res.Version != 1 {
		t.Fatalf("resend on b = %+v, %v; want duplicate at 1", res, err)
	}
	if st := b.Stats(); st.RemoteRecords != 4 {
		t.Fatalf("b Stats().RemoteRecords = %d, want 4", st.RemoteRecords)
	}
}

func TestHubWithoutStore(t *testing.T) {
	h := collab.NewHub(collab.Options{})
	if _, err := h.SubmitWait(ctxBG, docX, createSub("", 0, "")); !errors.Is(err, collab.ErrClosed) {
		t.Fatalf("submit without a store = %v, want ErrClosed", err)
	}
	if _, err := h.SnapshotAt(ctxBG, docX, 0); !errors.Is(err, collab.ErrClosed) {
		t.Fatalf("SnapshotAt without a store = %v, want ErrClosed", err)
	}
	if err := h.Close(ctxBG); err != nil {
		t.Fatal(err)
	}
}
