package storage

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/coedit/coedit/collab"
	"github.com/coedit/coedit/ot"
)

// TestCommitLoad commits a sequence of batches to one document and checks
// Load after each.
func TestCommitLoad(t *testing.T) {
	key := collab.Key{Collection: "docs", ID: "one"}
	type step struct {
		recs []collab.Record
		snap *collab.Snapshot
		// want after the step
		snap0 collab.Snapshot // Load's snapshot
		from  uint64          // Load's ops start here...
		head  uint64          // ...and end here
		seqs  map[string]collab.SeqEntry
	}
	snap := func(v uint64, data string) *collab.Snapshot {
		return &collab.Snapshot{Version: v, Type: ot.URI, Data: data}
	}
	steps := []step{
		{recs: []collab.Record{createRec(0, "a", 1, "hi")},
			head: 1, seqs: map[string]collab.SeqEntry{"a": se(1, 0)}},
		{recs: []collab.Record{editRec(1, "b", 1, "x"), editRec(2, "a", 2, "y"), editRec(3, "", 0, "z")},
			head: 4, seqs: map[string]collab.SeqEntry{"a": se(2, 2), "b": se(1, 1)}},
		{recs: []collab.Record{editRec(4, "b", 5, "w")}, snap: snap(5, "five"),
			snap0: *snap(5, "five"), from: 5, head: 5, seqs: map[string]collab.SeqEntry{"a": se(2, 2), "b": se(5, 4)}},
		// A snapshot older than the head is stored if newer than the stored one.
		{recs: edits(5, 3, "c"), snap: snap(6, "six"),
			snap0: *snap(6, "six"), from: 6, head: 8, seqs: map[string]collab.SeqEntry{"a": se(2, 2), "b": se(5, 4), "c": se(8, 7)}},
		// An older snapshot than the stored one is ignored.
		{recs: edits(8, 1, "c"), snap: snap(3, "three"),
			snap0: *snap(6, "six"), from: 6, head: 9, seqs: map[string]collab.SeqEntry{"a": se(2, 2), "b": se(5, 4), "c": se(9, 8)}},
		// A snapshot alone.
		{snap: snap(9, "nine"),
			snap0: *snap(9, "nine"), from: 9, head: 9, seqs: map[string]collab.SeqEntry{"a": se(2, 2), "b": se(5, 4), "c": se(9, 8)}},
		{recs: []collab.Record{deleteRec(9, "a", 3), createRec(10, "a", 4, "again")},
			snap0: *snap(9, "nine"), from: 9, head: 11, seqs: map[string]collab.SeqEntry{"a": se(4, 10), "b": se(5, 4), "c": se(9, 8)}},
	}
	db := openTest(t, Options{})
	var all []collab.Record
	for i, s := range steps {
		mustCommit(t, db, key, s.recs, s.snap)
		all = append(all, s.recs...)
		st := mustLoad(t, db, key)
		if st.Snapshot != s.snap0 {
			t.Errorf("step %d: Load(%s).Snapshot = %+v, want %+v", i, key, st.Snapshot, s.snap0)
		}
		if want := all[s.from:s.head]; !equalRecords(st.Ops, want) {
			t.Errorf("step %d: Load(%s).Ops = %+v, want %+v", i, key, st.Ops, want)
		}
		if !reflect.DeepEqual(st.Seqs, s.seqs) {
			t.Errorf("step %d: Load(%s).Seqs = %v, want %v", i, key, st.Seqs, s.seqs)
		}
		if got := mustOps(t, db, key, 0, math.MaxUint64); !equalRecords(got, all) {
			t.Errorf("step %d: Ops(%s, 0, max) = %+v, want %+v", i, key, got, all)
		}
	}
	// Another document is untouched, and loads as the zero DocState.
	if st := mustLoad(t, db, collab.Key{Collection: "docs", ID: "two"}); !reflect.DeepEqual(st, collab.DocState{}) {
		t.Errorf("Load(never seen) = %+v, want the zero DocState", st)
	}
}

func se(seq, v uint64) collab.SeqEntry { return collab.SeqEntry{Seq: seq, Version: v} }

