package web

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/redis/go-redis/v9"

	"github.com/coedit/coedit/collab"
	"github.com/coedit/coedit/collab/redisrelay"
	"github.com/coedit/coedit/internal/redistest"
	"github.com/coedit/coedit/storage"
)

// startClusterServer starts a server whose hub is a node of a cluster
// over the Redis at addr, with a short RetryFor so that an unreachable
// Redis shows quickly.
func startClusterServer(t *testing.T, addr string) *testServer {
	t.Helper()
	ts, _ := startClusterNode(t, addr, "web:"+t.Name()+":", nil)
	return ts
}

// startClusterNode is startClusterServer with the Redis key prefix given
// (nodes with one prefix are one cluster) and, with ro set, a roster
// that routes each document's editors to one node: the node joins it at
// its listener's address.
func startClusterNode(t *testing.T, addr, prefix string, ro *redisrelay.RosterOptions) (*testServer, *redisrelay.Roster) {
	t.Helper()
	store, err := storage.Open(filepath.Join(t.TempDir(), "coedit.db"), storage.Options{Sync: storage.SyncNone})
	if err != nil {
		t.Fatalf("storage.Open: %v", err)
	}
	client := redis.NewClient(&redis.Options{Addr: addr, ContextTimeoutEnabled: true, MaxRetries: 1})
	relay, err := redisrelay.New(redisrelay.Options{Client: client, Prefix: prefix, NodeID: "web", Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	cl, err := redisrelay.NewCluster(redisrelay.ClusterOptions{Relay: relay, Store: store, RetryFor: 300 * time.Millisecond, CallTimeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	hub := collab.NewHub(collab.Options{Store: store, Relay: cl, Sequencer: cl, Logger: quiet})
	hs := httptest.NewUnstartedServer(nil)
	opts := Options{Hub: hub, Logger: quiet}
	var roster *redisrelay.Roster
	if ro != nil {
		if roster, err = relay.NewRoster(hs.Listener.Addr().String(), *ro); err != nil {
			t.Fatal(err)
		}
		opts.Router = roster
	}
	srv, err := New(opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	hs.Config.Handler = srv.Handler()
	hs.Start()
	ts := &testServer{t: t, srv: srv, hub: hub, store: store, http: hs,
		wsURL: "ws" + strings.TrimPrefix(hs.URL, "http") + "/ws"}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if roster != nil {
			roster.Close()
		}
		if err := srv.Close(ctx); err != nil {
			t.Errorf("Server.Close: %v", err)
		}
		hs.Close()
		if err := hub.Close(ctx); err != nil {
			t.Errorf("Hub.Close: %v", err)
		}
		relay.Close()
		client.Close()
		if err := store.Check(ctx); err != nil {
			t.Errorf("store.Check: %v", err)
		}
		if err := store.Close(); err != nil {
			t.Errorf("store.Close: %v", err)
		}
	})
	return ts, roster
}

// TestUnavailableCommitPointClosesWith1012: while the cluster's Redis
// does not answer (SIGSTOP), a WebSocket submit closes the connection
// with 1012 instead of an error reply (which would make the client roll
// the op back), and the HTTP API answers 503 ERR_UNAVAILABLE with
// Retry-After. Once Redis answers again the client reconnects, reclaims
// its src and resends: the op lands once.
func TestUnavailableCommitPointClosesWith1012(t *testing.T) {
	rs := redistest.StartServer(t, redistest.ServerOptions{})
	ts := startClusterServer(t, rs.Addr())
	c := ts.connect(t)
	c.create("docs", "x", "base", 1)

	rs.Pause()
	resumed := false
	defer func() {
		if !resumed {
			rs.Resume()
		}
	}()
	op := `{"a":"op","c":"docs","d":"x","v":1,"seq":2,"op":["!"]}`
	c.sendRaw(op)
	if err := c.closeErr(10 * time.Second); !websocket.IsCloseError(err, CloseRetry) {
		t.Fatalf("submit while Redis is paused ended the socket with %v, want close %d", err, CloseRetry)
	}
	req, _ := http.NewRequest("POST", ts.http.URL+"/api/docs/docs/x/ops", strings.NewReader(`{"v":1,"op":["?"]}`))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("HTTP submit while Redis is paused = %d, Retry-After %q; want 503 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	rs.Resume()
	resumed = true

	again := ts.dial(t, nil)
	again.handshake(c.src)
	again.sendRaw(op)
	again.expectf(`{"a":"op","c":"docs","d":"x","v":1,"src":%q,"seq":2}`, c.src)
	again.sendRaw(`{"a":"f","c":"docs","d":"x"}`)
	again.expectf(`{"a":"f","c":"docs","d":"x","data":{"v":2,"data":"!base","type":%q}}`, textURI)
}

// TestClusterSubmitsWithoutSrcAreEachTheirOwn: two HTTP submits without
// src of the same op at the same version, one to each node of a cluster
// at the same moment, are two ops: each is acknowledged at a version of
// its own and the document holds both. Without a src of their own, the
// records were byte-identical when made in the same millisecond, and the
// commit point took the second for a repeat of the first: both were
// acknowledged at one version and one edit was lost.
func TestClusterSubmitsWithoutSrcAreEachTheirOwn(t *testing.T) {
	rs := redistest.StartServer(t, redistest.ServerOptions{})
	prefix := "web:" + t.Name() + ":"
	a, _ := startClusterNode(t, rs.Addr(), prefix, nil)
	b, _ := startClusterNode(t, rs.Addr(), prefix, nil)
	if status, body := a.httpDo(t, "POST", "/api/docs/notes/twins/ops", "application/json", `{"v":null,"create":{"type":"text-unicode","data":""}}`, nil); status != http.StatusOK {
		t.Fatalf("create = %d %s", status, body)
	}
	const rounds = 30
	acked := make(map[float64]bool)
	for v := 1; v < 1+2*rounds; v += 2 {
		var wg sync.WaitGroup
		replies := make([]string, 2)
		for i, ts := range []*testServer{a, b} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				status, body := ts.httpDo(t, "POST", "/api/docs/notes/twins/ops", "application/json", fmt.Sprintf(`{"v":%d,"op":["x"]}`, v), nil)
				if status != http.StatusOK {
					t.Errorf("POST at v%d = %d %s", v, status, body)
				}
				replies[i] = body
			}()
		}
		wg.Wait()
		for _, body := range replies {
			var rec map[string]any
			if err := json.Unmarshal([]byte(body), &rec); err != nil {
				t.Fatalf("reply %q: %v", body, err)
			}
			ver, _ := rec["v"].(float64)
			if acked[ver] {
				t.Fatalf("round at v%d: two submits acknowledged at version %v", v, ver)
			}
			acked[ver] = true
		}
	}
	status, body := b.httpDo(t, "GET", "/api/docs/notes/twins", "", "", nil)
	var snap struct {
		V    int    `json:"v"`
		Data string `json:"data"`
	}
	if status != http.StatusOK || json.Unmarshal([]byte(body), &snap) != nil {
		t.Fatalf("GET = %d %s", status, body)
	}
	if snap.V != 1+2*rounds || snap.Data != strings.Repeat("x", 2*rounds) {
		t.Fatalf("after %d acknowledged inserts the document is v%d %q, want v%d with %d x", 2*rounds, snap.V, snap.Data, 1+2*rounds, 2*rounds)
	}
}
