package web

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"embed"
	"encoding/base32"
	"encoding/hex"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"path"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/coedit/coedit/collab"
)

// The browser page is plain ES modules, CSS and HTML templates, embedded
// as they are: no bundler and no build step. Its JavaScript tests live in
// static/test (run with node --test) and are not served.
var (
	//go:embed static/js/*.js static/css/*.css static/favicon.svg
	staticFiles embed.FS

	//go:embed static/pages/*.html
	pageFiles embed.FS
)

// defaultCollection is the collection new documents go to when the URL
// names none.
const defaultCollection = "docs"

// listLimit is the most documents the list page shows.
const listLimit = 200

// collectionScan is how many of the most recently changed documents (in
// every collection) the list page reads to name the collections people
// can switch to. The store keeps no list of collections, and this bounds
// the page's cost whatever the number of documents; a collection whose
// every document is older is still reached by typing its name.
const collectionScan = 1000

// maxNameBytes bounds a collection or document id taken from a URL.
const maxNameBytes = 256

// contentTypes maps the extensions of embedded assets to their types, so
// they do not depend on the host's MIME tables.
var contentTypes = map[string]string{
	".js":   "text/javascript; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".svg":  "image/svg+xml",
	".html": "text/html; charset=utf-8",
	".json": "application/json",
	".png":  "image/png",
}

// asset is one embedded file ready to serve.
type asset struct {
	body  []byte
	ctype string
	etag  string
}

// pageHandler serves the document list (/), new documents (/new), the
// editor (/d/{collection}/{id}) and the embedded assets (/static/...).
type pageHandler struct {
	docs   DocLister
	mux    *http.ServeMux
	tmpl   *template.Template
	assets map[string]asset
}

// pageTemplates parses the embedded templates once; they are part of the
// binary, so a parse error is a build mistake and the tests catch it.
var pageTemplates = template.Must(template.ParseFS(pageFiles, "static/pages/*.html"))

// loadAssets reads the embedded assets with their ETags.
func loadAssets() map[string]asset {
	out := make(map[string]asset)
	err := fs.WalkDir(staticFiles, "static", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		body, err := staticFiles.ReadFile(p)
		if err != nil {
			return err
		}
		ctype, ok := contentTypes[path.Ext(p)]
		if !ok {
			ctype = "application/octet-stream"
		}
		sum := sha256.Sum256(body)
		out[strings.TrimPrefix(p, "static/")] = asset{body: body, ctype: ctype, etag: `"` + hex.EncodeToString(sum[:12]) + `"`}
		return nil
	})
	if err != nil {
		// The files are compiled in; reading them cannot fail.
		panic("web: reading embedded assets: " + err.Error())
	}
	return out
}

var embeddedAssets = loadAssets()

// newPageHandler returns the handler for the browser pages. docs lists the
// documents on the index page.
func newPageHandler(docs DocLister) http.Handler {
	h := &pageHandler{docs: docs, mux: http.NewServeMux(), tmpl: pageTemplates, assets: embeddedAssets}
	h.mux.HandleFunc("GET /{$}", h.serveList)
	h.mux.HandleFunc("GET /new", h.serveNew)
	h.mux.HandleFunc("GET /d/{collection}/{id}", h.serveEditor)
	h.mux.HandleFunc("GET /static/{file...}", h.serveAsset)
	h.mux.HandleFunc("GET /", h.serveNotFound)
	return h
}

// ServeHTTP sets the headers every page shares and dispatches.
func (h *pageHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hd := w.Header()
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Referrer-Policy", "same-origin")
	h.mux.ServeHTTP(w, r)
}

