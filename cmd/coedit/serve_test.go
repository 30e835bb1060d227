package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/coedit/coedit/storage"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// TestStoreOptions checks that --commit-wait reaches the store, and that
// its 0 turns the wait off rather than taking the store's default.
func TestStoreOptions(t *testing.T) {
	for _, c := range []struct {
		flag time.Duration
		want time.Duration
	}{{0, -1}, {200 * time.Microsecond, 200 * time.Microsecond}, {time.Millisecond, time.Millisecond}} {
		if got := (serveConfig{CommitWait: c.flag}).storeOptions().CompanyWait; got != c.want {
			t.Errorf("--commit-wait %v: storage CompanyWait %v, want %v", c.flag, got, c.want)
		}
	}
}

func TestParseServeFlags(t *testing.T) {
	secretFile := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secretFile, []byte(testSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	def := serveConfig{Addr: "127.0.0.1:8080", DataDir: "./coedit-data", Sync: storage.SyncAlways, LogLevel: slog.LevelInfo, LogFormat: "text",
		ShutdownTimeout: 15 * time.Second, OpsPerSecond: 100, MaxDocLen: 16 << 20, MaxConns: 10000, MaxConnsPerAddr: 256, RedisPrefix: "coedit:", NodeTTL: 15 * time.Second,
		CommitWait: 200 * time.Microsecond}
	with := func(f func(*serveConfig)) serveConfig {
		c := def
		f(&c)
		return c
	}
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
		want serveConfig
	}{
		{"defaults", nil, nil, def},
		{"flags", []string{"--addr", "localhost:9000", "--data", "/srv/coedit", "--sync", "none", "--log-level", "debug", "--log-format", "json", "--shutdown-timeout", "3s",
			"--ops-per-second", "5000", "--origins", "https://a.example, http://b.example:8080", "--max-doc", "1000"}, nil,
			with(func(c *serveConfig) {
				c.Addr, c.DataDir, c.Sync, c.LogLevel, c.LogFormat, c.ShutdownTimeout = "localhost:9000", "/srv/coedit", storage.SyncNone, slog.LevelDebug, "json", 3*time.Second
				c.OpsPerSecond, c.Origins, c.MaxDocLen = 5000, []string{"https://a.example", "http://b.example:8080"}, 1000
			})},
		{"env", nil, map[string]string{"COEDIT_ADDR": "127.0.0.1:1", "COEDIT_DATA": "d", "COEDIT_SYNC": "none", "COEDIT_INSECURE": "true",
			"COEDIT_LOG_LEVEL": "warn", "COEDIT_LOG_FORMAT": "json", "COEDIT_SHUTDOWN_TIMEOUT": "1m",
			"COEDIT_OPS_PER_SECOND": "0.5", "COEDIT_ORIGINS": "*", "COEDIT_MAX_DOC": "7"},
			with(func(c *serveConfig) {
				c.Addr, c.DataDir, c.Sync, c.Insecure = "127.0.0.1:1", "d", storage.SyncNone, true
				c.LogLevel, c.LogFormat, c.ShutdownTimeout = slog.LevelWarn, "json", time.Minute
				c.OpsPerSecond, c.Origins, c.MaxDocLen = 0.5, []string{"*"}, 7
			})},
		{"flag beats env", []string{"--sync=always", "--insecure=false", "--log-level=info", "--log-format=text", "--shutdown-timeout=15s",
			"--ops-per-second=100", "--origins=", "--max-doc=16777216"},
			map[string]string{"COEDIT_SYNC": "none", "COEDIT_INSECURE": "1", "COEDIT_LOG_LEVEL": "error", "COEDIT_LOG_FORMAT": "json", "COEDIT_SHUTDOWN_TIMEOUT": "2s",
				"COEDIT_OPS_PER_SECOND": "3", "COEDIT_ORIGINS": "https://env.example", "COEDIT_MAX_DOC": "9"}, def},
		{"flag beats env, new value", []string{"--ops-per-second", "260000", "--origins", "https://flag.example"},
			map[string]string{"COEDIT_OPS_PER_SECOND": "3", "COEDIT_ORIGINS": "https://env.example"},
			with(func(c *serveConfig) { c.OpsPerSecond, c.Origins = 260000, []string{"https://flag.example"} })},
		{"bare --insecure", []string{"--insecure", "--data", "x"}, nil, with(func(c *serveConfig) { c.Insecure, c.DataDir = true, "x" })},
		{"commit wait", []string{"--commit-wait", "1ms"}, nil, with(func(c *serveConfig) { c.CommitWait = time.Millisecond })},
		{"drain", []string{"--drain", "2s"}, nil, with(func(c *serveConfig) { c.Drain = 2 * time.Second })},
		{"drain from env", nil, map[string]string{"COEDIT_DRAIN": "5s", "COEDIT_SHUTDOWN_TIMEOUT": "30s"},
			with(func(c *serveConfig) { c.Drain, c.ShutdownTimeout = 5*time.Second, 30*time.Second })},
		{"no commit wait from env", nil, map[string]string{"COEDIT_COMMIT_WAIT": "0"}, with(func(c *serveConfig) { c.CommitWait = 0 })},
		{"auth and limits", []string{"--auth-secret", testSecret, "--hosts", "coedit.example, docs.example", "--max-conns", "5", "--max-conns-per-addr", "2"}, nil,
			with(func(c *serveConfig) {
				c.AuthSecret, c.Hosts, c.MaxConns, c.MaxConnsPerAddr = []byte(testSecret), []string{"coedit.example", "docs.example"}, 5, 2
			})},
		{"auth and limits from env", nil, map[string]string{"COEDIT_AUTH_SECRET_FILE": secretFile, "COEDIT_HOSTS": "*", "COEDIT_MAX_CONNS": "7", "COEDIT_MAX_CONNS_PER_ADDR": "7"},
			with(func(c *serveConfig) {
				c.AuthSecret, c.Hosts, c.MaxConns, c.MaxConnsPerAddr = []byte(testSecret), []string{"*"}, 7, 7
			})},
		{"secret from env", nil, map[string]string{"COEDIT_AUTH_SECRET": testSecret}, with(func(c *serveConfig) { c.AuthSecret = []byte(testSecret) })},
		{"cluster flags", []string{"--redis", "redis://10.0.0.1:6379/2", "--redis-prefix", "team:", "--node-id", "n1", "--node-ttl", "3s"}, nil,
			with(func(c *serveConfig) {
				c.Redis, c.RedisPrefix, c.NodeID, c.NodeTTL = "redis://10.0.0.1:6379/2", "team:", "n1", 3*time.Second
			})},
		{"cluster env", nil, map[string]string{"COEDIT_REDIS_URL": "h1:7000,h2:7001", "COEDIT_REDIS_PREFIX": "x:", "COEDIT_NODE_ID": "n2"},
			with(func(c *serveConfig) { c.Redis, c.RedisPrefix, c.NodeID = "h1:7000,h2:7001", "x:", "n2" })},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseServeFlags(tc.args, func(k string) string { return tc.env[k] }, io.Discard)
			if err != nil || !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("parseServeFlags(%q, %v) = %+v, %v; want %+v", tc.args, tc.env, got, err, tc.want)
			}
		})
	}
	for _, args := range [][]string{
		{"--sync", "sometimes"}, {"--insecure=maybe"}, {"--log-level", "loud"}, {"--log-format", "xml"},
		{"--data", ""}, {"--addr", "8080"}, {"extra"}, {"--no-such-flag"},
		{"--shutdown-timeout", "soon"}, {"--shutdown-timeout", "0s"},
		{"--drain", "-1s"}, {"--drain", "15s"}, {"--drain", "3s", "--shutdown-timeout", "2s"}, {"--drain", "soon"},
		{"--ops-per-second", "0"}, {"--ops-per-second", "-1"}, {"--ops-per-second", "lots"}, {"--ops-per-second", "NaN"}, {"--ops-per-second", "+Inf"}, {"--ops-per-second", "1e12"},
		{"--origins", "app.example"}, {"--origins", "https://a.example,/path"}, {"--origins", "https://a.example/app"}, {"--origins", "https://a.example?x=1"},
		{"--max-doc", "0"}, {"--max-doc", "-5"}, {"--max-doc", "1.5"}, {"--max-doc", "big"},
		{"--commit-wait", "-1ms"}, {"--commit-wait", "2s"}, {"--commit-wait", "soon"},
		{"--auth-secret", "short"}, {"--auth-secret", testSecret, "--auth-secret-file", secretFile}, {"--auth-secret-file", secretFile + ".missing"},
		{"--hosts", "https://coedit.example"}, {"--hosts", "coedit.example:443"}, {"--hosts", "10.0.0.1"},
		{"--max-conns", "0"}, {"--max-conns-per-addr", "-1"},
		{"--redis", "http://h:1"}, {"--redis", ","}, {"--redis", "redis://"}, {"--redis-prefix", "a{b}"},
	} {
		_, err := parseServeFlags(args, func(string) string { return "" }, io.Discard)
		var ue *usageError
		if !errors.As(err, &ue) {
			t.Errorf("parseServeFlags(%q) = %v, want a usage error", args, err)
		}
	}
	for name, val := range map[string]string{"COEDIT_OPS_PER_SECOND": "fast", "COEDIT_ORIGINS": "nope", "COEDIT_MAX_DOC": "-1", "COEDIT_SHUTDOWN_TIMEOUT": "x"} {
		_, err := parseServeFlags(nil, func(k string) string {
			if k == name {
				return val
			}
			return ""
		}, io.Discard)
		var ue *usageError
		if !errors.As(err, &ue) {
			t.Errorf("parseServeFlags with %s=%q = %v, want a usage error", name, val, err)
		}
	}
	if _, err := parseServeFlags([]string{"-h"}, func(string) string { return "" }, io.Discard); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("parseServeFlags(-h) = %v, want flag.ErrHelp", err)
	}
}

