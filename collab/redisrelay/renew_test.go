package redisrelay_test

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/coedit/coedit/collab"
	"github.com/coedit/coedit/collab/redisrelay"
	"github.com/coedit/coedit/collab/redisrelay/redisrelaytest"
	"github.com/coedit/coedit/internal/redistest"
)

// lostTailSetup commits records 0..9 (7..9 from src "lost") and then
// loses 7..9. It returns the epoch and the records.
func lostTailSetup(t *testing.T) (srv *redistest.Server, p, epoch string, log []collab.Record) {
	srv = redistest.StartServer(t, redistest.ServerOptions{})
	p = prefix(t)
	r := node(t, srv.Addr(), p, redisrelay.Options{})
	epoch = initDoc(t, r, doc)
	log = []collab.Record{create(0, "a", 1, "")}
	for v := uint64(1); v < 10; v++ {
		src := "a"
		if v >= 7 {
			src = "lost"
		}
		log = append(log, rec(v, src, v+1, "x"))
	}
	commit(t, r, doc, epoch, 0, log...)
	redisrelaytest.LoseTail(t, newClient(t, srv.Addr()), p, collab.Key{Collection: "notes", ID: "a"}, 7, 10)
	return srv, p, epoch, log
}

// TestRenewRestoresLostTail: after Redis lost records 7..9, the node
// that has them renews first and puts them back at their versions; a
// node that had only 0..6 finds its whole history shared and goes on.
func TestRenewRestoresLostTail(t *testing.T) {
	srv, p, epoch, log := lostTailSetup(t)
	ahead := node(t, srv.Addr(), p, redisrelay.Options{})
	behind := node(t, srv.Addr(), p, redisrelay.Options{})

	_, err := behind.Commit(ctx(t), doc, epoch, 7, []collab.Record{rec(7, "b", 1, "mine")})
	if epochReason(err) != redisrelay.EpochRestarted {
		t.Fatalf("Commit at the shortened head = %v, want EpochRestarted (no version given twice)", err)
	}
	newEpoch, head, err := ahead.Renew(ctx(t), doc, epoch, log[5:])
	if err != nil || head != 10 {
		t.Fatalf("Renew(records 5..9) = %s, %d, %v; want head 10", newEpoch, head, err)
	}
	if got := readAll(t, ahead, doc, newEpoch); !sameRecords(got, log) {
		t.Fatalf("after Renew the log is %v, want the original", got)
	}
	if _, _, err := behind.Renew(ctx(t), doc, epoch, nil); epochReason(err) != redisrelay.EpochChanged {
		t.Fatalf("second Renew under the old epoch = %v, want EpochChanged", err)
	}
	h, _, _ := behind.Head(ctx(t), doc)
	if below, ok := h.Shared(epoch); !ok || below != 10 {
		t.Fatalf("Shared(old) = %d, %v; want 10: the node with 0..6 lost nothing", below, ok)
	}
	res, err := behind.Commit(ctx(t), doc, newEpoch, 7, []collab.Record{rec(7, "b", 1, "mine")})
	if err != nil || res.Outcome != redisrelay.Conflict || !sameRecords(res.Missed, log[7:]) {
		t.Fatalf("Commit at 7 under the new epoch = %+v, %v; want a conflict with 7..9", res, err)
	}
	commit(t, behind, doc, newEpoch, 10, rec(10, "b", 1, "mine"))
}

