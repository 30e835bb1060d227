package storage

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/coedit/coedit/collab"
	"github.com/coedit/coedit/ot"
)

// TestMain lets the test binary act as a child process for the crash and
// lock tests (see childMain).
func TestMain(m *testing.M) {
	if mode := os.Getenv(childEnv); mode != "" {
		os.Exit(childMain(mode))
	}
	os.Exit(m.Run())
}

// tempPath returns a fresh file path in a temp dir, and registers a
// cleanup that, after every other cleanup of the test (which close its
// DBs), reopens the file and runs Check on it.
func tempPath(t testing.TB) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "coedit.db")
	t.Cleanup(func() {
		if _, err := os.Stat(path); err != nil {
			return // the test never created it
		}
		db, err := Open(path, Options{LockTimeout: 5 * time.Second})
		if err != nil {
			t.Errorf("reopen for check: %v", err)
			return
		}
		if err := db.Check(context.Background()); err != nil {
			t.Errorf("Check() after test = %v, want nil", err)
		}
		if err := db.Close(); err != nil {
			t.Errorf("Close() after check = %v", err)
		}
	})
	return path
}

// openAt opens path and closes it when the test ends.
func openAt(t testing.TB, path string, opts Options) *DB {
	t.Helper()
	db, err := Open(path, opts)
	if err != nil {
		t.Fatalf("Open(%s) = %v", path, err)
	}
	t.Cleanup(func() {
		if err := db.Close(); err != nil {
			t.Errorf("Close() = %v", err)
		}
	})
	return db
}

// openTest opens a DB in a fresh temp file, closed and checked when the
// test ends.
func openTest(t testing.TB, opts Options) *DB {
	t.Helper()
	return openAt(t, tempPath(t), opts)
}

func insertOp(text string) ot.Op {
	return ot.Op{{Kind: ot.KindInsert, N: utf8.RuneCountInString(text), Text: text}}
}

// editRec is an edit at version v inserting text at the start.
func editRec(v uint64, src string, seq uint64, text string) collab.Record {
	return collab.Record{Version: v, Src: src, Seq: seq, Kind: collab.OpEdit, Op: insertOp(text), Time: 1000 + int64(v)}
}

func createRec(v uint64, src string, seq uint64, data string) collab.Record {
	return collab.Record{Version: v, Src: src, Seq: seq, Kind: collab.OpCreate, Type: ot.URI, Data: data, Time: 1000 + int64(v)}
}

func deleteRec(v uint64, src string, seq uint64) collab.Record {
	return collab.Record{Version: v, Src: src, Seq: seq, Kind: collab.OpDelete, Time: 1000 + int64(v)}
}

// edits returns n edits from version v, each by src with seq = version+1.
func edits(v uint64, n int, src string) []collab.Record {
	recs := make([]collab.Record, n)
	for i := range recs {
		ver := v + uint64(i)
		recs[i] = editRec(ver, src, ver+1, fmt.Sprintf("e%d", ver))
	}
	return recs
}

func mustCommit(t testing.TB, db *DB, key collab.Key, recs []collab.Record, snap *collab.Snapshot) {
	t.Helper()
	if err := db.Commit(context.Background(), key, recs, snap); err != nil {
		t.Fatalf("Commit(%s, v%d+%d) = %v, want nil", key, firstVersion(recs), len(recs), err)
	}
}

func firstVersion(recs []collab.Record) uint64 {
	if len(recs) == 0 {
		return 0
	}
	return recs[0].Version
}

func mustLoad(t testing.TB, db *DB, key collab.Key) collab.DocState {
	t.Helper()
	st, err := db.Load(context.Background(), key)
	if err != nil {
		t.Fatalf("Load(%s) = %v", key, err)
	}
	return st
}

func mustOps(t testing.TB, db *DB, key collab.Key, from, to uint64) []collab.Record {
	t.Helper()
	recs, err := db.Ops(context.Background(), key, from, to)
	if err != nil {
		t.Fatalf("Ops(%s, %d, %d) = %v", key, from, to, err)
	}
	return recs
}

// waitFor polls cond until it holds; it fails the test if that takes
// unreasonably long, which only happens when the code under test hangs.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func equalRecords(a, b []collab.Record) bool {
	if len(a) == 0 && len(b) == 0 {
		return true
	}
	return reflect.DeepEqual(a, b)
}

// caughtUp has the applier move everything logged into bbolt, for tests
// that look at bbolt itself.
func caughtUp(t testing.TB, db *DB) {
	t.Helper()
	if err := db.catchUp(context.Background(), false, nil); err != nil {
		t.Fatalf("catching up with the log: %v", err)
	}
}
