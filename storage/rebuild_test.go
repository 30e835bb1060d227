package storage

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/coedit/coedit/collab"
	"github.com/coedit/coedit/ot"
)

// buildManyDocs creates, through Commit, n documents in collection "many"
// with ids doc0, doc1, ..., as the operator's manydocs.mjs does over
// HTTP: document i is created at time i, so docs order (by id: doc0,
// doc1, doc10, doc100, ...) and time order differ. It leaves the store
// closed cleanly.
func buildManyDocs(tb testing.TB, path string, n int) {
	tb.Helper()
	db, err := Open(path, Options{Sync: SyncNone})
	if err != nil {
		tb.Fatal(err)
	}
	// A bounded number of commits in flight: enough to fill group
	// commits, few enough that pending requests stay small.
	sem := make(chan struct{}, 4096)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	for i := range n {
		sem <- struct{}{}
		wg.Add(1)
		key := collab.Key{Collection: "many", ID: "doc" + strconv.Itoa(i)}
		rec := collab.Record{Version: 0, Src: "w", Seq: 1, Kind: collab.OpCreate, Type: ot.URI,
			Data: "document number " + strconv.Itoa(i), Time: int64(i)}
		db.CommitAsync(key, []collab.Record{rec}, nil, func(err error) {
			if err != nil {
				mu.Lock()
				if firstErr == nil {
					firstErr = err
				}
				mu.Unlock()
			}
			<-sem
			wg.Done()
		})
	}
	wg.Wait()
	if err := db.Close(); err != nil {
		tb.Fatal(err)
	}
	if firstErr != nil {
		tb.Fatal(firstErr)
	}
}

