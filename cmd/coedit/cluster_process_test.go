package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

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
	for _, want := range []string{`coedit_redis_call_seconds_bucket{op="commit"`, `coedit_redis_call_errors_total{op="commit"} 0`, "\ncoedit_redis_commits_total ",
		"\ncoedit_presence_published_total ", "\ncoedit_cluster_seeds_total ", "\ncoedit_cluster_syncs_total "} {
		if !strings.Contains(body, want) {
			t.Fatalf("/metrics lacks %q:\n%s", want, body)
		}
	}
	rs.Pause()
	start := time.Now()
	status, body := fetchURL(t, nodes[1].url+"/ready")
	took := time.Since(start)
	rs.Resume()
	if status != http.StatusServiceUnavailable || !strings.Contains(body, "redis") {
		t.Fatalf("/ready while Redis is stopped = %d %s, want 503 naming redis", status, body)
	}
	// A probe's timeout is a second by default (Kubernetes): the 503
	// must come well before it would give up (it took 5 s).
	if took > 3*time.Second {
		t.Fatalf("/ready while Redis is stopped took %v, want its 503 within a probe's timeout", took)
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

// TestServeSaysRedisDoesNotAnswer: a node whose Redis does not answer (a
// mistyped --redis, here a closed port) warns at start, and go-redis's
// own lines (its pool failing to dial) come out through the node's
// logger in its format, not as go-redis's plain "redis: " lines; once a
// Redis answers there, the node says so.
func TestServeSaysRedisDoesNotAnswer(t *testing.T) {
	rs := redistest.StartServer(t, redistest.ServerOptions{})
	rs.Kill() // its port is closed until Restart
	n := startServe(t, t.TempDir(), "--sync", "none", "--redis", rs.Addr())
	waitLog := func(want string) {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		for !strings.Contains(n.logs.String(), want) {
			if time.Now().After(deadline) {
				t.Fatalf("no %q in the logs within 15 s:\n%s", want, n.logs)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitLog(`level=WARN msg="redis does not answer`)
	if status, body := fetchURL(t, n.url+"/api/docs/notes/x"); status != http.StatusServiceUnavailable {
		t.Fatalf("GET a document without Redis = %d %s, want 503", status, body)
	}
	waitLog(`msg="redis client: `)
	for _, line := range strings.Split(n.logs.String(), "\n") {
		if strings.HasPrefix(line, "redis: ") {
			t.Fatalf("go-redis logged past the node's logger: %q", line)
		}
	}
	rs.Restart()
	waitLog(`msg="redis answers: the node serves documents"`)
}

// TestServeRoutesEditorsByDocument: two `coedit serve --redis
// --advertise` processes pass each document's WebSocket editors to one of
// them, so editors that all reach node 1 are served by both nodes, each
// document by one; a node killed with SIGKILL takes its passed
// connections with it, and an editor that reconnects is served by the
// node it reaches, with every acknowledged op.
func TestServeRoutesEditorsByDocument(t *testing.T) {
	rs := redistest.StartServer(t, redistest.ServerOptions{})
	var nodes []*child
	for i := range 2 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		nodes = append(nodes, startServe(t, t.TempDir(), "--sync", "none", "--redis", rs.Addr(),
			"--redis-prefix", "route:", "--node-id", fmt.Sprintf("n%d", i), "--addr", addr, "--advertise", addr))
	}
	metric := func(n *child, name string) float64 {
		t.Helper()
		_, body := fetchURL(t, n.url+"/metrics")
		v := metricValue(body, name)
		if v < 0 {
			t.Fatalf("/metrics lacks %s", name)
		}
		return v
	}
	deadline := time.Now().Add(20 * time.Second)
	for metric(nodes[0], "coedit_cluster_members") != 2 || metric(nodes[1], "coedit_cluster_members") != 2 {
		if time.Now().After(deadline) {
			t.Fatal("the nodes do not know each other after 20 s")
		}
		time.Sleep(100 * time.Millisecond)
	}
	dial := func(doc, id string) (*websocket.Conn, string) {
		t.Helper()
		ws, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(nodes[0].url, "http")+"/ws?doc=notes/"+doc, nil)
		if err != nil {
			t.Fatal(err)
		}
		idJSON := "null"
		if id != "" {
			idJSON = strconv.Quote(id)
		}
		ws.SetReadDeadline(time.Now().Add(10 * time.Second))
		ws.WriteMessage(websocket.TextMessage, []byte(`{"a":"hs","id":`+idJSON+`,"protocol":1,"protocolMinor":2}`))
		var hs struct{ A, ID string }
		if err := ws.ReadJSON(&hs); err != nil || hs.A != "hs" {
			t.Fatalf("handshake: %v %+v", err, hs)
		}
		return ws, hs.ID
	}
	// Twenty documents, an editor of each at node 1, each editor's create
	// acknowledged and one op.
	type editor struct {
		ws  *websocket.Conn
		src string
	}
	eds := make([]editor, 20)
	for i := range eds {
		ws, src := dial(fmt.Sprint("d", i), "")
		eds[i] = editor{ws, src}
		ws.WriteMessage(websocket.TextMessage, []byte(fmt.Sprintf(`{"a":"op","c":"notes","d":"d%d","v":null,"seq":1,"create":{"type":"text-unicode","data":""}}`, i)))
		ws.WriteMessage(websocket.TextMessage, []byte(fmt.Sprintf(`{"a":"op","c":"notes","d":"d%d","v":1,"seq":2,"op":["e%d"]}`, i, i)))
		for seq := 1; seq <= 2; seq++ {
			var ack struct {
				A     string
				Seq   int
				Error any
			}
			if err := ws.ReadJSON(&ack); err != nil || ack.A != "op" || ack.Seq != seq || ack.Error != nil {
				t.Fatalf("d%d: ack %d = %+v, %v", i, seq, ack, err)
			}
		}
	}
	passed := metric(nodes[0], "coedit_ws_passed_total")
	if passed == 0 || passed == 20 {
		t.Fatalf("node 1 passed %v of 20 editors to node 2, want some and not all", passed)
	}
	if got := metric(nodes[1], "coedit_connections"); got != passed {
		t.Fatalf("node 2 holds %v connections, want the %v node 1 passed", got, passed)
	}
	if c0, c1 := metric(nodes[0], "coedit_redis_conflicts_total"), metric(nodes[1], "coedit_redis_conflicts_total"); c0+c1 != 0 {
		t.Fatalf("%v and %v commit conflicts, want none: each document has one node", c0, c1)
	}

	// Kill node 2: the editors passed to it lose their connections; each
	// reconnects to node 1 (which cannot reach node 2) and finds its op.
	nodes[1].cmd.Process.Kill()
	nodes[1].wait(t)
	lost := 0
	for i, e := range eds {
		e.ws.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		if _, _, err := e.ws.ReadMessage(); err == nil || !isTimeout(err) {
			lost++
			ws, _ := dial(fmt.Sprint("d", i), e.src)
			ws.WriteMessage(websocket.TextMessage, []byte(fmt.Sprintf(`{"a":"f","c":"notes","d":"d%d"}`, i)))
			var f struct {
				A    string
				Data struct {
					V    int
					Data string
				}
			}
			if err := ws.ReadJSON(&f); err != nil || f.A != "f" || f.Data.V != 2 || f.Data.Data != fmt.Sprint("e", i) {
				t.Fatalf("d%d after node 2 died: %+v, %v; want version 2 %q", i, f, err, fmt.Sprint("e", i))
			}
			ws.Close()
		}
		e.ws.Close()
	}
	if float64(lost) != passed {
		t.Fatalf("%d editors lost their connection when node 2 died, want the %v passed to it", lost, passed)
	}
	if metric(nodes[0], "coedit_ws_pass_failures_total") == 0 {
		t.Fatal("no pass to the dead node failed: were the reconnects served by node 1 at all?")
	}
}

// isTimeout reports whether err is a read deadline passing.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
