package collab_test

import (
	"fmt"
	"testing"

	"github.com/coedit/coedit/collab"
)

// gateConn is a testConn whose first SendOp blocks until release is
// closed. It holds a session goroutine in place, so that the requests
// sent meanwhile wait in the inbox and form one group commit.
type gateConn struct {
	*testConn
	entered chan struct{} // closed when the first SendOp has begun
	release chan struct{}
	first   bool
}

func newGateConn(src string) *gateConn {
	return &gateConn{testConn: newConn(src), entered: make(chan struct{}), release: make(chan struct{}), first: true}
}

func (g *gateConn) SendOp(key collab.Key, rec collab.Record) {
	// Only the session goroutine calls SendOp, so first needs no lock.
	if g.first {
		g.first = false
		close(g.entered)
		<-g.release
	}
	g.testConn.SendOp(key, rec)
}

// checkOrder checks that c saw the ops and acks of key in strictly
// increasing version order, each version once.
func checkOrder(t *testing.T, c *testConn, key collab.Key) {
	t.Helper()
	var seq []string
	last, any := uint64(0), false
	for _, e := range c.snapshotEvents() {
		var v uint64
		switch {
		case e.kind == "op" && e.key == key:
			v = e.rec.Version
			seq = append(seq, fmt.Sprint("op ", v))
		case e.kind == "ack" && e.key == key && e.err == nil:
			v = e.res.Version
			seq = append(seq, fmt.Sprint("ack ", v))
		default:
			continue
		}
		if any && v <= last {
			t.Errorf("conn %s: version %d after %d; events %v", c.src, v, last, seq)
			return
		}
		last, any = v, true
	}
}

// TestGroupCommitConnOrder: submits from several subscribed connections
// share one group commit. Each connection gets the ops it missed, then
// its ack, then the later broadcasts: every version once and in order,
// never an op it was already sent as missed again after its ack.
func TestGroupCommitConnOrder(t *testing.T) {
	h, _ := newHub(t, collab.Options{})
	mustSubmit(t, h, docX, createSub("", 0, ""))
	gate := newGateConn("gate")
	h.Subscribe(docX, gate, nil, func(collab.Snapshot, error) {})
	const n = 4
	conns := make([]*testConn, n)
	for i := range conns {
		conns[i] = newConn(fmt.Sprint("c", i))
		conns[i].subscribe(h, docX, nil)
		conns[i].waitN(t, "snapshot", 1)
	}
	// The broadcast of version 1 blocks in gate.SendOp; the submits below
	// queue up behind it.
	h.Submit(docX, nil, editSub("", 0, 1, ins(0, "0")), nil)
	<-gate.entered
	for i, c := range conns {
		c.submit(h, docX, editSub(c.src, 1, 2, ins(0, fmt.Sprint(i))))
	}
	close(gate.release)
	for _, c := range conns {
		if a := c.waitN(t, "ack", 1)[0]; a.err != nil {
			t.Fatalf("conn %s: submit = %v", c.src, a.err)
		}
	}
	if st := h.Stats(); st.CommitBatches > 3 {
		t.Fatalf("CommitBatches = %d, want the queued submits in one group", st.CommitBatches)
	}
	mustSubmit(t, h, docX, editSub("", 0, 6, ins(0, "end")))
	for _, c := range conns {
		c.waitN(t, "op", 1) // the last op reaches everyone
		waitFor(t, "the last op", func() bool {
			evs := c.snapshotEvents()
			e := evs[len(evs)-1]
			return e.kind == "op" && e.rec.Version == 6
		})
		checkOrder(t, c, docX)
	}
}
