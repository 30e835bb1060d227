package storage

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/coedit/coedit/collab"
)

func TestOptionsDefaults(t *testing.T) {
	got, err := Options{}.withDefaults()
	if err != nil {
		t.Fatalf("Options{}.withDefaults() = %v", err)
	}
	want := Options{Sync: SyncAlways, LockTimeout: 2 * time.Second, MilestoneEvery: 1000, SeqWindow: 10000,
		InitialMmapSize: 64 << 20, MaxBatch: 1024, ApplyEvery: 500 * time.Millisecond, CompanyWait: DefaultCompanyWait}
	if got != want {
		t.Errorf("Options{}.withDefaults() = %+v, want %+v", got, want)
	}
	// A negative CompanyWait turns the wait off, and so do SyncNone and MaxBatchDelay.
	for _, o := range []Options{{CompanyWait: -1}, {Sync: SyncNone}, {Sync: SyncNone, CompanyWait: time.Millisecond}, {MaxBatchDelay: time.Millisecond}} {
		if got, err := o.withDefaults(); err != nil || got.CompanyWait != 0 {
			t.Errorf("%+v.withDefaults() = CompanyWait %v, %v; want 0", o, got.CompanyWait, err)
		}
	}
}

func TestOpenInvalidOptions(t *testing.T) {
	for _, o := range []Options{
		{Sync: 7},
		{LockTimeout: -1},
		{InitialMmapSize: -1},
		{MaxBatch: -1},
		{MaxBatchDelay: -time.Second},
		{MilestoneEvery: 1<<48 + 1}, // the age windows would overflow
	} {
		path := filepath.Join(t.TempDir(), "x.db")
		db, err := Open(path, o)
		if err == nil {
			db.Close()
			t.Errorf("Open(%+v) = nil error, want an error", o)
		}
		if _, err := os.Stat(path); err == nil {
			t.Errorf("Open(%+v) created the file despite invalid options", o)
		}
	}
}

func TestParseSyncMode(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want SyncMode
		ok   bool
	}{
		{"always", SyncAlways, true},
		{"ALWAYS", SyncAlways, true},
		{"none", SyncNone, true},
		{"", 0, false},
		{"sometimes", 0, false},
	} {
		got, err := ParseSyncMode(tc.in)
		if (err == nil) != tc.ok || (tc.ok && got != tc.want) {
			t.Errorf("ParseSyncMode(%q) = %v, %v; want %v, ok=%v", tc.in, got, err, tc.want, tc.ok)
		}
		if tc.ok && got.String() != strings.ToLower(tc.in) {
			t.Errorf("SyncMode(%d).String() = %q, want %q", got, got.String(), strings.ToLower(tc.in))
		}
	}
}

