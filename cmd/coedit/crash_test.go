package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	bolt "go.etcd.io/bbolt"

	"github.com/coedit/coedit/ot"
	"github.com/coedit/coedit/storage"
)

// TestCrashKeepsAcknowledgedOps kills a loaded server with SIGKILL and
// restarts it on the same data, three times with different seeds: every
// op a client saw acknowledged is in the log at its version and in the
// text exactly once, ops in flight at the kill land exactly once when
// resent, and the bbolt file passes bbolt's check as the crash left it.
func TestCrashKeepsAcknowledgedOps(t *testing.T) {
	for _, seed := range []uint64{1, 2, 3} {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) { crashOnce(t, seed) })
	}
}

const (
	crashColl    = "crash"
	crashClients = 4
)

var crashDocs = []string{"d0", "d1", "d2"}

// crashAck is an op a client saw acknowledged.
type crashAck struct {
	doc, src, tok string
	seq, v        uint64
}

// crashClient submits inserts of unique tokens at position 0, one at a
// time, as the ShareDB client does (one op in flight).
type crashClient struct {
	id    int
	rng   *rand.Rand
	ws    *websocket.Conn
	src   string
	known map[string]uint64 // doc -> version to submit at
	seq   uint64
	// inflight is the op sent and not acknowledged when the connection
	// broke, if any.
	inflight *crashAck
	acked    []crashAck
}

func dialCrash(url, id string) (*websocket.Conn, string, error) {
	ws, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(url, "http")+"/ws", nil)
	if err != nil {
		return nil, "", err
	}
	idJSON := "null"
	if id != "" {
		idJSON = fmt.Sprintf("%q", id)
	}
	if err := ws.WriteMessage(websocket.TextMessage, []byte(`{"a":"hs","id":`+idJSON+`,"protocol":1,"protocolMinor":2}`)); err != nil {
		ws.Close()
		return nil, "", err
	}
	var hs struct{ A, ID string }
	ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	if err := ws.ReadJSON(&hs); err != nil || hs.A != "hs" {
		ws.Close()
		return nil, "", fmt.Errorf("handshake: %v (got %+v)", err, hs)
	}
	return ws, hs.ID, nil
}

// opMsg is the part of an incoming op message the client reads.
type opMsg struct {
	A, C, D, Src string
	V, Seq       uint64
	Op           json.RawMessage
	Error        *struct{ Code, Message string }
}

// submit sends op (the client's current inflight) and reads until its
// ack, keeping the versions of the ops it sees.
func (c *crashClient) submit() error {
	p := c.inflight
	msg := fmt.Sprintf(`{"a":"op","c":%q,"d":%q,"v":%d,"src":%q,"seq":%d,"op":[%q]}`, crashColl, p.doc, p.v, c.src, p.seq, p.tok)
	if err := c.ws.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
		return err
	}
	for {
		var m opMsg
		c.ws.SetReadDeadline(time.Now().Add(30 * time.Second))
		if err := c.ws.ReadJSON(&m); err != nil {
			return err
		}
		if m.Error != nil {
			return fmt.Errorf("client %d: error reply %s: %s", c.id, m.Error.Code, m.Error.Message)
		}
		if m.A != "op" || m.C != crashColl {
			return fmt.Errorf("client %d: unexpected message %+v", c.id, m)
		}
		c.known[m.D] = max(c.known[m.D], m.V+1)
		if m.Src == c.src && m.Seq == p.seq && m.Op == nil {
			ack := *p
			ack.v = m.V
			c.acked = append(c.acked, ack)
			c.inflight = nil
			return nil
		}
	}
}

// run submits until the connection breaks.
func (c *crashClient) run(acks *atomic.Int64) {
	for {
		doc := crashDocs[c.rng.IntN(len(crashDocs))]
		c.seq++
		c.inflight = &crashAck{doc: doc, src: c.src, seq: c.seq, v: c.known[doc], tok: fmt.Sprintf("<%d.%d>", c.id, c.seq)}
		if err := c.submit(); err != nil {
			return
		}
		acks.Add(1)
	}
}

