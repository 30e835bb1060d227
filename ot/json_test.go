package ot

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestDecode(t *testing.T) {
	tests := []struct {
		in   string
		want Op
	}{
		{`[]`, Op{}},
		{" \t\r\n[ ]\n", Op{}},
		{` [ 1 , "a" ] `, Op{{KindSkip, 1, ""}, {KindInsert, 1, "a"}}},
		{`[1e2,"x"]`, Op{{KindSkip, 100, ""}, {KindInsert, 1, "x"}}},
		{`[1E+2,"x"]`, Op{{KindSkip, 100, ""}, {KindInsert, 1, "x"}}},
		{`[1.0,"x"]`, Op{{KindSkip, 1, ""}, {KindInsert, 1, "x"}}},
		{`[1.5e1,"x"]`, Op{{KindSkip, 15, ""}, {KindInsert, 1, "x"}}},
		{`[100e-2,"x"]`, Op{{KindSkip, 1, ""}, {KindInsert, 1, "x"}}},
		{`[0.25e2,"x"]`, Op{{KindSkip, 25, ""}, {KindInsert, 1, "x"}}},
		{`[9007199254740990,"x"]`, Op{{KindSkip, 9007199254740990, ""}, {KindInsert, 1, "x"}}},
		{`["\u00e9\ud83d\ude00"]`, Op{{KindInsert, 2, "é😀"}}},
		{`["\uD83D\uDE00"]`, Op{{KindInsert, 1, "😀"}}},
		{`["é😀中"]`, Op{{KindInsert, 3, "é😀中"}}},
		{`["\"\\\/\b\f\n\r\t\u0000"]`, Op{{KindInsert, 9, "\"\\/\b\f\n\r\t\x00"}}},
		{`["e\u0301"]`, Op{{KindInsert, 2, "e\u0301"}}},
		{`["\ufffd"]`, Op{{KindInsert, 1, "\ufffd"}}},
		{`[{"d":3}]`, Op{{KindDelete, 3, ""}}},
		{`[{ "d" : "a😀" }]`, Op{{KindDelete, 2, "a😀"}}},
		{`[{"\u0064":1}]`, Op{{KindDelete, 1, ""}}},
		{`["a","b"]`, Op{{KindInsert, 1, "a"}, {KindInsert, 1, "b"}}},
		{`[{"d":1},{"d":"x"},2,"y"]`, Op{{KindDelete, 1, ""}, {KindDelete, 1, "x"}, {KindSkip, 2, ""}, {KindInsert, 1, "y"}}},
	}
	for _, tt := range tests {
		got, err := Decode([]byte(tt.in))
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("Decode(%s) = %#v, %v, want %#v", tt.in, got, err, tt.want)
			continue
		}
		if err := got.Validate(); err != nil {
			t.Errorf("Decode(%s) = %v, which does not validate: %v", tt.in, got, err)
		}
	}
}

