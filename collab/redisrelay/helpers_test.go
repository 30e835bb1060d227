package redisrelay_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coedit/coedit/collab"
	"github.com/coedit/coedit/collab/redisrelay"
	"github.com/coedit/coedit/internal/redistest"
	"github.com/coedit/coedit/ot"
	"github.com/redis/go-redis/v9"
)

// waitLimit bounds every wait in these tests, so a bug shows as a
// failure, not a hang. It is not a performance assertion.
const waitLimit = 20 * time.Second

// waitFor polls cond until it holds or the wait limit passes.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s: timed out", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

var prefixes atomic.Int64

// prefix returns a key prefix of its own for each relay set a test
// makes, so tests never see each other's keys.
func prefix(t testing.TB) string {
	return fmt.Sprintf("t%d:%s:", prefixes.Add(1), t.Name())
}

// newClient connects to a single Redis; a cleanup closes it.
func newClient(t testing.TB, addr string) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{
		Addr:                  addr,
		ContextTimeoutEnabled: true,
		MaxRetries:            1,
		DialTimeout:           time.Second,
	})
	t.Cleanup(func() { c.Close() })
	return c
}

// newRelay returns a Relay over c with prefix p; a cleanup closes it.
func newRelay(t testing.TB, c redis.UniversalClient, p string, opts redisrelay.Options) *redisrelay.Relay {
	t.Helper()
	opts.Client = c
	opts.Prefix = p
	if opts.NodeID == "" {
		opts.NodeID = t.Name()
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	r, err := redisrelay.New(opts)
	if err != nil {
		t.Fatalf("New() = %v", err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// node is one Relay on its own client, as one coedit node would have.
func node(t testing.TB, addr, p string, opts redisrelay.Options) *redisrelay.Relay {
	t.Helper()
	return newRelay(t, newClient(t, addr), p, opts)
}

// ctx returns a context that ends with the test's wait limit.
func ctx(t testing.TB) context.Context {
	c, cancel := context.WithTimeout(context.Background(), waitLimit)
	t.Cleanup(cancel)
	return c
}

var doc = collab.Key{Collection: "notes", ID: "a"}

// rec returns an edit record at version v from src with seq, inserting
// text at the start.
func rec(v uint64, src string, seq uint64, text string) collab.Record {
	return collab.Record{Version: v, Src: src, Seq: seq, Kind: collab.OpEdit,
		Op: ot.Op{{Kind: ot.KindInsert, N: len([]rune(text)), Text: text}}, Time: 1_700_000_000_000 + int64(v)}
}

// create returns a create record at version v.
func create(v uint64, src string, seq uint64, text string) collab.Record {
	return collab.Record{Version: v, Src: src, Seq: seq, Kind: collab.OpCreate, Type: ot.URI, Data: text, Time: 1_700_000_000_000}
}

// initDoc seeds key empty and returns the epoch.
func initDoc(t testing.TB, r *redisrelay.Relay, key collab.Key) string {
	t.Helper()
	epoch, won, err := r.Init(ctx(t), key, redisrelay.Seed{})
	if err != nil || !won {
		t.Fatalf("Init(%v) = %q, %v, %v; want a new epoch", key, epoch, won, err)
	}
	return epoch
}

// commit commits recs at expect and wants Committed.
func commit(t testing.TB, r *redisrelay.Relay, key collab.Key, epoch string, expect uint64, recs ...collab.Record) {
	t.Helper()
	res, err := r.Commit(ctx(t), key, epoch, expect, recs)
	if err != nil || res.Outcome != redisrelay.Committed || res.Version != expect {
		t.Fatalf("Commit(%v at %d) = %+v, %v; want committed at %d", key, expect, res, err, expect)
	}
}

// readAll reads every record of key from version 0 to the head.
func readAll(t testing.TB, r *redisrelay.Relay, key collab.Key, epoch string) []collab.Record {
	t.Helper()
	h, ok, err := r.Head(ctx(t), key)
	if err != nil || !ok {
		t.Fatalf("Head(%v) = %+v, %v, %v", key, h, ok, err)
	}
	recs, err := r.Read(ctx(t), key, epoch, 0, h.Version)
	if err != nil {
		t.Fatalf("Read(%v, 0, %d) = %v", key, h.Version, err)
	}
	if uint64(len(recs)) != h.Version {
		t.Fatalf("Read(%v, 0, %d) returned %d records", key, h.Version, len(recs))
	}
	return recs
}

// checkLog checks that recs are versions 0.. without gaps and that each
// (src, seq) appears once.
func checkLog(t testing.TB, recs []collab.Record) {
	t.Helper()
	seen := make(map[string]uint64)
	for i, r := range recs {
		if r.Version != uint64(i) {
			t.Fatalf("record %d has version %d", i, r.Version)
		}
		if r.Src == "" {
			continue
		}
		id := fmt.Sprintf("%s/%d", r.Src, r.Seq)
		if v, ok := seen[id]; ok {
			t.Fatalf("(src, seq) %s committed at %d and %d", id, v, r.Version)
		}
		seen[id] = r.Version
	}
}

// sameRecords reports whether a and b are equal record by record.
func sameRecords(a, b []collab.Record) bool {
	return slices.EqualFunc(a, b, func(x, y collab.Record) bool {
		return x.Version == y.Version && x.Src == y.Src && x.Seq == y.Seq && x.Kind == y.Kind &&
			x.Op.String() == y.Op.String() && (x.Op == nil) == (y.Op == nil) &&
			x.Type == y.Type && x.Data == y.Data && x.Time == y.Time
	})
}

// epochReason returns err's EpochError reason, or 0.
func epochReason(err error) redisrelay.EpochReason {
	var ee *redisrelay.EpochError
	if errors.As(err, &ee) {
		return ee.Reason
	}
	return 0
}

// inbox collects what a Handler receives.
type inbox struct {
	mu      sync.Mutex
	recs    []collab.Record
	epochs  []string
	resyncs int
	changed chan struct{}
}

func newInbox() *inbox { return &inbox{changed: make(chan struct{}, 1)} }

func (in *inbox) handler() redisrelay.Handler {
	return redisrelay.Handler{
		Deliver: func(epoch string, recs []collab.Record) {
			in.mu.Lock()
			in.recs = append(in.recs, recs...)
			in.epochs = append(in.epochs, epoch)
			in.mu.Unlock()
			in.poke()
		},
		Resync: func() {
			in.mu.Lock()
			in.resyncs++
			in.mu.Unlock()
			in.poke()
		},
	}
}

func (in *inbox) poke() {
	select {
	case in.changed <- struct{}{}:
	default:
	}
}

// wait waits until cond holds for the inbox (checked under its lock).
func (in *inbox) wait(t testing.TB, what string, cond func(in *inbox) bool) {
	t.Helper()
	deadline := time.After(waitLimit)
	for {
		in.mu.Lock()
		ok := cond(in)
		in.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-in.changed:
		case <-deadline:
			in.mu.Lock()
			defer in.mu.Unlock()
			t.Fatalf("waiting for %s: have %d records, epochs %v, %d resyncs", what, len(in.recs), in.epochs, in.resyncs)
		}
	}
}

// twoNodes starts a Redis server and two relays over it with the same
// key prefix, and creates the document doc through the first: what most
// two-node tests begin with.
func twoNodes(t testing.TB) (a, b *redisrelay.Relay, epoch string) {
	t.Helper()
	srv := redistest.StartServer(t, redistest.ServerOptions{})
	p := prefix(t)
	a = node(t, srv.Addr(), p, redisrelay.Options{})
	b = node(t, srv.Addr(), p, redisrelay.Options{})
	return a, b, initDoc(t, a, doc)
}