// TestRenewByANodeBehindForksHistory: when the node without the lost
// records renews first, the new epoch's lineage tells the node that had
// them where the histories part, and its records, offered again with
// their src and seq, are committed once at new versions.
func TestRenewByANodeBehindForksHistory(t *testing.T) {
	srv, p, epoch, log := lostTailSetup(t)
	ahead := node(t, srv.Addr(), p, redisrelay.Options{})
	behind := node(t, srv.Addr(), p, redisrelay.Options{})

	newEpoch, head, err := behind.Renew(ctx(t), doc, epoch, nil)
	if err != nil || head != 7 {
		t.Fatalf("Renew without records = %s, %d, %v; want head 7", newEpoch, head, err)
	}
	commit(t, behind, doc, newEpoch, 7, rec(7, "b", 1, "other"))
	if _, _, err := ahead.Renew(ctx(t), doc, epoch, log[7:]); epochReason(err) != redisrelay.EpochChanged {
		t.Fatalf("Renew by the node ahead = %v, want EpochChanged", err)
	}
	h, _, _ := ahead.Head(ctx(t), doc)
	below, ok := h.Shared(epoch)
	if !ok || below != 7 {
		t.Fatalf("Shared(old) = %d, %v; want 7", below, ok)
	}
	// The node offers its records from 7 on again, as an offline client
	// would (here without transforming: they insert at the start).
	headNow := h.Version
	for _, old := range log[below:] {
		again := old
		again.Version = headNow
		res, err := ahead.Commit(ctx(t), doc, newEpoch, headNow, []collab.Record{again})
		if err != nil || res.Outcome != redisrelay.Committed {
			t.Fatalf("offering %d again = %+v, %v", old.Version, res, err)
		}
		headNow++
		// Offering it once more is recognised by its src and seq.
		again.Version = headNow
		res, err = ahead.Commit(ctx(t), doc, newEpoch, headNow, []collab.Record{again})
		if err != nil || res.Outcome != redisrelay.Duplicate || res.Version != headNow-1 {
			t.Fatalf("offering %d twice = %+v, %v; want duplicate at %d", old.Version, res, err, headNow-1)
		}
	}
	got := readAll(t, ahead, doc, newEpoch)
	checkLog(t, got)
	if len(got) != 11 || !sameRecords(got[:7], log[:7]) || got[7].Src != "b" {
		t.Fatalf("log = %v, want 0..6, b's record, then the three offered again", got)
	}
}

// TestReadingARestartedEpochLeavesItsRenewalToTheTailHolder: Redis lost
// records 7..9 (as with appendfsync everysec), which only node a holds;
// b, back from a stop at version 7, reads the document first. b has
// nothing to put back, so it reads the epoch as it is and does not renew
// it; a, syncing next, renews and puts its records back at their
// versions: nothing is offered again and no client is told its copy was
// replaced. (b used to renew first, with nothing, and a then offered its
// three records again as new ops and forked.) b's first commit after
// that goes in under a's renewal.
func TestReadingARestartedEpochLeavesItsRenewalToTheTailHolder(t *testing.T) {
	r, nodes := startNodes(t, redistest.ServerOptions{}, nodeConfig{}, "a", "b")
	a, b := nodes[0], nodes[1]
	key := readOnBoth(t, a, b, 6)
	b.stop(t)
	editN(t, a, key, "x", 8, 3)
	redisrelaytest.LoseTail(t, newClient(t, r.srv.Addr()), r.prefix, key, 7, 10)
	b2 := r.startNode(t, "b2", nodeConfig{path: b.path})
	if s := fetch(t, b2, key); s.Version != 7 {
		t.Fatalf("b, back: %+v, want version 7 (what Redis holds)", s)
	}
	if s := fetch(t, a, key); s.Version != 10 {
		t.Fatalf("a: %+v, want version 10", s)
	}
	editN(t, b2, key, "y", 1, 1)
	log := converged(t, key, a, b2)
	for seq := uint64(8); seq <= 10; seq++ {
		hasOnce(t, log, "x", seq)
	}
	if log[7].Src != "x" || log[10].Src != "y" {
		t.Fatalf("log %v: want a's records back at 7..9, then b's", log[7:])
	}
	sa, sb := a.cluster.Stats(), b2.cluster.Stats()
	if sa.Renewals != 1 || sb.Renewals != 0 || sa.Forks+sb.Forks != 0 || sa.Reoffered+sb.Reoffered != 0 {
		t.Fatalf("a %+v, b %+v: want one renewal, by a, and nothing forked or offered again", sa, sb)
	}
}

// hookSeq runs hook once, when a commit of the node's is refused for a
// resync, before the session syncs.
type hookSeq struct {
	collab.Sequencer
	once sync.Once
	hook func()
}

func (h *hookSeq) Sequence(ctx context.Context, key collab.Key, recs []collab.Record) ([]collab.Record, error) {
	missed, err := h.Sequencer.Sequence(ctx, key, recs)
	if errors.Is(err, collab.ErrResync) && h.hook != nil {
		h.once.Do(h.hook)
	}
	return missed, err
}

