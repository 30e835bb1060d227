package web

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/coedit/coedit/collab"
	"github.com/coedit/coedit/ot"
	"github.com/coedit/coedit/storage"
)

// pagesHub returns a Hub over a real bbolt store in a temp dir.
func pagesHub(t *testing.T) *collab.Hub {
	t.Helper()
	db, err := storage.Open(filepath.Join(t.TempDir(), "coedit.db"), storage.Options{Sync: storage.SyncNone})
	if err != nil {
		t.Fatalf("storage.Open = %v", err)
	}
	hub := collab.NewHub(collab.Options{Store: db, Logger: slog.New(slog.DiscardHandler)})
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := hub.Close(ctx); err != nil {
			t.Errorf("hub.Close = %v", err)
		}
		if err := db.Close(); err != nil && !errors.Is(err, storage.ErrClosed) {
			t.Errorf("db.Close = %v", err)
		}
	})
	return hub
}

// createDoc creates collection/id with text through the hub.
func createDoc(t *testing.T, hub *collab.Hub, coll, id, text string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := hub.SubmitWait(ctx, collab.Key{Collection: coll, ID: id}, collab.Submission{
		Version: 0, HasVersion: true, Kind: collab.OpCreate, Type: ot.URI, Data: text,
	})
	if err != nil {
		t.Fatalf("create %s/%s: %v", coll, id, err)
	}
}

func get(t *testing.T, h http.Handler, method, target string, hdr map[string]string) (*http.Response, string) {
	t.Helper()
	req := httptest.NewRequest(method, target, nil)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	res := rec.Result()
	body, _ := io.ReadAll(res.Body)
	return res, string(body)
}

func TestPagesContentTypes(t *testing.T) {
	h := newPageHandler(pagesHub(t))
	tests := []struct {
		path   string
		status int
		ctype  string
		body   string // a substring the body must hold
	}{
		{"/", 200, "text/html; charset=utf-8", "New document"},
		{"/d/docs/abc", 200, "text/html; charset=utf-8", `data-id="abc"`},
		{"/static/js/app.js", 200, "text/javascript; charset=utf-8", "TextareaBinding"},
		{"/static/js/connection.js", 200, "text/javascript; charset=utf-8", "class Connection"},
		{"/static/js/document.js", 200, "text/javascript; charset=utf-8", "export class Doc"},
		{"/static/js/presence.js", 200, "text/javascript; charset=utf-8", "export class DocPresence"},
		{"/static/js/events.js", 200, "text/javascript; charset=utf-8", "export class Emitter"},
		{"/static/js/ot.js", 200, "text/javascript; charset=utf-8", "export function transform"},
		{"/static/js/text.js", 200, "text/javascript; charset=utf-8", "export class Text"},
		{"/static/js/editor.js", 200, "text/javascript; charset=utf-8", "export class TextareaBinding"},
		{"/static/js/overlay.js", 200, "text/javascript; charset=utf-8", "export class Overlay"},
		{"/static/css/app.css", 200, "text/css; charset=utf-8", ".remote-caret"},
		{"/static/favicon.svg", 200, "image/svg+xml", "<svg"},
		// Templates and tests are embedded or kept apart, never served.
		{"/static/pages/editor.html", 404, "text/plain; charset=utf-8", "not found"},
		{"/static/test/ot.test.mjs", 404, "text/plain; charset=utf-8", "not found"},
		{"/static/js/nope.js", 404, "text/plain; charset=utf-8", "not found"},
		{"/nowhere", 404, "text/html; charset=utf-8", "Not found"},
		{"/d/docs", 404, "text/html; charset=utf-8", "Not found"},
		{"/d/docs/a%01b", 400, "text/html; charset=utf-8", "Bad document address"},
		{"/?c=" + strings.Repeat("x", 300), 400, "text/html; charset=utf-8", "Bad collection name"},
	}
	for _, tc := range tests {
		res, body := get(t, h, "GET", tc.path, nil)
		if res.StatusCode != tc.status {
			t.Errorf("GET %s status = %d, want %d", tc.path, res.StatusCode, tc.status)
		}
		if got := res.Header.Get("Content-Type"); got != tc.ctype {
			t.Errorf("GET %s Content-Type = %q, want %q", tc.path, got, tc.ctype)
		}
		if !strings.Contains(body, tc.body) {
			t.Errorf("GET %s body does not contain %q", tc.path, tc.body)
		}
		if got := res.Header.Get("X-Content-Type-Options"); got != "nosniff" {
			t.Errorf("GET %s X-Content-Type-Options = %q, want nosniff", tc.path, got)
		}
	}
}