// TestServeURL: the address logged for a browser to open.
func TestServeURL(t *testing.T) {
	for addr, want := range map[string]string{"0.0.0.0:8080": "http://localhost:8080", "[::]:80": "http://localhost:80", "127.0.0.1:9": "http://127.0.0.1:9", "[::1]:7": "http://[::1]:7"} {
		a, err := net.ResolveTCPAddr("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		if got := serveURL(a); got != want {
			t.Errorf("serveURL(%s) = %s, want %s", addr, got, want)
		}
	}
}

// TestFlagErrorsAndHelp: a bad flag is said once, with a pointer to -h
// and without the forty lines of flags; -h prints them; and coedit --help
// lists the commands, not serve's flags alone.
func TestFlagErrorsAndHelp(t *testing.T) {
	var out bytes.Buffer
	_, err := parseServeFlags([]string{"--sync", "bogus"}, func(string) string { return "" }, &out)
	if err == nil || !strings.Contains(err.Error(), `invalid value "bogus" for flag -sync`) || !strings.Contains(err.Error(), "coedit serve -h lists the flags") || out.Len() != 0 {
		t.Errorf("parseServeFlags(--sync bogus) = %v, printing %q; want the error alone, pointing at -h", err, out.String())
	}
	out.Reset()
	if _, err := parseServeFlags([]string{"-h"}, func(string) string { return "" }, &out); !errors.Is(err, flag.ErrHelp) || !strings.Contains(out.String(), "-sync") {
		t.Errorf("parseServeFlags(-h) = %v, printing %q; want serve's flags", err, out.String())
	}
	for _, args := range [][]string{{"--help"}, {"-h"}, {"help"}} {
		var stdout, stderr bytes.Buffer
		if code := run(args, &stdout, &stderr); code != 0 || !strings.Contains(stdout.String(), "Commands:") || !strings.Contains(stdout.String(), "replay") {
			t.Errorf("coedit %s = %d, printing %q; want the commands", args[0], code, stdout.String())
		}
	}
	var stdout, stderr bytes.Buffer
	if code := run([]string{"token", "--bogus"}, &stdout, &stderr); code != 2 || strings.Count(stderr.String(), "-bogus") != 1 || strings.Contains(stderr.String(), "Usage") {
		t.Errorf("coedit token --bogus = %d, printing %q; want exit 2 and the error once", code, stderr.String())
	}
}