// TestCommitErrors checks that every malformed or out-of-order Commit
// fails with the right error and leaves the document as it was.
func TestCommitErrors(t *testing.T) {
	key := collab.Key{Collection: "c", ID: "d"}
	long := strings.Repeat("k", maxKeyLen)
	for _, tc := range []struct {
		name string
		key  collab.Key
		recs []collab.Record
		snap *collab.Snapshot
		want error
	}{
		{"behind head", key, edits(2, 1, "a"), nil, collab.ErrVersionConflict},
		{"ahead of head", key, edits(4, 1, "a"), nil, collab.ErrVersionConflict},
		{"far ahead", key, edits(100, 2, "a"), nil, collab.ErrVersionConflict},
		{"gap", key, []collab.Record{editRec(3, "a", 1, "x"), editRec(5, "a", 2, "y")}, nil, ErrInvalidRecord},
		{"repeat", key, []collab.Record{editRec(3, "a", 1, "x"), editRec(3, "a", 2, "y")}, nil, ErrInvalidRecord},
		{"unknown kind", key, []collab.Record{{Version: 3, Kind: 9}}, nil, ErrInvalidRecord},
		{"zero kind", key, []collab.Record{{Version: 3}}, nil, ErrInvalidRecord},
		{"create without type", key, []collab.Record{{Version: 3, Kind: collab.OpCreate}}, nil, ErrInvalidRecord},
		{"invalid op", key, []collab.Record{{Version: 3, Kind: collab.OpEdit, Op: ot.Op{{Kind: ot.KindSkip, N: 2}}}}, nil, ErrInvalidRecord},
		{"negative length", key, []collab.Record{{Version: 3, Kind: collab.OpEdit, Op: ot.Op{{Kind: ot.KindDelete, N: -1}}}}, nil, ErrInvalidRecord},
		{"long src", key, []collab.Record{{Version: 3, Kind: collab.OpDelete, Src: long + "x"}}, nil, ErrInvalidRecord},
		{"version overflow", key, edits(math.MaxUint64, 2, "a"), nil, ErrInvalidRecord},
		{"snapshot past new head", key, edits(3, 1, "a"), &collab.Snapshot{Version: 5}, ErrInvalidSnapshot},
		{"snapshot alone past head", key, nil, &collab.Snapshot{Version: 4}, ErrInvalidSnapshot},
		{"empty collection", collab.Key{ID: "d"}, edits(0, 1, "a"), nil, ErrInvalidKey},
		{"empty id", collab.Key{Collection: "c"}, edits(0, 1, "a"), nil, ErrInvalidKey},
		{"long key", collab.Key{Collection: "c", ID: long}, edits(0, 1, "a"), nil, ErrInvalidKey},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db := openTest(t, Options{})
			mustCommit(t, db, key, []collab.Record{createRec(0, "a", 1, "x"), editRec(1, "a", 2, "y"), editRec(2, "b", 1, "z")},
				&collab.Snapshot{Version: 1, Type: ot.URI, Data: "s"})
			before := mustLoad(t, db, key)
			listBefore, _ := db.List(context.Background(), "", 0)
			err := db.Commit(context.Background(), tc.key, tc.recs, tc.snap)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Commit(%s) = %v, want %v", tc.name, err, tc.want)
			}
			if after := mustLoad(t, db, key); !reflect.DeepEqual(after, before) {
				t.Errorf("after failed Commit(%s): Load = %+v, want %+v", tc.name, after, before)
			}
			if listAfter, _ := db.List(context.Background(), "", 0); !reflect.DeepEqual(listAfter, listBefore) {
				t.Errorf("after failed Commit(%s): List = %+v, want %+v", tc.name, listAfter, listBefore)
			}
			// The store still takes the right commit.
			mustCommit(t, db, key, edits(3, 1, "a"), nil)
		})
	}
}

// holdWriter blocks db's writer: it takes the lock a leader holds while
// it logs a batch, commits first (whose call leads and then waits on the
// lock, so that later calls queue), and returns a function that releases
// the lock. first's error arrives on the channel. It turns db's company
// wait off (before any goroutine of the test reads it), so that first's
// leader goes straight to the lock rather than waiting there for a later
// call.
func holdWriter(t *testing.T, db *DB, key collab.Key, first []collab.Record) (release func(), firstErr <-chan error) {
	t.Helper()
	db.opts.CompanyWait = 0
	db.writeMu.Lock()
	errc := make(chan error, 1)
	taken := db.taken.Load()
	go func() { errc <- db.Commit(context.Background(), key, first, nil) }()
	waitFor(t, "the first commit to lead", func() bool { return db.taken.Load() == taken+1 })
	var once sync.Once
	release = func() { once.Do(db.writeMu.Unlock) }
	// A test that fails while holding the lock must still let Close finish.
	t.Cleanup(release)
	return release, errc
}

