package main

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/coedit/coedit/storage"
)

// storeWatchEvery is how often watchStore asks the store for its state.
const storeWatchEvery = time.Second

// startStoreWatch runs watchStore over store until the closer it adds to
// cl stops it, which waits for it to return.
func startStoreWatch(store *storage.DB, log *slog.Logger, cl *closers) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		watchStore(ctx, store.Stalled, storeWatchEvery, log)
	}()
	cl.add("store watch", func(context.Context) error { cancel(); <-done; return nil })
}

// watchStore logs when the store starts refusing commits and when it
// takes them again: it calls stalled (storage.DB.Stalled, what /ready
// checks) every interval until ctx ends, logs one ERROR line when it
// first fails or fails in another way (the log cannot be written, say,
// then has failed for good), and one WARN line when it no longer does.
// Every request the store refuses is logged too, but at INFO and held
// back when it repeats (repeatHandler): without this, a node whose store
// is dead logged nothing at --log-level warn. WARN, not INFO, for the
// recovery, so that whoever saw the ERROR line also sees it end.
func watchStore(ctx context.Context, stalled func() error, interval time.Duration, log *slog.Logger) {
	var failing error // the kind of failure last logged, nil while none
	var since time.Time
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		err := stalled()
		kind := storeFailure(err)
		switch {
		case kind == failing:
		case kind == nil:
			log.Warn("store takes commits again", "refused_for", time.Since(since).Round(time.Millisecond))
		default:
			if failing == nil {
				since = time.Now()
			}
			msg := "store refuses commits: /ready answers 503, and clients are told to send their ops again later"
			if kind == storage.ErrLogFailed {
				msg = "store refuses commits until the node is restarted: its op log failed; /ready answers 503, and clients are told to send their ops again elsewhere or later"
			}
			log.Error(msg, "err", err)
		}
		failing = kind
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// storeFailure returns the kind of err: the storage sentinel it wraps,
// errStoreFailing for another error, nil for nil. Its text is no kind:
// it changes with what is waiting (ErrApplyStalled says how many MiB).
func storeFailure(err error) error {
	if err == nil {
		return nil
	}
	for _, kind := range []error{storage.ErrLogFailed, storage.ErrLogWrite, storage.ErrApplyStalled} {
		if errors.Is(err, kind) {
			return kind
		}
	}
	return errStoreFailing
}

// errStoreFailing is storeFailure's kind for an error of no known kind.
var errStoreFailing = errors.New("store failing")
