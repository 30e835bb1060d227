package web

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/redis/go-redis/v9"

	"github.com/coedit/coedit/collab"
	"github.com/coedit/coedit/collab/redisrelay"
	"github.com/coedit/coedit/internal/redistest"
	"github.com/coedit/coedit/ot"
)

// TestReplacedHistoryClosesWith4002AndRefusesTheOldCopy: Redis loses
// the newest records of a document and another writer goes on without
// them, so the node's records past the loss are not the cluster's
// history. When the node finds that out it offers them again and drops
// its subscriber with close 4002; the client, back with its src, is
// refused with ERR_HISTORY_REPLACED at its old version (subscribe and
// resent op alike) instead of being caught up by version, and once it
// subscribes without a version it gets the cluster's text and edits on.
func TestReplacedHistoryClosesWith4002AndRefusesTheOldCopy(t *testing.T) {
	rs := redistest.StartServer(t, redistest.ServerOptions{})
	ts := startClusterServer(t, rs.Addr())
	c := ts.connect(t)
	c.create("docs", "x", "base", 1)
	for v := 1; v <= 4; v++ {
		c.sendf(`{"a":"op","c":"docs","d":"x","v":%d,"seq":%d,"op":["e%d"]}`, v, v+1, v)
		c.expectf(`{"a":"op","c":"docs","d":"x","v":%d,"src":%q,"seq":%d}`, v, c.src, v+1)
	}
	c.sendRaw(`{"a":"s","c":"docs","d":"x","v":5}`)
	c.expect(`{"a":"s","c":"docs","d":"x"}`)

	// Redis loses versions 3 and 4; another writer renews the epoch and
	// commits Z at 3.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rc := redis.NewClient(&redis.Options{Addr: rs.Addr()})
	defer rc.Close()
	prefix := "web:" + t.Name() + ":"
	key := collab.Key{Collection: "docs", ID: "x"}
	other, err := redisrelay.New(redisrelay.Options{Client: rc, Prefix: prefix, NodeID: "other", Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	h, _, err := other.Head(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	loseTail(t, rc, prefix+"{docs.x}:", 3, h.Version)
	epoch, _, err := other.Renew(ctx, key, h.Epoch, nil)
	if err != nil {
		t.Fatalf("Renew = %v", err)
	}
	z := collab.Record{Version: 3, Src: "z", Seq: 1, Kind: collab.OpEdit, Op: ot.Op{{Kind: ot.KindInsert, N: 1, Text: "Z"}}, Time: time.Now().UnixMilli()}
	if res, err := other.Commit(ctx, key, epoch, 3, []collab.Record{z}); err != nil || res.Outcome != redisrelay.Committed {
		t.Fatalf("Commit = %+v, %v", res, err)
	}

	// A read makes the node catch up: it forks and drops c with 4002.
	reader := ts.connect(t)
	reader.sendRaw(`{"a":"f","c":"docs","d":"x"}`)
	want := `{"a":"f","c":"docs","d":"x","data":{"v":6,"data":"e4e3Ze2e1base","type":"http://sharejs.org/types/text-unicode"}}`
	reader.expect(want)
	if err := c.closeErr(10 * time.Second); !websocket.IsCloseError(err, CloseHistoryReplaced) {
		t.Fatalf("the subscriber's socket ended with %v, want close %d", err, CloseHistoryReplaced)
	}

	again := ts.dial(t, nil)
	again.handshake(c.src)
	sub := `{"a":"s","c":"docs","d":"x","v":5}`
	again.sendRaw(sub)
	again.expectError(sub, CodeHistoryReplaced)
	op := fmt.Sprintf(`{"a":"op","c":"docs","d":"x","v":5,"src":%q,"seq":6,"op":["late"]}`, c.src)
	again.sendRaw(op)
	again.expectError(op, CodeHistoryReplaced)
	again.sendRaw(`{"a":"s","c":"docs","d":"x"}`)
	again.expect(`{"a":"s","c":"docs","d":"x","data":{"v":6,"data":"e4e3Ze2e1base","type":"http://sharejs.org/types/text-unicode"}}`)
	again.sendf(`{"a":"op","c":"docs","d":"x","v":6,"seq":6,"op":["late"]}`)
	again.expectf(`{"a":"op","c":"docs","d":"x","v":6,"src":%q,"seq":6}`, c.src)
}

// loseTail makes Redis look as if it restarted having lost a document's
// records from version keep on (base is the document's key prefix):
// they and the seq entries naming them are deleted, the head and stream
// rolled back, and the epoch marked as begun under another Redis process.
func loseTail(t *testing.T, c *redis.Client, base string, keep, head uint64) {
	t.Helper()
	ctx := context.Background()
	for v := keep; v < head; v++ {
		c.XDel(ctx, base+"log", fmt.Sprintf("%d-1", v))
	}
	if err := c.Do(ctx, "XSETID", base+"log", fmt.Sprintf("%d-1", keep-1)).Err(); err != nil {
		t.Fatalf("XSETID = %v", err)
	}
	seqs, err := c.HGetAll(ctx, base+"seqs").Result()
	if err != nil {
		t.Fatalf("HGETALL seqs = %v", err)
	}
	for src, val := range seqs {
		var seq, v uint64
		fmt.Sscanf(val, "%d %d", &seq, &v)
		if v >= keep {
			c.HDel(ctx, base+"seqs", src)
		}
	}
	if err := c.HSet(ctx, base+"meta", "v", keep, "r", "0000").Err(); err != nil {
		t.Fatalf("HSET meta = %v", err)
	}
}
