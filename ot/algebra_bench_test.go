package ot

import (
	"strings"
	"testing"
)

func BenchmarkTransformSmall(b *testing.B) {
	x := algOp(b, `[5,"hello",{"d":3}]`)
	y := algOp(b, `[3,{"d":"ab"},7,"x"]`)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Transform(x, y, Left); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkComposeSmall(b *testing.B) {
	x := algOp(b, `[5,"hello",{"d":3}]`)
	y := algOp(b, `[7,"x",{"d":2}]`)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Compose(x, y); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkTransformHuge shows counts cost nothing: the same shape as
// BenchmarkTransformSmall with counts near 2^50.
func BenchmarkTransformHuge(b *testing.B) {
	x := algOp(b, `[1000000000000000,"hello",{"d":300000000000000}]`)
	y := algOp(b, `[3,{"d":"ab"},700000000000000,"x"]`)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Transform(x, y, Left); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkTransformPosition(b *testing.B) {
	x := algOp(b, `[5,"hello",{"d":3},10,"😀"]`)
	for b.Loop() {
		_ = TransformPosition(12, x)
	}
}

// BenchmarkApplyString applies a small edit in the middle of a string
// document, which costs a copy of the document.
func BenchmarkApplyString(b *testing.B) {
	for _, size := range []struct {
		name string
		n    int
	}{{"1KB", 1 << 10}, {"64KB", 64 << 10}} {
		b.Run(size.name, func(b *testing.B) {
			doc := strings.Repeat("abcdéfgh😀 ", size.n/16)
			op := Op{{Kind: KindSkip, N: len([]rune(doc)) / 2}, {Kind: KindInsert, N: 3, Text: "xyz"}, {Kind: KindDelete, N: 4}}
			b.SetBytes(int64(len(doc)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Apply(doc, op); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkDecodeSmall(b *testing.B) {
	data := []byte(`[12,"hello 😀",{"d":3},40,{"d":"gone"}]`)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Decode(data); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkMarshalSmall(b *testing.B) {
	op := algOp(b, `[12,"hello 😀",{"d":3},40,{"d":"gone"}]`)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := op.MarshalJSON(); err != nil {
			b.Fatal(err)
		}
	}
}
