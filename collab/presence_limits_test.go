package collab_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/coedit/coedit/collab"
	"github.com/coedit/coedit/ot"
)

// rawDocPresence is an untransformed presence value on document key.
func rawDocPresence(key collab.Key, id string, v uint64, raw string) collab.PresenceUpdate {
	k := key
	return collab.PresenceUpdate{Channel: key.Collection + "." + key.ID, ID: id, Seq: 1, Doc: &k, Version: v, Type: ot.URI, Raw: []byte(raw)}
}

// presenceErr posts p from c and waits for its reply's error.
func presenceErr(t *testing.T, h *collab.Hub, c *testConn, p collab.PresenceUpdate) error {
	t.Helper()
	n := c.count("presence-ack")
	c.presence(h, p)
	return c.waitN(t, "presence-ack", n+1)[n].err
}

// TestDocumentPresenceCountsAgainstSubscriptionLimit: a presence on a
// document counts against Options.MaxSubscriptions as a subscription
// does, so one connection cannot start (and pin) a session per document
// it names in a "p" message; it used to start one for any c/d (seen: 300
// sessions from a connection limited to 10 subscriptions). Clearing the
// presence frees the slot (issue 9, item 7).
func TestDocumentPresenceCountsAgainstSubscriptionLimit(t *testing.T) {
	h, _ := newHub(t, collab.Options{MaxSubscriptions: 10})
	c := newConn("c")
	key := func(i int) collab.Key { return collab.Key{Collection: "pres", ID: fmt.Sprint(i)} }
	for i := range 30 {
		err := presenceErr(t, h, c, rawDocPresence(key(i), "me", 0, `{"x":1}`))
		switch {
		case i < 10 && err != nil:
			t.Fatalf("presence on document %d = %v, want it accepted", i, err)
		case i >= 10 && !errors.Is(err, collab.ErrTooManySubscriptions):
			t.Fatalf("presence on document %d = %v, want ErrTooManySubscriptions", i, err)
		}
	}
	if st := h.Stats(); st.SessionsStarted != 10 {
		t.Fatalf("sessions started = %d, want 10", st.SessionsStarted)
	}
	// Presence and subscriptions share the limit; a second presence on
	// a document already counted is free.
	if err := subscribeErr(t, h, c, key(20), nil); !errors.Is(err, collab.ErrTooManySubscriptions) {
		t.Fatalf("subscribe to an 11th document = %v, want ErrTooManySubscriptions", err)
	}
	if err := subscribeErr(t, h, c, key(3), nil); err != nil {
		t.Fatalf("subscribe to a document c holds presence on = %v", err)
	}
	if err := presenceErr(t, h, c, rawDocPresence(key(4), "other", 0, `{"x":2}`)); err != nil {
		t.Fatalf("second presence on a counted document = %v", err)
	}
	// Clearing c's only presence on a document frees its slot.
	cleared := rawDocPresence(key(5), "me", 0, "")
	cleared.Raw = nil
	if err := presenceErr(t, h, c, cleared); err != nil {
		t.Fatal(err)
	}
	if err := presenceErr(t, h, c, rawDocPresence(key(25), "me", 0, `{"x":1}`)); err != nil {
		t.Fatalf("presence on a new document after clearing one = %v", err)
	}
}

// TestUntypedPresenceCountsAgainstChannelLimit: posting untyped presence
// on a channel counts as joining it, so the channels one connection
// holds values on are bounded by Options.MaxSubscriptions too.
func TestUntypedPresenceCountsAgainstChannelLimit(t *testing.T) {
	h, _ := newHub(t, collab.Options{MaxSubscriptions: 10})
	c := newConn("c")
	for i := range 30 {
		err := presenceErr(t, h, c, collab.PresenceUpdate{Channel: fmt.Sprint("room", i), ID: "me", Raw: []byte(`1`)})
		switch {
		case i < 10 && err != nil:
			t.Fatalf("presence on channel %d = %v, want it accepted", i, err)
		case i >= 10 && !errors.Is(err, collab.ErrTooManySubscriptions):
			t.Fatalf("presence on channel %d = %v, want ErrTooManySubscriptions", i, err)
		}
	}
}

