package web_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/chromedp"
)

// TestBrowserRefusedPasteCanBeCopiedBack: a paste the server refuses (the
// document would pass --max-doc) is undone, the page says why in plain
// words, and offers the undone text back to copy rather than losing it.
func TestBrowserRefusedPasteCanBeCopiedBack(t *testing.T) {
	if testing.Short() {
		t.Skip("browser test: not in -short mode")
	}
	chrome := chromiumPath(t)
	base := serveCoedit(t, coeditBinary(t), "--max-doc", "50")
	p := newTab(t, profile(t, startBrowser(t, chrome)), "Ann")
	p.do(chromedp.Navigate(base + "/d/docs/refused"))
	p.waitJS("the document", idle, 20*time.Second)
	p.do(chromedp.Focus(chromedp.ID("text")), chromedp.SendKeys(chromedp.ID("text"), "kept. "))
	p.waitJS("the first edit saved", idle+` && coedit.doc.text.s === 'kept. '`, 10*time.Second)
	paste := strings.Repeat("far too long ", 6) + "✂️"
	p.do(insertText(paste))
	p.waitJS("the refusal, in words", `!document.getElementById('notice').hidden && document.getElementById('notice').textContent.includes('larger than this server allows')`, 10*time.Second)
	p.waitJS("the paste undone", idle+` && document.getElementById('text').value === 'kept. '`, 10*time.Second)
	p.do(chromedp.Click(chromedp.CSS(`#notice button`)))
	p.waitJS("the copy done", `document.querySelector('#notice button').textContent === 'Copied'`, 5*time.Second)
	// Reading the clipboard back needs the permission a person would give.
	p.do(chromedp.Func(func(ctx context.Context, tgt *chromedp.Target) error {
		_, err := cdp.Call(ctx, tgt, browser.SetPermission, browser.SetPermissionParams{
			Permission: &browser.PermissionDescriptor{Name: "clipboard-read"}, Setting: browser.PermissionSettingGranted, Origin: base,
			BrowserContextID: chromedp.FromContext(ctx).BrowserContextID})
		return err
	}))
	p.do(chromedp.Evaluate[chromedp.Void](`navigator.clipboard.readText().then((t) => (window.clip = t), (e) => (window.clip = 'error: ' + e))`))
	p.waitJS("the clipboard read", `window.clip !== undefined`, 5*time.Second)
	if got := eval[string](p, `window.clip`); got != paste {
		t.Fatalf("the clipboard holds %q, want the undone paste %q", got, paste)
	}
}
