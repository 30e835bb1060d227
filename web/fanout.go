package web

import (
	"github.com/gorilla/websocket"

	"github.com/coedit/coedit/collab"
)

// This file encodes the op messages the engine sends a connection:
// broadcasts, catch-up records, the records a submit missed. A broadcast
// is encoded once, by the first subscriber it reaches (EncodeOp), and the
// same bytes are queued on every subscriber (SendEncoded): frames in a
// send queue are shared and never modified.

// opFrame is an op message as EncodeOp encodes it.
type opFrame []byte

// SendOp queues a committed record as an op message.
func (c *conn) SendOp(key collab.Key, rec collab.Record) {
	c.SendEncoded(key, rec, nil)
}

// EncodeOp implements collab.SharedSender: it returns rec as an op
// message, or nil when rec does not encode (SendOp then closes the
// connection).
func (c *conn) EncodeOp(key collab.Key, rec collab.Record) any {
	b, err := encodeOp(key, rec)
	if err != nil {
		return nil
	}
	// Full capacity: an append to one connection's copy can never write
	// into the bytes the others share.
	return opFrame(b[:len(b):len(b)])
}

// SendEncoded implements collab.SharedSender: it queues enc, an op
// message EncodeOp made of rec, or encodes rec when enc is not one.
func (c *conn) SendEncoded(key collab.Key, rec collab.Record, enc any) {
	if !c.id.access.CanRead(key) {
		// Never reached: every request that makes the hub send a
		// document's ops checked read access first. Should it happen,
		// the client is missing an op, so make it reconnect.
		c.log().Error("op for a document the connection may not read", "doc", key.String())
		c.closeWith(websocket.CloseInternalServerErr, "internal error")
		return
	}
	frame, ok := enc.(opFrame)
	if !ok {
		var err error
		if frame, err = encodeOp(key, rec); err != nil {
			// A record the engine committed always encodes; if it does
			// not, the client would diverge, so make it reconnect and
			// refetch.
			c.log().Error("cannot encode committed op", "doc", key.String(), "v", rec.Version, "err", err)
			c.closeWith(websocket.CloseInternalServerErr, "internal error")
			return
		}
	}
	c.send(frame)
}

// encodeOp returns rec as an op message:
// {"a":"op","c":..,"d":..,"v":..,"src":..,"seq":..,"op"|"create"|"del":..}.
func encodeOp(key collab.Key, rec collab.Record) ([]byte, error) {
	// Room for the fixed part and the names, and for the body as
	// ot.Op.AppendJSON writes it (text plus a little per component), so
	// that one allocation usually holds the message.
	size := 96 + len(key.Collection) + len(key.ID) + len(rec.Src) + len(rec.Type) + len(rec.Data)
	for _, p := range rec.Op {
		size += len(p.Text) + 24
	}
	m := &msg{b: make([]byte, 0, size)}
	m.b = append(m.b, `{"a":"op"`...)
	m.str("c", key.Collection).str("d", key.ID).uint("v", rec.Version)
	if rec.Src != "" {
		m.str("src", rec.Src).uint("seq", rec.Seq)
	}
	if err := appendRecordBody(m, rec); err != nil {
		return nil, err
	}
	return m.bytes(), nil
}

// appendRecordBody adds the op, create or del field of rec.
func appendRecordBody(m *msg, rec collab.Record) error {
	switch rec.Kind {
	case collab.OpCreate:
		m.key("create")
		m.b = append(m.b, `{"type":`...)
		m.b = appendString(m.b, rec.Type)
		m.b = append(m.b, `,"data":`...)
		m.b = appendString(m.b, rec.Data)
		m.b = append(m.b, '}')
	case collab.OpDelete:
		m.raw("del", []byte("true"))
	default:
		m.key("op")
		b, err := rec.Op.AppendJSON(m.b)
		if err != nil {
			return err
		}
		m.b = b
	}
	return nil
}
