package collab_test

import (
	"context"
	"flag"
	"fmt"
	"math/rand"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coedit/coedit/collab"
	"github.com/coedit/coedit/storage"
)

// checkCatchUpStream checks that c, subscribed with a nil from (its first
// snapshot event), was then sent every version once, in order: as an
// op, or as the ack of its own submit. Duplicate acks of versions it
// already has and error acks are allowed. Records of c's src that
// another connection with the same src committed (a reconnected
// client's old connection) are not broadcast to c: they may be missing.
// It returns the version c's stream reaches.
func checkCatchUpStream(c *testConn, recs []collab.Record) (uint64, error) {
	var next uint64
	skippable := func(v uint64) bool {
		return v < uint64(len(recs)) && recs[v].Src == c.src && !c.acked(v)
	}
	// reach moves next to v if every version in between may be missing.
	reach := func(v uint64) bool {
		for n := next; n < v; n++ {
			if !skippable(n) {
				return false
			}
		}
		next = v
		return true
	}
	started := false
	for i, e := range c.snapshotEvents() {
		switch e.kind {
		case "snapshot":
			if !started {
				if e.err != nil {
					return 0, fmt.Errorf("subscribe: %v", e.err)
				}
				next, started = e.snap.Version, true
			}
		case "op":
			if !started || e.rec.Version < next || !reach(e.rec.Version) {
				return next, fmt.Errorf("event %d: op at %d, want %d", i, e.rec.Version, next)
			}
			next++
		case "ack":
			if e.err != nil {
				continue
			}
			v := e.res.Version
			if e.res.Duplicate && v < next {
				continue
			}
			if v < next || !reach(v) {
				return next, fmt.Errorf("event %d: ack at %d (dup %v), want %d", i, v, e.res.Duplicate, next)
			}
			next++
		}
	}
	for skippable(next) {
		next++
	}
	return next, nil
}

func (c *testConn) acked(v uint64) bool {
	for _, e := range c.snapshotEvents() {
		if e.kind == "ack" && e.err == nil && e.res.Version == v {
			return true
		}
	}
	return false
}

var catchupVerbose = flag.Bool("catchup.v", false, "print event streams")
var catchupSameConn = flag.Bool("catchup.sameconn", true, "resend on the same connection too")
var catchupSteps = flag.Int("catchup.steps", 400, "steps per seed")
var catchupSeeds = flag.Int64("catchup.seeds", 5, "seeds")
var catchupRestart = flag.Bool("catchup.restart", true, "restart the Hub half way")
var catchupSeed = flag.Int64("catchup.seed", 0, "run only this seed")

// TestRandomCatchUpsAndResends: clients submit inserts made at
// random recent or old versions (old ones go through the catch-up
// readers), resend their last op on the same or a new connection with
// the same src, while everyone subscribes; every subscriber must see
// every version once, in order, and the log must hold each (src, seq)
// once.
func TestRandomCatchUpsAndResends(t *testing.T) {
	for seed := int64(1); seed <= *catchupSeeds; seed++ {
		if *catchupSeed != 0 && seed != *catchupSeed {
			continue
		}
		t.Run(fmt.Sprint(seed), func(t *testing.T) { randomCatchUps(t, seed) })
	}
}

