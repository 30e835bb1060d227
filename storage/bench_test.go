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
// a group commit costs bbolt on average, beside its one log write), and
// the process's CPU time and context switches per commit (on Linux; they
// include the applier's share, and the benchmark's own goroutines).
//
//	go test -run '^$' -bench BenchmarkCommit -benchtime 3s ./storage/
func BenchmarkCommit(b *testing.B) {
	for _, mode := range []SyncMode{SyncAlways, SyncNone} {
		for _, docs := range []int{1, 10, 100} {
			b.Run(fmt.Sprintf("sync=%v/docs=%d", mode, docs), func(b *testing.B) {
				benchCommit(b, mode, docs, 0)
			})
		}
	}
}

// benchCommit commits b.N single-op edits over docs documents, one
// goroutine per document, each commit waited for; with every > 0 each
// document commits once per every, at spread phases (paced), else as fast
// as it can.
func benchCommit(b *testing.B, mode SyncMode, docs int, every time.Duration) {
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
	cpu0, sw0 := rusage()
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
			next := start.Add(every * time.Duration(i) / time.Duration(docs))
			for v := uint64(1); v <= uint64(n); v++ {
				if every > 0 {
					time.Sleep(time.Until(next))
					next = next.Add(every)
				}
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
	reportCommits(b, db, before, pagesBefore, cpu0, sw0, elapsed, lat)
}

// reportCommits reports what benchCommit measures.
func reportCommits(b *testing.B, db *DB, before Stats, pagesBefore, cpu0, sw0 int64, elapsed time.Duration, lat [][]time.Duration) {
	cpu1, sw1 := rusage()
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
	if cpu1 > 0 && b.N > 0 {
		b.ReportMetric(float64(cpu1-cpu0)/float64(b.N), "cpu-µs/op")
		b.ReportMetric(float64(sw1-sw0)/float64(b.N), "ctxsw/op")
	}
}

// BenchmarkCommitPaced is scenario 1's storage load: 100 documents, each
// committing one op every 50 ms (2,000 ops/s in all, at spread phases),
// each commit waited for, as a session does with one client's edits. At
// this rate most commits find no other in flight, so it measures what a
// lone commit costs: hand-offs (ctxsw/op), syncs (commits/batch) and CPU.
//
//	go test -run '^$' -bench BenchmarkCommitPaced -benchtime 6000x ./storage/
func BenchmarkCommitPaced(b *testing.B) {
	for _, mode := range []SyncMode{SyncAlways, SyncNone} {
		b.Run(fmt.Sprintf("sync=%v", mode), func(b *testing.B) {
			benchCommit(b, mode, 100, 50*time.Millisecond)
		})
	}
}

// boltWrites returns how many write system calls bbolt has made for this
// DB's transactions so far.
func boltWrites(db *DB) int64 {
	st := db.bolt.Stats()
	return st.TxStats.GetWrite()
}

// BenchmarkApply measures the applier alone: moving logged requests into
// bbolt, in rounds of what scenario 1 logs in one ApplyEvery (1,000
// single-record commits over 100 documents, 10 each), one bbolt
// transaction a round. ns/op is per request applied.
//
//	go test -run '^$' -bench BenchmarkApply -benchmem ./storage/
func BenchmarkApply(b *testing.B) {
	const docs, round = 100, 1000
	db := openTest(b, Options{Sync: SyncNone, ApplyEvery: time.Hour})
	keys := make([]collab.Key, docs)
	heads := make([]uint64, docs)
	for i := range keys {
		keys[i] = collab.Key{Collection: "bench", ID: fmt.Sprint("doc", i)}
		mustCommit(b, db, keys[i], []collab.Record{createRec(0, "s", 1, "")}, nil)
		heads[i] = 1
	}
	caughtUp(b, db)
	b.ReportAllocs()
	b.ResetTimer()
	for done := 0; done < b.N; done += round {
		b.StopTimer()
		for j := range min(round, b.N-done) {
			i := j % docs
			src := fmt.Sprint("src", j%7)
			mustCommit(b, db, keys[i], []collab.Record{editRec(heads[i], src, heads[i], "x")}, nil)
			heads[i]++
		}
		b.StartTimer()
		caughtUp(b, db)
	}
}

// BenchmarkLogAppend measures the log's write alone: one 230-byte frame
// (about scenario 1's) appended and made durable per op (walFile.append:
// pwrite and fdatasync, raw system calls with two Ps or more) on a file
// in the test's temp directory, with nothing else running. It reports the
// process's CPU time per op beside ns/op (wall time). The segment is
// renewed every 8 MiB so that a long run does not measure the zeroed
// tail's growth.
//
//	go test -run '^$' -bench BenchmarkLogAppend -benchtime 5000x ./storage/
func BenchmarkLogAppend(b *testing.B) {
	w := &walFile{dir: b.TempDir(), sync: true}
	if _, err := w.create(1); err != nil {
		b.Fatal(err)
	}
	defer w.f.Close()
	frame := make([]byte, 230)
	for i := range frame {
		frame[i] = byte(i)
	}
	cpu0, _ := rusage()
	b.ResetTimer()
	for i := range b.N {
		if w.size > 8<<20 {
			if _, err := w.create(uint64(i) + 1); err != nil {
				b.Fatal(err)
			}
		}
		if _, err := w.append(frame); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	if cpu1, _ := rusage(); cpu1 > 0 {
		b.ReportMetric(float64(cpu1-cpu0)/float64(b.N), "cpu-µs/op")
	}
}
