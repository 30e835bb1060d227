package web

import (
	"cmp"
	"context"
	"slices"
	"strings"

	"github.com/coedit/coedit/collab"
)

// This file holds authorisation: which documents and presence channels a
// connection or request may use, given the collab.Access of its token
// (collab.Everyone without auth). Every read path asks before it reads:
// fetch, subscribe, each entry of a bulk request, nf and nt, presence
// sent, subscribed to or requested, the op-log export, the snapshot, the
// list and the page; a submit needs write. A refusal is ERR_FORBIDDEN,
// whose message names only what the request itself named.

// readableCacheSize bounds a connection's cache of channel decisions.
const readableCacheSize = 64

// mayRead returns the error for a request on key that the connection may
// not read, or nil.
func (c *conn) mayRead(key collab.Key) *protoError {
	if c.id.access.CanRead(key) {
		return nil
	}
	return forbidden("your token does not allow reading " + key.String())
}

// mayWrite returns the error for a submit to key that the connection may
// not make, or nil.
func (c *conn) mayWrite(key collab.Key) *protoError {
	if c.id.access.CanWrite(key) {
		return nil
	}
	return forbidden("your token does not allow writing " + key.String())
}

// mayUseChannel returns the error for a presence request on channel ch
// that the connection may not use, or nil. It runs on the reader, which
// alone touches the cache.
func (c *conn) mayUseChannel(ch string) *protoError {
	if c.id.access.Unrestricted {
		return nil
	}
	ok, cached := c.readable[ch]
	if !cached {
		ok = channelReadable(c.id.access, ch)
		if c.readable == nil || len(c.readable) >= readableCacheSize {
			c.readable = make(map[string]bool)
		}
		c.readable[ch] = ok
	}
	if ok {
		return nil
	}
	return forbidden("your token does not allow the document of presence channel " + ch)
}

// channelReadable reports whether a may use presence channel ch: ch names
// a document a may read. ShareDB names a document's presence channel
// "collection.id", and the page adds "#users" for its untyped channel, so
// ch names document (collection, id) when ch is collection + "." + id or
// collection + "." + id + "#" + suffix. Names may themselves hold '.' and
// '#', so a channel can stand for more than one document; one readable
// reading is enough (the page's channels must work with a token for one
// document), and conn.SendPresence drops document presence whose document
// the receiver may not read. A channel that names no readable document is
// refused unless a is unrestricted.
func channelReadable(a collab.Access, ch string) bool {
	if a.Unrestricted {
		return true
	}
	for i := strings.IndexByte(ch, '.'); i >= 0; {
		coll, id := ch[:i], ch[i+1:]
		if coll != "" && id != "" {
			if a.CanRead(collab.Key{Collection: coll, ID: id}) {
				return true
			}
			// Only the last '#' splits off a suffix: one more reading
			// per '.', so the cost stays linear in the dots.
			if j := strings.LastIndexByte(id, '#'); j > 0 && a.CanRead(collab.Key{Collection: coll, ID: id[:j]}) {
				return true
			}
		}
		next := strings.IndexByte(ch[i+1:], '.')
		if next < 0 {
			break
		}
		i += 1 + next
	}
	return false
}

// maxListScan bounds how many documents a listing reads from the store to
// find the ones a restricted token may read: a token that may read few
// documents among many sees those among the newest maxListScan changed.
// A variable so that a test can make it small.
var maxListScan = 10000

// maxListCollections bounds the collections a listing of all lists one
// by one for a token that names them (listReadable).
const maxListCollections = 16

// listReadable lists the documents of collection ("" for all) that a may
// read, newest change first, at most limit (0 for all). The store has no
// filter, so for a restricted token it reads ever larger windows (up to
// maxListScan documents) until limit documents pass. A listing of all
// for a token whose grants name their collections (the usual "notes/*")
// lists those collections alone and merges them: scanning all found
// nothing for such a token once maxListScan documents of other
// collections had changed since its own.
func (s *Server) listReadable(ctx context.Context, a collab.Access, collection string, limit int) ([]collab.DocInfo, error) {
	if a.Unrestricted {
		return s.hub.List(ctx, collection, limit)
	}
	if !a.CanReadCollection(collection) {
		return nil, nil
	}
	if colls, ok := a.Collections(); ok && collection == "" && len(colls) <= maxListCollections {
		var all []collab.DocInfo
		for _, c := range colls {
			infos, err := s.listReadable(ctx, a, c, limit)
			if err != nil {
				return nil, err
			}
			all = append(all, infos...)
		}
		slices.SortStableFunc(all, func(x, y collab.DocInfo) int { return cmp.Compare(y.Modified, x.Modified) })
		if limit > 0 && len(all) > limit {
			all = all[:limit]
		}
		return all, nil
	}
	window := max(limit, 100)
	if limit == 0 {
		window = maxListScan
	}
	for {
		window = min(window, maxListScan)
		infos, err := s.hub.List(ctx, collection, window)
		if err != nil {
			return nil, err
		}
		out := make([]collab.DocInfo, 0, len(infos))
		for _, in := range infos {
			if a.CanRead(in.Key) {
				out = append(out, in)
				if limit > 0 && len(out) == limit {
					return out, nil
				}
			}
		}
		if len(infos) < window || window == maxListScan {
			return out, nil // the store has no more, or the scan is at its bound
		}
		window *= 4
	}
}

// readableLister is the page handler's DocLister: the documents the
// request's identity (set by servePage) may read.
type readableLister struct{ s *Server }

func (l readableLister) List(ctx context.Context, collection string, limit int) ([]collab.DocInfo, error) {
	return l.s.listReadable(ctx, identityOf(ctx).access, collection, limit)
}

// identityKey is the context key of a page request's identity.
type identityKey struct{}

// withIdentity returns ctx carrying id.
func withIdentity(ctx context.Context, id identity) context.Context {
	return context.WithValue(ctx, identityKey{}, id)
}

// identityOf returns the identity servePage put in ctx; a context without
// one may read nothing.
func identityOf(ctx context.Context) identity {
	id, _ := ctx.Value(identityKey{}).(identity)
	return id
}
