package redisrelay_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coedit/coedit/collab"
	"github.com/coedit/coedit/collab/redisrelay"
	"github.com/coedit/coedit/internal/redistest"
	"github.com/redis/go-redis/v9"
)

// TestCommitsQueuedShareAPipeline: with Redis paused, many documents
// commit at once, so that all but the first few queue; once Redis
// resumes, the queued commits go in pipelines, and every commit is
// answered as its own, at its own version, and reads back. The second
// round begins with Redis's script cache flushed; the calls in flight
// load the script again before any pipeline goes, so Redis answers
// NOSCRIPT to some of them and to none of the queued calls (a pipeline
// that meets NOSCRIPT, and runs its calls again, is
// TestPipelineRunsAgainWhatRedisHadNoScriptFor's).
func TestCommitsQueuedShareAPipeline(t *testing.T) {
	srv := redistest.StartServer(t, redistest.ServerOptions{})
	c := newClient(t, srv.Addr())
	r := newRelay(t, c, prefix(t), redisrelay.Options{})
	const docs = 40
	epochs := make([]string, docs)
	for i := range docs {
		epochs[i] = initDoc(t, r, docKey(i))
		commit(t, r, docKey(i), epochs[i], 0, create(0, "s", 1, ""))
	}
	for round, flush := range []bool{false, true} {
		if flush {
			if err := c.ScriptFlush(ctx(t)).Err(); err != nil {
				t.Fatal(err)
			}
		}
		before := r.Stats()
		noScript0 := noScripts(t, c)
		srv.Pause()
		var wg sync.WaitGroup
		errs := make([]error, docs)
		for i := range docs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				v := uint64(1 + round)
				res, err := r.Commit(ctx(t), docKey(i), epochs[i], v, []collab.Record{rec(v, "s", v+1, fmt.Sprint(i))})
				if err == nil && (res.Outcome != redisrelay.Committed || res.Version != v) {
					err = fmt.Errorf("outcome %v at %d, want committed at %d", res.Outcome, res.Version, v)
				}
				errs[i] = err
			}()
		}
		waitFor(t, "the commits past the first few to queue", func() bool {
			_, queued := redisrelay.PipeState(r)
			return queued == docs-redisrelay.MaxInFlight
		})
		srv.Resume()
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Fatalf("round %d: Commit(%v) = %v", round, docKey(i), err)
			}
		}
		st := r.Stats()
		if st.Pipelines == before.Pipelines {
			t.Errorf("round %d: %d commits at once with Redis paused went in no pipeline", round, docs)
		}
		if got := st.Commits - before.Commits; got != docs {
			t.Errorf("round %d: Stats.Commits grew by %d, want %d", round, got, docs)
		}
		// After the flush, a call in flight meets NOSCRIPT at most once
		// (go-redis then sends the script itself, which loads it); a
		// pipeline that met it would add one for each of its calls.
		lo, hi := 0, 0
		if flush {
			lo, hi = 1, redisrelay.MaxInFlight
		}
		if got := noScripts(t, c) - noScript0; got < lo || got > hi {
			t.Errorf("round %d: Redis answered NOSCRIPT %d times, want %d to %d (only calls in flight, not the %d queued)", round, got, lo, hi, docs-redisrelay.MaxInFlight)
		}
	}
	for i := range docs {
		want := []collab.Record{create(0, "s", 1, ""), rec(1, "s", 2, fmt.Sprint(i)), rec(2, "s", 3, fmt.Sprint(i))}
		if got := readAll(t, r, docKey(i), epochs[i]); !sameRecords(got, want) {
			t.Errorf("%v: Read = %v, want %v", docKey(i), got, want)
		}
	}
}

// TestQueuedCommitGivesUpWithItsContext: a commit queued behind calls in
// flight to a stalled Redis returns when its context ends, and, never
// sent, is never committed.
func TestQueuedCommitGivesUpWithItsContext(t *testing.T) {
	srv := redistest.StartServer(t, redistest.ServerOptions{})
	r := node(t, srv.Addr(), prefix(t), redisrelay.Options{})
	const inFlight0 = 8 // more than go to Redis at once
	epochs := make([]string, inFlight0+1)
	for i := range inFlight0 + 1 {
		epochs[i] = initDoc(t, r, docKey(i))
	}
	before := r.Stats()
	srv.Pause()
	var wg sync.WaitGroup
	for i := range inFlight0 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := r.Commit(ctx(t), docKey(i), epochs[i], 0, []collab.Record{create(0, "s", 1, "")}); err != nil {
				t.Errorf("Commit(%v) = %v", docKey(i), err)
			}
		}()
	}
	waitFor(t, "the most commits in flight and the rest queued", func() bool {
		inFlight, queued := redisrelay.PipeState(r)
		return inFlight == redisrelay.MaxInFlight && queued == inFlight0-redisrelay.MaxInFlight
	})
	short, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := r.Commit(short, docKey(inFlight0), epochs[inFlight0], 0, []collab.Record{create(0, "late", 1, "")})
	if err == nil {
		t.Fatalf("a queued commit whose context ended against a paused Redis = nil error")
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("the queued commit returned after %v, its context lasted 200ms", d)
	}
	if _, queued := redisrelay.PipeState(r); queued != inFlight0-redisrelay.MaxInFlight {
		t.Errorf("after the queued commit left: %d queued, want the other %d", queued, inFlight0-redisrelay.MaxInFlight)
	}
	srv.Resume()
	wg.Wait()
	// The call that left counts once, as a call and as an error; the
	// others once each, as calls.
	st := r.Stats()
	if calls, errs := st.Calls-before.Calls, st.CallErrors-before.CallErrors; calls != inFlight0+1 || errs != 1 {
		t.Errorf("Stats grew by %d calls and %d errors; want %d calls, 1 error (the one that left counted as both)", calls, errs, inFlight0+1)
	}
	if h, ok, err := r.Head(ctx(t), docKey(inFlight0)); err != nil || !ok || h.Version != 0 {
		t.Errorf("Head of the given-up commit's document = %+v, %v, %v; want version 0 (never sent)", h, ok, err)
	}
}

// noScripts returns how many calls Redis has answered with NOSCRIPT since
// it started (INFO errorstats).
func noScripts(t *testing.T, c *redis.Client) int {
	t.Helper()
	info, err := c.Info(ctx(t), "errorstats").Result()
	if err != nil {
		t.Fatalf("INFO errorstats = %v", err)
	}
	for line := range strings.Lines(info) {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(line), "errorstat_NOSCRIPT:count="); ok {
			n, err := strconv.Atoi(rest)
			if err != nil {
				t.Fatalf("INFO errorstats: %q", line)
			}
			return n
		}
	}
	return 0
}
