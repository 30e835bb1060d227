// Package collabtest replays edit logs (package editlog) through coedit's
// engine and checks the final text, for coedit's own tests and for any
// project that embeds coedit or talks to it.
//
// Start runs an in-process node: a collab.Hub over a storage.DB on a bbolt
// file in the test's temporary directory (with SyncNone, since a test does
// not need durability), with no network, stopped by t.Cleanup. Its Replay
// and ReplayFile methods submit every record of a log with
// collab.Hub.Submit, with the record's src, seq and base version, so
// concurrent ops are transformed by the same session code that serves
// clients, resends are deduplicated, and the final document is compared
// with the header's "final" text; a difference fails the test with its
// position (code point, line and column) and the text around it.
//
// A complete test:
//
//	func TestReplayEditLogs(t *testing.T) {
//		files, _ := filepath.Glob("testdata/editlogs/*.jsonl")
//		for _, file := range files {
//			t.Run(filepath.Base(file), func(t *testing.T) {
//				srv := collabtest.Start(t)
//				res := srv.ReplayFile(t, file)
//				t.Logf("%s: %v", file, res)
//			})
//		}
//	}
//
// Replay (the function) is the same replay without a testing.TB, for a
// Hub the caller owns; ReplayRemote replays against a running coedit
// server over WebSocket, speaking the ShareDB protocol with one
// connection per src. `coedit replay` is built on both.
package collabtest
