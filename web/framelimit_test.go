package web

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/coedit/coedit/collab"
)

// TestOversizedFrameAlwaysSeesClose1009 sends a frame past the size a
// frame over the limit is read and dropped to (discardLimit of the
// default limit), over a real socket, fifteen times. Each time the
// whole frame must go out without a connection reset and the client must
// then read the 1009 close. Closing the socket with the rest of the upload
// unread made the kernel reset the connection: the client's write failed
// and a client that takes that as the end (a browser does) never learnt
// why. The client's small send buffer keeps it writing while the server
// decides, as on a real network.
func TestOversizedFrameAlwaysSeesClose1009(t *testing.T) {
	ts := startServer(t, Options{Logger: quiet}, collab.Options{})
	dialer := websocket.Dialer{NetDialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		if err == nil {
			err = c.(*net.TCPConn).SetWriteBuffer(16 << 10)
		}
		return c, err
	}}
	frame := []byte(`{"a":"pp","x":"` + strings.Repeat("a", int(discardLimit(1<<20))) + `"}`)
	for i := range 15 {
		ws, _, err := dialer.Dial(ts.wsURL, nil)
		if err != nil {
			t.Fatal(err)
		}
		ws.SetWriteDeadline(time.Now().Add(10 * time.Second))
		if err := ws.WriteMessage(websocket.TextMessage, frame); err != nil {
			ws.Close()
			t.Fatalf("try %d: writing a %d-byte frame: %v, want it sent before the close", i+1, len(frame), err)
		}
		ws.SetReadDeadline(time.Now().Add(10 * time.Second))
		for err == nil {
			_, _, err = ws.ReadMessage()
		}
		ws.Close()
		if !websocket.IsCloseError(err, websocket.CloseMessageTooBig) {
			t.Fatalf("try %d: after a %d-byte frame the client read %v, want close %d", i+1, len(frame), err, websocket.CloseMessageTooBig)
		}
	}
	waitFor(t, func() bool { return ts.srv.Connections() == 0 })
}
