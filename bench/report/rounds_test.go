package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/coedit/coedit/bench/loadgen"
)

// writeResult saves r as dir/name.json, as coedit bench --out does.
func writeResult(t *testing.T, dir, name string, r loadgen.Result) {
	t.Helper()
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// roundResult is a run's result with the figures the page shows; its
// context switches per op are cpu/50 and its store batches per op
// cpu/100, so that their medians follow the CPU's.
func roundResult(ops, cpu, p99, maxMS float64) loadgen.Result {
	yes := true
	batches := cpu / 100
	return loadgen.Result{Mode: "closed", OpsPerSec: ops, Acked: uint64(ops * 10), DurationS: 10,
		Ack:               loadgen.Summary{Count: uint64(ops * 10), P50: p99 / 4, P99: p99, Max: maxMS},
		Fanout:            loadgen.Summary{Count: uint64(ops * 30), P50: p99 / 4, P99: p99 + 1, Max: maxMS + 1},
		Server:            &loadgen.ProcFigures{CPUPerOpUS: cpu, CPUPercent: ops * cpu / 1e4, CtxSwitchesPerOp: cpu / 50},
		StoreBatchesPerOp: &batches,
		Converged:         &yes}
}

// TestLoadRounds checks that a scenario's rounds are read in round order
// (round 10 after round 2) and stand as one run of their medians, with
// the worst max latency, every round's errors, and a round that did not
// converge showing.
func TestLoadRounds(t *testing.T) {
	dir := t.TempDir()
	a, b, c := roundResult(9000, 60, 40, 90), roundResult(11000, 50, 30, 300), roundResult(10000, 70, 50, 80)
	b.Errors = map[string]uint64{"ACK_TIMEOUT": 2}
	no := false
	c.Converged, c.ConvergeIssue = &no, "doc 3 differs"
	writeResult(t, dir, "s2a.coedit@2", a)
	writeResult(t, dir, "s2a.coedit@10", b)
	writeResult(t, dir, "s2a.coedit@1", c)
	writeResult(t, dir, "s4.coedit", roundResult(400, 100, 20, 30))
	rs, err := load(dir)
	if err != nil {
		t.Fatal(err)
	}
	x := rs.one["s2a"]["coedit"]
	if x == nil || len(x.rounds) != 3 {
		t.Fatalf("s2a coedit: %+v, want 3 rounds", x)
	}
	if got := []float64{x.rounds[0].OpsPerSec, x.rounds[1].OpsPerSec, x.rounds[2].OpsPerSec}; got[0] != 10000 || got[1] != 9000 || got[2] != 11000 {
		t.Errorf("rounds' ops/s in order = %v, want [10000 9000 11000] (rounds 1, 2, 10)", got)
	}
	m := x.res
	if m.OpsPerSec != 10000 || m.Server.CPUPerOpUS != 60 || m.Ack.P99 != 40 || m.Fanout.P99 != 41 {
		t.Errorf("medians: ops/s %v, CPU/op %v, ack p99 %v, fan-out p99 %v; want 10000, 60, 40, 41", m.OpsPerSec, m.Server.CPUPerOpUS, m.Ack.P99, m.Fanout.P99)
	}
	if m.Server.CtxSwitchesPerOp != 1.2 || m.StoreBatchesPerOp == nil || *m.StoreBatchesPerOp != 0.6 {
		t.Errorf("medians: context switches per op %v, store batches per op %v; want 1.2 and 0.6", m.Server.CtxSwitchesPerOp, m.StoreBatchesPerOp)
	}
	if m.Ack.Max != 300 {
		t.Errorf("ack max = %v, want the largest round's, 300", m.Ack.Max)
	}
	if m.Errors["ACK_TIMEOUT"] != 2 {
		t.Errorf("errors = %v, want round 10's ACK_TIMEOUT 2", m.Errors)
	}
	if m.Converged == nil || *m.Converged || m.ConvergeIssue != "doc 3 differs" {
		t.Errorf("converged = %v %q, want false with round 1's issue", m.Converged, m.ConvergeIssue)
	}
	if s4 := rs.one["s4"]["coedit"]; s4 == nil || len(s4.rounds) != 0 || s4.res.OpsPerSec != 400 {
		t.Errorf("s4 run once: %+v", s4)
	}

	// A scenario with rounds and a file without one is refused: which
	// of them would the page show?
	writeResult(t, dir, "s2a.coedit", a)
	if _, err := load(dir); err == nil || !strings.Contains(err.Error(), "s2a.coedit") {
		t.Errorf("load with s2a.coedit.json beside its rounds = %v, want an error naming it", err)
	}
}

// TestMid checks the median of odd and even counts.
func TestMid(t *testing.T) {
	if got := mid([]float64{3, 1, 2}); got != 2 {
		t.Errorf("mid(3, 1, 2) = %v, want 2", got)
	}
	if got := mid([]float64{4, 1, 3, 2}); got != 2.5 {
		t.Errorf("mid(4, 1, 3, 2) = %v, want 2.5", got)
	}
}

// TestTargetsRoundByRound checks that a target run in rounds is judged on
// the median of the per-round ratios, not on the ratio of the medians:
// here coedit's median CPU per op is 0.65× ShareDB's median, but round by
// round it spent 0.60×, 1.30× and 0.75× of what ShareDB spent beside it,
// so the ⅔ target is missed.
func TestTargetsRoundByRound(t *testing.T) {
	co := []loadgen.Result{roundResult(2000, 120, 5, 9), roundResult(2000, 130, 5, 9), roundResult(2000, 300, 5, 9)}
	sd := []loadgen.Result{roundResult(2000, 200, 5, 9), roundResult(2000, 100, 5, 9), roundResult(2000, 400, 5, 9)}
	rs := &results{one: map[string]map[string]*run{"s1": {
		"coedit":  {scenario: "s1", target: "coedit", rounds: co, roundNos: []int{1, 2, 3}, res: mergeRounds(co)},
		"sharedb": {scenario: "s1", target: "sharedb", rounds: sd, roundNos: []int{1, 2, 3}, res: mergeRounds(sd)},
	}}, steps: map[string][]*run{}}
	rows := checkTargets(rs)
	if len(rows) == 0 || !strings.HasPrefix(rows[0].target, "server CPU per op ≤ ⅔") {
		t.Fatalf("first target row = %+v", rows)
	}
	r := rows[0]
	if !strings.Contains(r.measured, "coedit 130 µs, reference 200 µs (medians of 3 rounds); round by round 0.60×, 1.30×, 0.75×: median 0.75×") {
		t.Errorf("measured = %q", r.measured)
	}
	if r.verdict != "**missed**: needs 1.1× less" {
		t.Errorf("verdict = %q, want missed on the median of the rounds' ratios (0.75×)", r.verdict)
	}
	page := render(rs, meta{}, nil, nil)
	for _, want := range []string{"| 130 µs | 2.6 | 1.30 |", "Every round, 3 in all", "| coedit (`--sync always`) | 2,000 · 2,000 · 2,000 | 5.00 · 5.00 · 5.00 | 6.00 · 6.00 · 6.00 | 120 · 130 · 300 |"} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q:\n%s", want, page)
		}
	}
}

