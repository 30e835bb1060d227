package collab_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/coedit/coedit/collab"
	"github.com/coedit/coedit/ot"
	"github.com/coedit/coedit/storage"
)

// faultyStore is a real store that can be made to fail its next commits,
// and counts its loads. It stands for a disk that fails, not for bbolt.
type faultyStore struct {
	*storage.DB
	failCommits atomic.Int32 // Commit fails while this is positive
	commits     atomic.Int32 // Commit calls
	loads       atomic.Int32
}

var errDiskFull = errors.New("disk full")

func (s *faultyStore) Commit(ctx context.Context, key collab.Key, recs []collab.Record, snap *collab.Snapshot) error {
	s.commits.Add(1)
	if s.failCommits.Add(-1) >= 0 {
		return errDiskFull
	}
	return s.DB.Commit(ctx, key, recs, snap)
}

func (s *faultyStore) Load(ctx context.Context, key collab.Key) (collab.DocState, error) {
	s.loads.Add(1)
	return s.DB.Load(ctx, key)
}

// TestFailedCommitNeedsNoReload: a commit that fails is answered with its
// error and leaves the document as it was, without reloading it from the
// store; the next submit commits at the same version.
func TestFailedCommitNeedsNoReload(t *testing.T) {
	db, _ := openStore(t, storage.SyncNone)
	store := &faultyStore{DB: db}
	h := startHub(t, collab.Options{Store: store})
	mustSubmit(t, h, docX, createSub("", 0, "hello"))
	store.failCommits.Store(1)
	if _, err := h.SubmitWait(ctxBG, docX, editSub("a", 1, 1, ins(5, "!"))); !errors.Is(err, errDiskFull) {
		t.Fatalf("submit with a failing store = %v, want %v", err, errDiskFull)
	}
	if got, want := mustFetch(t, h, docX), (collab.Snapshot{Version: 1, Type: ot.URI, Data: "hello"}); got != want {
		t.Fatalf("doc after a failed commit = %+v, want %+v", got, want)
	}
	res := mustSubmit(t, h, docX, editSub("a", 1, 1, ins(5, "!")))
	if res.Version != 1 || res.Duplicate {
		t.Fatalf("the same submit again = %+v, want committed at 1", res)
	}
	if got := mustFetch(t, h, docX).Data; got != "hello!" {
		t.Fatalf("text = %q, want hello!", got)
	}
	if n := store.loads.Load(); n != 1 {
		t.Fatalf("store loaded %d times, want once (no reload after a failed commit)", n)
	}
	if st := h.Stats(); st.CommitErrors != 1 || st.SubmitErrors != 1 {
		t.Fatalf("Stats = %+v, want one commit error and one submit error", st)
	}
}

// TestFailedCommitKeepsSessionWithoutStore: with the store gone, a failed
// commit still leaves the session serving the document it holds.
func TestFailedCommitKeepsSessionWithoutStore(t *testing.T) {
	// Without pipelining: a pipelined session reloads from the Store
	// after a failed write (TestCommitConflictRollsBack runs pipelined).
	db, _ := openStore(t, storage.SyncNone)
	h := startHubAsIs(t, collab.Options{Store: db})
	mustSubmit(t, h, docX, createSub("", 0, "hello"))
	c := newConn("c")
	c.subscribe(h, docX, nil)
	c.waitN(t, "snapshot", 1)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := h.SubmitWait(ctxBG, docX, editSub("a", 1, 1, ins(0, "x"))); !errors.Is(err, storage.ErrClosed) {
		t.Fatalf("submit with the store closed = %v, want storage.ErrClosed", err)
	}
	if got := mustFetch(t, h, docX); got.Version != 1 || got.Data != "hello" {
		t.Fatalf("doc after a failed commit = %+v, want hello at 1, served from memory", got)
	}
	if n := c.count("op"); n != 0 {
		t.Fatalf("subscriber got %d ops of a commit that failed", n)
	}
}

