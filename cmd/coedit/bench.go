package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"os/signal"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/coedit/coedit/bench/loadgen"
)

// runBench is `coedit bench`: it drives one or more ShareDB-protocol
// servers (coedit, ShareDB itself, the bare relay) with bench/loadgen and
// prints what it measured; scripts/bench.sh runs it against all three.
func runBench(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("coedit bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, `Usage: coedit bench [flags] [ws://host:port/ws ...]

Drives ShareDB-protocol servers (or Hocuspocus, --protocol hocuspocus) with D documents x C clients (closed loop, or
open loop at --rate ops/s) plus idle subscribers, and reports acked ops/s,
ack and fan-out latency, errors, convergence, and with --pid the server's
CPU per op and memory. Clients of a document are spread over the URLs
round-robin (default ws://127.0.0.1:8080/ws).

Flags:
`)
		fs.PrintDefaults()
	}
	var o loadgen.Options
	fs.IntVar(&o.Docs, "docs", 100, "documents edited")
	fs.IntVar(&o.Clients, "clients", 4, "editing clients per document, one connection each (0: idle connections only)")
	fs.Float64Var(&o.Rate, "rate", 0, "total offered load in ops/s (open loop); 0 for closed loop, one op in flight per client")
	fs.IntVar(&o.Idle, "idle", 0, "extra connections that subscribe to a document (round-robin) and never edit")
	fs.DurationVar(&o.Warmup, "warmup", loadgen.DefaultWarmup, "load before measuring")
	fs.DurationVar(&o.Duration, "duration", loadgen.DefaultDuration, "how long the load is measured")
	fs.StringVar(&o.Collection, "collection", loadgen.DefaultCollection, "ShareDB collection of the documents")
	fs.StringVar(&o.Prefix, "prefix", "", "document id prefix (default: random per run)")
	fs.StringVar(&o.Protocol, "protocol", loadgen.ProtocolShareDB, "what the servers speak: sharedb, or hocuspocus (Hocuspocus's Yjs protocol; clients type at cursors of their own, no convergence check)")
	fs.BoolVar(&o.Affinity, "affinity", false, "with several URLs, put all of a document's clients on one of them (document i on URL i mod n), as a load balancer routing by document would; default: each document's clients spread over all")
	fs.BoolVar(&o.Relay, "relay", false, "the servers are the bare relay (cmd/barerelay): keep no text, skip the convergence check")
	pids := fs.String("pid", "", "server process to sample CPU and memory of, from /proc; a comma-separated list (a cluster's nodes and Redis) sums them")
	fs.Uint64Var(&o.Seed, "seed", 0, "random seed for the edits (0: random)")
	fs.IntVar(&o.DialParallel, "dial-parallel", loadgen.DefaultDialParallel, "connections opened at once during setup")
	fs.DurationVar(&o.AckTimeout, "ack-timeout", loadgen.DefaultAckTimeout, "how long an op may wait for its ack before the run fails")
	out := fs.String("out", "", "write the result as JSON to this file (- for stdout)")
	quiet := fs.Bool("quiet", false, "no progress line each second")
	cpuProfile := fs.String("cpuprofile", "", "write the generator's own CPU profile to this file (to check it is not the bottleneck)")
	if err := parseFlags(fs, args, "", stderr); err != nil {
		return err
	}
	o.URLs = fs.Args()
	for i, f := range strings.Split(*pids, ",") {
		if f == "" && *pids == "" {
			break
		}
		pid, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || pid <= 0 {
			return &usageError{fmt.Sprintf("bench: --pid: want process ids separated by commas, got %q", *pids)}
		}
		if i == 0 {
			o.PID = pid
		} else {
			o.PIDs = append(o.PIDs, pid)
		}
	}
	if len(o.URLs) == 0 {
		o.URLs = []string{"ws://127.0.0.1:8080/ws"}
	}
	if o.Warmup == 0 {
		o.Warmup = -1 // the flag's 0 means none; Options' zero means the default
	}
	if o.Duration <= 0 {
		return &usageError{fmt.Sprintf("bench: --duration: want a positive duration, got %v", o.Duration)}
	}
	if !*quiet {
		o.Progress = func(p loadgen.Progress) { fmt.Fprintln(stderr, p) }
	}

	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	res, err := loadgen.Run(ctx, o)
	if errors.Is(err, loadgen.ErrOptions) {
		return &usageError{"bench: " + err.Error()}
	}
	if res == nil {
		return err
	}
	printBench(stdout, res)
	if *out != "" {
		if werr := writeJSON(*out, stdout, res); werr != nil {
			err = errors.Join(err, werr)
		}
	}
	if err == nil && res.Converged != nil && !*res.Converged {
		err = fmt.Errorf("bench: the copies did not converge: %s", res.ConvergeIssue)
	}
	return err
}

func writeJSON(path string, stdout io.Writer, res *loadgen.Result) error {
	b, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return err
	}
	b = append(b, '\n')
	if path == "-" {
		_, err = stdout.Write(b)
		return err
	}
	return os.WriteFile(path, b, 0o644)
}

// printBench writes a human summary of res.
func printBench(w io.Writer, r *loadgen.Result) {
	mode := "closed loop"
	if r.Mode == "open" {
		mode = fmt.Sprintf("open loop at %.0f ops/s", r.OfferedOps)
	}
	target := strings.Join(r.URLs, " ")
	if r.Relay {
		target += " (bare relay)"
	}
	if r.Protocol == loadgen.ProtocolHocuspocus {
		target += " (Hocuspocus)"
	}
	fmt.Fprintf(w, "coedit bench: %s, %d docs x %d clients, %d idle, %v measured after %v warm-up, %s\n",
		mode, r.Docs, r.Clients, r.Idle, secs(r.DurationS), secs(r.WarmupS), target)
	fmt.Fprintf(w, "acked     %d ops, %.0f ops/s", r.Acked, r.OpsPerSec)
	if r.Mode == "open" {
		fmt.Fprintf(w, " (late %d, unsent %d)", r.Late, r.Unsent)
	}
	fmt.Fprintln(w)
	lat := func(name string, s loadgen.Summary) {
		fmt.Fprintf(w, "%-10s p50 %.2f ms  p90 %.2f ms  p99 %.2f ms  max %.2f ms  (%d samples)\n", name, s.P50, s.P90, s.P99, s.Max, s.Count)
	}
	lat("ack", r.Ack)
	lat("fan-out", r.Fanout)
	if r.FanoutCross != nil {
		lat("other node", *r.FanoutCross)
		lat("same node", *r.FanoutLocal)
	}
	if r.FanoutPending > 0 {
		fmt.Fprintf(w, "missing   %d deliveries never arrived (an op acknowledged but not sent to every other client)\n", r.FanoutPending)
	}
	if len(r.Errors) == 0 {
		fmt.Fprintln(w, "errors    none")
	} else {
		var parts []string
		for _, code := range slices.Sorted(maps.Keys(r.Errors)) {
			parts = append(parts, fmt.Sprintf("%s %d", code, r.Errors[code]))
		}
		fmt.Fprintf(w, "errors    %s\n", strings.Join(parts, ", "))
	}
	switch {
	case r.Converged == nil:
		fmt.Fprintln(w, "converged not checked")
	case *r.Converged:
		fmt.Fprintln(w, "converged yes: every client's copy equals the others' and a fresh fetch")
	default:
		fmt.Fprintf(w, "converged NO: %s\n", r.ConvergeIssue)
	}
	if s := r.Server; s != nil {
		fmt.Fprintf(w, "server    cpu %.0f%% of a core, %.1f µs per op, %.1f context switches per op, rss %.1f MiB\n", s.CPUPercent, s.CPUPerOpUS, s.CtxSwitchesPerOp, float64(s.RSSBytes)/(1<<20))
		// By process name only when there are several: one name holds it all.
		if len(r.ServerShares) > 1 {
			for _, sh := range r.ServerShares {
				fmt.Fprintf(w, "  of it   %s (%d): cpu %.0f%% of a core, %.1f µs per op\n", sh.Name, sh.Procs, sh.CPUPercent, sh.CPUPerOpUS)
			}
		}
	}
	if r.StoreBatchesPerOp != nil {
		fmt.Fprintf(w, "store     %.2f write batches per op (with --sync always, one fsync each)\n", *r.StoreBatchesPerOp)
	}
	fmt.Fprintf(w, "bench     cpu %.0f%% of a core, %.1f µs per op (this process)\n", r.Bench.CPUPercent, r.Bench.CPUPerOpUS)
	if r.IdleBytesPerConn != 0 {
		fmt.Fprintf(w, "idle      %.1f KiB of server memory per idle connection\n", r.IdleBytesPerConn/1024)
	}
}

func secs(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }
