package storage

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coedit/coedit/collab"
	"github.com/coedit/coedit/ot"
)

// A writeGate stops each group commit's write at its start (with writeMu
// held), reports the IDs of its batch's documents on batches, and lets it
// go on when the test sends on proceed. It also notes a write that does
// not run on a Commit caller's goroutine (a hand-off to a committer).
type writeGate struct {
	batches chan []string
	proceed chan struct{}
	handOff chan string
}

// gateWrites installs a writeGate on db, which must not have committed
// yet. When the test ends the gate opens for good, so that Close can
// finish.
func gateWrites(t *testing.T, db *DB) *writeGate {
	g := &writeGate{batches: make(chan []string, 64), proceed: make(chan struct{}), handOff: make(chan string, 64)}
	open := make(chan struct{})
	db.testWrite = func(batch []*commitReq) {
		ids := make([]string, len(batch))
		for i, r := range batch {
			ids[i] = r.key.ID
		}
		if !onCallerStack() {
			g.handOff <- strings.Join(ids, ",")
		}
		g.batches <- ids
		select {
		case <-g.proceed:
		case <-open:
		}
	}
	t.Cleanup(func() { close(open) })
	return g
}

// next waits for the next batch to be held at the gate, and checks its
// documents, and that it is written by one of its callers.
func (g *writeGate) next(t *testing.T, want ...string) {
	t.Helper()
	if got := <-g.batches; !slices.Equal(got, want) {
		t.Fatalf("group commit of %q, want %q", got, want)
	}
	select {
	case ids := <-g.handOff:
		t.Errorf("group commit of %s written on a goroutine that is not one of its callers", ids)
	default:
	}
}

// onCallerStack reports whether the calling goroutine is in a call to
// Commit or SaveSnapshot.
func onCallerStack() bool {
	pc := make([]uintptr, 64)
	frames := runtime.CallersFrames(pc[:runtime.Callers(1, pc)])
	for {
		f, more := frames.Next()
		if strings.HasSuffix(f.Function, "storage.(*DB).Commit") || strings.HasSuffix(f.Function, "storage.(*DB).SaveSnapshot") {
			return true
		}
		if !more {
			return false
		}
	}
}

// commitAsync commits one edit at version v of doc g/id in a goroutine
// and returns its result's channel.
func commitAsync(ctx context.Context, db *DB, id string, v uint64) <-chan error {
	errc := make(chan error, 1)
	go func() { errc <- db.Commit(ctx, collab.Key{Collection: "g", ID: id}, edits(v, 1, "s"), nil) }()
	return errc
}

// queueCommit commits as commitAsync does while a write is held, and
// returns once the commit waits in the queue.
func queueCommit(t *testing.T, ctx context.Context, db *DB, id string, v uint64) <-chan error {
	t.Helper()
	n := db.queued()
	errc := commitAsync(ctx, db, id, v)
	waitFor(t, "commit "+id+" to queue", func() bool { return db.queued() == n+1 })
	return errc
}

// notYet fails the test if errc already holds a result.
func notYet(t *testing.T, what string, errc <-chan error) {
	t.Helper()
	select {
	case err := <-errc:
		t.Fatalf("%s returned %v before its batch was written", what, err)
	default:
	}
}

func checkOps(t *testing.T, db *DB, id string, n int) {
	t.Helper()
	key := collab.Key{Collection: "g", ID: id}
	if got := mustOps(t, db, key, 0, 100); !equalRecords(got, edits(0, n, "s")) {
		t.Errorf("Ops(%s) = %d records, want %d", key, len(got), n)
	}
}

