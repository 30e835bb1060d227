package ot

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"
)

// algOp decodes a canonical op for a test, failing the test if it is not.
func algOp(tb testing.TB, s string) Op {
	tb.Helper()
	op, err := Decode([]byte(s))
	if err != nil {
		tb.Fatalf("Decode(%s) = %v", s, err)
	}
	return op
}

// algLoose decodes an op that may be non-canonical (zero counts, empty
// texts, adjacent or trailing skips), for tests of invalid input.
func algLoose(tb testing.TB, s string) Op {
	tb.Helper()
	op, err := decodeOp([]byte(s), false)
	if err != nil {
		tb.Fatalf("decodeOp(%s) = %v", s, err)
	}
	return op
}

func TestApply(t *testing.T) {
	tests := []struct {
		doc, op, want string
	}{
		{"", `[]`, ""},
		{"abc", `[]`, "abc"},
		{"", `["hi"]`, "hi"},
		{"abc", `["x"]`, "xabc"},
		{"abc", `[3,"x"]`, "abcx"},
		{"abc", `[{"d":3}]`, ""},
		{"abc", `[{"d":"abc"}]`, ""},
		{"abc", `[2,{"d":1}]`, "ab"},
		{"abc", `[1,{"d":1}]`, "ac"},
		{"a😀b", `[1,{"d":1}]`, "ab"},
		{"a😀b", `[2,"é"]`, "a😀éb"},
		{"😀😀", `[1,"👍",{"d":1}]`, "😀👍"},
		{"😀😀", `[{"d":"😀"},"中"]`, "中😀"},
		// A combining mark is a code point of its own.
		{"e\u0301x", `[1,{"d":1}]`, "ex"},
		{"e\u0301x", `[2,"\u0300"]`, "e\u0301\u0300x"},
		{"héllo", `[{"d":1},"H",4,"!"]`, "Héllo!"},
		// Like the reference, the text a delete carries is not compared.
		{"abc", `[{"d":"zz"}]`, "c"},
		{"abc", `["x","y",{"d":1},{"d":"b"}]`, "xyc"},
		{"👍🏽", `[1,{"d":"🏽"}]`, "👍"},
	}
	for _, tt := range tests {
		got, err := Apply(tt.doc, algOp(t, tt.op))
		if err != nil || got != tt.want {
			t.Errorf("Apply(%q, %s) = %q, %v, want %q", tt.doc, tt.op, got, err, tt.want)
		}
	}
}

func TestApplyErrors(t *testing.T) {
	tests := []struct {
		doc  string
		op   Op
		want error
	}{
		{"abc", algOp(t, `[4,"x"]`), ErrOutOfBounds},
		{"abc", algOp(t, `[3,{"d":1}]`), ErrOutOfBounds},
		{"abc", algOp(t, `[{"d":4}]`), ErrOutOfBounds},
		{"", algOp(t, `[{"d":"x"}]`), ErrOutOfBounds},
		// Five bytes, but two code points.
		{"a😀", algOp(t, `[1,{"d":2}]`), ErrOutOfBounds},
		{"a😀", algOp(t, `[3,"x"]`), ErrOutOfBounds},
		{"abc", algOp(t, `[1000000000000000,"x"]`), ErrOutOfBounds},
		{"abc", algOp(t, `[{"d":9007199254740991}]`), ErrOutOfBounds},
		{"abc", algLoose(t, `[1]`), ErrInvalidOp},
		{"abc", algLoose(t, `[1,1,"x"]`), ErrInvalidOp},
		{"abc", algLoose(t, `[""]`), ErrInvalidOp},
		{"abc", Op{{Kind: KindInsert, N: 2, Text: "x"}}, ErrInvalidOp},
		{"abc", Op{{Kind: KindInsert, N: 1, Text: "\xff"}}, ErrInvalidOp},
		{"abc", Op{{Kind: KindDelete, N: 2, Text: "😀"}}, ErrInvalidOp},
		{"abc", Op{{Kind: 9, N: 1}}, ErrInvalidOp},
		{"a\xffb", algOp(t, `[1,"x"]`), ErrInvalidDocument},
	}
	for _, tt := range tests {
		got, err := Apply(tt.doc, tt.op)
		if !errors.Is(err, tt.want) {
			t.Errorf("Apply(%q, %v) = %q, %v, want an error wrapping %v", tt.doc, tt.op, got, err, tt.want)
		}
	}
}

