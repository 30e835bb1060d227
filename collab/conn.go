package collab

import "context"

// Conn is one client connection as the engine sees it (a WebSocket in web,
// or an in-process client in tests and replay).
//
// Its Send methods must never block: a web connection appends to its
// bounded send queue and, when the queue is full, closes itself (the
// client reconnects and catches up by version). Calls for one document
// come from that document's session goroutine, in order, or, while the
// conn catches up on records older than the session holds in memory,
// from one of the Hub's readers, while the session sends the conn
// nothing of that document (see Pacer); either way one at a time, so a
// Conn sees each document's ops, acks and replies in version order.
//
// The Send methods must not call Hub methods synchronously (hand the work
// to another goroutine instead). A Conn is used as a map key, so its
// dynamic type must be comparable; use a pointer. Records and presence
// updates it receives are shared with other connections: read them, never
// modify them.
type Conn interface {
	// Src is the connection's id: ShareDB's src, issued at handshake.
	// It may be called from any goroutine and must not change once the
	// connection has made its first request to the Hub.
	Src() string
	// SendOp delivers a committed record of a document the conn
	// subscribed to, or a catch-up record it asked for. It is never
	// called with the conn's own ops as a broadcast.
	SendOp(key Key, rec Record)
	// SendPresence delivers a presence update on a channel the conn
	// subscribed to (never the conn's own updates, except the echo the
	// protocol defines; see PresenceUpdate).
	SendPresence(p PresenceUpdate)
	// SendPresenceRequest asks the conn to re-send its presence on
	// channel (ShareDB's "pr"), because another client joined.
	SendPresenceRequest(channel string)
	// Drop tells the conn that key's session will send it nothing more
	// for key: the conn is no longer subscribed to key and holds no
	// presence there. err says why, and how to follow key again:
	//   - ErrSessionFailed: the session stopped; subscribe again, from
	//     the version the conn has (web closes the socket with 1011, and
	//     the client re-subscribes by version as after any drop);
	//   - ErrHistoryReplaced: in a cluster, the session dropped records
	//     the conn may hold (a fork); its copy must be fetched anew, and
	//     a subscribe at its version is refused with that error (web
	//     closes the socket with 4002).
	// It is called from the session's goroutine.
	Drop(key Key, err error)
	// Closed reports whether the connection has closed, or is closing,
	// so that nothing sent to it will arrive. Sessions drop the requests
	// of a closed conn instead of serving them (answering them with
	// ErrConnClosed), and catch-ups stop reading for it. It is called
	// from any goroutine.
	Closed() bool
}

// Pacer is implemented by a Conn whose sends are queued with a bound
// (web's send queue), so that a catch-up does not overflow it. The
// records a request far behind the head needs (a subscribe, fetch or
// submit made at a version older than the session's in-memory window)
// are read by the Hub's readers and sent in chunks of at most half the
// conn's room, each once its queue is at most half full; a conn that is
// not a Pacer is sent them as fast as they are read.
type Pacer interface {
	// Room returns how much more the conn can queue now without
	// overflowing.
	Room() Room
	// WaitRoom blocks until the conn's queue is at most half full and
	// returns its Room; or it returns an error once ctx ends or the conn
	// closes.
	WaitRoom(ctx context.Context) (Room, error)
}

// Room is how much more a Pacer's queue takes: messages, and bytes of
// encoded messages.
type Room struct {
	Messages int
	Bytes    int
}

// fits returns how many of recs, from the first, fit in half of r (at
// least one, so that a catch-up always moves on; web sends a message
// bigger than its byte bound when its queue is empty).
func (r Room) fits(recs []Record) int {
	msgs, bytes := max(1, r.Messages/2), r.Bytes/2
	size := 0
	for i := range recs {
		size += recordSize(&recs[i])
		if i >= msgs || i > 0 && size > bytes {
			return i
		}
	}
	return len(recs)
}
