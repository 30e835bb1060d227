package redisrelay_test

import (
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/coedit/coedit/collab"
	"github.com/coedit/coedit/collab/redisrelay"
	"github.com/coedit/coedit/internal/redistest"
)

// TestReadAfterTrim: the stream keeps TailLen records and those since
// Redis's snapshot, up to MaxTailLen; reading below what it keeps is
// ErrTrimmed, and Load returns the snapshot plus the tail.
func TestReadAfterTrim(t *testing.T) {
	srv := redistest.StartServer(t, redistest.ServerOptions{})
	r := node(t, srv.Addr(), prefix(t), redisrelay.Options{TailLen: 5, MaxTailLen: 10})
	epoch := initDoc(t, r, doc)
	commit(t, r, doc, epoch, 0, create(0, "a", 1, ""))
	for v := uint64(1); v < 30; v++ {
		commit(t, r, doc, epoch, v, rec(v, "a", v+1, "x"))
	}
	// No snapshot: MaxTailLen bounds the stream.
	if _, err := r.Read(ctx(t), doc, epoch, 0, 30); !errors.Is(err, redisrelay.ErrTrimmed) {
		t.Fatalf("Read(0, 30) = %v, want ErrTrimmed", err)
	}
	got, err := r.Read(ctx(t), doc, epoch, 20, 30)
	if err != nil || len(got) != 10 || got[0].Version != 20 {
		t.Fatalf("Read(20, 30) = %d records, %v; want 10 from 20", len(got), err)
	}
	if _, err := r.Read(ctx(t), doc, epoch, 5, 10); !errors.Is(err, redisrelay.ErrTrimmed) {
		t.Fatalf("Read(5, 10), all trimmed = %v, want ErrTrimmed", err)
	}
	if got, err := r.Read(ctx(t), doc, epoch, 30, 40); err != nil || len(got) != 0 {
		t.Fatalf("Read(30, 40), at the head = %v, %v; want nothing", got, err)
	}
	if _, _, err := r.Load(ctx(t), doc); !errors.Is(err, redisrelay.ErrTrimmed) {
		t.Fatalf("Load without a snapshot after the cap = %v, want ErrTrimmed", err)
	}
	// A snapshot at 27 lets the stream drop all but TailLen.
	snap := collab.Snapshot{Version: 27, Type: "http://sharejs.org/types/textv1", Data: "xxxxxxxxxxxxxxxxxxxxxxxxxx"}
	if saved, err := r.SaveSnapshot(ctx(t), doc, epoch, snap); err != nil || !saved {
		t.Fatalf("SaveSnapshot(27) = %v, %v", saved, err)
	}
	if _, err := r.Read(ctx(t), doc, epoch, 24, 30); !errors.Is(err, redisrelay.ErrTrimmed) {
		t.Fatalf("Read(24, 30) after the snapshot = %v, want ErrTrimmed", err)
	}
	if got, err := r.Read(ctx(t), doc, epoch, 25, 30); err != nil || len(got) != 5 {
		t.Fatalf("Read(25, 30) = %d records, %v; want 5", len(got), err)
	}
	if saved, err := r.SaveSnapshot(ctx(t), doc, epoch, collab.Snapshot{Version: 26}); err != nil || saved {
		t.Fatalf("SaveSnapshot(older) = %v, %v; want not saved", saved, err)
	}
	st, ok, err := r.Load(ctx(t), doc)
	if err != nil || !ok || st.Doc.Snapshot != snap || len(st.Doc.Ops) != 3 || st.Doc.Ops[0].Version != 27 {
		t.Fatalf("Load = %+v, %v, %v; want the snapshot at 27 and records 27..29", st, ok, err)
	}
	if _, err := r.SaveSnapshot(ctx(t), doc, epoch, collab.Snapshot{Version: 31}); epochReason(err) != redisrelay.EpochBehind {
		t.Fatalf("SaveSnapshot(past the head) = %v, want EpochBehind", err)
	}
}

