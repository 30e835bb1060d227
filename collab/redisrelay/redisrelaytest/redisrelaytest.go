// Package redisrelaytest breaks a Relay's Redis state the way a failure
// would, for tests of what the cluster does next.
package redisrelaytest

import (
	"context"
	"fmt"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/coedit/coedit/collab"
	"github.com/coedit/coedit/collab/redisrelay"
)

// LoseTail makes Redis look as if it restarted having lost document
// key's records from version keep on, head being the version after the
// last (as with appendfsync everysec): it deletes them and the seq
// entries naming them, rolls the head and stream back, and marks the
// epoch as begun under another Redis process. A real loss would leave
// such a src's entry at its earlier record, which LoseTail cannot know:
// set it afterwards where a test depends on it. prefix is the Relay's
// Options.Prefix. It relies on the key layout redisrelay's doc.go gives.
func LoseTail(tb testing.TB, c *redis.Client, prefix string, key collab.Key, keep, head uint64) {
	tb.Helper()
	ctx := context.Background()
	base := redisrelay.KeyBase(prefix, key)
	for v := keep; v < head; v++ {
		if err := c.XDel(ctx, base+"log", fmt.Sprintf("%d-1", v)).Err(); err != nil {
			tb.Fatalf("XDEL = %v", err)
		}
	}
	if err := c.Do(ctx, "XSETID", base+"log", fmt.Sprintf("%d-1", keep-1)).Err(); err != nil {
		tb.Fatalf("XSETID = %v", err)
	}
	seqs, err := c.HGetAll(ctx, base+"seqs").Result()
	if err != nil {
		tb.Fatalf("HGETALL seqs = %v", err)
	}
	for src, val := range seqs {
		var seq, v uint64
		if _, err := fmt.Sscanf(val, "%d %d", &seq, &v); err != nil {
			tb.Fatalf("seq entry %s = %q: %v", src, val, err)
		}
		if v >= keep {
			c.HDel(ctx, base+"seqs", src)
		}
	}
	if err := c.HSet(ctx, base+"meta", "v", keep, "r", "0000").Err(); err != nil {
		tb.Fatalf("HSET meta = %v", err)
	}
}