func TestValidate(t *testing.T) {
	valid := []Op{
		nil,
		algOp(t, `["a","b"]`),
		algOp(t, `[{"d":1},{"d":"x"}]`),
		{{Kind: KindSkip, N: MaxLen - 1}, {Kind: KindInsert, N: 1, Text: "x"}},
	}
	for _, op := range valid {
		if err := op.Validate(); err != nil {
			t.Errorf("%v.Validate() = %v, want nil", op, err)
		}
	}
	invalid := []struct {
		op   Op
		want string
	}{
		{Op{{Kind: KindSkip, N: 0}, {Kind: KindInsert, N: 1, Text: "x"}}, "component 0 has length 0"},
		{Op{{Kind: KindSkip, N: -2}, {Kind: KindInsert, N: 1, Text: "x"}}, "component 0 has length -2"},
		{Op{{Kind: KindSkip, N: 1}, {Kind: KindSkip, N: 1}, {Kind: KindInsert, N: 1, Text: "x"}}, "component 1: two skips in a row"},
		{Op{{Kind: KindInsert, N: 1, Text: "x"}, {Kind: KindSkip, N: 1}}, "component 1: trailing skip"},
		{Op{{Kind: KindSkip, N: 1, Text: "a"}, {Kind: KindInsert, N: 1, Text: "x"}}, "skip with text"},
		{Op{{Kind: KindInsert, N: 1}}, "empty insert"},
		{Op{{Kind: KindInsert, N: 1, Text: "😀😀"}}, "length 1 but text has 2 code points"},
		{Op{{Kind: KindDelete, N: 1, Text: "a\xff"}}, "not valid UTF-8"},
		{Op{{Kind: KindDelete, N: MaxLen + 1}}, "over the maximum"},
		{Op{{Kind: KindDelete, N: MaxLen}, {Kind: KindDelete, N: 1}}, "spans more than"},
		{Op{{Kind: KindSkip, N: MaxLen}, {Kind: KindInsert, N: 1, Text: "x"}}, "spans more than"},
		{Op{{Kind: 0, N: 1}}, "unknown kind 0"},
	}
	for _, tt := range invalid {
		err := tt.op.Validate()
		if !errors.Is(err, ErrInvalidOp) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%v.Validate() = %v, want an ErrInvalidOp saying %q", tt.op, err, tt.want)
		}
	}
}

func TestBaseLenSaturates(t *testing.T) {
	op := Op{{Kind: KindSkip, N: 1 << 62}, {Kind: KindDelete, N: 1 << 62}, {Kind: KindDelete, N: 1 << 62}}
	if got, want := op.BaseLen(), int(^uint(0)>>1); got != want {
		t.Errorf("BaseLen(%v) = %d, want %d", op, got, want)
	}
	if got, err := Apply("abc", op); !errors.Is(err, ErrInvalidOp) {
		t.Errorf("Apply(abc, %v) = %q, %v, want ErrInvalidOp", op, got, err)
	}
}

func TestRuneBytes(t *testing.T) {
	docs := []string{"", "a", "abcdefghijklmnopq", "é😀中\u0301xé😀中\u0301xé😀中\u0301xé😀中", strings.Repeat("😀a", 20), strings.Repeat("é", 17)}
	for _, s := range docs {
		runes := []rune(s)
		if got := runeCount(s); got != len(runes) {
			t.Errorf("runeCount(%q) = %d, want %d", s, got, len(runes))
		}
		for n := 0; n <= len(runes)+2; n++ {
			want := len(string(runes[:min(n, len(runes))]))
			if got := runeBytes(s, n); got != want {
				t.Errorf("runeBytes(%q, %d) = %d, want %d", s, n, got, want)
			}
			for off := 1; off < len(s) && n <= len(runes); off++ {
				// From every code point boundary too.
				if !utf8.RuneStart(s[off]) {
					continue
				}
				rest := []rune(s[off:])
				want := len(string(rest[:min(n, len(rest))]))
				if got := runeBytes(s[off:], n); got != want {
					t.Errorf("runeBytes(%q, %d) = %d, want %d", s[off:], n, got, want)
				}
			}
		}
	}
}
