// Package relaytest starts the bare relay (bench/relay) in process for
// tests, over real HTTP and WebSockets.
package relaytest

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coedit/coedit/bench/relay"
)

// Start serves a new relay until the test ends and returns its WebSocket
// URL.
func Start(t testing.TB) string {
	t.Helper()
	rl := relay.New()
	hs := httptest.NewServer(rl)
	t.Cleanup(func() {
		hs.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := rl.Close(ctx); err != nil {
			t.Errorf("relay Close: %v", err)
		}
	})
	return "ws" + strings.TrimPrefix(hs.URL, "http") + "/ws"
}
