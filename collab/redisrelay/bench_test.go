package redisrelay_test

import (
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"

	"github.com/coedit/coedit/collab"
	"github.com/coedit/coedit/collab/redisrelay"
	"github.com/coedit/coedit/internal/redistest"
)

// BenchmarkCommit measures one-record commits to a local redis-server
// without persistence: to one document in a row (a round trip plus the
// script), and from about 100 goroutines, each to a document of its own.
func BenchmarkCommit(b *testing.B) {
	srv := redistest.StartServer(b, redistest.ServerOptions{})
	r := node(b, srv.Addr(), prefix(b), redisrelay.Options{})
	var docs atomic.Int64
	// writer commits to a fresh document of its own; a benchmark
	// function runs more than once, so each run starts new documents.
	type writer struct {
		key   collab.Key
		epoch string
		head  uint64
	}
	newWriter := func(b *testing.B) *writer {
		w := &writer{key: collab.Key{Collection: "bench", ID: fmt.Sprint(docs.Add(1))}}
		w.epoch = initDoc(b, r, w.key)
		return w
	}
	commit := func(b *testing.B, w *writer) {
		res, err := r.Commit(ctx(b), w.key, w.epoch, w.head, []collab.Record{rec(w.head, "s", w.head+1, "x")})
		if err != nil || res.Outcome != redisrelay.Committed {
			b.Fatalf("Commit = %+v, %v", res, err)
		}
		w.head++
	}
	b.Run("one-doc", func(b *testing.B) {
		w := newWriter(b)
		for b.Loop() {
			commit(b, w)
		}
	})
	b.Run("100-docs", func(b *testing.B) {
		b.SetParallelism(100 / max(1, runtime.GOMAXPROCS(0)))
		b.RunParallel(func(pb *testing.PB) {
			w := newWriter(b)
			for pb.Next() {
				commit(b, w)
			}
		})
	})
}
