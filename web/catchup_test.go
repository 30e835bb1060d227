package web

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/coedit/coedit/collab"
	"github.com/coedit/coedit/ot"
	"github.com/coedit/coedit/storage"
)

// TestFarBehindSubscriberCatchesUpWithSmallQueue: a client 100,000 ops
// behind, on a connection whose send queue holds 256 messages, subscribes
// from version 0 and is sent every op in order as it reads them, then the
// reply, then live ops, without being closed as a slow consumer. The
// catch-up used to be queued all at once, so a client more than a queue
// behind was closed with 1013 on every reconnect and never caught up
// (issue 9, item 6).
func TestFarBehindSubscriberCatchesUpWithSmallQueue(t *testing.T) {
	const n = 100_000
	ts := startServer(t, Options{Logger: quiet, SendQueueMessages: 256}, collab.Options{})
	buildLongDoc(t, ts, collab.Key{Collection: "bench", ID: "long"}, n)
	c := ts.connect(t)
	c.sendRaw(`{"a":"s","c":"bench","d":"long","v":0}`)
	var m struct {
		A     string          `json:"a"`
		V     *uint64         `json:"v"`
		Error json.RawMessage `json:"error"`
	}
	for want := uint64(0); want < n; want++ {
		c.ws.SetReadDeadline(time.Now().Add(20 * time.Second))
		_, data, err := c.ws.ReadMessage()
		if err != nil {
			t.Fatalf("reading op %d of the catch-up: %v", want, err)
		}
		m.V, m.Error = nil, nil
		if err := json.Unmarshal(data, &m); err != nil || m.A != "op" || m.V == nil || *m.V != want {
			t.Fatalf("catch-up message %d = %s, want the op at version %d", want, data, want)
		}
	}
	c.expect(`{"a":"s","c":"bench","d":"long"}`)
	w := ts.connect(t)
	w.sendf(`{"a":"op","c":"bench","d":"long","v":%d,"seq":1,"op":["!"]}`, n)
	w.expectf(`{"a":"op","c":"bench","d":"long","v":%d,"src":%q,"seq":1}`, n, w.src)
	c.expectf(`{"a":"op","c":"bench","d":"long","v":%d,"src":%q,"seq":1,"op":["!"]}`, n, w.src)
}

// TestFarBehindSubscriberWithBigOpsCatchesUp: a catch-up is paced by the
// send queue's bytes as well as its messages: a client 200 ops behind,
// half of them 100 KiB inserts, on a connection whose queue holds 1 MiB,
// is sent them all, in order, without being closed as a slow consumer.
func TestFarBehindSubscriberWithBigOpsCatchesUp(t *testing.T) {
	const n = 200
	ts := startServer(t, Options{Logger: quiet, SendQueueBytes: 1 << 20}, collab.Options{})
	key := collab.Key{Collection: "docs", ID: "big"}
	text := strings.Repeat("y", 100<<10)
	recs := []collab.Record{{Version: 0, Kind: collab.OpCreate, Type: textURI, Time: 1}}
	for v := 1; v < n; v++ {
		op := ot.Op{{Kind: ot.KindInsert, N: len(text), Text: text}}
		if v%2 == 0 {
			op = ot.Op{{Kind: ot.KindDelete, N: len(text)}}
		}
		recs = append(recs, collab.Record{Version: uint64(v), Kind: collab.OpEdit, Op: op, Time: 1})
	}
	if err := ts.store.Commit(context.Background(), key, recs, &collab.Snapshot{Version: n, Type: textURI}); err != nil {
		t.Fatal(err)
	}
	c := ts.connect(t)
	c.sendRaw(`{"a":"s","c":"docs","d":"big","v":0}`)
	var m struct {
		A string  `json:"a"`
		V *uint64 `json:"v"`
	}
	for want := uint64(0); want < n; want++ {
		c.ws.SetReadDeadline(time.Now().Add(20 * time.Second))
		_, data, err := c.ws.ReadMessage()
		if err != nil {
			t.Fatalf("reading op %d of the catch-up: %v", want, err)
		}
		m.V = nil
		if err := json.Unmarshal(data, &m); err != nil || m.A != "op" || m.V == nil || *m.V != want {
			t.Fatalf("catch-up message %d = %.200s, want the op at version %d", want, data, want)
		}
	}
	c.expect(`{"a":"s","c":"docs","d":"big"}`)
}

