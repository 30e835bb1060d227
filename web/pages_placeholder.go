package web

import "net/http"

// newPageHandler stands in for the browser page (web/pages.go, written
// separately) until it lands; delete this file then. It serves a short
// notice at / and 404 elsewhere.
func newPageHandler(docs DocLister) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Write([]byte("coedit: the editing page is not built into this binary yet; the WebSocket is at /ws\n"))
	})
}
