package main

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// repeatQuiet is how long a repeated log line is held back.
const repeatQuiet = 10 * time.Second

// maxRepeatKinds bounds the kinds of line repeats remembers.
const maxRepeatKinds = 256

// repeats holds back log lines that repeat: a failure that hits every
// request (a store that refuses commits, a Redis that cannot be dialed)
// would otherwise log a line per request, thousands a minute, and bury
// everything else. A line of a kind written within the last repeatQuiet
// is counted, not written; the next one written says how many were held
// back. The zero value is ready to use, and safe for concurrent use.
type repeats struct {
	mu    sync.Mutex
	kinds map[string]*repeated
}

type repeated struct {
	written time.Time // when a line of the kind was last written
	held    int       // lines of the kind held back since
}

// pass reports whether a line of kind, at now, is to be written, and if
// so how many lines of the kind were held back since the last written.
func (r *repeats) pass(kind string, now time.Time) (write bool, held int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if k := r.kinds[kind]; k != nil {
		if now.Sub(k.written) < repeatQuiet {
			k.held++
			return false, 0
		}
		held, k.written, k.held = k.held, now, 0
		return true, held
	}
	if r.kinds == nil {
		r.kinds = make(map[string]*repeated)
	}
	if len(r.kinds) >= maxRepeatKinds {
		// Kinds whose quiet period is over would be written at once
		// anyway; only their count of lines held back is lost.
		for kind, k := range r.kinds {
			if now.Sub(k.written) >= repeatQuiet {
				delete(r.kinds, kind)
			}
		}
		if len(r.kinds) >= maxRepeatKinds {
			return true, 0 // too many kinds at once to tell repeats apart
		}
	}
	r.kinds[kind] = &repeated{written: now}
	return true, 0
}

// repeatHandler is a slog.Handler that holds back failure lines that
// repeat (repeats): a record at Info or above with an "err" attribute is
// of a kind by its level and message, and one of a kind written within
// repeatQuiet is dropped; the next one written carries
// repeated_since_last, how many were. Other records pass as they are.
// web logs a line for each request that fails (web/conn.go: fail) and
// for each connection it closes for a failure, with the error: on a
// store that refuses commits, thousands a minute. The store's own state
// is logged once, by watchStore.
type repeatHandler struct {
	next    slog.Handler
	repeats *repeats
}

func newRepeatHandler(next slog.Handler) *repeatHandler {
	return &repeatHandler{next: next, repeats: &repeats{}}
}

func (h *repeatHandler) Enabled(ctx context.Context, level slog.Level) bool {
	return h.next.Enabled(ctx, level)
}

func (h *repeatHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Level >= slog.LevelInfo && hasErr(r) {
		now := r.Time
		if now.IsZero() {
			now = time.Now()
		}
		write, held := h.repeats.pass(r.Level.String()+" "+r.Message, now)
		if !write {
			return nil
		}
		if held > 0 {
			r = r.Clone()
			r.AddAttrs(slog.Int("repeated_since_last", held))
		}
	}
	return h.next.Handle(ctx, r)
}

func (h *repeatHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &repeatHandler{next: h.next.WithAttrs(attrs), repeats: h.repeats}
}

func (h *repeatHandler) WithGroup(name string) slog.Handler {
	return &repeatHandler{next: h.next.WithGroup(name), repeats: h.repeats}
}

// hasErr reports whether r has an attribute named err.
func hasErr(r slog.Record) bool {
	found := false
	r.Attrs(func(a slog.Attr) bool {
		found = a.Key == "err"
		return !found
	})
	return found
}
