package loadgen

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"time"
)

// clockTick is the unit of utime and stime in /proc/PID/stat. Linux
// exports USER_HZ = 100 on every architecture Go supports; Go has no
// sysconf(_SC_CLK_TCK) to ask.
const clockTick = 10 * time.Millisecond

// procSample is a process's CPU time so far and its resident memory.
type procSample struct {
	cpu time.Duration // user + system, all threads, dead ones included
	rss int64         // bytes
}

// readProc samples process pid from /proc: utime and stime from stat
// (fields 14 and 15, counted after the command name, which may itself
// hold spaces and parentheses) and VmRSS from status.
func readProc(pid int) (procSample, error) {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return procSample{}, err
	}
	end := bytes.LastIndexByte(stat, ')')
	if end < 0 {
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
	s := procSample{cpu: time.Duration(utime+stime) * clockTick}
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
	return s, nil
}
