package web

import (
	"net"
	"syscall"
	"unsafe"
)

// waitReadable returns once nc has something to read, or an end of file
// or error to report, or its read deadline passed (the error then is the
// deadline's, as a read's would be). It reads nothing. A socket it cannot
// reach (not a syscall.Conn, as a TLS connection) returns at once.
func waitReadable(nc net.Conn) error {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return err
	}
	return rc.Read(readable)
}

// readable peeks at one byte without waiting: false (wait for the
// poller) only when there is nothing yet.
func readable(fd uintptr) bool {
	var b [1]byte
	_, _, e := syscall.Syscall6(syscall.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&b[0])), 1,
		syscall.MSG_PEEK|syscall.MSG_DONTWAIT, 0, 0)
	return e != syscall.EAGAIN && e != syscall.EWOULDBLOCK
}
