package embed_test

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"lookalike/embed"
	"lookalike/internal/testenv"
)

// nsfwjsTarball returns the nsfwjs npm tarball that `lookalike model
// fetch` keeps in the cache, skipping (or failing) when it is missing.
func nsfwjsTarball(t *testing.T) []byte {
	t.Helper()
	p := filepath.Join(embed.CacheDir(), "npm", embed.NSFWJSTarball)
	testenv.RequireFile(t, p, "the "+embed.NSFWJSPackage+" tarball", "run `go run ./cmd/lookalike model fetch`")
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestNSFWJSConvertDeterministic converts both models twice, from two
// separate reads of the tarball: the bytes must be equal, and their hash
// the pinned one (a model's hash is its identity in collections).
func TestNSFWJSConvertDeterministic(t *testing.T) {
	tgz := nsfwjsTarball(t)
	var runs [2][][]byte
	for r := range runs {
		start := time.Now()
		g, err := embed.NSFWJSGraph(slices.Clone(tgz))
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range embed.NSFWJSModels {
			b, err := embed.ConvertNSFWJS(g, m)
			if err != nil {
				t.Fatalf("%s: %v", m.Config.Name, err)
			}
			runs[r] = append(runs[r], b)
		}
		t.Logf("run %d: read and converted %d models in %v", r, len(embed.NSFWJSModels), time.Since(start))
	}
	for i, m := range embed.NSFWJSModels {
		if !bytes.Equal(runs[0][i], runs[1][i]) {
			t.Errorf("%s: two conversions differ", m.Config.Name)
		}
		if h := embed.Hash(runs[0][i]); h != m.Hash {
			t.Errorf("%s: SHA-256 %s, pinned %s", m.Config.Name, h, m.Hash)
		}
	}
	if _, err := embed.NSFWJSGraph(tgz[:len(tgz)-1]); err == nil {
		t.Error("a truncated tarball was accepted")
	}
}

// referenceFeatures is testdata/reference/features.json, written by
// scripts/tfjs-reference/features.js.
type referenceFeatures struct {
	Package  string               `json:"package"`
	TFJS     string               `json:"tfjs"`
	Backend  string               `json:"backend"`
	Features map[string][]float32 `json:"features"`
}

// referenceInput reads testdata/reference/NAME.rgb.gz: 224×224 RGB bytes.
func referenceInput(t testing.TB, name string) []byte {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", "reference", name+".rgb.gz"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(zr)
	if err != nil || len(b) != 224*224*3 {
		t.Fatalf("%s: %d bytes, %v", name, len(b), err)
	}
	return b
}

// tensorOf lays out RGB bytes as c wants them: (v/255 − mean)/std, in
// float32 as TF.js computes v/255, in c's layout.
func tensorOf(rgb []byte, c embed.Config) []float32 {
	s := c.Size
	x := make([]float32, len(rgb))
	for p := range s * s {
		for ch := range 3 {
			v := float32(rgb[p*3+ch]) / 255
			if c.Mean != [3]float32{} || c.Std != [3]float32{1, 1, 1} {
				v = (v - c.Mean[ch]) / c.Std[ch]
			}
			if c.Layout == embed.NCHW {
				x[ch*s*s+p] = v
			} else {
				x[p*3+ch] = v
			}
		}
	}
	return x
}

func cosine(a, b []float32) float64 {
	var ab, aa, bb float64
	for i := range a {
		ab += float64(a[i]) * float64(b[i])
		aa += float64(a[i]) * float64(a[i])
		bb += float64(b[i]) * float64(b[i])
	}
	return ab / math.Sqrt(aa*bb)
}

func maxAbsDiff(a, b []float32) float64 {
	var d float64
	for i := range a {
		d = max(d, math.Abs(float64(a[i]-b[i])))
	}
	return d
}

// TestReferenceFeatures runs the converted models through ONNX Runtime on
// the committed inputs and compares with TF.js's features of the same
// inputs: cosine ≥ 0.9999 for each image, for the NHWC model and for the
// NCHW one (ImageNet-normalised input) alike; a batch of all the images
// gives what one image at a time gives.
func TestReferenceFeatures(t *testing.T) {
	lib := ortLibrary(t)
	raw, err := os.ReadFile(filepath.Join("testdata", "reference", "features.json"))
	if err != nil {
		t.Fatal(err)
	}
	var ref referenceFeatures
	if err := json.Unmarshal(raw, &ref); err != nil {
		t.Fatal(err)
	}
	if len(ref.Features) < 4 || ref.Backend != "cpu" {
		t.Fatalf("features.json: %d images, backend %q", len(ref.Features), ref.Backend)
	}
	var names []string
	for n := range ref.Features {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, variant := range embed.NSFWJSModels {
		t.Run(variant.Config.Name, func(t *testing.T) {
			m, err := embed.Open(cachedModel(t, variant.Config.Name), embed.ModelOptions{Library: lib})
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			if m.Hash() != variant.Hash {
				t.Fatalf("cached model's hash %s, want %s (run `lookalike model fetch` again)", m.Hash(), variant.Hash)
			}
			c := m.Config()
			var batch []float32
			var single [][]float32
			for _, name := range names {
				x := tensorOf(referenceInput(t, name), c)
				batch = append(batch, x...)
				got, err := m.Run(x, 1)
				if err != nil {
					t.Fatal(err)
				}
				want := ref.Features[name]
				if len(want) != c.Dim {
					t.Fatalf("%s: reference has %d values, want %d", name, len(want), c.Dim)
				}
				cos, diff := cosine(got, want), maxAbsDiff(got, want)
				t.Logf("%-8s cosine %.7f, max |diff| %.2g", name, cos, diff)
				if !(cos >= 0.9999) {
					t.Errorf("%s: cosine %.6f with TF.js, want ≥ 0.9999", name, cos)
				}
				// Both sides compute in float32 from the same weights:
				// only summation order differs (observed: < 1e-5).
				if !(diff <= 1e-3) {
					t.Errorf("%s: max |diff| %g with TF.js, want ≤ 1e-3", name, diff)
				}
				single = append(single, got)
			}
			out, err := m.Run(batch, len(names))
			if err != nil {
				t.Fatal(err)
			}
			for i, name := range names {
				if d := maxAbsDiff(out[i*c.Dim:(i+1)*c.Dim], single[i]); d > 1e-4 {
					t.Errorf("%s: batched run differs from single run by %g", name, d)
				}
			}
		})
	}
}

// TestNCHWModelUnderNHWCConfig opens the NCHW model with the NHWC model's
// config: a wrong-shape model, refused before any run.
func TestNCHWModelUnderNHWCConfig(t *testing.T) {
	lib := ortLibrary(t)
	src := cachedModel(t, embed.DefaultModel+"_nchw")
	b, err := os.ReadFile(filepath.Join(src, "model.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	nhwc, _ := embed.NSFWJSModel(embed.DefaultModel)
	dir := filepath.Join(t.TempDir(), "m")
	if err := embed.WriteModel(dir, nhwc.Config, b); err != nil {
		t.Fatal(err)
	}
	_, err = embed.Open(dir, embed.ModelOptions{Library: lib})
	if err == nil || !errors.Is(err, embed.ErrBadModel) {
		t.Fatalf("NCHW model under the NHWC config: %v, want ErrBadModel", err)
	}
	t.Log(err)
}
