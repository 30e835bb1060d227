package storage

import (
	"bufio"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coedit/coedit/collab"
)

// TestLogWrittenDirect commits, under SyncAlways, frames of many sizes:
// small ones that share blocks and cross their ends, one larger than the
// direct writer's block buffer (8 KiB), and one over 1 MiB (after which
// it lets the grown buffer go). The segment must then hold every frame
// in order and contiguous, with only zeros after the last, and a reopen
// must read every record back. It runs with direct I/O, which Linux's
// usual file systems (ext4, xfs, btrfs, tmpfs) allow, and once more with
// the buffered writer that a file system refusing it gets.
func TestLogWrittenDirect(t *testing.T) {
	for _, direct := range []bool{true, false} {
		name := map[bool]string{true: "direct", false: "buffered"}[direct]
		t.Run(name, func(t *testing.T) {
			directLog = direct
			defer func() { directLog = true }()
			path := tempPath(t)
			db, err := Open(path, Options{ApplyEvery: time.Hour})
			if err != nil {
				t.Fatal(err)
			}
			if db.wal.direct != direct {
				t.Fatalf("log written with direct I/O: %v, want %v", db.wal.direct, direct)
			}
			key := collab.Key{Collection: "c", ID: "direct"}
			mustCommit(t, db, key, []collab.Record{createRec(0, "s", 1, "start")}, nil)
			rng := rand.New(rand.NewPCG(1, 2))
			var texts []string
			for i := range 90 {
				n := 1 + rng.IntN(700)
				switch i {
				case 40:
					n = 20_000
				case 60:
					n = 1_200_000
				}
				texts = append(texts, strings.Repeat(string(rune('a'+i%26)), n))
				v := uint64(len(texts))
				mustCommit(t, db, key, []collab.Record{editRec(v, "s", v+1, texts[v-1])}, nil)
			}
			checkSegmentTail(t, path, 1+len(texts))
			if err := db.Close(); err != nil {
				t.Fatal(err)
			}
			db = openAt(t, path, Options{})
			st := mustLoad(t, db, key)
			if len(st.Ops) != len(texts)+1 {
				t.Fatalf("Load after reopen: %d ops, want %d", len(st.Ops), len(texts)+1)
			}
			for i, text := range texts {
				if got := st.Ops[i+1].Op[0].Text; got != text {
					t.Fatalf("op %d after reopen has %d bytes, want %d", i+1, len(got), len(text))
				}
			}
		})
	}
}

// checkSegmentTail reads the log's one segment: it must hold want frames
// with consecutive LSNs from 1, and nothing but zeros after the last.
func checkSegmentTail(t *testing.T, path string, want int) {
	t.Helper()
	segs, err := listSegments(path + walSuffix)
	if err != nil || len(segs) != 1 {
		t.Fatalf("segments %+v (%v), want one", segs, err)
	}
	f, err := os.Open(segs[0].path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	br := bufio.NewReader(f)
	fr := &frameReader{r: br}
	n := 0
	for {
		p, err := fr.next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("frame %d: %v", n+1, err)
		}
		lsn, _, err := decodeFrame(p)
		if err != nil || lsn != uint64(n+1) {
			t.Fatalf("frame %d: LSN %d (%v)", n+1, lsn, err)
		}
		n++
	}
	if n != want {
		t.Errorf("%d frames in the segment, want %d", n, want)
	}
	// The reader stopped at a zero header; the rest must be zeros too.
	rest, err := io.ReadAll(br)
	if err != nil {
		t.Fatal(err)
	}
	for i, b := range rest {
		if b != 0 {
			t.Fatalf("byte %d after the last frame's header is %#x, want zeros to the end", i, b)
		}
	}
	if st, _ := f.Stat(); st.Size()%logBlock != 0 {
		t.Errorf("segment of %d bytes, want whole blocks of %d", st.Size(), logBlock)
	}
}

// TestDirectWriteFailureIsFatal: when a direct write fails and writing
// its blocks back fails too (a descriptor open for reading fails both),
// what the disk holds is unknown, so the log is given up: that commit and
// every later one fail, and nothing acknowledged is lost.
func TestDirectWriteFailureIsFatal(t *testing.T) {
	path := tempPath(t)
	db := openAt(t, path, Options{})
	if !db.wal.direct {
		t.Fatal("the log is not written with direct I/O")
	}
	key := collab.Key{Collection: "c", ID: "fatal"}
	mustCommit(t, db, key, []collab.Record{createRec(0, "s", 1, "start")}, nil)
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
	ctx := context.Background()
	if err := db.Commit(ctx, key, []collab.Record{editRec(1, "s", 2, "x")}, nil); err == nil || !strings.Contains(err.Error(), "log write") {
		t.Errorf("Commit through a failing write = %v, want the write's error", err)
	}
	db.wal.f = good
	err = db.Commit(ctx, key, []collab.Record{editRec(1, "s", 2, "x")}, nil)
	if err == nil || !strings.Contains(err.Error(), "unusable") {
		t.Errorf("Commit after the log was given up = %v, want its error", err)
	}
	if errors.Is(err, collab.ErrVersionConflict) {
		t.Errorf("Commit after the log was given up = %v, a conflict", err)
	}
	if st := mustLoad(t, db, key); len(st.Ops) != 1 {
		t.Errorf("Load = %d ops, want the create alone", len(st.Ops))
	}
}