// TestLeaderHandsOff checks the leader/follower group commit: the first
// call writes its own request; calls that arrive during that write wait
// and are written together, as one batch, by the oldest of them, while
// the first call has already returned, having written nothing of theirs.
func TestLeaderHandsOff(t *testing.T) {
	db := openTest(t, Options{})
	g := gateWrites(t, db)
	ctx := context.Background()
	lead := commitAsync(ctx, db, "L", 0)
	g.next(t, "L")
	a := queueCommit(t, ctx, db, "A", 0)
	b := queueCommit(t, ctx, db, "B", 0)
	c := queueCommit(t, ctx, db, "C", 0)
	g.proceed <- struct{}{}
	// The next write is the waiters' batch, led by the oldest; the first
	// leader returns while it is held.
	g.next(t, "A", "B", "C")
	if err := <-lead; err != nil {
		t.Fatalf("leader's Commit = %v", err)
	}
	for i, errc := range []<-chan error{a, b, c} {
		notYet(t, "queued Commit "+string(rune('A'+i)), errc)
	}
	g.proceed <- struct{}{}
	for i, errc := range []<-chan error{a, b, c} {
		if err := <-errc; err != nil {
			t.Errorf("queued Commit %c = %v", 'A'+i, err)
		}
	}
	if got := db.Stats(); got.Commits != 4 || got.Batches != 2 {
		t.Errorf("Stats() = %+v, want 4 commits in 2 batches", got)
	}
	if n := db.queued(); n != 0 {
		t.Errorf("%d requests left in the queue, want 0", n)
	}
	for _, id := range []string{"L", "A", "B", "C"} {
		checkOps(t, db, id, 1)
	}
	// With the queue empty, the next call leads again at once.
	d := commitAsync(ctx, db, "D", 0)
	g.next(t, "D")
	g.proceed <- struct{}{}
	if err := <-d; err != nil {
		t.Fatalf("Commit after the hand-offs = %v", err)
	}
}

// TestCommitCancelledWhileWaiting cancels queued calls: one not yet taken
// returns the context's error, is left out of the next batch and is not
// stored (and leadership passes to the next waiter); one already taken
// into a batch being written waits for, and returns, that write's result.
func TestCommitCancelledWhileWaiting(t *testing.T) {
	db := openTest(t, Options{})
	g := gateWrites(t, db)
	bg := context.Background()

	lead := commitAsync(bg, db, "L", 0)
	g.next(t, "L")
	ctxA, cancelA := context.WithCancel(bg)
	a := queueCommit(t, ctxA, db, "A", 0)
	b := queueCommit(t, bg, db, "B", 0)
	cancelA()
	if err := <-a; !errors.Is(err, context.Canceled) {
		t.Fatalf("Commit cancelled while queued = %v, want context.Canceled", err)
	}
	g.proceed <- struct{}{}
	g.next(t, "B") // A is dropped; B leads
	g.proceed <- struct{}{}
	for _, errc := range []<-chan error{lead, b} {
		if err := <-errc; err != nil {
			t.Fatalf("Commit = %v", err)
		}
	}
	checkOps(t, db, "A", 0)

	lead = commitAsync(bg, db, "L", 1)
	g.next(t, "L")
	c := queueCommit(t, bg, db, "C", 0)
	ctxD, cancelD := context.WithCancel(bg)
	d := queueCommit(t, ctxD, db, "D", 0)
	g.proceed <- struct{}{}
	g.next(t, "C", "D")
	cancelD() // D is taken: its write may be durable already
	notYet(t, "Commit D, cancelled after it was taken,", d)
	g.proceed <- struct{}{}
	for _, errc := range []<-chan error{lead, c, d} {
		if err := <-errc; err != nil {
			t.Errorf("Commit = %v, want nil", err)
		}
	}
	checkOps(t, db, "D", 1)
	if got := db.Stats(); got.Commits != 5 || got.Batches != 4 {
		t.Errorf("Stats() = %+v, want 5 commits (the cancelled one not counted) in 4 batches", got)
	}
}