func TestPagesHeaders(t *testing.T) {
	h := newPageHandler(pagesHub(t))
	res, _ := get(t, h, "GET", "/d/docs/x", nil)
	if got := res.Header.Get("Cache-Control"); got != "no-store" {
		t.Errorf("editor Cache-Control = %q, want no-store", got)
	}
	csp := res.Header.Get("Content-Security-Policy")
	for _, want := range []string{"script-src 'self'", "connect-src 'self' ws: wss:", "frame-ancestors 'none'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("editor CSP = %q, want it to contain %q", csp, want)
		}
	}
	// Assets revalidate by ETag.
	res, body := get(t, h, "GET", "/static/js/ot.js", nil)
	etag := res.Header.Get("ETag")
	if etag == "" || res.Header.Get("Cache-Control") != "no-cache" {
		t.Fatalf("ot.js ETag = %q, Cache-Control = %q; want an ETag and no-cache", etag, res.Header.Get("Cache-Control"))
	}
	if res.Header.Get("Content-Length") == "" || len(body) == 0 {
		t.Errorf("ot.js Content-Length = %q with %d body bytes", res.Header.Get("Content-Length"), len(body))
	}
	res, body = get(t, h, "GET", "/static/js/ot.js", map[string]string{"If-None-Match": etag})
	if res.StatusCode != http.StatusNotModified || body != "" {
		t.Errorf("GET ot.js If-None-Match = %d with %d bytes, want 304 and none", res.StatusCode, len(body))
	}
	res, _ = get(t, h, "GET", "/static/css/app.css", map[string]string{"If-None-Match": etag})
	if res.StatusCode != http.StatusOK {
		t.Errorf("GET app.css with ot.js's ETag = %d, want 200", res.StatusCode)
	}
	// HEAD works, other methods do not.
	res, body = get(t, h, "HEAD", "/static/css/app.css", nil)
	if res.StatusCode != http.StatusOK || body != "" || res.Header.Get("Content-Type") != "text/css; charset=utf-8" {
		t.Errorf("HEAD app.css = %d, %q, %d bytes; want 200, text/css, none", res.StatusCode, res.Header.Get("Content-Type"), len(body))
	}
	res, _ = get(t, h, "POST", "/d/docs/x", nil)
	if res.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /d/docs/x = %d, want 405", res.StatusCode)
	}
}

