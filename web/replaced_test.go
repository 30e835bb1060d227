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
	"github.com/coedit/coedit/collab/redisrelay/redisrelaytest"
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
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rc := redis.NewClient(&redis.Options{Addr: rs.Addr()})
	defer rc.Close()
	prefix := "web:" + t.Name() + ":"
	other, err := redisrelay.New(redisrelay.Options{Client: rc, Prefix: prefix, NodeID: "other", Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()

	// c writes versions 0..4 of a document and subscribes. Redis loses
	// versions 3 and 4; another writer renews the epoch and commits Z at
	// 3. The node offers its records again as soon as it sees the new
	// epoch; when it wins that race the other writer's commit conflicts,
	// and the setup is made again on another document, with another
	// client (the node may have closed this one: its copy was replaced
	// all the same).
	id := ""
	var c *tclient
	for i := 1; i <= 5 && id == ""; i++ {
		d := fmt.Sprintf("x%d", i)
		c = ts.connect(t)
		c.create("docs", d, "base", 1)
		for v := 1; v <= 4; v++ {
			c.sendf(`{"a":"op","c":"docs","d":%q,"v":%d,"seq":%d,"op":["e%d"]}`, d, v, v+1, v)
			c.expectf(`{"a":"op","c":"docs","d":%q,"v":%d,"src":%q,"seq":%d}`, d, v, c.src, v+1)
		}
		c.sendRaw(fmt.Sprintf(`{"a":"s","c":"docs","d":%q,"v":5}`, d))
		c.expect(fmt.Sprintf(`{"a":"s","c":"docs","d":%q}`, d))

		key := collab.Key{Collection: "docs", ID: d}
		h, _, err := other.Head(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		redisrelaytest.LoseTail(t, rc, prefix, key, 3, h.Version)
		epoch, _, err := other.Renew(ctx, key, h.Epoch, nil)
		if err != nil {
			t.Fatalf("Renew = %v", err)
		}
		z := collab.Record{Version: 3, Src: "z", Seq: 1, Kind: collab.OpEdit, Op: ot.Op{{Kind: ot.KindInsert, N: 1, Text: "Z"}}, Time: time.Now().UnixMilli()}
		res, err := other.Commit(ctx, key, epoch, 3, []collab.Record{z})
		if err == nil && res.Outcome == redisrelay.Conflict && len(res.Missed) > 0 && res.Missed[0].Src == c.src {
			continue // the node put its records back first: no fork
		}
		if err != nil || res.Outcome != redisrelay.Committed {
			t.Fatalf("Commit = %+v, %v", res, err)
		}
		id = d
	}
	if id == "" {
		t.Fatal("the node put its records back before the other writer committed, five times")
	}

	// A read makes the node catch up: it forks and drops c with 4002.
	reader := ts.connect(t)
	reader.sendRaw(fmt.Sprintf(`{"a":"f","c":"docs","d":%q}`, id))
	want := fmt.Sprintf(`{"a":"f","c":"docs","d":%q,"data":{"v":6,"data":"e4e3Ze2e1base","type":"http://sharejs.org/types/text-unicode"}}`, id)
	reader.expect(want)
	if err := c.closeErr(10 * time.Second); !websocket.IsCloseError(err, CloseHistoryReplaced) {
		t.Fatalf("the subscriber's socket ended with %v, want close %d", err, CloseHistoryReplaced)
	}

	again := ts.dial(t, nil)
	again.handshake(c.src)
	sub := fmt.Sprintf(`{"a":"s","c":"docs","d":%q,"v":5}`, id)
	again.sendRaw(sub)
	again.expectError(sub, CodeHistoryReplaced)
	op := fmt.Sprintf(`{"a":"op","c":"docs","d":%q,"v":5,"src":%q,"seq":6,"op":["late"]}`, id, c.src)
	again.sendRaw(op)
	again.expectError(op, CodeHistoryReplaced)
	again.sendRaw(fmt.Sprintf(`{"a":"s","c":"docs","d":%q}`, id))
	again.expect(fmt.Sprintf(`{"a":"s","c":"docs","d":%q,"data":{"v":6,"data":"e4e3Ze2e1base","type":"http://sharejs.org/types/text-unicode"}}`, id))
	again.sendf(`{"a":"op","c":"docs","d":%q,"v":6,"seq":6,"op":["late"]}`, id)
	again.expectf(`{"a":"op","c":"docs","d":%q,"v":6,"src":%q,"seq":6}`, id, c.src)
}
