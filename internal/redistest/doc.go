// Package redistest starts real redis-server processes for tests: one
// server on a free loopback port in a temp dir (StartServer), or a
// three-master Redis Cluster (StartCluster). Tests then break them the way
// production breaks: Kill (SIGKILL), Pause and Resume (SIGSTOP and
// SIGCONT), Restart on the same port and dir (an AOF is reloaded), and
// RestartEmpty (the data is gone).
//
// Every process is stopped by a t.Cleanup and, on Linux, also dies with
// the test binary (Pdeathsig), so a crashed test leaves no server behind.
//
// When redis-server is not installed the test is skipped, except in CI
// (CI=true), where it fails: a CI run must not pass by running nothing.
package redistest
