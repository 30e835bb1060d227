// Package web is coedit's HTTP surface: the WebSocket endpoint that speaks
// ShareDB's wire protocol (1.2) to the real sharedb client, the HTTP API for
// server-side integrations, /health and /ready, and the browser page.
//
// Start with Server (server.go): New takes Options, whose zero fields mean
// the documented defaults, and Handler returns the routes:
//
//	GET  /ws                                  WebSocket, ShareDB protocol
//	GET  /health                              liveness
//	GET  /ready                               readiness (503 while closing)
//	GET  /metrics                             Prometheus metrics (metrics.go)
//	GET  /api/auth                            whether the request's token is accepted
//	GET  /api/docs                            document list (JSON)
//	GET  /api/docs/{collection}/{id}          snapshot {v,type,data}
//	GET  /api/docs/{collection}/{id}/ops      op log as JSON Lines (?from=&to=)
//	POST /api/docs/{collection}/{id}/ops      submit an op {v,src,seq,op|create|del}
//	GET  /                                    the editing page and its assets
//
// Each WebSocket is one conn (conn.go; its send queue and writer in
// queue.go), which implements collab.Conn: a reader decodes frames and
// drives the Hub (it waits for a frame on a small goroutine of its own,
// so an idle connection waits on the smallest stack, and handles what
// arrived on one of the server's pooled goroutines, workers.go), and a
// writer turn, run on a pooled goroutine only while something is queued,
// drains a bounded send queue and writes
// what it took with one write system call (batchconn.go). An idle
// connection holds one goroutine. Replies and broadcasts are encoded
// by whichever goroutine produces them and only queued, so a session
// goroutine never waits on a socket and a slow client never delays others:
// a client whose queue overflows is closed with code 1013, and reconnects
// and catches up by version. A catch-up from far back is streamed by the
// Hub's readers as the queue drains (conn implements collab.Pacer), so a
// client any distance behind can catch up. A document with too many
// requests waiting closes the socket with 1013 too, and one whose session
// failed with 1011; either way the client reconnects, re-subscribes by
// version and resends.
//
// The reader hands each message to dispatch.go, whose actions table
// names every message type ("a") the server serves, the file that
// answers it, and whether it fixes the connection's src:
//
//	dispatch.go    hs, pp, qf, qs, qu: the handshake, pings and queries
//	subscribe.go   f, s, u, bf, bs, bu: fetch and subscribe, one or bulk
//	submit.go      op, and parseSubmission, which the HTTP API shares
//	presence.go    p, ps, pu, pr
//	history.go     nf, nt: a snapshot at a version or a time
//
// Which documents and presence channels a connection joined, and the
// limit on them, are the Hub's (collab.Options.MaxSubscriptions); the conn
// keeps no copy.
//
// Before any of it, hosts.go checks the Host header on every path (DNS
// rebinding), then cors.go answers the HTTP API's CORS for the allowed
// origins (preflights before any route). With Options.AuthSecret set, auth.go reads and verifies the
// request's token (an HS256 JWT) into an identity: 401 before the upgrade
// and on every API and page path without a valid one. Each connection
// keeps its identity, and authorize.go is where every read and write is
// checked against it; pageauth.go guards the pages and moves a page URL's
// token into a cookie. limits.go bounds the connections per node and per
// client address, and holds the HTTP submits' buckets per address;
// conn.go paces a connection's frames to its buckets, and closes one
// whose token expires (4001) or that keeps sending bad frames (1008).
//
// message.go decodes requests strictly (non-negative integer versions,
// strings without lone surrogates) and encodes replies; api.go is the HTTP
// API; pages.go serves the browser page; metrics.go /metrics. errors.go
// holds the one table of error codes the server sends, with the HTTP
// status each maps to; only this package turns engine errors into
// protocol codes.
package web
