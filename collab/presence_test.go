package collab_test

import (
	"errors"
	"testing"

	"github.com/coedit/coedit/collab"
	"github.com/coedit/coedit/ot"
)

const chX = "docs.x"

func docPresence(id string, seq, v uint64, index, length int) collab.PresenceUpdate {
	key := docX
	return collab.PresenceUpdate{
		Channel: chX, ID: id, Seq: seq, Doc: &key, Version: v, Type: ot.URI,
		Text: &ot.Presence{Index: index, Length: length},
	}
}

func subscribePresence(t *testing.T, h *collab.Hub, c *testConn, ch string) {
	t.Helper()
	done := make(chan error, 1)
	h.SubscribePresence(ch, c, func(err error) { done <- err })
	if err := <-done; err != nil {
		t.Fatalf("SubscribePresence(%s) = %v", ch, err)
	}
}

// TestPresenceRequestOnJoin: a joining subscriber makes every other one
// get a presence request, and gets none itself.
func TestPresenceRequestOnJoin(t *testing.T) {
	h, _ := newHub(t, collab.Options{})
	a, b, c := newConn("a"), newConn("b"), newConn("c")
	subscribePresence(t, h, a, chX)
	if n := a.count("request"); n != 0 {
		t.Fatalf("first subscriber got %d requests, want 0", n)
	}
	subscribePresence(t, h, b, chX)
	if got := a.waitN(t, "request", 1)[0].channel; got != chX {
		t.Fatalf("request channel = %q, want %q", got, chX)
	}
	if n := b.count("request"); n != 0 {
		t.Fatalf("joiner got %d requests, want 0", n)
	}
	h.RequestPresence(chX, c) // a "pr" from a non-subscriber
	a.waitN(t, "request", 2)
	b.waitN(t, "request", 1)
}

// TestPresenceTransform: a stale text presence is brought to the head;
// an insert at the caret moves it only when its owner made the insert.
func TestPresenceTransform(t *testing.T) {
	h, _ := newHub(t, collab.Options{})
	mustSubmit(t, h, docX, createSub("", 0, "hello"))
	a, b := newConn("a"), newConn("b")
	subscribePresence(t, h, a, chX)
	subscribePresence(t, h, b, chX)
	// a types "XY" at the end (version 1 -> 2).
	mustSubmit(t, h, docX, editSub("a", 1, 1, ins(5, "XY")))

	// Both carets were at 5 at version 1.
	a.presence(h, docPresence("pa", 1, 1, 5, 0))
	echo := a.waitN(t, "presence-ack", 1)[0]
	if echo.err != nil || echo.pres.Version != 2 || *echo.pres.Text != (ot.Presence{Index: 7}) || echo.pres.Src != "a" {
		t.Fatalf("a's echo = %+v (text %v), want own insert to move the caret to 7 at version 2", echo.pres, echo.pres.Text)
	}
	got := b.waitN(t, "presence", 1)[0].pres
	if got.ID != "pa" || *got.Text != (ot.Presence{Index: 7}) {
		t.Fatalf("b received %+v, want pa at 7", got)
	}
	b.presence(h, docPresence("pb", 1, 1, 3, 2))
	b.presence(h, docPresence("pb", 2, 1, 5, 0))
	if got := a.waitN(t, "presence", 2)[1].pres; *got.Text != (ot.Presence{Index: 5}) || got.Version != 2 {
		t.Fatalf("a received %+v, want pb staying at 5 (another's insert at the caret)", got)
	}
	if n := a.count("presence-ack"); n != 1 {
		t.Fatalf("a got %d echoes, want only its own 1", n)
	}
	// Ahead of the document: refused.
	a.presence(h, docPresence("pa", 2, 9, 0, 0))
	if e := a.waitN(t, "presence-ack", 2)[1]; !errors.Is(e.err, collab.ErrPresenceVersion) {
		t.Fatalf("presence at version 9 = %v, want ErrPresenceVersion", e.err)
	}
	// A delete clears presence made before it.
	mustSubmit(t, h, docX, collab.Submission{Version: 2, HasVersion: true, Kind: collab.OpDelete})
	a.presence(h, docPresence("pa", 3, 2, 1, 0))
	if e := a.waitN(t, "presence-ack", 3)[2]; e.err != nil || !e.pres.Cleared() || e.pres.Version != 3 {
		t.Fatalf("presence over a delete = %+v, want cleared at 3", e.pres)
	}
}

