package main

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// TestRepeatHandler: a failure line (one with err) that repeats within
// repeatQuiet is held back, per level and message, and the next one
// written says how many were; other lines, and debug lines, all pass.
func TestRepeatHandler(t *testing.T) {
	var out bytes.Buffer
	h := newRepeatHandler(slog.NewTextHandler(&out, &slog.HandlerOptions{Level: slog.LevelDebug}))
	log := slog.New(h).With("remote", "127.0.0.1:1")
	boom := errors.New("boom")
	for range 5 {
		log.Info("closing websocket for a retryable failure", "err", boom)
		log.Error("request failed", "err", boom)
		log.Info("src reclaimed by a new connection")
		log.Debug("websocket closed", "err", boom)
	}
	for msg, want := range map[string]int{"closing websocket for a retryable failure": 1, "request failed": 1, "src reclaimed": 5, "websocket closed": 5} {
		if n := strings.Count(out.String(), msg); n != want {
			t.Errorf("%q written %d times, want %d:\n%s", msg, n, want, out.String())
		}
	}
	// Past the quiet period the next one is written with the count.
	h.repeats.mu.Lock()
	for _, k := range h.repeats.kinds {
		k.written = k.written.Add(-repeatQuiet)
	}
	h.repeats.mu.Unlock()
	out.Reset()
	log.Error("request failed", "err", boom)
	if got := out.String(); !strings.Contains(got, "repeated_since_last=4") || !strings.Contains(got, "remote=127.0.0.1:1") {
		t.Errorf("after the quiet period: %q, want the line with repeated_since_last=4", got)
	}
}

// TestRepeatsBounded: past maxRepeatKinds kinds at once, lines of new
// kinds are written, not held back or remembered without bound.
func TestRepeatsBounded(t *testing.T) {
	var r repeats
	now := time.Now()
	for i := range maxRepeatKinds + 10 {
		if write, _ := r.pass(strings.Repeat("k", i+1), now); !write {
			t.Fatalf("first line of kind %d held back", i)
		}
	}
	if len(r.kinds) > maxRepeatKinds {
		t.Errorf("%d kinds remembered, want at most %d", len(r.kinds), maxRepeatKinds)
	}
	if write, _ := r.pass("k", now.Add(time.Second)); write {
		t.Errorf("a repeat of a remembered kind was written")
	}
	if write, _ := r.pass("new", now.Add(repeatQuiet)); !write || len(r.kinds) > maxRepeatKinds {
		t.Errorf("once the old kinds' quiet is over, a new kind: written %v, %d kinds", write, len(r.kinds))
	}
}
