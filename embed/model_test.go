package embed_test

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"lookalike/embed"
	"lookalike/embed/onnx"
	"lookalike/internal/testenv"
)

// ortLibrary returns the ONNX Runtime library the tests use, skipping (or
// failing, under LOOKALIKE_REQUIRE_COMPONENTS=1) when it is missing.
func ortLibrary(t testing.TB) string {
	t.Helper()
	var o embed.ModelOptions
	o.EnsureDefaults()
	testenv.RequireFile(t, o.Library, "the ONNX Runtime library", "run scripts/fetch-ort.sh")
	return o.Library
}

// cachedModel returns the directory of a model converted by `lookalike
// model fetch`, skipping (or failing) when it is not there.
func cachedModel(t testing.TB, name string) string {
	t.Helper()
	dir := filepath.Join(embed.ModelsDir(), name)
	testenv.RequireFile(t, filepath.Join(dir, embed.ConfigFile), "the model "+name,
		"run `go run ./cmd/lookalike model fetch`")
	return dir
}

// meanModel writes a tiny ONNX model with package onnx: NHWC input
// [N, size, size, 3] → per-channel spatial mean [N, 3]. It exercises the
// writer, Open and Run without the large model.
func meanModel(t *testing.T, size int, batch onnx.Dim) (string, embed.Config) {
	t.Helper()
	s := int64(size)
	m := &onnx.Model{
		Opset: 13, ProducerName: "lookalike test",
		Graph: onnx.Graph{
			Name: "mean",
			Nodes: []onnx.Node{
				{Name: "t", OpType: "Transpose", Inputs: []string{"image"}, Outputs: []string{"nchw"}, Attrs: []onnx.Attr{onnx.AttrIs("perm", 0, 3, 1, 2)}},
				{Name: "pool", OpType: "GlobalAveragePool", Inputs: []string{"nchw"}, Outputs: []string{"pooled"}},
				{Name: "flat", OpType: "Flatten", Inputs: []string{"pooled"}, Outputs: []string{"mean"}, Attrs: []onnx.Attr{onnx.AttrI("axis", 1)}},
			},
			Inputs:  []onnx.ValueInfo{{Name: "image", Type: onnx.Float, Dims: []onnx.Dim{batch, {Value: s}, {Value: s}, {Value: 3}}}},
			Outputs: []onnx.ValueInfo{{Name: "mean", Type: onnx.Float, Dims: []onnx.Dim{batch, {Value: 3}}}},
		},
	}
	b, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	c := embed.Config{Name: "mean", File: "model.onnx", Input: "image", Output: "mean", Layout: embed.NHWC,
		Size: size, Std: [3]float32{1, 1, 1}, Dim: 3}
	dir := filepath.Join(t.TempDir(), "mean")
	if err := embed.WriteModel(dir, c, b); err != nil {
		t.Fatal(err)
	}
	return dir, c
}

// meanInput is n images whose channel c of image i is i + c/10 + noise
// that averages to zero over the image.
func meanInput(n, size int) []float32 {
	x := make([]float32, 0, n*size*size*3)
	for i := range n {
		for p := range size * size {
			d := float32(p%2)*2 - 1 // +1, -1, ...: zero mean when size² is even
			for c := range 3 {
				x = append(x, float32(i)+float32(c)/10+d)
			}
		}
	}
	return x
}

func TestOpenRunTinyModel(t *testing.T) {
	lib := ortLibrary(t)
	for _, tc := range []struct {
		name  string
		batch onnx.Dim
	}{{"dynamic batch", onnx.Dim{Param: "N"}}, {"batch of 1", onnx.Dim{Value: 1}}} {
		t.Run(tc.name, func(t *testing.T) {
			dir, c := meanModel(t, 8, tc.batch)
			m, err := embed.Open(dir, embed.ModelOptions{Library: lib, Sessions: 2, IntraOpThreads: 1})
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			if m.Config() != c {
				t.Fatalf("config %+v, want %+v", m.Config(), c)
			}
			b, _ := os.ReadFile(filepath.Join(dir, "model.onnx"))
			if m.Hash() != embed.Hash(b) || len(m.Hash()) != 64 {
				t.Fatalf("hash %q", m.Hash())
			}
			// Concurrent runs of different batch sizes over two sessions.
			var wg sync.WaitGroup
			errs := make(chan error, 16)
			for g := range 16 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					n := 1 + g%4
					out, err := m.Run(meanInput(n, 8), n)
					if err != nil {
						errs <- err
						return
					}
					for i := range n {
						for ch := range 3 {
							want := float32(i) + float32(ch)/10
							if got := out[i*3+ch]; math.Abs(float64(got-want)) > 1e-5 {
								errs <- errors.New("wrong mean")
								return
							}
						}
					}
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatal(err)
			}
			if _, err := m.Run(make([]float32, 10), 1); err == nil {
				t.Fatal("a short batch ran")
			}
			m.Close()
			if _, err := m.Run(meanInput(1, 8), 1); !errors.Is(err, embed.ErrClosed) {
				t.Fatalf("run after close: %v, want ErrClosed", err)
			}
			if err := m.Close(); err != nil {
				t.Fatalf("second close: %v", err)
			}
		})
	}
}

