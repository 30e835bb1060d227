package web

import (
	"runtime"
	"sync"
	"testing"
	"time"
)

// waitGoroutines waits until at most n goroutines run, or fails.
func waitGoroutines(t *testing.T, n int, what string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > n {
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d goroutines, want at most %d", what, runtime.NumGoroutine(), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestTurnPoolReusesAndLetsGo checks that turns run one after another
// reuse one goroutine, that concurrent turns each get one, that idle
// goroutines end after the idle time, and that close ends the idle ones
// at once.
func TestTurnPoolReusesAndLetsGo(t *testing.T) {
	base := runtime.NumGoroutine()
	var mu sync.Mutex
	ran := map[*conn]int{}
	done := make(chan struct{}, 64)
	p := &turnPool{idleFor: 100 * time.Millisecond}
	p.turn = func(c *conn) {
		mu.Lock()
		ran[c]++
		mu.Unlock()
		done <- struct{}{}
	}
	a := &conn{}
	for range 50 {
		p.run(a)
		<-done
		// The turn has run; wait for its goroutine to park.
		for {
			p.mu.Lock()
			n := len(p.idle)
			p.mu.Unlock()
			if n == 1 {
				break
			}
			runtime.Gosched()
		}
	}
	if g := runtime.NumGoroutine() - base; g != 1 {
		t.Fatalf("50 turns one after another left %d goroutines, want the 1 they shared", g)
	}

	// Turns that overlap get a goroutine each.
	release := make(chan struct{})
	p.turn = func(c *conn) {
		<-release
		mu.Lock()
		ran[c]++
		mu.Unlock()
		done <- struct{}{}
	}
	conns := make([]*conn, 8)
	for i := range conns {
		conns[i] = &conn{}
		p.run(conns[i])
	}
	close(release)
	for range conns {
		<-done
	}
	for _, c := range conns {
		if ran[c] != 1 {
			t.Fatalf("a turn ran %d times, want once", ran[c])
		}
	}
	if ran[a] != 50 {
		t.Fatalf("%d turns ran one after another, want 50", ran[a])
	}
	// All idle now; after the idle time they end.
	waitGoroutines(t, base, "after the idle time")

	// close ends idle goroutines at once, and those that go idle later.
	q := &turnPool{idleFor: time.Hour, turn: func(*conn) { done <- struct{}{} }}
	q.run(a)
	<-done
	q.close()
	waitGoroutines(t, base, "after close")
	q.run(a) // a turn after close still runs, on a goroutine that then ends
	<-done
	waitGoroutines(t, base, "a turn after close")
}