func TestMessageRate(t *testing.T) {
	for _, tc := range []struct{ ops, want float64 }{{0.5, 1000}, {100, 1000}, {500, 1000}, {501, 1002}, {260000, 520000}} {
		if got := messageRate(tc.ops); got != tc.want {
			t.Errorf("messageRate(%v) = %v, want %v", tc.ops, got, tc.want)
		}
	}
}

// TestNodeLimits starts a node with the limit flags set and checks that
// each reaches the server: the origin allowlist on the HTTP API and the
// WebSocket upgrade, the document size, and the submit token bucket.
// startFlaggedNode starts a node in process from serve's flags (on
// 127.0.0.1:0, in a temporary data directory, no environment) and closes
// it when the test ends.
func startFlaggedNode(t *testing.T, flags ...string) *node {
	t.Helper()
	cfg, err := parseServeFlags(append([]string{"--addr", "127.0.0.1:0", "--data", t.TempDir()}, flags...),
		func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	n, err := startNode(context.Background(), cfg, quiet)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := n.close(ctx); err != nil {
			t.Errorf("close = %v", err)
		}
	})
	return n
}

func TestNodeLimits(t *testing.T) {
	n := startFlaggedNode(t, "--ops-per-second", "1", "--origins", "https://app.example", "--max-doc", "10")
	base := "http://" + n.addr()

	post := func(path, origin, body string) (int, string) {
		t.Helper()
		req, err := http.NewRequest("POST", base+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Origin", origin)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	create := `{"create":{"type":"text-unicode","data":"0123456789"}}`
	// A loopback origin is allowed by default, not once --origins is set.
	if status, body := post("/api/docs/notes/a/ops", "http://127.0.0.1:8080", create); status != http.StatusForbidden || !strings.Contains(body, "ERR_ORIGIN_NOT_ALLOWED") {
		t.Errorf("POST from a loopback origin = %d %s, want 403 ERR_ORIGIN_NOT_ALLOWED", status, body)
	}
	if status, body := post("/api/docs/notes/a/ops", "https://app.example", create); status != http.StatusOK {
		t.Errorf("POST from the allowed origin = %d %s, want 200", status, body)
	}
	if status, body := post("/api/docs/notes/a/ops", "https://app.example", `{"v":1,"op":[10,"x"]}`); status != http.StatusRequestEntityTooLarge || !strings.Contains(body, "ERR_DOC_TOO_LARGE") {
		t.Errorf("POST an 11th code point with --max-doc 10 = %d %s, want 413 ERR_DOC_TOO_LARGE", status, body)
	}

	wsURL := "ws://" + n.addr() + "/ws"
	if _, resp, err := websocket.DefaultDialer.Dial(wsURL, http.Header{"Origin": {"https://evil.example"}}); err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Errorf("WebSocket from a foreign origin: err %v, response %v; want a 403 refusal", err, resp)
	}
	ws, _, err := websocket.DefaultDialer.Dial(wsURL, http.Header{"Origin": {"https://app.example"}})
	if err != nil {
		t.Fatalf("WebSocket from the allowed origin: %v", err)
	}
	defer ws.Close()
	var codes []string
	// --ops-per-second 1 gives a bucket of 2: of three submits sent at
	// once, the third waits a second for its token. The ops delete and
	// insert, so the document stays within --max-doc.
	start := time.Now()
	for seq := 1; seq <= 3; seq++ {
		msg := fmt.Sprintf(`{"a":"op","c":"notes","d":"a","v":null,"seq":%d,"op":[{"d":1},"y"]}`, seq)
		if err := ws.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
			t.Fatal(err)
		}
	}
	ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	for len(codes) < 3 {
		var m struct {
			A     string
			Seq   int
			Error *struct{ Code string }
		}
		if err := ws.ReadJSON(&m); err != nil {
			t.Fatalf("reading replies (have %q): %v", codes, err)
		}
		if m.A != "op" {
			continue
		}
		switch {
		case m.Error != nil:
			codes = append(codes, fmt.Sprint(m.Seq, ":", m.Error.Code))
		default:
			codes = append(codes, fmt.Sprint(m.Seq, ":ack"))
		}
	}
	slices.Sort(codes)
	if want := []string{"1:ack", "2:ack", "3:ack"}; !slices.Equal(codes, want) {
		t.Errorf("three submits with --ops-per-second 1 = %q, want %q", codes, want)
	}
	if elapsed := time.Since(start); elapsed < 900*time.Millisecond {
		t.Errorf("three submits with --ops-per-second 1 acknowledged in %v, want the third to wait about a second", elapsed)
	}
}

