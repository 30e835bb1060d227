package web

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/coedit/coedit/collab"
	"github.com/coedit/coedit/ot"
)

// These benchmarks measure what issue 9 measured against a real server:
// a live client's submit latency while old-version fetches from a gone
// client are queued (item 5), and the heap that untyped presence values
// hold (item 7). They report figures; they assert nothing about time.

// fastLimits lifts the per-connection rate limits for benchmarks.
var fastLimits = Options{Logger: quiet, OpsPerSecond: 1e9, OpsBurst: 1e9, MessagesPerSecond: 1e9, MessagesBurst: 1e9}

// buildLongDoc stores a document of n records (a create, then
// one-letter inserts) through the store in large commits, and returns its
// head version.
func buildLongDoc(tb testing.TB, ts *testServer, key collab.Key, n int) uint64 {
	tb.Helper()
	ctx := context.Background()
	const batch = 2000
	var recs []collab.Record
	for v := 0; v < n; v++ {
		rec := collab.Record{Version: uint64(v), Src: "builder", Seq: uint64(v + 1), Kind: collab.OpEdit, Op: ot.Op{{Kind: ot.KindInsert, N: 1, Text: "x"}}, Time: 1}
		if v == 0 {
			rec = collab.Record{Version: 0, Src: "builder", Seq: 1, Kind: collab.OpCreate, Type: ot.URI, Time: 1}
		}
		recs = append(recs, rec)
		if len(recs) == batch || v == n-1 {
			var snap *collab.Snapshot
			if v == n-1 {
				snap = &collab.Snapshot{Version: uint64(n), Type: ot.URI, Data: strings.Repeat("x", n-1)}
			}
			if err := ts.store.Commit(ctx, key, recs, snap); err != nil {
				tb.Fatalf("building %s: commit at %d: %v", key, recs[0].Version, err)
			}
			recs = recs[:0]
		}
	}
	return uint64(n)
}

// readUntil reads messages until one contains want, and returns it.
func readUntil(b *testing.B, ws *websocket.Conn, want string) string {
	for {
		ws.SetReadDeadline(time.Now().Add(60 * time.Second))
		_, data, err := ws.ReadMessage()
		if err != nil {
			b.Fatalf("waiting for %s: %v", want, err)
		}
		if strings.Contains(string(data), want) {
			return string(data)
		}
	}
}

// BenchmarkSubmitBehindOldFetches: a 100,000-op document; a client sends
// 40 fetches from version 0 and disconnects; then a live, subscribed
// client submits one op. It reports that submit's latency (submit-ms),
// and the same client's latency with nothing queued (idle-ms). Run with
// -benchtime 1x: each round leaves the old reads to finish.
func BenchmarkSubmitBehindOldFetches(b *testing.B) {
	ts := startServer(b, fastLimits, collab.Options{})
	key := collab.Key{Collection: "bench", ID: "long"}
	head := buildLongDoc(b, ts, key, 100_000)
	live := ts.benchConn(b)
	send(b, live, `{"a":"s","c":"bench","d":"long","v":null}`)
	readUntil(b, live, `"a":"s"`)
	seq := 0
	submit := func() time.Duration {
		seq++
		start := time.Now()
		send(b, live, fmt.Sprintf(`{"a":"op","c":"bench","d":"long","v":%d,"seq":%d,"op":["y"]}`, head, seq))
		readUntil(b, live, fmt.Sprintf(`"seq":%d`, seq))
		head++
		return time.Since(start)
	}
	var idle, behind time.Duration
	b.ResetTimer()
	for range b.N {
		idle += submit()
		old := ts.benchConn(b)
		for range 40 {
			send(b, old, `{"a":"f","c":"bench","d":"long","v":0}`)
		}
		old.Close()
		time.Sleep(50 * time.Millisecond) // let the server read the 40 fetches
		behind += submit()
	}
	b.ReportMetric(float64(idle.Microseconds())/1000/float64(b.N), "idle-ms")
	b.ReportMetric(float64(behind.Microseconds())/1000/float64(b.N), "submit-ms")
}

// BenchmarkPresenceHeap: one connection sends 400 untyped presence
// values of 400 KiB, each under its own id, and stays connected; it
// reports how much the heap grew (after a GC), in MiB.
func BenchmarkPresenceHeap(b *testing.B) {
	value := `"` + strings.Repeat("v", 400<<10-2) + `"`
	for range b.N {
		ts := startServer(b, fastLimits, collab.Options{})
		c := ts.benchConn(b)
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		for i := range 400 {
			send(b, c, fmt.Sprintf(`{"a":"p","ch":"room","id":"id%d","p":%s,"pv":1}`, i, value))
			recvN(b, c, 1) // the echo, or an error
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(int64(after.HeapInuse)-int64(before.HeapInuse))/(1<<20), "heapMiB")
		c.Close()
	}
}
