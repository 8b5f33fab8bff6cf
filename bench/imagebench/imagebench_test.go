package imagebench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"lookalike/embed"
)

func TestSamplePrefix(t *testing.T) {
	var files []File
	for i := range 100 {
		files = append(files, File{Path: fmt.Sprint(i), Label: "x"})
	}
	all := Sample(files, 0, 7)
	if len(all) != 100 {
		t.Fatalf("all: %d files", len(all))
	}
	seen := map[string]bool{}
	for _, f := range all {
		seen[f.Path] = true
	}
	if len(seen) != 100 {
		t.Fatal("not a permutation")
	}
	if some := Sample(files, 10, 7); !slices.Equal(some, all[:10]) {
		t.Fatal("a smaller sample is not a prefix of a larger one")
	}
	if other := Sample(files, 10, 8); slices.Equal(other, all[:10]) {
		t.Fatal("another seed gave the same sample")
	}
	if files[0].Path != "0" || files[99].Path != "99" {
		t.Fatal("Sample modified its input")
	}
}

func TestPrecisionAtK(t *testing.T) {
	// Two tight clusters on two axes, labelled a and b; one a sits in b's
	// cluster. k = 2: each a's two nearest others.
	vecs := []float32{
		1, 0, // a0
		0.99, 0.141, // a1
		0.98, 0.199, // a2
		0.1, 0.995, // a3: among the bs
		0, 1, // b0
		0.141, 0.99, // b1
	}
	labels := []string{"a", "a", "a", "a", "b", "b"}
	for i := 0; i < len(vecs); i += 2 {
		n := math.Hypot(float64(vecs[i]), float64(vecs[i+1]))
		vecs[i], vecs[i+1] = float32(float64(vecs[i])/n), float32(float64(vecs[i+1])/n)
	}
	p, per, err := PrecisionAtK(vecs, 2, labels, 2)
	if err != nil {
		t.Fatal(err)
	}
	// a0, a1, a2: both neighbours are as (1 each). a3: b0, b1 (0).
	// b0: a3, b1 (0.5). b1: b0 and a3 (0.5).
	want := (1 + 1 + 1 + 0 + 0.5 + 0.5) / 6
	if math.Abs(p-want) > 1e-9 || math.Abs(per["a"]-0.75) > 1e-9 || math.Abs(per["b"]-0.5) > 1e-9 {
		t.Fatalf("precision %v (per label %v), want %v (a 0.75, b 0.5)", p, per, want)
	}
	if _, _, err := PrecisionAtK(vecs, 2, labels, 6); err == nil {
		t.Fatal("k = n: no error")
	}
	if _, _, err := PrecisionAtK(vecs[:5], 2, labels, 2); err == nil {
		t.Fatal("ragged rows: no error")
	}
}

// Two identical rows: each finds the other, not itself, whatever the tie.
func TestPrecisionExcludesSelf(t *testing.T) {
	vecs := []float32{1, 0, 1, 0, 0, 1}
	p, _, err := PrecisionAtK(vecs, 2, []string{"a", "a", "b"}, 1)
	if err != nil {
		t.Fatal(err)
	}
	if want := 2.0 / 3; math.Abs(p-want) > 1e-9 {
		t.Fatalf("precision %v, want %v", p, want)
	}
}

func TestVectorCache(t *testing.T) {
	dir := t.TempDir()
	key := CacheKey("model", "abc")
	if key == CacheKey("model", "abd") || len(key) != 16 {
		t.Fatalf("key %q", key)
	}
	c, err := OpenVectorCache(dir, key, 3)
	if err != nil {
		t.Fatal(err)
	}
	s1, s2 := [32]byte{1}, [32]byte{2}
	c.Put(s1, []float32{1, 2, 3})
	c.Put(s2, []float32{4, 5, 6})
	if err := c.Put(s2, []float32{1}); err == nil {
		t.Fatal("wrong length accepted")
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "vectors-"+key+".bin")
	// A killed run leaves half a record: it is cut off.
	f, _ := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	f.Write(make([]byte, 20))
	f.Close()
	c, err = OpenVectorCache(dir, key, 3)
	if err != nil {
		t.Fatal(err)
	}
	if v, ok := c.Get(s2); !ok || !slices.Equal(v, []float32{4, 5, 6}) || c.Len() != 2 {
		t.Fatalf("reopened: %v %v, %d vectors", v, ok, c.Len())
	}
	c.Put([32]byte{3}, []float32{7, 8, 9})
	c.Close()
	if st, _ := os.Stat(path); st.Size() != 16+3*(32+12) {
		t.Fatalf("file of %d bytes", st.Size())
	}
	// Another dimension under the same name starts over.
	c, err = OpenVectorCache(dir, key, 4)
	if err != nil {
		t.Fatal(err)
	}
	if c.Len() != 0 {
		t.Fatalf("%d vectors of another dimension kept", c.Len())
	}
	c.Close()
	// No directory: memory only.
	c, _ = OpenVectorCache("", key, 3)
	c.Put(s1, []float32{1, 2, 3})
	if _, ok := c.Get(s1); !ok || c.Close() != nil {
		t.Fatal("in-memory cache")
	}
}

