package ot

import (
	"compress/gzip"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"unicode/utf8"
)

// The editing traces in testdata/traces are real character-by-character
// histories (CC BY 4.0; see the README there for attribution and format).

var traceNames = []string{"automerge-paper", "seph-blog1"}

// traceFile is the JSON form of a trace.
type traceFile struct {
	StartContent string `json:"startContent"`
	EndContent   string `json:"endContent"`
	Txns         []struct {
		Patches []tracePatch `json:"patches"`
	} `json:"txns"`
}

// tracePatch is one splice [pos, delCount, insText], in code points.
type tracePatch struct {
	Pos, Del int
	Ins      string
}

// UnmarshalJSON decodes the mixed-type array [pos, delCount, insText].
func (p *tracePatch) UnmarshalJSON(b []byte) error {
	var raw []json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	if len(raw) != 3 {
		return fmt.Errorf("trace patch %s: %d elements, want 3", b, len(raw))
	}
	if err := json.Unmarshal(raw[0], &p.Pos); err != nil {
		return fmt.Errorf("trace patch %s: position: %w", b, err)
	}
	if err := json.Unmarshal(raw[1], &p.Del); err != nil {
		return fmt.Errorf("trace patch %s: delete count: %w", b, err)
	}
	if err := json.Unmarshal(raw[2], &p.Ins); err != nil {
		return fmt.Errorf("trace patch %s: insert text: %w", b, err)
	}
	if p.Pos < 0 || p.Del < 0 {
		return fmt.Errorf("trace patch %s: negative position or count", b)
	}
	return nil
}

// op returns the patch as an Op: skip pos, delete del, insert ins.
func (p tracePatch) op() Op {
	op := make(Op, 0, 3)
	if p.Pos > 0 {
		op = append(op, Component{Kind: KindSkip, N: p.Pos})
	}
	if p.Del > 0 {
		op = append(op, Component{Kind: KindDelete, N: p.Del})
	}
	if p.Ins != "" {
		op = append(op, Component{Kind: KindInsert, N: utf8.RuneCountInString(p.Ins), Text: p.Ins})
	}
	if len(op) > 0 && op[len(op)-1].Kind == KindSkip {
		op = op[:len(op)-1] // a patch that does nothing
	}
	return op
}

// traceData is a decoded trace with its patches converted to ops.
type traceData struct {
	start, end string
	ops        []Op
}

// traceCache holds each trace once per test binary: decoding takes longer
// than replaying.
var traceCache struct {
	sync.Mutex
	m map[string]*traceData
}

// traceLoad returns the named trace from testdata/traces.
func traceLoad(tb testing.TB, name string) *traceData {
	tb.Helper()
	traceCache.Lock()
	defer traceCache.Unlock()
	if d, ok := traceCache.m[name]; ok {
		return d
	}
	f, err := os.Open(filepath.Join("..", "testdata", "traces", name+".json.gz"))
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		tb.Fatalf("trace %s: %v", name, err)
	}
	var tf traceFile
	if err := json.NewDecoder(zr).Decode(&tf); err != nil {
		tb.Fatalf("trace %s: %v", name, err)
	}
	d := &traceData{start: tf.StartContent, end: tf.EndContent}
	for _, txn := range tf.Txns {
		for _, p := range txn.Patches {
			d.ops = append(d.ops, p.op())
		}
	}
	if traceCache.m == nil {
		traceCache.m = make(map[string]*traceData)
	}
	traceCache.m[name] = d
	return d
}

