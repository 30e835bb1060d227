package main

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/golang-jwt/jwt/v5"
	"github.com/gorilla/websocket"

	"github.com/coedit/coedit/collab"
	"github.com/coedit/coedit/collab/collabtest"
	"github.com/coedit/coedit/editlog"
	"github.com/coedit/coedit/ot"
	"github.com/coedit/coedit/web"
	"github.com/coedit/coedit/web/webtest"
)

func TestReplayCommandEditLogs(t *testing.T) {
	files, err := filepath.Glob("../../testdata/editlogs/*.jsonl")
	if err != nil || len(files) == 0 {
		t.Fatalf("no edit logs: %v", err)
	}
	var out, errb bytes.Buffer
	if code := run(append([]string{"replay"}, files...), &out, &errb); code != 0 {
		t.Fatalf("coedit replay %v = exit %d, want 0\nstdout:\n%s\nstderr:\n%s", files, code, out.String(), errb.String())
	}
	for _, f := range files {
		if !strings.Contains(out.String(), f+": ") {
			t.Errorf("coedit replay output has no line for %s:\n%s", f, out.String())
		}
	}
	if got := strings.Count(out.String(), "final text matches the log's"); got != len(files) {
		t.Errorf("coedit replay: %d matching final texts, want %d:\n%s", got, len(files), out.String())
	}
}

func TestReplayCommandMismatch(t *testing.T) {
	file := filepath.Join(t.TempDir(), "wrong.jsonl")
	writeFile(t, file, `{"editlog":1,"initial":"ab\ncd","final":"ab\ncX"}
{"src":"a","seq":1,"v":1,"op":[4,"e"]}
`)
	var out, errb bytes.Buffer
	if code := run([]string{"replay", file}, &out, &errb); code != 1 {
		t.Fatalf("coedit replay (wrong final) = exit %d, want 1\nstdout:\n%s\nstderr:\n%s", code, out.String(), errb.String())
	}
	for _, want := range []string{"first difference at code point 4 (line 2, column 2)", `got:  "ed"`, `want: "X"`} {
		if !strings.Contains(errb.String(), want) {
			t.Errorf("coedit replay stderr = %q, want it to contain %q", errb.String(), want)
		}
	}
	if !strings.Contains(out.String(), "FINAL TEXT DIFFERS") {
		t.Errorf("coedit replay stdout = %q, want the verdict", out.String())
	}
}

func TestReplayCommandUsage(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.jsonl")
	writeFile(t, good, `{"editlog":1,"initial":"","final":"x"}`+"\n"+`{"src":"a","seq":1,"v":1,"op":["x"]}`+"\n")
	bad := filepath.Join(dir, "bad.jsonl")
	writeFile(t, bad, `{"src":"a","seq":1,"v":0,"op":[1]}`+"\n")
	// What following the docs gives for a document that does not exist:
	// an empty export behind a header made from its snapshot.
	headerOnly := filepath.Join(dir, "header-only.jsonl")
	writeFile(t, headerOnly, `{"editlog":1,"finalVersion":0}`+"\n")
	tests := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"replay"}, 2, "no FILE"},
		{[]string{"replay", "--id", "x", good, good}, 2, "--id names one document"},
		{[]string{"replay", "--server", "http://127.0.0.1:1/ws", good}, 2, "want a WebSocket URL"},
		{[]string{"replay", "--window", "0", good}, 2, "--window"},
		{[]string{"replay", "--conns", "0", good}, 2, "--conns must be at least 2"},
		{[]string{"replay", "--conns", "1", "--server", "ws://127.0.0.1:1/ws", good}, 2, "--conns must be at least 2"},
		{[]string{"replay", "--bogus", good}, 2, "flag provided but not defined"},
		{[]string{"replay", filepath.Join(dir, "missing.jsonl")}, 1, "no such file"},
		{[]string{"replay", good, bad}, 1, "trailing skip"},
		{[]string{"replay", headerOnly}, 1, "no records"},
		{[]string{"replay", "--server", "ws://127.0.0.1:1/ws", good}, 1, "dial"},
		{[]string{"replay", good, "--id", "after-the-file"}, 0, ""},
	}
	for _, tt := range tests {
		var out, errb bytes.Buffer
		code := run(tt.args, &out, &errb)
		if code != tt.code || !strings.Contains(errb.String(), tt.want) {
			t.Errorf("coedit %v = exit %d, stderr %q; want exit %d, stderr containing %q", tt.args, code, errb.String(), tt.code, tt.want)
		}
	}
}

