// Package collabtest runs coedit's engine inside Go tests: for coedit's
// own tests and for any project that embeds coedit or talks to it.
//
// Start runs an in-process node: a collab.Hub over a storage.DB on a bbolt
// file in the test's temporary directory (with SyncNone, since a test does
// not need durability), with no network, stopped by t.Cleanup. Its Replay
// and ReplayFile methods replay edit logs into it with package replay
// (collab/replay), failing the test with the position where the final
// text differs from the log's.
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
// Package replay holds the replay itself, without the testing package,
// for a Hub the caller owns (replay.Run) or a running server
// (replay.Remote); `coedit replay` is built on it.
package collabtest
