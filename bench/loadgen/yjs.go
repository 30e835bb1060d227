package loadgen

// Hocuspocus's protocol (Options.Protocol "hocuspocus"), so that the same
// load can be put on a Hocuspocus server beside coedit and ShareDB.
//
// Every Hocuspocus message is binary and starts with its document's name
// (a lib0 string); then comes a message type (Hocuspocus's MessageType)
// and its body. A client opens a document with an auth message and
// y-protocols' sync step 1 (its state vector) and is answered with sync
// step 2 (the document's state as a Yjs update). An edit is a sync
// message carrying a Yjs update; the server applies it, sends it on to
// every connection of the document (the sender's included) and answers
// the sender with a sync status, which is the edit's ack here.
//
// A generator client keeps no copy of the document (that would need a
// Yjs implementation): each one types at a cursor of its own. An insert
// is one Yjs item whose origin is the client's previous character (none
// for its first, which goes to the start of the text), and a delete
// removes the client's last characters; so every update is valid against
// any state the server holds, whatever the other clients did. Updates are
// written in Yjs's update format 1, the one y-protocols uses.

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"
	"unicode/utf16"

	"github.com/gorilla/websocket"

	"github.com/coedit/coedit/ot"
)

// Protocols a Run can speak (Options.Protocol).
const (
	ProtocolShareDB    = "sharedb"
	ProtocolHocuspocus = "hocuspocus"
)

// Hocuspocus's message types, y-protocols' sync steps, and Hocuspocus's
// auth message kinds, as they are numbered on the wire.
const (
	hpSync       = 0
	hpAuth       = 2
	hpSyncReply  = 4
	hpClose      = 7
	hpSyncStatus = 8

	ySyncStep1 = 0
	ySyncStep2 = 1
	yUpdate    = 2

	hpAuthToken         = 0
	hpAuthDenied        = 1
	hpAuthAuthenticated = 2
)

// Yjs content kinds (the low bits of an item's info byte) and its flag
// for an item with an origin.
const (
	yContentString = 4
	yHasOrigin     = 0x80
)

// yRoot names the document's Y.Text, where the first insert of each
// client goes.
const yRoot = "text"

// Bounds of each client's own text, in code points, that its edits steer
// towards, as minDocLen and maxDocLen do for a whole ShareDB document.
const (
	minOwnLen = 10
	maxOwnLen = 80
)

// yDelKey marks a fan-out key as a delete's: the clock of its first
// deleted unit, with this bit set; an insert's key is the clock of its
// first unit. Each unit is inserted once and deleted at most once, so
// keys are unique per client.
const yDelKey = 1 << 62

// yInFlight marks a Hocuspocus client's op in flight (client.inflight
// is non-nil while one is): the client keeps no text to transform.
var yInFlight = ot.Op{}

// yClient is a generator client's Yjs state.
type yClient struct {
	id    uint64  // Yjs client id: its index in the document's clients, plus one
	clock uint64  // the clock of its next unit
	alive []yUnit // its characters not yet deleted, in order
	name  []byte  // the document's name as a lib0 string: every message starts with it
	upd   []byte  // scratch for the update
}

// yUnit is one character a client inserted: its first clock, its length
// in UTF-16 units (what Yjs clocks count), and the character.
type yUnit struct {
	clock, n uint64
	r        rune
}

// edit returns the next edit as a Hocuspocus message, and the key its
// broadcast is known by (yUpdateKey): insert 1 to 3 characters after the
// client's previous one, or delete its last 1 to 3.
func (y *yClient) edit(r *rand.Rand, b []byte) ([]byte, uint64) {
	n := len(y.alive)
	u := y.upd[:0]
	var key uint64
	if n >= minOwnLen && r.IntN(100) < ownDeletePercent(n) {
		k := min(1+r.IntN(3), n)
		gone := y.alive[n-k:]
		first, last := gone[0], gone[k-1]
		y.alive = y.alive[:n-k]
		u = append(u, 0) // no items
		u = binary.AppendUvarint(u, 1)
		u = binary.AppendUvarint(u, y.id)
		u = binary.AppendUvarint(u, 1)
		u = binary.AppendUvarint(u, first.clock)
		u = binary.AppendUvarint(u, last.clock+last.n-first.clock)
		key = yDelKey | first.clock
	} else {
		var s strings.Builder
		at := y.clock
		for range 1 + r.IntN(3) {
			c := alphabet[r.IntN(len(alphabet))]
			s.WriteRune(c)
			w := uint64(utf16.RuneLen(c))
			y.alive = append(y.alive, yUnit{at, w, c})
			at += w
		}
		u = binary.AppendUvarint(u, 1) // one client's items
		u = binary.AppendUvarint(u, 1) // one item
		u = binary.AppendUvarint(u, y.id)
		u = binary.AppendUvarint(u, y.clock)
		if y.clock == 0 {
			u = append(u, yContentString)
			u = binary.AppendUvarint(u, 1) // the parent is a root type, by name
			u = appendVarString(u, yRoot)
		} else {
			u = append(u, yContentString|yHasOrigin)
			u = binary.AppendUvarint(u, y.id)
			u = binary.AppendUvarint(u, y.clock-1)
		}
		u = appendVarString(u, s.String())
		u = append(u, 0) // an empty delete set
		key = y.clock
		y.clock = at
	}
	y.upd = u
	b = append(b, y.name...)
	b = append(b, hpSync, yUpdate)
	b = binary.AppendUvarint(b, uint64(len(u)))
	return append(b, u...), key
}