// TestOpenFormat checks that Open initialises an empty file and refuses
// files that are not coedit stores of this format.
func TestOpenFormat(t *testing.T) {
	dir := t.TempDir()
	rawBolt := func(name string, fn func(*bolt.Tx) error) string {
		path := filepath.Join(dir, name)
		b, err := bolt.Open(path, 0o600, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := b.Update(fn); err != nil {
			t.Fatal(err)
		}
		if err := b.Close(); err != nil {
			t.Fatal(err)
		}
		return path
	}
	foreign := rawBolt("foreign.db", func(tx *bolt.Tx) error {
		_, err := tx.CreateBucket([]byte("other"))
		return err
	})
	future := rawBolt("future.db", func(tx *bolt.Tx) error {
		b, err := tx.CreateBucket(bucketMeta)
		if err != nil {
			return err
		}
		return b.Put(keyFormat, binary.AppendUvarint(nil, formatVersion+1))
	})
	empty := rawBolt("empty.db", func(*bolt.Tx) error { return nil })
	garbage := filepath.Join(dir, "garbage.db")
	if err := os.WriteFile(garbage, []byte(strings.Repeat("not a database ", 1000)), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		path    string
		wantErr error // nil: must open
	}{
		{empty, nil},
		{filepath.Join(dir, "new.db"), nil},
		{foreign, ErrFormat},
		{future, ErrFormat},
		{garbage, errAny},
		{filepath.Join(dir, "no", "such", "dir.db"), errAny},
	} {
		db, err := Open(tc.path, Options{})
		switch {
		case tc.wantErr == nil && err != nil:
			t.Errorf("Open(%s) = %v, want nil", tc.path, err)
		case tc.wantErr == nil:
			if err := db.Check(context.Background()); err != nil {
				t.Errorf("Check() on fresh %s = %v", tc.path, err)
			}
			db.Close()
		case err == nil:
			db.Close()
			t.Errorf("Open(%s) = nil, want %v", tc.path, tc.wantErr)
		case tc.wantErr != errAny && !errors.Is(err, tc.wantErr):
			t.Errorf("Open(%s) = %v, want %v", tc.path, err, tc.wantErr)
		case !strings.Contains(err.Error(), tc.path):
			t.Errorf("Open(%s) = %q, want the path in the message", tc.path, err)
		}
	}
}

var errAny = errors.New("any error")

// TestLockSameProcess shows that bbolt's flock is per open file: a second
// Open in the same process waits and fails with ErrLocked, and succeeds
// once the first DB is closed.
func TestLockSameProcess(t *testing.T) {
	path := tempPath(t)
	first, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	second, err := Open(path, Options{LockTimeout: 100 * time.Millisecond})
	if err == nil {
		second.Close()
		first.Close()
		t.Fatalf("second Open(%s) = nil, want ErrLocked", path)
	}
	if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), path) {
		t.Errorf("second Open(%s) = %q, want ErrLocked naming the path", path, err)
	}
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	openAt(t, path, Options{LockTimeout: 100 * time.Millisecond})
}

// TestLockOtherProcess opens the store in a child process and checks that
// Open here fails with ErrLocked until the child exits.
func TestLockOtherProcess(t *testing.T) {
	path := tempPath(t)
	cmd := childCommand(t, "hold", path, 0)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || line != "open\n" {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("child said %q, %v; want \"open\"", line, err)
	}
	db, err := Open(path, Options{LockTimeout: 100 * time.Millisecond})
	if err == nil {
		db.Close()
		t.Errorf("Open(%s) while a child holds it = nil, want ErrLocked", path)
	} else if !errors.Is(err, ErrLocked) {
		t.Errorf("Open(%s) while a child holds it = %v, want ErrLocked", path, err)
	}
	stdin.Close() // the child closes its DB and exits
	if err := cmd.Wait(); err != nil {
		t.Fatalf("child: %v", err)
	}
	openAt(t, path, Options{LockTimeout: 100 * time.Millisecond})
}

func TestClose(t *testing.T) {
	path := tempPath(t)
	db, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	key := collab.Key{Collection: "c", ID: "d"}
	ctx := context.Background()
	mustCommit(t, db, key, []collab.Record{createRec(0, "a", 1, "x")}, nil)
	if err := db.Close(); err != nil {
		t.Fatalf("Close() = %v", err)
	}
	if err := db.Close(); err != nil {
		t.Errorf("second Close() = %v, want nil", err)
	}
	for name, call := range map[string]func() error{
		"Commit":       func() error { return db.Commit(ctx, key, edits(1, 1, "a"), nil) },
		"CommitEmpty":  func() error { return db.Commit(ctx, key, nil, nil) },
		"SaveSnapshot": func() error { return db.SaveSnapshot(ctx, key, collab.Snapshot{Version: 1}) },
		"Load":         func() error { _, err := db.Load(ctx, key); return err },
		"Ops":          func() error { _, err := db.Ops(ctx, key, 0, 1); return err },
		"SnapshotAt":   func() error { _, err := db.SnapshotAt(ctx, key, 1); return err },
		"List":         func() error { _, err := db.List(ctx, "", 0); return err },
		"Check":        func() error { return db.Check(ctx) },
	} {
		if err := call(); !errors.Is(err, ErrClosed) {
			t.Errorf("%s after Close = %v, want ErrClosed", name, err)
		}
	}
}

