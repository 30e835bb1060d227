package wire

import (
	"encoding/json"
	"testing"
)

// TestScanMatchesEncodingJSON checks, for frames the way ShareDB servers
// and clients write them, that every kept key holds exactly the raw value
// encoding/json finds for it at the top level, and that nested keys of the
// same name are not mistaken for top-level ones.
func TestScanMatchesEncodingJSON(t *testing.T) {
	frames := []string{
		`{"a":"hs","protocol":1,"protocolMinor":2,"id":"8f2c","type":"http://sharejs.org/types/JSONv0"}`,
		`{"a":"op","c":"bench","d":"x-1","v":12,"src":"ab","seq":7,"op":[3,"h\"i{",{"d":2}]}`,
		`{"op":[{"d":"v"}],"a":"op","d":"doc","c":"c","v":3,"seq":1,"src":"s"}`,
		`{"src":"s","seq":3,"v":2,"a":"op","c":"docs","d":"x"}`,
		`{"data":{"v":1,"data":"{\"a\":\"s\"}","type":"http://sharejs.org/types/text-unicode"},"a":"s","c":"docs","d":"x"}`,
		`{"a":"op","c":"c","d":"d","v":null,"seq":1,"create":{"type":"text-unicode","data":"a\u00e9\ud83d\ude00"}}`,
		`{"a":"op","c":"c","d":"d","v":9,"seq":2,"op":[1],"error":{"code":"ERR_X","message":"m, {d}"}}`,
		` { "a" : "f" , "c":"c" , "d":"d" , "v" : 4 } `,
		`{"a":"op","c":"c","d":"d","v":5,"seq":3,"del":true}`,
		`{}`,
	}
	for _, frame := range frames {
		var f Fields
		if err := Scan([]byte(frame), &f); err != nil {
			t.Errorf("Scan(%s) = %v", frame, err)
			continue
		}
		var want map[string]json.RawMessage
		if err := json.Unmarshal([]byte(frame), &want); err != nil {
			t.Fatalf("test frame %s is not JSON: %v", frame, err)
		}
		for key, got := range map[string][]byte{"a": f.A, "c": f.C, "d": f.D, "v": f.V, "src": f.Src, "seq": f.Seq, "id": f.ID,
			"op": f.Op, "create": f.Create, "del": f.Del, "error": f.Error, "data": f.Data} {
			w, ok := want[key]
			if !ok {
				if got != nil {
					t.Errorf("Scan(%s): %s = %s, want absent", frame, key, got)
				}
				continue
			}
			if string(got) != string(w) {
				t.Errorf("Scan(%s): %s = %s, want %s", frame, key, got, w)
			}
		}
	}
}

func TestScanRefusesWhatItCannotWalk(t *testing.T) {
	for _, frame := range []string{``, `[]`, `"a"`, `{"a"}`, `{"a":}`, `{"a":"x"`, `{"a":"x",}`, `{"a":"x" "b":1}`, `{"a":[1,2}`, `{"a":"unterminated}`, `{a:1}`} {
		var f Fields
		if err := Scan([]byte(frame), &f); err == nil {
			t.Errorf("Scan(%q) = nil, want ErrFrame", frame)
		}
	}
}

func TestStrAndUint(t *testing.T) {
	for _, tc := range []struct {
		raw, want string
		ok        bool
	}{
		{`"plain"`, "plain", true},
		{`"q\"b\\s\/n\nt\t"`, "q\"b\\s/n\nt\t", true},
		{`"\u00e9\ud83d\ude00"`, "é😀", true},
		{`"\ud83d"`, "", false},
		{`"\ud83dx"`, "", false},
		{`"\x"`, "", false},
		{`plain`, "", false},
		{`null`, "", false},
	} {
		got, ok := Str([]byte(tc.raw))
		if got != tc.want || ok != tc.ok {
			t.Errorf("Str(%s) = %q, %v; want %q, %v", tc.raw, got, ok, tc.want, tc.ok)
		}
	}
	for _, tc := range []struct {
		raw  string
		want uint64
		ok   bool
	}{{"0", 0, true}, {"18446744073709551615", 1<<64 - 1, true}, {"-1", 0, false}, {"1.5", 0, false}, {"null", 0, false}, {"", 0, false}, {"+3", 0, false}} {
		got, ok := Uint([]byte(tc.raw))
		if got != tc.want || ok != tc.ok {
			t.Errorf("Uint(%q) = %d, %v; want %d, %v", tc.raw, got, ok, tc.want, tc.ok)
		}
	}
	if !IsNull(nil) || !IsNull([]byte("null")) || IsNull([]byte("0")) {
		t.Error("IsNull: nil and null are null, 0 is not")
	}
}
