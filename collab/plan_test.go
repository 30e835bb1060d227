package collab

import (
	"errors"
	"reflect"
	"slices"
	"testing"

	"github.com/coedit/coedit/ot"
)

func insAt(pos int, s string) ot.Op {
	var op ot.Op
	if pos > 0 {
		op = append(op, ot.Component{Kind: ot.KindSkip, N: pos})
	}
	return append(op, ot.Component{Kind: ot.KindInsert, N: len([]rune(s)), Text: s})
}

func delAt(pos, n int) ot.Op {
	var op ot.Op
	if pos > 0 {
		op = append(op, ot.Component{Kind: ot.KindSkip, N: pos})
	}
	return append(op, ot.Component{Kind: ot.KindDelete, N: n})
}

func edit(src string, seq, v uint64, op ot.Op) Submission {
	return Submission{Src: src, Seq: seq, Version: v, HasVersion: true, Kind: OpEdit, Op: op}
}

// TestRebase covers ShareDB's rules for a submission made before records
// it did not see.
func TestRebase(t *testing.T) {
	create := Record{Version: 0, Kind: OpCreate, Type: ot.URI, Data: "hello"}
	editA := Record{Version: 1, Src: "a", Seq: 1, Kind: OpEdit, Op: insAt(0, "AB")}
	deleted := Record{Version: 2, Kind: OpDelete}
	bad := Record{Version: 1, Kind: OpEdit, Op: ot.Op{{Kind: ot.KindSkip, N: 0}}}
	tests := []struct {
		name    string
		sub     Submission
		missed  []Record
		want    ot.Op
		wantErr error
	}{
		{"nothing missed", edit("b", 1, 1, insAt(5, "x")), nil, insAt(5, "x"), nil},
		{"edit over an edit moves", edit("b", 1, 1, insAt(5, "x")), []Record{editA}, insAt(7, "x"), nil},
		{"a tied insert goes first (ot.Left)", edit("b", 1, 1, insAt(0, "x")), []Record{editA}, insAt(0, "x"), nil},
		{"edit over a delete", edit("b", 1, 1, insAt(0, "x")), []Record{editA, deleted}, nil, ErrDocDeleted},
		{"delete over a delete", Submission{Kind: OpDelete, HasVersion: true, Version: 1}, []Record{editA, deleted}, nil, nil},
		{"delete over an edit", Submission{Kind: OpDelete, HasVersion: true, Version: 1}, []Record{editA}, nil, nil},
		{"edit over a create", edit("b", 1, 0, insAt(0, "x")), []Record{create}, nil, ErrDocExists},
		{"create over an edit", Submission{Kind: OpCreate, Type: ot.URI, HasVersion: true, Version: 1}, []Record{editA}, nil, ErrDocExists},
		{"create over a delete", Submission{Kind: OpCreate, Type: ot.URI, HasVersion: true, Version: 2}, []Record{deleted}, nil, ErrDocDeleted},
		{"over a record that is no valid op", edit("b", 1, 1, insAt(0, "x")), []Record{bad}, nil, ErrInvalidOp},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := rebase(tt.sub, tt.missed)
			if !errors.Is(err, tt.wantErr) || (err == nil) != (tt.wantErr == nil) || !reflect.DeepEqual(got, tt.want) {
				t.Errorf("rebase = %v, %v; want %v, %v", got, err, tt.want, tt.wantErr)
			}
		})
	}
}

// TestShapeApplyAgreesWithRope: shape.apply accepts exactly the records
// the rope applies, with the rope's resulting length, so that a group
// commit planned on shapes applies after its commit.
func TestShapeApplyAgreesWithRope(t *testing.T) {
	ops := []ot.Op{
		insAt(0, "x"), insAt(5, "x"), insAt(6, "x"), // 6 is past "héllo"
		delAt(0, 5), delAt(4, 1), delAt(4, 2), delAt(0, 6),
		{{Kind: ot.KindSkip, N: 5}, {Kind: ot.KindDelete, N: 1, Text: "x"}},
		{{Kind: ot.KindSkip, N: 0}, {Kind: ot.KindInsert, N: 1, Text: "x"}}, // zero skip
		{{Kind: ot.KindSkip, N: 2}},                                         // trailing skip
		{{Kind: ot.KindInsert, N: 3, Text: "x"}},                            // wrong length
		{{Kind: ot.KindInsert, N: 1, Text: "\xff"}},                         // not UTF-8
		nil,
	}
	for _, op := range ops {
		rope := ot.NewRope("héllo")
		ropeErr := rope.Apply(op)
		next, err := shape{head: 3, typ: ot.URI, length: 5}.apply(Record{Version: 3, Kind: OpEdit, Op: op})
		if (err == nil) != (ropeErr == nil) {
			t.Errorf("op %v: shape.apply = %v, Rope.Apply = %v; want both to accept or both to refuse", op, err, ropeErr)
			continue
		}
		if err != nil {
			if !errors.Is(err, ErrInvalidOp) {
				t.Errorf("op %v: shape.apply = %v, want ErrInvalidOp", op, err)
			}
			continue
		}
		if want := (shape{head: 4, typ: ot.URI, length: rope.Len()}); next != want {
			t.Errorf("op %v: shape.apply = %+v, want %+v", op, next, want)
		}
	}
	sh := shape{head: 3, typ: ot.URI, length: 5}
	for _, tt := range []struct {
		rec     Record
		want    shape
		wantErr error
	}{
		{Record{Version: 3, Kind: OpCreate, Type: ot.URI, Data: "a\xffb"}, shape{head: 4, typ: ot.URI, length: 3}, nil},
		{Record{Version: 3, Kind: OpDelete}, shape{head: 4}, nil},
		{Record{Version: 2, Kind: OpDelete}, sh, nil},
		{Record{Version: 3, Kind: 9}, sh, ErrInvalidOp},
	} {
		next, err := sh.apply(tt.rec)
		if tt.rec.Version != sh.head {
			if err == nil {
				t.Errorf("apply(record at %d) at head %d = nil error", tt.rec.Version, sh.head)
			}
			continue
		}
		if next != tt.want || !errors.Is(err, tt.wantErr) || (err == nil) != (tt.wantErr == nil) {
			t.Errorf("apply(%+v) = %+v, %v; want %+v, %v", tt.rec, next, err, tt.want, tt.wantErr)
		}
	}
	if _, err := (shape{head: 3}).apply(Record{Version: 3, Kind: OpEdit, Op: insAt(0, "x")}); !errors.Is(err, ErrDocMissing) {
		t.Errorf("edit of a document that does not exist = %v, want ErrDocMissing", err)
	}
}

