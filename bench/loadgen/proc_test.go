package loadgen

import (
	"os"
	"testing"
	"time"
)

// TestSwitchesSince checks the per-thread difference: a thread that
// ended is left out (it may only fall short), one that started since
// counts whole, and a count never goes below its base.
func TestSwitchesSince(t *testing.T) {
	base := map[string]uint64{"1/1": 100, "1/2": 50, "1/3": 70}
	now := map[string]uint64{"1/1": 130, "1/2": 50, "1/4": 5}
	if got := switchesSince(base, now); got != 35 {
		t.Errorf("switchesSince = %d, want 35 (30 on thread 1, 0 on 2, 5 on the new 4; 3 ended)", got)
	}
}

// TestReadProcSwitches reads this process's threads from /proc: each
// has a count, and sleeping makes them grow.
func TestReadProcSwitches(t *testing.T) {
	a, err := readProc(os.Getpid(), true)
	if err != nil {
		t.Fatal(err)
	}
	if len(a.switches) == 0 {
		t.Fatal("readProc: no threads' context switches")
	}
	for range 20 {
		time.Sleep(time.Millisecond)
	}
	b, err := readProc(os.Getpid(), true)
	if err != nil {
		t.Fatal(err)
	}
	if n := switchesSince(a.switches, b.switches); n == 0 {
		t.Errorf("no context switches counted across 20 sleeps (before %v, after %v)", a.switches, b.switches)
	}
}