func writeImages(t *testing.T, n int) []File {
	t.Helper()
	dir := t.TempDir()
	var files []File
	for i := range n {
		img := image.NewRGBA(image.Rect(0, 0, 40+i, 30))
		for y := range 30 {
			for x := range 40 + i {
				img.Set(x, y, color.RGBA{uint8(x * (i + 1)), uint8(y * 7), uint8(i * 40), 255})
			}
		}
		var b bytes.Buffer
		png.Encode(&b, img)
		p := filepath.Join(dir, fmt.Sprintf("%d.png", i))
		if err := os.WriteFile(p, b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		files = append(files, File{Path: p, Label: []string{"a", "b"}[i%2]})
	}
	return files
}

func TestVectorsCached(t *testing.T) {
	files := writeImages(t, 6)
	files = append(files, File{Path: filepath.Join(t.TempDir(), "missing.png"), Label: "a"})
	px, err := PixelMethod(4)
	if err != nil {
		t.Fatal(err)
	}
	var calls atomic.Int64
	inner := px.Vector
	px.Vector = func(ctx context.Context, b []byte) ([]float32, error) { calls.Add(1); return inner(ctx, b) }
	dir := t.TempDir()
	run := func() ([][]float32, VectorStats) {
		c, err := OpenVectorCache(dir, px.Key, px.Dim)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		vecs, errs, st, err := Vectors(context.Background(), files, px, c, nil)
		if err != nil {
			t.Fatal(err)
		}
		if errs[6] == nil || !errors.Is(errs[6], os.ErrNotExist) || vecs[6] != nil {
			t.Fatalf("missing file: %v", errs[6])
		}
		return vecs, st
	}
	v1, st := run()
	if st.Computed != 6 || st.Cached != 0 || st.Failed != 1 || calls.Load() != 6 {
		t.Fatalf("first run %+v, %d calls", st, calls.Load())
	}
	for _, v := range v1[:6] {
		var n float64
		for _, x := range v {
			n += float64(x * x)
		}
		if len(v) != 48 || math.Abs(n-1) > 1e-5 {
			t.Fatalf("pixel vector of %d floats, |v|² %v", len(v), n)
		}
	}
	v2, st := run()
	if st.Computed != 0 || st.Cached != 6 || calls.Load() != 6 {
		t.Fatalf("second run %+v, %d calls", st, calls.Load())
	}
	for i := range 6 {
		if !slices.Equal(v1[i], v2[i]) {
			t.Fatalf("file %d: cached vector differs", i)
		}
	}
}

func TestRunQuality(t *testing.T) {
	files := writeImages(t, 8)
	// A copy of 0.png under another name, in the other category.
	b, _ := os.ReadFile(files[0].Path)
	cp := filepath.Join(filepath.Dir(files[0].Path), "copy.png")
	os.WriteFile(cp, b, 0o644)
	files = append(files, File{Path: cp, Label: "b"})
	px, err := PixelMethod(8)
	if err != nil {
		t.Fatal(err)
	}
	// One file at a time: with more, the copy can be computed while 0.png
	// still is, and then it is not a cache hit.
	px.Concurrency = 1
	var out, log bytes.Buffer
	rows, err := RunQuality(context.Background(), QualityOptions{Files: files, Methods: []Method{px}, K: 2, CacheDir: t.TempDir()}, &out, &log)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1 || rows[0].Images != 9 || rows[0].Categories != 2 || rows[0].Precision < 0 || rows[0].Precision > 1 || rows[0].Cached != 1 {
		t.Fatalf("rows %+v", rows)
	}
	var macro float64
	for _, p := range rows[0].PerCategory {
		macro += p / 2
	}
	if math.Abs(macro-rows[0].Macro) > 1e-9 {
		t.Fatalf("macro %v, per category %v", rows[0].Macro, rows[0].PerCategory)
	}
	rows, err = RunQuality(context.Background(), QualityOptions{Files: files, Methods: []Method{px}, K: 2, Dedupe: true}, &out, &log)
	if err != nil {
		t.Fatal(err)
	}
	// "0.png" < "copy.png": the copy goes.
	if rows[0].Images != 8 || rows[0].Duplicates != 1 {
		t.Fatalf("deduplicated rows %+v", rows)
	}
	if !strings.Contains(out.String(), "pixels-8") || !strings.Contains(out.String(), "precision@2") {
		t.Fatalf("output %q", out.String())
	}
}

// fakeRunner costs a fixed time per run plus a little per image, like a
// CNN on a CPU.
type fakeRunner struct {
	cfg  embed.Config
	runs atomic.Int64
}

func (f *fakeRunner) Config() embed.Config { return f.cfg }
func (f *fakeRunner) Run(batch []float32, n int) ([]float32, error) {
	f.runs.Add(1)
	time.Sleep(2*time.Millisecond + time.Duration(n)*200*time.Microsecond)
	out := make([]float32, n*f.cfg.Dim)
	for i := range out {
		out[i] = 1
	}
	return out, nil
}

func TestRunThroughput(t *testing.T) {
	defer goleak.VerifyNone(t) // every pipeline closed
	files := writeImages(t, 16)
	data, err := ReadAll(files)
	if err != nil {
		t.Fatal(err)
	}
	r := &fakeRunner{cfg: embed.Config{Name: "fake", Layout: embed.NHWC, Size: 8, Std: [3]float32{1, 1, 1}, Dim: 4}}
	var out, log bytes.Buffer
	rows, sum, err := RunThroughput(context.Background(), ThroughputOptions{
		Images: data, Runner: r, Hash: "h", Clients: []int{1, 8}, Batches: []int{1, 8}, Rounds: 2,
		Limits: embed.Limits{ThumbSide: -1},
	}, &out, &log)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 5 {
		t.Fatalf("%d rows: %s", len(rows), out.String())
	}
	for _, r := range rows {
		if r.Images != 16 || len(r.Rounds) != 2 || r.PerSec <= 0 || r.P99ms < r.P50ms || r.MaxBatch == 0 {
			t.Fatalf("row %+v", r)
		}
	}
	// Eight clients batch (the fixed cost is shared); one does not.
	if rows[2].MeanBatch <= 1.5 || rows[1].MeanBatch != 1 || sum.Clients != 8 || sum.Ratio <= 1 {
		t.Fatalf("rows %+v, summary %+v", rows, sum)
	}
	if rows[3].MaxBatch != 1 || rows[3].MeanBatch != 1 {
		t.Fatalf("sweep at max batch 1: %+v", rows[3])
	}
}

func TestThroughputValidate(t *testing.T) {
	o := ThroughputOptions{Clients: []int{0}, Batches: []int{0}, Rounds: -1}
	o.EnsureDefaults()
	err := o.Validate()
	for _, want := range []string{"no images", "runner", "clients 0", "batch 0", "rounds -1"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v lacks %q", err, want)
		}
	}
}