// TestGroupCommit queues many commits while a leader is busy and
// checks that they share one transaction, and that a conflicting commit
// in that batch fails alone.
func TestGroupCommit(t *testing.T) {
	db := openTest(t, Options{})
	ctx := context.Background()
	const docs = 30
	key := func(i int) collab.Key { return collab.Key{Collection: "g", ID: fmt.Sprint(i)} }
	for i := range docs {
		mustCommit(t, db, key(i), edits(0, 2, "s"), nil)
	}
	release, firstErr := holdWriter(t, db, collab.Key{Collection: "g", ID: "first"}, edits(0, 1, "s"))
	before := db.Stats()
	type result struct {
		i   int
		err error
	}
	results := make(chan result, docs)
	for i := range docs {
		recs := edits(2, 1+i%3, "s")
		if i%7 == 3 {
			recs = edits(1, 1, "s") // behind the head: must conflict
		}
		go func() { results <- result{i, db.Commit(ctx, key(i), recs, nil)} }()
	}
	waitFor(t, "all commits to queue", func() bool { return db.queued() == docs })
	release()
	if err := <-firstErr; err != nil {
		t.Fatalf("first Commit = %v", err)
	}
	for range docs {
		r := <-results
		if r.i%7 == 3 {
			if !errors.Is(r.err, collab.ErrVersionConflict) {
				t.Errorf("conflicting Commit(%s) in a batch = %v, want ErrVersionConflict", key(r.i), r.err)
			}
		} else if r.err != nil {
			t.Errorf("Commit(%s) in a batch with a conflict = %v, want nil", key(r.i), r.err)
		}
	}
	after := db.Stats()
	if got := after.Batches - before.Batches; got != 2 {
		t.Errorf("%d queued commits took %d write transactions, want 2 (the held one and one batch)", docs, got)
	}
	if got := after.Commits - before.Commits; got != docs+1 {
		t.Errorf("Stats().Commits grew by %d, want %d", got, docs+1)
	}
	for i := range docs {
		n := 2
		if i%7 != 3 {
			n += 1 + i%3
		}
		if got := mustOps(t, db, key(i), 0, 100); !equalRecords(got, edits(0, n, "s")) {
			t.Errorf("Ops(%s) = %d records, want %d", key(i), len(got), n)
		}
	}
}

// TestGroupCommitSameDoc puts consecutive commits of one document in one
// batch: the second sees the first's head.
func TestGroupCommitSameDoc(t *testing.T) {
	db := openTest(t, Options{})
	key := collab.Key{Collection: "c", ID: "d"}
	release, firstErr := holdWriter(t, db, collab.Key{Collection: "c", ID: "other"}, edits(0, 1, "s"))
	errs := make(chan error, 3)
	for _, recs := range [][]collab.Record{edits(0, 2, "s"), edits(2, 1, "s"), edits(2, 1, "s")} {
		n := db.queued()
		go func() { errs <- db.Commit(context.Background(), key, recs, nil) }()
		waitFor(t, "commit to queue", func() bool { return db.queued() == n+1 })
	}
	release()
	if err := <-firstErr; err != nil {
		t.Fatal(err)
	}
	var conflicts, ok int
	for range 3 {
		switch err := <-errs; {
		case err == nil:
			ok++
		case errors.Is(err, collab.ErrVersionConflict):
			conflicts++
		default:
			t.Errorf("Commit = %v", err)
		}
	}
	if ok != 2 || conflicts != 1 {
		t.Errorf("three commits of one doc in one batch: %d ok, %d conflicts; want 2 and 1", ok, conflicts)
	}
	if got := mustOps(t, db, key, 0, 10); !equalRecords(got, edits(0, 3, "s")) {
		t.Errorf("Ops = %+v, want 3 edits", got)
	}
}

// TestCommitCancelled checks that a Commit whose context ends before the
// leader takes it returns the context's error and stores nothing.
func TestCommitCancelled(t *testing.T) {
	db := openTest(t, Options{})
	key := collab.Key{Collection: "c", ID: "d"}
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	if err := db.Commit(cancelled, key, edits(0, 1, "s"), nil); !errors.Is(err, context.Canceled) {
		t.Errorf("Commit(cancelled ctx) = %v, want context.Canceled", err)
	}

	release, firstErr := holdWriter(t, db, collab.Key{Collection: "c", ID: "other"}, edits(0, 1, "s"))
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- db.Commit(ctx, key, edits(0, 1, "s"), nil) }()
	waitFor(t, "commit to queue", func() bool { return db.queued() == 1 })
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Errorf("Commit cancelled while queued = %v, want context.Canceled", err)
	}
	release()
	if err := <-firstErr; err != nil {
		t.Fatal(err)
	}
	if got := mustOps(t, db, key, 0, 10); len(got) != 0 {
		t.Errorf("Ops after cancelled Commit = %+v, want none", got)
	}
	mustCommit(t, db, key, edits(0, 1, "s"), nil)
}

