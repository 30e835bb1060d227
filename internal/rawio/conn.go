package rawio

import "net"

// Conn is a TCP connection whose Read and Write are a Sock's; the rest
// (deadlines, Close, the addresses, SyscallConn, and ReadFrom and WriteTo,
// which io.Copy would use and which go through the net package) is the
// TCPConn's. It is for connections a library reads and writes itself,
// such as go-redis's (Wrap as its dialer's result). Reads must come from
// one goroutine at a time, and writes too, as for Sock.
type Conn struct {
	*net.TCPConn
	s *Sock
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
	return &Conn{TCPConn: tc, s: s}
}

// Read reads through the Sock.
func (c *Conn) Read(p []byte) (int, error) { return c.s.Read(p) }

// Write writes through the Sock.
func (c *Conn) Write(p []byte) (int, error) { return c.s.Write(p) }
