package collab

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the run if any goroutine is still running once every
// test has closed its hubs and stores: each session, committer and
// request goroutine has an owner that stops it and waits for it.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
