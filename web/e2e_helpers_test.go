package web_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
)

// Helpers of the browser tests: the browser, the server, and a tab's
// page driven through chromedp.

// chromiumPath finds the browser. Without one the test fails under CI
// (env CI set) and is skipped elsewhere.
func chromiumPath(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("COEDIT_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("chromium not found (install Debian's chromium, or set COEDIT_CHROMIUM); the browser test cannot be skipped under CI")
	}
	t.Skip("chromium not found; install it (apt-get install chromium) to run the browser test")
	return ""
}

// coeditBinary builds cmd/coedit into a temp dir (or takes $COEDIT_BIN).
func coeditBinary(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("COEDIT_BIN"); p != "" {
		return p
	}
	out := filepath.Join(t.TempDir(), "coedit")
	cmd := exec.Command("go", "build", "-o", out, "github.com/coedit/coedit/cmd/coedit")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build cmd/coedit: %v\n%s", err, b)
	}
	return out
}

// lockedBuffer collects a process's output for failure messages.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// serveCoedit starts `coedit serve` on a free loopback port and returns
// its base URL once /health answers. A cleanup stops it with SIGTERM.
func serveCoedit(t *testing.T, bin string, extra ...string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	var logs lockedBuffer
	cmd := exec.Command(bin, append([]string{"serve", "--addr", addr, "--data", t.TempDir()}, extra...)...)
	cmd.Stdout = &logs
	cmd.Stderr = &logs
	if err := cmd.Start(); err != nil {
		t.Fatalf("start coedit serve: %v", err)
	}
	exited := make(chan struct{})
	go func() {
		cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(15 * time.Second):
			cmd.Process.Kill()
			<-exited
			t.Errorf("coedit serve did not stop on SIGTERM; log:\n%s", logs.String())
		}
		if t.Failed() {
			t.Logf("coedit serve log:\n%s", logs.String())
		}
	})
	base := "http://" + addr
	deadline := time.Now().Add(20 * time.Second)
	for {
		select {
		case <-exited:
			t.Fatalf("coedit serve exited early:\n%s", logs.String())
		default:
		}
		if res, err := http.Get(base + "/health"); err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return base
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("coedit serve not healthy after 20s:\n%s", logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func artifactsDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("COEDIT_ARTIFACTS")
	if dir == "" {
		dir = filepath.Join("..", "artifacts")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("artifacts dir: %v", err)
	}
	abs, _ := filepath.Abs(dir)
	return abs
}

// snapshot is GET /api/docs/{c}/{id}.
type snapshot struct {
	V    uint64  `json:"v"`
	Data string  `json:"data"`
	Type *string `json:"type"`
}

func serverSnapshot(t *testing.T, base, coll, id string) snapshot {
	t.Helper()
	res, err := http.Get(base + "/api/docs/" + coll + "/" + id)
	if err != nil {
		t.Fatalf("GET snapshot: %v", err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("GET snapshot = %d %s", res.StatusCode, body)
	}
	var s snapshot
	if err := json.Unmarshal(body, &s); err != nil {
		t.Fatalf("snapshot JSON: %v (%s)", err, body)
	}
	return s
}

// submit posts one op through the HTTP API.
func submit(t *testing.T, base, coll, id string, body any) {
	t.Helper()
	b, _ := json.Marshal(body)
	res, err := http.Post(base+"/api/docs/"+coll+"/"+id+"/ops", "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatalf("POST op: %v", err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		out, _ := io.ReadAll(res.Body)
		t.Fatalf("POST op = %d %s", res.StatusCode, out)
	}
}

// tab is one person's page.
type tab struct {
	t      *testing.T
	name   string
	ctx    context.Context
	cancel context.CancelFunc // closes the tab (nil: the test's end does)
}

func (p *tab) do(steps ...chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	if err := chromedp.Do(p.ctx, steps...); err != nil {
		p.t.Fatalf("%s: %v", p.name, err)
	}
}

// eval evaluates a JS expression in the page, decoding its value into T.
func eval[T any](p *tab, expr string) T {
	p.t.Helper()
	v, err := chromedp.Run(p.ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		p.t.Fatalf("%s: eval %s: %v", p.name, expr, err)
	}
	return v
}

// waitJS polls a JS predicate until it is truthy.
func (p *tab) waitJS(what, expr string, timeout time.Duration) {
	p.t.Helper()
	_, err := chromedp.Run(p.ctx, chromedp.Poll[chromedp.Void](expr, chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(timeout)))
	if err != nil {
		state := eval[string](p, `JSON.stringify({state: coedit.conn.state, v: coedit.doc.version, pending: coedit.doc.unacknowledged, len: coedit.doc.text.s.length})`)
		p.t.Fatalf("%s: waiting for %s: %v (page: %s)", p.name, what, err, state)
	}
}

func (p *tab) screenshot(dir, file string) {
	p.t.Helper()
	buf, err := chromedp.Run(p.ctx, chromedp.CaptureScreenshot())
	if err != nil {
		p.t.Fatalf("%s: screenshot: %v", p.name, err)
	}
	path := filepath.Join(dir, file)
	if err := os.WriteFile(path, buf, 0o644); err != nil {
		p.t.Fatal(err)
	}
	p.t.Logf("screenshot: %s", path)
}

// setOffline cuts the tab's network (requests and navigator.onLine) or
// gives it back.
func (p *tab) setOffline(offline bool) {
	p.t.Helper()
	err := chromedp.Do(p.ctx, chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		conds := []*network.Conditions{}
		if offline {
			conds = append(conds, &network.Conditions{Offline: true, DownloadThroughput: -1, UploadThroughput: -1})
		}
		if _, err := cdp.Call(ctx, t, network.EmulateNetworkConditionsByRule, network.EmulateNetworkConditionsByRuleParams{MatchedNetworkConditions: conds}); err != nil {
			return err
		}
		_, err := cdp.Call(ctx, t, network.OverrideNetworkState, network.OverrideNetworkStateParams{Offline: offline, DownloadThroughput: -1, UploadThroughput: -1})
		return err
	}))
	if err != nil {
		p.t.Fatalf("%s: set offline %v: %v", p.name, offline, err)
	}
}