// TestRemoteRecordsRefilledAfterFailedPersist: records from the relay that
// this node's store fails to persist are dropped without touching the
// session; the next record's gap fill brings them again, in order.
func TestRemoteRecordsRefilledAfterFailedPersist(t *testing.T) {
	relay := collab.NewLocalRelay(100)
	dbA, _ := openStore(t, storage.SyncNone)
	dbB, _ := openStore(t, storage.SyncNone)
	storeB := &faultyStore{DB: dbB}
	a := startHub(t, collab.Options{Store: dbA, Relay: relay})
	b := startHub(t, collab.Options{Store: storeB, Relay: relay})
	sub := newConn("reader")
	sub.subscribe(b, docX, nil)
	sub.waitN(t, "snapshot", 1)

	storeB.failCommits.Store(1)
	mustSubmit(t, a, docX, createSub("w", 1, "hi"))
	waitFor(t, "b to try the first record", func() bool { return storeB.commits.Load() == 1 })
	if got := mustFetch(t, b, docX); got.Version != 0 {
		t.Fatalf("b after failing to persist = %+v, want version 0", got)
	}
	mustSubmit(t, a, docX, editSub("w", 2, 1, ins(2, "!")))
	sub.waitN(t, "op", 2)
	if got := sub.opVersions(); !slices.Equal(got, []uint64{0, 1}) {
		t.Fatalf("b's subscriber got versions %v, want [0 1]", got)
	}
	if got := mustFetch(t, b, docX); got.Data != "hi!" || got.Version != 2 {
		t.Fatalf("b's doc = %+v, want hi! at 2", got)
	}
	if recs, err := dbB.Ops(ctxBG, docX, 0, 10); err != nil || len(recs) != 2 {
		t.Fatalf("b's store has %d records, %v; want 2", len(recs), err)
	}
	if n := storeB.loads.Load(); n != 1 {
		t.Fatalf("b's store loaded %d times, want once", n)
	}
}

// sharedLog is a Sequencer that Hubs in one test share: a compare-and-set
// on each document's version over an in-memory log, the part Redis plays
// in a cluster (DESIGN.md §7). rival, when set, is committed first on
// every call, as if another node always won the race.
type sharedLog struct {
	mu    sync.Mutex
	logs  map[collab.Key][]collab.Record
	rival func(v uint64) collab.Record
	calls int
}

func newSharedLog() *sharedLog { return &sharedLog{logs: make(map[collab.Key][]collab.Record)} }

func (l *sharedLog) Sequence(_ context.Context, key collab.Key, recs []collab.Record) ([]collab.Record, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.calls++
	log := l.logs[key]
	if l.rival != nil {
		log = append(log, l.rival(uint64(len(log))))
		l.logs[key] = log
	}
	head, first := uint64(len(log)), recs[0].Version
	switch {
	case first < head:
		return slices.Clone(log[first:]), nil
	case first > head:
		return nil, fmt.Errorf("records from %d, past the head %d", first, head)
	}
	l.logs[key] = append(log, recs...)
	return nil, nil
}

func (l *sharedLog) log(key collab.Key) []collab.Record {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.logs[key])
}

