package ot

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/coedit/coedit/internal/nodetest"
)

var algDiffSeed = flag.Int("otdiff.seed", 1, "seed for TestDifferentialNode's generated cases")

// algDiffCases is how many cases TestDifferentialNode checks.
func algDiffCases() int {
	if testing.Short() {
		return 10000
	}
	return 100000
}

// algVectors is the committed file of reference results that TestVectors
// checks without Node. Regenerate it with
//
//	node scripts/otdiff/gen.mjs --n 3000 --seed 20240601 --out testdata/ot-vectors.jsonl.gz
const algVectors = "../testdata/ot-vectors.jsonl.gz"

// algResult is one reference result: a value or the message it threw.
type algResult struct {
	OK  json.RawMessage `json:"ok"`
	Err *string         `json:"err"`
}

func (r *algResult) String() string {
	if r == nil {
		return "(not computed)"
	}
	if r.Err != nil {
		return "throws " + strconv.Quote(*r.Err)
	}
	return string(r.OK)
}

// algCase is one line of scripts/otdiff/gen.mjs's output.
type algCase struct {
	ID      int             `json:"id"`
	Doc     string          `json:"doc"`
	A       json.RawMessage `json:"a"`
	B       json.RawMessage `json:"b"`
	C       json.RawMessage `json:"c"`
	N       json.RawMessage `json:"n"`
	ApplyA  *algResult      `json:"applyA"`
	ApplyB  *algResult      `json:"applyB"`
	ApplyAC *algResult      `json:"applyAC"`
	TLab    *algResult      `json:"tLab"`
	TRab    *algResult      `json:"tRab"`
	TLba    *algResult      `json:"tLba"`
	TRba    *algResult      `json:"tRba"`
	Cac     *algResult      `json:"cac"`
	Cab     *algResult      `json:"cab"`
	InvA    *algResult      `json:"invA"`
	InvB    *algResult      `json:"invB"`
	Norm    *algResult      `json:"norm"`
	Pos     [][3]int        `json:"pos"`
}

// algChecker compares this package with reference results, counting what
// it saw so a test can insist every kind of result was exercised.
type algChecker struct {
	t      *testing.T
	fails  int
	cases  int
	counts map[string]int
}

func algNewChecker(t *testing.T) *algChecker {
	return &algChecker{t: t, counts: map[string]int{}}
}

func (k *algChecker) errorf(c *algCase, format string, args ...any) {
	k.t.Helper()
	k.fails++
	if k.fails <= 20 {
		k.t.Errorf("case %d (doc %q, a %s, b %s): %s", c.ID, c.Doc, c.A, c.B, fmt.Sprintf(format, args...))
	}
}

// line checks one JSON line.
func (k *algChecker) line(data []byte) {
	k.t.Helper()
	var c algCase
	if err := json.Unmarshal(data, &c); err != nil {
		k.fails++
		k.t.Errorf("bad case line %.200q: %v", data, err)
		return
	}
	k.cases++
	ops := map[string]Op{}
	for name, raw := range map[string]json.RawMessage{"a": c.A, "b": c.B, "c": c.C, "n": c.N} {
		op, err := decodeOp(raw, false)
		if err != nil {
			k.errorf(&c, "decode %s %s: %v", name, raw, err)
			return
		}
		ops[name] = op
	}
	a, b, cc := ops["a"], ops["b"], ops["c"]

	k.apply(&c, "Apply(doc, a)", c.Doc, a, c.ApplyA)
	k.apply(&c, "Apply(doc, b)", c.Doc, b, c.ApplyB)
	if c.ApplyA != nil && c.ApplyA.Err == nil {
		var after string
		if err := json.Unmarshal(c.ApplyA.OK, &after); err != nil {
			k.errorf(&c, "applyA result %s: %v", c.ApplyA.OK, err)
			return
		}
		if c.ApplyAC != nil || a.BaseLen() <= utf8.RuneCountInString(c.Doc) {
			k.apply(&c, "Apply(Apply(doc, a), c)", after, cc, c.ApplyAC)
		}
	}

	k.op(&c, "Transform(a, b, Left)", c.TLab, func() (Op, error) { return Transform(a, b, Left) })
	k.op(&c, "Transform(a, b, Right)", c.TRab, func() (Op, error) { return Transform(a, b, Right) })
	k.op(&c, "Transform(b, a, Left)", c.TLba, func() (Op, error) { return Transform(b, a, Left) })
	k.op(&c, "Transform(b, a, Right)", c.TRba, func() (Op, error) { return Transform(b, a, Right) })
	k.op(&c, "Compose(a, c)", c.Cac, func() (Op, error) { return Compose(a, cc) })
	k.op(&c, "Compose(a, b)", c.Cab, func() (Op, error) { return Compose(a, b) })
	if c.InvA != nil {
		k.op(&c, "Invert(a)", c.InvA, func() (Op, error) { return Invert(a) })
	}
	if c.InvB != nil {
		k.op(&c, "Invert(b)", c.InvB, func() (Op, error) { return Invert(b) })
	}
	k.op(&c, "Normalize(n)", c.Norm, func() (Op, error) { return Normalize(ops["n"]), nil })

	// Compose agrees with applying one op after the other.
	if c.Cac != nil && c.Cac.Err == nil && c.ApplyAC != nil && c.ApplyAC.Err == nil {
		var want string
		_ = json.Unmarshal(c.ApplyAC.OK, &want)
		if comp, err := Compose(a, cc); err == nil && a.BaseLen() <= utf8.RuneCountInString(c.Doc) {
			got, err := Apply(c.Doc, comp)
			if err != nil || got != want {
				k.errorf(&c, "Apply(doc, Compose(a, c)) = %q, %v, want %q", got, err, want)
			}
		}
	}

	for _, p := range c.Pos {
		if got := TransformPosition(p[0], a); got != p[1] {
			k.errorf(&c, "TransformPosition(%d, a) = %d, want %d", p[0], got, p[1])
		}
		if got := TransformPosition(p[0], b); got != p[2] {
			k.errorf(&c, "TransformPosition(%d, b) = %d, want %d", p[0], got, p[2])
		}
		k.counts["position"]++
	}
}

