package redistest

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// startLimit bounds how long a server may take to answer PING after it
// was started (or restarted, reloading its AOF).
const startLimit = 20 * time.Second

// ServerOptions configures StartServer. The zero value runs a server
// without persistence.
type ServerOptions struct {
	// AOF turns on the append-only file with appendfsync always, the
	// setting that loses no acknowledged write on kill -9.
	AOF bool
	// Args are extra redis-server arguments, such as "--cluster-enabled",
	// "yes".
	Args []string
}

// Server is one redis-server process the test started. Its methods are
// safe for concurrent use; they fail the test on error.
type Server struct {
	t    testing.TB
	bin  string
	dir  string
	port int
	opts ServerOptions

	mu sync.Mutex
	// proc is the running process, nil while stopped; done is closed by
	// the goroutine that waits for proc once it has exited.
	proc *os.Process
	done chan struct{}
}

// Binary returns the path of the named program (redis-server or
// redis-cli). When it is missing it skips t, or fails t when the
// environment variable CI is "true" or "1".
func Binary(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	if ci := os.Getenv("CI"); ci == "true" || ci == "1" {
		t.Fatalf("%s is not installed; CI must install it (apt-get install redis-server): %v", name, err)
	}
	t.Skipf("%s is not installed: %v", name, err)
	return ""
}

// StartServer starts a redis-server on a free loopback port in a fresh
// temp dir and waits until it answers PING. A cleanup stops it.
func StartServer(t testing.TB, opts ServerOptions) *Server {
	t.Helper()
	s := &Server{t: t, bin: Binary(t, "redis-server"), dir: t.TempDir(), opts: opts}
	var err error
	// A free port found by listening can be taken by another process
	// before redis-server binds it; try a few.
	for range 5 {
		s.port, err = freePort()
		if err != nil {
			t.Fatalf("redistest: free port: %v", err)
		}
		if err = s.start(); err == nil {
			t.Cleanup(s.Close)
			return s
		}
	}
	t.Fatalf("redistest: start redis-server: %v", err)
	return nil
}

// Addr returns the server's host:port.
func (s *Server) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)) }

// Dir returns the server's working dir (its AOF and log are there).
func (s *Server) Dir() string { return s.dir }

// Kill ends the server with SIGKILL and waits for it to exit, as a crash
// would: nothing is flushed beyond what its fsync policy already wrote.
func (s *Server) Kill() {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.kill()
}

// Pause stops the server with SIGSTOP: connections stay open and
// commands sit unanswered until Resume.
func (s *Server) Pause() { s.signal(syscall.SIGSTOP) }

// Resume continues a paused server with SIGCONT.
func (s *Server) Resume() { s.signal(syscall.SIGCONT) }

// Restart kills the server if it runs and starts it again on the same
// port and dir, so it reloads its AOF (with ServerOptions.AOF).
func (s *Server) Restart() {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.kill()
	if err := s.start(); err != nil {
		s.t.Fatalf("redistest: restart %s: %v", s.Addr(), err)
	}
}

// RestartEmpty kills the server, deletes its data and starts it again on
// the same port: Redis comes back with nothing.
func (s *Server) RestartEmpty() {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.kill()
	ents, err := os.ReadDir(s.dir)
	if err != nil {
		s.t.Fatalf("redistest: %v", err)
	}
	for _, e := range ents {
		if e.Name() == "redis.log" {
			continue
		}
		if err := os.RemoveAll(filepath.Join(s.dir, e.Name())); err != nil {
			s.t.Fatalf("redistest: %v", err)
		}
	}
	if err := s.start(); err != nil {
		s.t.Fatalf("redistest: restart %s empty: %v", s.Addr(), err)
	}
}

// Close stops the server (resuming it first if paused). It is safe to
// call more than once.
func (s *Server) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.kill()
}