// TestCloseWhileCommitting closes the store while many goroutines commit:
// each Commit either succeeds, and is then found after reopening, or fails
// with ErrClosed and is absent.
func TestCloseWhileCommitting(t *testing.T) {
	path := tempPath(t)
	db, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	const docs = 20
	heads := make([]chan uint64, docs)
	for i := range heads {
		heads[i] = make(chan uint64, 1)
		go func() {
			key := collab.Key{Collection: "c", ID: string(rune('a' + i))}
			v := uint64(0)
			for {
				err := db.Commit(context.Background(), key, edits(v, 1, "s"), nil)
				if err != nil {
					if !errors.Is(err, ErrClosed) {
						t.Errorf("Commit(%s, %d) during Close = %v, want nil or ErrClosed", key, v, err)
					}
					heads[i] <- v
					return
				}
				v++
			}
		}()
	}
	waitFor(t, "some commits", func() bool { return db.Stats().Commits >= 3*docs })
	if err := db.Close(); err != nil {
		t.Fatalf("Close() = %v", err)
	}
	acked := make([]uint64, docs)
	for i := range heads {
		acked[i] = <-heads[i]
	}
	reopened := openAt(t, path, Options{})
	for i, head := range acked {
		key := collab.Key{Collection: "c", ID: string(rune('a' + i))}
		if got := mustOps(t, reopened, key, 0, ^uint64(0)); !equalRecords(got, edits(0, int(head), "s")) {
			t.Errorf("after Close and reopen, Ops(%s) has %d records, want the %d that were acknowledged", key, len(got), head)
		}
	}
}

// TestReopen writes documents, closes and reopens the file, and finds
// everything as it was.
func TestReopen(t *testing.T) {
	path := tempPath(t)
	opts := Options{MilestoneEvery: 5}
	db := openAt(t, path, opts)
	ctx := context.Background()
	keys := []collab.Key{{Collection: "notes", ID: "a"}, {Collection: "notes", ID: "b"}, {Collection: "wiki", ID: "a"}}
	for i, key := range keys {
		mustCommit(t, db, key, []collab.Record{createRec(0, "s1", 1, "hello")}, nil)
		for v := uint64(1); v < uint64(12+i); v += 3 {
			recs := edits(v, 3, "s2")
			snap := &collab.Snapshot{Version: v + 3, Type: "t", Data: key.String()}
			mustCommit(t, db, key, recs, snap)
		}
	}
	type state struct {
		doc   collab.DocState
		ops   []collab.Record
		snaps []collab.Snapshot
	}
	capture := func(db *DB) (map[collab.Key]state, []collab.DocInfo) {
		m := map[collab.Key]state{}
		for _, key := range keys {
			st := state{doc: mustLoad(t, db, key), ops: mustOps(t, db, key, 0, 100)}
			for v := uint64(0); v < 20; v++ {
				s, err := db.SnapshotAt(ctx, key, v)
				if err != nil {
					t.Fatal(err)
				}
				st.snaps = append(st.snaps, s)
			}
			m[key] = st
		}
		list, err := db.List(ctx, "", 0)
		if err != nil {
			t.Fatal(err)
		}
		return m, list
	}
	before, listBefore := capture(db)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db = openAt(t, path, opts)
	after, listAfter := capture(db)
	if !reflect.DeepEqual(before, after) {
		t.Errorf("after reopen:\n got %+v\nwant %+v", after, before)
	}
	if !reflect.DeepEqual(listBefore, listAfter) || len(listAfter) != len(keys) {
		t.Errorf("List after reopen = %+v, want %+v (%d docs)", listAfter, listBefore, len(keys))
	}
	// The reopened store keeps appending where it left off.
	head := before[keys[0]].doc.Snapshot.Version + uint64(len(before[keys[0]].doc.Ops))
	mustCommit(t, db, keys[0], edits(head, 1, "s3"), nil)
	if err := db.Commit(ctx, keys[0], edits(head, 1, "s3"), nil); !errors.Is(err, collab.ErrVersionConflict) {
		t.Errorf("Commit at old head after reopen = %v, want ErrVersionConflict", err)
	}
}