// insertText inserts text at the caret as a paste or an IME commit does
// (one input event).
func insertText(text string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := cdp.Call(ctx, t, input.InsertText, input.InsertTextParams{Text: text})
		return err
	})
}

// key presses one key with modifiers (kb names, e.g. kb.End).
func key(k string, mods ...chromedp.Modifier) chromedp.Action[chromedp.Void] {
	return chromedp.KeyEvent(k, chromedp.KeyModifiers(mods...))
}

// idle is true when the page has loaded the doc and every edit is acknowledged.
const idle = `window.coedit && coedit.conn.state === 'connected' && coedit.doc.version != null && coedit.doc.type != null && !coedit.doc.hasPending`

// mirrorCaret returns, in the page's overlay, the text offset of the caret
// drawn for name (-1 if none) and the text its selection highlight covers.
func mirrorCaret(name string) string {
	return fmt.Sprintf(`(() => {
  const plain = (node) => {
    const c = node.cloneNode(true);
    c.querySelectorAll('.remote-label').forEach((e) => e.remove());
    return c.textContent.replaceAll('\u200b', '');
  };
  const m = document.querySelector('.mirror');
  const caret = m.querySelector('.remote-caret[data-name=%q]');
  if (!caret) return {offset: -1, sel: '', visible: false};
  let off = 0;
  for (const block of m.children) {
    if (block.contains(caret)) {
      const r = document.createRange();
      r.setStart(block, 0);
      r.setEndBefore(caret);
      const frag = document.createElement('div');
      frag.append(r.cloneContents());
      off += plain(frag).length;
      break;
    }
    off += plain(block).length + 1;
  }
  const sel = [...m.querySelectorAll('.remote-sel[data-id=' + JSON.stringify(caret.dataset.id) + ']')].map((e) => e.textContent).join('');
  const a = caret.getBoundingClientRect();
  const b = document.getElementById('text').getBoundingClientRect();
  return {offset: off, sel, visible: a.top >= b.top && a.bottom <= b.bottom && a.left >= b.left && a.left <= b.right};
})()`, name)
}