func randomCatchUps(t *testing.T, seed int64) {
	rng := rand.New(rand.NewSource(seed))
	db, _ := openStore(t, storage.SyncNone)
	opts := collab.Options{Store: &slowOps{DB: db}, Pipeline: *pipelineAll, Window: 4, WindowBytes: 1 << 20, SeqWindow: 16}
	h := startHubAsIs(t, opts)
	mustSubmit(t, h, docX, createSub("", 0, ""))
	type client struct {
		src      string
		seq      uint64
		base     uint64 // versions below it are in the client's copy
		inflight *collab.Submission
		acked    atomic.Bool
		ackV     atomic.Uint64
		conns    []*testConn
	}
	var all []*testConn
	clients := make([]*client, 4)
	for i := range clients {
		c := &client{src: fmt.Sprintf("c%d", i), base: 1}
		tc := newConn(c.src)
		tc.subscribe(h, docX, nil)
		tc.waitN(t, "snapshot", 1)
		c.conns = append(c.conns, tc)
		all = append(all, tc)
		clients[i] = c
	}
	head := func() uint64 {
		var m uint64 = 1
		for _, c := range all {
			for _, e := range c.snapshotEvents() {
				if e.kind == "op" && e.rec.Version+1 > m {
					m = e.rec.Version + 1
				}
				if e.kind == "ack" && e.err == nil && e.res.Version+1 > m {
					m = e.res.Version + 1
				}
			}
		}
		return m
	}
	want := map[*testConn]int{}
	restarted := 0 // conns before it belong to the first Hub
	submit := func(c *client, tc *testConn, sub collab.Submission) {
		want[tc]++
		h.Submit(docX, tc, sub, func(res collab.SubmitResult, err error) {
			tc.add(event{kind: "ack", key: docX, res: res, err: err})
			if err == nil {
				c.ackV.Store(res.Version)
			}
			c.acked.Store(true) // an error ends it too (the client gives up)
		})
	}
	for step := 0; step < *catchupSteps; step++ {
		if *catchupRestart && step == *catchupSteps/2 {
			// A node restart: the Hub finishes what it has and stops;
			// every client reconnects to a new Hub on the same store,
			// subscribes, and resends its op in flight (acked or not:
			// its ack may have been lost).
			ctx, cancel := context.WithTimeout(ctxBG, waitLimit)
			if err := h.Close(ctx); err != nil {
				t.Fatal(err)
			}
			cancel()
			for tc, n := range want {
				tc.waitN(t, "ack", n)
			}
			h = startHubAsIs(t, opts)
			for _, c := range clients {
				nc := newConn(c.src)
				nc.subscribe(h, docX, nil)
				nc.waitN(t, "snapshot", 1)
				c.conns = append(c.conns, nc)
				all = append(all, nc)
				if c.inflight != nil {
					submit(c, nc, *c.inflight)
				}
			}
			restarted = len(all)
			continue
		}
		c := clients[rng.Intn(len(clients))]
		tc := c.conns[len(c.conns)-1]
		if c.inflight != nil && c.acked.Load() {
			if v := c.ackV.Load() + 1; v > c.base {
				c.base = v
			}
			c.inflight = nil
		}
		switch r := rng.Intn(100); {
		case c.inflight == nil:
			if rng.Intn(3) == 0 {
				continue // lag behind
			}
			c.seq++
			hd := head()
			v := c.base
			if hd > c.base && rng.Intn(4) != 0 {
				v = hd - uint64(rng.Intn(int(min(hd-c.base, 3))))
			}
			c.base = v
			sub := editSub(c.src, c.seq, v, ins(0, c.src))
			c.inflight = &sub
			c.acked.Store(false)
			submit(c, tc, sub)
		case r < 70:
		case r < 85:
			if *catchupSameConn {
				submit(c, tc, *c.inflight) // a resend on the same connection
			}
		default:
			// reconnect: a new connection with the same src resends
			nc := newConn(c.src)
			nc.subscribe(h, docX, nil)
			submit(c, nc, *c.inflight)
			c.conns = append(c.conns, nc)
			all = append(all, nc)
		}
		if rng.Intn(10) == 0 {
			time.Sleep(time.Millisecond)
		}
	}
	for tc, n := range want {
		tc.waitN(t, "ack", n)
	}
	final := mustFetch(t, h, docX)
	recs, err := db.Ops(ctxBG, docX, 0, final.Version)
	if err != nil || uint64(len(recs)) != final.Version {
		t.Fatalf("Ops = %d records, %v; want %d", len(recs), err, final.Version)
	}
	seen := map[[2]string]uint64{}
	for _, r := range recs {
		k := [2]string{r.Src, fmt.Sprint(r.Seq)}
		if v, ok := seen[k]; ok && r.Src != "" {
			t.Errorf("src %s seq %d committed twice: at %d and %d", r.Src, r.Seq, v, r.Version)
		}
		seen[k] = r.Version
	}
	for i, tc := range all {
		deadline := time.Now().Add(3 * time.Second)
		for {
			next, err := checkCatchUpStream(tc, recs)
			if err != nil {
				t.Errorf("conn %s %p: %v", tc.src, tc, err)
				if *catchupVerbose {
					for i, e := range tc.snapshotEvents() {
						switch e.kind {
						case "op":
							t.Logf("  %d op v%d %s/%d", i, e.rec.Version, e.rec.Src, e.rec.Seq)
						case "ack":
							t.Logf("  %d ack v%d dup=%v err=%v %s/%d", i, e.res.Version, e.res.Duplicate, e.err, e.res.Record.Src, e.res.Record.Seq)
						default:
							t.Logf("  %d %s v%d", i, e.kind, e.snap.Version)
						}
					}
				}
				break
			}
			if next >= final.Version || i < restarted {
				break
			}
			if time.Now().After(deadline) {
				t.Errorf("conn %s: stream stops at %d, head %d", tc.src, next, final.Version)
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	t.Logf("stats %+v", h.Stats())
	for _, tc := range all {
		for _, e := range tc.snapshotEvents() {
			if e.kind == "ack" && e.err != nil {
				t.Logf("conn %s: error ack %v", tc.src, e.err)
			}
		}
	}
}

// slowOps is a real store whose op log reads take a millisecond, so
// that commits happen while the readers catch up.
type slowOps struct{ *storage.DB }

func (s *slowOps) Ops(ctx context.Context, key collab.Key, from, to uint64) ([]collab.Record, error) {
	time.Sleep(time.Millisecond)
	return s.DB.Ops(ctx, key, from, to)
}