// planFixture is a document "Ahello" at version 2: a create by "c" and an
// edit by "a", both in memory unless readFrom says the records below it
// cannot be read.
type planFixture struct {
	recs     []Record
	readFrom uint64
}

var errUnreadable = errors.New("records unreadable")

func newPlanFixture() *planFixture {
	return &planFixture{recs: []Record{
		{Version: 0, Src: "c", Seq: 1, Kind: OpCreate, Type: ot.URI, Data: "hello", Time: 1},
		{Version: 1, Src: "a", Seq: 1, Kind: OpEdit, Op: insAt(0, "A"), Time: 2},
	}}
}

func (f *planFixture) draft() *draft {
	return &draft{
		shape: shape{head: 2, typ: ot.URI, length: 6},
		base:  2,
		seqs:  map[string]SeqEntry{"c": {Seq: 1, Version: 0}, "a": {Seq: 1, Version: 1}},
		committed: func(from, to uint64) ([]Record, error) {
			if from < f.readFrom {
				return nil, errUnreadable
			}
			return f.recs[from:to:to], nil
		},
	}
}

// normal returns r with empty slices nil, for comparing.
func normal(r SubmitResult) SubmitResult {
	if len(r.Missed) == 0 {
		r.Missed = nil
	}
	if len(r.Op) == 0 {
		r.Op = nil
	}
	if len(r.Record.Op) == 0 {
		r.Record.Op = nil
	}
	return r
}

