package web

import (
	"bufio"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/coedit/coedit/internal/rawio"
)

// batchConn is the net.Conn a WebSocket writes through. gorilla/websocket
// writes each frame with its own Write, and its API has no way to write
// several messages before one flush; so between begin and flush (the
// connection's writer, sending more than one queued frame) batchConn
// gathers the frames and flush sends them with one write(2). Outside a
// batch every Write goes to the socket at once.
//
// Writes come from gorilla, which serializes them under its own lock: the
// writer's frames, and the control frames other goroutines write with
// WriteControl (the reader's pongs and close replies, the server's close
// at shutdown). A control frame written during a batch joins it and goes
// out with the flush; bytes always reach the socket in the order gorilla
// wrote them, because mu is held across every socket write.
//
// Write deadlines: gorilla sets one before each frame, and WriteControl
// sets its own, shorter one. Applied to the socket at once, a pong's
// one-second deadline would cut short a flush in progress; so
// SetWriteDeadline only records the deadline, and each socket write
// applies the one recorded last before it (flush, the one its caller
// gives), under mu.
type batchConn struct {
	net.Conn
	raw *rawio.Sock // the socket's reads and writes as raw system calls; nil: Conn's own

	mu       sync.Mutex
	batching bool
	buf      *[]byte   // the batch; nil outside one
	deadline time.Time // recorded by SetWriteDeadline
	applied  time.Time // last deadline set on the socket
	err      error     // first failed socket write: every later write fails with it
}

// Sizes of a batch: flush writes out what it gathered once it reaches
// batchFlushAt (a write larger than that goes out directly), which bounds
// the copy a batch holds beside the queue it came from.
const (
	batchInitial = 8 << 10
	batchFlushAt = 64 << 10
)

// batchBufs holds batch buffers between batches, so an idle connection
// holds none.
var batchBufs = sync.Pool{New: func() any {
	b := make([]byte, 0, batchInitial)
	return &b
}}

// begin starts gathering writes.
func (b *batchConn) begin() {
	b.mu.Lock()
	b.batching = true
	b.mu.Unlock()
}

// flush ends the batch begun by begin and writes what it gathered, with
// deadline.
func (b *batchConn) flush(deadline time.Time) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.batching = false
	if b.buf == nil {
		return b.err
	}
	buf := b.buf
	b.buf = nil
	err := b.writeLocked(*buf, deadline)
	if cap(*buf) <= 2*batchFlushAt {
		*buf = (*buf)[:0]
		batchBufs.Put(buf)
	}
	return err
}

// Write sends p, or adds it to the batch.
func (b *batchConn) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.err != nil {
		return 0, b.err
	}
	if !b.batching {
		if err := b.writeLocked(p, b.deadline); err != nil {
			return 0, err
		}
		return len(p), nil
	}
	if b.buf != nil && len(*b.buf)+len(p) > batchFlushAt {
		err := b.writeLocked(*b.buf, b.deadline)
		*b.buf = (*b.buf)[:0]
		if err != nil {
			return 0, err
		}
	}
	if len(p) >= batchFlushAt {
		if err := b.writeLocked(p, b.deadline); err != nil {
			return 0, err
		}
		return len(p), nil
	}
	if b.buf == nil {
		b.buf = batchBufs.Get().(*[]byte)
	}
	*b.buf = append(*b.buf, p...)
	return len(p), nil
}

// writeLocked writes p to the socket with deadline; a failure sticks.
func (b *batchConn) writeLocked(p []byte, deadline time.Time) error {
	if len(p) == 0 {
		return b.err
	}
	if b.rearm(deadline) {
		if err := b.Conn.SetWriteDeadline(deadline); err != nil {
			b.err = err
			return err
		}
		b.applied = deadline
	}
	var err error
	if b.raw != nil {
		_, err = b.raw.Write(p)
	} else {
		_, err = b.Conn.Write(p)
	}
	if err != nil {
		b.err = err
		return err
	}
	return nil
}

// Read reads from the socket.
func (b *batchConn) Read(p []byte) (int, error) {
	if b.raw != nil {
		return b.raw.Read(p)
	}
	return b.Conn.Read(p)
}

// rearm reports whether a write with deadline must set it on the socket
// first. Setting one re-arms a runtime timer, and the writer asks for
// now+WriteTimeout before every batch: re-armed each time, that was 7% of
// the server's CPU in a closed loop. So a later deadline is applied only
// once the one on the socket has lost an eighth of the time the new one
// gives: a write may time out up to an eighth of WriteTimeout early,
// never late. An earlier deadline (a control frame's) and a change to or
// from none are applied at once.
func (b *batchConn) rearm(deadline time.Time) bool {
	if deadline.Equal(b.applied) {
		return false
	}
	if deadline.IsZero() || b.applied.IsZero() || deadline.Before(b.applied) {
		return true
	}
	now := time.Now()
	return b.applied.Sub(now) < deadline.Sub(now)-deadline.Sub(now)/8
}

// SetWriteDeadline records t for the next socket write.
func (b *batchConn) SetWriteDeadline(t time.Time) error {
	b.mu.Lock()
	b.deadline = t
	b.mu.Unlock()
	return nil
}

// SetDeadline sets the read deadline and records t as the write deadline.
func (b *batchConn) SetDeadline(t time.Time) error {
	b.SetWriteDeadline(t)
	return b.Conn.SetReadDeadline(t)
}

// batchHijacker hands gorilla's Upgrade a batchConn in place of the
// hijacked connection, and a small buffered reader of its own over it
// (gorilla reads frames through it: see Server.up), both of which conn
// receives. Holding the reader lets the conn's idle reader wait for the
// next frame by filling it (conn.read), which reads the frame's bytes
// where gorilla then finds them, on a shallower stack than gorilla's.
type batchHijacker struct {
	http.ResponseWriter
	conn *batchConn
	br   *bufio.Reader
}

// Hijack implements http.Hijacker.
func (h *batchHijacker) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	nc, brw, err := http.NewResponseController(h.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	h.conn = &batchConn{Conn: nc, raw: rawio.New(nc)}
	if brw.Reader.Buffered() > 0 {
		return h.conn, brw, nil // gorilla refuses it: data before the handshake's end
	}
	h.br = bufio.NewReaderSize(h.conn, readBufferSize)
	return h.conn, bufio.NewReadWriter(h.br, brw.Writer), nil
}