func TestRunDispatch(t *testing.T) {
	for _, tc := range []struct {
		args        []string
		code        int
		out, errOut string
	}{
		{[]string{"help"}, 0, "Commands:", ""},
		{[]string{"bogus"}, 2, "", `unknown command "bogus"`},
		{[]string{"serve", "--sync", "x"}, 2, "", "unknown sync mode"},
		{[]string{"--sync", "x"}, 2, "", "unknown sync mode"}, // serve is the default
	} {
		var out, errOut bytes.Buffer
		if code := run(tc.args, &out, &errOut); code != tc.code || !strings.Contains(out.String(), tc.out) || !strings.Contains(errOut.String(), tc.errOut) {
			t.Errorf("run(%q) = %d, stdout %q, stderr %q; want %d, %q, %q", tc.args, code, out.String(), errOut.String(), tc.code, tc.out, tc.errOut)
		}
	}
}

func TestIsLoopback(t *testing.T) {
	for addr, want := range map[string]bool{
		"127.0.0.1:8080": true, "localhost:1": true, "[::1]:80": true, "127.9.9.9:0": true,
		":8080": false, "0.0.0.0:80": false, "[::]:80": false, "192.168.1.2:80": false, "example.com:80": false, "junk": false,
	} {
		if got := isLoopback(addr); got != want {
			t.Errorf("isLoopback(%q) = %v, want %v", addr, got, want)
		}
	}
}

