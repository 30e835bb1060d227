package web

import (
	"sync"
	"time"
)

// writerPool runs connections' writer turns (conn.writeOut) on goroutines
// that outlive a turn, instead of a new goroutine per turn.
//
// Why: a turn writes through gorilla, net and poll down to write(2), which
// takes a new goroutine's 2 KiB stack to 8 KiB, in two copies. Under load
// a writer turn starts for nearly every frame a connection sends, and the
// copies (runtime.newstack, most of it unwinding the frames to move them)
// were 6% of the server's CPU in a closed loop. A pooled writer keeps the
// stack it grew. The hand-over costs what starting a goroutine did: the
// waiting writer is readied where a new one would have been queued.
//
// An idle connection still holds no writer: the pool belongs to the
// server, holds at most maxIdleWriters idle goroutines, and lets go of
// those idle for writerIdle, so an idle server keeps none.
type writerPool struct {
	// turn is what a turn runs (tests set it; nil is conn.writeOut), and
	// idleFor how long a goroutine may wait for one (0 is writerIdle).
	turn    func(*conn)
	idleFor time.Duration

	mu     sync.Mutex
	idle   []*pooledWriter // idle since the oldest first; the newest is taken first
	sweep  *time.Timer     // armed while idle is not empty
	armed  bool
	closed bool
}

type pooledWriter struct {
	turns chan *conn // the next turn; closed to end the goroutine
	since time.Time  // idle since
}

const (
	maxIdleWriters = 256
	writerIdle     = time.Second
)

// run starts c's writer turn on an idle pooled goroutine, or a new one.
func (p *writerPool) run(c *conn) {
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
	go p.loop(&pooledWriter{turns: make(chan *conn, 1)}, c)
}

// loop runs turns until the pool lets the goroutine go.
func (p *writerPool) loop(w *pooledWriter, c *conn) {
	for c != nil {
		if p.turn != nil {
			p.turn(c)
		} else {
			c.writeOut()
		}
		if !p.park(w) {
			return
		}
		c = <-w.turns
	}
}

// park puts w back among the idle, or reports that it must end.
func (p *writerPool) park(w *pooledWriter) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || len(p.idle) >= maxIdleWriters {
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

// expire ends the goroutines idle for writerIdle, and arms the sweep
// again for the oldest of the rest.
func (p *writerPool) expire() {
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

func (p *writerPool) idleTime() time.Duration {
	if p.idleFor > 0 {
		return p.idleFor
	}
	return writerIdle
}

// close ends the idle goroutines, and those that go idle from now on.
func (p *writerPool) close() {
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
