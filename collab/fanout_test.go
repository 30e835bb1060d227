package collab

import (
	"fmt"
	"slices"
	"testing"
)

// sharedConn is a logConn that is a SharedSender: it logs how each op
// arrived, and counts encodings in *encodes.
type sharedConn struct {
	logConn
	encodes *int
}

func (c *sharedConn) EncodeOp(_ Key, rec Record) any {
	*c.encodes++
	return fmt.Sprint("enc ", rec.Version)
}

func (c *sharedConn) SendEncoded(_ Key, rec Record, enc any) {
	if enc != fmt.Sprint("enc ", rec.Version) {
		c.add(fmt.Sprint("wrong encoding for ", rec.Version))
		return
	}
	c.add(fmt.Sprint("op ", rec.Version))
}

// submitter is a connection that logs what it is sent, replies included
// (a logConn, or one that embeds it).
type submitter interface {
	Conn
	reply(SubmitResult, error)
}

// deliverGroup is a group commit set up for deliver: its submit jobs
// and their outcomes, and its subscribers, each logging what it is sent.
type deliverGroup struct {
	jobs  []*job
	out   []outcome
	subs  map[Conn]struct{}
	conns map[string]submitter
	logs  map[string]*[]string
}

// newDeliverGroup sets up a group commit of recs in which each record's
// src submitted it, acked at its version with the records before it
// missed; each src and watcher has a subscribed connection, made by conn
// from the logConn it logs through.
func newDeliverGroup(recs []Record, watcher string, conn func(*logConn) submitter) deliverGroup {
	g := deliverGroup{subs: map[Conn]struct{}{}, conns: map[string]submitter{}, logs: map[string]*[]string{}}
	srcs := []string{watcher}
	for _, r := range recs {
		srcs = append(srcs, r.Src)
	}
	for _, src := range srcs {
		g.logs[src] = new([]string)
		g.conns[src] = conn(&logConn{src, g.logs[src]})
		g.subs[g.conns[src]] = struct{}{}
	}
	for i, r := range recs {
		c := g.conns[r.Src]
		g.jobs = append(g.jobs, &job{kind: jobSubmit, conn: c, onSubmit: c.reply})
		g.out = append(g.out, outcome{res: SubmitResult{Version: r.Version, Missed: recs[:i]}})
	}
	return g
}

// TestBroadcastEncodesOnce: a record is encoded once for all the
// SharedSenders it reaches, each gets that encoding, and Conns that are
// not SharedSenders still get SendOp.
func TestBroadcastEncodesOnce(t *testing.T) {
	encodes := 0
	var subs = map[Conn]struct{}{}
	logs := map[string]*[]string{}
	for i := range 5 {
		src := fmt.Sprint("s", i)
		logs[src] = new([]string)
		subs[&sharedConn{logConn{src, logs[src]}, &encodes}] = struct{}{}
	}
	logs["plain"] = new([]string)
	subs[&logConn{"plain", logs["plain"]}] = struct{}{}
	recs := recsFrom(7, 10, "s0", "", "plain")
	n := broadcast(Key{"c", "d"}, recs, subs, nil)
	if n != 16 {
		t.Errorf("broadcast sent %d, want 16", n)
	}
	if encodes != 3 {
		t.Errorf("%d encodings for 3 records, want 3", encodes)
	}
	for src, log := range logs {
		var want []string
		for _, r := range recs {
			if r.Src != src {
				want = append(want, fmt.Sprint("op ", r.Version))
			}
		}
		if !slices.Equal(*log, want) {
			t.Errorf("conn %q was sent %q, want %q", src, *log, want)
		}
	}
}

// TestDeliverManySubmitters: a group with more submitters than
// connVersions holds in its array (the map takes over) still sends each
// connection every version once, in order.
func TestDeliverManySubmitters(t *testing.T) {
	const n = 3 * len(connVersions{}.few)
	const start = 5
	var srcs []string
	for i := range n {
		srcs = append(srcs, fmt.Sprint("c", i))
	}
	recs := recsFrom(start, uint64(start+n), srcs...)
	g := newDeliverGroup(recs, "watcher", func(c *logConn) submitter { return c })
	got := deliver(Key{"c", "d"}, g.jobs, g.out, recs, g.subs, nil)
	// Each submitter's replies carry every record up to its ack, so it is
	// sent the later ones as broadcasts; the watcher is sent them all.
	want := n
	for i := range n {
		want += n - 1 - i
	}
	if got != want {
		t.Errorf("deliver counted %d broadcasts, want %d", got, want)
	}
	for src, log := range g.logs {
		var wantLog []string
		for _, r := range recs {
			line := fmt.Sprint("op ", r.Version)
			if r.Src == src {
				line = fmt.Sprint("ack ", r.Version)
			}
			wantLog = append(wantLog, line)
		}
		if !slices.Equal(*log, wantLog) {
			t.Errorf("conn %q was sent %q, want %q", src, *log, wantLog)
		}
	}
}

// TestPlanManySrcsInOneGroup: past scanPlanned records, a group indexes
// its planned seqs in a map; a resend of any of them is still found.
func TestPlanManySrcsInOneGroup(t *testing.T) {
	f := newPlanFixture()
	d := f.draft()
	lim := limits{maxDocLen: 1 << 20, now: func() int64 { return 9 }}
	const n = 3 * scanPlanned
	for i := range n {
		sub := edit(fmt.Sprint("w", i), 1, d.head, insAt(0, "x"))
		if res, _, err := d.plan(sub, lim); err != nil || res.Duplicate || res.Version != uint64(2+i) {
			t.Fatalf("submit %d = %+v, %v, want committed at %d", i, res, err, 2+i)
		}
	}
	for _, i := range []int{0, scanPlanned - 1, scanPlanned, n - 1} {
		sub := edit(fmt.Sprint("w", i), 1, uint64(2+i), insAt(0, "x"))
		res, _, err := d.plan(sub, lim)
		if err != nil || !res.Duplicate || res.Version != uint64(2+i) {
			t.Errorf("resend of w%d = %+v, %v, want a duplicate at %d", i, res, err, 2+i)
		}
	}
	if _, ok := d.seq("a"); !ok {
		t.Errorf("seq(a) of the committed table is lost")
	}
}

// TestDeliverAfterEarlySend: after the group's records went to the
// subscribers without a submit in it (a cluster's early send, with its
// frames), deliver sends the submitters their replies and then their
// broadcasts, sends the others nothing again, and encodes no record a
// second time.
func TestDeliverAfterEarlySend(t *testing.T) {
	encodes := 0
	recs := recsFrom(5, 7, "s0", "s1")
	g := newDeliverGroup(recs, "w", func(c *logConn) submitter { return &sharedConn{*c, &encodes} })
	early := frames{key: Key{"c", "d"}, recs: recs}
	if n := early.broadcastTo([]Conn{g.conns["w"]}, nil); n != 2 {
		t.Fatalf("the early send sent %d, want 2", n)
	}
	if n := deliver(Key{"c", "d"}, g.jobs, g.out, recs, g.subs, &early); n != 1 {
		t.Errorf("deliver counted %d broadcasts, want 1 (version 6 to s0)", n)
	}
	if encodes != 2 {
		t.Errorf("%d encodings for 2 records, want 2", encodes)
	}
	want := map[string][]string{
		"w":  {"op 5", "op 6"},
		"s0": {"ack 5", "op 6"},
		"s1": {"op 5", "ack 6"},
	}
	for src, log := range g.logs {
		if !slices.Equal(*log, want[src]) {
			t.Errorf("conn %q was sent %q, want %q", src, *log, want[src])
		}
	}
}