// TestReplayCommandToken replays against a server with authentication
// on, with the token from --token, from COEDIT_TOKEN and in the URL: the
// token is never printed, neither in the result line nor in errors.
func TestReplayCommandToken(t *testing.T) {
	secret := []byte(strings.Repeat("k", 32))
	wsURL := webtest.Start(t, web.Options{AuthSecret: secret}).WSURL
	claims := web.TokenClaims{Docs: []web.TokenDoc{{Pattern: "*/*", Write: true}}}
	claims.Subject = "replayer"
	claims.ExpiresAt = jwt.NewNumericDate(time.Now().Add(time.Hour))
	token, err := web.SignToken(secret, claims)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "good.jsonl")
	writeFile(t, file, `{"editlog":1,"initial":"","final":"x"}`+"\n"+`{"src":"a","seq":1,"v":1,"op":["x"]}`+"\n")
	noEnv := func(string) string { return "" }
	withEnv := func(name string) string {
		if name == "COEDIT_TOKEN" {
			return token
		}
		return ""
	}
	tests := []struct {
		name   string
		args   []string
		getenv func(string) string
		ok     bool
		want   string // in the output
	}{
		{"--token", []string{"--server", wsURL, "--token", token, "--id", "flag", file}, noEnv, true, "final text matches"},
		{"COEDIT_TOKEN", []string{"--server", wsURL, "--id", "env", file}, withEnv, true, "final text matches"},
		{"?token=", []string{"--server", wsURL + "?token=" + token, "--id", "query", file}, noEnv, true, "?token=REDACTED"},
		{"?token= again", []string{"--server", wsURL + "?token=" + token, "--id", "query", file}, noEnv, false, "?token=REDACTED"},
		{"no token", []string{"--server", wsURL, "--id", "none", file}, noEnv, false, "401"},
		{"dial error", []string{"--server", "ws://127.0.0.1:1/ws?token=" + token, file}, noEnv, false, "?token=REDACTED"},
		{"not a ws URL", []string{"--server", "http://127.0.0.1:1/ws?token=" + token, file}, noEnv, false, "?token=REDACTED"},
		{"help", []string{"-h"}, withEnv, false, "COEDIT_TOKEN"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			err := replayCommand(t.Context(), tt.args, tt.getenv, &out, &out)
			if (err == nil) != tt.ok {
				t.Errorf("coedit replay %v = %v, want ok %v\n%s", tt.args, err, tt.ok, out.String())
			}
			if err != nil {
				fmt.Fprintln(&out, err)
			}
			if !strings.Contains(out.String(), tt.want) {
				t.Errorf("coedit replay %v output = %q, want it to contain %q", tt.args, out.String(), tt.want)
			}
			if strings.Contains(out.String(), token) {
				t.Errorf("coedit replay %v output = %q, shows the token", tt.args, out.String())
			}
		})
	}
}

// TestReplayCommandOneEdit checks the result line of a log of one
// edit: counts of one, and a time that is not "0s".
func TestReplayCommandOneEdit(t *testing.T) {
	file := filepath.Join(t.TempDir(), "one.jsonl")
	writeFile(t, file, `{"editlog":1,"initial":"","final":"x"}`+"\n"+`{"src":"a","seq":1,"v":1,"op":["x"]}`+"\n")
	var out, errb bytes.Buffer
	if code := run([]string{"replay", file}, &out, &errb); code != 0 {
		t.Fatalf("coedit replay = exit %d\n%s%s", code, out.String(), errb.String())
	}
	for _, want := range []string{": 1 edit into", "final version 2, 1 code point, 0 resends acknowledged"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("coedit replay output = %q, want it to contain %q", out.String(), want)
		}
	}
	if strings.Contains(out.String(), " in 0s") {
		t.Errorf("coedit replay output = %q, says it took no time", out.String())
	}
}

