package web

import (
	"bytes"
	"fmt"

	"github.com/coedit/coedit/collab"
	"github.com/coedit/coedit/ot"
)

// This file answers the presence requests p, ps, pu and pr. The channels a
// connection subscribed to, and their limit, belong to the Hub
// (collab.Options.MaxSubscriptions).

// channel reads a presence channel "ch" that the connection may use
// (see channelReadable).
func (c *conn) channel(r *request) (string, *protoError) {
	ch, perr := r.needStr("ch", 2*c.srv.opts.MaxNameLen+1)
	if perr != nil {
		return "", perr
	}
	return ch, c.mayUseChannel(ch)
}

// presenceUpdate answers "p": the hub relays it to the channel's other
// subscribers (transformed to the head for text presence on a document)
// and this echoes it, as relayed, to the sender.
func (c *conn) presenceUpdate(r *request) *protoError {
	o := &c.srv.opts
	ch, perr := c.channel(r)
	if perr != nil {
		return perr
	}
	id, perr := r.needStr("id", o.MaxNameLen)
	if perr != nil {
		return perr
	}
	pv, _, perr := r.uint("pv")
	if perr != nil {
		return perr
	}
	p := collab.PresenceUpdate{Channel: ch, ID: id, Src: c.Src(), Seq: pv}
	coll, hasC, perr := r.str("c", o.MaxNameLen)
	if perr != nil {
		return perr
	}
	doc, hasD, perr := r.str("d", o.MaxNameLen)
	if perr != nil {
		return perr
	}
	if hasC != hasD {
		return badlyFormed(`document presence needs both "c" and "d"`)
	}
	if hasC {
		if perr := checkName(`"c"`, coll, o.MaxNameLen); perr != nil {
			return perr
		}
		if perr := checkName(`"d"`, doc, o.MaxNameLen); perr != nil {
			return perr
		}
		p.Doc = &collab.Key{Collection: coll, ID: doc}
		if perr := c.mayRead(*p.Doc); perr != nil {
			return perr
		}
		if ch != coll+"."+doc {
			// The channel is what the presence is relayed on and
			// remembered by; a document presence on another one would
			// reach that channel's subscribers as this document's.
			return badlyFormed(fmt.Sprintf(`document presence on %q: "ch" must be "<c>.<d>"`, ch))
		}
		v, hasV, perr := r.uint("v")
		if perr != nil {
			return perr
		}
		if !hasV {
			return badlyFormed(`document presence needs "v"`)
		}
		p.Version = v
		t, hasT, perr := r.str("t", 256)
		if perr != nil {
			return perr
		}
		if hasT {
			if !ot.IsType(t) {
				return newError(CodePresenceUnsupported, fmt.Sprintf("type %q does not support presence", t))
			}
			p.Type = ot.URI
		}
	}
	if raw := r.raw("p"); raw != nil {
		if len(raw) > o.MaxOpSize {
			return opTooLarge("presence", len(raw), o.MaxOpSize)
		}
		if p.Type == ot.URI {
			if tp, err := ot.DecodePresence(raw); err == nil {
				p.Text = &tp
			}
		}
		if p.Text == nil {
			// A copy: the session keeps it, and raw is a slice of the
			// whole frame (see request).
			p.Raw = bytes.Clone(raw)
		}
	}
	frame := r.frame
	c.srv.hub.Presence(c, p, func(up collab.PresenceUpdate, err error) {
		if err != nil {
			c.fail(reparse(frame), err)
			return
		}
		c.send(encodePresence(up))
	})
	return nil
}

// presenceSubscribe answers "ps". A client that reconnected (reclaimed
// its src) is asked for its presence after the ack, as the channel's
// other subscribers are: the sharedb client re-sends on reconnect only
// the presence it had not sent yet, so without the request its caret,
// cleared for the others when it dropped, stays hidden from them until
// it moves. (ShareDB asks it because its request names the agent's new
// clientId, which differs from the reclaimed src it filters on.)
func (c *conn) presenceSubscribe(r *request) *protoError {
	ch, perr := c.channel(r)
	if perr != nil {
		return perr
	}
	if _, _, perr := r.uint("seq"); perr != nil {
		return perr
	}
	kept := r.keep() // the reply's, after handle returns
	ask := c.reclaimed
	c.srv.hub.SubscribePresence(ch, c, func(err error) {
		if err != nil {
			c.fail(kept, err)
			return
		}
		c.send(presenceAck(kept, ch))
		if ask {
			c.SendPresenceRequest(ch)
		}
	})
	return nil
}

// presenceUnsubscribe answers "pu".
func (c *conn) presenceUnsubscribe(r *request) *protoError {
	ch, perr := c.channel(r)
	if perr != nil {
		return perr
	}
	if _, _, perr := r.uint("seq"); perr != nil {
		return perr
	}
	kept := r.keep() // the reply's, after handle returns
	c.srv.hub.UnsubscribePresence(ch, c, func(err error) {
		if err != nil {
			c.fail(kept, err)
			return
		}
		c.send(presenceAck(kept, ch))
	})
	return nil
}

// presenceAck is the reply to "ps" and "pu": {a,ch,seq}.
func presenceAck(r *request, ch string) []byte {
	m := newMsg(r.action).str("ch", ch)
	if seq := r.raw("seq"); seq != nil {
		m.raw("seq", seq)
	}
	return m.bytes()
}

// presenceRequest answers "pr": the channel's other subscribers are asked
// to re-send their presence. The reply is a bare {"a":"pr"}, as ShareDB
// sends it.
func (c *conn) presenceRequest(r *request) *protoError {
	ch, perr := c.channel(r)
	if perr != nil {
		return perr
	}
	c.srv.hub.RequestPresence(ch, c)
	c.send([]byte(`{"a":"pr"}`))
	return nil
}
