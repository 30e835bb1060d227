package main

import (
	"fmt"
	"image/color"
	"path/filepath"
	"slices"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"

	"github.com/coedit/coedit/bench/loadgen"
)

// Scenario 7 runs coedit as two nodes over Redis (target "cluster"): s7a
// is scenario 1's open loop, s7b scenario 2a's closed loop, each document's
// clients spread over both nodes, so that two of each op's three receivers
// are connected to the other node; the nodes route by document
// (--advertise), so those connected to the node that is not the
// document's are passed to the one that is. Not targets': s7c is s7b with
// each document's clients on one node (coedit bench --affinity) and no
// routing, as a load balancer routing by document puts them, and s7d is
// s7b without routing: both nodes commit every document's ops.

// backlogRule is when a closed-loop cluster run shows no backlog, that is
// no delivery to the other node falling further and further behind the
// commits: every op reached every client (none pending) within a second of
// the last ack, and the cross-node fan-out's lead over the ack latency
// (per-second p99s) did not grow from the first half of the window to the
// second by more than half, plus 2 ms. A closed loop's latencies all rise
// and fall with the machine's noise; only a lead that grows is a backlog.
const backlogRule = "every op reached every client within 1 s of the last ack, and the per-second cross-node fan-out p99's excess over the ack p99 (median of the window's second half) is at most 1.5× that of the first half plus 2 ms"

// backlog reports whether r (a run over several URLs) shows a backlog,
// and the figures that say so.
func backlog(r *loadgen.Result) (bool, string) {
	first, second := halves(r.Timeline)
	grew := second > 1.5*max(first, 0)+2
	text := fmt.Sprintf("every op delivered %.0f ms after the last ack", r.FanoutDrainMS)
	if r.FanoutPending > 0 {
		text = fmt.Sprintf("%d deliveries still missing %.0f ms after the last ack", r.FanoutPending, r.FanoutDrainMS)
	}
	if len(r.Timeline) >= 2 {
		text += fmt.Sprintf("; cross-node fan-out p99 minus ack p99 per second, median of the first / second half of the window: %.1f / %.1f ms", first, second)
	}
	return r.FanoutPending > 0 || r.FanoutDrainMS > 1000 || grew, text
}

// halves returns the medians of the per-second cross-node fan-out p99's
// excess over the ack p99 in the first and second half of tl.
func halves(tl []loadgen.Second) (float64, float64) {
	var v []float64
	for _, s := range tl {
		v = append(v, s.FanoutCrossP99MS-s.AckP99MS)
	}
	if len(v) < 2 {
		return 0, 0
	}
	return median(v[:len(v)/2]), median(v[len(v)/2:])
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}

// clusterTargets checks scenario 7's two targets.
func clusterTargets(rs *results) []targetRow {
	var rows []targetRow
	one, two := rs.get("s1", "coedit"), rs.get("s7a", "cluster")
	switch {
	case two == nil || two.FanoutCross == nil:
		rows = append(rows, targetRow{"7", "two nodes over Redis: cross-node fan-out p99 within 1 ms of one node's", "–", "not measured (scenario 7 did not run: is redis-server installed?)"})
	case one == nil:
		rows = append(rows, targetRow{"7", "two nodes over Redis: cross-node fan-out p99 within 1 ms of one node's", fmt.Sprintf("two nodes %.2f ms", two.FanoutCross.P99), "no single-node run to compare with"})
	default:
		d := two.FanoutCross.P99 - one.Fanout.P99
		v := "met"
		if d > 1 {
			v = fmt.Sprintf("**missed** by %.2f ms", d-1)
		}
		m := fmt.Sprintf("two nodes %.2f ms (same node %.2f ms), one node %.2f ms: %+.2f ms", two.FanoutCross.P99, two.FanoutLocal.P99, one.Fanout.P99, d)
		if two.Late > 0 || one.Late > 0 {
			m += fmt.Sprintf(" (fell behind the schedule: two nodes %d ops late, one node %d)", two.Late, one.Late)
		}
		rows = append(rows, targetRow{"7", "two nodes over Redis: cross-node fan-out p99 within 1 ms of one node's", m, v})
	}
	if c := rs.get("s7b", "cluster"); c != nil {
		bad, text := backlog(c)
		v := "met"
		if bad {
			v = "**missed**: a backlog built up"
		}
		rows = append(rows, targetRow{"7", "two nodes, closed loop 100 × 4: never a backlog", fmt.Sprintf("%s ops/s; %s", num(c.OpsPerSec), text), v})
	}
	return rows
}

