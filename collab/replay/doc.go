// Package replay replays edit logs (package editlog) through coedit and
// checks the final text. `coedit replay` is built on it, and so is the
// test helper collab/collabtest; it does not import package testing, so
// the binary can use it.
//
// Run submits every record of a log to a collab.Hub the caller owns, with
// collab.Hub.Submit and the record's src, seq and base version, so
// concurrent ops are transformed by the same session code that serves
// clients and resends are deduplicated; every acknowledgement must come at
// the version the log implies, and the final document must be the
// header's "final" text, else the error is a *MismatchError showing the
// position (code point, line and column) and the text around the first
// difference. Remote does the same against a running server over
// WebSocket, speaking the ShareDB protocol with one connection per src.
//
// Options pick the document (WithKey, else the log's header, else
// DefaultCollection and the log's name: KeyFor), how many submits are in
// flight at once (WithWindow, Run only), and for Remote how many
// connections stay open (WithConns) and the token it authenticates with
// (WithToken). Remote never shows a token in its errors (RedactURL).
package replay
