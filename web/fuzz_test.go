package web

import (
	"bytes"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/coedit/coedit/collab"
)

// Documents of FuzzProtocolFrame. Seed frames target fuzzColl/fuzzDoc;
// the bystander's document has an id the seeds never name, so a frame
// only reaches it if the fuzzer spells it out (then its changes are
// accepted, see targetsBystander).
const (
	fuzzColl     = "docs"
	fuzzDoc      = "fz"
	fuzzText     = "fuzz target text"
	bystanderDoc = "bystander-Q9x7"
	bystanderTxt = "keep me: héllo 😀 wörld"
	// srcMark in a frame is replaced by the fuzz connection's src, so
	// that seeds can submit ops with a src the server accepts.
	srcMark = "@SRC@"
)

// fuzzSeeds are valid and near-valid frames of every action.
var fuzzSeeds = []string{
	// hs
	`{"a":"hs","id":null,"protocol":1,"protocolMinor":2}`,
	`{"a":"hs","id":"` + srcMark + `"}`,
	`{"a":"hs","id":"0123456789abcdef0123456789abcdef","protocol":"1"}`,
	`{"a":"hs","protocol":{"x":1},"protocolMinor":-1}`,
	`{"a":"hs","id":12}`,
	// f, s, u
	`{"a":"f","c":"docs","d":"fz"}`,
	`{"a":"f","c":"docs","d":"fz","v":1}`,
	`{"a":"f","c":"docs","d":"fz","v":-1}`,
	`{"a":"f","c":"docs","d":"fz","v":1e400}`,
	`{"a":"f","c":"docs","d":"fz","v":18446744073709551616}`,
	`{"a":"f","c":"","d":""}`,
	`{"a":"f","c":1,"d":[]}`,
	`{"a":"s","c":"docs","d":"fz","v":null}`,
	`{"a":"s","c":"docs","d":"fz","v":0}`,
	`{"a":"s","c":"docs","d":"fz","v":"3"}`,
	`{"a":"u","c":"docs","d":"fz"}`,
	`{"a":"u","c":"docs"}`,
	// bulk
	`{"a":"bs","c":"docs","b":["fz","other"]}`,
	`{"a":"bs","c":"docs","b":{"fz":0,"other":null}}`,
	`{"a":"bs","c":"docs","b":{"fz":-5}}`,
	`{"a":"bf","c":"docs","b":["fz","fz",""]}`,
	`{"a":"bf","c":"docs","b":7}`,
	`{"a":"bu","c":"docs","b":["fz"]}`,
	`{"a":"bu","c":"docs","b":{"fz":1}}`,
	// op create / edit / del
	`{"a":"op","c":"docs","d":"fz","v":null,"seq":1,"create":{"type":"http://sharejs.org/types/text-unicode","data":"x"}}`,
	`{"a":"op","c":"docs","d":"new","v":null,"seq":1,"create":{"type":"text-unicode","data":"abc"}}`,
	`{"a":"op","c":"docs","d":"new2","seq":1,"create":{"type":"http://sharejs.org/types/JSONv0","data":{}}}`,
	`{"a":"op","c":"docs","d":"new3","seq":1,"create":{"type":"text-unicode","data":5}}`,
	`{"a":"op","c":"docs","d":"fz","v":1,"seq":1,"op":[2,"ab"]}`,
	`{"a":"op","c":"docs","d":"fz","v":1,"src":"` + srcMark + `","seq":2,"op":[{"d":3},"é😀"]}`,
	`{"a":"op","c":"docs","d":"fz","v":0,"src":"someoneelse","seq":1,"op":["x"]}`,
	`{"a":"op","c":"docs","d":"fz","v":1,"seq":1,"op":[1000000,"x"]}`,
	`{"a":"op","c":"docs","d":"fz","v":1,"seq":1,"op":[{"d":1000000}]}`,
	`{"a":"op","c":"docs","d":"fz","v":1,"seq":1,"op":[{"d":"abc"}]}`,
	`{"a":"op","c":"docs","d":"fz","v":1,"seq":1,"op":[0,"",-1,{}]}`,
	`{"a":"op","c":"docs","d":"fz","v":1,"seq":1,"op":"\ud800"}`,
	`{"a":"op","c":"docs","d":"fz","v":1,"seq":1,"op":["\udc00\ud800"]}`,
	`{"a":"op","c":"docs","d":"fz","v":1,"seq":0,"op":["x"]}`,
	`{"a":"op","c":"docs","d":"fz","v":1,"seq":1.5,"op":["x"]}`,
	`{"a":"op","c":"docs","d":"fz","v":99999999999,"seq":1,"op":["x"]}`,
	`{"a":"op","c":"docs","d":"fz","v":1,"seq":1,"op":["x"],"del":true}`,
	`{"a":"op","c":"docs","d":"fz","v":1,"seq":1,"op":null}`,
	`{"a":"op","c":"docs","d":"fz","v":1,"seq":3,"del":true}`,
	`{"a":"op","c":"docs","d":"fz","seq":3,"del":false}`,
	// snapshots at a version or time
	`{"a":"nf","id":1,"c":"docs","d":"fz","v":0}`,
	`{"a":"nf","id":2,"c":"docs","d":"fz","v":null}`,
	`{"a":"nf","id":"x","c":"docs","d":"fz","v":1e20}`,
	`{"a":"nt","id":3,"c":"docs","d":"fz","ts":0}`,
	`{"a":"nt","id":4,"c":"docs","d":"fz","ts":9999999999999}`,
	`{"a":"nt","c":"docs","d":"fz"}`,
	// presence
	`{"a":"p","ch":"docs.fz","src":"` + srcMark + `","id":"p1","p":{"index":1},"pv":0,"c":"docs","d":"fz","v":1,"seq":1}`,
	`{"a":"p","ch":"docs.fz","id":"p1","p":null,"pv":1,"c":"docs","d":"fz","v":1}`,
	`{"a":"p","ch":"docs.fz","id":"p1","p":{"index":1},"c":"docs"}`,
	`{"a":"p","ch":"","id":"","p":[[[[[]]]]]}`,
	`{"a":"ps","ch":"docs.fz","seq":1}`,
	`{"a":"ps","ch":7,"seq":-1}`,
	`{"a":"pu","ch":"docs.fz","seq":2}`,
	`{"a":"pr","ch":"docs.fz"}`,
	`{"a":"pp"}`,
	// queries
	`{"a":"qf","id":1,"c":"docs","q":{}}`,
	`{"a":"qs","id":2,"c":"docs","q":{"$sort":1}}`,
	`{"a":"qu","id":3}`,
	`{"a":"qu","id":"three"}`,
	// unknown and malformed
	`{"a":"zz"}`,
	`{"a":null}`,
	`{"a":1}`,
	`{}`,
	`[]`,
	`null`,
	`"hs"`,
	`12`,
	``,
	`{`,
	`{"a":"f","c":"docs","d":"fz"`,
	`{"a":"f","c":"docs","d":"fz"}{"a":"pp"}`,
	`{"a":"f","a":"pp","c":"docs","d":"fz"}`,
	`{"a":"\ud800","c":"\udfff","d":"\ud800\udc00"}`,
	`{"a":"f","c":"docs","d":"f\u007a"}`,
	"{\"a\":\"f\",\"c\":\"docs\",\"d\":\"\xff\xfe\"}",
	"\xef\xbb\xbf{\"a\":\"pp\"}",
	`{"a":"f","c":"docs","d":"fz","v":1e308}`,
	`{"a":"f","c":"docs","d":"fz","v":-0}`,
	`{"a":"op","c":"docs","d":"fz","v":1,"seq":123456789012345678901234567890,"op":["x"]}`,
	`{"a":"bs","c":"docs","b":{"fz":{"fz":{"fz":[1,[2,[3,{"a":"hs"}]]]}}}}`,
	`{"a":"op","c":{"c":{"c":{}}},"d":[[[["fz"]]]],"op":[[[[[[[[[[]]]]]]]]]]}`,
	`{"a":"p","ch":"docs.fz","id":"p1","p":{"a":{"b":{"c":{"d":{"e":{"f":[1,2,3,"\ud83d"]}}}}}}}`,
}

