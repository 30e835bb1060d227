package collab_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/coedit/coedit/collab"
)

// TestWindowBytes: the in-memory window is bounded by the size of its
// records, not only by their count, so a few huge ops cannot pin
// gigabytes in a session. Records trimmed from it are read from the
// Store; with the store closed, only the ones still in memory can be
// served.
func TestWindowBytes(t *testing.T) {
	h, db := newHub(t, collab.Options{WindowBytes: 1 << 20})
	mustSubmit(t, h, docX, createSub("", 0, ""))
	big := strings.Repeat("x", 400<<10)
	for i := range 6 {
		mustSubmit(t, h, docX, editSub("", 0, uint64(i+1), ins(0, big)))
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	// The last record is in memory.
	c := newConn("c")
	c.fetch(h, docX, u64(6))
	if e := c.waitN(t, "snapshot", 1)[0]; e.err != nil || c.count("op") != 1 {
		t.Fatalf("fetch from 6 = %v with %d ops, want the last op from memory", e.err, c.count("op"))
	}
	// The first edits, 2.4 MB in all with them, are not.
	d := newConn("d")
	d.fetch(h, docX, u64(1))
	if e := d.waitN(t, "snapshot", 1)[0]; !errors.Is(e.err, collab.ErrOpsMissing) {
		t.Fatalf("fetch from 1 with the store closed = %v, want ErrOpsMissing (the window holds at most 2 MiB)", e.err)
	}
}