func TestParseShapes(t *testing.T) {
	s, err := ParseShapes("2x32, 1x8")
	if err != nil || len(s) != 2 || s[0] != (Shape{2, 32}) || s[1].String() != "1x8" {
		t.Fatalf("%v %v", s, err)
	}
	for _, bad := range []string{"", "2", "0x8", "2x", "ax3"} {
		if _, err := ParseShapes(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

func TestRunLanes(t *testing.T) {
	defer goleak.VerifyNone(t)
	files := writeImages(t, 16)
	data, err := ReadAll(files)
	if err != nil {
		t.Fatal(err)
	}
	r := &fakeRunner{cfg: embed.Config{Name: "fake", Layout: embed.NHWC, Size: 8, Std: [3]float32{1, 1, 1}, Dim: 4}}
	var out, log bytes.Buffer
	rows, err := RunLanes(context.Background(), LanesOptions{
		Images: data, Runner: r, Hash: "h", Shapes: []Shape{{2, 32}, {1, 4}}, BulkClients: 2, BulkBatch: 8,
		Every: time.Millisecond, Duration: 150 * time.Millisecond, Warmup: 20 * time.Millisecond, Rounds: 1,
		Limits: embed.Limits{ThumbSide: -1},
	}, &out, &log)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 2 || rows[1].MaxBatch != 4 {
		t.Fatalf("rows %+v", rows)
	}
	for _, r := range rows {
		if r.Queries < 5 || r.BulkPerSec <= 0 || r.P99ms < r.P50ms {
			t.Fatalf("row %+v\n%s", r, log.String())
		}
	}
}
