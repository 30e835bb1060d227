package redisrelay_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/coedit/coedit/collab"
	"github.com/coedit/coedit/collab/redisrelay"
	"github.com/coedit/coedit/internal/redistest"
	"github.com/coedit/coedit/ot"
	"github.com/coedit/coedit/storage"
)

// hookStore runs hook once, on the first Ops call reading [from, to) with
// to == at (the compare's read of a node of no known history), before
// answering it: what other nodes do meanwhile lands between that node's
// Head and what it does with the answer.
type hookStore struct {
	*storage.DB
	mu   sync.Mutex
	at   uint64
	hook func()
}

func (s *hookStore) Ops(ctx context.Context, key collab.Key, from, to uint64) ([]collab.Record, error) {
	s.mu.Lock()
	h := s.hook
	if h != nil && to == s.at && from < to {
		s.hook = nil
	} else {
		h = nil
	}
	s.mu.Unlock()
	if h != nil {
		h()
	}
	return s.DB.Ops(ctx, key, from, to)
}

// hooked is cfg with the node's store wrapped in a hookStore.
func hooked(cfg nodeConfig, at uint64, hook func()) nodeConfig {
	cfg.store = func(db *storage.DB) redisrelay.EpochStore { return &hookStore{DB: db, at: at, hook: hook} }
	return cfg
}

// joinWhile starts node name over the store at path (farConfig) and has
// it fetch key, while other fetches key inside its compare (a
// hookStore at at): other's sync lands between name's Head and what
// name does with its compare.
func joinWhile(t *testing.T, r *testRedis, name, path string, key collab.Key, at uint64, other *hubNode) *hubNode {
	t.Helper()
	errc := make(chan error, 1)
	n := r.startNode(t, name, hooked(farNodeConfig(path), at, func() {
		_, err := other.hub.FetchWait(context.Background(), key)
		errc <- err
	}))
	fetch(t, n, key)
	if err := <-errc; err != nil {
		t.Fatalf("%s: %v", other.name, err)
	}
	return n
}

// TestPutBackRacingCommitsOffersAgain: b's note-less copy is two edits
// (z) past Redis's head H and matches Redis below it; while b compares,
// a commits two edits at H. b's put-back at H must not land: it offers
// z's edits again over a's and forks, and every node ends with each
// edit once. (A renewal's put-back skipped b's records below Redis's new
// head as the same history's: b kept z's edits where Redis held a's.)
func TestPutBackRacingCommitsOffersAgain(t *testing.T) {
	key := docKey(1)
	r, a, bPath := aheadCopies(t, key)
	H := fetch(t, a, key).Version // a seeds Redis at H
	errc := make(chan error, 2)
	b := r.startNode(t, "b", hooked(farNodeConfig(bPath), H, func() {
		for i := range 2 {
			s, err := a.hub.FetchWait(context.Background(), key)
			if err == nil {
				_, err = a.hub.SubmitWait(context.Background(), key, editSub("a", uint64(i+1), s.Version, insertAt(0, "A")))
			}
			errc <- err
		}
	}))
	fetch(t, b, key)
	for range 2 {
		if err := <-errc; err != nil {
			t.Fatalf("a's commit during b's compare: %v", err)
		}
	}
	log := converged(t, key, a, b)
	hasOnce(t, log, "z", 1)
	hasOnce(t, log, "z", 2)
	if st := b.cluster.Stats(); st.Reoffered != 2 || st.Forks != 1 || st.Lost != 0 {
		t.Fatalf("b: %+v, want z's 2 offered again, 1 fork, nothing lost", st)
	}
}

