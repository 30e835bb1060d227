package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/coedit/coedit/bench/loadgen"
	"github.com/coedit/coedit/bench/relay/relaytest"
)

// TestBenchCommandWritesResult runs `coedit bench` end to end against the
// bare relay in process (the generator itself is tested against a coedit
// node in bench/loadgen): flags reach the generator, the summary is
// printed, and --out holds the result as JSON.
func TestBenchCommandWritesResult(t *testing.T) {
	url := relaytest.Start(t)
	out := filepath.Join(t.TempDir(), "result.json")
	var stdout, stderr bytes.Buffer
	// Two URLs (the same relay twice, as two nodes of a cluster) and two
	// PIDs (this process twice), as scripts/bench.sh passes a cluster's.
	pid := strconv.Itoa(os.Getpid())
	code := run([]string{"bench", "--relay", "--docs", "2", "--clients", "2", "--idle", "1", "--rate", "100",
		"--warmup", "0", "--duration", "1200ms", "--pid", pid + "," + pid, "--out", out, url, url}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("coedit bench exit %d; stderr:\n%s", code, stderr.String())
	}
	if !strings.Contains(stdout.String(), "open loop at 100 ops/s, 2 docs x 2 clients, 1 idle") {
		t.Errorf("summary does not describe the run:\n%s", stdout.String())
	}
	if !strings.Contains(stdout.String(), "other node") || !strings.Contains(stdout.String(), "server    cpu") {
		t.Errorf("summary lacks the cross-node fan-out or the server CPU:\n%s", stdout.String())
	}
	if !strings.Contains(stderr.String(), "measure") {
		t.Errorf("no progress line on stderr:\n%s", stderr.String())
	}
	var res loadgen.Result
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &res); err != nil {
		t.Fatalf("--out is not a Result: %v\n%s", err, b)
	}
	if res.Acked == 0 || res.Mode != "open" || res.OfferedOps != 100 || !res.Relay || res.WarmupS != 0 {
		t.Errorf("--out: acked %d mode %s offered %v relay %v warmup %v; want some, open, 100, true, 0", res.Acked, res.Mode, res.OfferedOps, res.Relay, res.WarmupS)
	}
	if res.Server == nil || res.FanoutCross == nil || res.FanoutCross.Count == 0 {
		t.Errorf("--out: server %+v, cross-node fan-out %+v; want both", res.Server, res.FanoutCross)
	}
	// The two PIDs are one process, so its one name holds all the CPU.
	if sh := res.ServerShares; res.Server == nil || len(sh) != 1 || sh[0].Procs != 2 || sh[0].CPUPerOpUS != res.Server.CPUPerOpUS {
		t.Errorf("--out: server shares %+v, want one name of 2 processes with all of the server's CPU (%+v)", sh, res.Server)
	}
	if strings.Contains(stdout.String(), "  of it   ") {
		t.Errorf("summary splits the CPU of one process name:\n%s", stdout.String())
	}
	if res.StoreBatchesPerOp != nil || strings.Contains(stdout.String(), "write batches") {
		t.Error("store batches per op reported against the relay, which has no store; want none")
	}
}

// TestBenchCountsStoreBatches runs `coedit bench` against a coedit node
// in process, with --sync always: the result has the store's write
// batches per op from the node's /metrics, each one fsync. A batch holds
// one commit or more, and with one op in flight per client a commit
// holds one op or more, so there are more than none and at most one per
// op, give or take the window's edges (a batch counted whose op was
// acked just outside it): the bound allows a tenth.
func TestBenchCountsStoreBatches(t *testing.T) {
	n := startFlaggedNode(t, "--sync", "always", "--ops-per-second", "1000000")
	out := filepath.Join(t.TempDir(), "result.json")
	var stdout, stderr bytes.Buffer
	code := run([]string{"bench", "--docs", "2", "--clients", "2", "--warmup", "200ms", "--duration", "1s",
		"--pid", strconv.Itoa(os.Getpid()), "--out", out, "ws://" + n.addr() + "/ws"}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("coedit bench exit %d; stderr:\n%s", code, stderr.String())
	}
	var res loadgen.Result
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &res); err != nil {
		t.Fatal(err)
	}
	if res.Acked == 0 || res.StoreBatchesPerOp == nil {
		t.Fatalf("--out: acked %d, store batches per op %v; want ops and the node's figure", res.Acked, res.StoreBatchesPerOp)
	}
	if v := *res.StoreBatchesPerOp; v <= 0 || v > 1.1 {
		t.Errorf("store batches per op = %.3f over %d ops, want more than 0 and at most about 1", v, res.Acked)
	}
	if res.Server == nil || res.Server.CtxSwitchesPerOp <= 0 {
		t.Errorf("--out: server figures %+v, want the process's context switches per op", res.Server)
	}
	if !strings.Contains(stdout.String(), "write batches per op") {
		t.Errorf("summary lacks the store's batches:\n%s", stdout.String())
	}
}

func TestBenchCommandBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"--docs", "x"}, {"--duration", "0s"}, {"--clients", "-1"}, {"http://127.0.0.1:1/ws"}, {"--clients", "0"},
		{"--pid", "x"}, {"--pid", "1,"}, {"--pid", ",1"},
	} {
		var stdout, stderr bytes.Buffer
		if code := run(append([]string{"bench"}, args...), &stdout, &stderr); code != 2 {
			t.Errorf("coedit bench %q: exit %d, want 2 (usage); stderr %s", args, code, stderr.String())
		}
	}
}

// TestPrintBenchSplitsCPUByName: the summary gives each process name's
// share of the server's CPU when there are several names.
func TestPrintBenchSplitsCPUByName(t *testing.T) {
	res := &loadgen.Result{
		Server: &loadgen.ProcFigures{CPUPercent: 120, CPUPerOpUS: 600},
		ServerShares: []loadgen.ProcShare{
			{Name: "coedit", Procs: 2, CPUPercent: 90, CPUPerOpUS: 450},
			{Name: "redis-server", Procs: 1, CPUPercent: 30, CPUPerOpUS: 150},
		},
	}
	var out strings.Builder
	printBench(&out, res)
	for _, want := range []string{
		"  of it   coedit (2): cpu 90% of a core, 450.0 µs per op\n",
		"  of it   redis-server (1): cpu 30% of a core, 150.0 µs per op\n",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("summary lacks %q:\n%s", want, out.String())
		}
	}
}
