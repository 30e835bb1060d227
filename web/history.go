package web

import (
	"context"

	"github.com/coedit/coedit/collab"
)

// snapshotAt answers "nf" (a version) and "nt" (a timestamp) on a
// goroutine of its own: rebuilding an old version may replay many ops,
// and the reader must keep reading meanwhile (pongs included).
func (c *conn) snapshotAt(r *request, byTime bool) *protoError {
	o := &c.srv.opts
	key, perr := r.key(o.MaxNameLen)
	if perr != nil {
		return perr
	}
	if perr := c.mayRead(key); perr != nil {
		return perr
	}
	id := r.raw("id")
	if id == nil {
		return badlyFormed(`"id" is required`)
	}
	field := "v"
	if byTime {
		field = "ts"
	}
	at, hasAt, perr := r.uint(field)
	if perr != nil {
		return perr
	}
	if c.sem == nil {
		c.sem = make(chan struct{}, 4)
	}
	c.sem <- struct{}{}
	rctx := c.requestContext()
	kept := r.keep() // the reply's, after handle returns
	c.work.Add(1)
	go func() {
		defer c.work.Done()
		defer func() { <-c.sem }()
		ctx, cancel := context.WithTimeout(rctx, o.RequestTimeout)
		defer cancel()
		var snap collab.Snapshot
		var err error
		switch {
		case !hasAt:
			snap, err = c.srv.hub.FetchWait(ctx, key)
		case byTime:
			snap, err = c.srv.hub.SnapshotAtTime(ctx, key, int64(at))
		default:
			snap, err = c.srv.hub.SnapshotAt(ctx, key, at)
		}
		if err != nil {
			c.fail(kept, err)
			return
		}
		m := newMsg(kept.action).raw("id", id).uint("v", snap.Version)
		if snap.Type == "" {
			m.null("type")
		} else {
			m.str("type", snap.Type).str("data", snap.Data)
		}
		c.send(m.null("m").bytes())
	}()
	return nil
}
