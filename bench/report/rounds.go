package main

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/coedit/coedit/bench/loadgen"
)

// Rounds. scripts/bench.sh runs scenarios 1, 2 and 6 several times
// (ROUNDS), each round every server once, one after another, and names a
// round's file SCENARIO.TARGET@ROUND.json. A shared machine moves single
// runs by tens of percent, and it drifts over minutes: two servers run
// back to back see nearly the same machine, two rounds apart may not. So
// the page shows each figure as the median of the rounds (mergeRounds),
// lists every round's figures beside it (renderRounds), and a target's
// ratio is the median of the per-round ratios (roundRatios): each round
// compares coedit with a reference run next to it.

// mergeRounds returns one result that stands for the rounds: the median
// of each figure over them (the server's figures and coedit's store
// batches over the rounds that have them), except the worst case where a
// median would hide a round's trouble: the largest max latency, the most
// ops late or unsent and the slowest drain, the errors and missing
// deliveries of all rounds added up, and converged only if every checked
// round converged.
func mergeRounds(rounds []loadgen.Result) loadgen.Result {
	m := rounds[0]
	f := func(get func(*loadgen.Result) float64) float64 {
		v := make([]float64, len(rounds))
		for i := range rounds {
			v[i] = get(&rounds[i])
		}
		return mid(v)
	}
	worst := func(get func(*loadgen.Result) float64) float64 {
		w := 0.0
		for i := range rounds {
			w = max(w, get(&rounds[i]))
		}
		return w
	}
	m.OpsPerSec = f(func(r *loadgen.Result) float64 { return r.OpsPerSec })
	m.Acked = uint64(f(func(r *loadgen.Result) float64 { return float64(r.Acked) }))
	m.Late = uint64(worst(func(r *loadgen.Result) float64 { return float64(r.Late) }))
	m.Unsent = uint64(worst(func(r *loadgen.Result) float64 { return float64(r.Unsent) }))
	m.FanoutDrainMS = worst(func(r *loadgen.Result) float64 { return r.FanoutDrainMS })
	m.IdleBytesPerConn = f(func(r *loadgen.Result) float64 { return r.IdleBytesPerConn })
	m.Ack = mergeSummaries(rounds, func(r *loadgen.Result) *loadgen.Summary { return &r.Ack })
	m.Fanout = mergeSummaries(rounds, func(r *loadgen.Result) *loadgen.Summary { return &r.Fanout })
	m.Bench.CPUPercent = f(func(r *loadgen.Result) float64 { return r.Bench.CPUPercent })
	m.Bench.CPUSeconds = f(func(r *loadgen.Result) float64 { return r.Bench.CPUSeconds })
	m.Errors, m.FanoutPending, m.Converged, m.ConvergeIssue = nil, 0, nil, ""
	for _, r := range rounds {
		for k, n := range r.Errors {
			if m.Errors == nil {
				m.Errors = map[string]uint64{}
			}
			m.Errors[k] += n
		}
		m.FanoutPending += r.FanoutPending
		switch {
		case r.Converged == nil:
		case !*r.Converged:
			m.Converged, m.ConvergeIssue = r.Converged, r.ConvergeIssue
		case m.Converged == nil:
			m.Converged = r.Converged
		}
	}
	// The server's figures over the rounds that have them: a run that
	// failed acknowledges nothing and has none (its errors show above).
	var measured []loadgen.Result
	for _, r := range rounds {
		if r.Server != nil && r.Acked > 0 {
			measured = append(measured, r)
		}
	}
	m.Server = nil
	if len(measured) > 0 {
		g := func(get func(*loadgen.ProcFigures) float64) float64 {
			v := make([]float64, len(measured))
			for i := range measured {
				v[i] = get(measured[i].Server)
			}
			return mid(v)
		}
		m.Server = &loadgen.ProcFigures{
			CPUSeconds:       g(func(p *loadgen.ProcFigures) float64 { return p.CPUSeconds }),
			CPUPercent:       g(func(p *loadgen.ProcFigures) float64 { return p.CPUPercent }),
			CPUPerOpUS:       g(func(p *loadgen.ProcFigures) float64 { return p.CPUPerOpUS }),
			RSSBytes:         int64(g(func(p *loadgen.ProcFigures) float64 { return float64(p.RSSBytes) })),
			CtxSwitchesPerOp: g(func(p *loadgen.ProcFigures) float64 { return p.CtxSwitchesPerOp }),
		}
	}
	m.ServerShares = mergeShares(measured)
	m.StoreBatchesPerOp = nil
	var batches []float64
	for _, r := range rounds {
		if r.StoreBatchesPerOp != nil {
			batches = append(batches, *r.StoreBatchesPerOp)
		}
	}
	if len(batches) > 0 {
		v := mid(batches)
		m.StoreBatchesPerOp = &v
	}
	return m
}

