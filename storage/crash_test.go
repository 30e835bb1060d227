package storage

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/coedit/coedit/collab"
	"github.com/coedit/coedit/ot"
)

// The test binary runs as a child process when childEnv is set.
const (
	childEnv     = "COEDIT_STORAGE_CHILD" // the mode: "hold" or "crash"
	childPathEnv = "COEDIT_STORAGE_PATH"
	childSeedEnv = "COEDIT_STORAGE_SEED"
	// childApplyEnv, when set, is the child's Options.ApplyEvery.
	childApplyEnv = "COEDIT_STORAGE_APPLY_EVERY"
	// childQuietEnv, when set, makes the crash child's first two
	// documents quiet: a record at a time, 30 ms apart.
	childQuietEnv = "COEDIT_STORAGE_QUIET"
)

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// crashKeys are the documents the crash child writes.
var crashKeys = []collab.Key{
	{Collection: "notes", ID: "a"}, {Collection: "notes", ID: "b"}, {Collection: "notes", ID: "c"},
	{Collection: "wiki", ID: "a"}, {Collection: "wiki", ID: "home"}, {Collection: "wiki", ID: "x/y"},
}

// crashOptions are the child's store options: durable, with milestones
// frequent enough to appear.
var crashOptions = Options{MilestoneEvery: 20, LockTimeout: 10 * time.Second}

// crashRecord is the record the crash child commits to key at version v:
// a function of both, so the parent can check any record it finds.
func crashRecord(key collab.Key, v uint64) collab.Record {
	if v == 0 {
		return collab.Record{Version: 0, Src: crashSrc(key, 0), Seq: 1, Kind: collab.OpCreate,
			Type: ot.URI, Data: "start " + key.String(), Time: 0}
	}
	return collab.Record{Version: v, Src: crashSrc(key, v), Seq: v + 1, Kind: collab.OpEdit,
		Op: ot.Op{{Kind: ot.KindSkip, N: 3}, {Kind: ot.KindInsert, N: 1, Text: "é"},
			{Kind: ot.KindDelete, N: 1, Text: fmt.Sprintf("%s@%d", key, v)[:1]}},
		Time: int64(v)}
}

func crashSrc(key collab.Key, v uint64) string { return fmt.Sprintf("src-%s-%d", key.ID, v%5) }

// crashSnapshot is the snapshot the child stores at version v.
func crashSnapshot(key collab.Key, v uint64) collab.Snapshot {
	return collab.Snapshot{Version: v, Type: ot.URI, Data: fmt.Sprintf("snapshot of %s at %d", key, v)}
}

// childMain runs the child process for mode and returns its exit code.
//
// "hold" opens the store, prints "open", and closes it when stdin closes.
// "crash" commits to every crash key from its own goroutine, forever, and
// prints "commit <collection> <id> <head>" after each Commit returns; the
// parent kills it.
func childMain(mode string) int {
	path := os.Getenv(childPathEnv)
	opts := crashOptions
	if d, err := time.ParseDuration(os.Getenv(childApplyEnv)); err == nil {
		opts.ApplyEvery = d
	}
	db, err := Open(path, opts)
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 2
	}
	switch mode {
	case "hold":
		fmt.Println("open")
		io.Copy(io.Discard, os.Stdin)
		if err := db.Close(); err != nil {
			fmt.Fprintln(os.Stderr, "child:", err)
			return 2
		}
		return 0
	case "crash":
		seed, _ := strconv.ParseInt(os.Getenv(childSeedEnv), 10, 64)
		var out sync.Mutex
		errc := make(chan error, len(crashKeys))
		quiet := os.Getenv(childQuietEnv) != ""
		for i, key := range crashKeys {
			go func() { errc <- crashWriter(db, key, seed+int64(i), &out, quiet && i < 2) }()
		}
		err := <-errc
		fmt.Fprintln(os.Stderr, "child:", err)
		return 2
	}
	fmt.Fprintln(os.Stderr, "child: unknown mode", mode)
	return 2
}