// TestPutBackRacingACommitKeepsEveryOpApplicable: as above, with z2 made
// on z1's ten characters and a committing one edit at H. Put back at
// H+1 over a's edit instead of z1, z2 would skip past the end of the
// text, and every node applying it would fail; offered again, it is
// transformed over a's edit.
func TestPutBackRacingACommitKeepsEveryOpApplicable(t *testing.T) {
	dir := t.TempDir()
	aPath, bPath := filepath.Join(dir, "a.db"), filepath.Join(dir, "b.db")
	key := docKey(1)
	singleNodeStores(t, key, 2*farTail, aPath, bPath)
	db, err := storage.Open(bPath, storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	alone := &hubNode{name: "alone", hub: collab.NewHub(collab.Options{Store: db})}
	s := fetch(t, alone, key)
	end := len([]rune(s.Data))
	submit(t, alone, key, editSub("z", 1, s.Version, insertAt(end, "zzzzzzzzzz")))
	submit(t, alone, key, editSub("z", 2, s.Version+1, insertAt(end+10, "!")))
	if err := alone.hub.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	r, _ := startNodes(t, redistest.ServerOptions{}, nodeConfig{})
	a := r.startNode(t, "a", farNodeConfig(aPath))
	H := fetch(t, a, key).Version
	errc := make(chan error, 1)
	b := r.startNode(t, "b", hooked(farNodeConfig(bPath), H, func() {
		_, err := a.hub.SubmitWait(context.Background(), key, editSub("a", 1, H, insertAt(0, "A")))
		errc <- err
	}))
	fetch(t, b, key)
	if err := <-errc; err != nil {
		t.Fatalf("a's commit: %v", err)
	}
	c := r.startNode(t, "c", farConfig()) // a new node loads Redis's history
	if _, err := c.hub.FetchWait(ctx(t), key); err != nil {
		t.Fatalf("a new node: Fetch = %v", err)
	}
	sameFrom(t, key, H, a, b)
	sameFrom(t, key, H, a, c)
	log := opLog(t, a, key)
	checkLog(t, log)
	hasOnce(t, log, "z", 1)
	hasOnce(t, log, "z", 2)
}

// TestTwoCopiesAheadJoinAtOnce: b and c start on copies of one
// single-node store that each went on alone (z on b, y on c), two edits
// past the head a seeds; c puts its two back while b compares. b's
// put-back then cannot land, so it offers z's again over y's; every node
// ends with each edit once.
func TestTwoCopiesAheadJoinAtOnce(t *testing.T) {
	dir := t.TempDir()
	aPath, bPath, cPath := filepath.Join(dir, "a.db"), filepath.Join(dir, "b.db"), filepath.Join(dir, "c.db")
	key := docKey(1)
	singleNodeStores(t, key, 2*farTail, aPath, bPath, cPath)
	editAlone(t, bPath, key, "z", 2)
	editAlone(t, cPath, key, "y", 2)
	r, _ := startNodes(t, redistest.ServerOptions{}, nodeConfig{})
	a := r.startNode(t, "a", farNodeConfig(aPath))
	H := fetch(t, a, key).Version
	c := r.startNode(t, "c", farNodeConfig(cPath))
	b := joinWhile(t, r, "b", bPath, key, H, c)
	log := converged(t, key, a, b, c)
	for _, src := range []string{"y", "z"} {
		hasOnce(t, log, src, 1)
		hasOnce(t, log, src, 2)
	}
	// c's put-back landed; b's, made on the head before it, did not:
	// b compared again and offered z's edits over y's.
	if st := c.cluster.Stats(); st.Forks != 0 || st.Reoffered != 0 {
		t.Fatalf("c: %+v, want its records put back", st)
	}
	if st := b.cluster.Stats(); st.Forks != 1 || st.Reoffered != 2 {
		t.Fatalf("b: %+v, want z's 2 offered again and a fork", st)
	}
}

// TestSrcLessPutBackRaceCommitsEachOnce: copies of one single-node store
// whose last records carry no src (an import, a programmatic writer): c
// holds two past the head a seeds, b the same two and one more. c puts
// its two back while b compares. b's put-back cannot land (Redis's head
// moved), and b must then find c's two as its own by comparing again,
// not offer them under made-up srcs that match nothing, which committed
// them a second time.
func TestSrcLessPutBackRaceCommitsEachOnce(t *testing.T) {
	dir := t.TempDir()
	aPath, bPath, cPath := filepath.Join(dir, "a.db"), filepath.Join(dir, "b.db"), filepath.Join(dir, "c.db")
	key := docKey(1)
	orig := filepath.Join(dir, "orig.db")
	editAlone(t, orig, key, "s", 2*farTail)
	db, err := storage.Open(orig, storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	alone := &hubNode{name: "alone", hub: collab.NewHub(collab.Options{Store: db})}
	for _, txt := range []string{"ONE.", "TWO.", "THREE."} {
		s := fetch(t, alone, key)
		submit(t, alone, key, editSub("", 0, s.Version, insertAt(0, txt)))
	}
	recs := opLog(t, alone, key)
	if err := alone.hub.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	n := len(recs)
	writeRecords(t, aPath, key, recs[:n-3])
	writeRecords(t, cPath, key, recs[:n-1])
	writeRecords(t, bPath, key, recs)
	r, _ := startNodes(t, redistest.ServerOptions{}, nodeConfig{})
	a := r.startNode(t, "a", farNodeConfig(aPath))
	H := fetch(t, a, key).Version
	c := r.startNode(t, "c", farNodeConfig(cPath))
	b := joinWhile(t, r, "b", bPath, key, H, c)
	converged(t, key, a, b, c)
	s := fetch(t, a, key)
	for _, w := range []string{"ONE.", "TWO.", "THREE."} {
		if k := strings.Count(s.Data, w); k != 1 {
			t.Errorf("%q is %d times in the text, want once", w, k)
		}
	}
	if st := b.cluster.Stats(); st.Forks != 0 || st.Reoffered != 0 || st.Lost != 0 {
		t.Fatalf("b: %+v, want its last record put back after c's two", st)
	}
}

// TestNothingComparableIsNeverReadOnto: b's store holds a document
// under the same id that nothing compares with Redis's: another
// document installed as a base with no records after it, inside what
// Redis's stream keeps (no note, or the note of an epoch Redis does not
// know), or past Redis's head. b must not apply Redis's records on that
// snapshot, nor note Redis's epoch for it: it either installs Redis's
// snapshot over it (counting what it replaced) or fails its sync with
// collab.ErrUnavailable.
func TestNothingComparableIsNeverReadOnto(t *testing.T) {
	for _, tc := range []struct {
		name string
		note string
		past bool // the base lies past Redis's head
	}{
		{"no note", "", false},
		{"unknown epoch", "0123456789abcdef", false},
		{"past the head", "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			aPath, bPath := filepath.Join(dir, "a.db"), filepath.Join(dir, "b.db")
			key := docKey(1)
			singleNodeStores(t, key, 2*farTail, aPath)
			r, _ := startNodes(t, redistest.ServerOptions{}, nodeConfig{})
			a := r.startNode(t, "a", farNodeConfig(aPath))
			editN(t, a, key, "a", 1, 3)
			head := fetch(t, a, key).Version
			_, first, _ := redisState(t, newClient(t, r.srv.Addr()), r.prefix, key)
			base := first + 2
			if tc.past {
				base = head + 5
			}
			if !tc.past && base >= head {
				t.Fatalf("Redis's stream starts at %d, head %d", first, head)
			}
			db, err := storage.Open(bPath, storage.Options{})
			if err != nil {
				t.Fatal(err)
			}
			if err := db.InstallBase(ctx(t), key, collab.Snapshot{Version: base, Type: ot.URI, Data: "OTHER DOCUMENT"}, nil, tc.note); err != nil {
				t.Fatal(err)
			}
			if err := db.Close(); err != nil {
				t.Fatal(err)
			}
			b := r.startNode(t, "b", farNodeConfig(bPath))
			check := func(when string) {
				t.Helper()
				sb, err := b.hub.FetchWait(ctx(t), key)
				switch sa := fetch(t, a, key); {
				case err != nil && !errors.Is(err, collab.ErrUnavailable):
					t.Fatalf("%s: b: Fetch = %v, want nil or ErrUnavailable", when, err)
				case err != nil:
					if note, _ := b.db.Epoch(ctx(t), key); note != tc.note {
						t.Fatalf("%s: b failed to sync (%v) but noted %q over %q", when, err, note, tc.note)
					}
				case sb != sa:
					t.Fatalf("%s: b has %+v, a has %+v", when, sb, sa)
				}
			}
			check("first")
			editN(t, a, key, "a", 4, 10) // Redis's head passes b's base
			check("after a's edits")
		})
	}
}

// TestCopyAtTheStreamStartIsReplacedAndCounted: b's note-less copy went
// on alone (two edits by z) and a edited on until Redis's stream starts
// exactly at b's head, so no record compares. b installs Redis's
// snapshot and counts every record it held lost (z's edits are, and
// nothing shows the others were not): it does not read a's records onto
// its own state, which holds z's edits where Redis holds a's.
func TestCopyAtTheStreamStartIsReplacedAndCounted(t *testing.T) {
	key := docKey(1)
	r, a, bPath, bHead := copyAtTheStreamStart(t, key)
	b := r.startNode(t, "b", farNodeConfig(bPath))
	s := fetch(t, b, key)
	base, err := b.db.Base(ctx(t), key)
	if err != nil || base <= bHead {
		t.Fatalf("b at version %d, base %d (%v), %+v: want Redis's snapshot past %d installed", s.Version, base, err, b.cluster.Stats(), bHead)
	}
	sameFrom(t, key, base, a, b)
	if st := b.cluster.Stats(); st.Lost != bHead || st.Installs != 1 || st.Forks != 1 {
		t.Fatalf("b: %+v, want its %d records counted lost, 1 fork and 1 install", st, bHead)
	}
	// z, whose copy at b's old head holds its two edits where Redis's
	// history holds a's, is refused wherever it comes back, not caught
	// up onto that copy.
	fetch(t, a, key) // a syncs, and so reads the replaced clients
	if _, err := a.hub.SubmitWait(ctx(t), key, editSub("z", 3, bHead, insertAt(0, "Z3"))); !errors.Is(err, collab.ErrHistoryReplaced) {
		t.Fatalf("a: z's submit at its copy's version %d = %v, want ErrHistoryReplaced", bHead, err)
	}
}

// truncHookStore runs hook once, after the first Truncate.
type truncHookStore struct {
	*storage.DB
	mu   sync.Mutex
	hook func()
}

func (s *truncHookStore) Truncate(ctx context.Context, key collab.Key, from uint64) error {
	err := s.DB.Truncate(ctx, key, from)
	s.mu.Lock()
	h := s.hook
	s.hook = nil
	s.mu.Unlock()
	if h != nil {
		h()
	}
	return err
}

// TestReplaceRacingARenewalCountsOnce: b's copy lies wholly below what
// Redis keeps, so b forks at its base to install Redis's snapshot; just
// after the fork, before the install, another node renews the document
// (made on Redis's meta, as a renewal leaves it). The install meets the
// new epoch, and the sync goes on from b's base: its records are counted
// lost once, not again by a second replace from the old head.
func TestReplaceRacingARenewalCountsOnce(t *testing.T) {
	dir := t.TempDir()
	aPath, bPath := filepath.Join(dir, "a.db"), filepath.Join(dir, "b.db")
	key := docKey(1)
	singleNodeStores(t, key, 2*farTail, aPath, bPath)
	r, _ := startNodes(t, redistest.ServerOptions{}, nodeConfig{})
	a := r.startNode(t, "a", farNodeConfig(aPath))
	editN(t, a, key, "a", 1, 3*farTail)
	raw := newClient(t, r.srv.Addr())
	waitTrimmed(t, raw, r.prefix, key, fetch(t, a, key).Version)
	base := redisrelay.KeyBase(r.prefix, key)
	cfg := farNodeConfig(bPath)
	cfg.store = func(db *storage.DB) redisrelay.EpochStore {
		return &truncHookStore{DB: db, hook: func() {
			m := raw.HGetAll(context.Background(), base+"meta").Val()
			raw.HSet(context.Background(), base+"meta", "e", "feedfeedfeedfeed", "l", m["e"]+":"+m["v"])
		}}
	}
	b := r.startNode(t, "b", cfg)
	sameFrom(t, key, fetch(t, b, key).Version, a, b)
	if st := b.cluster.Stats(); st.Lost != 2*farTail+1 || st.Installs != 1 || st.Forks != 1 {
		t.Fatalf("b: %+v, want %d lost, 1 fork and 1 install", st, 2*farTail+1)
	}
}

// TestReplacedAuthorRefusedOnTheReplacingNode: as
// TestCopyAtTheStreamStartIsReplacedAndCounted, but z comes back to b
// itself, over a connection (as a ShareDB client resends its op before
// it subscribes again), and its submit is what opens the document there.
// b's replace notes z; the sync's answer must carry that note, not the
// replaced clients read with the head before the fork. (A submit without
// a connection is not checked before its catch-up, which finds the
// records below b's new base missing: ErrOpsMissing, never wrong data.)
func TestReplacedAuthorRefusedOnTheReplacingNode(t *testing.T) {
	key := docKey(1)
	r, _, bPath, bHead := copyAtTheStreamStart(t, key)
	b := r.startNode(t, "b", farNodeConfig(bPath))
	errc := make(chan error, 1)
	b.hub.Submit(key, newTestConn("z"), editSub("z", 3, bHead, insertAt(0, "Z3")), func(_ collab.SubmitResult, err error) { errc <- err })
	if err := <-errc; !errors.Is(err, collab.ErrHistoryReplaced) {
		t.Fatalf("b: z's submit at its copy's version %d = %v (stats %+v), want ErrHistoryReplaced", bHead, err, b.cluster.Stats())
	}
}

// copyAtTheStreamStart makes aheadCopies of key (b's copy two edits by z
// past the head a seeds, at bHead) and has a edit on until Redis keeps
// records from exactly bHead on, its snapshot past it: nothing of b's
// compares with Redis's.
func copyAtTheStreamStart(t *testing.T, key collab.Key) (r *testRedis, a *hubNode, bPath string, bHead uint64) {
	t.Helper()
	r, a, bPath = aheadCopies(t, key)
	bHead = uint64(2*farTail + 3)
	editN(t, a, key, "a", 1, 2+farTail)
	head := fetch(t, a, key).Version
	raw := newClient(t, r.srv.Addr())
	waitFor(t, "a's snapshot saves", func() bool {
		_, first, sv := redisState(t, raw, r.prefix, key)
		return sv > bHead && first <= bHead
	})
	// What a save at a's head trims to: head - TailLen, b's head.
	if err := raw.XTrimMinID(ctx(t), redisrelay.KeyBase(r.prefix, key)+"log", fmt.Sprintf("%d-1", bHead)).Err(); err != nil || head-farTail != bHead {
		t.Fatalf("XTRIM: %v (head %d)", err, head)
	}
	return r, a, bPath, bHead
}
