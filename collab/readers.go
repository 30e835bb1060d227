package collab

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// readChunk is the most records a reader reads and sends in one step of
// a catch-up: one short Store read, then the task goes to the back of the
// queue, so a long catch-up does not hold a reader from the others.
const readChunk = 512

// readChunkBytes bounds a step's records by size (recordSize) for a Conn
// that does not pace: a few huge records are sent a few at a time.
const readChunkBytes = 1 << 20

// roomWait is how long a reader waits for a connection's queue to make
// room before it turns to the other catch-ups (readTask.step).
const roomWait = 50 * time.Millisecond

// readPool is the Hub's pool of catch-up readers: Options.Readers
// goroutines, started with the first catch-up and stopped by Close, that
// serve readTasks (see catchup.go) in turns of one chunk each. Close
// cancels the reads in progress; tasks still queued, or queued again
// after that, go back to their sessions with ErrClosed, so that each
// session can answer its requests and stop. The Hub's bg waits for the
// readers.
type readPool struct {
	mu      sync.Mutex
	cond    *sync.Cond
	tasks   []*readTask
	started bool
	stopped bool
	cancel  context.CancelFunc
}

// readTask is one catch-up at the readers: the records [from, to) of a
// document are still to be read and sent to conn (collected, without a
// Conn); for a submit, scanned for its resend and rebased over. The
// reader that holds it owns it; it comes back to its session through the
// inbox (jobResume).
type readTask struct {
	s     *session
	key   Key
	cu    *catchup // the session's; carried, never touched here
	conn  Conn
	pacer Pacer // conn, when it paces
	from  uint64
	to    uint64
	sub   *Submission // a submit: its op is rebased as records are read
	// sentBelow: the conn was sent every record below it already (a
	// subscriber's submit made before the window: its subscription sent
	// them), so they are read for the rebase and not sent again.
	sentBelow uint64

	dup       bool   // the submit is a resend of dupRec
	dupRec    Record //
	collected []Record
	err       error
}

// add queues t, starting the readers on first use. It returns false once
// the pool has stopped (the Hub is closing).
func (p *readPool) add(h *Hub, t *readTask) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stopped {
		return false
	}
	if !p.started {
		p.started = true
		p.cond = sync.NewCond(&p.mu)
		ctx, cancel := context.WithCancel(context.Background())
		p.cancel = cancel
		for range h.opts.Readers {
			h.bg.Add(1)
			go h.readLoop(ctx)
		}
	}
	p.tasks = append(p.tasks, t)
	p.cond.Signal()
	return true
}

// next returns the next task, waiting for one; false once the pool has
// stopped and its queue is empty.
func (p *readPool) next() (*readTask, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for len(p.tasks) == 0 {
		if p.stopped {
			return nil, false
		}
		p.cond.Wait()
	}
	t := p.tasks[0]
	p.tasks[0] = nil
	p.tasks = p.tasks[1:]
	return t, true
}

// requeue puts t at the back of the queue, or returns false once the
// pool has stopped.
func (p *readPool) requeue(t *readTask) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stopped {
		return false
	}
	p.tasks = append(p.tasks, t)
	p.cond.Signal()
	return true
}

// stopReaders stops the pool: reads in progress are cancelled and the
// readers return every task to its session. Called by Close.
func (h *Hub) stopReaders() {
	p := &h.reads
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stopped = true
	if p.started {
		p.cancel()
		p.cond.Broadcast()
	}
}

// readLoop is one reader goroutine. It stops when the pool has stopped
// and its queue is empty.
func (h *Hub) readLoop(ctx context.Context) {
	defer h.bg.Done()
	for {
		t, ok := h.reads.next()
		if !ok {
			return
		}
		if !t.step(ctx, h.opts.Store) {
			if h.reads.requeue(t) {
				continue
			}
			t.err = fmt.Errorf("%w: catch-up cancelled", ErrClosed)
		}
		// Back to the session; a session that stopped meanwhile (it
		// failed, and answered the request) drops it.
		_ = t.s.enqueue(&job{kind: jobResume, task: t})
	}
}

// step reads and sends the next chunk of t. It returns true when t is
// done: all read, a resend found, or an error.
func (t *readTask) step(ctx context.Context, st Store) bool {
	if t.conn != nil && t.conn.Closed() {
		t.err = ErrConnClosed
		return true
	}
	if t.from >= t.to {
		return true
	}
	n := uint64(readChunk)
	room := Room{Messages: 2 * readChunk, Bytes: 2 * readChunkBytes}
	if t.pacer != nil && t.to > t.sentBelow {
		// Records below sentBelow are read for the rebase and not sent,
		// so they need no room. A connection that does not read would
		// hold this reader until its write timeout drops it, and a few
		// such would hold them all: past roomWait it goes to the back of
		// the queue instead.
		wctx, cancel := context.WithTimeout(ctx, roomWait)
		r, err := t.pacer.WaitRoom(wctx)
		cancel()
		if err != nil {
			if ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
				return false // no room yet: the other tasks' turn
			}
			t.err = stopped(ctx, err)
			return true
		}
		room = r
		n = min(n, uint64(max(1, room.Messages/2)))
	}
	end := min(t.to, t.from+n)
	recs, err := st.Ops(ctx, t.key, t.from, end)
	if err != nil {
		t.err = stopped(ctx, fmt.Errorf("%w: %s [%d, %d): %w", ErrOpsMissing, t.key, t.from, end, err))
		return true
	}
	if uint64(len(recs)) != end-t.from || len(recs) > 0 && recs[0].Version != t.from {
		t.err = fmt.Errorf("%w: %s: store has %d of the records [%d, %d)", ErrOpsMissing, t.key, len(recs), t.from, end)
		return true
	}
	// Send what fits the room, in bytes too; the rest is read again
	// next turn.
	recs = recs[:min(len(recs), room.fits(recs))]
	end = t.from + uint64(len(recs))
	if t.sub != nil {
		// As dedupe would find it among the records since the op's
		// version; a real resend was transformed over the same records
		// before, so rebasing chunk by chunk finds no error it would not.
		if i := resendAt(recs, t.sub.Src, t.sub.Seq); i >= 0 {
			t.send(recs[:i])
			t.dup, t.dupRec = true, recs[i]
			return true
		}
		op, err := rebase(*t.sub, recs)
		if err != nil {
			t.err = err
			return true
		}
		t.sub.Op = op
	}
	t.send(recs)
	t.from = end
	return t.from >= t.to
}

// send delivers recs to the task's Conn, or collects them.
func (t *readTask) send(recs []Record) {
	if t.conn == nil {
		t.collected = append(t.collected, recs...)
		return
	}
	for _, r := range recs {
		if r.Version >= t.sentBelow {
			t.conn.SendOp(t.key, r)
		}
	}
}

// resendAt returns the index in recs of (src, seq)'s record, or -1.
func resendAt(recs []Record, src string, seq uint64) int {
	if src == "" {
		return -1
	}
	for i, r := range recs {
		if r.Src == src && r.Seq == seq {
			return i
		}
	}
	return -1
}

// stopped returns ErrClosed when ctx ended (the Hub is closing), else
// err; a conn that closed while a reader waited for room gives
// ErrConnClosed.
func stopped(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("%w: catch-up cancelled", ErrClosed)
	}
	if errors.Is(err, ErrConnClosed) {
		return ErrConnClosed
	}
	return err
}
