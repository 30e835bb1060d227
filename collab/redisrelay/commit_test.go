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

// TestCommitSequence commits batches one after another and reads them
// back, whole and in part, with the head following.
func TestCommitSequence(t *testing.T) {
	srv := redistest.StartServer(t, redistest.ServerOptions{})
	r := node(t, srv.Addr(), prefix(t), redisrelay.Options{})
	epoch := initDoc(t, r, doc)
	want := []collab.Record{create(0, "c1", 1, "hi"), rec(1, "c1", 2, "a"), rec(2, "c2", 1, "b"), rec(3, "c1", 3, "c")}
	commit(t, r, doc, epoch, 0, want[0])
	commit(t, r, doc, epoch, 1, want[1:3]...)
	commit(t, r, doc, epoch, 3, want[3])
	if got := readAll(t, r, doc, epoch); !sameRecords(got, want) {
		t.Fatalf("Read = %v, want %v", got, want)
	}
	got, err := r.Read(ctx(t), doc, epoch, 1, 3)
	if err != nil || !sameRecords(got, want[1:3]) {
		t.Fatalf("Read(1, 3) = %v, %v; want %v", got, err, want[1:3])
	}
	got, err = r.Read(ctx(t), doc, epoch, 2, 100)
	if err != nil || !sameRecords(got, want[2:]) {
		t.Fatalf("Read(2, 100) = %v, %v; want the records to the head", got, err)
	}
	h, ok, err := r.Head(ctx(t), doc)
	if err != nil || !ok || h.Epoch != epoch || h.Version != 4 || h.Restarted {
		t.Fatalf("Head = %+v, %v, %v; want epoch %s version 4", h, ok, err, epoch)
	}
	st, ok, err := r.Load(ctx(t), doc)
	if err != nil || !ok || !sameRecords(st.Doc.Ops, want) {
		t.Fatalf("Load = %+v, %v, %v", st, ok, err)
	}
	wantSeqs := map[string]collab.SeqEntry{"c1": {Seq: 3, Version: 3}, "c2": {Seq: 1, Version: 2}}
	if fmt.Sprint(st.Doc.Seqs) != fmt.Sprint(wantSeqs) {
		t.Fatalf("Load seqs = %v, want %v", st.Doc.Seqs, wantSeqs)
	}
	if s := r.Stats(); s.Commits != 3 || s.Records != 4 {
		t.Errorf("Stats = %+v, want 3 commits of 4 records", s)
	}
}

// TestCommitConflictReturnsMissed: a node behind Redis's head gets a
// conflict with the head and the records it missed, and nothing is
// written.
func TestCommitConflictReturnsMissed(t *testing.T) {
	a, b, epoch := twoNodes(t)
	theirs := []collab.Record{create(0, "a", 1, ""), rec(1, "a", 2, "x"), rec(2, "a", 3, "y")}
	commit(t, a, doc, epoch, 0, theirs...)
	res, err := b.Commit(ctx(t), doc, epoch, 1, []collab.Record{rec(1, "b", 1, "z")})
	if err != nil || res.Outcome != redisrelay.Conflict || res.Version != 3 || !sameRecords(res.Missed, theirs[1:]) {
		t.Fatalf("Commit at 1 = %+v, %v; want conflict at head 3 with records 1 and 2", res, err)
	}
	if got := readAll(t, a, doc, epoch); !sameRecords(got, theirs) {
		t.Fatalf("after the conflict Read = %v, want %v", got, theirs)
	}
	commit(t, b, doc, epoch, 3, rec(3, "b", 1, "z"))
	if s := b.Stats(); s.Conflicts != 1 {
		t.Errorf("Stats.Conflicts = %d, want 1", s.Conflicts)
	}
}

// TestCommitDuplicateAfterOtherCommits: a resend of a committed (src,
// seq), at any later version, is answered with its original version and
// writes nothing; a seq below the src's last one is looked up in the
// log; one that is not there is refused.
func TestCommitDuplicateAfterOtherCommits(t *testing.T) {
	srv := redistest.StartServer(t, redistest.ServerOptions{})
	p := prefix(t)
	a := node(t, srv.Addr(), p, redisrelay.Options{})
	b := node(t, srv.Addr(), p, redisrelay.Options{})
	epoch := initDoc(t, a, doc)
	commit(t, a, doc, epoch, 0, create(0, "x", 1, ""))
	commit(t, a, doc, epoch, 1, rec(1, "c", 7, "mine"))
	commit(t, b, doc, epoch, 2, rec(2, "d", 1, "o"), rec(3, "d", 2, "p"))
	for _, tc := range []struct {
		name   string
		expect uint64
		resend collab.Record
		want   uint64
	}{
		{"behind the head", 2, rec(2, "c", 7, "mine"), 1},
		{"at the head", 4, rec(4, "c", 7, "mine"), 1},
		{"transformed differently", 4, rec(4, "c", 7, "other text"), 1},
	} {
		res, err := b.Commit(ctx(t), doc, epoch, tc.expect, []collab.Record{tc.resend})
		if err != nil || res.Outcome != redisrelay.Duplicate || res.Version != tc.want {
			t.Errorf("%s: Commit(resend) = %+v, %v; want duplicate at %d", tc.name, res, err, tc.want)
		}
	}
	commit(t, a, doc, epoch, 4, rec(4, "c", 8, "next"))
	res, err := b.Commit(ctx(t), doc, epoch, 5, []collab.Record{rec(5, "c", 7, "mine")})
	if err != nil || res.Outcome != redisrelay.Duplicate || res.Version != 1 {
		t.Errorf("Commit(seq below the last) = %+v, %v; want duplicate at 1", res, err)
	}
	_, err = b.Commit(ctx(t), doc, epoch, 5, []collab.Record{rec(5, "c", 3, "never sent")})
	if !errors.Is(err, redisrelay.ErrStaleSeq) {
		t.Errorf("Commit(seq never committed, below the last) = %v, want ErrStaleSeq", err)
	}
	if got := readAll(t, a, doc, epoch); len(got) != 5 {
		t.Fatalf("after resends the log has %d records, want 5", len(got))
	}
}

