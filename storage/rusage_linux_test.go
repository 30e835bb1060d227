package storage

import "syscall"

// rusage returns the process's CPU time in microseconds and its context
// switches (voluntary and involuntary, all threads) so far.
func rusage() (cpuMicros, switches int64) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, 0
	}
	cpu := ru.Utime.Sec*1e6 + int64(ru.Utime.Usec) + ru.Stime.Sec*1e6 + int64(ru.Stime.Usec)
	return cpu, ru.Nvcsw + ru.Nivcsw
}
