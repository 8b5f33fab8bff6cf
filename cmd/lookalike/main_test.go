package main

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
)

func runCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestBenchGenThenIVF(t *testing.T) {
	dir := t.TempDir()
	if code, _, stderr := runCLI(t, "bench", "gen", "--n", "5000", "--queries", "50", "--dim", "16", "--out", dir); code != 0 {
		t.Fatalf("gen: exit %d: %s", code, stderr)
	}
	code, stdout, stderr := runCLI(t, "bench", "ivf", "--base", filepath.Join(dir, "base.fvecs"),
		"--query", filepath.Join(dir, "query.fvecs"), "--nlist", "64", "--nprobe", "1,64", "--json", "--cache", dir)
	if code != 0 {
		t.Fatalf("bench ivf: exit %d: %s", code, stderr)
	}
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	if len(lines) != 3 { // two rows and one summary
		t.Fatalf("want 3 JSON lines, got %q", stdout)
	}
	var row struct {
		Engine string  `json:"engine"`
		NProbe int     `json:"nprobe"`
		Recall float64 `json:"recall"`
	}
	if err := json.Unmarshal([]byte(lines[1]), &row); err != nil {
		t.Fatal(err)
	}
	if row.Engine != "ivf" || row.NProbe != 64 || row.Recall < 0.9 {
		t.Fatalf("row %+v", row)
	}
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"bench", "ivf"},
		{"bench", "ivf", "--data", "nosuch"},
		{"bench", "ivf", "--data", "fmnist", "--metric", "hamming"},
		{"bench", "ivf", "--data", "fmnist", "--nprobe", "1,x"},
		{"bench", "ivf", "--data", "fmnist", "--kernel", "sse9"},
		{"bench", "ivf", "--no-such-flag"},
		{"bench", "ivf", "--data", "fmnist", "--base", "a.fvecs", "--query", "b.fvecs"},
	} {
		if code, _, stderr := runCLI(t, args...); code != 2 || !strings.HasPrefix(stderr, "lookalike: ") {
			t.Errorf("%v: exit %d, stderr %q; want exit 2 with a message", args, code, stderr)
		}
	}
}

func TestRuntimeErrorExitsOne(t *testing.T) {
	code, _, stderr := runCLI(t, "bench", "ivf", "--base", "/nonexistent/base.fvecs", "--query", "/nonexistent/q.fvecs")
	if code != 1 || !strings.Contains(stderr, "nonexistent") {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
}

// A plain build has no GPU scanner: --gpu must say so, not start a node
// that silently scans on the CPU.
func TestServeGPUWithoutCUDABuild(t *testing.T) {
	code, _, stderr := runCLI(t, "serve", "--gpu", "--data", t.TempDir(), "--http", "127.0.0.1:0", "--raft", "127.0.0.1:0")
	if code != 1 || !strings.Contains(stderr, "built without the cuda build tag") {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
}
