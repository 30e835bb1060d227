package loadgen

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coedit/coedit/internal/nodetest"
)

// TestYjsUpdatesApplyInYjs checks the generator's Yjs updates with the
// real yjs package: three clients' edits, interleaved, are applied to one
// Y.Doc in the order they were made. Nothing may be left pending (an
// update Yjs could not place), and each client's characters left in the
// text, in document order, must be what the client believes it has
// (yClient.alive): its inserts after its own previous character, minus
// its deletes of its last ones. Each update must also carry the fan-out
// key edit returned for it, and so must the update Yjs emits for it (what
// Hocuspocus broadcasts: Yjs encodes it again).
func TestYjsUpdatesApplyInYjs(t *testing.T) {
	node := nodetest.Node(t, "yjs")
	rng := rand.New(rand.NewPCG(3, 4))
	clients := make([]*yClient, 3)
	for i := range clients {
		clients[i] = &yClient{id: uint64(i) + 1, name: appendVarString(nil, "doc")}
	}
	var lines bytes.Buffer
	deletes := 0
	type idKey struct{ id, key uint64 }
	var keys []idKey
	for range 600 {
		y := clients[rng.IntN(len(clients))]
		before := len(y.alive)
		msg, key := y.edit(rng, nil)
		if len(y.alive) < before {
			deletes++
		}
		d := yDec{b: msg}
		if name := d.bytes(); string(name) != "doc" {
			t.Fatalf("message for document %q, want doc", name)
		}
		if typ, step := d.uvarint(), d.uvarint(); typ != hpSync || step != yUpdate {
			t.Fatalf("message type %d step %d, want a sync update (%d, %d)", typ, step, hpSync, yUpdate)
		}
		u := d.bytes()
		if d.err != nil || len(d.b) != 0 {
			t.Fatalf("message %x: %v, %d bytes after the update", msg, d.err, len(d.b))
		}
		id, k, ok := yUpdateKey(u)
		if !ok || id != y.id || k != key {
			t.Fatalf("yUpdateKey = %d, %#x, %v; want %d, %#x", id, k, ok, y.id, key)
		}
		keys = append(keys, idKey{id, key})
		lines.WriteString(base64.StdEncoding.EncodeToString(u))
		lines.WriteByte('\n')
	}
	if deletes < 50 {
		t.Fatalf("%d deletes among 600 edits: the mix should have many", deletes)
	}
	cmd := exec.Command(node, filepath.Join("testdata", "yjs-apply.mjs"))
	cmd.Stdin = &lines
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("yjs-apply.mjs: %v\n%s", err, stderr.String())
	}
	var got struct {
		ByClient map[string]string
		Text     string
		Pending  bool
		Emitted  []string
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("yjs-apply.mjs printed %q: %v", out, err)
	}
	if got.Pending {
		t.Error("Yjs holds updates it could not apply")
	}
	if len(got.Emitted) != len(keys) {
		t.Errorf("Yjs emitted %d updates for %d applied, want one each", len(got.Emitted), len(keys))
	}
	for i, e := range got.Emitted[:min(len(got.Emitted), len(keys))] {
		u, err := base64.StdEncoding.DecodeString(e)
		if err != nil {
			t.Fatal(err)
		}
		if id, k, ok := yUpdateKey(u); !ok || (idKey{id, k}) != keys[i] {
			t.Errorf("update %d as Yjs emits it: yUpdateKey = %d, %#x, %v; want %d, %#x", i, id, k, ok, keys[i].id, keys[i].key)
		}
	}
	total := 0
	for _, y := range clients {
		var want strings.Builder
		for _, u := range y.alive {
			want.WriteRune(u.r)
		}
		total += len([]rune(want.String()))
		if g := got.ByClient[strconv.FormatUint(y.id, 10)]; g != want.String() {
			t.Errorf("client %d's text in Yjs is %q, want %q", y.id, g, want.String())
		}
	}
	if n := len([]rune(got.Text)); n != total {
		t.Errorf("the text has %d characters, the clients' add up to %d", n, total)
	}
}

