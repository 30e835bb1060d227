package web

// This file holds a connection's send side: the bounded queue that
// session goroutines fill without blocking (send), the writer that drains
// it (writeOut), pings, the back-pressure the engine's catch-up readers
// wait on (Room, WaitRoom), and closing (closeWith).
//
// The writer is not a goroutine per connection: an idle connection has
// none. Whoever queues something while no writer runs (send, closeWith,
// the ping timer) starts a writer turn, under mu, on one of the server's
// pooled goroutines (turnPool); the turn writes until the queue is
// empty and then ends, so at most one turn runs at a time, and gorilla's
// rule of one goroutine calling the write methods holds. finish waits for
// it (writers) once the reader has stopped.

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/gorilla/websocket"

	"github.com/coedit/coedit/collab"
)

// closeWait is how long the writer, having sent a close frame, gives the
// client to answer it before it closes the socket.
const closeWait = time.Second

// startWriterLocked reports whether the caller must start a writer turn
// (c.srv.writers.run(c)) for what it just queued: none is running, and the
// connection has not stopped. c.mu is held.
func (c *conn) startWriterLocked() bool {
	if c.writing || c.stopped {
		return false
	}
	c.writing = true
	c.writers.Add(1)
	return true
}

// writeOut writes queued frames and due pings until the queue is empty,
// then returns; it is the connection's only writer meanwhile. When the
// connection is closing it sends the close frame, gives the client
// closeWait to answer it, and closes the socket; when a write fails it
// closes the socket. Closing the socket ends the reader.
func (c *conn) writeOut() {
	defer c.writers.Done()
	for {
		batch, ping, closing, code, reason, ok := c.take()
		if !ok {
			return
		}
		if err := c.writeBatch(batch, ping); err != nil {
			c.mu.Lock()
			c.startClosingLocked(0, "") // nothing more is written; writing stays set
			c.mu.Unlock()
			c.ws.Close()
			return
		}
		if closing {
			if code != 0 {
				c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, reason), time.Now().Add(c.srv.opts.WriteTimeout))
			}
			t := time.NewTimer(closeWait)
			select {
			case <-c.stop:
			case <-t.C:
			}
			t.Stop()
			c.ws.Close()
			return
		}
	}
}

// writeBatch writes a ping (when ping) and frames, with one deadline for
// all of them: a client that cannot take them within WriteTimeout is
// dropped. More than one frame go out through one write(2) (batchConn).
func (c *conn) writeBatch(frames [][]byte, ping bool) error {
	n := len(frames)
	if ping {
		n++
	}
	if n == 0 {
		return nil
	}
	deadline := time.Now().Add(c.srv.opts.WriteTimeout)
	c.ws.SetWriteDeadline(deadline)
	batched := n > 1 && c.nc != nil
	if batched {
		c.nc.begin()
	}
	var err error
	if ping {
		err = c.ws.WriteMessage(websocket.PingMessage, nil)
	}
	for _, frame := range frames {
		if err != nil {
			break
		}
		err = c.ws.WriteMessage(websocket.TextMessage, frame)
	}
	if batched {
		if ferr := c.nc.flush(deadline); err == nil {
			err = ferr
		}
	}
	return err
}

// take empties the queue and takes a due ping. With nothing to write it
// ends the writer's turn (ok false): the next send starts a new one. A
// closing connection keeps its writer (ok true, closing true) so that no
// other starts.
func (c *conn) take() (batch [][]byte, ping, closing bool, code int, reason string, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped {
		c.writing = false
		return nil, false, false, 0, "", false
	}
	batch, ping = c.queue, c.pingDue && !c.closing
	c.queue, c.pingDue = nil, false
	c.queuedBytes = 0
	if len(batch) > 0 {
		c.wakeWaitersLocked()
	}
	if len(batch) == 0 && !ping && !c.closing {
		c.writing = false
		return nil, false, false, 0, "", false
	}
	return batch, ping, c.closing, c.closeCode, c.closeReason, true
}

// pingTick is called by the server's ping wheel (Server.pingTurn) every
// PingInterval: it marks a ping due and, when no writer runs, starts one.
func (c *conn) pingTick() {
	c.mu.Lock()
	if c.stopped || c.closing {
		c.mu.Unlock()
		return
	}
	c.pingDue = true
	start := c.startWriterLocked()
	c.mu.Unlock()
	if start {
		c.srv.writers.run(c)
	}
}

// wakeWaitersLocked wakes the catch-up readers waiting for room.
func (c *conn) wakeWaitersLocked() {
	if c.drained != nil {
		close(c.drained)
		c.drained = nil
	}
}

