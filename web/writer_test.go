package web

import (
	"fmt"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/coedit/coedit/collab"
)

// countingListener counts the Write calls on the connections it accepts:
// each is one write(2) on the socket.
type countingListener struct {
	net.Listener
	writes atomic.Int64
}

func (l *countingListener) Accept() (net.Conn, error) {
	nc, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &countingConn{Conn: nc, l: l}, nil
}

type countingConn struct {
	net.Conn
	l *countingListener
}

func (c *countingConn) Write(p []byte) (int, error) {
	c.l.writes.Add(1)
	return c.Conn.Write(p)
}

// startCountingServer starts a server whose socket writes are counted.
func startCountingServer(tb testing.TB, opts Options) (*testServer, *countingListener) {
	var cl *countingListener
	ts := startServerListener(tb, opts, collab.Options{}, func(l net.Listener) net.Listener {
		cl = &countingListener{Listener: l}
		return cl
	})
	return ts, cl
}

// onlyConn returns the server side of the server's one connection.
func (ts *testServer) onlyConn(tb testing.TB) *conn {
	ts.srv.mu.Lock()
	defer ts.srv.mu.Unlock()
	if len(ts.srv.conns) != 1 {
		tb.Fatalf("server has %d connections, want 1", len(ts.srv.conns))
	}
	for c := range ts.srv.conns {
		return c
	}
	return nil
}

// holdWriter keeps c from starting a writer while frames are queued, so
// that they wait as they would behind a writer busy with a socket write;
// the returned function starts the writer.
func holdWriter(c *conn) (release func()) {
	for {
		c.mu.Lock()
		if !c.writing { // the writer of earlier frames has finished
			c.writing = true
			c.mu.Unlock()
			break
		}
		c.mu.Unlock()
		time.Sleep(time.Millisecond)
	}
	return func() {
		c.mu.Lock()
		c.writing = false
		start := c.startWriterLocked()
		c.mu.Unlock()
		if start {
			go c.writeOut()
		}
	}
}

// Frames queued while the writer is busy go out together in one write
// system call, in order, and a lone frame goes out at once.
func TestQueuedFramesGoOutInOneWrite(t *testing.T) {
	ts, cl := startCountingServer(t, Options{Logger: quiet})
	cli := ts.connect(t)
	c := ts.onlyConn(t)

	before := cl.writes.Load()
	c.send([]byte(`{"a":"pp","n":0}`))
	cli.expect(`{"a":"pp","n":0}`)
	if n := cl.writes.Load() - before; n != 1 {
		t.Errorf("one frame took %d writes, want 1", n)
	}

	const frames = 50
	release := holdWriter(c)
	for i := range frames {
		c.send(fmt.Appendf(nil, `{"a":"pp","n":%d}`, i+1))
	}
	before = cl.writes.Load()
	release()
	for i := range frames {
		cli.expectf(`{"a":"pp","n":%d}`, i+1)
	}
	if n := cl.writes.Load() - before; n != 1 {
		t.Errorf("%d queued frames took %d writes, want 1", frames, n)
	}
}

// A batch larger than batchFlushAt is written in pieces of about that
// size, in order: a frame bigger than it goes out on its own.
func TestLargeBatchIsWrittenInPieces(t *testing.T) {
	ts, cl := startCountingServer(t, Options{Logger: quiet})
	cli := ts.connect(t)
	c := ts.onlyConn(t)

	big := strings.Repeat("x", batchFlushAt+10)
	small := strings.Repeat("y", 1000)
	var want []string
	release := holdWriter(c)
	for i := range 200 {
		s := small
		if i == 100 {
			s = big
		}
		want = append(want, fmt.Sprintf(`{"a":"pp","n":%d,"s":"%s"}`, i, s))
		c.send([]byte(want[i]))
	}
	before := cl.writes.Load()
	release()
	for i, w := range want {
		cli.ws.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, got, err := cli.ws.ReadMessage()
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if string(got) != w {
			t.Fatalf("frame %d = %.40q..., want %.40q...", i, got, w)
		}
	}
	// About 200 KiB of small frames in 64 KiB pieces, and the big one.
	if n := cl.writes.Load() - before; n < 4 || n > 8 {
		t.Errorf("batch of %d KiB took %d writes, want 4 to 8", (200*1000+len(big))>>10, n)
	}
}

// A ping the server writes while a batch is being gathered, and a pong
// the reader writes meanwhile, reach the client as whole frames among
// the batch's.
func TestControlFramesDuringBatch(t *testing.T) {
	ts, _ := startCountingServer(t, Options{Logger: quiet, PongTimeout: 2 * time.Second, PingInterval: 20 * time.Millisecond})
	cli := ts.connect(t)
	c := ts.onlyConn(t)
	pings := make(chan struct{}, 1000)
	cli.ws.SetPingHandler(func(string) error {
		pings <- struct{}{}
		return nil
	})
	pongs := make(chan struct{}, 1000)
	cli.ws.SetPongHandler(func(string) error {
		pongs <- struct{}{}
		return nil
	})
	const frames = 2000
	go func() {
		for i := range frames {
			c.send(fmt.Appendf(nil, `{"a":"pp","n":%d,"pad":"%s"}`, i, strings.Repeat("z", i%300)))
			if i%50 == 0 {
				cli.ws.WriteControl(websocket.PingMessage, []byte("p"), time.Now().Add(time.Second))
				time.Sleep(time.Millisecond)
			}
		}
	}()
	for i := range frames {
		cli.expectf(`{"a":"pp","n":%d,"pad":"%s"}`, i, strings.Repeat("z", i%300))
	}
	if len(pings) == 0 || len(pongs) == 0 {
		t.Errorf("the client saw %d pings and %d pongs, want some of each", len(pings), len(pongs))
	}
}

// BenchmarkConnWriter measures the send side of a connection: queueing
// frames of an op's size and writing them to a real socket that a client
// reads, burst frames at a time. writes/frame is the write system calls
// per frame.
func BenchmarkConnWriter(b *testing.B) {
	for _, burst := range []int{1, 4, 32} {
		b.Run(fmt.Sprintf("burst=%d", burst), func(b *testing.B) {
			ts, cl := startCountingServer(b, Options{Logger: quiet})
			ws := ts.benchConn(b)
			c := ts.onlyConn(b)
			frame := []byte(`{"a":"op","c":"docs","d":"some-document","v":12345,"src":"0123456789abcdef0123456789abcdef","seq":77,"op":[120,"héllo",{"d":3}]}`)
			done := make(chan error, 1)
			go func() { done <- recvNErr(ws, b.N*burst) }()
			before := cl.writes.Load()
			b.SetBytes(int64(len(frame) * burst))
			b.ResetTimer()
			for range b.N {
				for range burst {
					c.send(frame)
				}
				// Let the writer catch up, as a client's pace would: the
				// benchmark is of writing, not of queueing.
				for !c.queueEmpty() {
					time.Sleep(10 * time.Microsecond)
				}
			}
			if err := <-done; err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(cl.writes.Load()-before)/float64(b.N*burst), "writes/frame")
		})
	}
}

// queueEmpty reports whether nothing waits in c's queue.
func (c *conn) queueEmpty() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.queue) == 0
}
