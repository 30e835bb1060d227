package main

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/coedit/coedit/storage"
)

// BenchmarkServerCommit measures the full durable path of a node as
// `coedit serve` wires it: real WebSocket clients (gorilla) on loopback
// speak the ShareDB protocol to web.Server, the hub transforms, applies
// and group-commits to a bbolt file in a temp directory, and the ack goes
// back. Each sub-benchmark starts its own node, with --sync always (one
// fsync per group commit; an op is acked only once durable) or --sync
// none, and opens one client per document for 1, 10 or 100 documents.
// Every client keeps one op in flight: submit, wait for the ack, submit
// the next. b.N ops are spread evenly over the clients.
//
// Reported: ops/s (acked ops per second of wall time, all clients
// together), and the submit-to-ack latency seen by the clients, p50-ms and
// p99-ms. Run it with
//
//	go test ./cmd/coedit -run '^$' -bench ServerCommit -benchtime 5s
//
// Figures depend on the disk's fsync latency and on the CPUs the clients
// share with the server (they run in the same process).
func BenchmarkServerCommit(b *testing.B) {
	for _, mode := range []storage.SyncMode{storage.SyncAlways, storage.SyncNone} {
		for _, docs := range []int{1, 10, 100} {
			b.Run(fmt.Sprintf("sync=%s/docs=%d", mode, docs), func(b *testing.B) {
				benchServerCommit(b, mode, docs)
			})
		}
	}
}

func benchServerCommit(b *testing.B, mode storage.SyncMode, docs int) {
	cfg := serveConfig{Addr: "127.0.0.1:0", DataDir: b.TempDir(), Sync: mode, ShutdownTimeout: time.Minute,
		OpsPerSecond: 1e6, MaxDocLen: 1 << 30}
	n, err := startNode(context.Background(), cfg, quiet)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := n.close(ctx); err != nil {
			b.Errorf("close node: %v", err)
		}
	})
	clients := make([]*benchClient, docs)
	for i := range clients {
		c, err := dialBench("ws://"+n.addr()+"/ws", fmt.Sprintf("doc-%d", i))
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { c.ws.Close() })
		clients[i] = c
	}

	b.ResetTimer()
	errs := make(chan error, docs)
	var wg sync.WaitGroup
	for i, c := range clients {
		ops := b.N / docs
		if i < b.N%docs {
			ops++
		}
		c.lat = make([]time.Duration, 0, ops)
		wg.Go(func() {
			for range ops {
				if err := c.edit(); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}

	var lat []time.Duration
	for _, c := range clients {
		lat = append(lat, c.lat...)
	}
	slices.Sort(lat)
	ms := func(q float64) float64 {
		return float64(lat[min(len(lat)-1, int(q*float64(len(lat))))]) / float64(time.Millisecond)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
	b.ReportMetric(ms(0.50), "p50-ms")
	b.ReportMetric(ms(0.99), "p99-ms")
}

// benchClient is one WebSocket client editing its own document.
type benchClient struct {
	ws  *websocket.Conn
	src string
	doc string
	v   uint64 // the document's version, which the next op is based on
	seq uint64 // the last seq submitted
	lat []time.Duration
}

// dialBench connects, handshakes and creates doc.
func dialBench(url, doc string) (*benchClient, error) {
	ws, _, err := websocket.DefaultDialer.Dial(url, nil)
	if err != nil {
		return nil, err
	}
	c := &benchClient{ws: ws, doc: doc}
	if err := ws.WriteMessage(websocket.TextMessage, []byte(`{"a":"hs","id":null,"protocol":1,"protocolMinor":2}`)); err != nil {
		ws.Close()
		return nil, err
	}
	var hs struct{ A, ID string }
	ws.SetReadDeadline(time.Now().Add(30 * time.Second))
	if err := ws.ReadJSON(&hs); err != nil || hs.A != "hs" || hs.ID == "" {
		ws.Close()
		return nil, fmt.Errorf("handshake: %v (got %+v)", err, hs)
	}
	c.src = hs.ID
	if err := c.submit(`"create":{"type":"text-unicode","data":""}`, "null"); err != nil {
		ws.Close()
		return nil, err
	}
	return c, nil
}

// edit submits one insert at the document's start and waits for its ack,
// recording the latency.
func (c *benchClient) edit() error {
	start := time.Now()
	if err := c.submit(`"op":["x"]`, fmt.Sprint(c.v)); err != nil {
		return err
	}
	c.lat = append(c.lat, time.Since(start))
	return nil
}

// submit sends an op message with body and version v and reads its ack.
// Nothing else is sent to the client (it subscribes to nothing), so the
// next message must be the ack at the document's next version.
func (c *benchClient) submit(body, v string) error {
	c.seq++
	msg := fmt.Sprintf(`{"a":"op","c":"bench","d":%q,"v":%s,"src":%q,"seq":%d,%s}`, c.doc, v, c.src, c.seq, body)
	if err := c.ws.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
		return err
	}
	c.ws.SetReadDeadline(time.Now().Add(30 * time.Second))
	_, reply, err := c.ws.ReadMessage()
	if err != nil {
		return fmt.Errorf("%s seq %d: %w", c.doc, c.seq, err)
	}
	want := fmt.Sprintf(`"d":%q,"v":%d,"src":%q,"seq":%d}`, c.doc, c.v, c.src, c.seq)
	if bytes.Contains(reply, []byte(`"error"`)) || !bytes.HasSuffix(reply, []byte(want)) {
		return fmt.Errorf("%s seq %d: got %s, want the ack ending %s", c.doc, c.seq, reply, want)
	}
	c.v++
	return nil
}
