package redisrelay_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/coedit/coedit/collab"
	"github.com/coedit/coedit/collab/redisrelay"
	"github.com/coedit/coedit/internal/redistest"
)

// TestCommitWhileRedisPaused: with Redis stopped (SIGSTOP), a commit
// whose context ends fails with ErrUnavailable; once Redis continues,
// repeating it answers Committed, and the record is there once, whether
// or not the first call's script ran after all.
func TestCommitWhileRedisPaused(t *testing.T) {
	srv := redistest.StartServer(t, redistest.ServerOptions{})
	r := node(t, srv.Addr(), prefix(t), redisrelay.Options{})
	epoch := initDoc(t, r, doc)
	batch := []collab.Record{create(0, "a", 1, "")}
	srv.Pause()
	t.Cleanup(srv.Resume)
	c, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	_, err := r.Commit(c, doc, epoch, 0, batch)
	cancel()
	if !errors.Is(err, redisrelay.ErrUnavailable) {
		t.Fatalf("Commit while paused = %v, want ErrUnavailable", err)
	}
	time.Sleep(2 * time.Second) // Redis stays stopped a while, as in an outage
	srv.Resume()
	commit(t, r, doc, epoch, 0, batch...)
	if got := readAll(t, r, doc, epoch); len(got) != 1 {
		t.Fatalf("log has %d records, want 1", len(got))
	}
	commit(t, r, doc, epoch, 1, rec(1, "a", 2, "x"))
}

// TestCommitsSurviveKillWithAOF: with AOF and appendfsync always, every
// committed record is there after kill -9 and a restart; the next commit
// sees the restart (EpochRestarted), Renew starts a new epoch that shares
// the whole history, and writes go on. A subscriber resyncs and hears the
// new epoch.
func TestCommitsSurviveKillWithAOF(t *testing.T) {
	srv := redistest.StartServer(t, redistest.ServerOptions{AOF: true})
	p := prefix(t)
	a := node(t, srv.Addr(), p, redisrelay.Options{})
	b := node(t, srv.Addr(), p, redisrelay.Options{})
	in := newInbox()
	if _, err := b.Subscribe(ctx(t), doc, in.handler()); err != nil {
		t.Fatalf("Subscribe = %v", err)
	}
	in.wait(t, "the first resync", func(in *inbox) bool { return in.resyncs == 1 })
	epoch := initDoc(t, a, doc)
	want := []collab.Record{create(0, "a", 1, "")}
	commit(t, a, doc, epoch, 0, want[0])
	for v := uint64(1); v < 50; v += 7 {
		var batch []collab.Record
		for i := v; i < min(v+7, 50); i++ {
			batch = append(batch, rec(i, "a", i+1, "x"))
		}
		commit(t, a, doc, epoch, v, batch...)
		want = append(want, batch...)
	}
	srv.Kill()
	srv.Restart()
	// Doorbells published before the subscriber is back are lost (at most
	// once); the Resync after its resubscription is what tells it to
	// re-check.
	in.wait(t, "a resync after the restart", func(in *inbox) bool { return in.resyncs == 2 })

	if got := readAll(t, a, doc, epoch); !sameRecords(got, want) {
		t.Fatalf("after kill -9 and restart Read = %d records, want the %d committed", len(got), len(want))
	}
	h, _, err := a.Head(ctx(t), doc)
	if err != nil || !h.Restarted {
		t.Fatalf("Head after restart = %+v, %v; want Restarted", h, err)
	}
	_, err = a.Commit(ctx(t), doc, epoch, 50, []collab.Record{rec(50, "a", 51, "y")})
	if epochReason(err) != redisrelay.EpochRestarted {
		t.Fatalf("Commit after restart = %v, want EpochRestarted", err)
	}
	newEpoch, head, err := a.Renew(ctx(t), doc, epoch, nil)
	if err != nil || newEpoch == epoch || head != 50 {
		t.Fatalf("Renew = %s, %d, %v; want a new epoch at 50", newEpoch, head, err)
	}
	if again, head, err := a.Renew(ctx(t), doc, newEpoch, nil); err != nil || again != newEpoch || head != 50 {
		t.Fatalf("Renew of a current epoch = %s, %d, %v; want it unchanged", again, head, err)
	}
	// Another node still on the old epoch learns that nothing it has was lost.
	_, err = b.Commit(ctx(t), doc, epoch, 50, []collab.Record{rec(50, "b", 1, "z")})
	if epochReason(err) != redisrelay.EpochChanged {
		t.Fatalf("Commit under the old epoch = %v, want EpochChanged", err)
	}
	h, _, _ = b.Head(ctx(t), doc)
	if below, ok := h.Shared(epoch); !ok || below != 50 {
		t.Fatalf("Shared(old epoch) = %d, %v; want 50", below, ok)
	}
	commit(t, b, doc, newEpoch, 50, rec(50, "b", 1, "z"))
	in.wait(t, "b's record under the new epoch", func(in *inbox) bool {
		n := len(in.recs)
		return n > 0 && in.recs[n-1].Src == "b" && in.epochs[len(in.epochs)-1] == newEpoch
	})
}

// TestRestartEmptyGivesEpochAbsent: Redis restarted without its data
// refuses commits and reads until a node seeds the document again from
// its own log; writes then go on from the seeded head.
func TestRestartEmptyGivesEpochAbsent(t *testing.T) {
	srv := redistest.StartServer(t, redistest.ServerOptions{AOF: true})
	r := node(t, srv.Addr(), prefix(t), redisrelay.Options{})
	epoch := initDoc(t, r, doc)
	log := []collab.Record{create(0, "a", 1, ""), rec(1, "a", 2, "x")}
	commit(t, r, doc, epoch, 0, log...)
	srv.RestartEmpty()

	_, err := r.Commit(ctx(t), doc, epoch, 2, []collab.Record{rec(2, "a", 3, "y")})
	if epochReason(err) != redisrelay.EpochAbsent {
		t.Fatalf("Commit after an empty restart = %v, want EpochAbsent", err)
	}
	if _, err := r.Read(ctx(t), doc, epoch, 0, 2); epochReason(err) != redisrelay.EpochAbsent {
		t.Fatalf("Read after an empty restart = %v, want EpochAbsent", err)
	}
	if _, ok, err := r.Head(ctx(t), doc); ok || err != nil {
		t.Fatalf("Head after an empty restart = %v, %v; want absent", ok, err)
	}
	seed := redisrelay.Seed{Prev: epoch, Doc: collab.DocState{Ops: log, Seqs: map[string]collab.SeqEntry{"a": {Seq: 2, Version: 1}}}}
	newEpoch, won, err := r.Init(ctx(t), doc, seed)
	if err != nil || !won || newEpoch == epoch {
		t.Fatalf("Init after an empty restart = %s, %v, %v", newEpoch, won, err)
	}
	if res, err := r.Commit(ctx(t), doc, newEpoch, 2, []collab.Record{rec(2, "a", 2, "x")}); err != nil || res.Outcome != redisrelay.Duplicate || res.Version != 1 {
		t.Fatalf("resend after reseed = %+v, %v; want duplicate at 1", res, err)
	}
	commit(t, r, doc, newEpoch, 2, rec(2, "a", 3, "y"))
	checkLog(t, readAll(t, r, doc, newEpoch))
}
