package web_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/golang-jwt/jwt/v5"

	"github.com/coedit/coedit/web"
)

// TestBrowserEditingWithAuth runs the editing page once against a node
// with auth on: the embedding app's link carries a token in the page's
// URL, the server moves it into a cookie and off the address bar, the
// page edits through it, and when a token expires the page closes its
// connection and asks for a new one. One tab, to keep it cheap.
func TestBrowserEditingWithAuth(t *testing.T) {
	if testing.Short() {
		t.Skip("browser test: not in -short mode")
	}
	chrome := chromiumPath(t)
	secret := "e2e-secret-0123456789abcdef-0123456789"
	// serveCoedit's process inherits the environment.
	t.Setenv("COEDIT_AUTH_SECRET", secret)
	base := serveCoedit(t, coeditBinary(t))
	mint := func(ttl time.Duration) string {
		c := web.TokenClaims{Docs: []web.TokenDoc{{Pattern: "notes/*", Write: true}}}
		c.Subject = "alice"
		c.ExpiresAt = jwt.NewNumericDate(time.Now().Add(ttl))
		tok, err := web.SignToken([]byte(secret), c)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	long := mint(time.Hour)
	// Without a token the API, like the page, refuses.
	if res, err := http.Get(base + "/api/docs/notes/auth"); err != nil || res.StatusCode != http.StatusUnauthorized {
		t.Fatalf("GET without a token = %v, %v; want 401", res, err)
	} else {
		res.Body.Close()
	}

	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(chrome), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck, chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()))
	defer cancelAlloc()
	ctx, cancel := chromedp.NewContext(allocCtx)
	defer cancel()
	ctx, cancelT := context.WithTimeout(ctx, 2*time.Minute)
	defer cancelT()
	p := &tab{t: t, name: "alice", ctx: ctx}

	p.do(chromedp.EmulateViewport(1000, 680), chromedp.Navigate(base+"/d/notes/auth?token="+long))
	p.waitJS("the document", idle, 20*time.Second)
	if search := eval[string](p, `location.search`); search != "" {
		t.Fatalf("the page's address still has %q: the token should have moved into the cookie", search)
	}
	if cookie := eval[string](p, `document.cookie`); strings.Contains(cookie, "coedit_token") {
		t.Fatalf("document.cookie = %q: the token cookie should be HttpOnly", cookie)
	}
	p.do(chromedp.Click(chromedp.ID("text")), chromedp.SendKeys(chromedp.ID("text"), "written with a token"))
	p.waitJS("the edit saved", idle+` && coedit.doc.text.s === 'written with a token'`, 10*time.Second)
	req, _ := http.NewRequest("GET", base+"/api/docs/notes/auth", nil)
	req.Header.Set("Authorization", "Bearer "+long)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	var snap snapshot
	if json.Unmarshal(body, &snap); res.StatusCode != http.StatusOK || snap.Data != "written with a token" {
		t.Fatalf("the server's copy = %d %s", res.StatusCode, body)
	}

	// A link with a token about to expire: the page opens, and when the
	// token expires (the server allows 5s of clock skew) it stops and
	// asks for a new one.
	p.do(chromedp.Navigate(base + "/d/notes/auth?token=" + mint(2*time.Second)))
	p.waitJS("the document", idle, 20*time.Second)
	p.waitJS("the expired-token screen", `document.getElementById('auth-screen')?.dataset.reason === 'expired' && coedit.conn.state === 'closed'`, 20*time.Second)
	p.screenshot(artifactsDir(t), "auth-expired.png")
}