// Log returns the server's log, for failure messages.
func (s *Server) Log() string {
	b, _ := os.ReadFile(filepath.Join(s.dir, "redis.log"))
	return string(b)
}

func (s *Server) signal(sig syscall.Signal) {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil {
		s.t.Fatalf("redistest: %v to a stopped server", sig)
	}
	if err := s.proc.Signal(sig); err != nil {
		s.t.Fatalf("redistest: %v: %v", sig, err)
	}
}

// kill stops the process; s.mu is held.
func (s *Server) kill() {
	if s.proc == nil {
		return
	}
	// SIGKILL ends a stopped process too; SIGCONT is not needed.
	_ = s.proc.Kill()
	<-s.done
	s.proc, s.done = nil, nil
}

// start runs redis-server and waits for PONG; s.mu is held (or s is not
// shared yet).
func (s *Server) start() error {
	args := []string{
		"--port", strconv.Itoa(s.port),
		"--bind", "127.0.0.1",
		"--dir", s.dir,
		"--logfile", "redis.log",
		"--daemonize", "no",
		"--save", "",
		"--protected-mode", "no",
	}
	if s.opts.AOF {
		args = append(args, "--appendonly", "yes", "--appendfsync", "always")
	} else {
		args = append(args, "--appendonly", "no")
	}
	args = append(args, s.opts.Args...)
	cmd := exec.Command(s.bin, args...)
	cmd.Dir = s.dir
	cmd.SysProcAttr = procAttr()
	if err := cmd.Start(); err != nil {
		return err
	}
	// This goroutine reaps the process; it ends when the process exits,
	// and kill (or the failure paths below) wait for it.
	done := make(chan struct{})
	var werr error
	go func() {
		werr = cmd.Wait()
		close(done)
	}()
	deadline := time.Now().Add(startLimit)
	for {
		err := ping(s.Addr())
		if err == nil {
			s.proc, s.done = cmd.Process, done
			return nil
		}
		select {
		case <-done:
			return fmt.Errorf("redis-server on port %d exited (%v): %s", s.port, werr, tail(s.Log()))
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			<-done
			return fmt.Errorf("redis-server on port %d not ready after %v: %v", s.port, startLimit, err)
		}
	}
}

// ping sends PING over a fresh connection and wants PONG (a server
// still loading its AOF answers -LOADING).
func ping(addr string) error {
	reply, err := command(addr, "PING")
	if err != nil {
		return err
	}
	if reply != "PONG" {
		return fmt.Errorf("PING: %s", reply)
	}
	return nil
}

// dial connects to addr with a short deadline for the whole exchange.
func dial(addr string) (*conn, error) {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return nil, err
	}
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	return &conn{Conn: c, r: bufio.NewReader(c)}, nil
}

// conn is a connection with a reader for replies.
type conn struct {
	net.Conn
	r *bufio.Reader
}

// readReply reads a status, error, integer or bulk string reply (a nil
// bulk string reads as "").
func readReply(c *conn) (string, error) {
	line, err := c.r.ReadString('\n')
	if err != nil {
		return "", err
	}
	line = strings.TrimRight(line, "\r\n")
	if line == "" {
		return "", fmt.Errorf("empty reply")
	}
	switch line[0] {
	case '+', ':':
		return line[1:], nil
	case '-':
		return "", fmt.Errorf("%s", line[1:])
	case '$':
		n, err := strconv.Atoi(line[1:])
		if n == -1 {
			return "", nil
		}
		if err != nil || n < 0 {
			return "", fmt.Errorf("bad bulk reply %q", line)
		}
		b := make([]byte, n+2)
		if _, err := io.ReadFull(c.r, b); err != nil {
			return "", err
		}
		return string(b[:n]), nil
	}
	return "", fmt.Errorf("unexpected reply %q", line)
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// tail returns the last lines of a log, for error messages.
func tail(log string) string {
	lines := strings.Split(strings.TrimRight(log, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-8):], "\n")
}
