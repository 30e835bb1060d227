package ot

import (
	"errors"
	"testing"
)

func TestCompose(t *testing.T) {
	tests := []struct {
		name, a, b, want string
	}{
		{"empty", `[]`, `[]`, `[]`},
		{"first empty", `[]`, `[1,"x"]`, `[1,"x"]`},
		{"second empty", `[1,"x"]`, `[]`, `[1,"x"]`},
		{"delete inside an insert", `["abc"]`, `[1,{"d":1}]`, `["ac"]`},
		{"typing", `[1,"x"]`, `[2,"y"]`, `[1,"xy"]`},
		{"typing before", `[1,"x"]`, `[1,"y"]`, `[1,"yx"]`},
		{"insert after a delete", `[{"d":"ab"}]`, `["x"]`, `["x",{"d":"ab"}]`},
		{"insert then delete it", `["😀é"]`, `[{"d":"😀"}]`, `["é"]`},
		{"delete keeps its text", `[2,"x"]`, `[{"d":"ab"},1,{"d":"c"}]`, `[{"d":"ab"},"x",{"d":"c"}]`},
		{"delete text split by an insert", `[1,"x"]`, `[{"d":"axb"}]`, `[{"d":"ab"}]`},
		{"astral delete text split", `[1,"x"]`, `[{"d":"😀x👍"}]`, `[{"d":"😀👍"}]`},
		{"count and text deletes merge into a count", `[{"d":1}]`, `[{"d":"b"}]`, `[{"d":2}]`},
		{"text deletes merge", `[{"d":"a"}]`, `[{"d":"b"}]`, `[{"d":"ab"}]`},
		{"edits at both ends", `["<"]`, `[4,">"]`, `["<",3,">"]`},
		{"delete the end", `[2,"z"]`, `[3,{"d":"c"}]`, `[2,"z",{"d":"c"}]`},
		{"combining marks", `[1,"\u0301"]`, `[{"d":2}]`, `[{"d":1}]`},
		{"huge skips", `[1000000000000000,"x"]`, `[{"d":100000000000000}]`, `[{"d":100000000000000},900000000000000,"x"]`},
		{"huge skip over an insert", `[5,"x"]`, `[1000000000000000,"y"]`, `[5,"x",999999999999994,"y"]`},
	}
	for _, tt := range tests {
		got, err := Compose(algOp(t, tt.a), algOp(t, tt.b))
		if err != nil || got.String() != tt.want {
			t.Errorf("%s: Compose(%s, %s) = %v, %v, want %s", tt.name, tt.a, tt.b, got, err, tt.want)
		}
	}
}

func TestComposeErrors(t *testing.T) {
	good := algOp(t, `[1,"x"]`)
	for _, s := range []string{`[1]`, `[1,1,"x"]`, `[0,"x"]`, `[""]`, `[{"d":0}]`, `[{"d":""}]`} {
		bad := algLoose(t, s)
		if got, err := Compose(bad, good); !errors.Is(err, ErrInvalidOp) {
			t.Errorf("Compose(%s, %v) = %v, %v, want ErrInvalidOp", s, good, got, err)
		}
		if got, err := Compose(good, bad); !errors.Is(err, ErrInvalidOp) {
			t.Errorf("Compose(%v, %s) = %v, %v, want ErrInvalidOp", good, s, got, err)
		}
	}
}

func TestNormalize(t *testing.T) {
	tests := []struct {
		in   Op
		want string
	}{
		{nil, `[]`},
		{algLoose(t, `[0,"",{"d":0},{"d":""}]`), `[]`},
		{algLoose(t, `[5]`), `[]`},
		{algLoose(t, `[1,2,"a","b",{"d":1},{"d":"x"},3,0]`), `[3,"ab",{"d":2}]`},
		{algLoose(t, `[{"d":"a"},{"d":"😀"}]`), `[{"d":"a😀"}]`},
		{algLoose(t, `[2,{"d":0},3,"x"]`), `[5,"x"]`},
		{algLoose(t, `["x",0,"y"]`), `["xy"]`},
		{algOp(t, `[1,"x",{"d":1}]`), `[1,"x",{"d":1}]`},
		// Lengths of texts come from the text.
		{Op{{Kind: KindInsert, N: 7, Text: "😀"}}, `["😀"]`},
		{Op{{Kind: KindDelete, N: 0, Text: "ab"}}, `[{"d":"ab"}]`},
		{Op{{Kind: KindSkip, N: -3}, {Kind: 0, N: 2}, {Kind: KindInsert, N: 1, Text: "x"}}, `["x"]`},
	}
	for _, tt := range tests {
		got := Normalize(tt.in)
		if got.String() != tt.want {
			t.Errorf("Normalize(%v) = %v, want %s", tt.in, got, tt.want)
		}
		if tt.want != `[]` {
			if err := got.Validate(); err != nil {
				t.Errorf("Normalize(%v) = %v, not valid: %v", tt.in, got, err)
			}
		}
	}
}

func TestNormalizeDoesNotAlias(t *testing.T) {
	in := algOp(t, `["a","b",1,{"d":"x"},{"d":"y"}]`)
	before := in.String()
	_ = Normalize(in)
	if in.String() != before {
		t.Errorf("Normalize changed its input to %v, was %s", in, before)
	}
}
