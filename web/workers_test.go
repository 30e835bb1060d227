package web

import (
	"runtime"
	"sync"
	"testing"
	"time"
)

// idleTurns is how many goroutines p holds idle.
func idleTurns(p *turnPool) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.idle)
}

// TestTurnPoolReusesAndLetsGo checks that turns run one after another
// share one goroutine, that overlapping turns get one each, that idle
// goroutines end after the idle time, and that close ends the idle ones
// at once and a busy one when its turn ends.
func TestTurnPoolReusesAndLetsGo(t *testing.T) {
	base := runtime.NumGoroutine()
	var mu sync.Mutex
	ran := map[*conn]int{}
	done := make(chan struct{}, 64)
	release := make(chan struct{})
	close(release)
	p := &turnPool{idleFor: 100 * time.Millisecond}
	p.turn = func(c *conn) {
		<-release
		mu.Lock()
		ran[c]++
		mu.Unlock()
		done <- struct{}{}
	}
	a := &conn{}
	for range 50 {
		p.run(a)
		<-done
		waitFor(t, func() bool { return idleTurns(p) == 1 }) // the goroutine parked
	}
	if n := p.spawned.Load(); n != 1 {
		t.Fatalf("50 turns one after another started %d goroutines, want the 1 they share", n)
	}
	mu.Lock()
	if ran[a] != 50 {
		t.Fatalf("%d turns ran, want 50", ran[a])
	}
	mu.Unlock()

	// Overlapping turns: the idle goroutine takes the first, and each of
	// the other seven gets a new one.
	release = make(chan struct{})
	conns := make([]*conn, 8)
	for i := range conns {
		conns[i] = &conn{}
		p.run(conns[i])
	}
	if n := p.spawned.Load(); n != 8 {
		t.Fatalf("8 overlapping turns with one goroutine idle: %d goroutines started in all, want 8", n)
	}
	close(release)
	for range conns {
		<-done
	}
	mu.Lock()
	for _, c := range conns {
		if ran[c] != 1 {
			t.Fatalf("a turn ran %d times, want once", ran[c])
		}
	}
	mu.Unlock()
	// All eight go idle, and end after the idle time.
	waitFor(t, func() bool { return idleTurns(p) == 0 && runtime.NumGoroutine() <= base })

	// close ends an idle goroutine at once, and a busy one when its turn
	// ends; a turn started after close still runs.
	q := &turnPool{idleFor: time.Hour, turn: func(*conn) { done <- struct{}{} }}
	q.run(a)
	<-done
	waitFor(t, func() bool { return idleTurns(q) == 1 })
	q.close()
	waitFor(t, func() bool { return runtime.NumGoroutine() <= base })
	q.run(a)
	<-done
	waitFor(t, func() bool { return runtime.NumGoroutine() <= base })
	if idleTurns(q) != 0 {
		t.Fatal("a closed pool kept a goroutine idle")
	}
}
