package web

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/coedit/coedit/collab"
	"github.com/coedit/coedit/storage"
)

// breakableStore is a real store that can be made to fail the way that
// stops a document's session: a commit that reports another writer got
// ahead, then a reload that fails.
type breakableStore struct {
	*storage.DB
	broken atomic.Bool
}

func (s *breakableStore) Commit(ctx context.Context, key collab.Key, recs []collab.Record, snap *collab.Snapshot) error {
	if s.broken.Load() {
		return fmt.Errorf("another writer: %w", collab.ErrVersionConflict)
	}
	return s.DB.Commit(ctx, key, recs, snap)
}

func (s *breakableStore) Load(ctx context.Context, key collab.Key) (collab.DocState, error) {
	if s.broken.Load() {
		return collab.DocState{}, errors.New("store unreadable")
	}
	return s.DB.Load(ctx, key)
}

// TestFailedSessionClosesSubscribers: when a document's session stops on
// a fatal store error, its subscribers' sockets are closed with 1011, so
// their clients reconnect and re-subscribe by version instead of waiting
// for ops that never come; the submitter's socket is closed the same way
// rather than answered with an error, so its client resends the op
// instead of rolling it back. After the store recovers, the reconnected
// clients edit on (issue 9, item 4).
func TestFailedSessionClosesSubscribers(t *testing.T) {
	var store *breakableStore
	ts := startServerStore(t, Options{Logger: quiet}, collab.Options{}, func(db *storage.DB) collab.Store {
		store = &breakableStore{DB: db}
		return store
	})
	a := ts.connect(t)
	a.create("docs", "x", "hello", 1)
	a.sendRaw(`{"a":"s","c":"docs","d":"x","v":1}`)
	a.expect(`{"a":"s","c":"docs","d":"x"}`)
	b := ts.connect(t)

	store.broken.Store(true)
	b.sendRaw(`{"a":"op","c":"docs","d":"x","v":1,"seq":1,"op":["!"]}`)
	for name, c := range map[string]*tclient{"submitter": b, "subscriber": a} {
		if err := c.closeErr(10 * time.Second); !websocket.IsCloseError(err, CloseSessionFailed) {
			t.Fatalf("%s's connection ended with %v, want close %d", name, err, CloseSessionFailed)
		}
	}

	store.broken.Store(false)
	a2 := ts.dial(t, nil)
	a2.handshake(a.src)
	a2.sendRaw(`{"a":"s","c":"docs","d":"x","v":1}`)
	a2.expect(`{"a":"s","c":"docs","d":"x"}`)
	b2 := ts.dial(t, nil)
	b2.handshake(b.src)
	b2.sendRaw(`{"a":"op","c":"docs","d":"x","v":1,"seq":1,"op":["!"]}`)
	b2.expectf(`{"a":"op","c":"docs","d":"x","v":1,"src":%q,"seq":1}`, b.src)
	a2.expectf(`{"a":"op","c":"docs","d":"x","v":1,"src":%q,"seq":1,"op":["!"]}`, b.src)
}
