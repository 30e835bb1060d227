package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/coedit/coedit/storage"
)

// mountTmpfs mounts a tmpfs of size bytes at dir until the test ends. It
// skips the test where it cannot (not root, or no mount), and fails it
// under CI.
func mountTmpfs(t *testing.T, dir string, size int) {
	t.Helper()
	// CI runs as root (scripts/test.sh installs packages): there the
	// test must run, not skip.
	skip := t.Skipf
	if os.Getenv("CI") != "" {
		skip = t.Fatalf
	}
	if os.Geteuid() != 0 {
		skip("needs root to mount a small tmpfs, a disk that fills up")
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", fmt.Sprintf("size=%d", size), "tmpfs", dir).CombinedOutput(); err != nil {
		skip("cannot mount a tmpfs: %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", "-l", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
}

// waitLog waits up to d for c's logs to contain want, and fails the test
// if they do not.
func waitLog(t *testing.T, c *child, want string, d time.Duration) {
	t.Helper()
	for end := time.Now().Add(d); !strings.Contains(c.logs.String(), want); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(end) {
			t.Errorf("no %q logged within %v", want, d)
			return
		}
	}
}

// TestFullDiskLogsOnce fills the disk under a node's store: the store's
// refusal is logged once at ERROR and its recovery, once space is freed,
// once at WARN, while the WebSocket submits it refuses meanwhile, each
// closing its connection, log one line between them, not one each.
// Before, the store's state was never logged above INFO, so that at
// --log-level warn a node whose disk was full logged nothing, and each
// refused request logged a line: thousands a minute.
func TestFullDiskLogsOnce(t *testing.T) {
	dir := t.TempDir()
	// 8 MiB for the store, and 16 MiB taken until the test frees them,
	// enough for the store to move its whole log into bbolt and go on.
	mountTmpfs(t, dir, 24<<20)
	filler := filepath.Join(dir, "filler")
	if err := os.WriteFile(filler, make([]byte, 16<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	c := startServe(t, filepath.Join(dir, "data"), "--ops-per-second", "100000")
	const path = "/api/docs/c/d/ops"
	const big = 64 << 10
	if status, body := postJSON(t, c.url+path, fmt.Sprintf(`{"create":{"type":"text-unicode","data":%q}}`, strings.Repeat("a", big))); status != http.StatusOK {
		t.Fatalf("POST create = %d %s", status, body)
	}
	// Ops that replace the text, then smaller and smaller inserts, until
	// even the smallest is refused. (The text stays small: the store's
	// snapshots of it, once space is freed, fit.)
	var status int
	var body string
	posted := 0
	for _, size := range []int{big, 4 << 10, 256, 1} {
		for status = http.StatusOK; status == http.StatusOK; posted++ {
			if posted == 2000 {
				t.Fatalf("%d ops on an 8 MiB disk all committed", posted)
			}
			op := fmt.Sprintf(`{"op":[%q]}`, strings.Repeat("x", size))
			if size == big {
				op = fmt.Sprintf(`{"op":[%q,{"d":%d}]}`, strings.Repeat(string(rune('b'+posted%20)), size), size)
			}
			status, body = postJSON(t, c.url+path, op)
		}
	}
	if status != http.StatusServiceUnavailable || !strings.Contains(body, "ERR_UNAVAILABLE") {
		t.Fatalf("POST on a full disk = %d %s, want 503 ERR_UNAVAILABLE", status, body)
	}
	_, snap := fetchURL(t, c.url+"/api/docs/c/d")
	var head struct{ V uint64 }
	if err := json.Unmarshal([]byte(snap), &head); err != nil {
		t.Fatalf("GET snapshot: %v", err)
	}
	const refused = 30
	for i := range refused {
		ws, src, err := dialCrash(c.url, "")
		if err != nil {
			t.Fatal(err)
		}
		op := fmt.Sprintf(`{"a":"op","c":"c","d":"d","v":%d,"src":%q,"seq":1,"op":["z"]}`, head.V, src)
		if err := ws.WriteMessage(websocket.TextMessage, []byte(op)); err != nil {
			t.Fatal(err)
		}
		ws.SetReadDeadline(time.Now().Add(10 * time.Second))
		for {
			_, msg, err := ws.ReadMessage()
			var ce *websocket.CloseError
			if errors.As(err, &ce) && ce.Code == 1012 {
				break
			}
			if err != nil {
				t.Fatalf("WebSocket submit %d on a full disk: %v, want close 1012", i, err)
			}
			if strings.Contains(string(msg), src) {
				t.Fatalf("WebSocket submit %d on a full disk answered %s, want close 1012", i, msg)
			}
		}
		ws.Close()
	}
	waitLog(t, c, `level=ERROR msg="store refuses commits`, 3*time.Second)
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	waitLog(t, c, `level=WARN msg="store takes commits again"`, 5*time.Second)
	if status, body := postJSON(t, c.url+path, `{"op":["again"]}`); status != http.StatusOK {
		t.Errorf("POST once space is freed = %d %s, want 200", status, body)
	}
	logs := c.logs.String()
	if n := strings.Count(logs, `msg="store refuses commits`); n != 1 {
		t.Errorf("%d lines say the store refuses commits, want 1", n)
	}
	if n := strings.Count(logs, `msg="store takes commits again"`); n != 1 {
		t.Errorf("%d lines say the store takes commits again, want 1", n)
	}
	if n := strings.Count(logs, "closing websocket for a retryable failure"); n < 1 || n > 2 {
		t.Errorf("%d lines for %d WebSockets closed for a retryable failure, want 1 (2 if the test took over 10 s)", n, refused)
	}
	if code := c.stop(t, os.Interrupt); code != 0 {
		t.Errorf("exit code after SIGINT = %d, want 0", code)
	}
}

// TestWatchStore: over a store that fails, fails in another way, recovers
// and fails again, watchStore logs an ERROR line at each change of
// failure, a WARN line at the recovery, and nothing while the state
// stays the same.
func TestWatchStore(t *testing.T) {
	states := []error{nil, nil,
		fmt.Errorf("%w: 1 MiB", storage.ErrLogWrite), fmt.Errorf("%w: 2 MiB", storage.ErrLogWrite),
		storage.ErrLogFailed, storage.ErrLogFailed,
		nil, nil, errors.New("other"), errors.New("other")}
	var out bytes.Buffer
	log := slog.New(slog.NewTextHandler(&out, nil))
	ctx, cancel := context.WithCancel(context.Background())
	i := 0
	stalled := func() error {
		if i == len(states)-1 {
			cancel()
		}
		err := states[i]
		i++
		return err
	}
	watchStore(ctx, stalled, time.Millisecond, log)
	want := []string{
		`level=ERROR msg="store refuses commits: `,
		`level=ERROR msg="store refuses commits until the node is restarted: `,
		`level=WARN msg="store takes commits again"`,
		`level=ERROR msg="store refuses commits: `,
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	ok := len(lines) == len(want)
	for i := 0; ok && i < len(want); i++ {
		ok = strings.Contains(lines[i], want[i])
	}
	if !ok {
		t.Errorf("watchStore logged\n%s\nwant lines with %q", out.String(), want)
	}
}