// TestPresenceBytesBoundedPerConnection: the presence values one
// connection holds, over all channels, ids and documents, are bounded by
// Options.MaxPresenceBytes (ErrPresenceTooLarge past it); they used to be
// kept for every channel and id until the connection closed (seen: 400
// values of 400 KiB grew the heap by 159 MiB). Replacing a value counts
// its new size only, clearing frees it, and nothing is left once the
// connection disconnects.
func TestPresenceBytesBoundedPerConnection(t *testing.T) {
	h, _ := newHub(t, collab.Options{MaxPresenceBytes: 16 << 10})
	mustSubmit(t, h, docX, createSub("", 0, "hello"))
	c, other := newConn("c"), newConn("other")
	value := `"` + strings.Repeat("v", 3<<10) + `"`
	accepted := 0
	for i := range 10 {
		err := presenceErr(t, h, c, collab.PresenceUpdate{Channel: "room", ID: fmt.Sprint("id", i), Raw: []byte(value)})
		if err == nil {
			accepted++
			continue
		}
		if !errors.Is(err, collab.ErrPresenceTooLarge) {
			t.Fatalf("presence %d = %v, want nil or ErrPresenceTooLarge", i, err)
		}
	}
	if accepted != 5 {
		t.Fatalf("%d presences of 3 KiB accepted under a 16 KiB bound, want 5", accepted)
	}
	// A document presence counts against the same bound.
	if err := presenceErr(t, h, c, rawDocPresence(docX, "doc", 1, value)); !errors.Is(err, collab.ErrPresenceTooLarge) {
		t.Fatalf("document presence over the bound = %v, want ErrPresenceTooLarge", err)
	}
	// Replacing a value many times does not add up; another connection
	// has its own bound.
	for i := range 50 {
		p := collab.PresenceUpdate{Channel: "room", ID: "id0", Seq: uint64(i + 2), Raw: []byte(value)}
		if err := presenceErr(t, h, c, p); err != nil {
			t.Fatalf("replacing presence id0 (%d) = %v", i, err)
		}
	}
	if err := presenceErr(t, h, other, collab.PresenceUpdate{Channel: "room", ID: "x", Raw: []byte(value)}); err != nil {
		t.Fatalf("another connection's presence = %v", err)
	}
	// Clearing one frees room for a document presence.
	if err := presenceErr(t, h, c, collab.PresenceUpdate{Channel: "room", ID: "id1", Seq: 9}); err != nil {
		t.Fatal(err)
	}
	if err := presenceErr(t, h, c, rawDocPresence(docX, "doc", 1, value)); err != nil {
		t.Fatalf("document presence after clearing one = %v", err)
	}
	h.Disconnect(c)
	h.Disconnect(other)
	if n := h.Stats().Conns; n != 0 {
		t.Fatalf("Stats().Conns = %d after both disconnected, want 0", n)
	}
}

// TestPresenceExpires: a presence not updated for Options.PresenceTTL is
// dropped and cleared for the channel's other subscribers, untyped and
// document presence alike, and a session that held only presence then
// goes idle and stops; they used to live as long as the connection.
func TestPresenceExpires(t *testing.T) {
	h, _ := newHub(t, collab.Options{PresenceTTL: 50 * time.Millisecond, IdleTimeout: 10 * time.Millisecond})
	mustSubmit(t, h, docX, createSub("", 0, "hello"))
	c, watcher := newConn("c"), newConn("w")
	subscribePresence(t, h, watcher, "room")
	subscribePresence(t, h, watcher, chX)
	if err := presenceErr(t, h, c, collab.PresenceUpdate{Channel: "room", ID: "me", Raw: []byte(`{"name":"c"}`)}); err != nil {
		t.Fatal(err)
	}
	if err := presenceErr(t, h, c, rawDocPresence(docX, "caret", 1, `{"x":1}`)); err != nil {
		t.Fatal(err)
	}
	got := watcher.waitN(t, "presence", 4)
	byChannel := map[string][]collab.PresenceUpdate{}
	for _, e := range got {
		byChannel[e.pres.Channel] = append(byChannel[e.pres.Channel], e.pres)
	}
	for _, ch := range []string{"room", chX} {
		ps := byChannel[ch]
		if len(ps) != 2 || ps[0].Cleared() || !ps[1].Cleared() || ps[1].Src != "c" {
			t.Fatalf("watcher's presence on %s = %+v, want c's value, then c's presence cleared", ch, ps)
		}
	}
	waitFor(t, "the session holding only presence to stop", func() bool { return h.Stats().Sessions == 0 })
	if n := h.Stats().Conns; n != 1 {
		t.Fatalf("Stats().Conns = %d, want 1 (the watcher; c holds nothing)", n)
	}
}