// TestCommitsRenewalDueEndsWithAnotherNodesRenewal: after a Redis
// restart both a and b commit to a document; b's commit meets the
// restart, and a renews before b's session syncs. b's due renewal must
// end there: at the next restart, b only reading must not renew.
func TestCommitsRenewalDueEndsWithAnotherNodesRenewal(t *testing.T) {
	hs := &hookSeq{}
	r, _ := startNodes(t, redistest.ServerOptions{}, nodeConfig{})
	a := r.startNode(t, "a", nodeConfig{})
	b := r.startNode(t, "b", nodeConfig{seq: func(s collab.Sequencer) collab.Sequencer { hs.Sequencer = s; return hs }})
	key := createDoc(t, a, "")
	editN(t, a, key, "x", 2, 4)
	if s := fetch(t, b, key); s.Version != 5 {
		t.Fatalf("b: %+v, want version 5", s)
	}
	raw := newClient(t, r.srv.Addr())
	redisrelaytest.LoseTail(t, raw, r.prefix, key, 5, 5) // a restart that lost nothing
	hs.hook = func() { editN(t, a, key, "x", 6, 1) }     // a renews between b's refused commit and b's sync
	editN(t, b, key, "y", 1, 1)
	if sa, sb := a.cluster.Stats(), b.cluster.Stats(); sa.Renewals != 1 || sb.Renewals != 0 {
		t.Fatalf("a %+v, b %+v: want a's renewal only", sa, sb)
	}
	converged(t, key, a, b)
	redisrelaytest.LoseTail(t, raw, r.prefix, key, 7, 7) // the next restart
	if s := fetch(t, b, key); s.Version != 7 {
		t.Fatalf("b: %+v, want version 7", s)
	}
	if sb := b.cluster.Stats(); sb.Renewals != 0 {
		t.Fatalf("b %+v: renewed on a read, with nothing to put back", sb)
	}
}

// TestNodeInstallingARestartedEpochLeavesItsRenewalToTheTailHolder: as
// TestReadingARestartedEpochLeavesItsRenewalToTheTailHolder, but the
// reader is a new node, far behind: it installs Redis's snapshot of the
// restarted epoch rather than renewing it, and a then puts its records
// back.
func TestNodeInstallingARestartedEpochLeavesItsRenewalToTheTailHolder(t *testing.T) {
	r, nodes := startNodes(t, redistest.ServerOptions{}, farConfig(), "a")
	a := nodes[0]
	raw := newClient(t, r.srv.Addr())
	key := createDoc(t, a, "")
	editN(t, a, key, "x", 2, 6*farTail)
	head := fetch(t, a, key).Version
	waitTrimmed(t, raw, r.prefix, key, head)
	// a again, saving no snapshot to Redis past head from here.
	a.stop(t)
	a = r.startNode(t, "a2", nodeConfig{path: a.path, tailLen: farTail, snapEvery: 1000})
	editN(t, a, key, "x", 200, 3)
	if _, first, sv := redisState(t, raw, r.prefix, key); sv > head || first > head {
		t.Fatalf("Redis's snapshot at %d, stream from %d: want both at or below %d", sv, first, head)
	}
	redisrelaytest.LoseTail(t, raw, r.prefix, key, head, head+3)
	c := r.startNode(t, "c", farConfig())
	if s := fetch(t, c, key); s.Version != head {
		t.Fatalf("c: %+v, want version %d", s, head)
	}
	fetch(t, a, key)
	if sa, sc := a.cluster.Stats(), c.cluster.Stats(); sc.Renewals != 0 || sc.Installs != 1 || sa.Renewals != 1 || sa.Forks != 0 || sa.Reoffered != 0 {
		t.Fatalf("a %+v, c %+v: want c to install without renewing, and a to put its records back", sa, sc)
	}
	sameFrom(t, key, head, a, c)
}

// TestReadingNodeNotesTheEpoch: a node that only reads a document (it
// joined with no records of it, and adopts every record from Redis) must
// still note the epoch its stored records belong to; the note written as
// it joined found its store empty, and it commits nothing. Without the
// note, after a restart it knows no history and must compare its records
// with Redis's.
func TestReadingNodeNotesTheEpoch(t *testing.T) {
	_, nodes := startNodes(t, redistest.ServerOptions{}, nodeConfig{}, "a", "b")
	a, b := nodes[0], nodes[1]
	key := readOnBoth(t, a, b, 3)
	note, err := b.db.Epoch(ctx(t), key)
	if epoch, _ := redisrelay.DecodeNote(note); err != nil || epoch != head(t, a, key).Epoch {
		t.Fatalf("b's note = %q (%v), want Redis's epoch %s", note, err, head(t, a, key).Epoch)
	}
}

// readOnBoth creates a document on a with n edits after its create, from
// src "x", and has b read it: both follow it at version n+1.
func readOnBoth(t *testing.T, a, b *hubNode, n int) collab.Key {
	t.Helper()
	key := createDoc(t, a, "")
	editN(t, a, key, "x", 2, n)
	if s := fetch(t, b, key); s.Version != uint64(n+1) {
		t.Fatalf("b: %+v, want version %d", s, n+1)
	}
	return key
}