// BenchmarkCreateManyDocs measures buildManyDocs: creating many documents
// as fast as Commit takes them, so that each of the applier's
// transactions applies, and writes the index entries of, thousands of
// new documents (as the first flush after an Open writes those of every
// document the log replayed). ns/doc is per document.
//
//	go test -run '^$' -bench BenchmarkCreateManyDocs -benchtime 1x ./storage/
func BenchmarkCreateManyDocs(b *testing.B) {
	for _, n := range []int{30000, 100000} {
		b.Run(fmt.Sprintf("docs=%d", n), func(b *testing.B) {
			dir := b.TempDir()
			for i := 0; b.Loop(); i++ {
				buildManyDocs(b, filepath.Join(dir, fmt.Sprintf("%d.db", i)), n)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/doc")
		})
	}
}

// TestRebuiltIndexContent checks, key by key, both indexes that Open
// rebuilds after a crash from several pages of documents whose
// modification times are in no relation to their ids (with ties, which
// the id breaks), in collections whose names sort otherwise than their
// keys ("c" before "bb": the length comes first), some edited after the
// indexes' last flush and some deleted; and that later flushes into the
// rebuilt indexes keep them right.
func TestRebuiltIndexContent(t *testing.T) {
	ctx := context.Background()
	db := openTest(t, Options{Sync: SyncNone})
	db.indexEvery.Store(int64(time.Hour))
	const n = 3000
	colls := []string{"a", "bb", "c"}
	keys := make([]collab.Key, n)
	for i := range keys {
		keys[i] = collab.Key{Collection: colls[i%len(colls)], ID: fmt.Sprintf("d%d", i*7919%n)}
		rec := collab.Record{Version: 0, Src: "s", Seq: 1, Kind: collab.OpCreate, Type: ot.URI,
			Time: int64(i * 31 % 500)}
		mustCommit(t, db, keys[i], []collab.Record{rec}, nil)
	}
	listKeys(t, db, "") // flushes the index
	for i := 0; i < n; i += 7 {
		rec := editRec(1, "s", 2, "x")
		rec.Time = int64(1000 + i*13%300)
		if i%3 == 0 {
			rec = deleteRec(1, "s", 2)
		}
		mustCommit(t, db, keys[i], []collab.Record{rec}, nil)
	}
	// bbolt holds the commits (as after a crash whose log Open
	// replayed), not their index entries.
	caughtUp(t, db)
	crashed := filepath.Join(t.TempDir(), "crashed.db")
	if err := db.bolt.View(func(tx *bolt.Tx) error { return tx.CopyFile(crashed, 0o600) }); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(crashed+walSuffix, 0o700); err != nil { // bbolt holds every record
		t.Fatal(err)
	}

	db2 := openAt(t, crashed, Options{Sync: SyncNone})
	checkIndexContent(t, db2)
	if err := db2.Check(ctx); err != nil {
		t.Fatalf("Check after the rebuild = %v", err)
	}
	for i := 1; i < n; i += 5 {
		if i%7 == 0 {
			continue // edited or deleted above
		}
		rec := editRec(1, "s", 2, "y")
		rec.Time = int64(2000 + i%50)
		mustCommit(t, db2, keys[i], []collab.Record{rec}, nil)
	}
	listKeys(t, db2, "")
	checkIndexContent(t, db2)
	if err := db2.Check(ctx); err != nil {
		t.Fatalf("Check after flushing into the rebuilt indexes = %v", err)
	}
}

// TestIndexEntryOrder checks that putEntries sorts as bbolt orders the
// keys it puts; bbolt would put misordered keys in their places all the
// same, only slowly, so the indexes' content cannot show it.
func TestIndexEntryOrder(t *testing.T) {
	colls := []string{"a", "b", "bb", "c", "ab", strings.Repeat("x", 200)}
	ids := []string{"a", "a0", "b", "doc1", "doc10", "doc2", "\xff"}
	times := []int64{-1 << 62, -5, -1, 0, 1, 2, 1000, 1 << 62}
	var entries []indexEntry
	var keys []collab.Key
	var modified []int64
	for i := range 300 {
		key := collab.Key{Collection: colls[i%len(colls)], ID: ids[i%len(ids)] + strconv.Itoa(i%5)}
		m := times[i*5%len(times)]
		entries = append(entries, newIndexEntry(docKey(key), key, m))
		keys, modified = append(keys, key), append(modified, m)
	}
	for i := range entries {
		for j := range entries {
			a, b := entries[i], entries[j]
			want := bytes.Compare(recentKey(a.dk, modified[i]), recentKey(b.dk, modified[j]))
			if got := compareRecent(a, b); got != want {
				t.Fatalf("compareRecent(%s at %d, %s at %d) = %d, want %d", keys[i], modified[i], keys[j], modified[j], got, want)
			}
			want = bytes.Compare(collectionKey(keys[i], modified[i]), collectionKey(keys[j], modified[j]))
			if got := compareByCollection(a, b); got != want {
				t.Fatalf("compareByCollection(%s at %d, %s at %d) = %d, want %d", keys[i], modified[i], keys[j], modified[j], got, want)
			}
		}
	}
}

// checkIndexContent fails t unless each index of db holds exactly the
// entries its documents' metadata make, in bbolt's key order.
func checkIndexContent(t *testing.T, db *DB) {
	t.Helper()
	caughtUp(t, db)
	if err := db.bolt.View(func(tx *bolt.Tx) error {
		var wantRecent, wantByColl [][]byte
		if err := tx.Bucket(bucketDocs).ForEach(func(dk, v []byte) error {
			key, err := decodeDocKey(dk)
			if err != nil {
				return err
			}
			m, err := decodeMeta(v)
			if err != nil {
				return err
			}
			wantRecent = append(wantRecent, recentKey(dk, m.modified))
			wantByColl = append(wantByColl, collectionKey(key, m.modified))
			return nil
		}); err != nil {
			return err
		}
		for _, idx := range []struct {
			name []byte
			want [][]byte
		}{{bucketRecent, wantRecent}, {bucketByColl, wantByColl}} {
			slices.SortFunc(idx.want, bytes.Compare)
			var got [][]byte
			if err := tx.Bucket(idx.name).ForEach(func(k, _ []byte) error {
				got = append(got, bytes.Clone(k))
				return nil
			}); err != nil {
				return err
			}
			if !slices.EqualFunc(got, idx.want, bytes.Equal) {
				t.Errorf("index %s holds %d entries, want the %d the metadata make (first difference at %d)",
					idx.name, len(got), len(idx.want), firstDiff(got, idx.want))
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

func firstDiff(a, b [][]byte) int {
	for i := range min(len(a), len(b)) {
		if !bytes.Equal(a[i], b[i]) {
			return i
		}
	}
	return min(len(a), len(b))
}

// unmarkIndex removes the index-clean mark from the closed store at path,
// as a crash (kill -9, power loss) leaves it: the next Open rebuilds both
// indexes.
func unmarkIndex(tb testing.TB, path string) {
	tb.Helper()
	bdb, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		tb.Fatal(err)
	}
	defer bdb.Close()
	if err := bdb.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketMeta).Delete(keyIndexClean)
	}); err != nil {
		tb.Fatal(err)
	}
}

// BenchmarkOpenAfterCrash measures Open, which is most of a restart, on a
// store of many documents: after a clean Close, and after a crash (no
// index-clean mark), when Open rebuilds the modification-time indexes.
// COEDIT_BENCH_REBUILD_DOCS sets the sizes (comma-separated; default
// 30000,100000); COEDIT_BENCH_REBUILD_DIR, when set, keeps the stores
// there and reuses them on the next run, so a run can be measured (for
// example its peak RSS) without the cost of building them.
//
//	go test -run '^$' -bench BenchmarkOpenAfterCrash -benchtime 3x -benchmem ./storage/
func BenchmarkOpenAfterCrash(b *testing.B) {
	sizes := []int{30000, 100000}
	if s := os.Getenv("COEDIT_BENCH_REBUILD_DOCS"); s != "" {
		sizes = nil
		for f := range strings.SplitSeq(s, ",") {
			n, err := strconv.Atoi(f)
			if err != nil {
				b.Fatalf("COEDIT_BENCH_REBUILD_DOCS: %v", err)
			}
			sizes = append(sizes, n)
		}
	}
	dir := os.Getenv("COEDIT_BENCH_REBUILD_DIR")
	if dir == "" {
		dir = b.TempDir()
	}
	for _, n := range sizes {
		path := filepath.Join(dir, fmt.Sprintf("docs-%d.db", n))
		if _, err := os.Stat(path); err != nil {
			buildManyDocs(b, path, n)
		}
		for _, crashed := range []bool{false, true} {
			name := fmt.Sprintf("docs=%d/clean", n)
			if crashed {
				name = fmt.Sprintf("docs=%d/crashed", n)
			}
			b.Run(name, func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					b.StopTimer()
					if crashed {
						unmarkIndex(b, path)
					}
					b.StartTimer()
					db, err := Open(path, Options{Sync: SyncNone})
					b.StopTimer()
					if err != nil {
						b.Fatal(err)
					}
					if err := db.Close(); err != nil {
						b.Fatal(err)
					}
					b.StartTimer()
				}
			})
		}
	}
}
