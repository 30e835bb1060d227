package collab

import (
	"context"
	"errors"
)

// BulkDoc is one document of SubscribeBulk: its key, and the version to
// catch up from (nil: the reply carries the snapshot).
type BulkDoc struct {
	Key  Key
	From *uint64
}

// Subscribe joins c to key's live op stream. With from nil, reply gets
// the current snapshot. With from set, c first gets the records in
// [*from, head) with SendOp (its own included), then reply (with the
// head's snapshot, which the protocol does not send). A from past the
// head sends nothing and is not an error. Subscribing c past
// Options.MaxSubscriptions documents fails with ErrTooManySubscriptions;
// a failed Subscribe leaves c neither subscribed nor counted.
func (h *Hub) Subscribe(key Key, c Conn, from *uint64, reply func(Snapshot, error)) {
	if reply == nil {
		reply = func(Snapshot, error) {}
	}
	err := h.SubscribeBulk([]BulkDoc{{Key: key, From: from}}, c, func(_ int, s Snapshot, err error) { reply(s, err) })
	if err != nil {
		reply(Snapshot{}, err)
	}
}

// SubscribeBulk subscribes c to every document of docs, as Subscribe
// does, and calls reply once for each, with its index in docs; replies
// of different documents come from different sessions, in any order. It
// subscribes to all or none: when a key is invalid, or the documents c
// has not joined yet would take it past Options.MaxSubscriptions, it
// returns the error (ErrInvalidKey, ErrTooManySubscriptions) and calls no
// reply. With c nil it fetches.
func (h *Hub) SubscribeBulk(docs []BulkDoc, c Conn, reply func(i int, s Snapshot, err error)) error {
	if reply == nil {
		reply = func(int, Snapshot, error) {}
	}
	keys := make([]Key, len(docs))
	for i, d := range docs {
		if err := checkKey(d.Key); err != nil {
			return err
		}
		keys[i] = d.Key
	}
	if c == nil {
		for i, d := range docs {
			h.fetch(d.Key, nil, d.From, false, func(s Snapshot, err error) { reply(i, s, err) })
		}
		return nil
	}
	joins, err := h.joinDocs(c, keys)
	if err != nil {
		return err
	}
	for i, d := range docs {
		h.fetch(d.Key, c, d.From, true, func(s Snapshot, err error) {
			h.settleDoc(c, d.Key, joins[i], err)
			reply(i, s, err)
		})
	}
	return nil
}

// Fetch is Subscribe without joining the stream.
func (h *Hub) Fetch(key Key, c Conn, from *uint64, reply func(Snapshot, error)) {
	if reply == nil {
		reply = func(Snapshot, error) {}
	}
	if err := checkKey(key); err != nil {
		reply(Snapshot{}, err)
		return
	}
	h.fetch(key, c, from, false, reply)
}

// fetch queues a Subscribe (join) or Fetch on key's session. key is
// valid, and a join is registered already.
func (h *Hub) fetch(key Key, c Conn, from *uint64, join bool, reply func(Snapshot, error)) {
	r := &job{kind: jobFetch, conn: c, join: join, onSnapshot: reply}
	if from != nil {
		v := *from
		r.from = &v
	}
	if err := h.send(key, r, true); err != nil {
		reply(Snapshot{}, err)
	}
}

// FetchWait returns key's current snapshot.
func (h *Hub) FetchWait(ctx context.Context, key Key) (Snapshot, error) {
	type out struct {
		snap Snapshot
		err  error
	}
	ch := make(chan out, 1)
	h.Fetch(key, nil, nil, func(s Snapshot, err error) { ch <- out{s, err} })
	select {
	case o := <-ch:
		return o.snap, o.err
	case <-ctx.Done():
		return Snapshot{}, ctx.Err()
	}
}

// Unsubscribe removes c from key's stream and clears c's presence there.
// reply may be nil.
func (h *Hub) Unsubscribe(key Key, c Conn, reply func(error)) {
	if reply == nil {
		reply = func(error) {}
	}
	if err := checkKey(key); err != nil {
		reply(err)
		return
	}
	if c != nil {
		h.leaveDoc(c, key)
	}
	err := h.send(key, &job{kind: jobUnsubscribe, conn: c, onDone: reply}, false)
	switch {
	case errors.Is(err, errNoSession):
		// No session means c was not subscribed and has no presence there.
		reply(nil)
	case err != nil:
		reply(err)
	}
}