// FuzzProtocolFrame sends each input as one text frame, after a
// handshake, on a fresh connection to a server shared by the whole run.
// It checks that every reply is a JSON object, that an error reply has a
// non-empty string code, and that a bystander connection still works and
// still sees its own document unchanged.
func FuzzProtocolFrame(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s))
	}
	ts := startServer(f, Options{Logger: quiet,
		MessagesPerSecond: 1e9, MessagesBurst: 1 << 30,
		OpsPerSecond: 1e9, OpsBurst: 1 << 30,
		MaxFrameSize: 64 << 10,
	}, collab.Options{Logger: quiet})
	by := newBystander(f, ts)
	want := bystanderTxt

	f.Fuzz(func(t *testing.T, frame []byte) {
		by.t = t
		fz := ts.connect(t)
		frame = bytes.ReplaceAll(frame, []byte(srcMark), []byte(fz.src))
		if err := fz.ws.WriteMessage(websocket.TextMessage, frame); err != nil {
			t.Fatalf("WriteMessage(%q): %v", frame, err)
		}
		// A fetch of the target document is answered after whatever
		// the frame asked of it; other replies may come a little later.
		barrier := fmt.Sprintf(`{"a":"f","c":%q,"d":%q,"v":999999999}`, fuzzColl, fuzzDoc)
		fz.ws.WriteMessage(websocket.TextMessage, []byte(barrier))
		readFuzzReplies(t, fz, frame)
		fz.ws.Close()

		// The bystander still gets answers, and its document changed
		// only if the frame named it.
		by.sendRaw(`{"a":"pp"}`)
		by.expect(`{"a":"pp"}`)
		got, typ := by.fetchText(bystanderDoc)
		if targetsBystander(frame) {
			want = got
		} else if got != want || typ == "" {
			t.Fatalf("after frame %q the bystander's document is %q (type %q), want %q", frame, got, typ, want)
		}
		// Keep the target document alive for the next input.
		if _, typ := by.fetchText(fuzzDoc); typ == "" {
			by.recreate()
		}
	})
}