// mergeShares is mergeRounds for the server's CPU by process name: for
// each name any round has, the median over the rounds that have it, and
// the most processes of that name a round counted. The parts' medians
// need not add up to the median of the whole.
func mergeShares(rounds []loadgen.Result) []loadgen.ProcShare {
	type acc struct {
		pct, perOp []float64
		procs      int
	}
	by := map[string]*acc{}
	for _, r := range rounds {
		for _, sh := range r.ServerShares {
			a := by[sh.Name]
			if a == nil {
				a = &acc{}
				by[sh.Name] = a
			}
			a.pct, a.perOp, a.procs = append(a.pct, sh.CPUPercent), append(a.perOp, sh.CPUPerOpUS), max(a.procs, sh.Procs)
		}
	}
	var out []loadgen.ProcShare
	for _, name := range slices.Sorted(maps.Keys(by)) {
		a := by[name]
		out = append(out, loadgen.ProcShare{Name: name, Procs: a.procs, CPUPercent: mid(a.pct), CPUPerOpUS: mid(a.perOp)})
	}
	return out
}

// mergeSummaries is mergeRounds for one latency summary: the median of
// each quantile, the largest max.
func mergeSummaries(rounds []loadgen.Result, get func(*loadgen.Result) *loadgen.Summary) loadgen.Summary {
	q := func(of func(*loadgen.Summary) float64) float64 {
		v := make([]float64, len(rounds))
		for i := range rounds {
			v[i] = of(get(&rounds[i]))
		}
		return mid(v)
	}
	s := loadgen.Summary{
		Count: uint64(q(func(s *loadgen.Summary) float64 { return float64(s.Count) })),
		Mean:  q(func(s *loadgen.Summary) float64 { return s.Mean }),
		P50:   q(func(s *loadgen.Summary) float64 { return s.P50 }),
		P90:   q(func(s *loadgen.Summary) float64 { return s.P90 }),
		P99:   q(func(s *loadgen.Summary) float64 { return s.P99 }),
		P999:  q(func(s *loadgen.Summary) float64 { return s.P999 }),
	}
	for i := range rounds {
		s.Max = max(s.Max, get(&rounds[i]).Max)
	}
	return s
}

// mid is the median of v: the middle value, or the mean of the two
// middle ones.
func mid(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// roundRatios returns metric's ratio of coedit's run to the reference's,
// round by round, over the rounds both ran with a value (paired by round
// number; a run that failed has none, or no file), when there are at
// least two: the side-by-side comparison a target asks for, one per
// round. It returns nil otherwise.
func (rs *results) roundRatios(scenario, target, refScenario, refTarget string, metric func(*loadgen.Result) (float64, bool)) []float64 {
	a, b := rs.one[scenario][target], rs.one[refScenario][refTarget]
	if a == nil || b == nil {
		return nil
	}
	var out []float64
	for i, n := range a.roundNos {
		j := slices.Index(b.roundNos, n)
		if j < 0 {
			continue
		}
		v, ok1 := metric(&a.rounds[i])
		ref, ok2 := metric(&b.rounds[j])
		if ok1 && ok2 && ref > 0 {
			out = append(out, v/ref)
		}
	}
	if len(out) < 2 {
		return nil
	}
	return out
}

// The metrics the targets compare, and whether a run has each.
func cpuPerOpUS(r *loadgen.Result) (float64, bool) {
	if r.Server == nil || r.Acked == 0 {
		return 0, false
	}
	return r.Server.CPUPerOpUS, true
}

func ackP99(r *loadgen.Result) (float64, bool)    { return r.Ack.P99, r.Ack.Count > 0 }
func fanoutP99(r *loadgen.Result) (float64, bool) { return r.Fanout.P99, r.Fanout.Count > 0 }
func opsPerSec(r *loadgen.Result) (float64, bool) { return r.OpsPerSec, r.Acked > 0 }

// renderRounds lists every round of scenario s's runs, for the scenarios
// that ran more than once: what the medians in the table above come from.
// Columns are rounds by number; a round a server has no file for shows a
// dash.
func renderRounds(b *strings.Builder, rs *results, s scenario) {
	var nos []int
	for _, t := range s.targets {
		if x := rs.one[s.key][t]; x != nil {
			for _, n := range x.roundNos {
				if !slices.Contains(nos, n) {
					nos = append(nos, n)
				}
			}
		}
	}
	if len(nos) < 2 {
		return
	}
	slices.Sort(nos)
	p := func(format string, args ...any) { fmt.Fprintf(b, format, args...) }
	p("Each figure above is the median of the rounds below (the worst round's max latency, ops late or unsent and drain; every round's errors and missing deliveries). A round runs every server once, one after another. Every round, %d in all:\n\n", len(nos))
	p("| server | acked ops/s | ack p99 (ms) | fan-out p99 (ms) | server CPU per op (µs) |\n|---|---|---|---|---|\n")
	for _, t := range s.targets {
		x := rs.one[s.key][t]
		if x == nil || len(x.rounds) == 0 {
			continue
		}
		col := func(get func(*loadgen.Result) (float64, bool), format func(float64) string) string {
			var parts []string
			for _, n := range nos {
				cell := "–"
				if i := slices.Index(x.roundNos, n); i >= 0 {
					if v, ok := get(&x.rounds[i]); ok {
						cell = format(v)
					}
				}
				parts = append(parts, cell)
			}
			return strings.Join(parts, " · ")
		}
		ms := func(v float64) string { return fmt.Sprintf("%.2f", v) }
		whole := func(v float64) string { return num(v) }
		p("| %s | %s | %s | %s | %s |\n", targetNames[t], col(opsPerSec, whole), col(ackP99, ms), col(fanoutP99, ms), col(cpuPerOpUS, whole))
	}
	p("\n")
}
