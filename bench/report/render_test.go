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
	page := render(rs, meta{}, nil, nil)
	for _, want := range []string{"## 2a. Closed loop, 100 × 4", "| coedit (`--sync always`) | 4,000 |", "## 3. Latency against offered load", "| 4,000 | 3,000, 400.0 ms"} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q:\n%s", want, page)
		}
	}
}

// TestClusterTargets checks scenario 7's verdicts: cross-node fan-out
// p99 within 1 ms of the single node's, and the closed loop's backlog
// rule (deliveries missing, a slow drain, or a p99 that climbs).
func TestClusterTargets(t *testing.T) {
	sum := func(p99 float64) *loadgen.Summary { return &loadgen.Summary{Count: 1, P99: p99} }
	// Noise moves acks and fan-out together: no backlog. Fan-out pulling
	// away from the acks is one.
	noisy := []loadgen.Second{{AckP99MS: 2, FanoutCrossP99MS: 3}, {AckP99MS: 9, FanoutCrossP99MS: 10}, {AckP99MS: 40, FanoutCrossP99MS: 41}, {AckP99MS: 90, FanoutCrossP99MS: 92}}
	climbing := []loadgen.Second{{AckP99MS: 2, FanoutCrossP99MS: 3}, {AckP99MS: 2, FanoutCrossP99MS: 4}, {AckP99MS: 2, FanoutCrossP99MS: 30}, {AckP99MS: 3, FanoutCrossP99MS: 60}}
	flat := noisy
	for _, tc := range []struct {
		name        string
		one, cross  float64
		drain       float64
		pending     int
		timeline    []loadgen.Second
		fan, closed string
	}{
		{"within", 5, 5.9, 20, 0, flat, "met", "met"},
		{"over by 0.5 ms", 5, 6.5, 20, 0, flat, "**missed** by 0.50 ms", "met"},
		{"pending", 5, 5, 20, 3, flat, "met", "**missed**: a backlog built up"},
		{"slow drain", 5, 5, 1500, 0, flat, "met", "**missed**: a backlog built up"},
		{"climbing", 5, 5, 20, 0, climbing, "met", "**missed**: a backlog built up"},
	} {
		open := loadgen.Result{Mode: "open", FanoutCross: sum(tc.cross), FanoutLocal: sum(1)}
		closed := loadgen.Result{Mode: "closed", Acked: 50000, OpsPerSec: 5000, FanoutCross: sum(tc.cross), FanoutLocal: sum(1),
			FanoutDrainMS: tc.drain, FanoutPending: tc.pending, Timeline: tc.timeline}
		rs := &results{one: map[string]map[string]*run{
			"s1":  {"coedit": {res: loadgen.Result{Mode: "open", Fanout: loadgen.Summary{Count: 1, P99: tc.one}}}},
			"s7a": {"cluster": {res: open}},
			"s7b": {"cluster": {res: closed}},
			"s7c": {"cluster": {res: loadgen.Result{Mode: "closed", Affinity: true, Acked: 90000, OpsPerSec: 9000, Ack: loadgen.Summary{Count: 1, P99: 60}}}},
		}}
		rows := clusterTargets(rs)
		if len(rows) != 2 || rows[0].verdict != tc.fan || rows[1].verdict != tc.closed {
			t.Errorf("%s: clusterTargets verdicts = %+v, want %q and %q", tc.name, rows, tc.fan, tc.closed)
		}
		if page := render(rs, meta{}, nil, nil); !strings.Contains(page, "## 7. Two nodes over Redis") || !strings.Contains(page, "**two nodes**, closed loop 100 × 4") ||
			!strings.Contains(page, "each document's clients on one node (`--affinity`)") || !strings.Contains(page, "9,000 against 5,000 ops/s") {
			t.Errorf("%s: page lacks scenario 7's section or its run by document:\n%s", tc.name, page)
		}
	}
	if rows := clusterTargets(&results{one: map[string]map[string]*run{}}); len(rows) != 1 || !strings.HasPrefix(rows[0].verdict, "not measured") {
		t.Errorf("clusterTargets without scenario 7 = %+v, want one row, not measured", rows)
	}
}

// TestHocuspocusTable checks the table of coedit beside Hocuspocus: a row
// per measure both servers have, with coedit's value divided by
// Hocuspocus's, and none without Hocuspocus's run.
func TestHocuspocusTable(t *testing.T) {
	res := func(ops, cpu float64) *run {
		return &run{res: loadgen.Result{Mode: "closed", OpsPerSec: ops, Acked: 1000, Server: &loadgen.ProcFigures{CPUPerOpUS: cpu}}}
	}
	rs := &results{one: map[string]map[string]*run{
		"s2a": {"coedit": res(30000, 40), "hocuspocus": res(7500, 120)},
		"s2b": {"coedit": res(12000, 80)},
	}}
	rows := besideRows(rs, "hocuspocus")
	if len(rows) != 1 {
		t.Fatalf("besideRows = %+v, want one row (2a; 2b has no Hocuspocus run)", rows)
	}
	if r := rows[0]; r.coedit != "30,000 ops/s" || r.other != "7,500 ops/s" || r.ratio != "4.00×" {
		t.Errorf("row %+v, want 30,000 and 7,500 ops/s, 4.00×", r)
	}
	if got := ratioText(27.79, 8456); got != "0.003×" {
		t.Errorf("ratioText(27.79, 8456) = %q, want 0.003×", got)
	}
	page := render(rs, meta{}, nil, nil)
	if !strings.Contains(page, "## coedit beside Hocuspocus") || !strings.Contains(page, "Hocuspocus 3 (in memory)") {
		t.Error("the page has no Hocuspocus table or row")
	}
	if strings.Contains(page, "beside ShareDB on PostgreSQL") || strings.Contains(page, "| PostgreSQL |") || strings.Contains(page, "For ShareDB on PostgreSQL") {
		t.Error("the page has a ShareDB on PostgreSQL table or version without its runs")
	}
}