// TestCloseWhileLeaderWrites calls Close while a leader writes and others
// wait: later calls fail with ErrClosed at once, and Close returns only
// after every waiting call is written, which a reopen finds.
func TestCloseWhileLeaderWrites(t *testing.T) {
	path := tempPath(t)
	db := openAt(t, path, Options{})
	g := gateWrites(t, db)
	ctx := context.Background()
	lead := commitAsync(ctx, db, "L", 0)
	g.next(t, "L")
	a := queueCommit(t, ctx, db, "A", 0)
	b := queueCommit(t, ctx, db, "B", 0)
	closed := make(chan error, 1)
	go func() { closed <- db.Close() }()
	waitFor(t, "Close to begin", func() bool {
		db.cmu.Lock()
		defer db.cmu.Unlock()
		return db.closed
	})
	if err := db.Commit(ctx, collab.Key{Collection: "g", ID: "late"}, edits(0, 1, "s"), nil); !errors.Is(err, ErrClosed) {
		t.Errorf("Commit during Close = %v, want ErrClosed", err)
	}
	notYet(t, "Close", closed)
	g.proceed <- struct{}{}
	g.next(t, "A", "B")
	notYet(t, "Close", closed)
	g.proceed <- struct{}{}
	for _, errc := range []<-chan error{lead, a, b, closed} {
		if err := <-errc; err != nil {
			t.Errorf("Commit or Close = %v, want nil", err)
		}
	}
	db = openAt(t, path, Options{})
	for _, id := range []string{"L", "A", "B"} {
		checkOps(t, db, id, 1)
	}
	checkOps(t, db, "late", 0)
}