// crashWriter commits to key until an error; a quiet one commits a
// record at a time, 30 ms apart.
func crashWriter(db *DB, key collab.Key, seed int64, out *sync.Mutex, quiet bool) error {
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(uint64(seed), 7))
	st, err := db.Load(ctx, key)
	if err != nil {
		return err
	}
	head := st.Snapshot.Version + uint64(len(st.Ops))
	for {
		n := 1 + rng.IntN(4)
		if quiet {
			n = 1
			time.Sleep(30 * time.Millisecond)
		}
		recs := make([]collab.Record, n)
		for i := range recs {
			recs[i] = crashRecord(key, head+uint64(i))
		}
		next := head + uint64(n)
		var snap *collab.Snapshot
		if rng.IntN(5) == 0 {
			s := crashSnapshot(key, next-uint64(rng.IntN(n+1)))
			snap = &s
		}
		if err := db.Commit(ctx, key, recs, snap); err != nil {
			return err
		}
		if rng.IntN(10) == 0 {
			if err := db.SaveSnapshot(ctx, key, crashSnapshot(key, next)); err != nil {
				return err
			}
		}
		head = next
		// One short write per line: a pipe write this small is atomic,
		// and the line leaves the process only after Commit returned.
		out.Lock()
		_, err := fmt.Fprintf(os.Stdout, "commit %s %s %d\n", key.Collection, key.ID, head)
		out.Unlock()
		if err != nil {
			return err
		}
	}
}

// TestCrash runs a child process that commits on several documents and
// kills it with SIGKILL at a random moment, several times over the same
// file. After each kill the file must pass Check, hold every commit the
// child reported, and hold nothing but well-formed commits.
func TestCrash(t *testing.T) {
	testCrash(t, 0, nil, nil)
}

// TestCrashWithQuietDocuments is TestCrash with two documents that get a
// record every 30 ms and an applier that runs every 20 ms: the busy
// documents are applied at each run, the quiet ones only when they have
// waited ten runs (apply.go), so most kills leave frames past the file's
// applied point that some documents have had already, and Open must
// replay each such frame for the others alone.
func TestCrashWithQuietDocuments(t *testing.T) {
	ahead := 0
	testCrash(t, 20*time.Millisecond, []string{childQuietEnv + "=1"}, func(path string, _ map[collab.Key]uint64) {
		point, metas := boltMetas(t, path)
		for _, m := range metas {
			if m.applied > point {
				ahead++
				return
			}
		}
	})
	if ahead == 0 {
		t.Errorf("no kill left a document applied past the file's applied point: the test did not test the replay that skips")
	}
}