// TestNodeInProcess runs serve on port 0 in this process: it serves, a
// second node on the same data fails with the lock error, it shuts down
// cleanly when its context ends, and the data is there after a restart.
func TestNodeInProcess(t *testing.T) {
	addrs := make(chan string, 1)
	cfg := serveConfig{Addr: "127.0.0.1:0", DataDir: t.TempDir(), Sync: storage.SyncAlways, ShutdownTimeout: 10 * time.Second,
		lockTimeout: 100 * time.Millisecond, started: func(a string) { addrs <- a }}
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	done := make(chan error, 1)
	go func() { done <- serve(ctx, cfg, quiet) }()
	var url string
	select {
	case a := <-addrs:
		url = "http://" + a
	case err := <-done:
		t.Fatalf("serve = %v before it started", err)
	}
	if status, body := postJSON(t, url+"/api/docs/notes/n1/ops", `{"create":{"type":"text-unicode","data":"in process"}}`); status != http.StatusOK {
		t.Fatalf("POST create = %d %s", status, body)
	}
	cfg.started = nil
	// The second node gets as far as listening: its failure must close
	// that listener again, so the port is free afterwards.
	free, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	second := cfg
	second.Addr = free.Addr().String()
	free.Close()
	if _, err := startNode(context.Background(), second, quiet); !errors.Is(err, storage.ErrLocked) || !strings.Contains(err.Error(), "locked by another process") {
		t.Fatalf("second startNode on the same data = %v, want the locked error", err)
	}
	if ln, err := net.Listen("tcp", second.Addr); err != nil {
		t.Errorf("after the failed startNode, listening on its address: %v, want it free", err)
	} else {
		ln.Close()
	}
	stop()
	if err := <-done; err != nil {
		t.Fatalf("serve = %v after its context ended, want nil", err)
	}

	n, err := startNode(context.Background(), cfg, quiet)
	if err != nil {
		t.Fatal(err)
	}
	status, body := fetchURL(t, "http://"+n.addr()+"/api/docs/notes/n1")
	cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := n.close(cctx); err != nil {
		t.Fatalf("close = %v", err)
	}
	if status != http.StatusOK || !strings.Contains(body, `"data":"in process"`) {
		t.Fatalf("after restart GET = %d %s", status, body)
	}
	if _, err := startNode(context.Background(), serveConfig{Addr: "0.0.0.0:0", DataDir: t.TempDir()}, quiet); err == nil || !strings.Contains(err.Error(), "--insecure") {
		t.Fatalf("startNode on 0.0.0.0 without --insecure = %v, want a refusal", err)
	}
}