// Closed implements collab.Conn: the reader has stopped or the
// connection is closing, so nothing queued now would be written.
func (c *conn) Closed() bool {
	select {
	case <-c.stop:
		return true
	default:
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closing
}

// Room implements collab.Pacer: how much more the queue takes now.
func (c *conn) Room() collab.Room {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closing {
		return collab.Room{}
	}
	return c.roomLocked()
}

func (c *conn) roomLocked() collab.Room {
	o := &c.srv.opts
	return collab.Room{
		Messages: max(0, o.SendQueueMessages-len(c.queue)),
		Bytes:    max(0, o.SendQueueBytes-c.queuedBytes),
	}
}

// errConnClosed is WaitRoom's error once the connection is closing.
var errConnClosed = fmt.Errorf("web: %w", collab.ErrConnClosed)

// WaitRoom implements collab.Pacer: it waits until the queue is at most
// half full (in messages and in bytes), so that a catch-up streams as
// fast as the client reads and never overflows the queue.
func (c *conn) WaitRoom(ctx context.Context) (collab.Room, error) {
	o := &c.srv.opts
	for {
		c.mu.Lock()
		if c.closing {
			c.mu.Unlock()
			return collab.Room{}, errConnClosed
		}
		if len(c.queue) <= o.SendQueueMessages/2 && c.queuedBytes <= o.SendQueueBytes/2 {
			r := c.roomLocked()
			c.mu.Unlock()
			return r, nil
		}
		if c.drained == nil {
			c.drained = make(chan struct{})
		}
		drained := c.drained
		c.mu.Unlock()
		select {
		case <-drained:
		case <-c.stop:
			return collab.Room{}, errConnClosed
		case <-ctx.Done():
			return collab.Room{}, ctx.Err()
		}
	}
}

// send queues one encoded frame. It never blocks: when the queue is over
// its bound the connection is closed as a slow consumer instead.
func (c *conn) send(frame []byte) {
	o := &c.srv.opts
	c.mu.Lock()
	if c.closing || c.stopped {
		c.mu.Unlock()
		return
	}
	if len(c.queue) >= o.SendQueueMessages || (c.queuedBytes > 0 && c.queuedBytes+len(frame) > o.SendQueueBytes) {
		n, bytes, kinds := len(c.queue), c.queuedBytes, queueKinds(c.queue)
		c.startClosingLocked(CloseSlowConsumer, "send queue full: the client is not reading fast enough")
		start := c.startWriterLocked()
		c.mu.Unlock()
		c.srv.met.slowConsumers.Inc()
		c.log().Info("closing slow websocket", "src", c.Src(), "queued_messages", n, "queued_bytes", bytes, "queued_actions", kinds)
		if start {
			c.srv.writers.run(c)
		}
		return
	}
	c.queue = append(c.queue, frame)
	c.queuedBytes += len(frame)
	start := c.startWriterLocked()
	c.mu.Unlock()
	if start {
		c.srv.writers.run(c)
	}
}

// closeWith closes the connection with a close code, dropping whatever
// is still queued: for closes after which what was queued is wrong or
// not the client's to have (its copy was replaced, its token expired,
// its src was reclaimed, a session failed).
func (c *conn) closeWith(code int, reason string) {
	c.close(code, reason, false)
}

// closeAfterQueued closes the connection with a close code once what is
// already queued is written: the replies, acks and errors the client is
// owed (the errors of malformed frames before a 1008, the acks of ops
// committed before a shutdown), so it resends less and learns why.
// Nothing is queued after it, and the writes keep their WriteTimeout.
func (c *conn) closeAfterQueued(code int, reason string) {
	c.close(code, reason, true)
}

func (c *conn) close(code int, reason string, keep bool) {
	c.mu.Lock()
	if keep {
		c.startClosingKeepLocked(code, reason)
	} else {
		c.startClosingLocked(code, reason)
	}
	start := c.startWriterLocked()
	c.mu.Unlock()
	if start {
		c.srv.writers.run(c)
	}
}

// startClosingLocked drops the queue and makes the writer send a close
// frame with code (none when code is 0: the socket failed) and end the
// connection.
func (c *conn) startClosingLocked(code int, reason string) {
	// Past a close that keeps the queue (closeAfterQueued), a close that
	// drops it still does: what is queued is no longer the client's. The
	// first close's code stands.
	c.startClosingKeepLocked(code, reason)
	c.queue = nil
	c.queuedBytes = 0
}

// startClosingKeepLocked is startClosingLocked that leaves the queue for
// the writer to write before the close frame.
func (c *conn) startClosingKeepLocked(code int, reason string) {
	if c.closing {
		return
	}
	c.closing = true
	c.closeCode = code
	c.closeReason = reason
	c.wakeWaitersLocked()
}

// queueKinds counts a queue's messages by action, "op:15 p:3 pr:1", for
// the log line of a slow consumer's close: what filled the queue. Every
// frame the server sends starts with {"a":"<action>".
func queueKinds(queue [][]byte) string {
	counts := make(map[string]int)
	var order []string
	for _, f := range queue {
		a := "?"
		if rest, ok := bytes.CutPrefix(f, []byte(`{"a":"`)); ok {
			if i := bytes.IndexByte(rest, '"'); i >= 0 {
				a = string(rest[:i])
			}
		}
		if counts[a] == 0 {
			order = append(order, a)
		}
		counts[a]++
	}
	var b strings.Builder
	for i, a := range order {
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%s:%d", a, counts[a])
	}
	return b.String()
}
