package loadgen

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// clockTick is the unit of utime and stime in /proc/PID/stat. Linux
// exports USER_HZ = 100 on every architecture Go supports; Go has no
// sysconf(_SC_CLK_TCK) to ask.
const clockTick = 10 * time.Millisecond

// procSample is a process's CPU time so far, its resident memory and
// its threads' context switches.
type procSample struct {
	cpu time.Duration // user + system, all threads, dead ones included
	rss int64         // bytes
	// name is the process's command name (its comm, from stat); byName
	// is the cpu of a sum of processes (readServer) by command name.
	name   string
	byName map[string]nameCPU
	// switches are the voluntary and involuntary context switches of
	// each thread alive now, by "PID/TID".
	switches map[string]uint64
}

// switchesSince is how many context switches the threads made from base
// to now: each thread's count less its count at base (all of it for a
// thread started since). A thread that ended takes its count with it, so
// this may fall short, never over; Go and Node keep their threads.
func switchesSince(base, now map[string]uint64) uint64 {
	var n uint64
	for tid, c := range now {
		if b := base[tid]; c >= b {
			n += c - b
		}
	}
	return n
}

// readProc samples process pid from /proc: utime and stime from stat
// (fields 14 and 15, counted after the command name, which may itself
// hold spaces and parentheses) and VmRSS from status; with threads also
// each thread's context switches (a file per thread, so only the
// measurement window's two samples ask for them).
func readProc(pid int, threads bool) (procSample, error) {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return procSample{}, err
	}
	start, end := bytes.IndexByte(stat, '('), bytes.LastIndexByte(stat, ')')
	if start < 0 || end < start {
		return procSample{}, fmt.Errorf("/proc/%d/stat: no command name", pid)
	}
	fields := bytes.Fields(stat[end+1:])
	// fields[0] is field 3 (state); utime is field 14, stime field 15.
	if len(fields) < 13 {
		return procSample{}, fmt.Errorf("/proc/%d/stat: %d fields after the name, want at least 13", pid, len(fields))
	}
	utime, err1 := strconv.ParseInt(string(fields[11]), 10, 64)
	stime, err2 := strconv.ParseInt(string(fields[12]), 10, 64)
	if err1 != nil || err2 != nil {
		return procSample{}, fmt.Errorf("/proc/%d/stat: utime %q, stime %q", pid, fields[11], fields[12])
	}
	s := procSample{cpu: time.Duration(utime+stime) * clockTick, name: string(stat[start+1 : end])}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return procSample{}, err
	}
	for line := range bytes.Lines(status) {
		if rest, ok := bytes.CutPrefix(line, []byte("VmRSS:")); ok {
			f := bytes.Fields(rest) // "123456 kB"
			if len(f) >= 1 {
				kb, err := strconv.ParseInt(string(f[0]), 10, 64)
				if err == nil {
					s.rss = kb << 10
				}
			}
		}
	}
	if threads {
		s.switches, err = switches(pid)
	}
	return s, err
}

// nameCPU is the CPU time of the processes of one command name.
type nameCPU struct {
	cpu   time.Duration
	procs int
}

// shares returns each command name's CPU from base to now as
// ProcShares, by name, with CPU per op over ops acked in window seconds;
// a name first seen in now counts whole.
func shares(base, now map[string]nameCPU, window float64, ops uint64) []ProcShare {
	out := make([]ProcShare, 0, len(now))
	for name, n := range now {
		f := figures(n.cpu-base[name].cpu, window, ops, 0)
		out = append(out, ProcShare{Name: name, Procs: n.procs, CPUPercent: f.CPUPercent, CPUPerOpUS: f.CPUPerOpUS})
	}
	slices.SortFunc(out, func(a, b ProcShare) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// switches reads the context switches of process pid's threads, from
// each one's /proc/PID/task/TID/status. A thread that ends between the
// listing and the read is skipped.
func switches(pid int) (map[string]uint64, error) {
	dir := fmt.Sprintf("/proc/%d/task", pid)
	tasks, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	out := make(map[string]uint64, len(tasks))
	for _, t := range tasks {
		status, err := os.ReadFile(filepath.Join(dir, t.Name(), "status"))
		if err != nil {
			continue
		}
		var n uint64
		for line := range bytes.Lines(status) {
			rest, ok := bytes.CutPrefix(line, []byte("voluntary_ctxt_switches:"))
			if !ok {
				rest, ok = bytes.CutPrefix(line, []byte("nonvoluntary_ctxt_switches:"))
			}
			if ok {
				v, err := strconv.ParseUint(string(bytes.TrimSpace(rest)), 10, 64)
				if err != nil {
					return nil, fmt.Errorf("%s/%s/status: %q", dir, t.Name(), line)
				}
				n += v
			}
		}
		out[fmt.Sprintf("%d/%s", pid, t.Name())] = n
	}
	return out, nil
}

// storeBatches adds up coedit_store_write_batches_total from each URL's
// /metrics (the WebSocket URL's host, over HTTP); ok is false when a
// server does not answer with it (another server than coedit, or
// metrics behind authentication).
func storeBatches(ctx context.Context, urls []string) (total float64, ok bool) {
	const name = "coedit_store_write_batches_total "
	client := &http.Client{Timeout: 2 * time.Second}
	for _, u := range urls {
		p, err := url.Parse(u)
		if err != nil {
			return 0, false
		}
		p.Scheme = map[string]string{"ws": "http", "wss": "https"}[p.Scheme]
		p.Path, p.RawQuery = "/metrics", ""
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.String(), nil)
		if err != nil {
			return 0, false
		}
		resp, err := client.Do(req)
		if err != nil {
			return 0, false
		}
		body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			return 0, false
		}
		found := false
		for line := range bytes.Lines(body) {
			if v, ok := bytes.CutPrefix(line, []byte(name)); ok {
				f, err := strconv.ParseFloat(string(bytes.TrimSpace(v)), 64)
				if err != nil {
					return 0, false
				}
				total += f
				found = true
				break
			}
		}
		if !found {
			return 0, false
		}
	}
	return total, true
}