// TestCheckFindsCorruption damages a store behind its back and checks that
// Check reports each problem.
func TestCheckFindsCorruption(t *testing.T) {
	key := collab.Key{Collection: "c", ID: "d"}
	dk := docKey(key)
	for _, tc := range []struct {
		name   string
		damage func(tx *bolt.Tx) error
	}{
		{"missing record", func(tx *bolt.Tx) error {
			return tx.Bucket(bucketDoc).Bucket(dk).Bucket(bucketOps).Delete(versionKey(1))
		}},
		{"garbage record", func(tx *bolt.Tx) error {
			return tx.Bucket(bucketDoc).Bucket(dk).Bucket(bucketOps).Put(versionKey(1), []byte{1, 200})
		}},
		{"head past log", func(tx *bolt.Tx) error {
			m, _, _ := readMeta(tx, dk)
			m.head++
			return tx.Bucket(bucketDocs).Put(dk, encodeMeta(&m))
		}},
		{"stale index", func(tx *bolt.Tx) error {
			return tx.Bucket(bucketRecent).Put(recentKey(dk, 1), []byte{})
		}},
		{"seq entry for another op", func(tx *bolt.Tx) error {
			return tx.Bucket(bucketDoc).Bucket(dk).Bucket(bucketSeqs).Put([]byte("a"), encodeSeqEntry(collab.SeqEntry{Seq: 9, Version: 1}))
		}},
		{"snapshot missing", func(tx *bolt.Tx) error {
			return tx.Bucket(bucketDoc).Bucket(dk).Bucket(bucketSnaps).DeleteBucket(versionKey(2))
		}},
		{"snapshot piece missing", func(tx *bolt.Tx) error {
			return tx.Bucket(bucketDoc).Bucket(dk).Bucket(bucketSnaps).Bucket(versionKey(2)).Delete(chunkKey(0))
		}},
		{"seq entry below the floor", func(tx *bolt.Tx) error {
			m, _, _ := readMeta(tx, dk)
			m.seqFloor = 4
			return tx.Bucket(bucketDocs).Put(dk, encodeMeta(&m))
		}},
		{"log size", func(tx *bolt.Tx) error {
			m, _, _ := readMeta(tx, dk)
			m.opBytes++
			return tx.Bucket(bucketDocs).Put(dk, encodeMeta(&m))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "c.db")
			db, err := Open(path, Options{})
			if err != nil {
				t.Fatal(err)
			}
			mustCommit(t, db, key, append([]collab.Record{createRec(0, "a", 1, "x")}, edits(1, 3, "a")...),
				&collab.Snapshot{Version: 2, Type: "t", Data: "y"})
			if err := db.Check(context.Background()); err != nil {
				t.Fatalf("Check() before damage = %v", err)
			}
			if err := db.bolt.Update(tc.damage); err != nil {
				t.Fatal(err)
			}
			if err := db.Check(context.Background()); !errors.Is(err, ErrCorrupt) {
				t.Errorf("Check() after %s = %v, want ErrCorrupt", tc.name, err)
			}
			db.Close()
		})
	}
}

// childCommand returns a command that runs this test binary as a child in
// the given mode (see childMain).
func childCommand(t testing.TB, mode, path string, seed int64) *exec.Cmd {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+mode, childPathEnv+"="+path, childSeedEnv+"="+itoa(seed))
	cmd.Stderr = os.Stderr
	return cmd
}
