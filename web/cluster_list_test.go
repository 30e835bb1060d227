package web

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/coedit/coedit/internal/redistest"
)

// listDocs returns the keys GET path lists on ts, in order.
func listDocs(t *testing.T, ts *testServer, path string) []string {
	t.Helper()
	status, body := ts.httpDo(t, "GET", path, "", "", nil)
	if status != 200 {
		t.Fatalf("GET %s = %d %s", path, status, body)
	}
	var out struct {
		Docs []docInfo `json:"docs"`
	}
	if err := json.Unmarshal([]byte(body), &out); err != nil {
		t.Fatalf("GET %s: %v in %s", path, err, body)
	}
	keys := make([]string, len(out.Docs))
	for i, d := range out.Docs {
		keys[i] = d.Collection + "/" + d.ID
	}
	return keys
}

// TestClusterListsEveryNodesDocs: GET /api/docs on node B lists the
// documents created and edited on node A, which B's own store never saw,
// newest change first, with the collection filter and limit of a single
// node; the page's document list follows.
func TestClusterListsEveryNodesDocs(t *testing.T) {
	rs := redistest.StartServer(t, redistest.ServerOptions{})
	a := startClusterServer(t, rs.Addr())
	b := startClusterServer(t, rs.Addr())
	ca := a.connect(t)
	ca.create("notes", "first", "one", 1)
	ca.create("notes", "second", "two", 2)
	ca.create("memos", "third", "three", 3)
	cb := b.connect(t)
	cb.create("notes", "fourth", "four", 1)

	want := "notes/fourth memos/third notes/second notes/first"
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := strings.Join(listDocs(t, b, "/api/docs"), " ")
		if got == want {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("node B: GET /api/docs lists %q, want %q", got, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got := strings.Join(listDocs(t, b, "/api/docs?collection=notes&limit=2"), " "); got != "notes/fourth notes/second" {
		t.Errorf("node B: GET /api/docs?collection=notes&limit=2 lists %q, want %q", got, "notes/fourth notes/second")
	}
	if got := strings.Join(listDocs(t, a, "/api/docs?collection=memos"), " "); got != "memos/third" {
		t.Errorf("node A: GET /api/docs?collection=memos lists %q, want %q", got, "memos/third")
	}
	// An edit on A moves its document to the top on B, at its version.
	ca.sendf(`{"a":"op","c":"notes","d":"first","v":1,"seq":4,"op":[3,"!"]}`)
	ca.expectf(`{"a":"op","c":"notes","d":"first","v":1,"src":%q,"seq":4}`, ca.src)
	deadline = time.Now().Add(10 * time.Second)
	for {
		status, body := b.httpDo(t, "GET", "/api/docs?limit=1", "", "", nil)
		if status == 200 && strings.Contains(body, `"collection":"notes","id":"first","v":2,`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("node B: GET /api/docs?limit=1 = %d %s, want notes/first at v 2", status, body)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// The page's list on B shows A's documents.
	status, page := b.httpDo(t, "GET", "/", "", "", nil)
	if status != 200 || !strings.Contains(page, "/d/memos/third") {
		t.Errorf("node B: GET / = %d, want a link to memos/third in:\n%s", status, page)
	}
}