// ownDeletePercent is deletePercent for a client's own text.
func ownDeletePercent(n int) int {
	if n > maxOwnLen {
		return 80
	}
	return 45
}

// yUpdateKey returns the Yjs client id of an update's first item, or of
// its first deletion when it has no items, and the fan-out key of the
// edit it carries (see yDelKey).
func yUpdateKey(u []byte) (id, key uint64, ok bool) {
	d := yDec{b: u}
	if d.uvarint() > 0 {
		d.uvarint() // items of the first client
		id = d.uvarint()
		key = d.uvarint()
	} else if d.uvarint() > 0 {
		id = d.uvarint()
		d.uvarint() // ranges
		key = yDelKey | d.uvarint()
	} else {
		return 0, 0, false
	}
	return id, key, d.err == nil
}

// handleYjs processes one message from a Hocuspocus server.
func (c *client) handleYjs(frame []byte, now time.Time) {
	d := yDec{b: frame}
	d.bytes() // the document's name: one per connection
	switch d.uvarint() {
	case hpSync, hpSyncReply:
		if d.uvarint() != yUpdate {
			return // a sync step: the setup's, answered already
		}
		id, key, ok := yUpdateKey(d.bytes())
		if !ok || d.err != nil {
			c.g.countError("BAD_FRAME")
			return
		}
		if id != c.y.id && id >= 1 && id <= uint64(len(c.doc.clients)) {
			c.g.fanoutFrom(c.doc, c.idx, int(id-1), key, now)
		}
	case hpSyncStatus:
		saved := d.uvarint()
		c.mu.Lock()
		defer c.mu.Unlock()
		if d.err != nil || c.inflight == nil {
			c.g.countError("BAD_FRAME")
			return
		}
		if saved != 1 {
			c.g.countError("NOT_SAVED")
		}
		c.g.acked(now.Sub(c.inStart))
		c.inflight = nil
		c.next()
	case hpAuth:
		if d.uvarint() == hpAuthDenied {
			c.g.countError("PERMISSION_DENIED")
		}
	case hpClose:
		// The server gave up the document on this connection (an update
		// it failed to handle, say) but keeps the socket: nothing in
		// flight will be answered, so say so now rather than at the ack
		// timeout.
		c.g.countError("DOCUMENT_CLOSED")
		c.mu.Lock()
		c.dead = true
		c.mu.Unlock()
	}
}

// submitYjs sends the client's next edit, counting its latency from
// start. c.mu is held and nothing is in flight.
func (c *client) submitYjs(start time.Time) {
	b, key := c.y.edit(c.rng, c.buf[:0])
	c.buf = b
	c.inflight, c.inSeq, c.inStart = yInFlight, key, start
	c.doc.record(c.idx, key, start)
	c.inSent = time.Now()
	c.write(b)
}

// joinHocuspocus connects to url and opens document d as Hocuspocus's
// provider does: an auth message with an empty token (the bench server
// asks for none), then sync step 1 with an empty state vector. It returns
// once the server has sent the document's state (sync step 2).
func (g *gen) joinHocuspocus(ctx context.Context, url string, d *doc) (*websocket.Conn, error) {
	ws, err := dialSocket(ctx, url)
	if err != nil {
		return nil, err
	}
	name := appendVarString(nil, d.id)
	auth := append(append([]byte{}, name...), hpAuth, hpAuthToken, 0)
	step1 := append(append([]byte{}, name...), hpSync, ySyncStep1, 1, 0)
	for _, m := range [][]byte{auth, step1} {
		if err := ws.WriteMessage(websocket.BinaryMessage, m); err != nil {
			ws.Close()
			return nil, fmt.Errorf("loadgen: open %s: %w", d.id, err)
		}
	}
	ws.SetReadDeadline(time.Now().Add(readTimeout))
	defer ws.SetReadDeadline(time.Time{})
	for {
		_, m, err := ws.ReadMessage()
		if err != nil {
			ws.Close()
			return nil, fmt.Errorf("loadgen: open %s: %w", d.id, err)
		}
		r := yDec{b: m}
		if !bytes.Equal(r.bytes(), []byte(d.id)) {
			continue
		}
		switch r.uvarint() {
		case hpAuth:
			if r.uvarint() == hpAuthDenied {
				ws.Close()
				return nil, fmt.Errorf("loadgen: open %s: permission denied: %s", d.id, r.bytes())
			}
		case hpSync, hpSyncReply:
			if r.uvarint() == ySyncStep2 && r.err == nil {
				return ws, nil
			}
		}
	}
}

// appendVarString appends s as lib0 writes a string: its UTF-8 length as
// a varint, then the bytes.
func appendVarString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// yDec reads lib0's encoding: varints (as encoding/binary's) and
// length-prefixed bytes. The first error sticks; reads after it return
// zero values.
type yDec struct {
	b   []byte
	err error
}

var errYShort = errors.New("loadgen: short or bad Hocuspocus message")

func (d *yDec) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = errYShort
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *yDec) bytes() []byte {
	n := d.uvarint()
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.b)) {
		d.err = errYShort
		return nil
	}
	p := d.b[:n]
	d.b = d.b[n:]
	return p
}
