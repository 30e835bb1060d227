package web_test

import (
	"context"
	"fmt"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
)

// The end-to-end test drives the editing page in headless Chromium
// (Debian's chromium) against a real `coedit serve` process: two people in
// separate browser contexts type into the same document at the same time,
// one of them goes offline and comes back, each sees the other's caret,
// and a 1 MB document takes keystrokes. Screenshots go to $COEDIT_ARTIFACTS
// (default: artifacts/ at the repository root).

func TestBrowserEditing(t *testing.T) {
	if testing.Short() {
		t.Skip("browser test: not in -short mode")
	}
	chrome := chromiumPath(t)
	base := serveCoedit(t, coeditBinary(t))
	arts := artifactsDir(t)

	browserCtx := startBrowser(t, chrome)

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
	// The page names its document in the WebSocket's address, for a load
	// balancer that routes a document's editors to one node.
	alice.waitJS("the document in the WebSocket's address", `coedit.conn.url.endsWith('/ws?doc=docs/`+doc+`')`, 5*time.Second)

	// Each sees the other in the list of who is here.
	alice.waitJS("Bob in the people list", `[...document.querySelectorAll('#people li')].some((li) => li.textContent === 'Bob')`, 10*time.Second)
	bob.waitJS("Alice in the people list", `[...document.querySelectorAll('#people li')].some((li) => li.textContent === 'Alice')`, 10*time.Second)
	// ...each in a colour of their own.
	const colors = `[...document.querySelectorAll('#people li')].map((li) => li.style.getPropertyValue('--c'))`
	for _, p := range []*tab{alice, bob} {
		p.waitJS("two colours", colors+`.length === 2 && new Set(`+colors+`).size === 2`, 10*time.Second)
	}
	// A second tab of Alice's (her browser keeps her name and colour) is
	// one chip with hers, counted, for Bob and for her.
	const chips = `[...document.querySelectorAll('#people li')].map((li) => li.textContent).join('|')`
	alice2 := newTab(t, alice.ctx, "Alice's second tab")
	alice2.do(chromedp.Navigate(base + "/d/docs/" + doc))
	alice2.waitJS("the document", idle, 20*time.Second)
	bob.waitJS("Alice's two tabs as one chip", chips+` === 'Bob (you)|Alice ×2'`, 10*time.Second)
	alice.waitJS("her two tabs", chips+` === 'Alice (you, 2 tabs)|Bob'`, 10*time.Second)
	alice2.cancel()
	bob.waitJS("Alice's second tab gone", chips+` === 'Bob (you)|Alice'`, 10*time.Second)

	// Alice writes two lines; then both type at once, Alice at the end and
	// Bob at the start, and Bob pastes a few KB.
	alice.do(chromedp.Click(chromedp.ID("text")), chromedp.SendKeys(chromedp.ID("text"), "First line.\nSecond line.\n"))
	bob.waitJS("Alice's lines", `coedit.doc.text.s === 'First line.\nSecond line.\n'`, 10*time.Second)
	bob.waitJS("the tab named after the first line", `document.title === 'First line. · coedit'`, 5*time.Second)
	// Alice's caret, after the newline that ends the text, is drawn on the
	// empty third line, as her textarea shows it.
	bob.waitJS("Alice's caret on the third line", `(() => {
		const m = document.querySelector('.mirror');
		const c = m.querySelector('.remote-caret[data-name="Alice"]');
		if (!c) return false;
		const lh = parseFloat(getComputedStyle(document.getElementById('text')).lineHeight);
		const r = c.getBoundingClientRect();
		return Math.floor(((r.top + r.bottom) / 2 - m.firstElementChild.getBoundingClientRect().top) / lh) === 2;
	})()`, 10*time.Second)

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
	bob.waitJS("the back-online notice", `!document.getElementById('notice').hidden && document.getElementById('notice').textContent === 'Back online: all changes saved.'`, 10*time.Second)
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
	// A caret's name fades 3 s after the caret last moved, and stays faded
	// when its block is drawn again, as any edit in the block draws it.
	const bobsLabel = `getComputedStyle(document.querySelector('.mirror .remote-caret[data-name="Bob"] .remote-label')).opacity`
	alice.waitJS("Bob's name faded", bobsLabel+` === '0'`, 10*time.Second)
	alice.do(chromedp.Evaluate[chromedp.Void](`coedit.overlay.reset(coedit.binding.shadow.s)`))
	if o := eval[string](alice, bobsLabel); o != "0" {
		t.Errorf("Bob's name, drawn again without his caret moving, has opacity %s, want 0", o)
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