// readFuzzReplies reads fz's replies until the barrier fetch is answered
// (then for a short while more) or the server closes the connection, and
// checks each one.
func readFuzzReplies(t *testing.T, fz *tclient, frame []byte) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	barrierSeen := false
	for {
		if barrierSeen {
			deadline = time.Now().Add(5 * time.Millisecond)
		}
		fz.ws.SetReadDeadline(deadline)
		typ, data, err := fz.ws.ReadMessage()
		if err != nil {
			if barrierSeen || isCloseErr(err) {
				return
			}
			t.Fatalf("after frame %q: no answer to a fetch and no close: %v", frame, err)
		}
		if typ != websocket.TextMessage {
			t.Fatalf("after frame %q: reply of frame type %d, want text", frame, typ)
		}
		// Echoed fields may hold numbers beyond float64 (1e400): valid
		// JSON, so they are decoded as json.Number.
		var m map[string]any
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.UseNumber()
		if err := dec.Decode(&m); err != nil || m == nil || dec.More() {
			t.Fatalf("after frame %q: reply %q is not a JSON object: %v", frame, data, err)
		}
		if e, ok := m["error"]; ok {
			em, _ := e.(map[string]any)
			code, _ := em["code"].(string)
			msg, _ := em["message"].(string)
			if code == "" || msg == "" {
				t.Fatalf("after frame %q: error reply %s, want a non-empty string code and message", frame, data)
			}
			continue
		}
		if m["a"] == "f" && m["c"] == fuzzColl && m["d"] == fuzzDoc {
			barrierSeen = true
		}
	}
}

// isCloseErr reports whether err is the server closing the WebSocket.
func isCloseErr(err error) bool {
	_, ok := err.(*websocket.CloseError)
	return ok
}

