package redisrelay

import (
	"testing"

	"github.com/coedit/coedit/collab"
	"github.com/coedit/coedit/ot"
)

func ins(pos int, s string) ot.Op {
	var op ot.Op
	if pos > 0 {
		op = append(op, ot.Component{Kind: ot.KindSkip, N: pos})
	}
	return append(op, ot.Component{Kind: ot.KindInsert, N: len([]rune(s)), Text: s})
}

// TestTransformChain: records offered again are transformed over a
// record of the history as a client's pending chain is (each over what
// the one before left of it), and those ShareDB's rules make meaningless
// are reported lost.
func TestTransformChain(t *testing.T) {
	edit := func(op ot.Op) collab.Record { return collab.Record{Kind: collab.OpEdit, Op: op} }
	create := collab.Record{Kind: collab.OpCreate, Type: ot.URI}
	del := collab.Record{Kind: collab.OpDelete}
	tests := []struct {
		name    string
		pending []collab.Record
		n       collab.Record
		want    []string // ops of the kept records ("create", "delete")
		lost    int
	}{
		{"edits shift over an insert before them", []collab.Record{edit(ins(2, "a")), edit(ins(3, "b"))}, edit(ins(0, "XY")),
			[]string{`[4,"a"]`, `[5,"b"]`}, 0},
		{"an insert at the same place goes first (left)", []collab.Record{edit(ins(0, "a"))}, edit(ins(0, "X")),
			[]string{`["a"]`}, 0},
		{"edits of a deleted document are lost", []collab.Record{edit(ins(0, "a")), del, create}, del,
			[]string{"delete", "create"}, 1},
		{"nothing follows a concurrent create", []collab.Record{edit(ins(0, "a")), edit(ins(0, "b"))}, create,
			nil, 2},
		{"a create over an edited document is lost with what follows", []collab.Record{create, edit(ins(0, "b"))}, edit(ins(0, "x")),
			nil, 2},
		{"an edit before a pending delete leaves the rest alone", []collab.Record{del, create, edit(ins(0, "b"))}, edit(ins(0, "x")),
			[]string{"delete", "create", `["b"]`}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			kept, lost := transformChain(tt.pending, tt.n)
			var got []string
			for _, r := range kept {
				switch r.Kind {
				case collab.OpCreate:
					got = append(got, "create")
				case collab.OpDelete:
					got = append(got, "delete")
				default:
					got = append(got, r.Op.String())
				}
			}
			if len(lost) != tt.lost || len(got) != len(tt.want) {
				t.Fatalf("transformChain = %v, %d lost; want %v, %d lost", got, len(lost), tt.want, tt.lost)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Fatalf("transformChain = %v, want %v", got, tt.want)
				}
			}
		})
	}
}
