// Package rawio reads and writes TCP sockets with raw system calls.
package rawio

import (
	"io"
	"net"
	"syscall"
	"unsafe"
)

// Sock reads and writes a TCP socket with raw system calls, through
// the descriptor's syscall.RawConn: the net package's locks and its wait
// for readiness (a read or write that would block returns false, and
// RawConn waits on the poller, honouring the deadlines) stay as they
// are; only the read(2) and write(2) themselves bypass the runtime's
// entersyscall and exitsyscall.
//
// Why: the runtime's monitor thread (sysmon) sleeps for good once every
// P is idle, and the first system call made through syscall.Syscall
// after that wakes it and resets its poll interval to 20 µs, which it
// keeps for at least the next millisecond. A server at light load goes
// idle between ops, so nearly every op woke it into another round of
// 20 µs polls: a thread wake-up and sleep each on a VM, where the socket
// calls themselves never block (the descriptor is non-blocking) and give
// the monitor nothing to do. docs/decisions.md ("Socket I/O and the log's write
// as raw system calls") has the measurements.
//
// The closures handed to RawConn are built once per socket (a method
// value escapes, a closure per call would be an allocation per call);
// their arguments and results travel in the struct. So reads must come
// from one goroutine at a time, and writes too; one reader and one writer
// may run at once (a WebSocket's reader, and its writes under web's
// batchConn.mu; go-redis's PubSub, whose receiver reads while Subscribe
// and Ping write under its lock).
type Sock struct {
	rc syscall.RawConn

	rp   []byte
	rn   int
	rerr syscall.Errno
	rfn  func(uintptr) bool

	wp   []byte
	werr syscall.Errno
	wfn  func(uintptr) bool
}

// New returns a Sock for nc, or nil when nc is not a TCP socket (the
// caller then uses nc's own Read and Write).
func New(nc net.Conn) *Sock {
	tc, ok := nc.(*net.TCPConn)
	if !ok {
		return nil
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return nil
	}
	s := &Sock{rc: rc}
	s.rfn = s.readFD
	s.wfn = s.writeFD
	return s
}

func (s *Sock) readFD(fd uintptr) bool {
	for {
		n, _, e := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&s.rp[0])), uintptr(len(s.rp)))
		switch e {
		case 0:
			s.rn = int(n)
			return true
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return false
		}
		s.rerr = e
		return true
	}
}

// Read reads into p like net.Conn's Read: io.EOF when the peer has
// closed its side.
func (s *Sock) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	s.rp, s.rn, s.rerr = p, 0, 0
	err := s.rc.Read(s.rfn)
	n, e := s.rn, s.rerr
	s.rp = nil
	switch {
	case err != nil:
		return 0, err // closed, or the read deadline passed
	case e != 0:
		return 0, &net.OpError{Op: "read", Net: "tcp", Err: e}
	case n == 0:
		return 0, io.EOF
	}
	return n, nil
}

func (s *Sock) writeFD(fd uintptr) bool {
	for len(s.wp) > 0 {
		n, _, e := syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(&s.wp[0])), uintptr(len(s.wp)))
		switch e {
		case 0:
			s.wp = s.wp[n:]
			continue
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return false
		}
		s.werr = e
		return true
	}
	return true
}

// Write writes all of p, waiting for room in the socket's buffer as
// net.Conn's Write does.
func (s *Sock) Write(p []byte) (int, error) {
	s.wp, s.werr = p, 0
	err := s.rc.Write(s.wfn)
	left, e := len(s.wp), s.werr
	s.wp = nil
	switch {
	case err != nil:
		return len(p) - left, err // closed, or the write deadline passed
	case e != 0:
		return len(p) - left, &net.OpError{Op: "write", Net: "tcp", Err: e}
	}
	return len(p), nil
}
