package ot

import (
	"encoding/json"
	"math"
	"os"
	"testing"
)

func TestTransformPosition(t *testing.T) {
	tests := []struct {
		pos  int
		op   string
		want int
	}{
		{0, `[]`, 0},
		{3, `[]`, 3},
		// An insert exactly at the cursor does not move it.
		{0, `["x"]`, 0},
		{2, `[2,"x"]`, 2},
		{1, `["x"]`, 2},
		{3, `[2,"😀"]`, 4},
		{3, `[2,"👍🏽"]`, 5},
		{3, `[{"d":2}]`, 1},
		{1, `[{"d":2}]`, 0},
		{2, `[{"d":2}]`, 0},
		{5, `[1,{"d":10}]`, 1},
		{3, `[1,{"d":1},"xy"]`, 4},
		{2, `[1,{"d":1},"x"]`, 1},
		{2, `[1,"x",{"d":1}]`, 2},
		{4, `[4,{"d":"e\u0301"}]`, 4},
		{5, `[4,{"d":"e\u0301"}]`, 4},
		{10, `[1000000000000000,"x"]`, 10},
		{1000000000000000, `[5,"x"]`, 1000000000000001},
		{-1, `["x"]`, -1},
		{math.MaxInt, `[1,"x"]`, math.MaxInt},
		{math.MaxInt - 1, `[90071992547409,"xy"]`, math.MaxInt},
	}
	for _, tt := range tests {
		if got := TransformPosition(tt.pos, algOp(t, tt.op)); got != tt.want {
			t.Errorf("TransformPosition(%d, %s) = %d, want %d", tt.pos, tt.op, got, tt.want)
		}
	}
}

func TestTransformPositionAnyOp(t *testing.T) {
	// Not valid, yet answered, as the reference does.
	op := Op{{Kind: KindSkip, N: 0}, {Kind: KindSkip, N: 2}, {Kind: KindInsert, N: 1, Text: "x"}, {Kind: KindSkip, N: 1}}
	if got := TransformPosition(3, op); got != 4 {
		t.Errorf("TransformPosition(3, %v) = %d, want 4", op, got)
	}
	huge := Op{{Kind: KindSkip, N: math.MaxInt}, {Kind: KindSkip, N: math.MaxInt}, {Kind: KindInsert, N: math.MaxInt}}
	if got := TransformPosition(math.MaxInt, huge); got != math.MaxInt {
		t.Errorf("TransformPosition(MaxInt, %v) = %d, want MaxInt", huge, got)
	}
}

func TestTransformPresence(t *testing.T) {
	tests := []struct {
		name string
		p    Presence
		op   string
		own  bool
		want Presence
	}{
		{"others' insert at the caret", Presence{2, 0}, `[2,"x"]`, false, Presence{2, 0}},
		{"own insert at the caret", Presence{2, 0}, `[2,"x"]`, true, Presence{3, 0}},
		{"own astral insert", Presence{2, 0}, `[2,"😀👍"]`, true, Presence{4, 0}},
		{"own insert at the start", Presence{0, 0}, `["ab"]`, true, Presence{2, 0}},
		{"others' insert at the start", Presence{0, 0}, `["ab"]`, false, Presence{0, 0}},
		{"insert before", Presence{3, 1}, `[1,"xy"]`, false, Presence{5, 1}},
		{"insert after", Presence{3, 1}, `[5,"xy"]`, false, Presence{3, 1}},
		{"others' insert at the selection start", Presence{1, 2}, `[1,"x"]`, false, Presence{1, 3}},
		{"own insert at the selection start", Presence{1, 2}, `[1,"x"]`, true, Presence{2, 2}},
		{"others' insert at the selection end", Presence{1, 2}, `[3,"x"]`, false, Presence{1, 2}},
		{"own insert at the selection end", Presence{1, 2}, `[3,"x"]`, true, Presence{1, 3}},
		{"insert inside the selection", Presence{1, 2}, `[2,"xy"]`, false, Presence{1, 4}},
		{"delete covering the selection", Presence{2, 3}, `[1,{"d":10}]`, false, Presence{1, 0}},
		{"delete inside the selection", Presence{1, 4}, `[2,{"d":2}]`, false, Presence{1, 2}},
		{"delete across the selection start", Presence{2, 3}, `[1,{"d":2}]`, false, Presence{1, 2}},
		{"own replacement at the caret", Presence{2, 0}, `[2,{"d":1},"xy"]`, true, Presence{4, 0}},
		{"own replacement of the selection", Presence{1, 2}, `[1,{"d":2},"z"]`, true, Presence{2, 0}},
		{"others' replacement of the selection", Presence{1, 2}, `[1,{"d":2},"z"]`, false, Presence{1, 0}},
		{"negative counts as zero", Presence{-3, -2}, `["x"]`, false, Presence{0, 0}},
		{"negative counts as zero, own", Presence{-3, -2}, `["x"]`, true, Presence{1, 0}},
		{"huge", Presence{math.MaxInt - 1, math.MaxInt}, `[1,"x"]`, false, Presence{math.MaxInt, 0}},
	}
	for _, tt := range tests {
		if got := TransformPresence(tt.p, algOp(t, tt.op), tt.own); got != tt.want {
			t.Errorf("%s: TransformPresence(%+v, %s, %v) = %+v, want %+v", tt.name, tt.p, tt.op, tt.own, got, tt.want)
		}
	}
}

// presenceVectors is the file of caret and selection cases that the node
// tests run against the page's JavaScript too (web/static/test/presence.test.mjs),
// so the Go and JS copies of the rule cannot drift apart.
const presenceVectors = "../testdata/presence-vectors.json"

func TestPresenceVectors(t *testing.T) {
	data, err := os.ReadFile(presenceVectors)
	if err != nil {
		t.Fatal(err)
	}
	var file struct {
		Vectors []struct {
			Name     string          `json:"name"`
			Presence Presence        `json:"presence"`
			Op       json.RawMessage `json:"op"`
			Own      bool            `json:"own"`
			Want     Presence        `json:"want"`
		} `json:"vectors"`
	}
	if err := json.Unmarshal(data, &file); err != nil {
		t.Fatalf("%s: %v", presenceVectors, err)
	}
	if len(file.Vectors) < 50 {
		t.Fatalf("%s holds %d vectors; want the whole set", presenceVectors, len(file.Vectors))
	}
	for _, v := range file.Vectors {
		op := algOp(t, string(v.Op))
		if got := TransformPresence(v.Presence, op, v.Own); got != v.Want {
			t.Errorf("%s: TransformPresence(%+v, %s, %v) = %+v, want %+v", v.Name, v.Presence, v.Op, v.Own, got, v.Want)
		}
	}
}
