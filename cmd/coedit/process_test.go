package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// coeditBin is the binary TestMain builds for the process tests.
var coeditBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "coedit-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	coeditBin = filepath.Join(dir, "coedit")
	build := exec.Command("go", "build", "-o", coeditBin, ".")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "go build:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// child is a `coedit serve` process.
type child struct {
	cmd    *exec.Cmd
	url    string // http://127.0.0.1:port
	logs   *lockedBuffer
	exited chan struct{} // closed when the process has exited
}

// lockedBuffer collects a child's log lines.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) add(line string) {
	l.mu.Lock()
	l.b.WriteString(line + "\n")
	l.mu.Unlock()
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

var urlLog = regexp.MustCompile(`msg="coedit serving" (?:node=\S+ )?url=(\S+)`)

// runChild starts `coedit args...` and waits for it to exit or to log
// the URL it serves; url is "" when it exited first.
func runChild(t *testing.T, args ...string) *child {
	t.Helper()
	return runChildUntil(t, urlLog, args...)
}

// runChildUntil is runChild waiting for a line that re matches instead,
// its first group being the URL.
func runChildUntil(t *testing.T, re *regexp.Regexp, args ...string) *child {
	t.Helper()
	c := &child{cmd: exec.Command(coeditBin, args...), logs: &lockedBuffer{}, exited: make(chan struct{})}
	stderr, err := c.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	c.cmd.Stdout = io.Discard
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	urls := make(chan string, 1)
	scanned := make(chan struct{})
	go func() {
		defer close(scanned)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			c.logs.add(sc.Text())
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				urls <- m[1]
			}
		}
	}()
	go func() {
		<-scanned // all output read before Wait closes the pipe
		c.cmd.Wait()
		close(c.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-c.exited:
		default:
			c.cmd.Process.Kill()
			<-c.exited
		}
		if t.Failed() {
			t.Logf("coedit %v logs:\n%s", args, c.logs)
		}
	})
	select {
	case c.url = <-urls:
	case <-c.exited:
	case <-time.After(30 * time.Second):
		t.Fatalf("coedit %v did not start within 30s; logs:\n%s", args, c.logs)
	}
	return c
}

// startServe runs `coedit serve` on a free loopback port over dataDir.
func startServe(t *testing.T, dataDir string, extra ...string) *child {
	t.Helper()
	c := runChild(t, append([]string{"serve", "--addr", "127.0.0.1:0", "--data", dataDir}, extra...)...)
	if c.url == "" {
		t.Fatalf("coedit serve exited at startup (%v); logs:\n%s", c.cmd.ProcessState, c.logs)
	}
	return c
}

// stop sends sig and waits for the exit, returning the exit code.
func (c *child) stop(t *testing.T, sig os.Signal) int {
	t.Helper()
	if err := c.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
	return c.wait(t)
}

func (c *child) wait(t *testing.T) int {
	t.Helper()
	select {
	case <-c.exited:
	case <-time.After(30 * time.Second):
		t.Fatalf("coedit did not exit within 30s; logs:\n%s", c.logs)
	}
	return c.cmd.ProcessState.ExitCode()
}

// fetchURL returns the status and body of GET url.
func fetchURL(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return resp.StatusCode, string(b)
}

// postJSON posts a JSON body and returns the status and body.
func postJSON(t *testing.T, url, body string) (int, string) {
	t.Helper()
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	return resp.StatusCode, string(b)
}

func TestServeProcessHealthAndSIGTERM(t *testing.T) {
	dir := t.TempDir()
	c := startServe(t, dir)
	status, body := fetchURL(t, c.url+"/health")
	var health struct{ Status string }
	if status != http.StatusOK || json.Unmarshal([]byte(body), &health) != nil || health.Status != "ok" {
		t.Fatalf("GET /health = %d %s, want 200 status ok", status, body)
	}
	if status, body := postJSON(t, c.url+"/api/docs/notes/kept/ops", `{"create":{"type":"text-unicode","data":"survives"}}`); status != http.StatusOK {
		t.Fatalf("POST create = %d %s", status, body)
	}
	if !strings.Contains(c.logs.String(), filepath.Join(dir, dataFile)) {
		t.Errorf("startup logs do not name the data file %s:\n%s", filepath.Join(dir, dataFile), c.logs)
	}

	// A second server on the same data directory fails clearly.
	second := runChild(t, "serve", "--addr", "127.0.0.1:0", "--data", dir)
	if code := second.wait(t); code != 1 || !strings.Contains(second.logs.String(), "locked by another process") {
		t.Fatalf("second serve on a locked data dir: exit %d, logs:\n%s\nwant exit 1 and \"locked by another process\"", code, second.logs)
	}

	if code := c.stop(t, syscall.SIGTERM); code != 0 {
		t.Fatalf("exit code after SIGTERM = %d, want 0; logs:\n%s", code, c.logs)
	}
	if !strings.Contains(c.logs.String(), "msg=stopped") {
		t.Errorf("logs after SIGTERM lack the stopped line:\n%s", c.logs)
	}

	// Restarted on the same data, the document is there.
	c2 := startServe(t, dir)
	status, body = fetchURL(t, c2.url+"/api/docs/notes/kept")
	if status != http.StatusOK || !strings.Contains(body, `"data":"survives"`) {
		t.Fatalf("after restart GET snapshot = %d %s", status, body)
	}
	if code := c2.stop(t, os.Interrupt); code != 0 {
		t.Fatalf("exit code after SIGINT = %d, want 0", code)
	}
}

func TestServeProcessBadFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"serve", "--sync", "sometimes"}, 2, "unknown sync mode"},
		{[]string{"serve", "--addr", "0.0.0.0:0", "--data", t.TempDir()}, 2, "--insecure"},
		{[]string{"serve", "--addr", "nonsense"}, 2, "--addr"},
		{[]string{"serve", "--advertise", "127.0.0.1:9"}, 2, "only a node of a cluster"},
		{[]string{"serve", "--addr", "0.0.0.0:0", "--insecure", "--redis", "127.0.0.1:1", "--advertise", "127.0.0.1:9"}, 2, "a loopback address"},
		{[]string{"frobnicate"}, 2, "unknown command"},
	} {
		c := runChild(t, tc.args...)
		if code := c.wait(t); code != tc.code || !strings.Contains(c.logs.String(), tc.want) {
			t.Errorf("coedit %v: exit %d, output %q; want exit %d mentioning %q", tc.args, code, c.logs, tc.code, tc.want)
		}
	}
}
