package bench

import (
	"errors"
	"fmt"
	"io"
	"math"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

// Point is one measurement of an engine: recall@k and queries per second
// at one setting (nprobe, refine).
type Point struct {
	Recall, QPS float64
}

// Series is one engine's curve in a recall–QPS chart.
type Series struct {
	Name   string
	Points []Point
}

// PlotRecallQPS draws the series as lines with points, recall on the x axis
// and QPS on a log y axis (the layout of ann-benchmarks' charts: up and to
// the right is better), with a legend, and writes the chart to path. The
// format follows path's extension (.png, .svg or .pdf; none means PNG); the
// file appears atomically. Points are joined in order of recall; points
// with a QPS ≤ 0 or a NaN cannot be drawn on a log axis and are left out.
func PlotRecallQPS(path, title string, series []Series) error {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = "recall"
	p.Y.Label.Text = "queries per second (log scale)"
	p.Y.Scale = plot.LogScale{}
	p.Y.Tick.Marker = logTicks{}
	p.Add(plotter.NewGrid())
	p.Legend.Left = true // curves fall to the right: the bottom left is free
	p.Legend.Top = false

	minR, maxR := math.Inf(1), math.Inf(-1)
	minQ, maxQ := math.Inf(1), math.Inf(-1)
	drawn := 0
	for i, s := range series {
		pts := make(plotter.XYs, 0, len(s.Points))
		for _, pt := range s.Points {
			if pt.QPS > 0 && !math.IsNaN(pt.Recall) && !math.IsInf(pt.QPS, 0) && !math.IsInf(pt.Recall, 0) {
				pts = append(pts, plotter.XY{X: pt.Recall, Y: pt.QPS})
			}
		}
		if len(pts) == 0 {
			continue
		}
		slices.SortStableFunc(pts, func(a, b plotter.XY) int {
			if a.X != b.X {
				return cmpFloat(a.X, b.X)
			}
			return cmpFloat(b.Y, a.Y)
		})
		line, points, err := plotter.NewLinePoints(pts)
		if err != nil {
			return fmt.Errorf("bench: plot %s: series %q: %w", path, s.Name, err)
		}
		line.Color = plotutil.Color(i)
		line.Width = vg.Points(1.5)
		points.Color = plotutil.Color(i)
		points.Shape = plotutil.Shape(i)
		p.Add(line, points)
		p.Legend.Add(s.Name, line, points)
		for _, xy := range pts {
			minR, maxR = min(minR, xy.X), max(maxR, xy.X)
			minQ, maxQ = min(minQ, xy.Y), max(maxQ, xy.Y)
		}
		drawn++
	}
	if drawn == 0 {
		return errors.New("bench: plot: no points to draw")
	}
	// Pad the ranges so that a single point or a flat curve still has an
	// axis, and points do not sit on the frame.
	padR := max(0.02, (maxR-minR)*0.05)
	p.X.Min, p.X.Max = minR-padR, maxR+padR
	if maxR <= 1 {
		p.X.Max = min(p.X.Max, 1.005)
	}
	p.Y.Min, p.Y.Max = minQ/1.25, maxQ*1.25

	format := strings.TrimPrefix(strings.ToLower(filepath.Ext(path)), ".")
	if format == "" {
		format = "png"
	}
	wt, err := p.WriterTo(8*vg.Inch, 5*vg.Inch, format)
	if err != nil {
		return fmt.Errorf("bench: plot %s: %w", path, err)
	}
	return writeFileAtomic(path, func(w io.Writer) error {
		if _, err := wt.WriteTo(w); err != nil {
			return fmt.Errorf("bench: plot %s: %w", path, err)
		}
		return nil
	})
}

func cmpFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// logTicks labels 1, 2 and 5 times the powers of ten in range, and marks
// the other integer multiples as minor ticks, so that an axis spanning less
// than a decade still has labels.
type logTicks struct{}

func (logTicks) Ticks(lo, hi float64) []plot.Tick {
	if !(lo > 0 && hi >= lo) {
		return nil
	}
	var ticks []plot.Tick
	for e := math.Floor(math.Log10(lo)); e <= math.Ceil(math.Log10(hi)); e++ {
		p := math.Pow(10, e)
		for m := 1; m < 10; m++ {
			v := float64(m) * p
			if v < lo || v > hi {
				continue
			}
			t := plot.Tick{Value: v}
			if m == 1 || m == 2 || m == 5 {
				t.Label = strconv.FormatFloat(v, 'f', -1, 64)
			}
			ticks = append(ticks, t)
		}
	}
	return ticks
}
