package ot

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"
	"unicode/utf8"
)

// FuzzDecode feeds arbitrary bytes to Decode and DecodePresence: they
// must never panic, and whatever Decode accepts must be valid JSON, a
// valid op, and round-trip through MarshalJSON to the same canonical
// bytes.
func FuzzDecode(f *testing.F) {
	for _, s := range []string{
		`[]`, `[1,"x"]`, `[3,"hi",{"d":2},4,{"d":"lost"}]`, `["\ud83d\ude00"]`, `["\ud800"]`,
		`[1e2,"x"]`, `[1.5,"x"]`, `[{"d":"é"},"😀"]`, `[1,1,"x"]`, `[1]`, `[{"d":1,"d":2}]`,
		`[9007199254740991,"x"]`, "[\"\xff\"]", `{"index":1,"length":2}`, `["\"\\\/\b\f\n\r\t\u0000"]`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		_, _ = DecodePresence(data)
		op, err := Decode(data)
		if err != nil {
			var de *DecodeError
			if !errors.As(err, &de) || !errors.Is(err, ErrInvalidOp) {
				t.Fatalf("Decode(%q) = %v, want a *DecodeError wrapping ErrInvalidOp", data, err)
			}
			if de.Offset < 0 || de.Offset > len(data) {
				t.Fatalf("Decode(%q): offset %d outside the input", data, de.Offset)
			}
			return
		}
		if !json.Valid(data) {
			t.Fatalf("Decode(%q) accepted invalid JSON", data)
		}
		if err := op.Validate(); err != nil {
			t.Fatalf("Decode(%q) = %v, invalid: %v", data, op, err)
		}
		// encoding/json reads the same values (it only differs on what
		// Decode refuses).
		var generic []any
		if err := json.Unmarshal(data, &generic); err != nil || len(generic) != len(op) {
			t.Fatalf("json.Unmarshal(%q) = %v, %v; Decode gave %d components", data, generic, err, len(op))
		}
		for i, g := range generic {
			if s, ok := g.(string); ok && (op[i].Kind != KindInsert || s != op[i].Text) {
				t.Fatalf("component %d: encoding/json %q, Decode %+v", i, s, op[i])
			}
		}
		enc, err := op.MarshalJSON()
		if err != nil {
			t.Fatalf("%v.MarshalJSON() = %v", op, err)
		}
		back, err := Decode(enc)
		if err != nil || !reflect.DeepEqual(back, op) {
			t.Fatalf("Decode(%s) = %#v, %v, want %#v", enc, back, err, op)
		}
		again, _ := back.MarshalJSON()
		if string(again) != string(enc) {
			t.Fatalf("MarshalJSON not idempotent: %s then %s", enc, again)
		}
		if app, err := op.AppendJSON([]byte("x:")); err != nil || string(app) != "x:"+string(enc) {
			t.Fatalf("%v.AppendJSON(x:) = %q, %v, want x:%s", op, app, err, enc)
		}
	})
}

// FuzzOps builds documents and valid ops from the fuzzer's bytes and
// checks the OT laws on them (TP1 both ways, compose, invert, positions,
// codec), and runs Transform, Compose and Apply on ops with huge counts:
// none may panic.
func FuzzOps(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte("\x05\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a"))
	f.Add([]byte("hello, world; a longer seed to make longer ops \xff\xfe\x00\x10"))
	f.Fuzz(func(t *testing.T, data []byte) {
		g := algBytesGen(data)
		doc := g.doc()
		if !utf8.ValidString(doc) {
			t.Fatalf("generated doc %q is not UTF-8", doc)
		}
		text := g.intn(2) == 0
		a := g.op(doc, text)
		b := g.op(doc, g.intn(2) == 0)
		c := g.op(algMustApply(t, doc, a), text)
		algCheckLaws(t, doc, a, b, c)

		w1, w2 := g.wild(), g.wild()
		for _, x := range []Op{a, b, w1} {
			for _, y := range []Op{b, w1, w2} {
				if _, err := Transform(x, y, Left); err != nil {
					t.Fatalf("Transform(%v, %v, Left) = %v", x, y, err)
				}
				if _, err := Compose(x, y); err != nil {
					t.Fatalf("Compose(%v, %v) = %v", x, y, err)
				}
			}
			_, _ = Apply(doc, x)
			_ = TransformPresence(Presence{Index: 1 << 52, Length: 1 << 52}, x, true)
		}
	})
}
