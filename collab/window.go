package collab

import (
	"context"
	"fmt"
)

// A session keeps its newest records in memory (its window), to transform
// late submits and serve catch-ups, bounded by Options.Window records and
// Options.WindowBytes bytes. Older records are in the Store; requests
// that need them are served by the Hub's readers (catchup.go).

// recordSize approximates the memory a record holds, in bytes.
func recordSize(r *Record) int {
	n := 64 + len(r.Src) + len(r.Type) + len(r.Data)
	for _, c := range r.Op {
		n += 24 + len(c.Text)
	}
	return n
}

// push appends rec, the record at the head, to the window.
func (s *session) push(rec Record) {
	s.window = append(s.window, rec)
	s.wbytes += recordSize(&rec)
}

// trimWindow bounds the in-memory records: past twice Options.Window
// records or twice Options.WindowBytes bytes, it keeps the newest records
// within both limits, copying so the dropped ones can be collected.
func (s *session) trimWindow() {
	w, wb := s.h.opts.Window, s.h.opts.WindowBytes
	if len(s.window) <= 2*w && s.wbytes <= 2*wb {
		return
	}
	keep, size := 0, 0
	for i := len(s.window) - 1; i >= 0 && keep < w; i-- {
		n := recordSize(&s.window[i])
		if size+n > wb {
			break
		}
		keep++
		size += n
	}
	s.window = append([]Record(nil), s.window[len(s.window)-keep:]...)
	s.wbytes = size
}

// windowStart is the version of the oldest record in memory.
func (s *session) windowStart() uint64 { return s.doc.head - uint64(len(s.window)) }

// records returns the committed records [from, to), from memory or, for
// older ones, from the Store. to must be at most the head. Requests that
// need records older than the window are handed to the Hub's readers
// before they reach here (catchup.go), so the Store is read here only for
// what a group commit's own trimming of the window left out: a few
// records, never a client's whole history.
func (s *session) records(from, to uint64) ([]Record, error) {
	if from >= to {
		return nil, nil
	}
	ws := s.windowStart()
	if from >= ws {
		return s.window[from-ws : to-ws : to-ws], nil
	}
	end := min(to, ws)
	old, err := s.h.opts.Store.Ops(context.Background(), s.key, from, end)
	if err != nil {
		return nil, fmt.Errorf("%w: %s [%d, %d): %w", ErrOpsMissing, s.key, from, end, err)
	}
	if uint64(len(old)) != end-from {
		return nil, fmt.Errorf("%w: %s: store has %d of the records [%d, %d)", ErrOpsMissing, s.key, len(old), from, end)
	}
	if to > ws {
		old = append(old, s.window[:to-ws]...)
	}
	return old, nil
}