// TestRoundRatiosPairRoundNumbers checks that rounds are compared by
// their number: with coedit's round 2 and ShareDB's round 3 missing
// (failed runs leave no file), only round 1 is common, too few to judge
// round by round; with round 3 back on ShareDB's side, rounds 1 and 3 are.
func TestRoundRatiosPairRoundNumbers(t *testing.T) {
	r := func(cpu float64) loadgen.Result { return roundResult(2000, cpu, 5, 9) }
	rs := &results{one: map[string]map[string]*run{"s1": {
		"coedit":  {rounds: []loadgen.Result{r(100), r(300)}, roundNos: []int{1, 3}},
		"sharedb": {rounds: []loadgen.Result{r(200), r(400)}, roundNos: []int{1, 2}},
	}}}
	if got := rs.roundRatios("s1", "coedit", "s1", "sharedb", cpuPerOpUS); got != nil {
		t.Errorf("one common round: ratios %v, want none", got)
	}
	sd := rs.one["s1"]["sharedb"]
	sd.rounds, sd.roundNos = append(sd.rounds, r(150)), append(sd.roundNos, 3)
	got := rs.roundRatios("s1", "coedit", "s1", "sharedb", cpuPerOpUS)
	if len(got) != 2 || got[0] != 0.5 || got[1] != 2 {
		t.Errorf("rounds 1 and 3 in common: ratios %v, want [0.5 2] (100/200, 300/150)", got)
	}
}

// TestFailedRoundLeavesTheOthers checks that a round whose run failed
// (a file with nothing acknowledged and no server figures, as coedit
// bench writes when a run ends in an error) neither blanks the server's
// medians nor stops the targets from being judged round by round, and
// that its errors still show.
func TestFailedRoundLeavesTheOthers(t *testing.T) {
	failed := loadgen.Result{Mode: "closed", Errors: map[string]uint64{"ACK_TIMEOUT": 1}}
	co := []loadgen.Result{roundResult(20000, 50, 40, 90), failed, roundResult(22000, 60, 30, 80)}
	sd := []loadgen.Result{roundResult(6000, 150, 90, 190), roundResult(5000, 170, 95, 200), roundResult(7000, 160, 80, 180)}
	rs := &results{one: map[string]map[string]*run{"s2a": {
		"coedit":  {scenario: "s2a", target: "coedit", rounds: co, roundNos: []int{1, 2, 3}, res: mergeRounds(co)},
		"sharedb": {scenario: "s2a", target: "sharedb", rounds: sd, roundNos: []int{1, 2, 3}, res: mergeRounds(sd)},
	}}, steps: map[string][]*run{}}
	m := rs.one["s2a"]["coedit"].res
	if m.Server == nil || m.Server.CPUPerOpUS != 55 || m.Errors["ACK_TIMEOUT"] != 1 {
		t.Errorf("merged: server %+v, errors %v; want CPU per op 55 (the two rounds that ran) and the failed round's ACK_TIMEOUT", m.Server, m.Errors)
	}
	rows := checkTargets(rs)
	if len(rows) == 0 || !strings.Contains(rows[0].measured, "round by round 3.33×, 3.14×: median 3.24×") || rows[0].verdict != "met" {
		t.Errorf("closed loop target = %+v, want judged on rounds 1 and 3", rows)
	}
	page := render(rs, meta{}, nil, nil)
	if !strings.Contains(page, "| coedit (`--sync always`) | 20,000 · – · 22,000 |") {
		t.Errorf("rounds table lacks coedit's rounds with the failed one:\n%s", page)
	}
}
