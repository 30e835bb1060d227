// Package collab is coedit's engine: it keeps documents consistent while
// many clients edit them at once, with operational transformation (OT) of
// the text-unicode type from package ot.
//
// Start with Hub, the entry point for everything a connection does:
// Submit an op, Subscribe to or Fetch a document, exchange Presence.
// A Hub runs one session goroutine per open document; the session owns the
// document's text (an ot.Rope), version, recent records and seq table, and
// is the only goroutine that touches them. Other goroutines send it
// requests; it answers through the Conn and the reply functions. A session
// starts on first use and stops once idle (Options.IdleTimeout), after
// saving a snapshot.
//
// A submit goes through small steps, each a function with table tests:
// validate (checkSubmission); dedupe by (src, seq) (dedupe); plan: rebase
// over the records committed since the op's version (ot.Transform with
// ot.Left, as ShareDB's server does) and check the result against the
// document's shape (draft.plan); commit; then deliver: the submitter gets
// the records it missed and its ack, the other subscribers the broadcast
// (deliver, seen). Submits waiting together in a session's inbox share one
// commit (group commit): each is planned on a draft that holds the records
// planned before it, so nothing of the session changes while planning.
//
// A request made at a version older than the session's in-memory window
// (a subscribe or fetch from far back, a submit made long ago) is not
// served on the session goroutine: the session hands it to the Hub's
// catch-up readers (catchup.go, readers.go), which read the op log in
// chunks and send it to the Conn as its queue drains (Pacer), then give
// the request back, so one client far behind neither stalls a document
// nor overflows its own connection. Meanwhile that connection's later
// requests wait behind it, and it is sent no live ops of that document
// until it has caught up. A session's inbox is bounded
// (Options.MaxInbox, ErrBusy past it), and requests of a closed Conn are
// dropped.
//
// Every record enters a session through one commit path (session.commit):
// the Sequencer orders the node's own records (in a cluster it is the
// shared commit point and may answer with records the session missed,
// which it adopts before planning again; a single node's accepts
// everything), Store.Commit makes them durable, and only then do the
// document, window and seq table change. Records other nodes committed,
// from the Relay, take the same path. Nothing is acknowledged or broadcast
// before it is durable (in a cluster, durable in the commit point is
// enough for a broadcast: other nodes' records, and this node's to the
// subscribers without a submit in the group, go out before this node's
// Store write; an ack waits for both), and a failed commit leaves the
// document as it was.
//
// The engine consumes interfaces implemented elsewhere: Store (durable op
// log and snapshots; package storage implements it over bbolt), Relay
// (records between nodes; LocalRelay is the in-process one, a Redis relay
// serves clusters) and, optionally, Sequencer (the cluster's commit
// point). Conn is what the engine needs from
// a client connection; package web implements it over WebSockets.
//
// In a cluster the Relay is a ClusterRelay (collab/redisrelay.Cluster):
// each session syncs with the commit point before it answers anything,
// follows its epoch, and catches up again when deliveries may have been
// missed (cluster.go). collab/relaytest is the contract suite every
// Relay and Sequencer pair passes.
//
// Files: hub.go (the Hub's API and Options), conn.go (Conn and Pacer,
// what the engine needs of a connection), subscribe.go (Subscribe,
// SubscribeBulk, Fetch, Unsubscribe), registry.go (what each connection
// joined or holds presence on, its limits, and Disconnect), history.go
// (snapshots at a version or time, the op log and listings, read from the
// Store), presence.go (presence channels), presence_expiry.go
// (Options.PresenceTTL), session.go (the session goroutine and its
// inbox), window.go (its recent records), catchup.go and readers.go
// (requests older than the window), submit.go (a group commit from plan
// to delivery, and remote records), dedupe.go, seqtable.go (the session's
// seq table), plan.go (the draft, transform and checks), commit.go (the
// one commit path), route.go (who is sent what), sequencer.go (the commit
// point seam), cluster.go (sessions that follow a cluster's commit
// point), document.go (the document and its shape),
// session_presence.go (document presence), relay.go, stats.go, types.go,
// store.go.
package collab
