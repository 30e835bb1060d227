// Package webtest serves a coedit node over real HTTP and WebSockets
// inside Go tests: for tests of clients, tools and benchmarks that talk
// to coedit the way a browser does.
//
// Start runs an in-process node (collabtest.Start: a Hub over a bbolt
// store in the test's temporary directory) and serves it with package web
// on a loopback port; Serve serves a Hub the test already has. Cleanup
// shuts down in `coedit serve`'s order: the web server (closing its
// WebSockets), the listener, then the hub and the store (checked first
// when Start is given collabtest.WithCheck).
//
// A complete test:
//
//	func TestClient(t *testing.T) {
//		srv := webtest.Start(t, web.Options{})
//		conn, _, err := websocket.DefaultDialer.Dial(srv.WSURL, nil)
//		...
//	}
//
// Package web's own tests cannot import this package (it imports web);
// they build their server in web/helpers_test.go on collabtest alike.
package webtest
