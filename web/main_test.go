package web

import (
	"fmt"
	"net/http"
	"os"
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the run if any goroutine is still running once every
// test has closed its servers, hubs and connections: each goroutine the
// package starts has an owner that stops it and waits for it. Tests that
// start servers of their own check the same at their end (checkNoLeaks).
func TestMain(m *testing.M) {
	code := m.Run()
	// Keep-alive connections of the shared HTTP client are the tests'
	// own, not the server's.
	http.DefaultClient.CloseIdleConnections()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintf(os.Stderr, "goroutines outlived the tests: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}
