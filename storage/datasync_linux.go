package storage

import (
	"io"
	"os"
	"runtime"
	"sync/atomic"
	"syscall"
	"unsafe"
)

// datasync flushes f's data, and the metadata needed to read it back
// (its size), to the disk: fdatasync(2), which skips the timestamps
// fsync would also write.
//
// With two Ps or more it is a raw system call: the goroutine keeps its P
// and its thread sleeps in the sync, as the runtime does not know a call
// is in progress. Through syscall.Syscall the runtime's monitor takes the
// P back after 20 µs, starts another thread to run it, and hands the P
// back when the sync ends: thread sleeps and wake-ups that cost more than
// the sync's own work on a VM, and that keep the monitor polling every
// 20 µs. Measured side by side (docs/decisions.md, "The log's sync as a
// raw system call"): closed loop 1 × 10 went from 2.8–3.0 to 1.7–1.8
// context switches per op, and 8,100–9,800 to 9,900–10,200 ops/s.
//
// What it costs: while a sync runs, that P runs nothing else (the other
// P takes its queued goroutines), and a garbage collection's
// stop-the-world waits for the sync to end. A disk that hangs in fsync
// would therefore stop the whole process at its next collection, where
// a blocking call would stop only the commits. With one P the raw call
// would stop everything for every sync, so it is not used there; and
// only one raw sync runs at a time in the process (rawSyncing), so that
// two stores syncing at once (the cluster tests run nodes in one
// process) cannot hold every P: the second syncs with a blocking call.
func datasync(f *os.File) error {
	raw := startRaw()
	if raw {
		defer rawSyncing.Store(false)
	}
	for {
		var err error
		if raw {
			if _, _, e := syscall.RawSyscall(syscall.SYS_FDATASYNC, f.Fd(), 0, 0); e != 0 {
				err = e
			}
		} else {
			err = syscall.Fdatasync(int(f.Fd()))
		}
		if err != syscall.EINTR {
			return err
		}
	}
}

// rawSyncing is set while a raw sync or write runs.
var rawSyncing atomic.Bool

// startRaw reports whether a file call may be raw (see datasync), and if
// so sets rawSyncing, which the caller clears when the call returns.
func startRaw() bool {
	return runtime.GOMAXPROCS(0) >= 2 && rawSyncing.CompareAndSwap(false, true)
}

// writeAt writes all of p to f at off: pwrite(2), raw under the same
// conditions as datasync's sync, for the reason web/rawio_linux.go
// gives for socket writes: a write through syscall.Syscall after the
// process went idle wakes the runtime's monitor and resets it to 20 µs
// polls, which the sync that follows then runs under. A write into the
// page cache does not block for long.
func writeAt(f *os.File, p []byte, off int64) (int, error) {
	if !startRaw() {
		return f.WriteAt(p, off)
	}
	defer rawSyncing.Store(false)
	fd := f.Fd()
	done := 0
	for done < len(p) {
		n, _, e := syscall.RawSyscall6(syscall.SYS_PWRITE64, fd, uintptr(unsafe.Pointer(&p[done])), uintptr(len(p)-done), uintptr(off+int64(done)), 0, 0)
		switch e {
		case 0:
			if n == 0 {
				return done, io.ErrUnexpectedEOF
			}
			done += int(n)
		case syscall.EINTR:
		default:
			return done, &os.PathError{Op: "write", Path: f.Name(), Err: e}
		}
	}
	return done, nil
}
