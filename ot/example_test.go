package ot_test

import (
	"fmt"

	"github.com/coedit/coedit/ot"
)

func ExampleApply() {
	op, err := ot.Decode([]byte(`[6,{"d":5},"😀 Go"]`))
	if err != nil {
		panic(err)
	}
	doc, err := ot.Apply("hello world", op)
	fmt.Println(doc, err)
	// Output: hello 😀 Go <nil>
}

func ExampleTransform() {
	// Two users edit "abc" at once: alice inserts "X" at 1, bob "Y" at 1.
	alice, _ := ot.Decode([]byte(`[1,"X"]`))
	bob, _ := ot.Decode([]byte(`[1,"Y"]`))

	// The server commits alice's op, then bob's, which arrived later:
	// as ShareDB's server does, it transforms the later op over the one
	// committed before it with Left, so bob's insert lands first.
	bob2, _ := ot.Transform(bob, alice, ot.Left)
	// Bob's client, with its op in flight, receives alice's and
	// transforms it with the other side, Right (ShareDB's transformX).
	alice2, _ := ot.Transform(alice, bob, ot.Right)

	server, _ := ot.Apply("abc", alice)
	server, _ = ot.Apply(server, bob2)
	client, _ := ot.Apply("abc", bob)
	client, _ = ot.Apply(client, alice2)
	fmt.Println(bob2, alice2, server, client)
	// Output: [1,"Y"] [2,"X"] aYXbc aYXbc
}

func ExampleCompose() {
	a, _ := ot.Decode([]byte(`[2,"cd"]`))
	b, _ := ot.Decode([]byte(`[4,"ef",{"d":1}]`))
	ab, _ := ot.Compose(a, b)
	doc, _ := ot.Apply("ab!", ab)
	fmt.Println(ab, doc)
	// Output: [2,"cdef",{"d":1}] abcdef
}

func ExampleDecode() {
	op, err := ot.Decode([]byte(`[3,"\ud83d\ude00",{"d":"x"}]`))
	fmt.Println(op, err)

	_, err = ot.Decode([]byte(`[3,"\ud83d"]`))
	fmt.Println(err)
	// Output:
	// [3,"😀",{"d":"x"}] <nil>
	// ot: invalid op: component 1 (byte 4): high surrogate \ud83d not followed by a low surrogate escape
}

func ExampleTransformPresence() {
	caret := ot.Presence{Index: 2}
	typed, _ := ot.Decode([]byte(`[2,"hi"]`))
	fmt.Println(ot.TransformPresence(caret, typed, true))  // the caret's owner typed
	fmt.Println(ot.TransformPresence(caret, typed, false)) // someone else typed
	// Output:
	// {4 0}
	// {2 0}
}