// setPageHeaders marks an HTML page: never cached (it shows live data),
// no inline script, not framed.
func setPageHeaders(w http.ResponseWriter) {
	hd := w.Header()
	hd.Set("Content-Type", "text/html; charset=utf-8")
	hd.Set("Cache-Control", "no-store")
	hd.Set("Content-Security-Policy",
		"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "+
			"connect-src 'self' ws: wss:; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
	hd.Set("X-Frame-Options", "DENY")
}

// listRow is one document on the list page.
type listRow struct {
	Collection  string
	ID          string
	URL         string
	Version     uint64
	Deleted     bool
	Modified    string
	ModifiedISO string
}

// collectionLink is one entry of the list page's collection switcher.
type collectionLink struct {
	Name    string
	URL     string
	Current bool
}

// collection reads the ?c= collection ("" when the URL names none); when
// it is not a valid name it answers 400 and returns false.
func (h *pageHandler) collection(w http.ResponseWriter, r *http.Request) (string, bool) {
	coll := r.URL.Query().Get("c")
	if coll != "" && !validName(coll) {
		h.renderError(w, http.StatusBadRequest, "Bad collection name", "A collection name is 1 to 256 bytes of text without control characters.")
		return "", false
	}
	return coll, true
}

// serveList shows the most recently changed documents of one collection
// (?c=name) or, without ?c, of every collection, with links to switch
// between the collections that hold recent documents.
func (h *pageHandler) serveList(w http.ResponseWriter, r *http.Request) {
	coll, ok := h.collection(w, r)
	if !ok {
		return
	}
	// Store.List returns the newest change first, the order shown.
	recent, err := h.docs.List(r.Context(), "", collectionScan)
	infos := recent
	if err == nil && coll != "" {
		infos, err = h.docs.List(r.Context(), coll, listLimit+1)
	}
	if err != nil {
		h.renderError(w, http.StatusServiceUnavailable, "Documents unavailable", "The document list could not be read: "+err.Error())
		return
	}
	more := len(infos) > listLimit
	if more {
		infos = infos[:listLimit]
	}
	rows := make([]listRow, 0, len(infos))
	for _, d := range infos {
		row := listRow{Collection: d.Key.Collection, ID: d.Key.ID, URL: editorURL(d.Key), Version: d.Version, Deleted: d.Type == ""}
		if d.Modified > 0 {
			t := time.UnixMilli(d.Modified).UTC()
			row.Modified = t.Format("2 Jan 2006, 15:04 UTC")
			row.ModifiedISO = t.Format(time.RFC3339)
		}
		rows = append(rows, row)
	}
	newIn := coll
	if newIn == "" {
		newIn = defaultCollection
	}
	h.render(w, http.StatusOK, "list.html", map[string]any{
		"Collection":  coll,
		"NewIn":       newIn,
		"Collections": collectionLinks(recent, coll),
		"Docs":        rows,
		"More":        more,
	})
}

// collectionLinks names the collections of recent, in name order, with
// current among them even when none of its documents is recent.
func collectionLinks(recent []collab.DocInfo, current string) []collectionLink {
	seen := map[string]bool{defaultCollection: true}
	if current != "" {
		seen[current] = true
	}
	for _, d := range recent {
		seen[d.Key.Collection] = true
	}
	names := make([]string, 0, len(seen))
	for n := range seen {
		names = append(names, n)
	}
	slices.Sort(names)
	links := make([]collectionLink, len(names))
	for i, n := range names {
		links[i] = collectionLink{Name: n, URL: listURL(n), Current: n == current}
	}
	return links
}

// serveNew sends the browser to a fresh document in ?c= (default
// defaultCollection); the editor creates it when it opens (GET changes
// nothing on the server).
func (h *pageHandler) serveNew(w http.ResponseWriter, r *http.Request) {
	coll, ok := h.collection(w, r)
	if !ok {
		return
	}
	if coll == "" {
		coll = defaultCollection
	}
	id := newDocID()
	if slug := slugOf(r.URL.Query().Get("name")); slug != "" {
		// The name reads in the address, the list and the tab; the random
		// part keeps the address as hard to guess as without one.
		id = slug + "-" + id
	}
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, editorURL(collab.Key{Collection: coll, ID: id}), http.StatusSeeOther)
}

func (h *pageHandler) serveEditor(w http.ResponseWriter, r *http.Request) {
	coll, id := r.PathValue("collection"), r.PathValue("id")
	if !validName(coll) || !validName(id) {
		h.renderError(w, http.StatusBadRequest, "Bad document address", "A collection or document name is 1 to 256 bytes of text without control characters.")
		return
	}
	h.render(w, http.StatusOK, "editor.html", map[string]any{"Collection": coll, "ID": id})
}

func (h *pageHandler) serveAsset(w http.ResponseWriter, r *http.Request) {
	a, ok := h.assets[r.PathValue("file")]
	if !ok {
		http.Error(w, "404 page not found", http.StatusNotFound)
		return
	}
	hd := w.Header()
	hd.Set("Content-Type", a.ctype)
	// Revalidate every time: module imports carry no version in their
	// URLs, so the ETag is what keeps a browser from mixing old and new
	// files after an upgrade. A revalidation costs a 304.
	hd.Set("Cache-Control", "no-cache")
	hd.Set("ETag", a.etag)
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(a.body))
}

func (h *pageHandler) serveNotFound(w http.ResponseWriter, r *http.Request) {
	h.renderError(w, http.StatusNotFound, "Not found", "There is no page at this address.")
}

func (h *pageHandler) renderError(w http.ResponseWriter, status int, title, msg string) {
	h.render(w, status, "notfound.html", map[string]any{"Title": title, "Message": msg})
}

// render executes a template into a buffer first, so a failure is a clean
// 500 rather than half a page.
func (h *pageHandler) render(w http.ResponseWriter, status int, name string, data any) {
	var buf bytes.Buffer
	if err := h.tmpl.ExecuteTemplate(&buf, name, data); err != nil {
		http.Error(w, "rendering "+name+": "+err.Error(), http.StatusInternalServerError)
		return
	}
	setPageHeaders(w)
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}

// editorURL is the shareable address of a document's editor.
func editorURL(k collab.Key) string {
	return "/d/" + url.PathEscape(k.Collection) + "/" + url.PathEscape(k.ID)
}

// listURL is the address of a collection's document list.
func listURL(collection string) string {
	return "/?c=" + url.QueryEscape(collection)
}

// validName reports whether s can name a collection or document: 1 to
// maxNameBytes bytes of valid UTF-8 without control characters.
func validName(s string) bool {
	return checkName("name", s, maxNameBytes) == nil
}

// slugOf turns a document's name into the start of its id: lower-case
// letters and digits of any script, runs of anything else as one "-", at
// most slugMax bytes, cut at a character; "" when nothing is left.
func slugOf(name string) string {
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(name) {
		if unicode.IsLetter(r) || unicode.IsDigit(r) {
			if dash && b.Len() > 0 {
				b.WriteByte('-')
			}
			dash = false
			if b.Len()+utf8.RuneLen(r) > slugMax {
				break
			}
			b.WriteRune(r)
		} else {
			dash = true
		}
	}
	return strings.TrimSuffix(b.String(), "-")
}

// slugMax bounds the name part of a new document's id.
const slugMax = 60

// docIDEncoding spells new document ids in lower-case letters and digits.
var docIDEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// newDocID returns a random id that nobody will guess or reuse by chance
// (80 bits).
func newDocID() string {
	var b [10]byte
	rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return docIDEncoding.EncodeToString(b[:])
}
