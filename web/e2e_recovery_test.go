package web_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/coedit/coedit/collab"
	"github.com/coedit/coedit/collab/collabtest"
	"github.com/coedit/coedit/ot"
	"github.com/coedit/coedit/web"
	"github.com/coedit/coedit/web/webtest"
)

// Browser tests of how the page keeps unsent edits and recovers: saved
// edits restored by one tab only, a renderer crash right after sending,
// and a server that closes a far-behind page as a slow consumer.

// savedEditsHolding is a JS expression: the localStorage value holding text
// among the page's saved edits, or null.
func savedEditsHolding(text string) string {
	return fmt.Sprintf(`Object.keys(localStorage).filter((k) => k.startsWith('coedit:unsaved:')).map((k) => localStorage.getItem(k)).find((v) => v.includes(%q)) ?? null`, text)
}

// settledTogether waits until every tab is idle at the server's version
// with its text, and returns that text.
func settledTogether(t *testing.T, base, coll, id string, tabs ...*tab) string {
	t.Helper()
	for _, p := range tabs {
		p.waitJS("idle", idle, 30*time.Second)
	}
	snap := serverSnapshot(t, base, coll, id)
	for _, p := range tabs {
		p.waitJS("at the head", fmt.Sprintf(`coedit.doc.version === %d`, snap.V), 15*time.Second)
		if got := eval[string](p, `coedit.doc.text.s`); got != snap.Data {
			t.Fatalf("%s: text %q, server %q", p.name, got, snap.Data)
		}
	}
	return snap.Data
}

func TestBrowserSavedEditsAreRestoredByOneTabOnly(t *testing.T) {
	if testing.Short() {
		t.Skip("browser test: not in -short mode")
	}
	chrome := chromiumPath(t)
	base := serveCoedit(t, coeditBinary(t))
	prof := profile(t, startBrowser(t, chrome))
	const doc = "/d/docs/restore-once"

	// A goes offline, types, and is closed: its edits stay saved.
	a := newTab(t, prof, "A")
	a.do(chromedp.Navigate(base + doc))
	a.waitJS("the document", idle, 20*time.Second)
	a.do(chromedp.Evaluate[chromedp.Void](`coedit.conn.setOnline(false)`))
	a.typeAt(0, "kept while offline. ")
	a.waitJS("the edit saved in the browser", savedEditsHolding("kept while offline")+` !== null`, 5*time.Second)
	a.cancel()

	// Two tabs open the document at once, as a browser restoring its
	// session does.
	b, c := newTab(t, prof, "B"), newTab(t, prof, "C")
	var wg sync.WaitGroup
	for _, p := range []*tab{b, c} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.do(chromedp.Navigate(base + doc))
		}()
	}
	wg.Wait()
	text := settledTogether(t, base, "docs", "restore-once", b, c)
	if n := strings.Count(text, "kept while offline. "); n != 1 {
		t.Fatalf("the saved edit is in the document %d times, want once: %q", n, text)
	}
	// Each has a src of its own, and neither took the other's: after a
	// while both are still on the one they got, never closed with 4000.
	srcB, srcC := eval[string](b, `coedit.conn.id`), eval[string](c, `coedit.conn.id`)
	if srcB == srcC {
		t.Fatalf("both tabs use src %q", srcB)
	}
	time.Sleep(time.Second)
	for _, p := range []*tab{b, c} {
		if s := eval[string](p, `JSON.stringify([coedit.conn.state, coedit.conn.lastClose])`); s != `["connected",null]` {
			t.Errorf("%s: [state, last close code] = %s, want connected and never closed", p.name, s)
		}
	}
	if got := []string{eval[string](b, `coedit.conn.id`), eval[string](c, `coedit.conn.id`)}; got[0] != srcB || got[1] != srcC {
		t.Errorf("srcs changed from %q, %q to %q", srcB, srcC, got)
	}
	restored := 0
	for _, p := range []*tab{b, c} {
		if eval[bool](p, `coedit.saved?.state != null`) {
			restored++
		}
	}
	if restored != 1 {
		t.Errorf("%d tabs restored the saved edits, want 1", restored)
	}
	// Once the edits are acknowledged nothing stays saved.
	b.waitJS("the saved edits cleared", savedEditsHolding("kept while offline")+` === null`, 5*time.Second)
}

