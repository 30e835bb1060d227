package rawio

import (
	"errors"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
	"time"
)

// Wrap gives a TCP connection raw reads and writes that keep the
// connection's deadlines and close, and leaves other connections as they
// are.
func TestWrap(t *testing.T) {
	a, b := tcpPair(t)
	c, ok := Wrap(a).(*Conn)
	if !ok {
		t.Fatalf("Wrap(*net.TCPConn) is a %T, want *rawio.Conn", Wrap(a))
	}
	if _, ok := any(c).(syscall.Conn); ok {
		t.Error("a rawio.Conn offers SyscallConn: go-redis would peek through it before every use")
	}
	if _, err := c.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	p := make([]byte, 4)
	if _, err := io.ReadFull(b, p); err != nil || string(p) != "ping" {
		t.Fatalf("peer read %q, %v", p, err)
	}
	if _, err := b.Write([]byte("pong")); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(c, p); err != nil || string(p) != "pong" {
		t.Fatalf("read %q, %v", p, err)
	}
	c.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	if _, err := c.Read(p); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Read past the Conn's deadline: %v, want os.ErrDeadlineExceeded", err)
	}
	c.Close()
	if _, err := c.Write(p); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Write after the Conn's Close: %v, want net.ErrClosed", err)
	}

	x, y := net.Pipe()
	defer x.Close()
	defer y.Close()
	if w := Wrap(x); w != x {
		t.Fatalf("Wrap(net.Pipe end) = %T, want it unchanged", w)
	}
}