// TestSequencerConflict: two nodes with their own stores accept submits
// for one document, ordered by a shared Sequencer. They share no relay, so
// each learns of the other's records only from the Sequencer's conflicts:
// it adopts the records it missed (store, subscribers), plans its submits
// again and commits them after those.
func TestSequencerConflict(t *testing.T) {
	seq := newSharedLog()
	dbA, _ := openStore(t, storage.SyncNone)
	dbB, _ := openStore(t, storage.SyncNone)
	a := startHub(t, collab.Options{Store: dbA, Sequencer: seq})
	b := startHub(t, collab.Options{Store: dbB, Sequencer: seq})

	mustSubmit(t, a, docX, createSub("w", 1, "hello"))
	mustSubmit(t, a, docX, editSub("w", 2, 1, ins(0, "A")))

	// b has never seen the document: its create conflicts, b adopts a's
	// two records, and the create, planned again, finds the document.
	bc := newConn("B")
	bc.subscribe(b, docX, nil)
	bc.waitN(t, "snapshot", 1)
	bc.submit(b, docX, collab.Submission{Src: "B", Seq: 1, Kind: collab.OpCreate, Type: ot.Name, Data: "other"})
	if ack := bc.waitN(t, "ack", 1)[0]; !errors.Is(ack.err, collab.ErrDocExists) {
		t.Fatalf("b's create = %+v, want ErrDocExists after catching up", ack)
	}
	if got := bc.opVersions(); !slices.Equal(got, []uint64{0, 1}) {
		t.Fatalf("b's subscriber got %v, want the adopted versions [0 1]", got)
	}

	// a commits again; b's edit, made at 2, is transformed over it.
	mustSubmit(t, a, docX, editSub("w", 3, 2, ins(6, "!")))
	bc.submit(b, docX, editSub("B", 2, 2, ins(0, "B")))
	ack := bc.waitN(t, "ack", 2)[1]
	if ack.err != nil || ack.res.Version != 3 || len(ack.res.Missed) != 1 || ack.res.Missed[0].Src != "w" {
		t.Fatalf("b's edit = %+v, want committed at 3 after w's record", ack)
	}
	if got := mustFetch(t, b, docX); got.Data != "BAhello!" || got.Version != 4 {
		t.Fatalf("b's doc = %+v, want BAhello! at 4", got)
	}
	// a catches up the same way on its next submit.
	res := mustSubmit(t, a, docX, editSub("w", 4, 3, ins(7, "?")))
	if res.Version != 4 {
		t.Fatalf("a's submit = %+v, want committed at 4", res)
	}
	if got := mustFetch(t, a, docX); got.Data != "BAhello!?" || got.Version != 5 {
		t.Fatalf("a's doc = %+v, want BAhello!? at 5", got)
	}

	// Every store holds the Sequencer's order (b has not seen version 4
	// yet), and every (src, seq) once.
	want := seq.log(docX)
	for name, db := range map[string]*storage.DB{"a": dbA, "b": dbB} {
		got, err := db.Ops(ctxBG, docX, 0, 100)
		if err != nil || len(got) == 0 {
			t.Fatalf("%s's store: %d records, %v", name, len(got), err)
		}
		for i, r := range got {
			if w := want[i]; r.Version != w.Version || r.Src != w.Src || r.Seq != w.Seq || r.Op.String() != w.Op.String() {
				t.Errorf("%s's store at %d = %+v, want the Sequencer's %+v", name, i, r, w)
			}
		}
	}
	if st := b.Stats(); st.CommitConflicts != 2 || st.RemoteRecords != 3 {
		t.Errorf("b Stats = %+v, want 2 conflicts and 3 remote records", st)
	}
	if st := a.Stats(); st.CommitConflicts != 1 || st.RemoteRecords != 1 {
		t.Errorf("a Stats = %+v, want 1 conflict and 1 remote record", st)
	}
}

// TestSequencerRetriesBounded: when another node wins every race, the
// session adopts each of its records and gives up after a bounded number
// of tries with ErrContended, its document and store consistent and the
// submit not committed; once the rival stops, the same submit commits.
func TestSequencerRetriesBounded(t *testing.T) {
	seq := newSharedLog()
	h, db := newHub(t, collab.Options{Sequencer: seq})
	mustSubmit(t, h, docX, createSub("", 0, "hello"))
	seq.mu.Lock()
	seq.rival = func(v uint64) collab.Record {
		return collab.Record{Version: v, Src: "rival", Seq: v, Kind: collab.OpEdit, Op: ins(0, "r")}
	}
	seq.calls = 0
	seq.mu.Unlock()

	_, err := h.SubmitWait(ctxBG, docX, editSub("a", 1, 1, ins(5, "!")))
	if !errors.Is(err, collab.ErrContended) {
		t.Fatalf("submit against a rival that always wins = %v, want ErrContended", err)
	}
	seq.mu.Lock()
	tries := seq.calls
	seq.rival = nil
	seq.mu.Unlock()
	if tries < 2 || tries > 100 {
		t.Fatalf("the session tried %d times, want a few", tries)
	}
	snap := mustFetch(t, h, docX)
	if want := strings.Repeat("r", tries) + "hello"; snap.Data != want || snap.Version != uint64(1+tries) {
		t.Fatalf("doc = %+v, want %q at %d (every rival record adopted)", snap, want, 1+tries)
	}
	if recs, err := db.Ops(ctxBG, docX, 0, 1000); err != nil || len(recs) != 1+tries {
		t.Fatalf("store has %d records, %v; want %d", len(recs), err, 1+tries)
	}
	res := mustSubmit(t, h, docX, editSub("a", 1, 1, ins(5, "!")))
	if res.Version != uint64(1+tries) || len(res.Missed) != tries {
		t.Fatalf("the submit again = version %d with %d missed, want %d with %d", res.Version, len(res.Missed), 1+tries, tries)
	}
	if got := mustFetch(t, h, docX).Data; got != strings.Repeat("r", tries)+"hello!" {
		t.Fatalf("text = %q", got)
	}
	if st := h.Stats(); st.CommitConflicts != uint64(tries) {
		t.Fatalf("Stats().CommitConflicts = %d, want %d", st.CommitConflicts, tries)
	}
}