// TestInitRace: nodes racing to seed the same document agree on one
// epoch, and only one of them wins.
func TestInitRace(t *testing.T) {
	srv := redistest.StartServer(t, redistest.ServerOptions{})
	p := prefix(t)
	const racers = 8
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		wins   int
		epochs = make(map[string]bool)
	)
	for i := range racers {
		r := node(t, srv.Addr(), p, redisrelay.Options{})
		seed := redisrelay.Seed{Doc: collab.DocState{Ops: []collab.Record{create(0, fmt.Sprint(i), 1, fmt.Sprint(i))}}}
		wg.Go(func() {
			epoch, won, err := r.Init(ctx(t), doc, seed)
			if err != nil {
				t.Errorf("Init = %v", err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			epochs[epoch] = true
			if won {
				wins++
			}
		})
	}
	wg.Wait()
	if wins != 1 || len(epochs) != 1 {
		t.Fatalf("%d of %d Init calls won, epochs %v; want one winner and one epoch", wins, racers, epochs)
	}
	r := node(t, srv.Addr(), p, redisrelay.Options{})
	h, _, err := r.Head(ctx(t), doc)
	if err != nil || !epochs[h.Epoch] || h.Version != 1 {
		t.Fatalf("Head = %+v, %v; want the winner's epoch at version 1", h, err)
	}
}

// TestInitSeedsState: a document seeded from a node's state loads back
// the same, and the seeded seqs still recognise resends.
func TestInitSeedsState(t *testing.T) {
	srv := redistest.StartServer(t, redistest.ServerOptions{})
	r := node(t, srv.Addr(), prefix(t), redisrelay.Options{})
	seed := redisrelay.Seed{Prev: "old", Doc: collab.DocState{
		Snapshot: collab.Snapshot{Version: 40, Type: "http://sharejs.org/types/textv1", Data: "forty"},
		Ops:      []collab.Record{rec(40, "b", 9, "y"), rec(41, "c", 2, "z")},
		Seqs:     map[string]collab.SeqEntry{"a": {Seq: 5, Version: 12}, "b": {Seq: 9, Version: 40}, "c": {Seq: 2, Version: 41}},
	}}
	epoch, won, err := r.Init(ctx(t), doc, seed)
	if err != nil || !won {
		t.Fatalf("Init = %v, %v", won, err)
	}
	st, ok, err := r.Load(ctx(t), doc)
	if err != nil || !ok {
		t.Fatalf("Load = %v, %v", ok, err)
	}
	if st.Head.Epoch != epoch || st.Head.Version != 42 || st.Head.SnapshotVersion != 40 ||
		st.Doc.Snapshot != seed.Doc.Snapshot || !sameRecords(st.Doc.Ops, seed.Doc.Ops) ||
		fmt.Sprint(st.Doc.Seqs) != fmt.Sprint(seed.Doc.Seqs) {
		t.Fatalf("Load = %+v, want the seed at head 42 under %s", st, epoch)
	}
	if below, ok := st.Head.Shared("old"); !ok || below != 42 {
		t.Fatalf("Shared(prev) = %d, %v; want 42", below, ok)
	}
	res, err := r.Commit(ctx(t), doc, epoch, 42, []collab.Record{rec(42, "a", 5, "resent")})
	if err != nil || res.Outcome != redisrelay.Duplicate || res.Version != 12 {
		t.Fatalf("Commit(resend of a seeded seq) = %+v, %v; want duplicate at 12", res, err)
	}
	commit(t, r, doc, epoch, 42, rec(42, "a", 6, "new"))
	if _, won, err := r.Init(ctx(t), doc, redisrelay.Seed{}); err != nil || won {
		t.Fatalf("Init of a seeded document = %v, %v; want lost", won, err)
	}
}

// TestKeysStayInOneSlotWithBraces: ids with braces, dots and percent
// signs are documents of their own and work end to end.
func TestKeysStayInOneSlotWithBraces(t *testing.T) {
	srv := redistest.StartServer(t, redistest.ServerOptions{})
	r := node(t, srv.Addr(), prefix(t), redisrelay.Options{})
	keys := []collab.Key{{Collection: "a.b", ID: "c"}, {Collection: "a", ID: "b.c"}, {Collection: "x", ID: "}{"}, {Collection: "x", ID: "%7D%7B"}}
	epochs := make([]string, len(keys))
	for i, k := range keys {
		epochs[i] = initDoc(t, r, k)
		commit(t, r, k, epochs[i], 0, create(0, "s", 1, k.ID))
	}
	for i, k := range keys {
		got := readAll(t, r, k, epochs[i])
		if len(got) != 1 || got[0].Data != k.ID {
			t.Errorf("%v holds %v, want its own create", k, got)
		}
	}
}

// TestNewRefusesBadOptions: a prefix with a brace would break the hash
// tag; no client is no relay.
func TestNewRefusesBadOptions(t *testing.T) {
	c := newClient(t, "127.0.0.1:1")
	if _, err := redisrelay.New(redisrelay.Options{Client: c, Prefix: "a{b"}); !errors.Is(err, redisrelay.ErrInvalid) {
		t.Errorf("New(prefix with a brace) = %v, want ErrInvalid", err)
	}
	if _, err := redisrelay.New(redisrelay.Options{}); !errors.Is(err, redisrelay.ErrInvalid) {
		t.Errorf("New(no client) = %v, want ErrInvalid", err)
	}
}
