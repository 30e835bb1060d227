package storage

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/coedit/coedit/collab"
)

// BenchmarkLoadSeqTable loads a document that 300,000 connections have
// each edited once (issue 9 item 8: a session start took 233 ms and 27 MiB
// to read its seq table), with a snapshot at its head. It reports the seq
// entries loaded and, besides ns/op and B/op, the heap the loaded state
// holds.
//
//	go test -run '^$' -bench BenchmarkLoadSeqTable -benchmem ./storage/
func BenchmarkLoadSeqTable(b *testing.B) {
	db := openTest(b, Options{Sync: SyncNone})
	key := collab.Key{Collection: "c", ID: "busy"}
	benchManySrcs(b, db, key, 300_000)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if _, err := db.Load(context.Background(), key); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	st, err := db.Load(context.Background(), key)
	if err != nil {
		b.Fatal(err)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(st)
	b.ReportMetric(float64(after.HeapAlloc-min(after.HeapAlloc, before.HeapAlloc))/(1<<20), "held-MiB")
	b.ReportMetric(float64(len(st.Seqs)), "seqs")
}

// benchManySrcs commits n edits to key, each from a src of its own, with
// the store API alone (so the benchmark runs on any format).
func benchManySrcs(b *testing.B, db *DB, key collab.Key, n int) {
	const batch = 5000
	for v := 0; v < n; v += batch {
		recs := make([]collab.Record, min(batch, n-v))
		for i := range recs {
			recs[i] = editRec(uint64(v+i), fmt.Sprintf("%032d", v+i), 1, "x")
		}
		// A snapshot at the head, as sessions save them, so that Load
		// reads the seq table and not the op log.
		head := v + len(recs)
		snap := &collab.Snapshot{Version: uint64(head), Type: "http://sharejs.org/types/text-unicode/v1", Data: strings.Repeat("x", head)}
		if err := db.Commit(context.Background(), key, recs, snap); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkBigDocInserts is issue 9 item 9's scenario: a 3.6 MB document
// gets 5,000 one-character inserts, one commit each, with a snapshot
// every 500 versions as collab's default SnapshotEvery writes them. It
// reports the file's size after the create and after the inserts, and
// the time per insert.
//
//	go test -run '^$' -bench BenchmarkBigDocInserts -benchtime 1x ./storage/
func BenchmarkBigDocInserts(b *testing.B) {
	for range b.N {
		b.StopTimer()
		path := filepath.Join(b.TempDir(), "big.db")
		db, err := Open(path, Options{Sync: SyncNone})
		if err != nil {
			b.Fatal(err)
		}
		key := collab.Key{Collection: "c", ID: "big"}
		base := strings.Repeat("abcdefghi\n", 360_000)
		if err := db.Commit(context.Background(), key, []collab.Record{createRec(0, "s", 1, base)}, nil); err != nil {
			b.Fatal(err)
		}
		size := func() float64 {
			fi, err := os.Stat(path)
			if err != nil {
				b.Fatal(err)
			}
			return float64(fi.Size()) / (1 << 20)
		}
		created := size()
		const inserts = 5000
		b.StartTimer()
		start := time.Now()
		for v := uint64(1); v <= inserts; v++ {
			var snap *collab.Snapshot
			if (v+1)%500 == 0 {
				snap = &collab.Snapshot{Version: v + 1, Type: "http://sharejs.org/types/text-unicode/v1", Data: strings.Repeat("x", int(v)) + base}
			}
			if err := db.Commit(context.Background(), key, []collab.Record{editRec(v, "s", v+1, "x")}, snap); err != nil {
				b.Fatal(err)
			}
		}
		elapsed := time.Since(start)
		b.StopTimer()
		b.ReportMetric(created, "created-MiB")
		b.ReportMetric(size(), "file-MiB")
		b.ReportMetric(float64(elapsed.Microseconds())/inserts, "µs/insert")
		if err := db.Close(); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
}
