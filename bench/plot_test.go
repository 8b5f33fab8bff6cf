package bench

import (
	"bytes"
	"image/png"
	"os"
	"path/filepath"
	"testing"
)

func TestPlotRecallQPS(t *testing.T) {
	dir := t.TempDir()
	series := []Series{
		{Name: "ivf", Points: []Point{{0.99, 800}, {0.62, 9000}, {0.9, 2500}, {0.97, 1200}}},
		{Name: "faiss", Points: []Point{{0.6, 7000}, {0.88, 2000}, {0.98, 700}, {0.5, 0}}}, // QPS 0 is left out
		{Name: "one point", Points: []Point{{0.75, 4000}}},
	}
	path := filepath.Join(dir, "recall-qps.png")
	if err := PlotRecallQPS(path, "fmnist, k=10", series); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("not a PNG: %v", err)
	}
	if r := img.Bounds(); r.Dx() < 400 || r.Dy() < 200 {
		t.Errorf("image is %v", r)
	}
	// Not blank: lines in colour cover some pixels.
	colored := 0
	for y := img.Bounds().Min.Y; y < img.Bounds().Max.Y; y += 2 {
		for x := img.Bounds().Min.X; x < img.Bounds().Max.X; x += 2 {
			r, g, b, _ := img.At(x, y).RGBA()
			if max(r, g, b)-min(r, g, b) > 0x2000 {
				colored++
			}
		}
	}
	if colored < 50 {
		t.Errorf("only %d coloured pixels sampled", colored)
	}

	// A narrow QPS range (under a decade) still draws.
	if err := PlotRecallQPS(filepath.Join(dir, "narrow.png"), "", []Series{{Name: "x", Points: []Point{{0.9, 1200}, {0.95, 1100}}}}); err != nil {
		t.Fatal(err)
	}
	if err := PlotRecallQPS(filepath.Join(dir, "empty.png"), "", []Series{{Name: "x", Points: []Point{{0.9, 0}}}}); err == nil {
		t.Error("no drawable points: no error")
	}
	if err := PlotRecallQPS(filepath.Join(dir, "no-such-dir", "x.png"), "", series); err == nil {
		t.Error("unwritable path: no error")
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 2 {
		t.Errorf("dir holds %v", entries)
	}
}

func TestLogTicks(t *testing.T) {
	ticks := logTicks{}.Ticks(900, 12000)
	var labels []string
	for _, tk := range ticks {
		if tk.Label != "" {
			labels = append(labels, tk.Label)
		}
	}
	if got := len(labels); got != 4 { // 1000, 2000, 5000, 10000
		t.Errorf("labels %v", labels)
	}
	if len(logTicks{}.Ticks(0, 10)) != 0 {
		t.Error("ticks for a non-positive range")
	}
}
