package web

import (
	"fmt"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/coedit/coedit/collab"
	"github.com/coedit/coedit/ot"
)

// BenchmarkSubmitAck measures one client's op round trip over a real
// WebSocket: submit, transform-free apply, commit (SyncNone), ack.
func BenchmarkSubmitAck(b *testing.B) {
	ts := startServer(b, Options{Logger: quiet, OpsPerSecond: 1e9, OpsBurst: 1e9, MessagesPerSecond: 1e9, MessagesBurst: 1e9}, collab.Options{})
	c := ts.benchConn(b)
	send(b, c, `{"a":"op","c":"bench","d":"ack","v":null,"seq":1,"create":{"type":"text-unicode","data":""}}`)
	recvN(b, c, 1)
	b.ResetTimer()
	for i := range b.N {
		send(b, c, fmt.Sprintf(`{"a":"op","c":"bench","d":"ack","v":%d,"seq":%d,"op":["x"]}`, i+1, i+2))
		recvN(b, c, 1)
	}
}

// BenchmarkBroadcast measures an op's fan-out to 100 subscribers: the
// time from submit until every subscriber has received it.
func BenchmarkBroadcast(b *testing.B) {
	const subs = 100
	ts := startServer(b, Options{Logger: quiet, OpsPerSecond: 1e9, OpsBurst: 1e9, MessagesPerSecond: 1e9, MessagesBurst: 1e9}, collab.Options{})
	p := ts.benchConn(b)
	send(b, p, `{"a":"op","c":"bench","d":"fan","v":null,"seq":1,"create":{"type":"text-unicode","data":""}}`)
	recvN(b, p, 1)
	readers := make([]*websocket.Conn, subs)
	for i := range readers {
		readers[i] = ts.benchConn(b)
		send(b, readers[i], `{"a":"s","c":"bench","d":"fan","v":1}`)
		recvN(b, readers[i], 1)
	}
	done := make(chan error, subs)
	b.ResetTimer()
	for i := range readers {
		go func() { done <- recvNErr(readers[i], b.N) }()
	}
	for i := range b.N {
		send(b, p, fmt.Sprintf(`{"a":"op","c":"bench","d":"fan","v":%d,"seq":%d,"op":["x"]}`, i+1, i+2))
		recvN(b, p, 1)
	}
	for range readers {
		if err := <-done; err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*subs)/b.Elapsed().Seconds(), "deliveries/s")
}

// BenchmarkEncodeBroadcast measures encoding one op message (done once per
// receiving connection).
func BenchmarkEncodeBroadcast(b *testing.B) {
	rec := collab.Record{Version: 12345, Src: "0123456789abcdef0123456789abcdef", Seq: 77, Kind: collab.OpEdit,
		Op: ot.Op{{Kind: ot.KindSkip, N: 120}, {Kind: ot.KindInsert, N: 5, Text: "héllo"}, {Kind: ot.KindDelete, N: 3}}}
	b.ReportAllocs()
	for range b.N {
		m := newMsg("op").str("c", "docs").str("d", "some-document").uint("v", rec.Version).str("src", rec.Src).uint("seq", rec.Seq)
		if err := appendRecordBody(m, rec); err != nil {
			b.Fatal(err)
		}
		_ = m.bytes()
	}
}

// benchConn dials and handshakes.
func (ts *testServer) benchConn(b *testing.B) *websocket.Conn {
	ws, _, err := websocket.DefaultDialer.Dial(ts.wsURL, nil)
	if err != nil {
		b.Fatal(err)
	}
	send(b, ws, `{"a":"hs","id":null}`)
	recvN(b, ws, 1)
	return ws
}

func send(b *testing.B, ws *websocket.Conn, s string) {
	if err := ws.WriteMessage(websocket.TextMessage, []byte(s)); err != nil {
		b.Fatal(err)
	}
}

func recvN(b *testing.B, ws *websocket.Conn, n int) {
	if err := recvNErr(ws, n); err != nil {
		b.Fatal(err)
	}
}

func recvNErr(ws *websocket.Conn, n int) error {
	for range n {
		ws.SetReadDeadline(time.Now().Add(30 * time.Second))
		if _, _, err := ws.ReadMessage(); err != nil {
			return err
		}
	}
	return nil
}
