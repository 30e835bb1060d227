// Package loadgen drives servers that speak ShareDB's wire protocol
// (coedit, ShareDB itself, the bare relay in bench/relay) with a
// reproducible editing load and measures them; `coedit bench` is its
// command line and scripts/bench.sh compares the three servers with it.
//
// Start with Run and Options. A run creates Docs documents of the
// text-unicode type, connects Clients editing clients to each (spread
// round-robin over the URLs, so a cluster's nodes share every document,
// or with Affinity all on the document's own URL) and Idle subscribers that never edit, then submits small random edits,
// with BMP and astral characters among them: in closed loop each client
// keeps one op in flight; in open loop each client follows a fixed
// timetable and an op that falls due while another is in flight waits,
// its latency counted from when it fell due (no coordinated omission).
//
// Each client (client.go) keeps its own copy of the text the way the
// sharedb client does: its op applied at once, a remote op transformed
// against the op in flight (ot.Transform, the client's op winning ties as
// the server will make it). At the end every copy of a document must equal
// the others and a fresh fetch from every URL (converge.go), which checks
// the server's OT and fan-out as well as the generator.
//
// Measured over the window after the warm-up: acked ops/s, ack latency and
// fan-out latency (submit to arrival at each other client of the document)
// in log-linear histograms (hist.go), errors by code, and with a PID the
// server's CPU time and memory from /proc beside the generator's own CPU
// (proc.go). Frames are read with bench/wire's field scanner, so the
// generator's cost per frame is mostly the system calls it shares with the
// server.
package loadgen