// TestConcurrentCommits has one goroutine per document commit many small
// batches while readers read, then two goroutines race on each of a few
// documents; every acknowledged commit must land, in order.
func TestConcurrentCommits(t *testing.T) {
	db := openTest(t, Options{MilestoneEvery: 10})
	ctx := context.Background()
	const docs, commits = 40, 25
	key := func(i int) collab.Key { return collab.Key{Collection: fmt.Sprint("c", i%3), ID: fmt.Sprint(i)} }
	heads := make([]uint64, docs)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	var readers sync.WaitGroup
	for r := range 2 {
		readers.Add(1)
		go func() {
			defer readers.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				k := key((i + r) % docs)
				st, err := db.Load(ctx, k)
				if err != nil {
					t.Errorf("Load(%s) during commits = %v", k, err)
					return
				}
				for j, op := range st.Ops {
					if op.Version != st.Snapshot.Version+uint64(j) {
						t.Errorf("Load(%s) during commits: op %d has version %d", k, j, op.Version)
					}
				}
				if _, err := db.List(ctx, "", 10); err != nil {
					t.Errorf("List during commits = %v", err)
				}
			}
		}()
	}
	for i := range docs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(i), 0))
			v := uint64(0)
			for range commits {
				n := 1 + rng.IntN(3)
				var snap *collab.Snapshot
				if rng.IntN(3) == 0 {
					snap = &collab.Snapshot{Version: v + uint64(n), Type: ot.URI, Data: "s"}
				}
				if err := db.Commit(ctx, key(i), edits(v, n, fmt.Sprint("src", i)), snap); err != nil {
					t.Errorf("Commit(%s, %d) = %v", key(i), v, err)
					return
				}
				v += uint64(n)
			}
			heads[i] = v
		}()
	}
	wg.Wait()
	close(stop)
	readers.Wait()
	for i := range docs {
		if got := mustOps(t, db, key(i), 0, math.MaxUint64); !equalRecords(got, edits(0, int(heads[i]), fmt.Sprint("src", i))) {
			t.Errorf("Ops(%s) has %d records, want %d consecutive edits", key(i), len(got), heads[i])
		}
	}
	list, err := db.List(ctx, "", 0)
	if err != nil || len(list) != docs {
		t.Errorf("List after concurrent commits = %d docs, %v; want %d", len(list), err, docs)
	}

	// Racing writers: each commits at the head it believes in and, on a
	// conflict, reloads. Exactly the acknowledged records must be stored.
	race := collab.Key{Collection: "race", ID: "r"}
	const writers, each = 4, 30
	acked := make([][]uint64, writers)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			src := fmt.Sprint("w", w)
			for seq := uint64(1); seq <= each; {
				st, err := db.Load(ctx, race)
				if err != nil {
					t.Error(err)
					return
				}
				v := st.Snapshot.Version + uint64(len(st.Ops))
				err = db.Commit(ctx, race, []collab.Record{editRec(v, src, seq, src)}, nil)
				switch {
				case err == nil:
					acked[w] = append(acked[w], v)
					seq++
				case errors.Is(err, collab.ErrVersionConflict):
				default:
					t.Errorf("racing Commit = %v", err)
					return
				}
			}
		}()
	}
	wg.Wait()
	got := mustOps(t, db, race, 0, math.MaxUint64)
	if len(got) != writers*each {
		t.Fatalf("racing writers acknowledged %d commits, store has %d", writers*each, len(got))
	}
	for w, vs := range acked {
		for i, v := range vs {
			src := fmt.Sprint("w", w)
			if r := got[v]; r.Src != src || r.Seq != uint64(i+1) {
				t.Errorf("record %d is %s/%d, want the acknowledged %s/%d", v, r.Src, r.Seq, src, i+1)
			}
		}
	}
}

