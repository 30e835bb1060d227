package web

import (
	"testing"

	"github.com/coedit/coedit/collab"
)

// A WebSocket accepted from a TCP listener reads and writes through
// rawio.Sock.
func TestUpgradedSocketIsRaw(t *testing.T) {
	ts := startServer(t, Options{Logger: quiet}, collab.Options{})
	cli := ts.connect(t)
	c := ts.onlyConn(t)
	if c.nc == nil || c.nc.raw == nil {
		t.Fatal("the connection's socket has no rawio.Sock")
	}
	c.send([]byte(`{"a":"pp","n":1}`))
	cli.expect(`{"a":"pp","n":1}`)
}
