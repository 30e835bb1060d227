package redisrelay_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/coedit/coedit/collab"
	"github.com/coedit/coedit/collab/redisrelay"
	"github.com/coedit/coedit/internal/redistest"
	"github.com/coedit/coedit/ot"
	"github.com/coedit/coedit/storage"
)

// farNodeConfig is farConfig over the store at path.
func farNodeConfig(path string) nodeConfig {
	cfg := farConfig()
	cfg.path = path
	return cfg
}

// singleNodeStores writes, into a new store at each path, the records of
// a document edited on a single node (no cluster, so no epoch note): a
// create by x and count edits by s. The stores hold the same records, as
// copies of one store would.
func singleNodeStores(t *testing.T, key collab.Key, count int, paths ...string) {
	t.Helper()
	recs := editAlone(t, paths[0], key, "s", count)
	for _, p := range paths[1:] {
		writeRecords(t, p, key, recs)
	}
}

// writeRecords commits recs of key to a new store at path.
func writeRecords(t *testing.T, path string, key collab.Key, recs []collab.Record) {
	t.Helper()
	db, err := storage.Open(path, storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Commit(context.Background(), key, recs, nil); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}

// aheadCopies makes copies of one single-node store of key at a and b,
// b's with two more edits by z, and starts Redis and node a over the
// first. It returns Redis, a and b's path.
func aheadCopies(t *testing.T, key collab.Key) (*testRedis, *hubNode, string) {
	t.Helper()
	dir := t.TempDir()
	aPath, bPath := filepath.Join(dir, "a.db"), filepath.Join(dir, "b.db")
	singleNodeStores(t, key, 2*farTail, aPath, bPath)
	editAlone(t, bPath, key, "z", 2)
	r, _ := startNodes(t, redistest.ServerOptions{}, nodeConfig{})
	return r, r.startNode(t, "a", farNodeConfig(aPath)), bPath
}

// editAlone opens the store at path on a single node, creates key there
// (as x) unless it exists, commits count edits by src, and returns the
// document's records.
func editAlone(t *testing.T, path string, key collab.Key, src string, count int) []collab.Record {
	t.Helper()
	db, err := storage.Open(path, storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	n := &hubNode{name: "alone", hub: collab.NewHub(collab.Options{Store: db})}
	if fetch(t, n, key).Version == 0 {
		submit(t, n, key, createSub("x", 1, "start"))
	}
	editN(t, n, key, src, 1, count)
	base, err := db.Base(ctx(t), key)
	if err != nil {
		t.Fatal(err)
	}
	recs, err := n.hub.Ops(ctx(t), key, base, 1<<62)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.hub.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	return recs
}

// TestNodeWithoutANoteJoinsATrimmedHistory: two nodes start on copies of
// one single-node store, which notes no epoch. a seeds Redis (the newest
// farTail records and a snapshot) and edits on, so Redis no longer holds
// the records from version 0. b must then follow the cluster's history,
// catch up and commit, with nothing forked: where its records and Redis's
// overlap they match, records of b's past Redis's head (its copy went on
// alone, and a made no edit) are put back at their own versions, and
// where nothing can be compared (all of b's lie below what Redis keeps)
// b installs Redis's snapshot over them and counts them lost. b used to offer
// its records again from version 0, which Redis no longer held, and fail
// every sync.
func TestNodeWithoutANoteJoinsATrimmedHistory(t *testing.T) {
	for _, tc := range []struct {
		name  string
		edits int  // a's edits after the seed
		below bool // b's records all lie below Redis's stream
		alone int  // edits b's copy made alone, past a's seed
	}{
		{"overlapping", farTail / 2, false, 0},
		{"below", 3 * farTail, true, 0},
		{"ahead", 0, false, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			aPath, bPath := filepath.Join(dir, "a.db"), filepath.Join(dir, "b.db")
			key := docKey(1)
			singleNodeStores(t, key, 2*farTail, aPath, bPath) // head 2*farTail+1
			if tc.alone > 0 {
				editAlone(t, bPath, key, "z", tc.alone)
			}
			r, _ := startNodes(t, redistest.ServerOptions{}, nodeConfig{})
			a := r.startNode(t, "a", farNodeConfig(aPath))
			raw := newClient(t, r.srv.Addr())
			var first uint64
			if tc.edits > 0 {
				editN(t, a, key, "a", 1, tc.edits)
				first = waitTrimmed(t, raw, r.prefix, key, fetch(t, a, key).Version)
				if bHead := uint64(2*farTail + 1); first == 0 || (first >= bHead) != tc.below {
					t.Fatalf("Redis's stream starts at version %d; b's head is %d", first, bHead)
				}
			} else {
				fetch(t, a, key) // a seeds Redis with its head
				_, first, _ = redisState(t, raw, r.prefix, key)
			}
			b := r.startNode(t, "b", farNodeConfig(bPath))
			editN(t, b, key, "b", 1, 2)
			base, err := b.db.Base(ctx(t), key) // past first when b installed Redis's snapshot
			if err != nil {
				t.Fatal(err)
			}
			sameFrom(t, key, max(first, base), a, b)
			st := b.cluster.Stats()
			if st.Reoffered != 0 {
				t.Fatalf("b: %+v, want nothing offered again", st)
			}
			// Records wholly below what Redis keeps cannot be shown to be
			// the history's: b counts them lost, forks at its base and
			// installs Redis's snapshot over them.
			if want := map[bool]uint64{false: 0, true: 2*farTail + 1}[tc.below]; st.Lost != want || (st.Installs == 1) != tc.below || (st.Forks == 1) != tc.below {
				t.Fatalf("b: %+v, want %d lost, and a fork and an install only when below", st, want)
			}
		})
	}
}

// TestNodeWithoutANoteOffersWhatItAloneHas: as above, but b's copy went
// on alone (two edits by z on the single node) before b joined. Where its
// records and Redis's overlap they match up to z's, so b offers z's edits
// again on top of the cluster's, forks there, and every node ends with
// each edit once.
func TestNodeWithoutANoteOffersWhatItAloneHas(t *testing.T) {
	key := docKey(1)
	r, a, bPath := aheadCopies(t, key)
	editN(t, a, key, "a", 1, farTail/2)
	first := waitTrimmed(t, newClient(t, r.srv.Addr()), r.prefix, key, fetch(t, a, key).Version)
	if first == 0 || first >= 2*farTail+1 {
		t.Fatalf("Redis's stream starts at version %d, not between 0 and b's copy's head", first)
	}
	b := r.startNode(t, "b", farNodeConfig(bPath))
	editN(t, b, key, "b", 1, 1)
	sameFrom(t, key, first, a, b)
	if st := b.cluster.Stats(); st.Reoffered != 2 || st.Forks != 1 || st.Lost != 0 {
		t.Fatalf("b: %+v, want z's 2 records offered again, 1 fork, nothing lost", st)
	}
	log := opLog(t, a, key) // a's store holds the records from version 0
	checkLog(t, log)
	hasOnce(t, log, "z", 1)
	hasOnce(t, log, "z", 2)
}

// TestNodeWithoutANoteOfAnotherDocumentFailsToSync: b's store holds
// another document under the same id (created and edited on another
// single node) from a base on, and Redis no longer keeps the records
// from version 0. Nothing b holds can be compared below its base, so it
// cannot tell what its records were made on: its sync fails with
// collab.ErrUnavailable and says why, and a goes on.
func TestNodeWithoutANoteOfAnotherDocumentFailsToSync(t *testing.T) {
	dir := t.TempDir()
	aPath, bPath := filepath.Join(dir, "a.db"), filepath.Join(dir, "b.db")
	key := docKey(1)
	singleNodeStores(t, key, 2*farTail, aPath)
	r, _ := startNodes(t, redistest.ServerOptions{}, nodeConfig{})
	a := r.startNode(t, "a", farNodeConfig(aPath))
	editN(t, a, key, "a", 1, farTail/2)
	head := fetch(t, a, key).Version
	first := waitTrimmed(t, newClient(t, r.srv.Addr()), r.prefix, key, head)
	// b's document: another create, then the edits of a store whose log
	// was trimmed to a base below first (InstallBase, as a far-behind
	// node's store is).
	db, err := storage.Open(bPath, storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	base := first - 1
	if err := db.InstallBase(ctx(t), key, collab.Snapshot{Version: base, Type: ot.URI, Data: "other"}, nil, ""); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	editAlone(t, bPath, key, "w", 4)
	b := r.startNode(t, "b", farNodeConfig(bPath))
	if _, err := b.hub.FetchWait(ctx(t), key); !errors.Is(err, collab.ErrUnavailable) || !strings.Contains(err.Error(), "differ from Redis's") {
		t.Fatalf("b: Fetch = %v, want ErrUnavailable saying its records differ from Redis's", err)
	}
	editN(t, a, key, "a", 1+uint64(farTail/2), 1)
	if s := fetch(t, a, key); s.Version != head+1 {
		t.Fatalf("a: %+v, want version %d", s, head+1)
	}
}

// TestNoteLessStoreJoinsAnEmptySeed: Redis holds the document at head 0
// (a node's first commit seeded it empty and its create never came: the
// node died, or the client gave up). A node on a single-node store of it
// (no note) compares an empty prefix, and puts its records back from 0.
func TestNoteLessStoreJoinsAnEmptySeed(t *testing.T) {
	bPath := filepath.Join(t.TempDir(), "b.db")
	key := docKey(1)
	singleNodeStores(t, key, 5, bPath)
	r, _ := startNodes(t, redistest.ServerOptions{}, nodeConfig{})
	initDoc(t, node(t, r.srv.Addr(), r.prefix, redisrelay.Options{}), key)
	b := r.startNode(t, "b", farNodeConfig(bPath))
	a := r.startNode(t, "a", farConfig())
	if s := fetch(t, b, key); s.Version != 6 {
		t.Fatalf("b: %+v, want its 6 records", s)
	}
	converged(t, key, a, b)
	if st := b.cluster.Stats(); st.Lost != 0 || st.Forks != 0 || st.Reoffered != 0 {
		t.Fatalf("b: %+v, want its records put back, nothing lost or forked", st)
	}
}

// TestEmptySessionOfAnUnknownEpochFollows: b's session follows an empty
// seed (head 0). Redis loses the document and a creates it anew, in an
// epoch whose lineage does not know b's. b holds no record, so there is
// nothing to compare or lose: it follows and catches up.
func TestEmptySessionOfAnUnknownEpochFollows(t *testing.T) {
	r, nodes := startNodes(t, redistest.ServerOptions{}, nodeConfig{}, "a", "b")
	a, b := nodes[0], nodes[1]
	key := docKey(1)
	followLostSeed(t, r, b, key)
	submit(t, a, key, createSub("x", 1, "hello"))
	if s := fetch(t, b, key); s.Data != "hello" {
		t.Fatalf("b: %+v, want a's document", s)
	}
}

// TestEmptySessionCreatesAfterRedisLostTheSeed: b's session follows an
// empty seed (head 0), and Redis then loses the document. The session
// must not keep the lost epoch: its first commit seeds the document
// anew, so the create goes in at once.
func TestEmptySessionCreatesAfterRedisLostTheSeed(t *testing.T) {
	r, nodes := startNodes(t, redistest.ServerOptions{}, nodeConfig{}, "b")
	b := nodes[0]
	key := docKey(1)
	followLostSeed(t, r, b, key)
	submit(t, b, key, createSub("x", 1, "hello"))
}

// followLostSeed seeds key empty in Redis, has n's session follow that
// seed at head 0 (a subscriber keeps it open), and then makes Redis lose
// the document's state.
func followLostSeed(t *testing.T, r *testRedis, n *hubNode, key collab.Key) {
	t.Helper()
	initDoc(t, node(t, r.srv.Addr(), r.prefix, redisrelay.Options{}), key)
	subscribe(t, n, key, newTestConn("w"))
	raw := newClient(t, r.srv.Addr())
	base := redisrelay.KeyBase(r.prefix, key)
	raw.Del(ctx(t), base+"meta", base+"log", base+"seqs", base+"snap")
}