// renderCluster writes scenario 7's tables.
func renderCluster(b *strings.Builder, rs *results, images []image) {
	p := func(format string, args ...any) { fmt.Fprintf(b, format, args...) }
	p("| run | acked ops/s | ack p50 / p99 / max (ms) | fan-out to the other node p50 / p99 / max (ms) | fan-out on the same node | all fan-out | CPU (nodes + Redis) | CPU per op | context switches per op (nodes + Redis) | store write batches per op (both nodes) | generator CPU | errors | converged |\n")
	p("|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	row := func(name string, r *loadgen.Result) {
		cross, local := "–", "–"
		if r.FanoutCross != nil {
			cross, local = lat3(*r.FanoutCross), lat3(*r.FanoutLocal)
		}
		p("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %.0f%% | %s | %s |\n", name, opsCell(r), lat3(r.Ack), cross, local,
			lat3(r.Fanout), cpuPct(r), cpuPerOp(r), switchesPerOp(r), batchesPerOp(r), r.Bench.CPUPercent, errs(r), conv(r))
	}
	for _, x := range []struct{ scenario, target, name string }{
		{"s1", "coedit", "one node, open loop 2,000 ops/s (scenario 1)"},
		{"s7a", "cluster", "**two nodes**, open loop 2,000 ops/s"},
		{"s2a", "coedit", "one node, closed loop 100 × 4 (scenario 2a)"},
		{"s7b", "cluster", "**two nodes**, closed loop 100 × 4"},
		{"s7c", "cluster", "**two nodes**, closed loop 100 × 4, each document's clients on one node (`--affinity`), no routing"},
		{"s7d", "cluster", "**two nodes**, closed loop 100 × 4, spread, no routing (no `--advertise`)"},
	} {
		if r := rs.get(x.scenario, x.target); r != nil {
			row(x.name, r)
		}
	}
	p("\n")
	if c := rs.get("s7b", "cluster"); c != nil {
		bad, text := backlog(c)
		verdict := "no backlog"
		if bad {
			verdict = "**a backlog**"
		}
		p("Closed loop on two nodes: %s (%s). The rule: %s.\n\n", verdict, text, backlogRule)
		if a := rs.get("s7c", "cluster"); a != nil && a.Acked > 0 && c.Acked > 0 {
			p("With each document's clients on one node instead (not a target; what a load balancer that routes by document gives, README \"Run a cluster\"): %s against %s ops/s, ack p99 %.1f against %.1f ms. There no node passes another's clients' frames on.\n\n",
				num(a.OpsPerSec), num(c.OpsPerSec), a.Ack.P99, c.Ack.P99)
		}
		if d := rs.get("s7d", "cluster"); d != nil && d.Acked > 0 && c.Acked > 0 {
			p("Without routing (not a target; nodes without `--advertise`): %s against %s ops/s, ack p99 %.1f against %.1f ms, CPU per op %s against %s. Both nodes then commit every document's ops through Redis and race for each version.\n\n",
				num(d.OpsPerSec), num(c.OpsPerSec), d.Ack.P99, c.Ack.P99, cpuPerOp(d), cpuPerOp(c))
		}
	}
	for _, im := range images {
		p("![%s](%s)\n\n", im.title, im.path)
	}
}

// timelineRoom is how far a timeline's (linear) y axis runs past its
// highest point: room for its two-line legend.
const timelineRoom = 1.25

// plotCluster draws, per second of scenario 7's runs, the ack p99 and the
// cross-node fan-out p99: a backlog shows as a line that climbs.
func plotCluster(rs *results, dir, rel string) ([]image, error) {
	var images []image
	for _, x := range []struct{ scenario, file, title string }{
		{"s7a", "s7-open-timeline.png", "Two nodes, open loop 2,000 ops/s: p99 per second"},
		{"s7b", "s7-closed-timeline.png", "Two nodes, closed loop 100 × 4: p99 per second"},
	} {
		r := rs.get(x.scenario, "cluster")
		if r == nil || len(r.Timeline) == 0 {
			continue
		}
		p := plot.New()
		p.Title.Text = x.title
		p.X.Label.Text = "time since the run started (s)"
		p.Y.Label.Text = "p99 in that second (ms)"
		p.Y.Min = 0
		p.Add(plotter.NewGrid())
		p.Legend.Top = true
		for _, l := range []struct {
			name  string
			c     color.RGBA
			value func(loadgen.Second) float64
		}{
			{"ack", targetColors["coedit"], func(s loadgen.Second) float64 { return s.AckP99MS }},
			{"fan-out to the other node", targetColors["sharedb"], func(s loadgen.Second) float64 { return s.FanoutCrossP99MS }},
		} {
			var xys plotter.XYs
			for _, s := range r.Timeline {
				xys = append(xys, plotter.XY{X: s.T, Y: l.value(s)})
			}
			line, points, err := plotter.NewLinePoints(xys)
			if err != nil {
				return nil, err
			}
			line.Color, points.Color = l.c, l.c
			line.Width = vg.Points(1.5)
			p.Add(line, points)
			p.Legend.Add(l.name, line, points)
		}
		// Room above the highest point for the legend (top right).
		p.Y.Max *= timelineRoom
		path := filepath.Join(dir, x.file)
		if err := p.Save(8*vg.Inch, 4*vg.Inch, path); err != nil {
			return nil, fmt.Errorf("plot %s: %w", x.file, err)
		}
		images = append(images, image{x.title, filepath.ToSlash(filepath.Join(rel, x.file))})
	}
	return images, nil
}