func TestPagesListShowsDocuments(t *testing.T) {
	hub := pagesHub(t)
	h := newPageHandler(hub)
	_, body := get(t, h, "GET", "/", nil)
	if !strings.Contains(body, "No documents yet") {
		t.Errorf("empty list page does not say so:\n%s", body)
	}
	createDoc(t, hub, "docs", "first", "one")
	time.Sleep(5 * time.Millisecond) // distinct modification times
	createDoc(t, hub, "docs", "<b>second & last</b>", "two")
	createDoc(t, hub, "notes", "elsewhere", "three")
	_, body = get(t, h, "GET", "/", nil)
	first := strings.Index(body, `href="/d/docs/first"`)
	second := strings.Index(body, `href="/d/docs/%3Cb%3Esecond%20&amp;%20last%3C%2Fb%3E"`)
	if first < 0 || second < 0 {
		t.Fatalf("list page links: first at %d, second at %d, want both:\n%s", first, second, body)
	}
	if second > first {
		t.Errorf("list order: newest (second) at %d after first at %d", second, first)
	}
	if strings.Contains(body, "<b>second") {
		t.Errorf("list page does not escape a document id:\n%s", body)
	}
	_, body = get(t, h, "GET", "/?c=docs", nil)
	if strings.Contains(body, "elsewhere") || !strings.Contains(body, `href="/d/docs/first"`) {
		t.Errorf("list of docs shows a document of notes, or misses its own:\n%s", body)
	}
	_, body = get(t, h, "GET", "/?c=notes", nil)
	if !strings.Contains(body, `href="/d/notes/elsewhere"`) || !strings.Contains(body, `name="c" value="notes"`) {
		t.Errorf("list of notes misses its document or its New button's collection:\n%s", body)
	}
}

// Documents made in any collection, through the HTTP API as much as the
// page, are on the list page, and people can switch between collections.
func TestPagesListShowsEveryCollectionAndSwitchesBetweenThem(t *testing.T) {
	hub := pagesHub(t)
	// httptest.NewRequest's Host is example.com, which the Host check
	// would refuse.
	srv, err := New(Options{Hub: hub, Logger: slog.New(slog.DiscardHandler), AllowedHosts: []string{"example.com"}})
	if err != nil {
		t.Fatal(err)
	}
	h := srv.Handler()
	create := func(coll, id string) {
		t.Helper()
		req := httptest.NewRequest("POST", "/api/docs/"+url.PathEscape(coll)+"/"+url.PathEscape(id)+"/ops",
			strings.NewReader(`{"v":0,"create":{"type":"`+ot.URI+`","data":"x"}}`))
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			t.Fatalf("POST create %s/%s = %d %s", coll, id, rec.Code, rec.Body)
		}
	}
	create("docs", "plain")
	create("reports", "q3")
	create("team notes", "plan & ideas")

	_, body := get(t, h, "GET", "/", nil)
	for _, want := range []string{
		`href="/d/docs/plain"`, `href="/d/reports/q3"`, `href="/d/team%20notes/plan%20&amp;%20ideas"`, // every collection's documents
		`href="/?c=docs"`, `href="/?c=reports"`, `href="/?c=team&#43;notes"`, // and a link to each collection
		`<a href="/" aria-current="page">All</a>`,
		`name="c" value="docs"`, // new documents go to the default collection
	} {
		if !strings.Contains(body, want) {
			t.Errorf("GET / lacks %s:\n%s", want, body)
		}
	}
	_, body = get(t, h, "GET", "/?c=team+notes", nil)
	if !strings.Contains(body, `href="/d/team%20notes/plan%20&amp;%20ideas"`) || strings.Contains(body, `href="/d/reports/q3"`) {
		t.Errorf("GET /?c=team+notes does not show exactly that collection:\n%s", body)
	}
	for _, want := range []string{`data-collection="team notes" aria-current="page"`, `name="c" value="team notes"`, `href="/?c=reports"`} {
		if !strings.Contains(body, want) {
			t.Errorf("GET /?c=team+notes lacks %s:\n%s", want, body)
		}
	}
	// A collection without documents yet can be opened by name.
	_, body = get(t, h, "GET", "/?c=empty", nil)
	if !strings.Contains(body, `data-collection="empty" aria-current="page"`) || !strings.Contains(body, "No documents in this collection yet") {
		t.Errorf("GET /?c=empty:\n%s", body)
	}
	// The editor's home link goes back to the document's collection.
	_, body = get(t, h, "GET", "/d/reports/q3", nil)
	if !strings.Contains(body, `class="brand" href="/?c=reports"`) {
		t.Errorf("editor home link:\n%s", body)
	}
}