type caretInfo struct {
	Offset  int    `json:"offset"`
	Sel     string `json:"sel"`
	Visible bool   `json:"visible"`
}

// startBrowser starts headless Chromium for the test and returns its
// context; the browser is stopped when the test ends.
func startBrowser(t *testing.T, chrome string) context.Context {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chrome),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-background-timer-throttling", true),
		chromedp.Flag("disable-renderer-backgrounding", true),
		chromedp.Flag("disable-backgrounding-occluded-windows", true),
		chromedp.UserDataDir(t.TempDir()),
	}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancelAlloc)
	browserCtx, cancelBrowser := chromedp.NewContext(allocCtx)
	t.Cleanup(cancelBrowser)
	if err := chromedp.Do(browserCtx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return browserCtx
}

// newTab opens a tab in parent's browser context (a context made with
// chromedp.WithNewBrowserContext is a profile of its own: its tabs share
// localStorage and Web Locks, as a person's tabs do). It closes when the
// test ends.
func newTab(t *testing.T, parent context.Context, name string) *tab {
	t.Helper()
	ctx, cancel := chromedp.NewContext(parent)
	t.Cleanup(cancel)
	ctx, cancelT := context.WithTimeout(ctx, 3*time.Minute)
	t.Cleanup(cancelT)
	p := &tab{t: t, name: name, ctx: ctx, cancel: cancel}
	p.do(chromedp.EmulateViewport(1000, 680))
	return p
}

// profile returns a new browser context (a separate profile) whose first
// tab stays open, blank, until the test ends, keeping the profile alive
// while other tabs come and go.
func profile(t *testing.T, browser context.Context) context.Context {
	t.Helper()
	ctx, cancel := chromedp.NewContext(browser, chromedp.WithNewBrowserContext())
	t.Cleanup(cancel)
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("new browser context: %v", err)
	}
	return ctx
}

// typeAt inserts text at UTF-16 offset at of the page's textarea (-1: the
// end) as one input event, as a paste does.
func (p *tab) typeAt(at int, text string) {
	p.t.Helper()
	p.do(chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`(() => {
		const ta = document.getElementById('text');
		const at = %d < 0 ? ta.value.length : %d;
		ta.focus();
		ta.setSelectionRange(at, at);
		document.execCommand('insertText', false, %q);
	})()`, at, at, text)))
}

// largeText returns about n bytes of varied prose with some astral characters.
func largeText(n int) string {
	var b strings.Builder
	words := []string{"coedit", "keeps", "every", "copy", "of", "the", "text", "in", "step", "📝", "while", "people", "type", "together", "across", "the", "network", "✨"}
	sc := bufio.NewWriter(&b)
	for i := 0; b.Len()+sc.Buffered() < n; i++ {
		sc.WriteString(words[(i*7+i/13)%len(words)])
		if i%14 == 13 {
			sc.WriteString(".\n")
		} else {
			sc.WriteByte(' ')
		}
	}
	sc.Flush()
	s := b.String()
	for len(s) > n || !isRuneStart(s, len(s)) {
		s = s[:len(s)-1]
	}
	return s
}

func isRuneStart(s string, i int) bool { return i == len(s) || s[i]&0xC0 != 0x80 }

// runeCut moves byte offset i back to the start of a rune.
func runeCut(s string, i int) int {
	for !isRuneStart(s, i) {
		i--
	}
	return i
}

// utf16 returns s as UTF-16 code units (the browser's string length).
func utf16(s string) []uint16 {
	out := make([]uint16, 0, len(s))
	for _, r := range s {
		if r >= 0x10000 {
			r -= 0x10000
			out = append(out, uint16(0xD800+(r>>10)), uint16(0xDC00+(r&0x3FF)))
		} else {
			out = append(out, uint16(r))
		}
	}
	return out
}