// TestCommitRepeatIsIdempotent: repeating a Commit whose answer was lost
// (what go-redis does when a reply is lost, and what a caller does after
// ErrUnavailable) answers Committed again and writes nothing, even for
// records without a src, and even after other commits.
func TestCommitRepeatIsIdempotent(t *testing.T) {
	a, b, epoch := twoNodes(t)
	batch := []collab.Record{create(0, "", 0, "server-made"), rec(1, "s", 1, "a")}
	commit(t, a, doc, epoch, 0, batch...)
	commit(t, a, doc, epoch, 0, batch...)
	commit(t, b, doc, epoch, 2, rec(2, "t", 1, "b"))
	commit(t, a, doc, epoch, 0, batch...)
	if got := readAll(t, a, doc, epoch); len(got) != 3 {
		t.Fatalf("log has %d records after repeats, want 3", len(got))
	}
	if s := a.Stats(); s.Repeats != 2 || s.Records != 2 {
		t.Errorf("Stats = %+v, want 2 repeats and 2 records", s)
	}
}

// TestCommitEpochMismatch: a commit under another epoch, or for a
// document Redis has no state for, is refused with an EpochError.
func TestCommitEpochMismatch(t *testing.T) {
	srv := redistest.StartServer(t, redistest.ServerOptions{})
	r := node(t, srv.Addr(), prefix(t), redisrelay.Options{})
	_, err := r.Commit(ctx(t), doc, "nope", 0, []collab.Record{create(0, "a", 1, "")})
	if !errors.Is(err, redisrelay.ErrEpoch) || epochReason(err) != redisrelay.EpochAbsent {
		t.Fatalf("Commit(unseeded) = %v, want EpochAbsent", err)
	}
	epoch := initDoc(t, r, doc)
	_, err = r.Commit(ctx(t), doc, epoch+"x", 0, []collab.Record{create(0, "a", 1, "")})
	var ee *redisrelay.EpochError
	if !errors.As(err, &ee) || ee.Reason != redisrelay.EpochChanged || ee.Epoch != epoch {
		t.Fatalf("Commit(other epoch) = %v, want EpochChanged with epoch %s", err, epoch)
	}
	if _, err := r.Read(ctx(t), doc, epoch+"x", 0, 1); epochReason(err) != redisrelay.EpochChanged {
		t.Fatalf("Read(other epoch) = %v, want EpochChanged", err)
	}
	if h, _, _ := r.Head(ctx(t), doc); h.Version != 0 {
		t.Fatalf("head after refused commits = %d, want 0", h.Version)
	}
}

// TestCommitRefusesBadBatches: records that are not numbered from the
// expected version never reach Redis.
func TestCommitRefusesBadBatches(t *testing.T) {
	srv := redistest.StartServer(t, redistest.ServerOptions{})
	r := node(t, srv.Addr(), prefix(t), redisrelay.Options{})
	epoch := initDoc(t, r, doc)
	for _, recs := range [][]collab.Record{
		nil,
		{rec(1, "a", 1, "x")},
		{rec(0, "a", 1, "x"), rec(2, "a", 2, "y")},
		{rec(0, "a", 1<<53, "x")},
	} {
		if _, err := r.Commit(ctx(t), doc, epoch, 0, recs); !errors.Is(err, redisrelay.ErrInvalid) {
			t.Errorf("Commit(%v) = %v, want ErrInvalid", recs, err)
		}
	}
}

// TestConcurrentCommittersOneOrder: writers on two nodes race to commit
// to one document, each catching up on conflict: Redis gives one
// gapless order with every (src, seq) exactly once and each writer's
// ops in its own order.
func TestConcurrentCommittersOneOrder(t *testing.T) {
	srv := redistest.StartServer(t, redistest.ServerOptions{})
	p := prefix(t)
	nodes := []*redisrelay.Relay{node(t, srv.Addr(), p, redisrelay.Options{}), node(t, srv.Addr(), p, redisrelay.Options{})}
	epoch := initDoc(t, nodes[0], doc)
	const writers, ops = 8, 30
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Go(func() {
			r := nodes[w%len(nodes)]
			src := fmt.Sprintf("w%d", w)
			head := uint64(0)
			for seq := uint64(1); seq <= ops; {
				res, err := r.Commit(ctx(t), doc, epoch, head, []collab.Record{rec(head, src, seq, src)})
				if err != nil {
					errs <- fmt.Errorf("%s seq %d: %w", src, seq, err)
					return
				}
				switch res.Outcome {
				case redisrelay.Committed:
					head++
					seq++
				case redisrelay.Conflict:
					if uint64(len(res.Missed)) != res.Version-head {
						errs <- fmt.Errorf("%s: conflict from %d to %d with %d missed", src, head, res.Version, len(res.Missed))
						return
					}
					head = res.Version
				default:
					errs <- fmt.Errorf("%s seq %d: %v", src, seq, res)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	got := readAll(t, nodes[0], doc, epoch)
	if len(got) != writers*ops {
		t.Fatalf("log has %d records, want %d", len(got), writers*ops)
	}
	checkLog(t, got)
	last := make(map[string]uint64)
	for _, r := range got {
		if r.Seq != last[r.Src]+1 {
			t.Fatalf("%s: seq %d after %d", r.Src, r.Seq, last[r.Src])
		}
		last[r.Src] = r.Seq
	}
}