func TestPagesNewRedirectsToAFreshDocument(t *testing.T) {
	h := newPageHandler(pagesHub(t))
	seen := map[string]bool{}
	for range 3 {
		res, _ := get(t, h, "GET", "/new", nil)
		loc := res.Header.Get("Location")
		if res.StatusCode != http.StatusSeeOther || !regexp.MustCompile(`^/d/docs/[a-z2-7]{16}$`).MatchString(loc) {
			t.Fatalf("GET /new = %d to %q, want 303 to /d/docs/<16 letters>", res.StatusCode, loc)
		}
		if seen[loc] {
			t.Errorf("GET /new repeated %q", loc)
		}
		seen[loc] = true
	}
	res, _ := get(t, h, "GET", "/new?c=notes", nil)
	if loc := res.Header.Get("Location"); !strings.HasPrefix(loc, "/d/notes/") {
		t.Errorf("GET /new?c=notes to %q, want /d/notes/...", loc)
	}
	// A name starts the id, as a slug, before the random part.
	for name, want := range map[string]string{
		"Budget plan, Q3!":        `budget-plan-q3-`,
		"  Café — Übersicht ":     `caf%C3%A9-%C3%BCbersicht-`,
		"!!!":                     ``,
		strings.Repeat("ab ", 40): strings.Repeat("ab-", 20)[:59] + "-",
	} {
		res, _ := get(t, h, "GET", "/new?name="+url.QueryEscape(name), nil)
		loc := res.Header.Get("Location")
		if !regexp.MustCompile(`^/d/docs/` + regexp.QuoteMeta(want) + `[a-z2-7]{16}$`).MatchString(loc) {
			t.Errorf("GET /new?name=%q to %q, want /d/docs/%s<16 letters>", name, loc, want)
		}
	}
}

func TestPagesEditorEscapesItsDocument(t *testing.T) {
	h := newPageHandler(pagesHub(t))
	_, body := get(t, h, "GET", `/d/notes/%22%3E%3Cscript%3Ex%3C%2Fscript%3E`, nil)
	if strings.Contains(body, "<script>x") {
		t.Fatalf("editor page does not escape the id:\n%s", body)
	}
	if !strings.Contains(body, `data-collection="notes"`) || !strings.Contains(body, `data-id="&#34;&gt;&lt;script&gt;x&lt;/script&gt;"`) {
		t.Errorf("editor page data attributes wrong:\n%s", body)
	}
}

// Every script, stylesheet and module import the pages name must be served.
func TestPagesReferencesResolve(t *testing.T) {
	h := newPageHandler(pagesHub(t))
	refs := regexp.MustCompile(`(?:src|href)="(/static/[^"]+)"`)
	imports := regexp.MustCompile(`(?m)^import [^;]*from '\./([^']+)'`)
	todo := []string{}
	for _, page := range []string{"/", "/d/docs/x", "/nowhere"} {
		_, body := get(t, h, "GET", page, nil)
		for _, m := range refs.FindAllStringSubmatch(body, -1) {
			todo = append(todo, m[1])
		}
	}
	seen := map[string]bool{}
	for len(todo) > 0 {
		p := todo[0]
		todo = todo[1:]
		if seen[p] {
			continue
		}
		seen[p] = true
		res, body := get(t, h, "GET", p, nil)
		if res.StatusCode != http.StatusOK {
			t.Errorf("GET %s (referenced) = %d, want 200", p, res.StatusCode)
			continue
		}
		if strings.HasSuffix(p, ".js") {
			for _, m := range imports.FindAllStringSubmatch(body, -1) {
				todo = append(todo, "/static/js/"+m[1])
			}
		}
	}
	for _, want := range []string{"/static/js/app.js", "/static/js/ot.js", "/static/js/overlay.js", "/static/css/app.css"} {
		if !seen[want] {
			t.Errorf("%s is not reachable from the pages", want)
		}
	}
}
