package main

import (
	"strings"
	"testing"

	"github.com/coedit/coedit/bench/loadgen"
)

func TestRatioRowVerdicts(t *testing.T) {
	for _, tc := range []struct {
		v, ref, want float64
		atLeast      bool
		verdict      string
	}{
		{100, 200, 2.0 / 3, false, "met"},                         // half the CPU: within two thirds
		{300, 200, 2.0 / 3, false, "**missed**: needs 2.2× less"}, // 1.5× where ⅔ was wanted
		{9000, 3000, 3, true, "met"},
		{3000, 3000, 3, true, "**missed**: needs 3.0× more"},
		{1, 0, 1, true, "reference is 0: not comparable"},
	} {
		got := ratioRow("1", "t", tc.v, tc.ref, tc.want, tc.atLeast, "u")
		if got.verdict != tc.verdict {
			t.Errorf("ratioRow(%v, %v, want %v, atLeast %v) verdict = %q, want %q", tc.v, tc.ref, tc.want, tc.atLeast, got.verdict, tc.verdict)
		}
	}
}

// TestHeldTextAndRender checks scenario 3's rule (a step is held at 95%
// of its load with p99 ≤ 50 ms) and that the page puts each scenario
// under its heading.
func TestHeldTextAndRender(t *testing.T) {
	step := func(rate, ops, p99 float64) *run {
		return &run{scenario: "s3", target: "coedit", rate: rate,
			res: loadgen.Result{Mode: "open", OfferedOps: rate, OpsPerSec: ops, Ack: loadgen.Summary{Count: 1, P99: p99}}}
	}
	rs := &results{one: map[string]map[string]*run{"s2a": {"coedit": {res: loadgen.Result{Mode: "closed", OpsPerSec: 4000, Acked: 40000}}}},
		steps: map[string][]*run{"coedit": {step(1000, 1000, 3), step(2000, 1990, 20), step(4000, 3000, 400)}, "sharedb": {step(1000, 990, 70)}}}
	if got := heldText(rs, "coedit"); got != "2,000 ops/s" {
		t.Errorf("heldText(coedit) = %q, want 2,000 ops/s", got)
	}
	if got := heldText(rs, "sharedb"); got != "below 1,000 ops/s (no step held)" {
		t.Errorf("heldText(sharedb) = %q, want below 1,000 ops/s (no step held)", got)
	}
	page := render(rs, meta{}, nil)
	for _, want := range []string{"## 2a. Closed loop, 100 × 4", "| coedit (`--sync always`) | 4,000 |", "## 3. Latency against offered load", "| 4,000 | 3,000, 400.0 ms"} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q:\n%s", want, page)
		}
	}
}