func TestOpenErrors(t *testing.T) {
	lib := ortLibrary(t)
	good, c := meanModel(t, 8, onnx.Dim{Param: "N"})
	onnxBytes, err := os.ReadFile(filepath.Join(good, "model.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	// write makes a model directory holding model.json for cfg and the
	// given ONNX bytes.
	write := func(cfg embed.Config, data []byte) string {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, embed.ConfigFile), embed.EncodeConfig(cfg), 0o644); err != nil {
			t.Fatal(err)
		}
		if data != nil {
			if err := os.WriteFile(filepath.Join(dir, cfg.File), data, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		return dir
	}
	with := func(f func(*embed.Config)) embed.Config {
		x := c
		f(&x)
		return x
	}
	for _, tc := range []struct {
		name string
		dir  string
		lib  string
		want error
		msg  string // a substring of the message
	}{
		{"no directory", filepath.Join(t.TempDir(), "nope"), lib, embed.ErrNoModel, "lookalike model fetch"},
		{"no onnx file", write(c, nil), lib, embed.ErrNoModel, "model.onnx"},
		{"no library", good, filepath.Join(t.TempDir(), "libonnxruntime.so.1"), embed.ErrNoRuntime, "scripts/fetch-ort.sh"},
		{"garbage onnx", write(c, []byte("this is not a model\x00\xff")), lib, embed.ErrBadModel, "ONNX Runtime cannot load it"},
		{"empty onnx", write(c, []byte{}), lib, embed.ErrBadModel, ""},
		{"truncated onnx", write(c, onnxBytes[:len(onnxBytes)/2]), lib, embed.ErrBadModel, ""},
		{"wrong input name", write(with(func(c *embed.Config) { c.Input = "pixels" }), onnxBytes), lib, embed.ErrBadModel, `no input "pixels"`},
		{"wrong output name", write(with(func(c *embed.Config) { c.Output = "logits" }), onnxBytes), lib, embed.ErrBadModel, `no output "logits"`},
		{"wrong size", write(with(func(c *embed.Config) { c.Size = 16 }), onnxBytes), lib, embed.ErrBadModel, "size 16"},
		{"wrong layout", write(with(func(c *embed.Config) { c.Layout = embed.NCHW }), onnxBytes), lib, embed.ErrBadModel, "layout NCHW"},
		{"wrong dim", write(with(func(c *embed.Config) { c.Dim = 4 }), onnxBytes), lib, embed.ErrBadModel, "[N 4]"},
		{"invalid config", write(with(func(c *embed.Config) { c.Std = [3]float32{} }), onnxBytes), lib, embed.ErrBadModel, "std[0]"},
		{"file outside", write(with(func(c *embed.Config) { c.File = "../model.onnx" }), nil), lib, embed.ErrBadModel, "inside the model directory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := embed.Open(tc.dir, embed.ModelOptions{Library: tc.lib})
			if err == nil {
				m.Close()
				t.Fatal("opened")
			}
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("error %q, want %v containing %q", err, tc.want, tc.msg)
			}
		})
	}
	// A config file that is not JSON, or has unknown fields.
	for _, body := range []string{"not json", `{"name":"x","colour":"red"}`} {
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, embed.ConfigFile), []byte(body), 0o644)
		if _, err := embed.Open(dir, embed.ModelOptions{Library: lib}); !errors.Is(err, embed.ErrBadModel) {
			t.Errorf("config %q: %v, want ErrBadModel", body, err)
		}
	}
}

func TestModelOptionsValidate(t *testing.T) {
	o := embed.ModelOptions{Sessions: -1, IntraOpThreads: -2}
	err := o.Validate()
	if err == nil || !strings.Contains(err.Error(), "sessions") || !strings.Contains(err.Error(), "threads") {
		t.Fatalf("Validate: %v; want both problems", err)
	}
	t.Setenv("LOOKALIKE_ORT_LIB", "/x/libonnxruntime.so")
	var d embed.ModelOptions
	d.EnsureDefaults()
	if d.Library != "/x/libonnxruntime.so" || d.Sessions != 1 {
		t.Fatalf("defaults %+v", d)
	}
	t.Setenv("LOOKALIKE_ORT_LIB", "")
	t.Setenv("LOOKALIKE_CACHE", "/c")
	d = embed.ModelOptions{}
	d.EnsureDefaults()
	if d.Library != "/c/ort/libonnxruntime.so.1" || embed.ModelsDir() != "/c/models" {
		t.Fatalf("cache defaults: %q, %q", d.Library, embed.ModelsDir())
	}
}

func TestWriteModelReplaces(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "m")
	c := embed.Config{Name: "m", File: "model.onnx", Input: "i", Output: "o", Layout: embed.NHWC, Size: 8, Std: [3]float32{1, 1, 1}, Dim: 2}
	if err := embed.WriteModel(dir, c, []byte("one")); err != nil {
		t.Fatal(err)
	}
	c.Dim = 3
	if err := embed.WriteModel(dir, c, []byte("two")); err != nil {
		t.Fatal(err)
	}
	got, err := embed.LoadConfig(dir)
	if err != nil || got != c {
		t.Fatalf("LoadConfig: %+v, %v", got, err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "model.onnx")); string(b) != "two" {
		t.Fatalf("model.onnx %q", b)
	}
	ents, _ := os.ReadDir(filepath.Dir(dir))
	if len(ents) != 1 {
		t.Fatalf("left behind: %v", ents)
	}
	if err := embed.WriteModel(dir, embed.Config{}, nil); err == nil {
		t.Fatal("an invalid config was written")
	}
}
