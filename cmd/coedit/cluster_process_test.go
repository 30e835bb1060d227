package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coedit/coedit/internal/redistest"
)

// snapshotOf returns GET /api/docs/{c}/{id} of a node.
func snapshotOf(t *testing.T, base, path string) (v int, data string) {
	t.Helper()
	status, body := fetchURL(t, base+"/api/docs/"+path)
	var s struct {
		V    int    `json:"v"`
		Data string `json:"data"`
	}
	if status != http.StatusOK || json.Unmarshal([]byte(body), &s) != nil {
		t.Fatalf("GET %s = %d %s", path, status, body)
	}
	return s.V, s.Data
}

// TestServeClusterProcesses: three `coedit serve --redis` processes over
// one redis-server take HTTP writes on the same document at once; every
// node then serves the same text and op log, /ready follows Redis
// (503 while it is stopped), and /metrics has the Redis latencies.
func TestServeClusterProcesses(t *testing.T) {
	rs := redistest.StartServer(t, redistest.ServerOptions{})
	var nodes []*child
	for i := range 3 {
		nodes = append(nodes, startServe(t, t.TempDir(), "--sync", "none", "--redis", rs.Addr(),
			"--redis-prefix", "proc:", "--node-id", fmt.Sprintf("n%d", i)))
	}
	for i, n := range nodes {
		if !strings.Contains(n.logs.String(), fmt.Sprintf(`msg="coedit joins a cluster" node=n%d`, i)) {
			t.Fatalf("node %d does not log its node id:\n%s", i, n.logs)
		}
	}
	if status, body := postJSON(t, nodes[0].url+"/api/docs/notes/shared/ops", `{"create":{"type":"text-unicode","data":""}}`); status != http.StatusOK {
		t.Fatalf("create = %d %s", status, body)
	}
	var wg sync.WaitGroup
	const edits = 15
	for i, n := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for seq := 1; seq <= edits; seq++ {
				v, _ := snapshotOf(t, n.url, "notes/shared")
				body := fmt.Sprintf(`{"v":%d,"src":"w%d","seq":%d,"op":["%d."]}`, v, i, seq, i)
				if status, reply := postJSON(t, n.url+"/api/docs/notes/shared/ops", body); status != http.StatusOK {
					t.Errorf("node %d: POST %s = %d %s", i, body, status, reply)
					return
				}
			}
		}()
	}
	wg.Wait()
	v0, text0 := snapshotOf(t, nodes[0].url, "notes/shared")
	if v0 != 1+3*edits || len(text0) != 3*edits*2 {
		t.Fatalf("node 0 has version %d, text %q; want %d edits", v0, text0, 3*edits)
	}
	_, ops0 := fetchURL(t, nodes[0].url+"/api/docs/notes/shared/ops")
	for i, n := range nodes[1:] {
		if v, text := snapshotOf(t, n.url, "notes/shared"); v != v0 || text != text0 {
			t.Fatalf("node %d: version %d text %q, node 0: %d %q", i+1, v, text, v0, text0)
		}
		if _, ops := fetchURL(t, n.url+"/api/docs/notes/shared/ops"); ops != ops0 {
			t.Fatalf("node %d's op log differs from node 0's:\n%s\n%s", i+1, ops, ops0)
		}
	}

	if status, body := fetchURL(t, nodes[1].url+"/ready"); status != http.StatusOK {
		t.Fatalf("/ready = %d %s, want 200", status, body)
	}
	_, body := fetchURL(t, nodes[1].url+"/metrics")
	// The latencies, and a counter from each of the relay, its presence,
	// the cluster and the hub.
	for _, want := range []string{`coedit_redis_call_seconds_bucket{op="commit"`, "\ncoedit_redis_commits_total ",
		"\ncoedit_presence_published_total ", "\ncoedit_cluster_seeds_total ", "\ncoedit_cluster_syncs_total "} {
		if !strings.Contains(body, want) {
			t.Fatalf("/metrics lacks %q:\n%s", want, body)
		}
	}
	rs.Pause()
	status, body := fetchURL(t, nodes[1].url+"/ready")
	rs.Resume()
	if status != http.StatusServiceUnavailable || !strings.Contains(body, "redis") {
		t.Fatalf("/ready while Redis is stopped = %d %s, want 503 naming redis", status, body)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if status, _ := fetchURL(t, nodes[1].url+"/ready"); status == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/ready not 200 again after Redis resumed")
		}
		time.Sleep(50 * time.Millisecond)
	}
}