// startHocuspocus runs bench/hocuspocus-server.mjs (Hocuspocus 3, in
// memory) on a free port until the test ends, and returns its URL.
func startHocuspocus(t *testing.T) string {
	t.Helper()
	node := nodetest.Node(t, "@hocuspocus/server")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	cmd, out, stderr := nodetest.Start(t, node, filepath.Join("..", "hocuspocus-server.mjs"), "--port", strconv.Itoa(port))
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	ready := make(chan error, 1)
	go func() {
		line, err := bufio.NewReader(out).ReadString('\n')
		if err == nil && !strings.Contains(line, "listening") {
			err = fmt.Errorf("first line %q", line)
		}
		ready <- err
		// Drain the rest, so the server never blocks on its stdout.
		io.Copy(io.Discard, out)
	}()
	select {
	case err := <-ready:
		if err != nil {
			t.Fatalf("hocuspocus-server.mjs did not start: %v\n%s", err, stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("hocuspocus-server.mjs did not start in 30 s\n%s", stderr.String())
	}
	return fmt.Sprintf("ws://127.0.0.1:%d/", port)
}

// TestRunOnHocuspocus drives a real Hocuspocus server with a short closed
// loop (2 documents × 3 clients, and idle followers): every op must be
// acked by a sync status, reach every other client of its document, and
// leave no errors; the convergence check does not apply.
func TestRunOnHocuspocus(t *testing.T) {
	url := startHocuspocus(t)
	res, err := Run(context.Background(), Options{URLs: []string{url}, Protocol: ProtocolHocuspocus, Docs: 2, Clients: 3, Idle: 2,
		Warmup: 200 * time.Millisecond, Duration: time.Second, Seed: 5})
	checkRun(t, res, err, false)
	if res.Protocol != ProtocolHocuspocus || res.Converged != nil {
		t.Errorf("Run: protocol %q, converged %v; want hocuspocus, not checked", res.Protocol, res.Converged)
	}
	if res.FanoutPending != 0 {
		t.Errorf("Run: %d deliveries missing after the drain, want none", res.FanoutPending)
	}
	// Each op reaches the two other clients of its document; ops sent in
	// the warm-up may arrive inside the window, so allow a little more.
	if want := 2 * res.Acked; res.Fanout.Count < want*9/10 || res.Fanout.Count > want*11/10+20 {
		t.Errorf("Run: %d fan-out arrivals for %d ops with 3 clients per document, want about %d", res.Fanout.Count, res.Acked, want)
	}
}

// TestRunOnHocuspocusOpenLoopAndIdle: the open-loop schedule carries its
// load against Hocuspocus too, and a run of idle connections alone (the
// documents held open by one connection each from before the memory
// baseline, holdDocuments) sets up and ends cleanly.
func TestRunOnHocuspocusOpenLoopAndIdle(t *testing.T) {
	url := startHocuspocus(t)
	res, err := Run(context.Background(), Options{URLs: []string{url}, Protocol: ProtocolHocuspocus, Docs: 2, Clients: 2, Rate: 20,
		Warmup: 200 * time.Millisecond, Duration: 2 * time.Second})
	checkRun(t, res, err, false)
	if res.Mode != "open" || res.Acked < 20 || res.Acked > 60 || res.Unsent > 0 || res.FanoutPending != 0 {
		t.Errorf("open loop at 20 ops/s for 2 s: mode %s, acked %d, unsent %d, missing %d; want open, about 40, 0, 0",
			res.Mode, res.Acked, res.Unsent, res.FanoutPending)
	}
	res, err = Run(context.Background(), Options{URLs: []string{url}, Protocol: ProtocolHocuspocus, Docs: 3, Idle: 6,
		Warmup: -1, Duration: 100 * time.Millisecond, PID: os.Getpid()})
	if err != nil || len(res.Errors) > 0 {
		t.Fatalf("idle run: %v, errors %v", err, res.Errors)
	}
}

func TestOptionsProtocol(t *testing.T) {
	for _, o := range []Options{
		{URLs: []string{"ws://127.0.0.1:1/"}, Clients: 1, Protocol: "yjs"},
		{URLs: []string{"ws://127.0.0.1:1/"}, Clients: 1, Protocol: ProtocolHocuspocus, Relay: true},
	} {
		if _, err := o.withDefaults(); err == nil {
			t.Errorf("withDefaults(%+v) = nil error, want ErrOptions", o)
		}
	}
	o, err := Options{URLs: []string{"ws://127.0.0.1:1/"}, Clients: 1}.withDefaults()
	if err != nil || o.Protocol != ProtocolShareDB {
		t.Errorf("withDefaults with no protocol = %q, %v; want sharedb", o.Protocol, err)
	}
}
