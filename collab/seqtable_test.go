package collab

import (
	"fmt"
	"testing"
)

// TestSessionSeqTableBoundedByWindow: a session's seq table keeps a src
// while its last op is among the newest SeqWindow versions and holds at
// most twice that many entries, however many srcs commit while the
// session runs; it used to keep every src until the session stopped.
// Each src's newest seq wins, and a src that commits again stays.
func TestSessionSeqTableBoundedByWindow(t *testing.T) {
	const window = 10
	tab := newSeqTable(map[string]SeqEntry{"loaded": {Seq: 3, Version: 0}}, window, 1)
	for v := uint64(1); v <= 1000; v++ {
		src := fmt.Sprintf("src%d", v)
		if v%3 == 0 {
			src = "regular"
		}
		tab.add(Record{Version: v, Src: src, Seq: v})
		tab.prune(v + 1)
		if n := len(tab.last); n > 2*window {
			t.Fatalf("at head %d the table holds %d entries, want at most %d", v+1, n, 2*window)
		}
		// The srcs of the newest window versions are always there.
		for w := v; w+window > v && w >= 1; w-- {
			s := fmt.Sprintf("src%d", w)
			if w%3 == 0 {
				s = "regular"
			}
			if e, ok := tab.last[s]; !ok || e.Version < w {
				t.Fatalf("at head %d, src of version %d: %+v, %v; want its entry", v+1, w, e, ok)
			}
		}
	}
	if _, ok := tab.last["loaded"]; ok {
		t.Fatalf("a src loaded at version 0 is still in the table 1000 versions on")
	}
	if e := tab.last["regular"]; e.Seq != 999 || e.Version != 999 {
		t.Fatalf("regular = %+v, want its newest op (seq 999 at 999)", e)
	}
	// An older seq of a src (a remote record overtaken) does not replace
	// a newer one.
	tab.add(Record{Version: 1001, Src: "regular", Seq: 5})
	if e := tab.last["regular"]; e.Seq != 999 {
		t.Fatalf("regular after an older seq = %+v, want seq 999 kept", e)
	}
}
