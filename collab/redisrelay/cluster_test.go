package redisrelay_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coedit/coedit/collab"
	"github.com/coedit/coedit/collab/redisrelay"
	"github.com/coedit/coedit/internal/redistest"
	"github.com/redis/go-redis/v9"
)

// newClusterClient connects to a Redis Cluster; a cleanup closes it.
func newClusterClient(t testing.TB, addrs []string) *redis.ClusterClient {
	t.Helper()
	c := redis.NewClusterClient(&redis.ClusterOptions{
		Addrs:                 addrs,
		ContextTimeoutEnabled: true,
		DialTimeout:           time.Second,
	})
	t.Cleanup(func() { c.Close() })
	return c
}

// TestCluster runs commits, conflicts, reads and sharded pub/sub over a
// three-master Redis Cluster, for documents spread over all masters
// (one with braces in its id): each document's keys and channel share
// one slot, so every script and publish works.
func TestCluster(t *testing.T) {
	cl := redistest.StartCluster(t, redistest.ServerOptions{})
	p := prefix(t)
	ca, cb := newClusterClient(t, cl.Addrs()), newClusterClient(t, cl.Addrs())
	a := newRelay(t, ca, p, redisrelay.Options{})
	b := newRelay(t, cb, p, redisrelay.Options{})

	var keys []collab.Key
	masters := make(map[string]bool)
	for i := 0; len(keys) < 12; i++ {
		k := collab.Key{Collection: "notes", ID: fmt.Sprintf("doc-%d", i)}
		if i == 0 {
			k.ID = "}x{"
		}
		keys = append(keys, k)
		m, err := ca.MasterForKey(ctx(t), p+"{notes."+k.ID+"}:meta")
		if err != nil {
			t.Fatalf("MasterForKey = %v", err)
		}
		masters[m.Options().Addr] = true
	}
	if len(masters) != 3 {
		t.Fatalf("documents on %d masters, want all 3", len(masters))
	}

	inboxes := make(map[collab.Key]*inbox)
	epochs := make(map[collab.Key]string)
	for _, k := range keys {
		epochs[k] = initDoc(t, a, k)
		in := newInbox()
		inboxes[k] = in
		if _, err := b.Subscribe(ctx(t), k, in.handler()); err != nil {
			t.Fatalf("Subscribe(%v) = %v", k, err)
		}
		in.wait(t, "the first resync", func(in *inbox) bool { return in.resyncs == 1 })
	}
	// One pub/sub connection per master carries all its documents.
	var mu sync.Mutex
	conns := 0
	err := cb.ForEachMaster(ctx(t), func(c context.Context, m *redis.Client) error {
		list, err := m.ClientList(c).Result()
		mu.Lock()
		defer mu.Unlock()
		conns += strings.Count(list, "flags=P")
		return err
	})
	if err != nil || conns != 3 {
		t.Fatalf("pub/sub connections on the masters: %d, %v; want 3", conns, err)
	}
	var wg sync.WaitGroup
	for _, k := range keys {
		wg.Go(func() {
			commit(t, a, k, epochs[k], 0, create(0, "a", 1, k.ID))
			res, err := b.Commit(ctx(t), k, epochs[k], 0, []collab.Record{create(0, "b", 1, "late")})
			if err != nil || res.Outcome != redisrelay.Conflict || len(res.Missed) != 1 || res.Missed[0].Data != k.ID {
				t.Errorf("%v: Commit behind = %+v, %v; want a conflict with a's create", k, res, err)
				return
			}
			commit(t, b, k, epochs[k], 1, rec(1, "b", 1, "x"))
		})
	}
	wg.Wait()
	for _, k := range keys {
		got := readAll(t, b, k, epochs[k])
		if len(got) != 2 || got[0].Data != k.ID || got[1].Src != "b" {
			t.Errorf("%v: log %v, want a's create and b's edit", k, got)
		}
		inboxes[k].wait(t, fmt.Sprintf("%v's two records", k), func(in *inbox) bool { return len(in.recs) == 2 })
		if in := inboxes[k]; !sameRecords(in.recs, got) {
			t.Errorf("%v: delivered %v, want %v", k, in.recs, got)
		}
	}
}