// TestNodeRaisedRate checks that a raised --ops-per-second lifts the
// limit on all messages too: 2,500 submits sent at once (more than web's
// default message burst of 2,000) are all acknowledged.
func TestNodeRaisedRate(t *testing.T) {
	n := startFlaggedNode(t, "--sync", "none", "--ops-per-second", "2000")
	if status, body := postJSON(t, "http://"+n.addr()+"/api/docs/notes/r/ops", `{"create":{"type":"text-unicode","data":""}}`); status != http.StatusOK {
		t.Fatalf("POST create = %d %s", status, body)
	}
	ws, _, err := websocket.DefaultDialer.Dial("ws://"+n.addr()+"/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	const total = 2500
	go func() {
		for seq := 1; seq <= total; seq++ {
			msg := fmt.Sprintf(`{"a":"op","c":"notes","d":"r","v":null,"seq":%d,"op":["x"]}`, seq)
			if ws.WriteMessage(websocket.TextMessage, []byte(msg)) != nil {
				return
			}
		}
	}()
	ws.SetReadDeadline(time.Now().Add(30 * time.Second))
	for acks := 0; acks < total; {
		var m struct {
			A     string
			Seq   int
			Error *struct{ Code string }
		}
		if err := ws.ReadJSON(&m); err != nil {
			t.Fatalf("after %d acks: %v", acks, err)
		}
		if m.Error != nil {
			t.Fatalf("submit %d of %d with --ops-per-second 2000 = %s, want an ack", m.Seq, total, m.Error.Code)
		}
		if m.A == "op" {
			acks++
		}
	}

	// /metrics has the store's counters beside the hub's.
	status, body := fetchURL(t, "http://"+n.addr()+"/metrics")
	if status != http.StatusOK {
		t.Fatalf("GET /metrics = %d %s", status, body)
	}
	committed, commits, writes := metricValue(body, "coedit_ops_committed_total"), metricValue(body, "coedit_store_commits_total"), metricValue(body, "coedit_store_write_batches_total")
	if committed != total+1 || commits < 2 || writes < 1 || writes > commits {
		t.Errorf("/metrics: coedit_ops_committed_total %v, coedit_store_commits_total %v, coedit_store_write_batches_total %v; want %d, at least 2, between 1 and the commits",
			committed, commits, writes, total+1)
	}
	// And how far bbolt trails the log: one document at most, its frames.
	applies, pending, unapplied := metricValue(body, "coedit_store_applies_total"), metricValue(body, "coedit_store_pending_documents"), metricValue(body, "coedit_store_unapplied_bytes")
	if applies < 0 || pending < 0 || pending > 1 || unapplied < 0 || (pending == 0) != (unapplied == 0) {
		t.Errorf("/metrics: coedit_store_applies_total %v, coedit_store_pending_documents %v, coedit_store_unapplied_bytes %v; want all present, at most one document pending, and bytes kept exactly when one is",
			applies, pending, unapplied)
	}
}

// metricValue returns the value of the unlabelled sample name in a
// Prometheus text exposition, or -1 when it is missing.
func metricValue(body, name string) float64 {
	for line := range strings.Lines(body) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				return -1
			}
			return f
		}
	}
	return -1
}

