package loadgen

import (
	"os"
	"os/exec"
	"strings"
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

// TestShares splits CPU by command name: each name's time from base to
// now, per op and as a share of a core, its processes counted, a name
// that appeared since counted whole, sorted by name.
func TestShares(t *testing.T) {
	base := map[string]nameCPU{"coedit": {2 * time.Second, 2}, "redis-server": {time.Second, 1}}
	now := map[string]nameCPU{"coedit": {4 * time.Second, 2}, "redis-server": {1500 * time.Millisecond, 1}, "postgres": {500 * time.Millisecond, 3}}
	got := shares(base, now, 10, 1000)
	want := []ProcShare{
		{Name: "coedit", Procs: 2, CPUPercent: 20, CPUPerOpUS: 2000},
		{Name: "postgres", Procs: 3, CPUPercent: 5, CPUPerOpUS: 500},
		{Name: "redis-server", Procs: 1, CPUPercent: 5, CPUPerOpUS: 500},
	}
	if len(got) != len(want) {
		t.Fatalf("shares = %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("shares[%d] = %+v, want %+v", i, got[i], want[i])
		}
	}
}

// TestReadProcName reads this process's command name from /proc, as the
// kernel keeps it (the executable's name, cut to 15 bytes).
func TestReadProcName(t *testing.T) {
	s, err := readProc(os.Getpid(), false)
	if err != nil {
		t.Fatal(err)
	}
	comm, err := os.ReadFile("/proc/self/comm")
	if err != nil {
		t.Fatal(err)
	}
	if want := strings.TrimSuffix(string(comm), "\n"); s.name != want || want == "" {
		t.Errorf("readProc name = %q, want %q", s.name, want)
	}
}

// TestReadServerCountsAnExitedProcessAsLastSeen: one of the further PIDs
// (a database's worker, say) that exits during a run does not fail the
// samples after it; it counts the CPU it had when last seen.
func TestReadServerCountsAnExitedProcessAsLastSeen(t *testing.T) {
	busy := exec.Command("sh", "-c", "while :; do :; done")
	if err := busy.Start(); err != nil {
		t.Fatal(err)
	}
	g := &gen{o: Options{PID: os.Getpid(), PIDs: []int{busy.Process.Pid}}}
	var seen procSample
	deadline := time.Now().Add(10 * time.Second)
	for seen.byName["sh"].cpu == 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
		var err error
		if seen, err = g.readServer(false); err != nil {
			t.Fatal(err)
		}
	}
	busy.Process.Kill()
	busy.Wait()
	gone, err := g.readServer(false)
	if err != nil {
		t.Fatalf("readServer after a further process exited: %v", err)
	}
	if sh, was := gone.byName["sh"], seen.byName["sh"]; was.cpu == 0 || sh != was {
		t.Errorf("the exited process counts %+v, want %+v as last seen (and some CPU)", sh, was)
	}
	if gone.cpu < seen.cpu {
		t.Errorf("the total went back from %v to %v", seen.cpu, gone.cpu)
	}
}
