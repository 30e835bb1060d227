package web

import (
	"fmt"
	"time"

	"github.com/coedit/coedit/collab"
	"github.com/coedit/coedit/ot"
)

// This file answers "op" and holds parseSubmission, the reading of an
// op's fields that the WebSocket and the HTTP API (api.go) share.

// submit answers "op": the hub sends the ops the submission is
// transformed over, then this replies with the ack.
func (c *conn) submit(r *request) *protoError {
	o := &c.srv.opts
	key, perr := c.submitKey(r)
	if perr != nil {
		return perr
	}
	s, perr := parseSubmission(r, o.MaxOpSize)
	if perr != nil {
		return perr
	}
	src := c.Src()
	if v := r.raw("src"); v != nil {
		// The common case, the connection's own src without escapes,
		// is checked without decoding it.
		if text, ok := plainString(v); !ok || string(text) != src {
			claimed, _, perr := r.str("src", maxClientSrcLen)
			if perr != nil {
				return perr
			}
			if claimed != src {
				return newError(CodeSrcMismatch, fmt.Sprintf("op src %q is not this connection's src %q (send it in the handshake to reclaim it)", claimed, src))
			}
		}
	}
	if s.Seq == 0 {
		return badlyFormed(`"seq" is required: a positive integer`)
	}
	if perr := c.mayWrite(key); perr != nil {
		return perr
	}
	if c.pace("ops", c.ops.Take()) {
		return nil
	}
	s.Src = src
	seq, start, frame := s.Seq, time.Now(), r.frame
	c.srv.hub.Submit(key, c, s, func(res collab.SubmitResult, err error) {
		if err != nil {
			c.fail(reparse(frame), err)
			return
		}
		c.srv.met.submitAcked(start)
		c.send(encodeAck(key, res.Version, src, seq))
	})
	return nil
}

// encodeAck returns the ack of the op src submitted with seq, committed
// at version v.
func encodeAck(key collab.Key, v uint64, src string, seq uint64) []byte {
	m := msg{b: make([]byte, 0, 64+len(key.Collection)+len(key.ID)+len(src))}
	m.b = append(m.b, `{"a":"op"`...)
	return m.str("c", key.Collection).str("d", key.ID).uint("v", v).str("src", src).uint("seq", seq).bytes()
}

// submitKey is r.key for a submit. A connection submits to the same
// document again and again: when "c" and "d" name the document of its
// last submit (as plain strings), the key is reused and costs no
// allocation. Called on the reader only, which owns lastKey.
func (c *conn) submitKey(r *request) (collab.Key, *protoError) {
	last := &c.lastKey
	if last.ID != "" {
		coll, ok1 := plainString(r.raw("c"))
		id, ok2 := plainString(r.raw("d"))
		if ok1 && ok2 && string(coll) == last.Collection && string(id) == last.ID {
			return *last, nil
		}
	}
	key, perr := r.key(c.srv.opts.MaxNameLen)
	if perr == nil {
		*last = key
	}
	return key, perr
}

// parseSubmission reads the op fields shared by the WebSocket and the
// HTTP API: v (null for the head), seq, and exactly one of op, create
// and del. It leaves Src to the caller.
func parseSubmission(r *request, maxOpSize int) (collab.Submission, *protoError) {
	var s collab.Submission
	var perr *protoError
	if s.Version, s.HasVersion, perr = r.uint("v"); perr != nil {
		return s, perr
	}
	seq, hasSeq, perr := r.uint("seq")
	if perr != nil {
		return s, perr
	}
	if hasSeq && seq == 0 {
		return s, badlyFormed(`"seq" must be a positive integer`)
	}
	s.Seq = seq
	raw, hasOp := r.value("op")
	create, del := r.raw("create"), r.raw("del")
	if n := btoi(hasOp) + btoi(create != nil) + btoi(del != nil); n != 1 {
		return s, newError(CodeOpBadlyFormed, "an op message needs exactly one of op, create and del")
	}
	switch {
	case hasOp:
		if len(raw) > maxOpSize {
			return s, opTooLarge("op", len(raw), maxOpSize)
		}
		op, err := ot.Decode(raw)
		if err != nil {
			return s, newError(CodeOpBadlyFormed, err.Error())
		}
		s.Kind, s.Op = collab.OpEdit, op
	case create != nil:
		if len(create) > maxOpSize {
			return s, opTooLarge("create", len(create), maxOpSize)
		}
		var cr request
		if isNull, err := cr.split(create); err != nil || isNull {
			return s, newError(CodeOpBadlyFormed, `"create" must be an object {"type","data"}`)
		}
		typ, ok, perr := cr.str("type", 256)
		if perr != nil || !ok {
			return s, newError(CodeOpBadlyFormed, `"create.type" must be a type name or URI`)
		}
		if !ot.IsType(typ) {
			return s, newError(CodeTypeNotRecognized, fmt.Sprintf("unknown type %q: coedit serves %s", typ, ot.URI))
		}
		if data := cr.raw("data"); data != nil {
			text, err := decodeString(data)
			if err != nil {
				return s, newError(CodeOpBadlyFormed, `"create.data" of a text-unicode document must be a string: `+err.Error())
			}
			s.Data = text
		}
		s.Kind, s.Type = collab.OpCreate, typ
	default:
		if string(del) != "true" {
			return s, newError(CodeOpBadlyFormed, `"del" must be true`)
		}
		s.Kind = collab.OpDelete
	}
	return s, nil
}

func opTooLarge(what string, n, max int) *protoError {
	return newError(CodeOpTooLarge, fmt.Sprintf("%s is %d bytes, more than the %d allowed", what, n, max))
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}
