package web

import (
	"sync"
	"sync/atomic"
	"time"
)

// turnPool runs connections' turns on goroutines that outlive a turn,
// instead of a new goroutine per turn. The server has two: writer turns
// (conn.writeOut) and reader turns (conn.readTurn, which reads and
// handles the frames a connection has received).
//
// Why: a writer turn writes through gorilla, net and poll down to
// write(2), and a reader turn decodes a frame and calls into the hub;
// either takes a new goroutine's 2 KiB stack to 8 KiB, in two copies.
// Under load a turn starts for nearly every frame, and the copies
// (runtime.newstack, most of it unwinding the frames to move them) were
// 10% of the server's CPU in a closed loop. A pooled goroutine keeps the
// stack it grew. The hand-over costs what starting a goroutine did: the
// waiting goroutine is readied where a new one would have been queued.
//
// An idle connection still holds no pooled goroutine: it waits for its
// next frame on a small goroutine of its own (conn.read) and has no
// writer. The pool belongs to the server, holds at most maxIdleTurns idle
// goroutines, and lets go of those idle for turnIdle, so an idle server
// keeps none.
type turnPool struct {
	// turn is what a turn runs (conn.writeOut or conn.readTurn), and
	// idleFor how long a goroutine may wait for one (0 is turnIdle).
	turn    func(*conn)
	idleFor time.Duration

	spawned atomic.Int64 // goroutines started, for tests

	mu     sync.Mutex
	idle   []*pooledTurn // idle since the oldest first; the newest is taken first
	sweep  *time.Timer   // armed while idle is not empty
	armed  bool
	closed bool
}

type pooledTurn struct {
	turns chan *conn // the next turn; closed to end the goroutine
	since time.Time  // idle since
}

const (
	maxIdleTurns = 256
	turnIdle     = time.Second
)

// run starts c's turn (the pool's kind) on an idle pooled goroutine, or a
// new one.
func (p *turnPool) run(c *conn) {
	p.mu.Lock()
	if n := len(p.idle); n > 0 {
		w := p.idle[n-1]
		p.idle[n-1] = nil
		p.idle = p.idle[:n-1]
		p.mu.Unlock()
		w.turns <- c // buffered: never waits
		return
	}
	p.mu.Unlock()
	p.spawned.Add(1)
	go p.loop(&pooledTurn{turns: make(chan *conn, 1)}, c)
}

// loop runs turns until the pool lets the goroutine go.
func (p *turnPool) loop(w *pooledTurn, c *conn) {
	for c != nil {
		p.turn(c)
		if !p.park(w) {
			return
		}
		c = <-w.turns
	}
}

// park puts w back among the idle, or reports that it must end.
func (p *turnPool) park(w *pooledTurn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || len(p.idle) >= maxIdleTurns {
		return false
	}
	w.since = time.Now()
	p.idle = append(p.idle, w)
	if !p.armed {
		p.armed = true
		if p.sweep == nil {
			p.sweep = time.AfterFunc(p.idleTime(), p.expire)
		} else {
			p.sweep.Reset(p.idleTime())
		}
	}
	return true
}

// expire ends the goroutines idle for turnIdle, and arms the sweep
// again for the oldest of the rest.
func (p *turnPool) expire() {
	p.mu.Lock()
	defer p.mu.Unlock()
	now, idle := time.Now(), p.idleTime()
	k := 0
	for k < len(p.idle) && now.Sub(p.idle[k].since) >= idle {
		close(p.idle[k].turns)
		k++
	}
	n := copy(p.idle, p.idle[k:])
	clear(p.idle[n:])
	p.idle = p.idle[:n]
	if n == 0 || p.closed {
		p.armed = false
		return
	}
	p.sweep.Reset(idle - now.Sub(p.idle[0].since))
}

func (p *turnPool) idleTime() time.Duration {
	if p.idleFor > 0 {
		return p.idleFor
	}
	return turnIdle
}

// close ends the idle goroutines, and those that go idle from now on.
func (p *turnPool) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	for _, w := range p.idle {
		close(w.turns)
	}
	clear(p.idle)
	p.idle = p.idle[:0]
	if p.sweep != nil {
		p.sweep.Stop()
	}
	p.armed = false
}
