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
// A submit goes: validate, deduplicate by (src, seq), transform over the
// records committed since the op's version (ot.Transform with ot.Left, as
// ShareDB's server does), apply, commit to the Store, then send the
// submitter the records it missed and its ack, and broadcast the record
// to the other subscribers. Submits waiting together in a session's inbox
// share one Store.Commit (group commit). Nothing is acknowledged or
// broadcast before it is durable.
//
// The engine consumes two interfaces, implemented elsewhere: Store
// (durable op log and snapshots; package storage implements it over
// bbolt) and Relay (records between nodes; LocalRelay is the in-process
// one, a Redis relay serves clusters). Conn is what the engine needs from
// a client connection; package web implements it over WebSockets.
//
// Files: hub.go (the Hub's API and Options), subscribe.go (Subscribe,
// SubscribeBulk, Fetch, Unsubscribe), registry.go (what each connection
// joined, its subscription limit, and Disconnect), presence.go (presence
// channels), session.go (the session goroutine), submit.go (the submit
// path and remote records), session_presence.go (document presence),
// relay.go, stats.go, types.go, store.go.
package collab
