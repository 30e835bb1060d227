package rawio

import "net"

// Conn is a TCP connection whose Read and Write are a Sock's; the rest
// (deadlines, Close, the addresses) is the connection's own. It is for
// connections a library reads and writes itself, such as go-redis's
// (Wrap as its dialer's result). Reads must come from one goroutine at a
// time, and writes too, as for Sock.
//
// It offers no SyscallConn (nor the TCPConn's ReadFrom and WriteTo): a
// library that peeks at a pooled connection's socket through it before
// each use, as go-redis does (a recv with MSG_PEEK), makes that call
// through the runtime's own system call path, which wakes its monitor
// thread on an idle process: the cost Conn is for avoiding. Such a
// library then finds a connection the server closed at its first use,
// and go-redis retries the command on a new one. docs/decisions.md
// ("go-redis's health check") has the measurements.
type Conn struct {
	net.Conn // the *net.TCPConn
	s        *Sock
}

// Wrap returns nc with raw reads and writes when it is a TCP socket (on
// Linux), else nc itself.
func Wrap(nc net.Conn) net.Conn {
	tc, ok := nc.(*net.TCPConn)
	if !ok {
		return nc
	}
	s := New(tc)
	if s == nil {
		return nc
	}
	return &Conn{Conn: tc, s: s}
}

// Read reads through the Sock.
func (c *Conn) Read(p []byte) (int, error) { return c.s.Read(p) }

// Write writes through the Sock.
func (c *Conn) Write(p []byte) (int, error) { return c.s.Write(p) }
