package main

import (
	"fmt"
	"image/color"
	"path/filepath"
	"sort"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"

	"github.com/coedit/coedit/bench/loadgen"
)

var targetColors = map[string]color.RGBA{
	"coedit":  {R: 0x1f, G: 0x77, B: 0xb4, A: 0xff},
	"sharedb": {R: 0xd6, G: 0x27, B: 0x28, A: 0xff},
	"relay":   {R: 0x7f, G: 0x7f, B: 0x7f, A: 0xff},
	// Hocuspocus: orange, apart from ShareDB's red.
	"hocuspocus": {R: 0xff, G: 0x7f, B: 0x0e, A: 0xff},
	// ShareDB on PostgreSQL: purple, ShareDB's red toward the blue of
	// the other durable server.
	"sharedb-pg": {R: 0x94, G: 0x67, B: 0xbd, A: 0xff},
}

// image is one plot on the page.
type image struct{ title, path string }

// plotSteps draws scenario 3's steps: ack p99, fan-out p99 and server CPU
// per op against offered load, one line per server. It returns the images
// with paths relative to the page.
func plotSteps(rs *results, dir, rel string) ([]image, error) {
	if len(rs.steps) == 0 {
		return nil, nil
	}
	specs := []struct {
		file, title, y string
		limit          bool // draw scenario 3's 50 ms line
		value          func(*loadgen.Result) float64
	}{
		{"s3-ack-p99.png", "Ack latency p99 against offered load (100 docs × 4 clients)", "ack p99 (ms, log scale)", true,
			func(r *loadgen.Result) float64 { return r.Ack.P99 }},
		{"s3-fanout-p99.png", "Fan-out latency p99 against offered load (100 docs × 4 clients)", "fan-out p99 (ms, log scale)", true,
			func(r *loadgen.Result) float64 { return r.Fanout.P99 }},
		{"s3-ack-p50.png", "Ack latency p50 against offered load (100 docs × 4 clients)", "ack p50 (ms, log scale)", false,
			func(r *loadgen.Result) float64 { return r.Ack.P50 }},
		{"s3-cpu-per-op.png", "Server CPU per acknowledged op against offered load", "server CPU per op (µs, log scale)", false,
			func(r *loadgen.Result) float64 {
				if r.Server == nil {
					return 0
				}
				return r.Server.CPUPerOpUS
			}},
	}
	var images []image
	for _, s := range specs {
		p := plot.New()
		p.Title.Text = s.title
		p.X.Label.Text = "offered load (ops/s, log scale)"
		p.X.Scale = plot.LogScale{}
		p.X.Tick.Marker = rateTicks(rs)
		p.Y.Label.Text = s.y
		p.Add(plotter.NewGrid())
		p.Y.Scale = plot.LogScale{}
		p.Y.Tick.Marker = plot.LogTicks{Prec: -1}
		// The legend sits at the top left, in the room left above the
		// data (legendRoom).
		p.Legend.Top = true
		p.Legend.Left = true
		for i, t := range withDurable {
			var xys plotter.XYs
			for _, x := range rs.steps[t] {
				v := s.value(&x.res)
				if v <= 0 {
					continue
				}
				xys = append(xys, plotter.XY{X: x.rate, Y: v})
			}
			if len(xys) == 0 {
				continue
			}
			line, points, err := plotter.NewLinePoints(xys)
			if err != nil {
				return nil, err
			}
			line.Color, points.Color = targetColors[t], targetColors[t]
			line.Width = vg.Points(1.5)
			points.Shape = []draw.GlyphDrawer{draw.CircleGlyph{}, draw.BoxGlyph{}, draw.TriangleGlyph{}}[i%3]
			p.Add(line, points)
			p.Legend.Add(plainNames[t], line, points)
		}
		// Room above the highest line for the legend: on a log scale a
		// factor is a fixed height.
		p.Y.Max *= legendRoom
		if s.limit {
			limit := plotter.NewFunction(func(float64) float64 { return 50 })
			limit.Color = color.RGBA{A: 0xff} // black: orange is Hocuspocus
			limit.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
			p.Add(limit)
			p.Legend.Add("50 ms (scenario 3's limit)", limit)
		}
		path := filepath.Join(dir, s.file)
		if err := p.Save(8*vg.Inch, 4.5*vg.Inch, path); err != nil {
			return nil, fmt.Errorf("plot %s: %w", s.file, err)
		}
		images = append(images, image{s.title, filepath.ToSlash(filepath.Join(rel, s.file))})
	}
	return images, nil
}

// legendRoom is how far a plot's (log-scale) y axis runs past its
// highest point: about a third of the plot's height over four decades of
// data, what the legend of five servers and the limit takes.
const legendRoom = 30

// rateTicks labels the x axis at the offered loads that were stepped.
func rateTicks(rs *results) plot.ConstantTicks {
	seen := map[float64]bool{}
	var ticks plot.ConstantTicks
	for _, runs := range rs.steps {
		for _, x := range runs {
			if !seen[x.rate] {
				seen[x.rate] = true
				ticks = append(ticks, plot.Tick{Value: x.rate, Label: num(x.rate)})
			}
		}
	}
	sort.Slice(ticks, func(i, j int) bool { return ticks[i].Value < ticks[j].Value })
	return ticks
}

var plainNames = map[string]string{"coedit": "coedit (--sync always)", "sharedb": "ShareDB 7 (in memory)", "hocuspocus": "Hocuspocus 3 (in memory)", "relay": "bare relay (ceiling)", "sharedb-pg": "ShareDB 7 on PostgreSQL"}
