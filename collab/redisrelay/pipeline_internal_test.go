package redisrelay

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/coedit/coedit/collab"
	"github.com/coedit/coedit/internal/redistest"
	"github.com/coedit/coedit/ot"
)

// TestPipelineRunsAgainWhatRedisHadNoScriptFor: a pipeline sent to a
// Redis that lost its script cache (a restart, SCRIPT FLUSH) meets
// NOSCRIPT in each call; runPipeline runs each again on its own, which
// loads the script, and every caller gets the script's answer.
func TestPipelineRunsAgainWhatRedisHadNoScriptFor(t *testing.T) {
	srv := redistest.StartServer(t, redistest.ServerOptions{})
	c := redis.NewClient(&redis.Options{Addr: srv.Addr(), ContextTimeoutEnabled: true})
	defer c.Close()
	r, err := New(Options{Client: c, Prefix: "pipe:", NodeID: "n", Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var calls []*pipeCall
	for i := range 3 {
		key := collab.Key{Collection: "c", ID: fmt.Sprint(i)}
		epoch, _, err := r.Init(ctx, key, Seed{})
		if err != nil {
			t.Fatal(err)
		}
		create := collab.Record{Version: 0, Src: "s", Seq: 1, Kind: collab.OpCreate, Type: ot.URI, Time: 1}
		keys, args, err := r.commitArgs(key, epoch, 0, []collab.Record{create}, "", 0, "0")
		if err != nil {
			t.Fatal(err)
		}
		calls = append(calls, &pipeCall{ctx: ctx, keys: keys, args: args, start: time.Now(), done: make(chan struct{})})
	}
	if err := c.ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	r.runPipeline(calls)
	for i, call := range calls {
		<-call.done
		if call.err != nil || reply(call.v, 0) != "committed" {
			t.Errorf("commit %d in a pipeline after SCRIPT FLUSH = %v, %v; want committed", i, call.v, call.err)
		}
	}
	if st := r.Stats(); st.Pipelines != 1 {
		t.Errorf("Stats.Pipelines = %d, want 1", st.Pipelines)
	}
}