func TestDecodeErrors(t *testing.T) {
	tests := []struct {
		in     string
		index  int // component, -1 for none
		offset int
		reason string
	}{
		{``, -1, 0, "empty input"},
		{`   `, -1, 3, "empty input"},
		{`null`, -1, 0, "must be a JSON array, found null"},
		{`{"d":1}`, -1, 0, "must be a JSON array, found an object"},
		{`"x"`, -1, 0, "must be a JSON array, found a string"},
		{`[`, 0, 1, "unterminated array"},
		{`[1,"x"`, 1, 6, "unterminated array"},
		{`[1,]`, 1, 3, "found ']'"},
		{`[,1]`, 0, 1, "found ','"},
		{`[1 "x"]`, 0, 3, "expected ',' or ']'"},
		{`[1,"x"] x`, -1, 8, "unexpected data after the op"},
		{`[1,"x"][]`, -1, 7, "unexpected data after the op"},
		{`[null]`, 0, 1, "found null"},
		{`[true]`, 0, 1, "found a boolean"},
		{`[[1]]`, 0, 1, "found an array"},
		{`[0,"x"]`, 0, 1, "skip must be positive, got 0"},
		{`[-0,"x"]`, 0, 1, "skip must be positive, got 0"},
		{`[-1,"x"]`, 0, 1, "skip must not be negative"},
		{`[1.5,"x"]`, 0, 1, "skip must be an integer, got 1.5"},
		{`[1e-1,"x"]`, 0, 1, "must be an integer"},
		{`[15E-1,"x"]`, 0, 1, "must be an integer"},
		{`[1e400,"x"]`, 0, 1, "larger than 9007199254740991"},
		{`[1e99999999999999999999,"x"]`, 0, 1, "larger than"},
		{`[9007199254740992,"x"]`, 0, 1, "larger than"},
		{`[123456789012345678901234567890,"x"]`, 0, 1, "larger than"},
		{`[01,"x"]`, 0, 1, "leading zero"},
		{`[1.,"x"]`, 0, 1, "no digits after '.'"},
		{`[.5,"x"]`, 0, 1, "found '.'"},
		{`[+1,"x"]`, 0, 1, "found '+'"},
		{`[1e,"x"]`, 0, 1, "no digits in exponent"},
		{`[-,"x"]`, 0, 1, "invalid number"},
		{`[NaN]`, 0, 1, "found 'N'"},
		{`[""]`, 0, 1, "empty insert"},
		{`[1,""]`, 1, 3, "empty insert"},
		{`[{"d":""}]`, 0, 6, "empty delete text"},
		{`[{"d":0}]`, 0, 6, "delete length must be positive"},
		{`[{"d":-3}]`, 0, 6, "must not be negative"},
		{`[{"d":2.5}]`, 0, 6, "must be an integer"},
		{`[{}]`, 0, 1, "empty object"},
		{`[{"d":1,"d":2}]`, 0, 8, `repeated key "d"`},
		{`[{"x":1}]`, 0, 2, `unknown key "x"`},
		{`[{"d":1,"e":1}]`, 0, 8, `unknown key "e"`},
		{`[{"D":1}]`, 0, 2, `unknown key "D"`},
		{`[{"d":null}]`, 0, 6, "found null"},
		{`[{"d":true}]`, 0, 6, "found a boolean"},
		{`[{"d":[1]}]`, 0, 6, "found an array"},
		{`[{"d":{"d":1}}]`, 0, 6, "found an object"},
		{`[{d:1}]`, 0, 2, "expected a string key"},
		{`[{"d" 1}]`, 0, 6, "expected ':'"},
		{`[{"d":1]`, 0, 7, "expected ',' or '}'"},
		{`[{"d":1`, 0, 7, "unterminated object"},
		{`[1,1,"x"]`, 1, 3, "two skips in a row"},
		{`[1,"x",2]`, 2, 7, "trailing skip"},
		{`[3]`, 0, 1, "trailing skip"},
		{`[9007199254740991,"x"]`, 1, 18, "spans more than"},
		{`[{"d":9007199254740991},{"d":1}]`, 1, 24, "spans more than"},
		{`["\ud800"]`, 0, 2, `high surrogate \ud800 not followed by a low surrogate escape`},
		{`["\ud800x"]`, 0, 2, "not followed by a low surrogate"},
		{`["a\udc00"]`, 0, 3, `lone low surrogate \udc00`},
		{`["\ud800\u0041"]`, 0, 2, `followed by \u0041, not a low surrogate`},
		{`["\ud800\ud800"]`, 0, 2, "not a low surrogate"},
		{`["\ud800\u12"]`, 0, 8, "want four hex digits"},
		{`["\ud800\n"]`, 0, 2, "not followed by a low surrogate"},
		{`["\u12"]`, 0, 2, "want four hex digits"},
		{`["\u12g4"]`, 0, 2, "want four hex digits"},
		{`["\x"]`, 0, 2, `invalid escape "\\x"`},
		{`["\`, 0, 2, "unterminated string"},
		{`["abc`, 0, 1, "unterminated string"},
		{`["a\nb` + "\x01", 0, 6, "control character 0x01"},
		{"[\"a\x01\"]", 0, 3, "control character 0x01"},
		{"[\"a\tb\"]", 0, 3, "control character 0x09"},
		{"[\"\xff\"]", 0, 2, "invalid UTF-8"},
		{"[\"ab\xc3\"]", 0, 4, "invalid UTF-8"},
		{"[\"\xed\xa0\x80\"]", 0, 2, "invalid UTF-8"},
		{"[\"\\n\xed\xa0\x80\"]", 0, 4, "invalid UTF-8"},
		{"[\"\xc0\xaf\"]", 0, 2, "invalid UTF-8"},
		{"[{\"d\":\"\xff\"}]", 0, 7, "invalid UTF-8"},
		{"[{\"\xff\":1}]", 0, 3, "invalid UTF-8"},
		{"\xef\xbb\xbf[]", -1, 0, "must be a JSON array, found byte 0xef"},
	}
	for _, tt := range tests {
		got, err := Decode([]byte(tt.in))
		var de *DecodeError
		if !errors.As(err, &de) || !errors.Is(err, ErrInvalidOp) {
			t.Errorf("Decode(%q) = %v, %v, want a *DecodeError wrapping ErrInvalidOp", tt.in, got, err)
			continue
		}
		if de.Index != tt.index || de.Offset != tt.offset || !strings.Contains(de.Reason, tt.reason) {
			t.Errorf("Decode(%q) = %q (component %d, byte %d), want component %d, byte %d, saying %q", tt.in, err, de.Index, de.Offset, tt.index, tt.offset, tt.reason)
		}
		if got != nil {
			t.Errorf("Decode(%q) = %v with an error, want nil", tt.in, got)
		}
	}
}

func TestDecodeErrorMessage(t *testing.T) {
	_, err := Decode([]byte(`[1,1,"x"]`))
	const want = "ot: invalid op: component 1 (byte 3): two skips in a row; the reference wants them combined"
	if err == nil || err.Error() != want {
		t.Errorf("Decode([1,1,\"x\"]) = %v, want %q", err, want)
	}
	_, err = Decode([]byte(`["a"] x`))
	const want2 = "ot: invalid op: byte 6: unexpected data after the op"
	if err == nil || err.Error() != want2 {
		t.Errorf("Decode([\"a\"] x) = %v, want %q", err, want2)
	}
}

func TestMarshal(t *testing.T) {
	tests := []struct {
		op   Op
		want string
	}{
		{nil, `[]`},
		{Op{}, `[]`},
		{algOp(t, `[3,"hi",{"d":2},4,{"d":"lost"}]`), `[3,"hi",{"d":2},4,{"d":"lost"}]`},
		// What JSON.stringify gives: escape '"', '\' and control
		// characters only; keep the rest, DEL and U+2028 included, as UTF-8.
		{Op{{KindInsert, 13, "a\"b\\c\n\x01\x7f😀\u2028/\t\x1f"}}, "[\"a\\\"b\\\\c\\n\\u0001\x7f😀\u2028/\\t\\u001f\"]"},
		{Op{{KindInsert, 5, "\b\f\r\x00<"}}, `["\b\f\r\u0000<"]`},
		{Op{{KindDelete, 1, "é"}}, `[{"d":"é"}]`},
		{Op{{KindSkip, MaxLen - 1, ""}, {KindDelete, 1, ""}}, `[9007199254740990,{"d":1}]`},
	}
	for _, tt := range tests {
		got, err := tt.op.MarshalJSON()
		if err != nil || string(got) != tt.want {
			t.Errorf("%#v.MarshalJSON() = %s, %v, want %s", tt.op, got, err, tt.want)
			continue
		}
		back, err := Decode(got)
		if err != nil || back.String() != tt.want {
			t.Errorf("Decode(%s) = %v, %v, want the same op back", got, back, err)
		}
	}
}

func TestMarshalInvalid(t *testing.T) {
	for _, op := range []Op{
		algLoose(t, `[1]`),
		{{KindInsert, 1, "\xff"}},
		{{KindInsert, 0, ""}},
	} {
		if got, err := op.MarshalJSON(); !errors.Is(err, ErrInvalidOp) {
			t.Errorf("%#v.MarshalJSON() = %s, %v, want ErrInvalidOp", op, got, err)
		}
	}
}

// TestEncodingJSON checks the codec through encoding/json, as protocol
// messages use it: strictness survives, since encoding/json hands the raw
// bytes (lone surrogate escapes included) to UnmarshalJSON.
func TestEncodingJSON(t *testing.T) {
	type msg struct {
		A  string `json:"a"`
		Op Op     `json:"op"`
	}
	var m msg
	if err := json.Unmarshal([]byte(`{"a":"op","op":[1,"😀",{"d":"x"}]}`), &m); err != nil {
		t.Fatal(err)
	}
	if got := m.Op.String(); got != `[1,"😀",{"d":"x"}]` {
		t.Errorf("decoded op = %s, want [1,\"😀\",{\"d\":\"x\"}]", got)
	}
	out, err := json.Marshal(m)
	if err != nil || string(out) != `{"a":"op","op":[1,"😀",{"d":"x"}]}` {
		t.Errorf("json.Marshal(%+v) = %s, %v", m, out, err)
	}
	for _, in := range []string{
		`{"op":["\ud800"]}`,
		`{"op":["a\udc00b"]}`,
		`{"op":[1]}`,
		`{"op":[1.5,"x"]}`,
		`{"op":null}`,
		`{"op":[{"d":1,"x":1}]}`,
	} {
		var m msg
		if err := json.Unmarshal([]byte(in), &m); !errors.Is(err, ErrInvalidOp) {
			t.Errorf("json.Unmarshal(%s) = %v, want ErrInvalidOp", in, err)
		}
	}
	if _, err := json.Marshal(msg{Op: Op{{KindSkip, 1, ""}}}); !errors.Is(err, ErrInvalidOp) {
		t.Errorf("json.Marshal of an op with a trailing skip = %v, want ErrInvalidOp", err)
	}
}

func TestDecodePresence(t *testing.T) {
	good := []struct {
		in   string
		want Presence
	}{
		{`{"index":3,"length":0}`, Presence{3, 0}},
		{` { "length" : 2 , "index" : 0 } `, Presence{0, 2}},
		{`{"index":9007199254740991,"length":1e3}`, Presence{MaxLen, 1000}},
	}
	for _, tt := range good {
		got, err := DecodePresence([]byte(tt.in))
		if err != nil || got != tt.want {
			t.Errorf("DecodePresence(%s) = %+v, %v, want %+v", tt.in, got, err, tt.want)
		}
		if back, err := DecodePresence(EncodePresence(got)); err != nil || back != got {
			t.Errorf("DecodePresence(EncodePresence(%+v)) = %+v, %v", got, back, err)
		}
	}
	bad := []struct{ in, reason string }{
		{``, "must be a JSON object"},
		{`null`, "must be a JSON object"},
		{`[1,2]`, "must be a JSON object"},
		{`{}`, `missing "index" and "length"`},
		{`{"index":1}`, `missing "length"`},
		{`{"length":1}`, `missing "index"`},
		{`{"index":-1,"length":0}`, "must not be negative"},
		{`{"index":1.5,"length":0}`, "must be an integer"},
		{`{"index":1,"length":"2"}`, "must be a non-negative integer"},
		{`{"index":1,"length":0,"x":1}`, `unknown key "x"`},
		{`{"index":1,"index":2,"length":0}`, `repeated key "index"`},
		{`{"index":1,"length":0} 1`, "unexpected data"},
		{`{"index":1,"length":0`, "unterminated object"},
		{`{"index":9007199254740992,"length":0}`, "larger than"},
	}
	for _, tt := range bad {
		got, err := DecodePresence([]byte(tt.in))
		var de *DecodeError
		if !errors.As(err, &de) || !errors.Is(err, ErrInvalidPresence) || !strings.Contains(err.Error(), tt.reason) {
			t.Errorf("DecodePresence(%s) = %+v, %v, want an ErrInvalidPresence saying %q", tt.in, got, err, tt.reason)
		}
	}
	if got := string(EncodePresence(Presence{4, 2})); got != `{"index":4,"length":2}` {
		t.Errorf("EncodePresence({4 2}) = %s", got)
	}
	std, _ := json.Marshal(Presence{4, 2})
	if !bytes.Equal(std, EncodePresence(Presence{4, 2})) {
		t.Errorf("EncodePresence({4 2}) differs from encoding/json's %s", std)
	}
}

func TestCheckSurrogates(t *testing.T) {
	for _, tc := range []struct {
		in string
		ok bool
	}{
		{`"plain"`, true},
		{`"\ud83d\ude00"`, true},  // a pair: 😀
		{`"\u00e9\\ud800"`, true}, // an escaped backslash, not an escape
		{`"\ud800"`, false},       // lone high
		{`"\ude00"`, false},       // lone low
		{`"\ud800x"`, false},      // high then a plain character
		{`"\ud800\u0041"`, false}, // high then a non-surrogate escape
		{`{"b":["\udfff"]}`, false},
		{`"\u12"`, true}, // malformed escape: left to the decoder
	} {
		if err := CheckSurrogates([]byte(tc.in)); (err == nil) != tc.ok {
			t.Errorf("CheckSurrogates(%s) = %v, want ok %v", tc.in, err, tc.ok)
		}
	}
}
