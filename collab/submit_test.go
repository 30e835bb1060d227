package collab_test

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coedit/coedit/collab"
	"github.com/coedit/coedit/ot"
	"github.com/coedit/coedit/storage"
)

var docX = collab.Key{Collection: "docs", ID: "x"}

func TestCreateEditDeleteRecreate(t *testing.T) {
	h, db := newHub(t, collab.Options{})
	if got := mustFetch(t, h, docX); got != (collab.Snapshot{}) {
		t.Fatalf("FetchWait(new doc) = %+v, want the zero snapshot", got)
	}
	// A create may name the type by its short name; it is stored as the URI.
	res := mustSubmit(t, h, docX, collab.Submission{Src: "a", Seq: 1, Kind: collab.OpCreate, Type: ot.Name, Data: "hello"})
	if res.Version != 0 || res.Duplicate {
		t.Fatalf("create = %+v, want version 0, not duplicate", res)
	}
	res = mustSubmit(t, h, docX, editSub("a", 2, 1, ins(5, " world")))
	if res.Version != 1 {
		t.Fatalf("edit version = %d, want 1", res.Version)
	}
	want := collab.Snapshot{Version: 2, Type: ot.URI, Data: "hello world"}
	if got := mustFetch(t, h, docX); got != want {
		t.Fatalf("FetchWait = %+v, want %+v", got, want)
	}
	mustSubmit(t, h, docX, collab.Submission{Src: "a", Seq: 3, Version: 2, HasVersion: true, Kind: collab.OpDelete})
	if got, want := mustFetch(t, h, docX), (collab.Snapshot{Version: 3}); got != want {
		t.Fatalf("FetchWait after delete = %+v, want %+v", got, want)
	}
	if _, err := h.SubmitWait(ctxBG, docX, editSub("a", 4, 3, ins(0, "x"))); !errors.Is(err, collab.ErrDocDeleted) {
		t.Fatalf("edit after delete = %v, want ErrDocDeleted", err)
	}
	res = mustSubmit(t, h, docX, collab.Submission{Src: "b", Seq: 1, Version: 3, HasVersion: true, Kind: collab.OpCreate, Type: ot.URI, Data: "again"})
	if res.Version != 3 {
		t.Fatalf("re-create version = %d, want 3", res.Version)
	}
	if _, err := h.SubmitWait(ctxBG, docX, createSub("c", 1, "no")); !errors.Is(err, collab.ErrDocExists) {
		t.Fatalf("create on existing doc = %v, want ErrDocExists", err)
	}
	if _, err := h.SubmitWait(ctxBG, collab.Key{Collection: "docs", ID: "y"}, collab.Submission{Kind: collab.OpCreate, Type: "json0"}); !errors.Is(err, collab.ErrUnknownType) {
		t.Fatalf("create json0 = %v, want ErrUnknownType", err)
	}
	if _, err := h.SubmitWait(ctxBG, collab.Key{Collection: "docs"}, createSub("", 0, "")); !errors.Is(err, collab.ErrInvalidKey) {
		t.Fatalf("submit to an empty id = %v, want ErrInvalidKey", err)
	}
	recs, err := db.Ops(ctxBG, docX, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	var kinds []collab.OpKind
	for _, r := range recs {
		kinds = append(kinds, r.Kind)
	}
	wantKinds := []collab.OpKind{collab.OpCreate, collab.OpEdit, collab.OpDelete, collab.OpCreate}
	if !slices.Equal(kinds, wantKinds) {
		t.Fatalf("stored kinds = %v, want %v", kinds, wantKinds)
	}
	if recs[0].Type != ot.URI || recs[0].Data != "hello" {
		t.Fatalf("stored create = %+v, want type %q data hello", recs[0], ot.URI)
	}
}

// TestTransformLeft: on "hello", A inserts "A" at 0 and commits first, B
// inserts "B" at 0 against the same version: every copy ends "BAhello".
func TestTransformLeft(t *testing.T) {
	h, _ := newHub(t, collab.Options{})
	mustSubmit(t, h, docX, createSub("", 0, "hello"))
	a, b := newConn("A"), newConn("B")
	a.subscribe(h, docX, nil)
	b.subscribe(h, docX, nil)
	a.waitN(t, "snapshot", 1)
	b.waitN(t, "snapshot", 1)

	a.submit(h, docX, editSub("A", 1, 1, ins(0, "A")))
	a.waitN(t, "ack", 1)
	b.submit(h, docX, editSub("B", 1, 1, ins(0, "B")))
	ack := b.waitN(t, "ack", 1)[0]
	if ack.err != nil || ack.res.Version != 2 {
		t.Fatalf("B's ack = %+v, want version 2", ack)
	}
	if len(ack.res.Missed) != 1 || ack.res.Missed[0].Src != "A" {
		t.Fatalf("B's Missed = %+v, want A's op", ack.res.Missed)
	}
	if got := mustFetch(t, h, docX).Data; got != "BAhello" {
		t.Fatalf("server text = %q, want BAhello", got)
	}
	// B got A's op (as a broadcast and as a missed op) before its ack,
	// and never its own op.
	kinds := b.kinds()
	ackAt := slices.Index(kinds, "ack")
	if i := slices.Index(kinds, "op"); i < 0 || i > ackAt {
		t.Fatalf("B's events %v: want A's op before the ack", kinds)
	}
	for _, e := range b.snapshotEvents() {
		if e.kind == "op" && e.rec.Src == "B" {
			t.Fatalf("B received its own op %+v", e.rec)
		}
	}
	// A receives B's transformed op; applying it to A's copy converges.
	opEv := a.waitN(t, "op", 1)[0]
	if opEv.rec.Src != "B" || opEv.rec.Version != 2 {
		t.Fatalf("A received %+v, want B's op at version 2", opEv.rec)
	}
	got, err := ot.Apply("Ahello", opEv.rec.Op)
	if err != nil || got != "BAhello" {
		t.Fatalf("A applies %v to Ahello = %q, %v; want BAhello", opEv.rec.Op, got, err)
	}
	if n := a.count("op"); n != 1 {
		t.Fatalf("A received %d ops, want 1 (never its own)", n)
	}
}

// TestMissedOpsBeforeAck: a submit made at an old version gets every op
// it was transformed over, in order, then its ack, even unsubscribed.
func TestMissedOpsBeforeAck(t *testing.T) {
	h, _ := newHub(t, collab.Options{})
	mustSubmit(t, h, docX, createSub("", 0, "abc"))
	for i := range 3 {
		mustSubmit(t, h, docX, editSub("o", uint64(i+1), uint64(1+i), ins(0, "x")))
	}
	c := newConn("late")
	c.submit(h, docX, editSub("late", 1, 1, ins(3, "!")))
	ack := c.waitN(t, "ack", 1)[0]
	if ack.err != nil || ack.res.Version != 4 {
		t.Fatalf("ack = %+v, want version 4", ack)
	}
	if got, want := c.kinds(), []string{"op", "op", "op", "ack"}; !slices.Equal(got, want) {
		t.Fatalf("events = %v, want %v", got, want)
	}
	if got, want := c.opVersions(), []uint64{1, 2, 3}; !slices.Equal(got, want) {
		t.Fatalf("missed versions = %v, want %v", got, want)
	}
	if got := mustFetch(t, h, docX).Data; got != "xxxabc!" {
		t.Fatalf("text = %q, want xxxabc!", got)
	}
}

// TestDuplicateResend: a resend (same src and seq) after other ops is
// acknowledged at its original version and never applied twice.
func TestDuplicateResend(t *testing.T) {
	h, db := newHub(t, collab.Options{})
	mustSubmit(t, h, docX, createSub("", 0, "hello"))
	first := mustSubmit(t, h, docX, editSub("A", 7, 1, ins(0, "A")))
	mustSubmit(t, h, docX, editSub("B", 1, 2, ins(0, "B")))
	mustSubmit(t, h, docX, editSub("B", 2, 3, ins(0, "C")))

	c := newConn("A")
	c.submit(h, docX, editSub("A", 7, 1, ins(0, "A")))
	ack := c.waitN(t, "ack", 1)[0]
	if ack.err != nil || !ack.res.Duplicate || ack.res.Version != first.Version {
		t.Fatalf("resend = %+v, want a duplicate at version %d", ack, first.Version)
	}
	if got := mustFetch(t, h, docX); got.Data != "CBAhello" || got.Version != 4 {
		t.Fatalf("after resend: %+v, want CBAhello at 4", got)
	}
	// A resend of an older seq is found by scanning the ops since its
	// version.
	mustSubmit(t, h, docX, editSub("A", 8, 4, ins(0, "D")))
	res, err := h.SubmitWait(ctxBG, docX, editSub("A", 7, 1, ins(0, "A")))
	if err != nil || !res.Duplicate || res.Version != 1 {
		t.Fatalf("resend of older seq = %+v, %v; want duplicate at 1", res, err)
	}
	// An older seq that is not among the ops since its version is
	// neither new nor a resend.
	if _, err := h.SubmitWait(ctxBG, docX, editSub("A", 7, 2, ins(0, "A"))); !errors.Is(err, collab.ErrStaleSeq) {
		t.Fatalf("stale seq = %v, want ErrStaleSeq", err)
	}
	recs, err := db.Ops(ctxBG, docX, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, r := range recs {
		if r.Src == "A" && r.Seq == 7 {
			n++
		}
	}
	if n != 1 || len(recs) != 5 {
		t.Fatalf("store has (A,7) %d times in %d records, want once in 5", n, len(recs))
	}
	if st := h.Stats(); st.Duplicates != 2 {
		t.Fatalf("Stats().Duplicates = %d, want 2", st.Duplicates)
	}
}

// TestNewOpWithReusedSeqIsRefused: a new op that reuses its src's last
// committed seq, made at a version after that commit, is refused with
// ErrSeqReused and not applied; it used to be taken for a resend and
// acknowledged at the old op's version, so its client believed it saved
// (issue 9, item 1). A real resend of that seq is still acknowledged.
func TestNewOpWithReusedSeqIsRefused(t *testing.T) {
	h, db := newHub(t, collab.Options{})
	mustSubmit(t, h, docX, createSub("", 0, "hello"))
	first := mustSubmit(t, h, docX, editSub("A", 1, 1, ins(0, "A")))
	mustSubmit(t, h, docX, editSub("B", 1, 2, ins(0, "B")))

	res, err := h.SubmitWait(ctxBG, docX, editSub("A", 1, 3, ins(0, "Z")))
	if err == nil {
		t.Fatalf("new op at version 3 with A's seq 1 (committed at %d) = %+v, want an error", first.Version, res)
	}
	if !errors.Is(err, collab.ErrSeqReused) {
		t.Fatalf("new op with a reused seq = %v, want ErrSeqReused", err)
	}
	if got := mustFetch(t, h, docX); got.Data != "BAhello" || got.Version != 3 {
		t.Fatalf("after the refused op: %+v, want BAhello at 3", got)
	}
	if recs, err := db.Ops(ctxBG, docX, 0, 100); err != nil || len(recs) != 3 {
		t.Fatalf("store has %d records (%v), want 3", len(recs), err)
	}
	// The op itself resent, from its own version, is a resend.
	res, err = h.SubmitWait(ctxBG, docX, editSub("A", 1, 1, ins(0, "A")))
	if err != nil || !res.Duplicate || res.Version != first.Version {
		t.Fatalf("resend = %+v, %v; want a duplicate at %d", res, err, first.Version)
	}
}

// TestDuplicateCreate: ShareDB resends a create with v null; it is
// acknowledged, not refused.
func TestDuplicateCreate(t *testing.T) {
	h, _ := newHub(t, collab.Options{})
	mustSubmit(t, h, docX, createSub("A", 1, "x"))
	res, err := h.SubmitWait(ctxBG, docX, createSub("A", 1, "x"))
	if err != nil || !res.Duplicate || res.Version != 0 {
		t.Fatalf("create resend = %+v, %v; want duplicate at 0", res, err)
	}
	if _, err := h.SubmitWait(ctxBG, docX, createSub("A", 2, "x")); !errors.Is(err, collab.ErrDocExists) {
		t.Fatalf("second create = %v, want ErrDocExists", err)
	}
}

// TestResendAfterReload: the session went idle and stopped; the resend,
// with a version older than the in-memory window, is still recognised
// from the stored seq table and op log.
func TestResendAfterReload(t *testing.T) {
	h, _ := newHub(t, collab.Options{IdleTimeout: 10 * time.Millisecond, Window: 2})
	mustSubmit(t, h, docX, createSub("", 0, "hello"))
	mustSubmit(t, h, docX, editSub("A", 1, 1, ins(0, "a")))
	mustSubmit(t, h, docX, editSub("A", 2, 2, ins(0, "b")))
	for i := range 5 {
		mustSubmit(t, h, docX, editSub("B", uint64(i+1), uint64(3+i), ins(0, "z")))
	}
	waitFor(t, "the session to stop", func() bool { return h.Stats().Sessions == 0 })

	c := newConn("A")
	c.submit(h, docX, editSub("A", 1, 1, ins(0, "a")))
	ack := c.waitN(t, "ack", 1)[0]
	if ack.err != nil || !ack.res.Duplicate || ack.res.Version != 1 {
		t.Fatalf("resend of seq 1 after reload = %+v, want duplicate at 1", ack)
	}
	c.submit(h, docX, editSub("A", 2, 1, ins(0, "b")))
	ack = c.waitN(t, "ack", 2)[1]
	if ack.err != nil || !ack.res.Duplicate || ack.res.Version != 2 {
		t.Fatalf("resend of seq 2 after reload = %+v, want duplicate at 2", ack)
	}
	// It got the op it missed (version 1, its own first op) before the ack.
	if got := c.opVersions(); !slices.Equal(got, []uint64{1}) {
		t.Fatalf("ops sent with the resend = %v, want [1]", got)
	}
	if got := mustFetch(t, h, docX); got.Version != 8 || got.Data != "zzzzzbahello" {
		t.Fatalf("doc = %+v, want zzzzzbahello at 8", got)
	}
}

func TestSrcMismatch(t *testing.T) {
	h, _ := newHub(t, collab.Options{})
	c := newConn("me")
	c.submit(h, docX, createSub("someone-else", 1, "x"))
	if ack := c.waitN(t, "ack", 1)[0]; !errors.Is(ack.err, collab.ErrSrcMismatch) {
		t.Fatalf("submit with foreign src = %v, want ErrSrcMismatch", ack.err)
	}
	if got := mustFetch(t, h, docX); got.Version != 0 {
		t.Fatalf("doc after refused submit = %+v, want version 0", got)
	}
}

func TestVersionAhead(t *testing.T) {
	h, _ := newHub(t, collab.Options{})
	mustSubmit(t, h, docX, createSub("", 0, "x"))
	if _, err := h.SubmitWait(ctxBG, docX, editSub("a", 1, 5, ins(0, "y"))); !errors.Is(err, collab.ErrVersionAhead) {
		t.Fatalf("submit at version 5 of 1 = %v, want ErrVersionAhead", err)
	}
}

// TestOpsMissing: ops to transform over that cannot be read (here the
// store is closed under the session) give ErrOpsMissing, nothing else.
func TestOpsMissing(t *testing.T) {
	h, db := newHub(t, collab.Options{Window: 1})
	mustSubmit(t, h, docX, createSub("", 0, "x"))
	for i := range 3 {
		mustSubmit(t, h, docX, editSub("a", uint64(i+1), uint64(i+1), ins(0, "y")))
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := h.SubmitWait(ctxBG, docX, editSub("b", 1, 1, ins(0, "q"))); !errors.Is(err, collab.ErrOpsMissing) {
		t.Fatalf("submit over unreadable ops = %v, want ErrOpsMissing", err)
	}
}

// TestConcurrentConflicts follows ShareDB: an edit made before a
// concurrent delete fails, a create made before a concurrent create or
// edit fails.
func TestConcurrentConflicts(t *testing.T) {
	h, _ := newHub(t, collab.Options{})
	mustSubmit(t, h, docX, createSub("", 0, "x"))
	mustSubmit(t, h, docX, collab.Submission{Version: 1, HasVersion: true, Kind: collab.OpDelete})
	if _, err := h.SubmitWait(ctxBG, docX, editSub("a", 1, 1, ins(0, "y"))); !errors.Is(err, collab.ErrDocDeleted) {
		t.Fatalf("edit over delete = %v, want ErrDocDeleted", err)
	}
	y := collab.Key{Collection: "docs", ID: "y"}
	mustSubmit(t, h, y, createSub("", 0, "x"))
	stale := collab.Submission{Src: "b", Seq: 1, Version: 0, HasVersion: true, Kind: collab.OpCreate, Type: ot.URI}
	if _, err := h.SubmitWait(ctxBG, y, stale); !errors.Is(err, collab.ErrDocExists) {
		t.Fatalf("create over create = %v, want ErrDocExists", err)
	}
}

// TestInvalidOpLeavesDocIntact: a bad op gets ErrInvalidOp, the document
// and store are unchanged, and good ops in the same group commit go
// through.
func TestInvalidOpLeavesDocIntact(t *testing.T) {
	h, db := newHub(t, collab.Options{})
	mustSubmit(t, h, docX, createSub("", 0, "hello"))
	bad := []ot.Op{
		del(3, 10), // past the end
		{{Kind: ot.KindSkip, N: 0}, {Kind: ot.KindInsert, N: 1, Text: "x"}}, // zero skip
		{{Kind: ot.KindSkip, N: 2}},                                         // trailing skip
		{{Kind: ot.KindInsert, N: 3, Text: "x"}},                            // wrong length
	}
	for i, op := range bad {
		if _, err := h.SubmitWait(ctxBG, docX, editSub("a", uint64(i+1), 1, op)); !errors.Is(err, collab.ErrInvalidOp) {
			t.Errorf("submit %v = %v, want ErrInvalidOp", op, err)
		}
	}
	if got := mustFetch(t, h, docX); got.Data != "hello" || got.Version != 1 {
		t.Fatalf("doc after bad ops = %+v, want hello at 1", got)
	}
	// Good and bad submits queued together: each gets its own outcome.
	c := newConn("c")
	for i := range 10 {
		op := ins(0, "g")
		if i%2 == 1 {
			op = del(0, 100)
		}
		c.submit(h, docX, editSub("c", uint64(i+1), 1, op))
	}
	acks := c.waitN(t, "ack", 10)
	for i, a := range acks {
		if (i%2 == 1) != errors.Is(a.err, collab.ErrInvalidOp) || (i%2 == 0 && a.err != nil) {
			t.Errorf("submit %d = %v, want ErrInvalidOp only for odd ones", i, a.err)
		}
	}
	if got := mustFetch(t, h, docX); got.Data != "ggggghello" || got.Version != 6 {
		t.Fatalf("doc = %+v, want ggggghello at 6", got)
	}
	recs, _ := db.Ops(ctxBG, docX, 0, 100)
	if len(recs) != 6 {
		t.Fatalf("store has %d records, want 6", len(recs))
	}
}

func TestTooLarge(t *testing.T) {
	h, _ := newHub(t, collab.Options{MaxDocLen: 10})
	if _, err := h.SubmitWait(ctxBG, docX, createSub("", 0, strings.Repeat("é", 11))); !errors.Is(err, collab.ErrDocTooLarge) {
		t.Fatalf("create of 11 code points = %v, want ErrDocTooLarge", err)
	}
	mustSubmit(t, h, docX, createSub("", 0, strings.Repeat("é", 8)))
	if _, err := h.SubmitWait(ctxBG, docX, editSub("", 0, 1, ins(0, "💃💃💃"))); !errors.Is(err, collab.ErrDocTooLarge) {
		t.Fatalf("edit to 11 code points = %v, want ErrDocTooLarge", err)
	}
	mustSubmit(t, h, docX, editSub("", 0, 1, ins(0, "💃💃")))
	if got := mustFetch(t, h, docX).Data; got != "💃💃"+strings.Repeat("é", 8) {
		t.Fatalf("text = %q", got)
	}
}

// TestCommitConflictRollsBack: two Hubs sharing one store (a bug the store
// catches) race on a document. The loser's commit fails with
// ErrVersionConflict; its session reloads, so its failed op appears
// nowhere, and its next submit transforms over the winner's op.
func TestCommitConflictRollsBack(t *testing.T) {
	db, _ := openStore(t, storage.SyncNone)
	h1 := startHub(t, collab.Options{Store: db})
	h2 := startHub(t, collab.Options{Store: db})
	mustSubmit(t, h1, docX, createSub("", 0, "hello"))
	if got := mustFetch(t, h2, docX); got.Version != 1 {
		t.Fatalf("h2 sees %+v, want version 1", got)
	}
	mustSubmit(t, h1, docX, editSub("a", 1, 1, ins(0, "A")))
	if _, err := h2.SubmitWait(ctxBG, docX, editSub("b", 1, 1, ins(5, "B"))); !errors.Is(err, collab.ErrVersionConflict) {
		t.Fatalf("h2 submit = %v, want ErrVersionConflict", err)
	}
	if got := mustFetch(t, h2, docX); got.Data != "Ahello" || got.Version != 2 {
		t.Fatalf("h2 after failed commit = %+v, want Ahello at 2", got)
	}
	mustSubmit(t, h2, docX, editSub("b", 2, 1, ins(5, "B")))
	if got := mustFetch(t, h2, docX); got.Data != "AhelloB" {
		t.Fatalf("h2 after retry = %q, want AhelloB", got.Data)
	}
	if st := h2.Stats(); st.CommitErrors != 1 {
		t.Fatalf("h2 Stats().CommitErrors = %d, want 1", st.CommitErrors)
	}
}

// TestGroupCommit: many submits queued on one document share commits.
func TestGroupCommit(t *testing.T) {
	db, _ := openStore(t, storage.SyncAlways) // each commit waits for the disk
	h := startHub(t, collab.Options{Store: db})
	mustSubmit(t, h, docX, createSub("", 0, ""))
	const n = 200
	var wg sync.WaitGroup
	errs := make(chan error, n)
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			src := fmt.Sprint("c", i)
			if _, err := h.SubmitWait(ctxBG, docX, editSub(src, 1, 1, ins(0, "x"))); err != nil {
				errs <- err
			}
		})
	}
	before := h.Stats()
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	st := h.Stats()
	ops, batches := st.OpsCommitted-before.OpsCommitted, st.CommitBatches-before.CommitBatches
	if ops != n {
		t.Fatalf("OpsCommitted grew by %d, want %d", ops, n)
	}
	if batches >= n {
		t.Fatalf("CommitBatches grew by %d for %d ops, want fewer commits than ops", batches, n)
	}
	t.Logf("%d ops in %d commits", ops, batches)
	if got := mustFetch(t, h, docX); got.Data != strings.Repeat("x", n) || got.Version != n+1 {
		t.Fatalf("doc = %+v", got)
	}
}