func crashOnce(t *testing.T, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 0x636f65646974))
	dir := t.TempDir()
	path := filepath.Join(dir, dataFile)
	srv := startServe(t, dir)
	for _, d := range crashDocs {
		if status, body := postJSON(t, srv.url+"/api/docs/"+crashColl+"/"+d+"/ops", `{"v":null,"create":{"type":"text-unicode","data":""}}`); status != http.StatusOK {
			t.Fatalf("create %s = %d %s", d, status, body)
		}
	}

	killAfter := int64(40 + rng.IntN(120))
	clients := make([]*crashClient, crashClients)
	for i := range clients {
		ws, src, err := dialCrash(srv.url, "")
		if err != nil {
			t.Fatal(err)
		}
		defer ws.Close()
		clients[i] = &crashClient{id: i, rng: rand.New(rand.NewPCG(seed, uint64(i))), ws: ws, src: src,
			known: map[string]uint64{"d0": 1, "d1": 1, "d2": 1}}
	}
	var acks atomic.Int64
	var wg sync.WaitGroup
	for _, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.run(&acks)
		}()
	}
	deadline := time.Now().Add(60 * time.Second)
	for acks.Load() < killAfter && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if err := srv.cmd.Process.Kill(); err != nil { // SIGKILL
		t.Fatal(err)
	}
	srv.wait(t)
	wg.Wait()
	if n := acks.Load(); n < killAfter {
		t.Fatalf("only %d acks before the deadline, want %d", n, killAfter)
	}
	inflight := 0
	for _, c := range clients {
		if c.inflight != nil {
			inflight++
		}
	}
	t.Logf("seed %d: killed after %d acks, %d ops in flight", seed, acks.Load(), inflight)

	// The file as the crash left it passes bbolt's own check.
	if err := boltCheck(path); err != nil {
		t.Fatalf("bbolt check after kill -9: %v", err)
	}

	// Restart; each client reclaims its src and resends its op in flight.
	srv = startServe(t, dir)
	heads := map[string]uint64{}
	for _, d := range crashDocs {
		_, body := fetchURL(t, srv.url+"/api/docs/"+crashColl+"/"+d)
		var snap struct{ V uint64 }
		if err := json.Unmarshal([]byte(body), &snap); err != nil {
			t.Fatalf("snapshot %s: %q: %v", d, body, err)
		}
		heads[d] = snap.V
	}
	committedBefore := 0
	for _, c := range clients {
		if c.inflight == nil {
			continue
		}
		ws, src, err := dialCrash(srv.url, c.src)
		if err != nil {
			t.Fatal(err)
		}
		defer ws.Close()
		if src != c.src {
			t.Fatalf("client %d reclaimed src %q, want %q", c.id, src, c.src)
		}
		c.ws = ws
		doc := c.inflight.doc
		if err := c.submit(); err != nil {
			t.Fatalf("client %d resend after restart: %v", c.id, err)
		}
		if c.acked[len(c.acked)-1].v < heads[doc] {
			committedBefore++ // committed before the kill, its ack lost
		}
	}
	t.Logf("seed %d: %d resent ops were already committed (acked at their original version), %d were new", seed, committedBefore, inflight-committedBefore)

	// Every acknowledged op is in the log at its version, and its token
	// in the text exactly once; the log replays to the text.
	for _, d := range crashDocs {
		status, body := fetchURL(t, srv.url+"/api/docs/"+crashColl+"/"+d+"/ops")
		if status != http.StatusOK {
			t.Fatalf("GET ops %s = %d %s", d, status, body)
		}
		type logged struct {
			V, Seq uint64
			Src    string
			Op     json.RawMessage
			Create *struct{ Type, Data string }
		}
		at := map[string]uint64{} // src/seq -> v
		text := ""
		n := uint64(0)
		for _, line := range strings.Split(strings.TrimSpace(body), "\n") {
			var l logged
			if err := json.Unmarshal([]byte(line), &l); err != nil {
				t.Fatalf("ops line %q: %v", line, err)
			}
			if l.V != n {
				t.Fatalf("%s: op log line %d has v %d", d, n, l.V)
			}
			n++
			if l.Create != nil {
				text = l.Create.Data
				continue
			}
			k := fmt.Sprintf("%s/%d", l.Src, l.Seq)
			if _, dup := at[k]; dup {
				t.Fatalf("%s: op %s committed twice", d, k)
			}
			at[k] = l.V
			op, err := ot.Decode(l.Op)
			if err != nil {
				t.Fatalf("%s: op at v%d: %v", d, l.V, err)
			}
			if text, err = ot.Apply(text, op); err != nil {
				t.Fatalf("%s: op at v%d does not apply: %v", d, l.V, err)
			}
		}
		status, body = fetchURL(t, srv.url+"/api/docs/"+crashColl+"/"+d)
		var snap struct {
			V    uint64
			Data string
		}
		if status != http.StatusOK || json.Unmarshal([]byte(body), &snap) != nil {
			t.Fatalf("GET snapshot %s = %d %s", d, status, body)
		}
		if snap.V != n || snap.Data != text {
			t.Fatalf("%s: snapshot v%d %q, want the log's v%d %q", d, snap.V, snap.Data, n, text)
		}
		for _, c := range clients {
			for _, a := range c.acked {
				if a.doc != d {
					continue
				}
				if v, ok := at[fmt.Sprintf("%s/%d", a.src, a.seq)]; !ok || v != a.v {
					t.Fatalf("%s: op %s/%d acked at v%d is in the log at v%d (present %v)", d, a.src, a.seq, a.v, v, ok)
				}
				if k := strings.Count(snap.Data, a.tok); k != 1 {
					t.Fatalf("%s: token %s of an acked op appears %d times in the text", d, a.tok, k)
				}
			}
		}
	}

	if code := srv.stop(t, syscall.SIGTERM); code != 0 {
		t.Fatalf("exit code after SIGTERM = %d, want 0", code)
	}
	// After a clean stop the whole store checks out, coedit's invariants
	// included.
	db, err := storage.Open(path, storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := db.Check(ctx); err != nil {
		t.Fatalf("storage check after restart and SIGTERM: %v", err)
	}
}

// boltCheck opens path read-only and runs bbolt's consistency check.
func boltCheck(path string) error {
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: 5 * time.Second})
	if err != nil {
		return err
	}
	defer db.Close()
	return db.View(func(tx *bolt.Tx) error {
		var errs []error
		for err := range tx.Check() {
			errs = append(errs, err)
		}
		return errors.Join(errs...)
	})
}
