package storage

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"
)

// writeAt puts its bytes where it is told, raw or not, and reports a
// failed write as os.WriteAt does.
func TestWriteAt(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, procs := range []int{2, 1} { // raw, then through os.File
		prev := runtime.GOMAXPROCS(procs)
		base := int64(procs) * 1000
		if n, err := writeAt(f, []byte("hello"), base+10); n != 5 || err != nil {
			t.Fatalf("GOMAXPROCS %d: writeAt = %d, %v", procs, n, err)
		}
		if n, err := writeAt(f, []byte("hi"), base); n != 2 || err != nil {
			t.Fatalf("GOMAXPROCS %d: writeAt = %d, %v", procs, n, err)
		}
		runtime.GOMAXPROCS(prev)
		got := make([]byte, 15)
		if _, err := f.ReadAt(got, base); err != nil {
			t.Fatal(err)
		}
		if want := []byte("hi\x00\x00\x00\x00\x00\x00\x00\x00hello"); !bytes.Equal(got, want) {
			t.Fatalf("GOMAXPROCS %d: file holds %q, want %q", procs, got, want)
		}
	}
	if rawSyncing.Load() {
		t.Fatal("writeAt left rawSyncing set")
	}

	ro, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	prev := runtime.GOMAXPROCS(2)
	defer runtime.GOMAXPROCS(prev)
	_, err = writeAt(ro, []byte("x"), 0)
	var pe *fs.PathError
	if !errors.As(err, &pe) || !errors.Is(err, syscall.EBADF) || pe.Path != path {
		t.Fatalf("writeAt on a read-only file: %v, want a PathError of EBADF for %s", err, path)
	}
}