// TestReplayCommandTrace replays a gzipped editing trace directly.
func TestReplayCommandTrace(t *testing.T) {
	file := filepath.Join(t.TempDir(), "tiny-trace.json.gz")
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	// hello, he😀lo, h😀lo, ¡h😀lo, ¡h😀llo
	io.WriteString(zw, `{"startContent":"","endContent":"¡h😀llo","txns":[
		{"time":"2024-01-01T00:00:00Z","patches":[[0,0,"hello"]]},
		{"time":"2024-01-01T00:00:01Z","patches":[[2,1,"😀"],[1,1,""]]},
		{"time":"2024-01-01T00:00:02Z","patches":[[0,0,"¡"],[4,0,"l"]]}]}`)
	zw.Close()
	writeFile(t, file, buf.String())
	var out, errb bytes.Buffer
	if code := run([]string{"replay", file, "--collection", "traces", "--window", "1"}, &out, &errb); code != 0 {
		t.Fatalf("coedit replay trace = exit %d\nstdout:\n%s\nstderr:\n%s", code, out.String(), errb.String())
	}
	for _, want := range []string{"5 edits into traces/tiny-trace", "final version 6", "final text matches"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("coedit replay trace output = %q, want it to contain %q", out.String(), want)
		}
	}
}

// TestReplayRoundTrip runs a live editing session: four clients edit one
// document at once over real WebSockets against an in-process node, each
// submitting against the version it has seen while the others' ops are
// still arriving. The node's op log, exported over HTTP, is then replayed
// with `coedit replay` offline and with --server against a fresh node;
// both must end in the live session's snapshot, and the fresh node must
// hold the same ops.
func TestReplayRoundTrip(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	live := collabtest.Start(t)
	liveURL := webtest.Serve(t, live.Hub, web.Options{}).URL
	key := collab.Key{Collection: "live", ID: "session"}

	creator := dialLive(t, liveURL, key, 0)
	creator.create("Shared notes:\n")
	creator.close()

	const clients, edits = 4, 40
	var (
		wg          sync.WaitGroup
		transformed atomic.Int64 // ops a client's inflight op was transformed over
	)
	all := make([]*liveClient, clients)
	for i := range clients {
		c := dialLive(t, liveURL, key, seed+uint64(i))
		c.subscribe()
		all[i] = c
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer c.close()
			defer func() { transformed.Add(int64(c.transformed)) }()
			for range edits {
				if err := c.edit(); err != nil {
					t.Errorf("client %d: %v", i, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}

	// Each client's copy is the server's document at the version it
	// reached.
	for i, c := range all {
		snap, err := live.Hub.SnapshotAt(t.Context(), key, c.next)
		if err != nil || snap.Data != c.doc {
			t.Errorf("client %d at version %d has %q; the server had %q (%v)", i, c.next, c.doc, snap.Data, err)
		}
	}
	want := getSnapshot(t, liveURL, key)
	if want.Version != 1+clients*edits {
		t.Fatalf("live snapshot at version %d, want %d", want.Version, 1+clients*edits)
	}
	export := httpGet(t, liveURL+"/api/docs/live/session/ops")
	header, _ := json.Marshal(map[string]any{"editlog": 1, "collection": "live", "id": "session", "final": want.Data, "finalVersion": want.Version})
	file := filepath.Join(t.TempDir(), "session.jsonl")
	writeFile(t, file, string(header)+"\n"+export)
	exported, err := editlog.Read(strings.NewReader(export))
	if err != nil {
		t.Fatalf("reading the export: %v", err)
	}
	t.Logf("live session: %d ops, inflight ops transformed over %d concurrent ops, final %d code points", len(exported.Records), transformed.Load(), utf8.RuneCountInString(want.Data))

	var out, errb bytes.Buffer
	if code := run([]string{"replay", file}, &out, &errb); code != 0 {
		t.Fatalf("coedit replay %s (offline) = exit %d\n%s%s", file, code, out.String(), errb.String())
	}
	t.Log(strings.TrimSpace(out.String()))

	fresh := collabtest.Start(t)
	freshURL := webtest.Serve(t, fresh.Hub, web.Options{}).URL
	out.Reset()
	if code := run([]string{"replay", "--server", "ws" + strings.TrimPrefix(freshURL, "http") + "/ws", file}, &out, &errb); code != 0 {
		t.Fatalf("coedit replay --server %s = exit %d\n%s%s", file, code, out.String(), errb.String())
	}
	t.Log(strings.TrimSpace(out.String()))
	if got := getSnapshot(t, freshURL, key); got != want {
		t.Errorf("fresh node's snapshot = %+v, want the live one %+v", got, want)
	}
	again, err := editlog.Read(strings.NewReader(httpGet(t, freshURL+"/api/docs/live/session/ops")))
	if err != nil {
		t.Fatalf("reading the fresh node's export: %v", err)
	}
	if len(again.Records) != len(exported.Records) {
		t.Fatalf("fresh node has %d ops, want %d", len(again.Records), len(exported.Records))
	}
	for i := range again.Records {
		g, w := again.Records[i], exported.Records[i]
		g.Time, g.Line, w.Time, w.Line = 0, 0, 0, 0
		if fmt.Sprint(g) != fmt.Sprint(w) {
			t.Errorf("fresh node's op %d = %+v, want %+v", i, g, w)
		}
	}
	if transformed.Load() == 0 {
		t.Errorf("no op of the live session was concurrent: the test did not exercise transforms")
	}
}

func httpGet(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s %v\n%s", url, resp.Status, err, body)
	}
	return string(body)
}

func getSnapshot(t *testing.T, base string, key collab.Key) collab.Snapshot {
	t.Helper()
	var s struct {
		V    uint64  `json:"v"`
		Type *string `json:"type"`
		Data string  `json:"data"`
	}
	body := httpGet(t, base+"/api/docs/"+key.Collection+"/"+key.ID)
	if err := json.Unmarshal([]byte(body), &s); err != nil {
		t.Fatalf("snapshot %s: %v", body, err)
	}
	snap := collab.Snapshot{Version: s.V, Data: s.Data}
	if s.Type != nil {
		snap.Type = *s.Type
	}
	return snap
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// liveClient is a minimal ShareDB client: it subscribes, keeps the
// document at the version it has seen, and has at most one op in flight,
// which it transforms over the ops that arrive before its ack the way the
// server does (incoming op on the left).
type liveClient struct {
	t        *testing.T
	conn     *websocket.Conn
	key      collab.Key
	src      string
	seq      uint64
	doc      string // at version next, without the inflight op
	next     uint64
	inflight ot.Op
	rng      *rand.Rand
	// transformed counts the others' ops that arrived while an op was
	// in flight: each was concurrent with it.
	transformed int
}

type liveMsg struct {
	A     string          `json:"a"`
	V     *uint64         `json:"v"`
	Src   string          `json:"src"`
	Seq   uint64          `json:"seq"`
	ID    string          `json:"id"`
	Op    json.RawMessage `json:"op"`
	Data  json.RawMessage `json:"data"`
	Error json.RawMessage `json:"error"`
}

func dialLive(t *testing.T, base string, key collab.Key, seed uint64) *liveClient {
	t.Helper()
	conn, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(base, "http")+"/ws", nil)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	c := &liveClient{t: t, conn: conn, key: key, rng: rand.New(rand.NewPCG(seed, 7))}
	c.send(map[string]any{"a": "hs", "id": nil, "protocol": 1, "protocolMinor": 2})
	for {
		m, err := c.recv()
		if err != nil {
			t.Fatalf("handshake: %v", err)
		}
		if m.A == "hs" {
			c.src = m.ID
			return c
		}
	}
}

func (c *liveClient) send(v any) {
	if err := c.conn.WriteJSON(v); err != nil {
		c.t.Errorf("write: %v", err)
	}
}

func (c *liveClient) recv() (liveMsg, error) {
	var m liveMsg
	c.conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	_, data, err := c.conn.ReadMessage()
	if err != nil {
		return m, err
	}
	if err := json.Unmarshal(data, &m); err != nil {
		return m, fmt.Errorf("message %s: %w", data, err)
	}
	if len(m.Error) > 0 {
		return m, fmt.Errorf("error reply %s", data)
	}
	return m, nil
}

func (c *liveClient) close() { c.conn.Close() }

func (c *liveClient) create(text string) {
	c.seq++
	c.send(map[string]any{"a": "op", "c": c.key.Collection, "d": c.key.ID, "v": 0, "seq": c.seq,
		"create": map[string]string{"type": ot.URI, "data": text}})
	for {
		m, err := c.recv()
		if err != nil {
			c.t.Fatalf("create: %v", err)
		}
		if m.A == "op" && m.Src == c.src && m.Seq == c.seq {
			return
		}
	}
}

func (c *liveClient) subscribe() {
	c.send(map[string]any{"a": "s", "c": c.key.Collection, "d": c.key.ID, "v": nil})
	for {
		m, err := c.recv()
		if err != nil {
			c.t.Fatalf("subscribe: %v", err)
		}
		if m.A != "s" {
			continue
		}
		var s struct {
			V    uint64 `json:"v"`
			Data string `json:"data"`
		}
		if err := json.Unmarshal(m.Data, &s); err != nil {
			c.t.Fatalf("subscribe reply: %v", err)
		}
		c.doc, c.next = s.Data, s.V
		return
	}
}

// edit submits one random op against the version the client has and
// reads until its ack, applying the others' ops on the way.
func (c *liveClient) edit() error {
	op := randomOp(c.rng, c.doc)
	c.seq++
	opJSON, err := op.MarshalJSON()
	if err != nil {
		return err
	}
	c.send(map[string]any{"a": "op", "c": c.key.Collection, "d": c.key.ID, "v": c.next, "seq": c.seq, "op": json.RawMessage(opJSON)})
	c.inflight = op
	for {
		m, err := c.recv()
		if err != nil {
			return err
		}
		if m.A != "op" || m.V == nil {
			continue
		}
		if m.Src == c.src && m.Seq == c.seq && len(m.Op) == 0 {
			if *m.V != c.next {
				return fmt.Errorf("ack at version %d, but the client is at %d", *m.V, c.next)
			}
			if c.doc, err = ot.Apply(c.doc, c.inflight); err != nil {
				return fmt.Errorf("applying the acknowledged op: %w", err)
			}
			c.next++
			c.inflight = nil
			return nil
		}
		if *m.V < c.next {
			continue // a missed op that also came as a broadcast
		}
		if *m.V > c.next {
			return fmt.Errorf("op at version %d, client at %d: a gap", *m.V, c.next)
		}
		other, err := ot.Decode(m.Op)
		if err != nil {
			return err
		}
		if c.doc, err = ot.Apply(c.doc, other); err != nil {
			return err
		}
		if c.inflight, err = ot.Transform(c.inflight, other, ot.Left); err != nil {
			return err
		}
		c.transformed++
		c.next++
	}
}

// randomOp inserts (sometimes astral characters) or deletes at a random
// place in doc.
func randomOp(rng *rand.Rand, doc string) ot.Op {
	n := utf8.RuneCountInString(doc)
	pos := rng.IntN(n + 1)
	var op ot.Op
	if pos > 0 {
		op = append(op, ot.Component{Kind: ot.KindSkip, N: pos})
	}
	if pos < n && rng.IntN(3) == 0 {
		return append(op, ot.Component{Kind: ot.KindDelete, N: 1 + rng.IntN(min(3, n-pos))})
	}
	words := []string{"a", "to", "the", " ", "\n", "é", "😀", "𝔸b", "日本"}
	text := words[rng.IntN(len(words))]
	return append(op, ot.Component{Kind: ot.KindInsert, N: utf8.RuneCountInString(text), Text: text})
}
