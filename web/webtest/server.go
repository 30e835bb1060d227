package webtest

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coedit/coedit/collab"
	"github.com/coedit/coedit/collab/collabtest"
	"github.com/coedit/coedit/web"
)

// Server is a coedit node served on a loopback port for a test.
type Server struct {
	// Node is the in-process node (Hub and store); nil from Serve.
	Node *collabtest.Server
	// Web serves Node's hub.
	Web *web.Server
	// URL is the base URL, http://127.0.0.1:port.
	URL string
	// WSURL is the WebSocket endpoint, ws://127.0.0.1:port/ws.
	WSURL string
}

// Start starts an in-process node (collabtest.Start with nodeOpts) and
// serves it with Serve.
func Start(tb testing.TB, opts web.Options, nodeOpts ...collabtest.Option) *Server {
	tb.Helper()
	node := collabtest.Start(tb, nodeOpts...)
	s := Serve(tb, node.Hub, opts)
	s.Node = node
	return s
}

// Serve serves hub with package web (opts, with Hub set to hub) on a
// loopback port. It fails the test if web.New refuses opts. tb.Cleanup
// closes the web server (ending its WebSockets) and then the listener;
// the hub is the caller's to close, after that (as collabtest's cleanup,
// registered before, does).
func Serve(tb testing.TB, hub *collab.Hub, opts web.Options) *Server {
	tb.Helper()
	opts.Hub = hub
	ws, err := web.New(opts)
	if err != nil {
		tb.Fatalf("webtest: web.New: %v", err)
	}
	hs := httptest.NewServer(ws.Handler())
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := ws.Close(ctx); err != nil {
			tb.Errorf("webtest: web.Server.Close: %v", err)
		}
		hs.Close()
	})
	return &Server{Web: ws, URL: hs.URL, WSURL: "ws" + strings.TrimPrefix(hs.URL, "http") + "/ws"}
}