// TestPresenceHeldInsideTheText: a caret or selection past the end of
// the text, stale or bad, is relayed held to the text's end, whether it
// was made at the head or brought there.
func TestPresenceHeldInsideTheText(t *testing.T) {
	h, _ := newHub(t, collab.Options{})
	mustSubmit(t, h, docX, createSub("", 0, "hello"))        // 5 code points
	mustSubmit(t, h, docX, editSub("b", 1, 1, ins(0, "é😀"))) // 7 at version 2
	a, b := newConn("a"), newConn("b")
	subscribePresence(t, h, a, chX)
	subscribePresence(t, h, b, chX)
	for i, c := range []struct {
		v             uint64
		index, length int
		want          ot.Presence
	}{
		{2, 3, 2, ot.Presence{Index: 3, Length: 2}},      // inside: untouched
		{2, 6, 5, ot.Presence{Index: 6, Length: 1}},      // runs past the end
		{2, 1000, 5, ot.Presence{Index: 7}},              // starts past the end
		{1, 9, 0, ot.Presence{Index: 7}},                 // stale, moved by the insert, then held
		{2, ot.MaxLen, ot.MaxLen, ot.Presence{Index: 7}}, // the largest a client may send
		{1, ot.MaxLen, 0, ot.Presence{Index: 7}},         // would pass 2^53-1 once moved
	} {
		a.presence(h, docPresence("pa", uint64(i+1), c.v, c.index, c.length))
		echo := a.waitN(t, "presence-ack", i+1)[i]
		if echo.err != nil || echo.pres.Version != 2 || *echo.pres.Text != c.want {
			t.Fatalf("presence %d..+%d at version %d: echo %+v (text %v, err %v), want %+v at 2", c.index, c.length, c.v, echo.pres, echo.pres.Text, echo.err, c.want)
		}
		if got := b.waitN(t, "presence", i+1)[i].pres; *got.Text != c.want {
			t.Fatalf("presence %d..+%d at version %d: relayed %v, want %+v", c.index, c.length, c.v, got.Text, c.want)
		}
	}
}

// TestPresenceClear: leaving a channel or disconnecting clears a
// connection's presences for the others, document presence at the head.
func TestPresenceClear(t *testing.T) {
	h, _ := newHub(t, collab.Options{})
	mustSubmit(t, h, docX, createSub("", 0, "hello"))
	a, b := newConn("a"), newConn("b")
	for _, ch := range []string{chX, "lobby"} {
		subscribePresence(t, h, a, ch)
		subscribePresence(t, h, b, ch)
	}
	a.subscribe(h, docX, nil)
	a.presence(h, docPresence("pa", 1, 1, 2, 1))
	a.presence(h, collab.PresenceUpdate{Channel: "lobby", ID: "la", Seq: 1, Raw: []byte(`{"name":"A"}`)})
	a.waitN(t, "presence-ack", 2)
	var got collab.PresenceUpdate
	for _, e := range b.waitN(t, "presence", 2) {
		if e.pres.ID == "la" {
			got = e.pres
		}
	}
	if string(got.Raw) != `{"name":"A"}` || got.Doc != nil || got.Src != "a" {
		t.Fatalf("untyped presence relayed as %+v", got)
	}
	// An op after the presence: the clear comes at the new head.
	mustSubmit(t, h, docX, editSub("", 0, 1, ins(0, "x")))

	// a leaves the lobby: b sees la cleared.
	done := make(chan error, 1)
	h.UnsubscribePresence("lobby", a, func(err error) { done <- err })
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := b.waitN(t, "presence", 3)[2].pres; got.ID != "la" || !got.Cleared() {
		t.Fatalf("after a left the lobby b got %+v, want la cleared", got)
	}
	if st := h.Stats(); st.Conns != 2 {
		t.Fatalf("Stats().Conns = %d, want 2", st.Conns)
	}
	h.Disconnect(a)
	got = b.waitN(t, "presence", 4)[3].pres
	if got.ID != "pa" || !got.Cleared() || got.Version != 2 || got.Doc == nil || *got.Doc != docX {
		t.Fatalf("after a disconnected b got %+v, want pa cleared at version 2", got)
	}
	h.Disconnect(b)
	waitFor(t, "no connections", func() bool { return h.Stats().Conns == 0 })
	// Nothing is sent to a after it disconnected.
	before := len(a.snapshotEvents())
	c := newConn("c")
	subscribePresence(t, h, c, chX)
	c.presence(h, docPresence("pc", 1, 2, 0, 0))
	c.waitN(t, "presence-ack", 1)
	if n := len(a.snapshotEvents()); n != before {
		t.Fatalf("a got %d events after disconnecting", n-before)
	}
}

func TestPresenceInvalid(t *testing.T) {
	h, _ := newHub(t, collab.Options{})
	a := newConn("a")
	a.presence(h, collab.PresenceUpdate{ID: "x"})
	if e := a.waitN(t, "presence-ack", 1)[0]; !errors.Is(e.err, collab.ErrInvalidPresence) {
		t.Fatalf("presence without channel = %v, want ErrInvalidPresence", e.err)
	}
}
