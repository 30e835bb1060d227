package main

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"sync/atomic"

	"github.com/coedit/coedit/storage"
	"github.com/coedit/coedit/web"
)

// errOpenInterrupted is startNode's error when its context ended while
// the store was opening.
var errOpenInterrupted = errors.New("serve: interrupted while opening the store")

// openStore opens the store at path, or fails with errOpenInterrupted as
// soon as ctx ends. Opening a store that was not closed (a crash, a
// kill) replays its op log into bbolt, which takes minutes on a big
// store, and storage.Open takes no context. Cutting it short is safe:
// it is what a crash during it would do, and the store recovers from
// that as from any crash; what the replay applied is noted in bbolt
// transaction by transaction, and the next open goes on from there
// (storage/doc.go: "Open replays the frames past the first, skipping what
// a document already has, and deletes log segments that bbolt holds").
//
// When ctx ends first, the open goes on in the background and closes
// the store once it is done. That is for tests in this process: the
// command's process exits first, which ends the open.
func openStore(ctx context.Context, path string, opts storage.Options) (*storage.DB, error) {
	type opened struct {
		db  *storage.DB
		err error
	}
	done := make(chan opened)
	gone := make(chan struct{})
	// This goroutine ends when storage.Open returns: it hands the store
	// over, or closes it when openStore has returned without it.
	go func() {
		db, err := storage.Open(path, opts)
		select {
		case done <- opened{db, err}:
		case <-gone:
			if err == nil {
				db.Close()
			}
		}
	}()
	select {
	case o := <-done:
		return o.db, o.err
	case <-ctx.Done():
		close(gone)
		return nil, errOpenInterrupted
	}
}

// handoff is the listener's handler: the opening answers (serveOpening)
// until serve hands it the node's.
type handoff struct {
	next atomic.Pointer[http.Handler]
}

// serve makes h pass every request from now on to next.
func (h *handoff) serve(next http.Handler) { h.next.Store(&next) }

func (h *handoff) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if next := h.next.Load(); next != nil {
		(*next).ServeHTTP(w, r)
		return
	}
	serveOpening(w, r)
}

// serveOpening answers a request while the node opens its store, which
// can take minutes (openStore). The node listens first, so that a busy
// or bad address fails at once rather than after the open; a request
// that waited unanswered meanwhile would look like a node that hangs.
// /health answers 200, {"status":"opening"}: the process is alive and
// working, and a liveness probe that restarted it would only make it
// start over. /ready answers 503, as web does for a node that is not
// ready, so that a load balancer sends no clients; every other request
// 503 ERR_UNAVAILABLE with Retry-After, which clients retry (a WebSocket
// upgrade included). Nothing here reads a document, so it needs no token
// and no Host check.
func serveOpening(w http.ResponseWriter, r *http.Request) {
	var status int
	var body any
	switch r.URL.Path {
	case "/health":
		status, body = http.StatusOK, map[string]any{"status": "opening"}
	case "/ready":
		status, body = http.StatusServiceUnavailable, map[string]any{"status": "not ready", "error": "opening the store"}
	default:
		w.Header().Set("Retry-After", "1")
		status = http.StatusServiceUnavailable
		body = map[string]any{"error": map[string]string{"code": web.CodeUnavailable, "message": "the server is opening its store: try again shortly"}}
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(body)
}