func TestBrowserCrashRightAfterSendingReusesNoSeq(t *testing.T) {
	if testing.Short() {
		t.Skip("browser test: not in -short mode")
	}
	chrome := chromiumPath(t)
	base := serveCoedit(t, coeditBinary(t))
	prof := profile(t, startBrowser(t, chrome))
	const doc = "/d/docs/crash"

	a := newTab(t, prof, "A")
	a.do(chromedp.Navigate(base + doc))
	a.waitJS("the document", idle, 20*time.Second)
	// An edit made offline is saved in the browser...
	a.do(chromedp.Evaluate[chromedp.Void](`coedit.conn.setOnline(false)`))
	a.typeAt(-1, "one ")
	a.waitJS("the edit saved in the browser", savedEditsHolding("one ")+` !== null`, 5*time.Second)
	// ...then, back online, it and a second edit are sent and
	// acknowledged, and the page crashes at once: inside the delay of the
	// save that follows changes, and without a pagehide.
	a.do(chromedp.Evaluate[chromedp.Void](`(async () => {
		const acked = async () => { while (coedit.doc.hasPending) await new Promise((r) => setTimeout(r, 1)); };
		coedit.conn.setOnline(true);
		await acked();
		const ta = document.getElementById('text');
		ta.focus();
		ta.setSelectionRange(ta.value.length, ta.value.length);
		document.execCommand('insertText', false, 'two ');
		await acked();
	})()`, chromedp.EvalAwaitPromise))
	crash, cancel := context.WithTimeout(a.ctx, 2*time.Second)
	defer cancel()
	// The renderer dies before it can answer.
	chromedp.Do(crash, chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := cdp.Call(ctx, t, page.Crash, cdp.Empty{})
		return err
	}))
	if got := serverSnapshot(t, base, "docs", "crash").Data; got != "one two " {
		t.Fatalf("before the crash the server has %q, want %q", got, "one two ")
	}

	// The next tab takes over what the crashed one saved and types on.
	// The browser lets go of the crashed renderer's lock on its slot in
	// its own time, which under load can take longer than a new page
	// waits for a slot's lock (saved.js, waitForLock); the slot is then
	// left for a later page. So B first waits, on a page of the same
	// origin, until no lock is held.
	b := newTab(t, prof, "B")
	b.do(chromedp.Navigate(base + "/health"))
	for deadline := time.Now().Add(20 * time.Second); ; {
		held, err := chromedp.Run(b.ctx, chromedp.Evaluate[int](`navigator.locks.query().then((s) => s.held.length)`, chromedp.EvalAwaitPromise))
		if err == nil && held == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the crashed tab's lock is still held after 20 s (%d held, %v)", held, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	b.do(chromedp.Navigate(base + doc))
	b.waitJS("the document", idle, 20*time.Second)
	b.typeAt(-1, "three")
	if got := settledTogether(t, base, "docs", "crash", b); got != "one two three" {
		t.Fatalf("after the crash the document is %q, want %q: a reused seq was taken for a resend", got, "one two three")
	}
	if !eval[bool](b, `coedit.saved?.state != null`) {
		t.Errorf("the new tab did not restore the crashed tab's saved state")
	}
}

// A page far behind (many more ops missed than its send queue holds)
// catches up by version, with its offline edits and without: the server
// streams the missed ops as the page drains its queue instead of queuing
// them at once and closing it with 1013 (which, before, it did on every
// reconnect). The page's own recovery from a 1013, should one come, is
// covered by web/static/test/reconnect.test.mjs.
func TestBrowserFarBehindPageCatchesUpWithoutBeingDropped(t *testing.T) {
	if testing.Short() {
		t.Skip("browser test: not in -short mode")
	}
	chrome := chromiumPath(t)
	hub, base := serveInProcess(t, web.Options{SendQueueMessages: 20})
	prof := profile(t, startBrowser(t, chrome))
	key := collab.Key{Collection: "docs", ID: "far-behind"}
	submitHub(t, hub, key, collab.Submission{Version: 0, HasVersion: true, Kind: collab.OpCreate, Type: ot.URI, Data: "start\n"})

	withEdits, without := newTab(t, prof, "with edits"), newTab(t, prof, "without")
	for _, p := range []*tab{withEdits, without} {
		p.do(chromedp.Navigate(base + "/d/docs/far-behind"))
		p.waitJS("the document", idle, 20*time.Second)
		p.do(chromedp.Evaluate[chromedp.Void](`coedit.conn.setOnline(false)`))
	}
	withEdits.typeAt(0, "mine ")
	// Meanwhile 3000 ops are committed: far more than a send queue of 20.
	const behind = 3000
	for v := uint64(1); v <= behind; v++ {
		submitHub(t, hub, key, collab.Submission{Version: v, HasVersion: true, Kind: collab.OpEdit, Op: ot.Op{{Kind: ot.KindSkip, N: 5}, {Kind: ot.KindInsert, N: 1, Text: "x"}}})
	}
	for _, p := range []*tab{withEdits, without} {
		p.do(chromedp.Evaluate[chromedp.Void](`coedit.conn.setOnline(true)`))
	}
	text := settledTogether(t, base, "docs", "far-behind", withEdits, without)
	if want := "mine start" + strings.Repeat("x", behind) + "\n"; text != want {
		t.Fatalf("document = %q..., want %q...", text[:min(len(text), 40)], want[:40])
	}
	for _, p := range []*tab{withEdits, without} {
		if code := eval[int](p, `coedit.conn.lastClose ?? 0`); code != 0 {
			t.Errorf("%s: the server closed the page with %d while it caught up", p.name, code)
		}
		// The server sends a catching-up connection every version once,
		// in order: the page never finds a gap to fetch.
		if n := eval[int](p, `coedit.doc.gapFetches`); n != 0 {
			t.Errorf("%s: the page found %d gaps in the ops while it caught up", p.name, n)
		}
	}
}

// serveInProcess runs a web.Server with opts in process (webtest.Start),
// for tests that need options `coedit serve` has no flag for. It returns
// the hub and the base URL. The server's log is kept and shown if the
// test fails (why it closed a socket, say).
func serveInProcess(t *testing.T, opts web.Options) (*collab.Hub, string) {
	t.Helper()
	var log lockedBuffer
	logger := slog.New(slog.NewTextHandler(&log, nil))
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("the server's log:\n%s", log.String())
		}
	})
	opts.Logger = logger
	s := webtest.Start(t, opts, collabtest.WithHub(collab.Options{Logger: logger}))
	return s.Node.Hub, s.URL
}

func submitHub(t *testing.T, hub *collab.Hub, key collab.Key, s collab.Submission) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := hub.SubmitWait(ctx, key, s); err != nil {
		t.Fatalf("submit %s at v%d: %v", key, s.Version, err)
	}
}
