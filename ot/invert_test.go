package ot

import (
	"errors"
	"testing"
)

func TestInvert(t *testing.T) {
	tests := []struct {
		doc, op, want string
	}{
		{"abc", `[]`, `[]`},
		{"abc", `[1,"x",{"d":"b"}]`, `[1,{"d":"x"},"b"]`},
		{"😀é", `[{"d":"😀"},"é"]`, `["😀",{"d":"é"}]`},
		{"ab", `[{"d":"a"},{"d":"b"}]`, `["ab"]`},
		{"ab", `["x","y"]`, `[{"d":"xy"}]`},
		{"e\u0301", `[1,{"d":"\u0301"},"\u0300"]`, "[1,\"\u0301\",{\"d\":\"\u0300\"}]"},
		{"abc", `[3,"!"]`, `[3,{"d":"!"}]`},
	}
	for _, tt := range tests {
		op := algOp(t, tt.op)
		got, err := Invert(op)
		if err != nil || got.String() != tt.want {
			t.Errorf("Invert(%s) = %v, %v, want %s", tt.op, got, err, tt.want)
			continue
		}
		after, err := Apply(tt.doc, op)
		if err != nil {
			t.Fatal(err)
		}
		if back, err := Apply(after, got); err != nil || back != tt.doc {
			t.Errorf("Apply(%q, Invert(%s)) = %q, %v, want %q", after, tt.op, back, err, tt.doc)
		}
	}
}

func TestInvertErrors(t *testing.T) {
	tests := []struct {
		op   Op
		want error
	}{
		{algOp(t, `[1,{"d":1}]`), ErrNotInvertible},
		{algOp(t, `["x",{"d":"a"},{"d":2}]`), ErrNotInvertible},
		{algLoose(t, `[1]`), ErrInvalidOp},
		{algLoose(t, `[{"d":""}]`), ErrInvalidOp},
	}
	for _, tt := range tests {
		if got, err := Invert(tt.op); !errors.Is(err, tt.want) {
			t.Errorf("Invert(%v) = %v, %v, want an error wrapping %v", tt.op, got, err, tt.want)
		}
	}
}