// targetsBystander reports whether frame, read as JSON, names the
// bystander's document as "d" or among the ids of "b".
func targetsBystander(frame []byte) bool {
	var m map[string]json.RawMessage
	if json.Unmarshal(frame, &m) != nil {
		return bytes.Contains(frame, []byte(bystanderDoc))
	}
	var d string
	if json.Unmarshal(m["d"], &d) == nil && d == bystanderDoc {
		return true
	}
	var ids []string
	if json.Unmarshal(m["b"], &ids) == nil {
		for _, id := range ids {
			if id == bystanderDoc {
				return true
			}
		}
	}
	var vs map[string]json.RawMessage
	if json.Unmarshal(m["b"], &vs) == nil {
		_, ok := vs[bystanderDoc]
		return ok
	}
	return false
}

// bystander is a connection that lives through a whole fuzz run.
type bystander struct {
	*tclient
	seq int
}

// newBystander connects, handshakes and creates the bystander's and the
// fuzz target's documents; it cannot use tclient's helpers, which need a
// *testing.T.
func newBystander(f *testing.F, ts *testServer) *bystander {
	f.Helper()
	ws, _, err := websocket.DefaultDialer.Dial(ts.wsURL, nil)
	if err != nil {
		f.Fatalf("Dial(%s): %v", ts.wsURL, err)
	}
	f.Cleanup(func() { ws.Close() })
	roundTrip := func(req string) map[string]any {
		if err := ws.WriteMessage(websocket.TextMessage, []byte(req)); err != nil {
			f.Fatalf("WriteMessage(%s): %v", req, err)
		}
		ws.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, data, err := ws.ReadMessage()
		if err != nil {
			f.Fatalf("reply to %s: %v", req, err)
		}
		var m map[string]any
		if err := json.Unmarshal(data, &m); err != nil {
			f.Fatalf("reply to %s = %q, not JSON: %v", req, data, err)
		}
		if _, bad := m["error"]; bad {
			f.Fatalf("reply to %s = %s, want no error", req, data)
		}
		return m
	}
	hs := roundTrip(`{"a":"hs","id":null,"protocol":1,"protocolMinor":2}`)
	src, _ := hs["id"].(string)
	for i, d := range []struct{ id, text string }{{bystanderDoc, bystanderTxt}, {fuzzDoc, fuzzText}} {
		roundTrip(fmt.Sprintf(`{"a":"op","c":%q,"d":%q,"v":null,"seq":%d,"create":{"type":%q,"data":%s}}`,
			fuzzColl, d.id, i+1, textURI, jsonString(d.text)))
	}
	return &bystander{tclient: &tclient{ws: ws, src: src}, seq: 2}
}

// fetchText fetches coll/id and returns its text and type.
func (b *bystander) fetchText(id string) (text, typ string) {
	b.t.Helper()
	b.sendf(`{"a":"f","c":%q,"d":%q}`, fuzzColl, id)
	m := b.recv()
	data, ok := m["data"].(map[string]any)
	if m["a"] != "f" || m["d"] != id || !ok {
		b.t.Fatalf("fetch of %s answered %s, want its snapshot", id, mustJSON(m))
	}
	text, _ = data["data"].(string)
	typ, _ = data["type"].(string)
	return text, typ
}

// recreate creates the fuzz target document again after a frame deleted
// it; the ack's version is wherever the deleted document had got to.
func (b *bystander) recreate() {
	b.t.Helper()
	b.seq++
	b.sendf(`{"a":"op","c":%q,"d":%q,"v":null,"seq":%d,"create":{"type":%q,"data":%s}}`,
		fuzzColl, fuzzDoc, b.seq, textURI, jsonString(fuzzText))
	m := b.recv()
	if m["a"] != "op" || m["d"] != fuzzDoc || m["seq"] != float64(b.seq) || m["error"] != nil {
		b.t.Fatalf("re-create of %s answered %s, want an ack of seq %d", fuzzDoc, mustJSON(m), b.seq)
	}
}