// heldStore is a real store whose Commit can be held, to keep a
// document's session busy.
type heldStore struct {
	*storage.DB
	mu      sync.Mutex
	hold    chan struct{} // non-nil: Commit waits for it to close
	entered chan struct{}
}

func (s *heldStore) Commit(ctx context.Context, key collab.Key, recs []collab.Record, snap *collab.Snapshot) error {
	s.mu.Lock()
	h := s.hold
	s.mu.Unlock()
	if h != nil {
		s.entered <- struct{}{}
		<-h
	}
	return s.DB.Commit(ctx, key, recs, snap)
}

// busyServer returns a server whose document docs/busy has a session
// held in a commit and one request waiting, the most its inbox takes
// (collab.Options.MaxInbox 1), and a function that lets it go on. The
// test's cleanup lets it go on too.
func busyServer(t *testing.T) (*testServer, func()) {
	var store *heldStore
	ts := startServerStore(t, Options{Logger: quiet}, collab.Options{MaxInbox: 1}, func(db *storage.DB) collab.Store {
		store = &heldStore{DB: db, entered: make(chan struct{}, 1)}
		return store
	})
	key := collab.Key{Collection: "docs", ID: "busy"}
	hold := make(chan struct{})
	store.mu.Lock()
	store.hold = hold
	store.mu.Unlock()
	var once sync.Once
	release := func() {
		once.Do(func() {
			store.mu.Lock()
			store.hold = nil
			store.mu.Unlock()
			close(hold)
		})
	}
	t.Cleanup(release)
	ts.hub.Submit(key, nil, collab.Submission{Kind: collab.OpCreate, Type: textURI}, nil)
	<-store.entered
	ts.hub.Fetch(key, nil, nil, nil)
	return ts, release
}

// TestBusyDocumentIsRetryable: a request to a document whose session has
// collab.Options.MaxInbox requests waiting closes the WebSocket with
// 1013, so the client reconnects and resends instead of waiting behind
// them or rolling its op back; over the HTTP API it is answered 503
// ERR_SERVER_BUSY. Once the session catches up, the document is served
// (issue 9, item 5: the session's inbox was unbounded).
func TestBusyDocumentIsRetryable(t *testing.T) {
	ts, release := busyServer(t)
	c := ts.connect(t)
	c.sendRaw(`{"a":"op","c":"docs","d":"busy","v":1,"seq":1,"op":["x"]}`)
	if err := c.closeErr(10 * time.Second); !websocket.IsCloseError(err, CloseTryAgain) {
		t.Fatalf("op to a busy document: connection ended with %v, want close %d", err, CloseTryAgain)
	}
	status, body := ts.httpDo(t, "POST", "/api/docs/docs/busy/ops", "application/json", `{"v":1,"op":["x"]}`, nil)
	checkHTTPError(t, status, body, http.StatusServiceUnavailable, CodeServerBusy)
	release()
	key := collab.Key{Collection: "docs", ID: "busy"}
	deadline := time.Now().Add(10 * time.Second)
	for { // until the held requests are served and the inbox has room
		if _, err := ts.hub.FetchWait(context.Background(), key); err == nil {
			break
		} else if !errors.Is(err, collab.ErrBusy) || time.Now().After(deadline) {
			t.Fatalf("fetch after the session went on = %v", err)
		}
		time.Sleep(time.Millisecond)
	}
	c2 := ts.dial(t, nil)
	c2.handshake(c.src)
	c2.sendRaw(`{"a":"op","c":"docs","d":"busy","v":1,"seq":1,"op":["x"]}`)
	c2.expectf(`{"a":"op","c":"docs","d":"busy","v":1,"src":%q,"seq":1}`, c.src)
}
