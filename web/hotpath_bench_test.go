package web

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/coedit/coedit/collab"
	"github.com/coedit/coedit/storage"
)

// BenchmarkSubmitPath measures the server's own work for one op from a
// submitter to a document with subs other subscribers: decoding the frame
// (conn.handle), the session's plan, transform and apply, the commit into
// a real store (SyncNone), the ack and one broadcast encoded and queued per
// subscriber. There is no socket: the conns are the server's, without
// their reader and writer goroutines, and the benchmark empties their
// queues itself, so allocs/op counts the submit path and nothing of
// gorilla or the kernel. Each op is made one version behind the head, so
// it is transformed over the op before it, as ops of a busy document are.
func BenchmarkSubmitPath(b *testing.B) {
	for _, subs := range []int{3, 100} {
		b.Run(fmt.Sprintf("subs=%d", subs), func(b *testing.B) {
			srv, hub := benchServer(b)
			submitter := benchConn(b, srv, "submitter")
			others := make([]*conn, subs)
			for i := range others {
				others[i] = benchConn(b, srv, fmt.Sprintf("sub%03d", i))
			}
			all := append([]*conn{submitter}, others...)
			benchRoundTrip(b, submitter, `{"a":"op","c":"bench","d":"path","v":null,"seq":1,"create":{"type":"text-unicode","data":"héllo wörld"}}`)
			for _, c := range all {
				benchRoundTrip(b, c, `{"a":"s","c":"bench","d":"path","v":null}`)
			}
			frames := make([][]byte, b.N)
			for i := range frames {
				// Version i+1 is the head minus one from the second op on.
				frames[i] = fmt.Appendf(nil, `{"a":"op","c":"bench","d":"path","v":%d,"seq":%d,"x":{},"op":[%d,"ü"]}`,
					max(1, i), i+2, 3+i%5)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for _, f := range frames {
				submitter.handle(f)
				// The ack comes after the missed op (one per op but the
				// first), and every other subscriber gets one broadcast.
				benchDrain(b, submitter, isAck)
				for _, c := range others {
					benchDrain(b, c, isBroadcast)
				}
			}
			b.StopTimer()
			for _, c := range all {
				close(c.stop)
				hub.Disconnect(c)
			}
		})
	}
}

// benchServer returns a Server over a Hub over a real store without
// fsync; cleanup closes them.
func benchServer(b testing.TB) (*Server, *collab.Hub) {
	b.Helper()
	store, err := storage.Open(filepath.Join(b.TempDir(), "coedit.db"), storage.Options{Sync: storage.SyncNone})
	if err != nil {
		b.Fatal(err)
	}
	hub := collab.NewHub(collab.Options{Store: store})
	srv, err := New(Options{Hub: hub, Logger: quiet, OpsPerSecond: 1e9, OpsBurst: 1e9, MessagesPerSecond: 1e9, MessagesBurst: 1e9})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		if err := hub.Close(context.Background()); err != nil {
			b.Error(err)
		}
		if err := store.Close(); err != nil {
			b.Error(err)
		}
	})
	return srv, hub
}

// benchConn returns a conn without a socket: its queue is read by
// benchDrain. It is marked as writing, so send never starts a writer.
func benchConn(b testing.TB, srv *Server, src string) *conn {
	c := newConn(srv, nil, nil, src, identity{access: collab.Everyone})
	c.writing = true
	return c
}

// benchRoundTrip handles frame on c and waits for one frame back.
func benchRoundTrip(b *testing.B, c *conn, frame string) {
	b.Helper()
	c.handle([]byte(frame))
	benchDrain(b, c, func([]byte) bool { return true })
}

func isAck(f []byte) bool       { return !bytes.Contains(f, []byte(`"op":`)) }
func isBroadcast(f []byte) bool { return bytes.Contains(f, []byte(`"op":`)) }

// benchDrain waits until c's queue holds a frame that is want, and
// empties the queue; an error reply fails the benchmark.
func benchDrain(b *testing.B, c *conn, want func([]byte) bool) {
	for {
		c.mu.Lock()
		batch, closing, code, reason := c.queue, c.closing, c.closeCode, c.closeReason
		c.queue, c.queuedBytes = nil, 0
		c.mu.Unlock()
		if closing {
			b.Fatalf("conn %s closing: %d %s", c.Src(), code, reason)
		}
		if len(batch) == 0 {
			runtime.Gosched()
			continue
		}
		for _, f := range batch {
			if bytes.Contains(f, []byte(`"error":`)) {
				b.Fatalf("conn %s: %s", c.Src(), f)
			}
			if want(f) {
				return
			}
		}
	}
}
