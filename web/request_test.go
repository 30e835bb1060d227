package web

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"testing"

	"github.com/coedit/coedit/ot"
)

// requestCases are frames for the decoder's differential tests: what a
// client sends, and the corners of JSON objects.
var requestCases = []string{
	`{"a":"op","c":"docs","d":"x","v":2,"seq":3,"x":{},"op":[5," world"]}`,
	`{"a":"op","c":"c","d":"d","v":null,"seq":1,"create":{"type":"text-unicode","data":"a\u00e9\ud83d\ude00"}}`,
	`{"a":"s","c":"docs","d":"x","v":null}`,
	`{"a":"hs","id":null}`,
	`{"a":"p","ch":"room","id":"me","p":{"index":1,"length":0},"pv":1}`,
	`{"a":"bs","c":"docs","b":{"x":1,"y":[2,{"z":"}]\"{"}]}}`,
	` { "a" : "pp" , "b" : [ 1 , 2 ] } `,
	"{\n\t\"a\":\r\"pp\"}",
	`{}`,
	`{"a":"op","a":"s"}`,
	`{"a":1,"a":null}`,
	`{"\u0061":"pp"}`,
	`{"a\"b":1,"a\\b":2,"\/":3,"\ud800":4,"\ud83d\ude00":5,"é":6}`,
	`{"a":"\ud800"}`,
	`{"a":"x\\y","b":"\"","c":"\u0000"}`,
	`{"n":-1.5e+3,"t":true,"f":false,"z":0,"big":1e400}`,
	`{"":""}`,
	`{"a":[[[[]]]],"b":{"c":{"d":{}}}}`,
	"{\"k\xff\":1,\"v\":\"\xfe\"}",
	`null`,
	` null `,
	`[]`,
	`"a"`,
	`1`,
	`true`,
	``,
	` `,
	`{`,
	`{"a"}`,
	`{"a":}`,
	`{"a":1,}`,
	`{"a":1}}`,
	`{"a":1} x`,
	`{'a':1}`,
	`{"a":01}`,
	`{"a":"` + "\x01" + `"}`,
	`{"a":"\x"}`,
	`{"a":[1,2}`,
	`{a:1}`,
}

// referenceFields is what the decoder replaced: json.Unmarshal into a map.
func referenceFields(data []byte) (map[string]json.RawMessage, error) {
	var m map[string]json.RawMessage
	err := json.Unmarshal(data, &m)
	return m, err
}

// checkSplit compares splitObject with encoding/json on data.
func checkSplit(t *testing.T, data []byte) {
	t.Helper()
	want, wantErr := referenceFields(data)
	fields, isNull, err := splitObject(data, nil)
	if fmt.Sprint(err) != fmt.Sprint(wantErr) {
		t.Fatalf("splitObject(%q) error %v, want %v", data, err, wantErr)
	}
	if wantErr != nil {
		return
	}
	if isNull != (want == nil) {
		t.Fatalf("splitObject(%q) isNull = %v, want %v", data, isNull, want == nil)
	}
	got := make(map[string]json.RawMessage)
	for _, f := range fields {
		got[string(f.name)] = f.value // the last value wins, as in the map
	}
	if want == nil {
		want = map[string]json.RawMessage{}
	}
	if !maps.EqualFunc(got, want, func(a, b json.RawMessage) bool { return string(a) == string(b) }) {
		t.Fatalf("splitObject(%q) = %q, want %q", data, got, want)
	}
	r := &request{more: fields}
	if len(fields) == 0 {
		r.more = []field{}
	}
	for k, v := range want {
		if g, ok := r.value(k); !ok || string(g) != string(v) {
			t.Fatalf("splitObject(%q): value(%q) = %q, %v, want %q", data, k, g, ok, v)
		}
	}
}

// TestSplitObjectMatchesEncodingJSON: the hand-written decoder takes the
// same frames as encoding/json did, with the same keys and raw values and
// the same error text for the rest.
func TestSplitObjectMatchesEncodingJSON(t *testing.T) {
	for _, c := range requestCases {
		checkSplit(t, []byte(c))
	}
}

func FuzzSplitObject(f *testing.F) {
	for _, c := range requestCases {
		f.Add([]byte(c))
	}
	f.Fuzz(checkSplit)
}

// TestEchoKeepsLastOfRepeatedKeys: an error reply echoes each key once,
// with its last value, as the map did.
func TestEchoKeepsLastOfRepeatedKeys(t *testing.T) {
	r := new(request)
	if perr := parseRequest([]byte(`{"a":"zz","x":1,"x":2,"error":3,"\u0079":4}`), r); perr != nil {
		t.Fatal(perr)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(echoError(r, newError(CodeUnknownAction, "m")), &m); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"a": `"zz"`, "x": "2", "y": "4", "error": `{"code":"ERR_UNKNOWN_ACTION","message":"m"}`}
	if len(m) != len(want) {
		t.Fatalf("echo = %s, want %v", m, want)
	}
	for k, v := range want {
		if string(m[k]) != v {
			t.Fatalf("echo[%q] = %s, want %s", k, m[k], v)
		}
	}
}

