// Package editlog reads, writes and checks edit logs: recorded editing
// sessions of one text document, one submitted op per line, that replay
// deterministically through coedit's OT and session code.
//
// An edit log is JSON Lines (docs/editlog.md has the full format). An
// optional header line names the document, its initial text and the
// expected final text; every other line is a Record: the op a client (Src,
// Seq) submitted against base version V, in the order the server committed
// it. The op log a coedit server exports (GET /api/docs/{c}/{id}/ops) is an
// edit log without a header.
//
// Where to start:
//   - ReadFile reads an edit log or a public editing trace (gzipped or not)
//     into a Log; Read and ReadTrace read from an io.Reader.
//   - Write writes a Log back in the canonical form.
//   - (*Log).Validate checks what can be checked without running the
//     server: record shapes, versions, src/seq order and resends.
//   - Compare locates the first difference between two texts, for
//     messages a person can act on.
//
// Package replay (collab/replay) replays a Log through a collab.Hub and
// checks the result; `coedit replay` does the same from the command line,
// and collab/collabtest from Go tests.
package editlog