// TestPlan plans single submissions on the same document: the result, the
// record and the draft after it; a refused one leaves the draft as it was.
func TestPlan(t *testing.T) {
	f := newPlanFixture()
	createRec, editRec := f.recs[0], f.recs[1]
	lim := limits{maxDocLen: 8, now: func() int64 { return 100 }}
	fresh := func(v, seq uint64, src string, op ot.Op) Record {
		return Record{Version: v, Src: src, Seq: seq, Kind: OpEdit, Op: op, Time: 100}
	}
	tests := []struct {
		name     string
		sub      Submission
		readFrom uint64
		want     SubmitResult
		wantErr  error
		wantWarn bool
	}{
		{name: "at the head", sub: edit("b", 1, 2, insAt(6, "!")),
			want: SubmitResult{Version: 2, Op: insAt(6, "!"), Record: fresh(2, 1, "b", insAt(6, "!"))}},
		{name: "at an old version: transformed over what it missed", sub: edit("b", 1, 1, insAt(5, "!")),
			want: SubmitResult{Version: 2, Op: insAt(6, "!"), Missed: []Record{editRec}, Record: fresh(2, 1, "b", insAt(6, "!"))}},
		{name: "resend: the original record and what it missed", sub: edit("a", 1, 0, insAt(0, "A")),
			want: SubmitResult{Version: 1, Duplicate: true, Op: editRec.Op, Missed: []Record{createRec}, Record: editRec}},
		{name: "resend whose records cannot be read", sub: edit("a", 1, 0, insAt(0, "A")), readFrom: 1,
			want: SubmitResult{Version: 1, Duplicate: true}, wantWarn: true},
		{name: "v:null create resent", sub: Submission{Src: "c", Seq: 1, Kind: OpCreate, Type: ot.Name, Data: "hello"},
			want: SubmitResult{Version: 0, Duplicate: true, Record: createRec}},
		{name: "v:null create of an existing document", sub: Submission{Src: "c", Seq: 2, Kind: OpCreate, Type: ot.URI}, wantErr: ErrDocExists},
		{name: "create at the head of an existing document", sub: Submission{Src: "d", Seq: 1, HasVersion: true, Version: 2, Kind: OpCreate, Type: ot.URI}, wantErr: ErrDocExists},
		{name: "version ahead", sub: edit("b", 1, 3, insAt(0, "x")), wantErr: ErrVersionAhead},
		{name: "stale seq", sub: edit("a", 0, 2, insAt(0, "x")), wantErr: ErrStaleSeq},
		{name: "too large", sub: edit("b", 1, 2, insAt(0, "xyz")), wantErr: ErrDocTooLarge},
		{name: "past the end", sub: edit("b", 1, 2, delAt(3, 10)), wantErr: ot.ErrOutOfBounds},
		{name: "invalid op", sub: edit("b", 1, 2, ot.Op{{Kind: ot.KindSkip, N: 2}}), wantErr: ErrInvalidOp},
		{name: "records to transform over cannot be read", sub: edit("b", 1, 0, insAt(0, "x")), readFrom: 1, wantErr: errUnreadable},
		{name: "src too long", sub: edit(string(make([]byte, MaxSrcLen+1)), 1, 2, insAt(0, "x")), wantErr: ErrInvalidOp},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f.readFrom = tt.readFrom
			d := f.draft()
			before := *d
			res, warn, err := d.plan(tt.sub, lim)
			if !errors.Is(err, tt.wantErr) || (err == nil) != (tt.wantErr == nil) {
				t.Fatalf("plan = %+v, %v; want error %v", res, err, tt.wantErr)
			}
			if (warn != nil) != tt.wantWarn {
				t.Errorf("plan warned %v, want a warning: %v", warn, tt.wantWarn)
			}
			if !reflect.DeepEqual(normal(res), normal(tt.want)) {
				t.Errorf("plan = %+v\nwant   %+v", res, tt.want)
			}
			if err != nil || res.Duplicate {
				if d.shape != before.shape || len(d.planned) != 0 || d.plannedSq != nil {
					t.Errorf("draft after a refused or duplicate submit = %+v, want it unchanged", d)
				}
				return
			}
			wantShape, _ := before.shape.apply(res.Record)
			if d.shape != wantShape || !slices.EqualFunc(d.planned, []Record{res.Record}, func(a, b Record) bool { return reflect.DeepEqual(a, b) }) {
				t.Errorf("draft = %+v, want shape %+v and the record planned", d, wantShape)
			}
			if e, ok := d.seq(tt.sub.Src); !ok || e != (SeqEntry{Seq: tt.sub.Seq, Version: res.Version}) {
				t.Errorf("draft seq(%q) = %+v, %v; want the planned record's", tt.sub.Src, e, ok)
			}
		})
	}
	if len(f.recs) != 2 {
		t.Fatalf("planning changed the committed records: %+v", f.recs)
	}
}

// TestPlanGroup: submissions planned on one draft see the records planned
// before them, as they would see committed ones.
func TestPlanGroup(t *testing.T) {
	f := newPlanFixture()
	d := f.draft()
	var clock int64
	lim := limits{maxDocLen: 100, now: func() int64 { clock++; return clock }}
	b, _, err := d.plan(edit("b", 1, 2, insAt(0, "B")), lim)
	if err != nil || b.Version != 2 {
		t.Fatalf("first plan = %+v, %v; want version 2", b, err)
	}
	c, _, err := d.plan(edit("c", 2, 2, insAt(0, "C")), lim)
	if err != nil || c.Version != 3 || !reflect.DeepEqual(c.Missed, []Record{b.Record}) || !reflect.DeepEqual(c.Op, insAt(0, "C")) {
		t.Fatalf("second plan = %+v, %v; want version 3 over b's record", c, err)
	}
	again, _, err := d.plan(edit("b", 1, 1, insAt(0, "B")), lim)
	if err != nil || !again.Duplicate || again.Version != 2 || !reflect.DeepEqual(again.Missed, []Record{f.recs[1]}) || !reflect.DeepEqual(again.Record, b.Record) {
		t.Fatalf("resend in the same group = %+v, %v; want a duplicate of version 2 after version 1", again, err)
	}
	if stale, _, err := d.plan(edit("c", 1, 3, insAt(0, "x")), lim); !errors.Is(err, ErrStaleSeq) {
		t.Fatalf("older seq of a planned src = %+v, %v; want ErrStaleSeq", stale, err)
	}
	if d.head != 4 || d.length != 8 || len(d.planned) != 2 {
		t.Fatalf("draft = head %d, length %d, %d planned; want 4, 8, 2", d.head, d.length, len(d.planned))
	}
	all, err := d.records(0, 4)
	if err != nil || len(all) != 4 || all[2].Src != "b" || all[3].Src != "c" {
		t.Fatalf("draft records(0, 4) = %+v, %v; want the committed then the planned", all, err)
	}
	if clock != 2 {
		t.Fatalf("the clock was read %d times, want once per record", clock)
	}
}
