package relay

import (
	"context"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// TestRelayAcksAndCopies checks the relay's whole protocol on real
// sockets: a handshake issues distinct srcs, a subscribe reports the
// version and whether the document exists, an op gets an ack at the next
// version while the other subscriber gets the frame byte for byte, and a
// second create is refused.
func TestRelayAcksAndCopies(t *testing.T) {
	rl := New()
	hs := httptest.NewServer(rl)
	defer func() {
		hs.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := rl.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
	}()
	url := "ws" + strings.TrimPrefix(hs.URL, "http")
	dial := func() *websocket.Conn {
		ws, _, err := websocket.DefaultDialer.Dial(url, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ws.Close() })
		return ws
	}
	exchange := func(ws *websocket.Conn, send, want string) {
		t.Helper()
		if send != "" {
			if err := ws.WriteMessage(websocket.TextMessage, []byte(send)); err != nil {
				t.Fatal(err)
			}
		}
		ws.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, got, err := ws.ReadMessage()
		if err != nil || string(got) != want {
			t.Fatalf("after %s: got %s, %v; want %s", send, got, err, want)
		}
	}
	a, b := dial(), dial()
	// The srcs are numbered as the upgrades finish on the server, which
	// need not be the order of the dials: either connection may get 1.
	hsReply := func(src int) string {
		return fmt.Sprintf(`{"a":"hs","protocol":1,"protocolMinor":2,"id":"%032x","type":"http://sharejs.org/types/JSONv0"}`, src)
	}
	handshake := func(ws *websocket.Conn) string {
		t.Helper()
		if err := ws.WriteMessage(websocket.TextMessage, []byte(`{"a":"hs","id":null}`)); err != nil {
			t.Fatal(err)
		}
		ws.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, got, err := ws.ReadMessage()
		if err != nil || string(got) != hsReply(1) && string(got) != hsReply(2) {
			t.Fatalf("after hs: got %s, %v; want %s or %s", got, err, hsReply(1), hsReply(2))
		}
		return string(got)
	}
	if ha, hb := handshake(a), handshake(b); ha == hb {
		t.Fatalf("both connections were issued %s", ha)
	}
	exchange(a, `{"a":"s","c":"c","d":"x","v":null}`, `{"a":"s","c":"c","d":"x","data":{"v":0,"data":"","type":null}}`)
	exchange(a, `{"a":"op","c":"c","d":"x","src":"s1","seq":1,"v":null,"create":{"type":"t"}}`, `{"src":"s1","seq":1,"v":0,"a":"op","c":"c","d":"x"}`)
	exchange(b, `{"a":"s","c":"c","d":"x","v":null}`, `{"a":"s","c":"c","d":"x","data":{"v":1,"data":"","type":"http://sharejs.org/types/text-unicode"}}`)
	op := `{"a":"op","c":"c","d":"x","src":"s2","v":1,"seq":1,"op":[2,"é😀"]}`
	exchange(b, op, `{"src":"s2","seq":1,"v":1,"a":"op","c":"c","d":"x"}`)
	exchange(a, "", op)
	exchange(b, `{"a":"op","c":"c","d":"x","src":"s2","seq":2,"v":null,"create":{}}`,
		`{"a":"op","c":"c","d":"x","src":"s2","seq":2,"error":{"code":"ERR_DOC_ALREADY_CREATED","message":"relay: document already created"}}`)
	exchange(a, `{"a":"pp"}`, `{"a":"pp"}`)
}
