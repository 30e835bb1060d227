package rawio

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"syscall"
	"testing"
	"time"
)

// tcpPair returns the two ends of a loopback TCP connection.
func tcpPair(t *testing.T) (a, b *net.TCPConn) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	type res struct {
		c   net.Conn
		err error
	}
	ch := make(chan res, 1)
	go func() {
		c, err := l.Accept()
		ch <- res{c, err}
	}()
	d, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	r := <-ch
	if r.err != nil {
		t.Fatal(r.err)
	}
	t.Cleanup(func() { d.Close(); r.c.Close() })
	return r.c.(*net.TCPConn), d.(*net.TCPConn)
}

// What Sock writes arrives whole and in order, also when it is more
// than the socket's buffers hold and the peer reads slowly (the write
// waits on the poller and goes on); what the peer writes is read; the
// peer's close reads as io.EOF.
func TestSockReadsAndWrites(t *testing.T) {
	a, b := tcpPair(t)
	s := New(a)
	if s == nil {
		t.Fatal("New(*net.TCPConn) = nil")
	}
	want := make([]byte, 8<<20)
	for i := range want {
		want[i] = byte(rand.IntN(256))
	}
	got := make(chan []byte, 1)
	go func() {
		var buf bytes.Buffer
		p := make([]byte, 4096)
		for buf.Len() < len(want) {
			n, err := b.Read(p)
			buf.Write(p[:n])
			if err != nil {
				break
			}
			if buf.Len() < 1<<20 {
				time.Sleep(time.Millisecond) // slow at first: the writer must wait
			}
		}
		got <- buf.Bytes()
	}()
	if n, err := s.Write(want); n != len(want) || err != nil {
		t.Fatalf("Write = %d, %v; want %d, nil", n, err, len(want))
	}
	if g := <-got; !bytes.Equal(g, want) {
		t.Fatalf("peer read %d bytes, not the %d written", len(g), len(want))
	}

	if _, err := b.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	b.CloseWrite()
	var in []byte
	p := make([]byte, 2)
	for {
		n, err := s.Read(p)
		in = append(in, p[:n]...)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("Read: %v", err)
		}
		if n == 0 {
			t.Fatal("Read = 0, nil into a buffer of 2: want bytes, io.EOF or an error")
		}
	}
	if string(in) != "hello" {
		t.Fatalf("read %q, want hello", in)
	}
	if n, err := s.Read(nil); n != 0 || err != nil {
		t.Fatalf("Read(nil) = %d, %v; want 0, nil", n, err)
	}
}

// The socket's deadlines hold for Sock's reads and writes, which then
// fail with os.ErrDeadlineExceeded (a write reports what it wrote), and
// after Close both fail with net.ErrClosed.
func TestSockDeadlinesAndClose(t *testing.T) {
	a, _ := tcpPair(t)
	s := New(a)

	a.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	if _, err := s.Read(make([]byte, 10)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Read past the deadline: %v, want os.ErrDeadlineExceeded", err)
	}

	// The buffer first: zeroing 64 MiB under -race on a busy machine
	// can take longer than the deadline, which then passes before the
	// first write (a clean-clone CI run at 23:30 wrote 0 bytes so).
	big := make([]byte, 64<<20) // more than the buffers of a peer that never reads
	a.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
	n, err := s.Write(big)
	if !errors.Is(err, os.ErrDeadlineExceeded) || n <= 0 || n >= len(big) {
		t.Fatalf("Write past the deadline = %d, %v; want some of %d, os.ErrDeadlineExceeded", n, err, len(big))
	}

	a.Close()
	if _, err := s.Read(make([]byte, 10)); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Read after Close: %v, want net.ErrClosed", err)
	}
	if _, err := s.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Write after Close: %v, want net.ErrClosed", err)
	}
}

// A peer that resets the connection makes the next write fail with the
// kernel's error, as a net.OpError.
func TestSockWriteToResetPeer(t *testing.T) {
	a, b := tcpPair(t)
	s := New(a)
	b.SetLinger(0)
	b.Close() // sends a reset
	var err error
	deadline := time.Now().Add(5 * time.Second)
	for err == nil && time.Now().Before(deadline) {
		_, err = s.Write([]byte("after the reset"))
		time.Sleep(time.Millisecond)
	}
	var op *net.OpError
	if !errors.As(err, &op) || !(errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)) {
		t.Fatalf("Write to a reset peer: %v, want a net.OpError of ECONNRESET or EPIPE", err)
	}
}
