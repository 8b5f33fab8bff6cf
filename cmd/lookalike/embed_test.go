package main

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"lookalike/embed"
	"lookalike/embed/embedtest"
)

// requireDefaultModel is embedtest.RequireDefaultModel.
var requireDefaultModel = embedtest.RequireDefaultModel

func parseEmbedLines(t *testing.T, out string) []embedLine {
	t.Helper()
	var lines []embedLine
	for _, s := range strings.Split(strings.TrimSpace(out), "\n") {
		var l embedLine
		if err := json.Unmarshal([]byte(s), &l); err != nil {
			t.Fatalf("line %q: %v", s, err)
		}
		lines = append(lines, l)
	}
	return lines
}

func TestEmbedCommand(t *testing.T) {
	model := requireDefaultModel(t)
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a.png"), filepath.Join(dir, "b.png")
	writePNG(t, a, 1)
	writePNG(t, b, 2)
	bad, missing := filepath.Join(dir, "bad.png"), filepath.Join(dir, "missing.png")
	os.WriteFile(bad, []byte("not an image"), 0o644)

	code, out, stderr := runCLI(t, "embed", "--model", model, a, bad, missing, b, a)
	if code != 1 {
		t.Fatalf("exit %d, want 1 (two bad files); stderr %q", code, stderr)
	}
	for _, want := range []string{"bad.png", "not an image", "missing.png", "2 images of 5 could not be embedded"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr %q lacks %q", stderr, want)
		}
	}
	lines := parseEmbedLines(t, out)
	if len(lines) != 3 || lines[0].File != a || lines[1].File != b || lines[2].File != a {
		t.Fatalf("want lines for a, b, a in order, got %d: %q", len(lines), out)
	}
	for _, l := range lines {
		if l.Dim != 1792 || len(l.Vector) != l.Dim {
			t.Fatalf("%s: dim %d, %d floats", l.File, l.Dim, len(l.Vector))
		}
		var n float64
		for _, x := range l.Vector {
			n += float64(x) * float64(x)
		}
		if math.Abs(n-1) > 1e-4 {
			t.Fatalf("%s: |v|² = %v, want 1", l.File, n)
		}
	}
	if cos(lines[0].Vector, lines[2].Vector) < 0.9999 || cos(lines[0].Vector, lines[1].Vector) > 0.9999 {
		t.Fatalf("same file cos %v, different files cos %v", cos(lines[0].Vector, lines[2].Vector), cos(lines[0].Vector, lines[1].Vector))
	}

	// One image per run gives the same vectors; so does the model named
	// instead of its directory (when it is the cache's).
	code, out, stderr = runCLI(t, "embed", "--batch", "1", "--model", model, b, a)
	if code != 0 {
		t.Fatalf("batch 1: exit %d: %s", code, stderr)
	}
	one := parseEmbedLines(t, out)
	if len(one) != 2 || cos(one[0].Vector, lines[1].Vector) < 0.9999 || cos(one[1].Vector, lines[0].Vector) < 0.9999 {
		t.Fatalf("batch 1 differs: %d lines", len(one))
	}
}

func cos(a, b []float32) float64 {
	var d, na, nb float64
	for i := range a {
		d += float64(a[i]) * float64(b[i])
		na += float64(a[i]) * float64(a[i])
		nb += float64(b[i]) * float64(b[i])
	}
	return d / math.Sqrt(na*nb)
}

func TestEmbedCommandErrors(t *testing.T) {
	for _, args := range [][]string{
		{"embed"},
		{"embed", "--batch", "0", "a.png"},
		{"embed", "--threads", "-1", "a.png"},
	} {
		if code, _, stderr := runCLI(t, args...); code != 2 || !strings.HasPrefix(stderr, "lookalike: ") {
			t.Errorf("%v: exit %d, stderr %q; want a usage error", args, code, stderr)
		}
	}
	code, _, stderr := runCLI(t, "embed", "--model", filepath.Join(t.TempDir(), "nosuch"), "a.png")
	if code != 1 || !strings.Contains(stderr, "lookalike model fetch") {
		t.Fatalf("missing model: exit %d, stderr %q", code, stderr)
	}
}

func TestModelDir(t *testing.T) {
	for in, want := range map[string]string{
		"":                  filepath.Join(embed.ModelsDir(), embed.DefaultModel),
		"mobilenet_v2_mid":  filepath.Join(embed.ModelsDir(), "mobilenet_v2_mid"),
		"./models/resnet50": "./models/resnet50",
		"/opt/m":            "/opt/m",
		".":                 ".",
	} {
		if got := modelDir(in); got != want {
			t.Errorf("modelDir(%q) = %q, want %q", in, got, want)
		}
	}
}