// TestShareDBOnPostgreSQLTable: a run of ShareDB on PostgreSQL gets its
// own table beside coedit, a row in the scenario's table, and its server's
// version at the top; it changes no target's verdict, which is against
// ShareDB in memory.
func TestShareDBOnPostgreSQLTable(t *testing.T) {
	res := func(ops, cpu float64) *run {
		return &run{res: loadgen.Result{Mode: "closed", OpsPerSec: ops, Acked: 1000, Server: &loadgen.ProcFigures{CPUPerOpUS: cpu}}}
	}
	rs := &results{one: map[string]map[string]*run{
		"s2a": {"coedit": res(30000, 40), "sharedb": res(10000, 100), "sharedb-pg": res(600, 2000)},
	}}
	rows := besideRows(rs, "sharedb-pg")
	if len(rows) != 1 || rows[0].other != "600 ops/s" || rows[0].ratio != "50.00×" {
		t.Fatalf("besideRows = %+v, want one row: 600 ops/s, 50.00×", rows)
	}
	page := render(rs, meta{PostgreSQL: "15.20", SharedbPostgres: "5.0.1"}, nil, nil)
	for _, want := range []string{"## coedit beside ShareDB on PostgreSQL", "| ShareDB 7 on PostgreSQL (durable) | 600 |", "| PostgreSQL | 15.20, sharedb-postgres 5.0.1 |",
		"100 documents × 4 clients, one op in flight per client. For ShareDB on PostgreSQL the server columns"} {
		if !strings.Contains(page, want) {
			t.Errorf("the page lacks %q", want)
		}
	}
	// Its CPU split by process name, the median of the rounds for each.
	round := func(node, pg float64) loadgen.Result {
		return loadgen.Result{Mode: "closed", OpsPerSec: 600, Acked: 1000, Server: &loadgen.ProcFigures{CPUPerOpUS: node + pg},
			ServerShares: []loadgen.ProcShare{{Name: "node", Procs: 1, CPUPerOpUS: node}, {Name: "postgres", Procs: 15, CPUPerOpUS: pg}}}
	}
	m := mergeRounds([]loadgen.Result{round(300, 1700), round(400, 1900), round(350, 2500)})
	// A name the first round lacks still counts, over the rounds that
	// have it.
	first := round(300, 1700)
	first.ServerShares = first.ServerShares[:1]
	if sh := mergeShares([]loadgen.Result{first, round(400, 1900), round(350, 2500)}); len(sh) != 2 || sh[1].Name != "postgres" || sh[1].CPUPerOpUS != 2200 {
		t.Errorf("mergeShares without postgres in the first round = %+v, want postgres at the median of 1,900 and 2,500", sh)
	}
	if got := cpuPerOp(&m); got != "2,300 µs (node 350, postgres ×15 1,900)" {
		t.Errorf("merged CPU per op cell = %q, want 2,300 µs (node 350, postgres ×15 1,900)", got)
	}
	for _, row := range checkTargets(rs) {
		if strings.Contains(row.measured, "600") {
			t.Errorf("target row %+v uses ShareDB on PostgreSQL's run", row)
		}
	}
}

// TestMissingDeliveriesAndFallingBehindShow: deliveries that never
// arrived are shown with a run's errors, and a run of either server
// that fell behind its schedule is named in the Hocuspocus table.
func TestMissingDeliveriesAndFallingBehindShow(t *testing.T) {
	if got := errs(&loadgen.Result{FanoutPending: 3}); got != "**3 deliveries missing**" {
		t.Errorf("errs with 3 missing deliveries = %q", got)
	}
	if got := errs(&loadgen.Result{}); got != "none" {
		t.Errorf("errs of a clean run = %q, want none", got)
	}
	open := func(ops float64, late uint64) *run {
		return &run{res: loadgen.Result{Mode: "open", OfferedOps: 400, OpsPerSec: ops, Late: late, Acked: 1000,
			Fanout: loadgen.Summary{Count: 1, P99: 30}}}
	}
	rs := &results{one: map[string]map[string]*run{"s4": {"coedit": open(300, 5), "hocuspocus": open(400, 0)}}}
	rows := besideRows(rs, "hocuspocus")
	if len(rows) != 1 || !strings.Contains(rows[0].coedit, "fell behind: 300 of 400") || strings.Contains(rows[0].other, "fell behind") {
		t.Errorf("rows %+v: want coedit's cell, not Hocuspocus's, to say it fell behind", rows)
	}
	if got := ratioText(0, 2000); got != "–" {
		t.Errorf("ratioText(0, 2000) = %q, want a dash", got)
	}
}