// apply checks Apply against the reference's apply, allowing for Apply
// being stricter: it refuses a delete that runs off the end, which the
// reference clamps. want is nil when the reference was not run because
// the op spans far past the document.
func (k *algChecker) apply(c *algCase, what, doc string, op Op, want *algResult) {
	k.t.Helper()
	got, err := Apply(doc, op)
	runes := utf8.RuneCountInString(doc)
	switch {
	case want == nil:
		k.counts["apply-huge"]++
		if op.Validate() == nil && !errors.Is(err, ErrOutOfBounds) {
			k.errorf(c, "%s = %q, %v, want an error wrapping ErrOutOfBounds", what, got, err)
		}
	case want.Err != nil:
		wantErr := ErrInvalidOp
		if strings.Contains(*want.Err, "too long") {
			wantErr = ErrOutOfBounds
		}
		k.counts["apply-err"]++
		if !errors.Is(err, wantErr) {
			k.errorf(c, "%s = %q, %v, want an error wrapping %v (reference: %s)", what, got, err, wantErr, *want.Err)
		}
	case op.BaseLen() > runes:
		k.counts["apply-clamped"]++
		if !errors.Is(err, ErrOutOfBounds) {
			k.errorf(c, "%s = %q, %v, want an error wrapping ErrOutOfBounds (op spans %d, doc has %d)", what, got, err, op.BaseLen(), runes)
		}
	default:
		k.counts["apply-ok"]++
		var w string
		if jerr := json.Unmarshal(want.OK, &w); jerr != nil {
			k.errorf(c, "%s: reference result %s: %v", what, want.OK, jerr)
			return
		}
		if err != nil || got != w {
			k.errorf(c, "%s = %q, %v, want %q", what, got, err, w)
		}
	}
}

// op checks a function returning an op against the reference's result:
// the same error, or the same op byte for byte in JSON.
func (k *algChecker) op(c *algCase, what string, want *algResult, f func() (Op, error)) {
	k.t.Helper()
	got, err := f()
	if want == nil {
		k.errorf(c, "%s: reference result missing", what)
		return
	}
	name, _, _ := strings.Cut(what, "(")
	if want.Err != nil {
		k.counts[name+"-err"]++
		wantErr := ErrInvalidOp
		if strings.Contains(*want.Err, "Cannot invert") {
			wantErr = ErrNotInvertible
		}
		if !errors.Is(err, wantErr) {
			k.errorf(c, "%s = %v, %v, want an error wrapping %v (reference: %s)", what, got, err, wantErr, *want.Err)
		}
		return
	}
	k.counts[name+"-ok"]++
	if err != nil {
		k.errorf(c, "%s = %v, want %s", what, err, want.OK)
		return
	}
	if enc := got.String(); enc != string(want.OK) {
		k.errorf(c, "%s = %s, want %s", what, enc, want.OK)
		return
	}
	if name != "Normalize" {
		if err := got.Validate(); err != nil {
			k.errorf(c, "%s = %s, not valid: %v", what, got, err)
		}
	}
}

// finish fails the test unless enough cases ran and every kind of result
// was seen, so the comparison cannot pass by comparing nothing.
func (k *algChecker) finish(wantCases int) {
	k.t.Helper()
	if k.cases < wantCases {
		k.t.Errorf("checked %d cases, want %d", k.cases, wantCases)
	}
	for _, name := range []string{
		"apply-ok", "apply-err", "apply-clamped", "apply-huge",
		"Transform-ok", "Transform-err", "Compose-ok", "Compose-err",
		"Invert-ok", "Invert-err", "Normalize-ok", "position",
	} {
		if k.counts[name] == 0 {
			k.t.Errorf("no case exercised %s", name)
		}
	}
	if k.fails > 20 {
		k.t.Errorf("%d mismatches in all, first 20 shown", k.fails)
	}
	k.t.Logf("checked %d cases: %v", k.cases, k.counts)
}

// algReadLines feeds every line of r to k.
func algReadLines(k *algChecker, r io.Reader) error {
	br := bufio.NewReaderSize(r, 1<<20)
	for {
		line, err := br.ReadBytes('\n')
		if len(bytes.TrimSpace(line)) > 0 {
			k.line(line)
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// TestDifferentialNode runs the reference implementation (Node and the
// pinned ot-text-unicode) on random cases and checks this package gives
// the same results.
func TestDifferentialNode(t *testing.T) {
	node := nodetest.Node(t, "ot-text-unicode")
	n := algDiffCases()
	cmd, out, stderr := nodetest.Start(t, node, filepath.Join("..", "scripts", "otdiff", "gen.mjs"), "--n", strconv.Itoa(n), "--seed", strconv.Itoa(*algDiffSeed))
	k := algNewChecker(t)
	readErr := algReadLines(k, out)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("%v: %v\n%s", cmd.Args, err, stderr.String())
	}
	if readErr != nil {
		t.Fatalf("reading cases: %v", readErr)
	}
	k.finish(n)
}

// TestVectors checks the committed reference results, without Node.
func TestVectors(t *testing.T) {
	f, err := os.Open(algVectors)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatalf("%s: %v", algVectors, err)
	}
	k := algNewChecker(t)
	if err := algReadLines(k, zr); err != nil {
		t.Fatalf("%s: %v", algVectors, err)
	}
	k.finish(3000)
}