// TestTraceReplay replays each trace on a Rope and checks the final text,
// and the tree's invariants along the way.
func TestTraceReplay(t *testing.T) {
	for _, name := range traceNames {
		t.Run(name, func(t *testing.T) {
			tr := traceLoad(t, name)
			if len(tr.ops) < 100000 {
				t.Fatalf("trace %s has %d patches, want the whole trace", name, len(tr.ops))
			}
			r := NewRope(tr.start)
			for i, op := range tr.ops {
				if err := r.Apply(op); err != nil {
					t.Fatalf("patch %d: Apply(%.100v) = %v", i, op, err)
				}
				if i%20000 == 0 {
					if err := ropeVerify(r); err != nil {
						t.Fatalf("after patch %d: %v", i, err)
					}
				}
			}
			if err := ropeVerify(r); err != nil {
				t.Fatalf("at the end: %v", err)
			}
			if got := r.String(); got != tr.end {
				t.Errorf("replay of %s: final text differs from endContent (%d bytes, want %d)", name, len(got), len(tr.end))
			}
			if got, want := r.Len(), utf8.RuneCountInString(tr.end); got != want {
				t.Errorf("replay of %s: Len() = %d, want %d", name, got, want)
			}
		})
	}
}

// TestTraceClones replays seph-blog1 keeping a Clone every 10,000 patches,
// then checks every clone against a fresh replay up to its patch.
func TestTraceClones(t *testing.T) {
	tr := traceLoad(t, "seph-blog1")
	r := NewRope(tr.start)
	clones := map[int]*Rope{}
	for i, op := range tr.ops {
		if i%10000 == 0 {
			clones[i] = r.Clone()
		}
		if err := r.Apply(op); err != nil {
			t.Fatalf("patch %d: Apply(%.100v) = %v", i, op, err)
		}
	}
	fresh := NewRope(tr.start)
	for i, op := range tr.ops {
		if c, ok := clones[i]; ok {
			if got, want := c.String(), fresh.String(); got != want {
				t.Errorf("clone taken before patch %d: %d bytes, want %d", i, len(got), len(want))
			}
		}
		if err := fresh.Apply(op); err != nil {
			t.Fatalf("patch %d: Apply(%.100v) = %v", i, op, err)
		}
	}
}

// BenchmarkTraceRope replays each trace from scratch on a Rope per
// iteration. Decoding and op conversion happen before the timer starts.
func BenchmarkTraceRope(b *testing.B) {
	for _, name := range traceNames {
		b.Run(name, func(b *testing.B) {
			tr := traceLoad(b, name)
			b.ReportAllocs()
			b.ResetTimer()
			var r *Rope
			for b.Loop() {
				r = NewRope(tr.start)
				for _, op := range tr.ops {
					if err := r.Apply(op); err != nil {
						b.Fatal(err)
					}
				}
			}
			b.StopTimer()
			if r.String() != tr.end {
				b.Fatalf("replay of %s: final text differs from endContent", name)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(tr.ops)), "ns/patch")
		})
	}
}

// traceNaiveApply applies op, known to be valid for doc, to a plain []rune:
// the baseline the Rope is compared with.
func traceNaiveApply(doc []rune, op Op) []rune {
	pos := 0
	for _, c := range op {
		switch c.Kind {
		case KindSkip:
			pos += c.N
		case KindInsert:
			doc = slices.Insert(doc, pos, []rune(c.Text)...)
			pos += c.N
		case KindDelete:
			doc = slices.Delete(doc, pos, pos+c.N)
		}
	}
	return doc
}

// BenchmarkTraceNaiveRunes replays each trace on a []rune, for comparison
// with BenchmarkTraceRope.
func BenchmarkTraceNaiveRunes(b *testing.B) {
	for _, name := range traceNames {
		b.Run(name, func(b *testing.B) {
			tr := traceLoad(b, name)
			b.ReportAllocs()
			b.ResetTimer()
			var doc []rune
			for b.Loop() {
				doc = []rune(tr.start)
				for _, op := range tr.ops {
					doc = traceNaiveApply(doc, op)
				}
			}
			b.StopTimer()
			if string(doc) != tr.end {
				b.Fatalf("naive replay of %s: final text differs from endContent", name)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(tr.ops)), "ns/patch")
		})
	}
}