// TestApplyFailureKeepsLog makes the applier's bbolt write fail for one
// document, after its commit was logged and acknowledged: the commits of
// its batch all succeed, reads see them from the log, what needs bbolt
// current (List) reports the failure naming the document, Close keeps
// the log, and once the cause is gone Open replays it whole.
func TestApplyFailureKeepsLog(t *testing.T) {
	path := tempPath(t)
	db, err := Open(path, Options{ApplyEvery: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	bad := collab.Key{Collection: "c", ID: "bad"}
	// A plain value where bad's document bucket must go makes creating
	// that bucket fail.
	setBlocker(t, db.bolt, bad, true)
	release, firstErr := holdWriter(t, db, collab.Key{Collection: "c", ID: "first"}, edits(0, 1, "s"))
	keys := []collab.Key{{Collection: "c", ID: "a"}, bad, {Collection: "c", ID: "b"}}
	errs := make([]chan error, len(keys))
	for i, k := range keys {
		errs[i] = make(chan error, 1)
		go func() { errs[i] <- db.Commit(ctx, k, edits(0, 2, "s"), nil) }()
		waitFor(t, "commit to queue", func() bool { return db.queued() == i+1 })
	}
	release()
	if err := <-firstErr; err != nil {
		t.Fatal(err)
	}
	for i, k := range keys {
		if err := <-errs[i]; err != nil {
			t.Errorf("Commit(%s) = %v, want nil (it is logged; bbolt comes later)", k, err)
		}
		if got := mustOps(t, db, k, 0, 10); !equalRecords(got, edits(0, 2, "s")) {
			t.Errorf("Ops(%s) = %+v, want 2 edits", k, got)
		}
	}
	if _, err := db.List(ctx, "", 0); err == nil || !strings.Contains(err.Error(), "c/bad") {
		t.Errorf("List with a failing apply = %v, want an error naming c/bad", err)
	}
	mustCommit(t, db, bad, edits(2, 1, "s"), nil)
	if err := db.Close(); err == nil || !strings.Contains(err.Error(), "c/bad") {
		t.Errorf("Close with a failing apply = %v, want an error naming c/bad", err)
	}
	if _, err := Open(path, Options{}); err == nil || !strings.Contains(err.Error(), "c/bad") {
		t.Fatalf("Open replaying a log that cannot apply = %v, want an error naming c/bad", err)
	}
	bdb, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	setBlocker(t, bdb, bad, false)
	bdb.Close()
	db = openAt(t, path, Options{})
	for _, k := range keys {
		want := edits(0, 2, "s")
		if k == bad {
			want = edits(0, 3, "s")
		}
		if got := mustOps(t, db, k, 0, 10); !equalRecords(got, want) {
			t.Errorf("after replay: Ops(%s) = %+v, want %d edits", k, got, len(want))
		}
	}
}

// TestMaxBatchDelay checks that a leader waits for its batch to fill
// when MaxBatchDelay is set, never takes more than MaxBatch, and that
// Close ends the wait and writes what it holds.
func TestMaxBatchDelay(t *testing.T) {
	db := openTest(t, Options{MaxBatch: 2, MaxBatchDelay: time.Hour})
	ctx := context.Background()
	errs := make(chan error, 5)
	for i := range 4 {
		go func() { errs <- db.Commit(ctx, collab.Key{Collection: "c", ID: fmt.Sprint(i)}, edits(0, 1, "s"), nil) }()
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Fatalf("Commit = %v", err)
		}
	}
	if got := db.Stats(); got.Commits != 4 || got.Batches != 2 {
		t.Errorf("4 commits with MaxBatch 2 and a long delay: Stats() = %+v, want 4 commits in 2 batches", got)
	}
	// A lone commit waits for company until Close.
	go func() { errs <- db.Commit(ctx, collab.Key{Collection: "c", ID: "late"}, edits(0, 1, "s"), nil) }()
	waitFor(t, "the commit to lead", func() bool { return db.taken.Load() == 5 })
	if err := db.Close(); err != nil {
		t.Fatalf("Close() = %v", err)
	}
	if err := <-errs; err != nil {
		t.Errorf("Commit waiting in a batch at Close = %v, want nil", err)
	}
	if got := db.Stats(); got.Commits != 5 || got.Batches != 3 {
		t.Errorf("after Close: Stats() = %+v, want 5 commits in 3 batches", got)
	}
}

// TestCompanyWait checks when a leader waits for company
// (Options.CompanyWait): never for a document committing alone, nor
// before calls for two other documents have arrived within the window;
// then a lone commit waits, the next call of another document shares its
// batch, and Close ends a wait that nothing joins.
func TestCompanyWait(t *testing.T) {
	db := openTest(t, Options{CompanyWait: time.Hour})
	ctx := context.Background()
	key := func(id string) collab.Key { return collab.Key{Collection: "c", ID: id} }
	for v := range 5 {
		mustCommit(t, db, key("alone"), edits(uint64(v), 1, "s"), nil)
	}
	// Its own arrivals never count for its batch. For another document's
	// they do: five calls of "alone" in the window make a lone commit of
	// "a" wait.
	if got := db.Stats(); got.CompanyWaits != 0 || got.Batches != 5 {
		t.Fatalf("one document committing alone: Stats() = %+v, want 5 batches and no wait", got)
	}
	errs := make(chan error, 3)
	go func() { errs <- db.Commit(ctx, key("a"), edits(0, 1, "s"), nil) }()
	waitFor(t, "the wait to begin", func() bool { return db.Stats().CompanyWaits == 1 })
	select {
	case err := <-errs:
		t.Fatalf("a lone commit after other documents' returned (%v) before company came", err)
	case <-time.After(20 * time.Millisecond):
	}
	mustCommit(t, db, key("b"), edits(0, 1, "s"), nil)
	if err := <-errs; err != nil {
		t.Fatalf("Commit(a) = %v", err)
	}
	if got := db.Stats(); got.Commits != 7 || got.Batches != 6 {
		t.Errorf("a waiting leader and the call that joined it: Stats() = %+v, want 7 commits in 6 batches", got)
	}
	// Close ends a wait that nothing joins, and writes what it holds.
	go func() { errs <- db.Commit(ctx, key("c"), edits(0, 1, "s"), nil) }()
	waitFor(t, "the second wait to begin", func() bool { return db.Stats().CompanyWaits == 2 })
	if err := db.Close(); err != nil {
		t.Fatalf("Close() = %v", err)
	}
	if err := <-errs; err != nil {
		t.Errorf("Commit waiting for company at Close = %v, want nil", err)
	}
}

// TestCompanyDue checks the leader's choice on its own: it counts
// arrivals for documents outside its batch within the window, and a
// batch of companyBatch calls never waits.
func TestCompanyDue(t *testing.T) {
	db := openTest(t, Options{})
	d := 100 * time.Microsecond
	key := func(id string) collab.Key { return collab.Key{Collection: "c", ID: id} }
	req := func(id string) *commitReq { return &commitReq{key: key(id)} }
	now := int64(time.Hour)
	db.cmu.Lock()
	defer db.cmu.Unlock()
	db.arrivals = arrivalRing{}
	db.arrivals.add(now-int64(companyWindow)*int64(d)-1, key("old")) // outside the window
	db.arrivals.add(now-int64(d), key("x"))
	db.arrivals.add(now-int64(d), key("mine"))
	db.arrivals.add(now, key("mine"))
	for _, c := range []struct {
		batch []*commitReq
		want  bool
	}{
		{[]*commitReq{req("mine")}, false},           // x alone: one other document
		{[]*commitReq{req("other")}, true},           // x and mine twice
		{[]*commitReq{req("mine"), req("x")}, false}, // every arrival is in the batch
		{[]*commitReq{req("p"), req("q"), req("r"), req("s")}, false},
	} {
		if got := db.companyDue(c.batch, now, d); got != c.want {
			t.Errorf("companyDue(batch of %d, first %s) = %v, want %v", len(c.batch), c.batch[0].key.ID, got, c.want)
		}
	}
	db.arrivals.add(now, key("y"))
	if !db.companyDue([]*commitReq{req("mine")}, now, d) {
		t.Errorf("companyDue(mine) with x and y arrived = false, want true")
	}
	if db.companyDue([]*commitReq{req("mine")}, now, 0) {
		t.Errorf("companyDue with no wait configured = true, want false")
	}
	// Once the ring has wrapped, only its latest arrivals count: sixteen
	// of "mine" push x and y out.
	for range arrivalRingSize {
		db.arrivals.add(now, key("mine"))
	}
	if db.companyDue([]*commitReq{req("mine")}, now, d) {
		t.Errorf("companyDue(mine) after %d arrivals of its own = true, want false", arrivalRingSize)
	}
	db.arrivals.add(now, key("x"))
	db.arrivals.add(now, key("y"))
	if !db.companyDue([]*commitReq{req("mine")}, now, d) {
		t.Errorf("companyDue(mine) with x and y the latest of a wrapped ring = false, want true")
	}
	// A batch that is full waits for nothing.
	db.opts.MaxBatch = 1
	if db.companyDue([]*commitReq{req("mine")}, now, d) {
		t.Errorf("companyDue with a full batch (MaxBatch 1) = true, want false")
	}
}
