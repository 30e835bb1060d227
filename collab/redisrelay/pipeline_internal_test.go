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
		if _, _, err := r.Init(ctx, key, Seed{}); err != nil {
			t.Fatal(err)
		}
		k := r.keys(key)
		calls = append(calls, &pipeCall{ctx: ctx, keys: []string{k.meta, k.replaced}, done: make(chan struct{})})
	}
	if err := c.ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	r.runPipeline("head", headScript, calls)
	for i, call := range calls {
		<-call.done
		if call.err != nil || len(call.v) < 2 {
			t.Errorf("call %d after SCRIPT FLUSH = %v, %v; want the head script's answer", i, call.v, call.err)
		}
	}
	if st := r.Stats(); st.Pipelines != 1 {
		t.Errorf("Stats.Pipelines = %d, want 1", st.Pipelines)
	}
}