// referenceString and referenceUint are the decoders before the fast
// paths.
func referenceString(v []byte) (string, error) {
	if len(v) < 2 || v[0] != '"' {
		return "", fmt.Errorf("want a string, got %s", clip(v))
	}
	if err := ot.CheckSurrogates(v); err != nil {
		return "", err
	}
	var s string
	if err := json.Unmarshal(v, &s); err != nil {
		return "", fmt.Errorf("want a string: %v", err)
	}
	return s, nil
}

func referenceUint(v []byte) (uint64, error) {
	if len(v) == 0 || len(v) > 16 {
		return 0, fmt.Errorf("want a non-negative integer, got %s", clip(v))
	}
	for i, b := range v {
		if b < '0' || b > '9' || (i == 0 && b == '0' && len(v) > 1) {
			return 0, fmt.Errorf("want a non-negative integer, got %s", clip(v))
		}
	}
	n, err := strconv.ParseUint(string(v), 10, 64)
	if err != nil || n > maxSafeInteger {
		return 0, fmt.Errorf("want an integer at most 2^53-1, got %s", clip(v))
	}
	return n, nil
}

var scalarCases = []string{
	`"abc"`, `""`, `"é😀"`, `"a\"b"`, `"a\\b"`, `"\u0041"`, `"\ud800"`, `"\udc00\ud800"`, `"\ud83d\ude00"`,
	"\"\x01\"", "\"\xff\"", "\"a\xc3\"", `"a"b"`, `"abc`, `"`, `abc"`, `x`, `null`, `12`,
	`0`, `1`, `01`, `-1`, `1.5`, `1e3`, `9007199254740991`, `9007199254740992`, `9999999999999999`,
	`99999999999999999`, `18446744073709551615`, `+1`, ` 1`, ``,
}

func checkScalar(t *testing.T, v []byte) {
	t.Helper()
	s, err := decodeString(v)
	ws, werr := referenceString(v)
	if s != ws || fmt.Sprint(err) != fmt.Sprint(werr) {
		t.Fatalf("decodeString(%q) = %q, %v, want %q, %v", v, s, err, ws, werr)
	}
	n, err := decodeUint(v)
	wn, werr := referenceUint(v)
	if n != wn || fmt.Sprint(err) != fmt.Sprint(werr) {
		t.Fatalf("decodeUint(%q) = %d, %v, want %d, %v", v, n, err, wn, werr)
	}
}

// TestScalarsMatchReference: decodeString and decodeUint give what they
// gave before their fast paths, errors included.
func TestScalarsMatchReference(t *testing.T) {
	for _, c := range scalarCases {
		checkScalar(t, []byte(c))
	}
}

func FuzzScalars(f *testing.F) {
	for _, c := range scalarCases {
		f.Add([]byte(c))
	}
	f.Fuzz(checkScalar)
}

// BenchmarkDecodeSubmit compares the decoding of a typical op frame, up to
// the submission, with encoding/json's map (what parseRequest used).
func BenchmarkDecodeSubmit(b *testing.B) {
	frame := []byte(`{"a":"op","c":"bench","d":"doc-0042","v":1234,"src":"0123456789abcdef0123456789abcdef","seq":77,"x":{},"op":[120,"héllo",{"d":3}]}`)
	b.Run("splitObject", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			var r request
			if perr := parseRequest(frame, &r); perr != nil {
				b.Fatal(perr)
			}
			if _, perr := parseSubmission(&r, 1<<20); perr != nil {
				b.Fatal(perr)
			}
			if _, perr := r.key(256); perr != nil {
				b.Fatal(perr)
			}
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			m, err := referenceFields(frame)
			if err != nil {
				b.Fatal(err)
			}
			for _, k := range []string{"a", "c", "d", "src"} {
				if _, err := referenceString(m[k]); err != nil {
					b.Fatal(err)
				}
			}
			for _, k := range []string{"v", "seq"} {
				if _, err := referenceUint(m[k]); err != nil {
					b.Fatal(err)
				}
			}
			if _, err := ot.Decode(m["op"]); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// TestEveryListedActionIsDispatched: actions, the names parseRequest
// interns, and run's switch name the same messages. A message with
// nothing but a listed action reaches its handler, which answers it with
// a reply or an error of its own, never ERR_UNKNOWN_ACTION; a name not
// in the list gets ERR_UNKNOWN_ACTION.
func TestEveryListedActionIsDispatched(t *testing.T) {
	srv, hub := benchServer(t)
	for _, a := range append(slices.Clone(actions), "zz") {
		c := benchConn(t, srv, "src-"+a)
		c.handle([]byte(`{"a":"` + a + `"}`))
		c.mu.Lock()
		replies := c.queue
		c.queue, c.queuedBytes = nil, 0
		c.mu.Unlock()
		unknown := false
		for _, f := range replies {
			unknown = unknown || bytes.Contains(f, []byte(CodeUnknownAction))
		}
		if want := a == "zz"; unknown != want {
			t.Errorf("%q: replies %q, want ERR_UNKNOWN_ACTION: %v", a, replies, want)
		}
		close(c.stop)
		hub.Disconnect(c)
	}
}