// boltMetas reads, from the bbolt file alone (without the log), its
// applied point and the crash keys' metadata.
func boltMetas(t *testing.T, path string) (uint64, map[collab.Key]docMeta) {
	t.Helper()
	bdb, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer bdb.Close()
	var point uint64
	metas := map[collab.Key]docMeta{}
	err = bdb.View(func(tx *bolt.Tx) error {
		point, _ = binary.Uvarint(tx.Bucket(bucketMeta).Get(keyApplied))
		for _, key := range crashKeys {
			m, _, err := readMeta(tx, docKey(key))
			if err != nil {
				return err
			}
			metas[key] = m
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return point, metas
}

// TestCrashBeforeApply is TestCrash with an applier that never runs
// before the kill: every acknowledged commit is in the op log only, and
// Open must replay it (a kill between the log's fdatasync and the bbolt
// apply). The bbolt file alone, before that replay, must lack commits
// the child reported, or the test did not test the log.
func TestCrashBeforeApply(t *testing.T) {
	testCrash(t, time.Hour, nil, func(path string, reported map[collab.Key]uint64) {
		heads := boltHeads(t, path)
		for _, key := range crashKeys {
			if heads[key] < reported[key] {
				return
			}
		}
		t.Fatalf("bbolt alone holds every reported commit (%v, reported %v): the log was not needed", heads, reported)
	})
}

// boltHeads reads the heads of crashKeys from the bbolt file alone,
// without the log.
func boltHeads(t *testing.T, path string) map[collab.Key]uint64 {
	t.Helper()
	_, metas := boltMetas(t, path)
	heads := map[collab.Key]uint64{}
	for key, m := range metas {
		heads[key] = m.head
	}
	return heads
}

// testCrash runs TestCrash's rounds with the child's Options.ApplyEvery
// set to applyEvery (0: the default) and env added to its environment,
// calling before (if not nil) after each kill, before the store is opened
// again.
func testCrash(t *testing.T, applyEvery time.Duration, env []string, before func(path string, reported map[collab.Key]uint64)) {
	const rounds = 4
	seed := int64(20240607)
	rng := rand.New(rand.NewPCG(uint64(seed), 1))
	path := tempPath(t)
	reported := map[collab.Key]uint64{}
	for round := range rounds {
		delay := time.Duration(50+rng.IntN(400)) * time.Millisecond
		cmd := childCommand(t, "crash", path, seed+int64(round)*100)
		if applyEvery > 0 {
			cmd.Env = append(cmd.Env, childApplyEnv+"="+applyEvery.String())
		}
		cmd.Env = append(cmd.Env, env...)
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// Read the child's lines as fast as it writes them, so that it
		// never waits on its stdout and is killed mid-commit.
		var mu sync.Mutex
		var lines []string
		first := make(chan struct{})
		readDone := make(chan struct{})
		go func() {
			defer close(readDone)
			r := bufio.NewReader(stdout)
			for {
				line, err := r.ReadString('\n')
				if err != nil {
					return // a line without its newline was cut short
				}
				mu.Lock()
				lines = append(lines, line)
				if len(lines) == 1 {
					close(first)
				}
				mu.Unlock()
			}
		}()
		select {
		case <-first:
		case <-readDone:
			cmd.Wait()
			t.Fatalf("round %d: child exited before committing", round)
		}
		time.Sleep(delay)
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		<-readDone
		cmd.Wait()
		for _, line := range lines {
			var key collab.Key
			var head uint64
			if _, err := fmt.Sscanf(line, "commit %s %s %d\n", &key.Collection, &key.ID, &head); err != nil {
				t.Fatalf("round %d: child printed %q: %v", round, line, err)
			}
			if head < reported[key] {
				t.Fatalf("round %d: child reported %s at %d after %d", round, key, head, reported[key])
			}
			reported[key] = head
		}
		n := len(lines)
		t.Logf("round %d: killed after %v, %d commits reported", round, delay, n)
		if before != nil {
			before(path, reported)
		}
		verifyCrashStore(t, path, reported)
	}
}

// verifyCrashStore opens the store the crash child left and checks it.
func verifyCrashStore(t *testing.T, path string, reported map[collab.Key]uint64) {
	t.Helper()
	ctx := context.Background()
	db, err := Open(path, crashOptions)
	if err != nil {
		t.Fatalf("Open after kill = %v", err)
	}
	defer db.Close()
	if err := db.Check(ctx); err != nil {
		t.Fatalf("Check() after kill = %v", err)
	}
	for _, key := range crashKeys {
		st := mustLoad(t, db, key)
		head := st.Snapshot.Version + uint64(len(st.Ops))
		if head < reported[key] {
			t.Errorf("%s: head after kill is %d, but the child reported a commit up to %d", key, head, reported[key])
		}
		if st.Snapshot.Version > 0 && st.Snapshot != crashSnapshot(key, st.Snapshot.Version) {
			t.Errorf("%s: Load snapshot = %+v, want %+v", key, st.Snapshot, crashSnapshot(key, st.Snapshot.Version))
		}
		ops := mustOps(t, db, key, 0, head)
		wantSeqs := map[string]collab.SeqEntry{}
		for v := range head {
			want := crashRecord(key, v)
			if int(v) >= len(ops) || !equalRecords([]collab.Record{ops[v]}, []collab.Record{want}) {
				t.Fatalf("%s: record %d after kill is wrong or missing (have %d records), want %+v", key, v, len(ops), want)
			}
			wantSeqs[want.Src] = collab.SeqEntry{Seq: want.Seq, Version: v}
		}
		if head > 0 && !equalSeqs(st.Seqs, wantSeqs) {
			t.Errorf("%s: Load seqs = %v, want %v", key, st.Seqs, wantSeqs)
		}
		for _, v := range []uint64{head / 3, head / 2, head} {
			s, err := db.SnapshotAt(ctx, key, v)
			if err != nil {
				t.Fatal(err)
			}
			if s.Version > v || (s.Version > 0 && s != crashSnapshot(key, s.Version)) {
				t.Errorf("%s: SnapshotAt(%d) = %+v, want a crash snapshot at most %d", key, v, s, v)
			}
		}
	}
}

func equalSeqs(a, b map[string]collab.SeqEntry) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}