// TestFailedWriteFailsItsBatch makes the log's write fail for one batch:
// every call of it gets the error (a call that changes nothing too),
// except one that failed its own check first, nothing of the batch is
// stored, and the next batch writes normally.
func TestFailedWriteFailsItsBatch(t *testing.T) {
	db := openTest(t, Options{})
	g := gateWrites(t, db)
	ctx := context.Background()
	snapKey := collab.Key{Collection: "g", ID: "S"}
	for _, id := range []string{"L", "S"} {
		errc := commitAsync(ctx, db, id, 0)
		g.next(t, id)
		g.proceed <- struct{}{}
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
	}
	lead := commitAsync(ctx, db, "L", 1)
	g.next(t, "L")
	a := queueCommit(t, ctx, db, "A", 0)
	conflict := queueCommit(t, ctx, db, "S", 5)
	older := make(chan error, 1)
	go func() { older <- db.SaveSnapshot(ctx, snapKey, collab.Snapshot{Version: 0, Type: ot.URI}) }()
	waitFor(t, "SaveSnapshot to queue", func() bool { return db.queued() == 3 })
	b := queueCommit(t, ctx, db, "B", 0)
	g.proceed <- struct{}{}
	g.next(t, "A", "S", "S", "B")
	// A descriptor open for reading fails every write, with nothing
	// written: the log stays usable.
	roPath := filepath.Join(t.TempDir(), "read-only")
	if err := os.WriteFile(roPath, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	ro, err := os.Open(roPath)
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	good := db.wal.f
	db.wal.f = ro
	g.proceed <- struct{}{}
	if err := <-lead; err != nil {
		t.Fatalf("leader's Commit = %v", err)
	}
	for _, tc := range []struct {
		what string
		errc <-chan error
	}{{"Commit A", a}, {"SaveSnapshot of an older version", older}, {"Commit B", b}} {
		if err := <-tc.errc; err == nil || !strings.Contains(err.Error(), "log write") {
			t.Errorf("%s in a batch whose write failed = %v, want the write's error", tc.what, err)
		}
	}
	if err := <-conflict; !errors.Is(err, collab.ErrVersionConflict) {
		t.Errorf("conflicting Commit in a batch whose write failed = %v, want ErrVersionConflict", err)
	}
	db.wal.f = good
	checkOps(t, db, "A", 0)
	checkOps(t, db, "B", 0)
	again := commitAsync(ctx, db, "A", 0)
	g.next(t, "A")
	g.proceed <- struct{}{}
	if err := <-again; err != nil {
		t.Fatalf("Commit after a failed write = %v", err)
	}
	checkOps(t, db, "A", 1)
	checkOps(t, db, "L", 2)
}

// TestCommitAsyncInCallOrder: commits started one after another without
// waiting (collab's pipelined sessions) are written in the order of the
// calls, each checked against the head the one before leaves, while
// earlier ones are still being written; a commit that does not follow
// the head is refused.
func TestCommitAsyncInCallOrder(t *testing.T) {
	db := openTest(t, Options{Sync: SyncAlways})
	key := collab.Key{Collection: "docs", ID: "async"}
	mustCommit(t, db, key, []collab.Record{createRec(0, "c", 1, "")}, nil)
	const n = 50
	results := make([]chan error, n)
	for i := range n {
		results[i] = make(chan error, 1)
		v := uint64(1 + 2*i)
		db.CommitAsync(key, edits(v, 2, "a"), nil, func(err error) { results[i] <- err })
	}
	for i, ch := range results {
		if err := <-ch; err != nil {
			t.Fatalf("commit %d = %v, want nil", i, err)
		}
	}
	gap := make(chan error, 1)
	db.CommitAsync(key, edits(2*n+5, 1, "a"), nil, func(err error) { gap <- err })
	if err := <-gap; !errors.Is(err, collab.ErrVersionConflict) {
		t.Fatalf("commit past the head = %v, want ErrVersionConflict", err)
	}
	st, err := db.Load(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	if got := st.Snapshot.Version + uint64(len(st.Ops)); got != 2*n+1 {
		t.Fatalf("head after %d async commits = %d, want %d", n, got, 2*n+1)
	}
}

// TestCommitAsyncMixedWithCommits runs async commits of one document
// while other goroutines commit theirs synchronously, so that leadership
// passes between synchronous and async requests in both directions (an
// async leader hands on to a waiting caller; a caller's batch, and an
// async leader's, hand on to a goroutine they start for an async one). Every commit must succeed and
// every document end at its head.
func TestCommitAsyncMixedWithCommits(t *testing.T) {
	db := openTest(t, Options{Sync: SyncAlways})
	const writers, n = 4, 30
	var wg sync.WaitGroup
	for w := range writers {
		key := collab.Key{Collection: "docs", ID: fmt.Sprintf("sync%d", w)}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := db.Commit(context.Background(), key, []collab.Record{createRec(0, "c", 1, "")}, nil); err != nil {
				t.Error(err)
				return
			}
			for i := range n {
				if err := db.Commit(context.Background(), key, edits(uint64(1+i), 1, "s"), nil); err != nil {
					t.Errorf("%s: commit %d: %v", key, i, err)
					return
				}
			}
		}()
	}
	key := collab.Key{Collection: "docs", ID: "async"}
	mustCommit(t, db, key, []collab.Record{createRec(0, "c", 1, "")}, nil)
	results := make([]chan error, n)
	for i := range n {
		results[i] = make(chan error, 1)
		db.CommitAsync(key, edits(uint64(1+i), 1, "a"), nil, func(err error) { results[i] <- err })
		if i%3 == 0 {
			runtime.Gosched()
		}
	}
	// A lost hand-off leaves the commits after it waiting for ever, and
	// the store's Close (the test's cleanup, which runs even after a
	// panic) waiting for its leader: say which commit and end the test
	// binary, rather than hang until it times out.
	lost := time.After(30 * time.Second)
	for i, ch := range results {
		select {
		case err := <-ch:
			if err != nil {
				t.Fatalf("async commit %d = %v, want nil", i, err)
			}
		case <-lost:
			lostLeader(t, fmt.Sprintf("async commit %d never completed", i))
		}
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-lost:
		lostLeader(t, "synchronous commits never completed")
	}
	for w := range writers + 1 {
		k := key
		if w < writers {
			k = collab.Key{Collection: "docs", ID: fmt.Sprintf("sync%d", w)}
		}
		st, err := db.Load(context.Background(), k)
		if err != nil {
			t.Fatal(err)
		}
		if got := st.Snapshot.Version + uint64(len(st.Ops)); got != n+1 {
			t.Fatalf("%s: head %d, want %d", k, got, n+1)
		}
	}
}

// lostLeader fails the test binary at once, for a group commit whose
// leadership was lost: the store could not close.
func lostLeader(t *testing.T, what string) {
	fmt.Fprintf(os.Stderr, "--- FAIL: %s: %s: leadership was lost on the way, and the store cannot close\n", t.Name(), what)
	os.Exit(1)
}
