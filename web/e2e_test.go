package web_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
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
	"github.com/chromedp/chromedp/kb"
)

// The end-to-end test drives the editing page in headless Chromium
// (Debian's chromium) against a real `coedit serve` process: two people in
// separate browser contexts type into the same document at the same time,
// one of them goes offline and comes back, each sees the other's caret,
// and a 1 MB document takes keystrokes. Screenshots go to $COEDIT_ARTIFACTS
// (default: artifacts/ at the repository root).

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
func serveCoedit(t *testing.T, bin string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	var logs lockedBuffer
	cmd := exec.Command(bin, "serve", "--addr", addr, "--data", t.TempDir())
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
	t    *testing.T
	name string
	ctx  context.Context
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

func TestBrowserEditing(t *testing.T) {
	if testing.Short() {
		t.Skip("browser test: not in -short mode")
	}
	chrome := chromiumPath(t)
	base := serveCoedit(t, coeditBinary(t))
	arts := artifactsDir(t)

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
	defer cancelAlloc()
	browserCtx, cancelBrowser := chromedp.NewContext(allocCtx)
	defer cancelBrowser()
	if err := chromedp.Do(browserCtx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}

	const doc = "e2e"
	open := func(name string) *tab {
		ctx, cancel := chromedp.NewContext(browserCtx, chromedp.WithNewBrowserContext())
		t.Cleanup(cancel)
		ctx, cancelT := context.WithTimeout(ctx, 3*time.Minute)
		t.Cleanup(cancelT)
		p := &tab{t: t, name: name, ctx: ctx}
		// Both start with the same colour saved, so the page must sort that out.
		p.do(chromedp.EmulateViewport(1000, 680), chromedp.Navigate(base+"/"),
			chromedp.Evaluate[chromedp.Void](`localStorage.setItem('coedit:color', '#1f78b4')`),
			chromedp.Navigate(base+"/d/docs/"+doc))
		p.waitJS("the document", idle, 20*time.Second)
		// Set the name as a person would: type it and leave the field.
		p.do(
			chromedp.Evaluate[chromedp.Void](`document.getElementById('name').value = ''`),
			chromedp.SendKeys(chromedp.ID("name"), name),
			chromedp.Evaluate[chromedp.Void](`document.getElementById('name').dispatchEvent(new Event('change'))`),
		)
		return p
	}
	alice := open("Alice")
	bob := open("Bob")

	// Each sees the other in the list of who is here.
	alice.waitJS("Bob in the people list", `[...document.querySelectorAll('#people li')].some((li) => li.textContent === 'Bob')`, 10*time.Second)
	bob.waitJS("Alice in the people list", `[...document.querySelectorAll('#people li')].some((li) => li.textContent === 'Alice')`, 10*time.Second)
	// ...each in a colour of their own.
	const colors = `[...document.querySelectorAll('#people li')].map((li) => li.style.getPropertyValue('--c'))`
	for _, p := range []*tab{alice, bob} {
		p.waitJS("two colours", colors+`.length === 2 && new Set(`+colors+`).size === 2`, 10*time.Second)
	}

	// Alice writes two lines; then both type at once, Alice at the end and
	// Bob at the start, and Bob pastes a few KB.
	alice.do(chromedp.Click(chromedp.ID("text")), chromedp.SendKeys(chromedp.ID("text"), "First line.\nSecond line.\n"))
	bob.waitJS("Alice's lines", `coedit.doc.text.s === 'First line.\nSecond line.\n'`, 10*time.Second)

	aliceTyped := "Alice types here 👋🏽 and 𝄞 music, naïve café.\n"
	bobTyped := "Bob starts 🎉🎉 at the top. "
	var paste strings.Builder
	for i := 0; paste.Len() < 4000; i++ {
		fmt.Fprintf(&paste, "Pasted line %03d: the quick brown fox jumps over the lazy dog 🦊.\n", i)
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		alice.do(chromedp.Focus(chromedp.ID("text")), key(kb.End, chromedp.ModifierCtrl), chromedp.SendKeys(chromedp.ID("text"), aliceTyped))
	}()
	go func() {
		defer wg.Done()
		bob.do(chromedp.Focus(chromedp.ID("text")), key(kb.Home, chromedp.ModifierCtrl), chromedp.SendKeys(chromedp.ID("text"), bobTyped), insertText(paste.String()))
	}()
	wg.Wait()
	converge := func(what string) string {
		t.Helper()
		for _, p := range []*tab{alice, bob} {
			p.waitJS(what, idle, 30*time.Second)
		}
		snap := serverSnapshot(t, base, "docs", doc)
		for _, p := range []*tab{alice, bob} {
			p.waitJS(what+" at the head", fmt.Sprintf(`coedit.doc.version === %d`, snap.V), 10*time.Second)
			if got := eval[string](p, `coedit.doc.text.s`); got != snap.Data {
				t.Fatalf("%s: %s: doc text (%d chars) != server snapshot (%d chars)", p.name, what, len(got), len(snap.Data))
			}
			if got := eval[string](p, `document.getElementById('text').value`); got != snap.Data {
				t.Fatalf("%s: %s: textarea (%d chars) != server snapshot (%d chars)", p.name, what, len(got), len(snap.Data))
			}
		}
		return snap.Data
	}
	text := converge("concurrent typing")
	for _, want := range []string{aliceTyped, bobTyped + paste.String(), "First line.\nSecond line.\n"} {
		if !strings.Contains(text, want) {
			t.Errorf("after concurrent typing the text lacks %q:\n%s", want[:min(len(want), 40)], text[:min(len(text), 400)])
		}
	}
	if !strings.HasPrefix(text, bobTyped) {
		t.Errorf("Bob typed at the top, the text starts %q", text[:min(len(text), 60)])
	}

	// Bob goes offline and types; Alice keeps typing; Bob comes back.
	bob.setOffline(true)
	bob.waitJS("offline status", `coedit.conn.state === 'offline' && document.getElementById('status').dataset.state === 'offline'`, 10*time.Second)
	bobOffline := " [Bob, offline ✈️]"
	bob.do(chromedp.Focus(chromedp.ID("text")), key(kb.End, chromedp.ModifierCtrl), chromedp.SendKeys(chromedp.ID("text"), bobOffline))
	bob.waitJS("unsaved count", `coedit.doc.unacknowledged > 0 && /not yet saved/.test(document.getElementById('saved').textContent)`, 5*time.Second)
	aliceOnline := "Alice, meanwhile. "
	alice.do(chromedp.Focus(chromedp.ID("text")), key(kb.Home, chromedp.ModifierCtrl), chromedp.SendKeys(chromedp.ID("text"), aliceOnline))
	alice.waitJS("Alice's edit saved", idle, 10*time.Second)
	if s := serverSnapshot(t, base, "docs", doc); strings.Contains(s.Data, "offline ✈️") {
		t.Fatalf("the server has Bob's offline edit while he is offline")
	}
	bob.screenshot(arts, "e2e-bob-offline.png")
	bob.setOffline(false)
	text = converge("offline edits merged")
	for _, want := range []string{aliceOnline, bobOffline, aliceTyped} {
		if !strings.Contains(text, want) {
			t.Errorf("after Bob's return the text lacks %q", want)
		}
	}

	// Carets: Alice selects a word, Bob puts his caret somewhere; each
	// sees the other's, at the right text offset, in their colour, named.
	sel := strings.Index(text, "Second")
	selStart := len(utf16(text[:sel]))
	alice.do(chromedp.Focus(chromedp.ID("text")), chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`document.getElementById('text').setSelectionRange(%d, %d)`, selStart, selStart+len("Second"))))
	bobAt := strings.Index(text, "lazy dog") // in the paste, line 0
	bobCaret := len(utf16(text[:bobAt]))
	bob.do(chromedp.Focus(chromedp.ID("text")), chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`document.getElementById('text').setSelectionRange(%d, %d)`, bobCaret, bobCaret)))
	bob.waitJS("Alice's caret", `!!document.querySelector('.mirror .remote-caret[data-name="Alice"]')`, 10*time.Second)
	alice.waitJS("Bob's caret", `!!document.querySelector('.mirror .remote-caret[data-name="Bob"]')`, 10*time.Second)
	bob.waitJS("Alice's selection", `[...document.querySelectorAll('.mirror .remote-sel')].map((e) => e.textContent).join('') === 'Second'`, 10*time.Second)
	// The carets sit at the right text offsets: presence travels after the
	// selection settles, so wait for it.
	bob.waitJS("Alice's caret offset", fmt.Sprintf(`(%s).offset === %d`, mirrorCaret("Alice"), selStart+len("Second")), 10*time.Second)
	alice.waitJS("Bob's caret offset", fmt.Sprintf(`(%s).offset === %d`, mirrorCaret("Bob"), bobCaret), 10*time.Second)
	if ci := eval[caretInfo](alice, mirrorCaret("Bob")); ci.Sel != "" {
		t.Errorf("Alice's overlay shows a selection %q for Bob's bare caret", ci.Sel)
	}
	// A remote edit in front of Bob's caret moves it (in Alice's view) and
	// leaves Alice's own selection on the same word.
	alice.do(chromedp.Evaluate[chromedp.Void](`(() => {
		const ta = document.getElementById('text');
		const [s, e] = [ta.selectionStart, ta.selectionEnd];
		ta.setSelectionRange(0, 0);
		document.execCommand('insertText', false, '>> ');
		ta.setSelectionRange(s + 3, e + 3);
	})()`))
	bob.waitJS("Bob sees the insert", `coedit.doc.text.s.startsWith('>> ')`, 10*time.Second)
	bob.waitJS("Bob's selection kept", fmt.Sprintf(`document.getElementById('text').selectionStart === %d`, bobCaret+3), 5*time.Second)
	alice.waitJS("Bob's caret moved", fmt.Sprintf(`(%s).offset === %d`, mirrorCaret("Bob"), bobCaret+3), 10*time.Second)
	bob.waitJS("Alice's caret moved", fmt.Sprintf(`(%s).offset === %d`, mirrorCaret("Alice"), selStart+3+len("Second")), 10*time.Second)

	// Undo takes back only Bob's own last edit, with Alice's text around it.
	bob.do(chromedp.Focus(chromedp.ID("text")), key(kb.End, chromedp.ModifierCtrl), chromedp.SendKeys(chromedp.ID("text"), " UNDO-ME"))
	bob.waitJS("Bob's edit saved", idle+` && coedit.doc.text.s.endsWith(' UNDO-ME')`, 10*time.Second)
	alice.do(chromedp.Focus(chromedp.ID("text")), key(kb.Home, chromedp.ModifierCtrl), chromedp.SendKeys(chromedp.ID("text"), "A!"))
	bob.waitJS("Alice's A!", `coedit.doc.text.s.startsWith('A!')`, 10*time.Second)
	bob.do(chromedp.Focus(chromedp.ID("text")), key("z", chromedp.ModifierCtrl))
	text = converge("undo")
	if strings.Contains(text, "UNDO-ME") || !strings.HasPrefix(text, "A!>> ") || !strings.HasSuffix(text, bobOffline) {
		t.Errorf("after Bob's undo the text is %q ... %q; want Alice's A! kept and Bob's UNDO-ME gone", text[:min(len(text), 20)], text[max(0, len(text)-40):])
	}

	// Someone typing above the view does not move the text in it.
	bob.do(chromedp.Evaluate[chromedp.Void](`document.getElementById('text').scrollTop = 700`))
	top := eval[float64](bob, `document.getElementById('text').scrollTop`)
	alice.do(chromedp.Focus(chromedp.ID("text")), chromedp.Evaluate[chromedp.Void](`(() => {
		document.getElementById('text').setSelectionRange(0, 0);
		document.execCommand('insertText', false, 'One\nTwo\nThree\n');
	})()`))
	bob.waitJS("Alice's three lines", `coedit.doc.text.s.startsWith('One\nTwo\nThree\nA!')`, 10*time.Second)
	lh := eval[float64](bob, `parseFloat(getComputedStyle(document.getElementById('text')).lineHeight)`)
	if got := eval[float64](bob, `document.getElementById('text').scrollTop`); top < 600 || math.Abs(got-top-3*lh) > 2 {
		t.Errorf("Bob's view scrolled from %.1f to %.1f after three lines (%.1f px each) went in above it; want it to follow them", top, got, lh)
	}
	text = converge("lines above the view")

	// Make each page show the other's caret for the screenshots.
	selStart = len(utf16(text[:strings.Index(text, "Second")]))
	alice.do(chromedp.Focus(chromedp.ID("text")), chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`document.getElementById('text').setSelectionRange(%d, %d)`, selStart, selStart+len("Second"))))
	bob.do(chromedp.Focus(chromedp.ID("text")), chromedp.Evaluate[chromedp.Void](`(() => {
		const ta = document.getElementById('text');
		ta.setSelectionRange(21, 21);
		ta.scrollTop = 0;
	})()`))
	bob.waitJS("Alice's selection for the screenshot", `[...document.querySelectorAll('.mirror .remote-sel')].map((e) => e.textContent).join('') === 'Second'`, 10*time.Second)
	alice.waitJS("Bob's caret for the screenshot", fmt.Sprintf(`(%s).offset === 21`, mirrorCaret("Bob")), 10*time.Second)
	// Scroll each view to the other's caret, as a person would.
	for _, p := range []*tab{alice, bob} {
		p.do(chromedp.Evaluate[chromedp.Void](`(() => {
			const c = document.querySelector('.mirror .remote-caret');
			document.getElementById('text').scrollTop = Math.max(0, c.offsetTop - 160);
		})()`))
	}
	// The overlay follows the textarea's scroll on the next frame: wait for it.
	for _, p := range []*tab{alice, bob} {
		other := map[string]string{"Alice": "Bob", "Bob": "Alice"}[p.name]
		p.waitJS("the other's caret inside the textarea's box", fmt.Sprintf(`(%s).visible`, mirrorCaret(other)), 5*time.Second)
	}
	alice.screenshot(arts, "e2e-alice.png")
	bob.screenshot(arts, "e2e-bob.png")
	bob.do(chromedp.EmulateViewport(390, 760, chromedp.EmulateScale(2)))
	bob.waitJS("phone layout", `document.documentElement.clientWidth === 390`, 5*time.Second)
	bob.do(chromedp.Sleep(300 * time.Millisecond))
	bob.screenshot(arts, "e2e-phone.png")
	alice.do(chromedp.Navigate(base + "/"))
	alice.waitJS("the list", `!!document.querySelector('a[href="/d/docs/e2e"]')`, 10*time.Second)
	alice.screenshot(arts, "e2e-list.png")

	// A 1 MB document: load it, type into the middle, check the result and
	// report the cost of a keystroke (a figure, not an assertion).
	// The API takes at most 512 KiB per op: create it in three parts.
	big := largeText(1 << 20)
	c1, c2 := runeCut(big, 400<<10), runeCut(big, 800<<10)
	submit(t, base, "docs", "big", map[string]any{"v": 0, "create": map[string]any{"type": "http://sharejs.org/types/text-unicode", "data": big[:c1]}})
	submit(t, base, "docs", "big", map[string]any{"v": 1, "op": []any{len([]rune(big[:c1])), big[c1:c2]}})
	submit(t, base, "docs", "big", map[string]any{"v": 2, "op": []any{len([]rune(big[:c2])), big[c2:]}})
	alice.do(chromedp.Navigate(base + "/d/docs/big"))
	alice.waitJS("the 1 MB document", idle+fmt.Sprintf(` && coedit.doc.text.s.length === %d`, len(utf16(big))), 30*time.Second)
	mid := len(utf16(big)) / 2
	type cost struct{ Total, Ours float64 }
	perKey := eval[cost](alice, fmt.Sprintf(`(() => {
		const ta = document.getElementById('text');
		const b = coedit.binding;
		const sync = b.sync.bind(b);
		let ours = 0;
		b.sync = () => { const t = performance.now(); sync(); ours += performance.now() - t; };
		ta.focus();
		ta.setSelectionRange(%d, %d);
		const t0 = performance.now();
		for (let i = 0; i < 200; i++) document.execCommand('insertText', false, i %% 10 === 9 ? '🙂' : 'x');
		const total = performance.now() - t0;
		b.sync = sync;
		return {total: total / 200, ours: ours / 200};
	})()`, mid, mid))
	alice.waitJS("the 1 MB edits saved", idle, 30*time.Second)
	snap := serverSnapshot(t, base, "docs", "big")
	if got := eval[string](alice, `coedit.doc.text.s`); got != snap.Data {
		t.Fatalf("1 MB document: page text (%d) != server (%d)", len(got), len(snap.Data))
	}
	if want := 200 + len([]rune(big)); len([]rune(snap.Data)) != want {
		t.Errorf("1 MB document has %d code points after 200 keystrokes, want %d", len([]rune(snap.Data)), want)
	}
	t.Logf("1 MB document, 200 keystrokes: %.2f ms each in all, of which %.2f ms in coedit's input handler (diff, op, overlay); the rest is the browser's own textarea edit", perKey.Total, perKey.Ours)
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
