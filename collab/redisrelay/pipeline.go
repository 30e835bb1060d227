package redisrelay

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// Commits in pipelines. A node commits each of its documents' ops with
// one script call per group of ops, and under load many documents commit
// at once: each call then took a connection of go-redis's pool (20 with
// two cores), and the rest waited for one. maxInFlight calls go to Redis
// on their own as they come; one that finds that many in flight queues,
// and when one of them returns, everything queued goes to Redis as one
// pipeline (one write and one read on one connection, and for Redis one
// read of many commands). So at light load a commit never waits for
// another's round trip, and under load the commits share round trips.
//
// It changes how commits travel, not what they do: each is the same
// script call with the same arguments, Redis runs a pipeline's calls one
// after another, and a document's commits never share a pipeline (its
// session waits for each commit's answer before the next). An error of
// the pipeline as a whole reaches each of its calls, whose callers treat
// it as they treat a call's own (the outcome unknown: they retry, and the
// script answers a repeat as the first run did).

// maxInFlight is how many commit calls go to Redis at once before the
// next ones queue for a pipeline.
const maxInFlight = 4

// States of a pipeCall.
const (
	callWaiting  uint32 = iota
	callAnswered        // v and err are set, done is closed
	callLeft            // the caller left on its context: nobody reads the answer
)

// pipeCall is a queued commit call.
type pipeCall struct {
	ctx   context.Context
	keys  []string
	args  []any
	start time.Time // when it was made: its recorded time includes the queue
	state atomic.Uint32
	v     []any
	err   error
	done  chan struct{} // closed when answered
}

// pipeliner queues commit calls past maxInFlight (Relay.runCommit).
type pipeliner struct {
	mu       sync.Mutex
	queue    []*pipeCall
	inFlight int // calls or pipelines in flight, counted against maxInFlight
}

// runCommit runs the commit script like run, in a pipeline with other
// commits when maxInFlight calls are in flight (see above).
func (r *Relay) runCommit(ctx context.Context, keys []string, args ...any) ([]any, error) {
	p := &r.pipe
	p.mu.Lock()
	if p.inFlight < maxInFlight {
		p.inFlight++
		p.mu.Unlock()
		v, err := r.run(ctx, "commit", commitScript, keys, args...)
		r.passOn()
		return v, err
	}
	c := &pipeCall{ctx: ctx, keys: keys, args: args, start: time.Now(), done: make(chan struct{})}
	p.queue = append(p.queue, c)
	p.mu.Unlock()
	select {
	case <-c.done:
		return c.v, c.err
	case <-ctx.Done():
	}
	if !c.state.CompareAndSwap(callWaiting, callLeft) {
		<-c.done // answered meanwhile: the answer stands
		return c.v, c.err
	}
	// Still queued: never sent. Taken: in a pipeline whose outcome this
	// caller no longer waits for, as with a call whose context ends in
	// flight (and as there, it may yet be committed: a retry meets it as
	// a repeat or a conflict).
	p.mu.Lock()
	for i, q := range p.queue {
		if q == c {
			p.queue = append(p.queue[:i], p.queue[i+1:]...)
			break
		}
	}
	p.mu.Unlock()
	r.record("commit", time.Since(c.start), ctx.Err())
	return nil, classify("commit", ctx.Err())
}

// passOn ends a call's turn in flight: it gives the slot up, or, when
// calls are queued, keeps it and sends them, as pipelines, from a new
// goroutine until the queue is empty, so that the caller has its answer
// at once.
func (r *Relay) passOn() {
	p := &r.pipe
	p.mu.Lock()
	if len(p.queue) == 0 {
		p.inFlight--
		p.mu.Unlock()
		return
	}
	p.mu.Unlock()
	go func() {
		for {
			p.mu.Lock()
			calls := p.queue
			p.queue = nil
			if len(calls) == 0 {
				p.inFlight--
				p.mu.Unlock()
				return
			}
			p.mu.Unlock()
			r.runPipeline(calls)
		}
	}()
}

// runPipeline sends calls as one pipeline and gives each its answer. A
// call that Redis does not know the script for (NOSCRIPT: Redis lost its
// script cache, by a restart or SCRIPT FLUSH) was not run, and is run
// again on its own, which loads the script.
func (r *Relay) runPipeline(calls []*pipeCall) {
	// The pipeline lasts as long as the longest-lived caller may wait
	// for it; callers whose contexts end sooner stop waiting (runCommit).
	ctx := context.Background()
	var latest time.Time
	for _, c := range calls {
		d, ok := c.ctx.Deadline()
		if !ok {
			latest = time.Time{}
			break
		}
		latest = later(latest, d)
	}
	if !latest.IsZero() {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, latest)
		defer cancel()
	}
	pipe := r.c.Pipeline()
	cmds := make([]*redis.Cmd, len(calls))
	for i, c := range calls {
		cmds[i] = commitScript.EvalSha(ctx, pipe, c.keys, c.args...)
	}
	_, _ = pipe.Exec(ctx) // each command holds its own error
	r.stats.pipelines.Add(1)
	for i, c := range calls {
		v, err := cmds[i].Slice()
		if err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") && c.ctx.Err() == nil {
			v, err = r.run(c.ctx, "commit", commitScript, c.keys, c.args...)
		} else if c.state.Load() == callWaiting {
			r.record("commit", time.Since(c.start), err)
			if err != nil {
				err = classify("commit", err)
			}
		}
		c.v, c.err = v, err
		if c.state.CompareAndSwap(callWaiting, callAnswered) {
			close(c.done)
		}
	}
}

// later returns the later of a (zero: none yet) and b.
func later(a, b time.Time) time.Time {
	if a.IsZero() || b.After(a) {
		return b
	}
	return a
}
