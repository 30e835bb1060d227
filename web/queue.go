package web

// This file holds a connection's send side: the bounded queue that
// session goroutines fill without blocking (send), the writer goroutine
// that drains it (writeLoop), the back-pressure the engine's catch-up
// readers wait on (Room, WaitRoom), and closing (closeWith).

import (
	"context"
	"fmt"
	"time"

	"github.com/gorilla/websocket"

	"github.com/coedit/coedit/collab"
)

// writeLoop writes queued frames and pings until the reader stops, a
// write fails, or the conn is closing (then it sends the close frame and
// gives the client a moment to answer it). It closes the socket, which
// ends the reader.
func (c *conn) writeLoop() {
	o := &c.srv.opts
	ping := time.NewTicker(o.PingInterval)
	defer func() {
		ping.Stop()
		c.ws.Close()
		close(c.written)
	}()
	for {
		select {
		case <-c.stop:
			return
		case <-ping.C:
			c.ws.SetWriteDeadline(time.Now().Add(o.WriteTimeout))
			if err := c.ws.WriteMessage(websocket.PingMessage, nil); err != nil {
				return
			}
		case <-c.wake:
			batch, closing, code, reason := c.take()
			if len(batch) > 0 {
				// One deadline for the batch: a client that cannot take
				// it within WriteTimeout is dropped.
				c.ws.SetWriteDeadline(time.Now().Add(o.WriteTimeout))
				for _, frame := range batch {
					if err := c.ws.WriteMessage(websocket.TextMessage, frame); err != nil {
						return
					}
				}
			}
			if closing {
				c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, reason), time.Now().Add(o.WriteTimeout))
				select {
				case <-c.stop:
				case <-time.After(time.Second):
				}
				return
			}
		}
	}
}

// take empties the queue.
func (c *conn) take() (batch [][]byte, closing bool, code int, reason string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	batch = c.queue
	c.queue = nil
	c.queuedBytes = 0
	if len(batch) > 0 {
		c.wakeWaitersLocked()
	}
	return batch, c.closing, c.closeCode, c.closeReason
}

// wakeWaitersLocked wakes the catch-up readers waiting for room.
func (c *conn) wakeWaitersLocked() {
	close(c.drained)
	c.drained = make(chan struct{})
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

// signal wakes the writer.
func (c *conn) signal() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// send queues one encoded frame. It never blocks: when the queue is over
// its bound the connection is closed as a slow consumer instead.
func (c *conn) send(frame []byte) {
	o := &c.srv.opts
	select {
	case <-c.stop:
		return // the reader stopped: the writer is gone or going
	default:
	}
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		return
	}
	if len(c.queue) >= o.SendQueueMessages || (c.queuedBytes > 0 && c.queuedBytes+len(frame) > o.SendQueueBytes) {
		n, bytes := len(c.queue), c.queuedBytes
		c.startClosingLocked(CloseSlowConsumer, "send queue full: the client is not reading fast enough")
		c.mu.Unlock()
		c.srv.met.slowConsumers.Inc()
		c.log.Info("closing slow websocket", "src", c.Src(), "queued_messages", n, "queued_bytes", bytes)
		c.signal()
		return
	}
	c.queue = append(c.queue, frame)
	c.queuedBytes += len(frame)
	c.mu.Unlock()
	c.signal()
}

// closeWith closes the connection with a close code, dropping whatever
// is still queued.
func (c *conn) closeWith(code int, reason string) {
	c.mu.Lock()
	c.startClosingLocked(code, reason)
	c.mu.Unlock()
	c.signal()
}

func (c *conn) startClosingLocked(code int, reason string) {
	if c.closing {
		return
	}
	c.closing = true
	c.closeCode = code
	c.closeReason = reason
	c.queue = nil
	c.queuedBytes = 0
	c.wakeWaitersLocked()
}
