package storage

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/coedit/coedit/collab"
)

// BenchmarkCommit measures the commit path: one goroutine per document,
// each committing one op at a time and waiting for it, as a session does
// under a steady stream of edits. It reports committed ops per second,
// commit latency percentiles, and the average number of commits that
// shared a group commit (one frame of the op log and, with sync=always,
// one disk sync), and the write system calls bbolt made per group commit
// (each writes one page or a run of adjacent pages; the applier makes
// them, several group commits per bbolt transaction, so this counts what
// a group commit costs bbolt on average, beside its one log write).
//
//	go test -run '^$' -bench BenchmarkCommit -benchtime 3s ./storage/
func BenchmarkCommit(b *testing.B) {
	for _, mode := range []SyncMode{SyncAlways, SyncNone} {
		for _, docs := range []int{1, 10, 100} {
			b.Run(fmt.Sprintf("sync=%v/docs=%d", mode, docs), func(b *testing.B) {
				benchCommit(b, mode, docs)
			})
		}
	}
}

func benchCommit(b *testing.B, mode SyncMode, docs int) {
	db := openTest(b, Options{Sync: mode})
	ctx := context.Background()
	keys := make([]collab.Key, docs)
	for i := range keys {
		keys[i] = collab.Key{Collection: "bench", ID: fmt.Sprint("doc", i)}
		mustCommit(b, db, keys[i], []collab.Record{createRec(0, "s", 1, "")}, nil)
	}
	lat := make([][]time.Duration, docs)
	before := db.Stats()
	pagesBefore := boltWrites(db)
	b.ReportAllocs()
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for i := range docs {
		n := b.N / docs
		if i < b.N%docs {
			n++
		}
		lat[i] = make([]time.Duration, 0, n)
		wg.Add(1)
		go func() {
			defer wg.Done()
			src := fmt.Sprint("src", i)
			for v := uint64(1); v <= uint64(n); v++ {
				recs := []collab.Record{editRec(v, src, v, "x")}
				t0 := time.Now()
				if err := db.Commit(ctx, keys[i], recs, nil); err != nil {
					b.Errorf("Commit(%s, %d) = %v", keys[i], v, err)
					return
				}
				lat[i] = append(lat[i], time.Since(t0))
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	after := db.Stats()
	pages := boltWrites(db) - pagesBefore
	all := slices.Concat(lat...)
	slices.Sort(all)
	pct := func(p float64) float64 {
		if len(all) == 0 {
			return 0
		}
		return float64(all[int(p*float64(len(all)-1))].Microseconds()) / 1000
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "ops/s")
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
	if batches := after.Batches - before.Batches; batches > 0 {
		b.ReportMetric(float64(after.Commits-before.Commits)/float64(batches), "commits/batch")
		b.ReportMetric(float64(pages)/float64(batches), "writes/batch")
	}
}

// boltWrites returns how many write system calls bbolt has made for this
// DB's transactions so far.
func boltWrites(db *DB) int64 {
	st := db.bolt.Stats()
	return st.TxStats.GetWrite()
}