// TestNodeAuthMode: a node with a secret may listen on every interface,
// logs that auth is on (never the secret), answers the API with 401
// without a token and serves a token `coedit token` printed; without a
// secret the log says loopback-only, or INSECURE with --insecure on a
// network address.
func TestNodeAuthMode(t *testing.T) {
	start := func(args ...string) (*node, string) {
		t.Helper()
		cfg, err := parseServeFlags(append([]string{"--data", t.TempDir()}, args...), func(string) string { return "" }, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		var logs bytes.Buffer
		n, err := startNode(context.Background(), cfg, slog.New(slog.NewTextHandler(&logs, nil)))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := n.close(ctx); err != nil {
				t.Errorf("close = %v", err)
			}
		})
		return n, logs.String()
	}
	n, logs := start("--addr", "0.0.0.0:0", "--auth-secret", testSecret)
	if !strings.Contains(logs, "mode=auth") || strings.Contains(logs, testSecret) {
		t.Fatalf("startup log with a secret:\n%s\nwant mode=auth and no secret", logs)
	}
	base := "http://127.0.0.1:" + n.addr()[strings.LastIndexByte(n.addr(), ':')+1:]
	get := func(tok string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest("GET", base+"/api/docs", nil)
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if status, body := get(""); status != http.StatusUnauthorized || !strings.Contains(body, "ERR_TOKEN_REQUIRED") {
		t.Fatalf("GET /api/docs without a token = %d %s, want 401 ERR_TOKEN_REQUIRED", status, body)
	}
	var tok bytes.Buffer
	if err := runToken([]string{"--sub", "alice", "--docs", "notes/*", "--auth-secret", testSecret}, func(string) string { return "" }, &tok, io.Discard); err != nil {
		t.Fatal(err)
	}
	if status, body := get(strings.TrimSpace(tok.String())); status != http.StatusOK {
		t.Fatalf("GET /api/docs with coedit token's token = %d %s, want 200", status, body)
	}

	if _, logs := start("--addr", "127.0.0.1:0"); !strings.Contains(logs, "mode=loopback-only") {
		t.Fatalf("startup log without a secret on loopback:\n%s\nwant mode=loopback-only", logs)
	}
	if _, logs := start("--addr", "0.0.0.0:0", "--insecure"); !strings.Contains(logs, "mode=INSECURE") || !strings.Contains(logs, "level=WARN") {
		t.Fatalf("startup log with --insecure:\n%s\nwant a warning with mode=INSECURE", logs)
	}
}

// TestSecretNotInHelp: serve -h does not print a secret taken from the
// environment.
func TestSecretNotInHelp(t *testing.T) {
	var out bytes.Buffer
	_, err := parseServeFlags([]string{"-h"}, func(k string) string {
		if k == "COEDIT_AUTH_SECRET" {
			return testSecret
		}
		return ""
	}, &out)
	if !errors.Is(err, flag.ErrHelp) || strings.Contains(out.String(), testSecret) || !strings.Contains(out.String(), "COEDIT_AUTH_SECRET") {
		t.Fatalf("serve -h = %v, printed:\n%s\nwant the variable's name and not its value", err, out.String())
	}
}

func TestAllowedHosts(t *testing.T) {
	for _, tc := range []struct {
		addr  string
		hosts []string
		want  []string
	}{
		{"127.0.0.1:8080", nil, nil},
		{":8080", nil, nil},
		{"coedit.internal:8080", nil, []string{"coedit.internal"}},
		{"coedit.internal:8080", []string{"docs.example"}, []string{"docs.example", "coedit.internal"}},
		{"[::1]:8080", []string{"*"}, []string{"*"}},
	} {
		if got := allowedHosts(serveConfig{Addr: tc.addr, Hosts: tc.hosts}); !slices.Equal(got, tc.want) {
			t.Errorf("allowedHosts(%s, %q) = %q, want %q", tc.addr, tc.hosts, got, tc.want)
		}
	}
}
