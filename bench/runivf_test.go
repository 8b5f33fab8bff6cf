package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"path/filepath"
	"testing"

	"lookalike/internal/testenv"
	"lookalike/ivf"
)

func genSet(t *testing.T, n, nq, dim int) DatasetSpec {
	t.Helper()
	spec, err := GenerateFiles(context.Background(), GenOptions{N: n, Queries: nq, Dim: dim, Clusters: 50, Seed: 3, Out: t.TempDir()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return spec
}

func TestRunIVFJSONRows(t *testing.T) {
	spec := genSet(t, 12000, 150, 24)
	var out bytes.Buffer
	rows, sums, err := RunIVF(context.Background(), IVFOptions{
		Data: spec, NList: 128, NProbe: []int{1, 8, 128}, JSON: true, CacheDir: t.TempDir(),
		Plot: filepath.Join(t.TempDir(), "curves.png"),
	}, &out, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 3 || len(sums) != 1 {
		t.Fatalf("%d rows, %d summaries", len(rows), len(sums))
	}
	// Every line is a JSON object with the documented fields.
	sc := bufio.NewScanner(&out)
	lines := 0
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		if _, ok := m["summary"]; ok {
			continue
		}
		for _, f := range []string{"engine", "nlist", "nprobe", "k", "recall", "qps", "p50_ms", "p99_ms", "build_s"} {
			if _, ok := m[f]; !ok {
				t.Fatalf("line %q lacks %q", sc.Text(), f)
			}
		}
		lines++
	}
	if lines != 3 {
		t.Fatalf("%d row lines", lines)
	}
	if rows[0].Recall >= rows[2].Recall || rows[2].Recall < 0.9 {
		t.Fatalf("recall at nprobe 1 %.3f, at nprobe = nlist %.3f (want rising, and ≥ 0.9 when exhaustive)", rows[0].Recall, rows[2].Recall)
	}
	if rows[2].MemBytes < int64(12000*24) {
		t.Fatalf("memory %d is less than the codes", rows[2].MemBytes)
	}
}

func TestRunIVFRefineIsExact(t *testing.T) {
	spec := genSet(t, 8000, 100, 16)
	rows, _, err := RunIVF(context.Background(), IVFOptions{
		Data: spec, NList: 64, NProbe: []int{64}, Refine: 8, CacheDir: t.TempDir(),
	}, io.Discard, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if rows[0].Recall < 0.999 {
		t.Fatalf("exhaustive search with refine: recall %.4f, want ≥ 0.999", rows[0].Recall)
	}
}

func TestRunIVFBadOptions(t *testing.T) {
	for _, o := range []IVFOptions{
		{NProbe: []int{0}},
		{K: 2000},
		{Refine: -1},
		{Compare: []string{"ivf"}},
		{TargetRecall: 2},
	} {
		if _, _, err := RunIVF(context.Background(), o, io.Discard, io.Discard); err == nil {
			t.Errorf("%+v accepted", o)
		}
	}
	if _, _, err := RunIVF(context.Background(), IVFOptions{Data: genSet(t, 2000, 10, 8), Compare: []string{"nosuch"}, CacheDir: t.TempDir()}, io.Discard, io.Discard); err == nil {
		t.Error("unknown engine accepted")
	}
}

func TestSummarizeInterpolates(t *testing.T) {
	rows := []Row{
		{Engine: "a", Recall: 0.90, QPS: 1000},
		{Engine: "a", Recall: 1.00, QPS: 100},
		{Engine: "b", Recall: 0.80, QPS: 5000},
	}
	s := Summarize(rows, 0.95)
	if s[0].QPS < 316 || s[0].QPS > 317 { // geometric mean of 1000 and 100
		t.Fatalf("a: %v", s[0].QPS)
	}
	if s[1].QPS != 0 {
		t.Fatalf("b never reaches 0.95 but got %v", s[1].QPS)
	}
}

// Recall floors on the real data set of the issue: Fashion-MNIST at
// nlist 1024, and its rotation with refine.
func TestIVFRecallFashionMNIST(t *testing.T) {
	if testing.Short() {
		t.Skip("trains on 60k×784 twice")
	}
	testenv.RequireFile(t, filepath.Join(DefaultFMNISTDir, "train-images-idx3-ubyte.gz"), "Fashion-MNIST", fmnistHint)
	for _, c := range []struct {
		data           string
		nprobe, refine int
		floor          float64
	}{
		{FMNIST, 16, 0, 0.97},
		{FMNISTRot, 32, 4, 0.99},
	} {
		rows, _, err := RunIVF(context.Background(), IVFOptions{
			Data: DatasetSpec{Name: c.data}, Metric: ivf.L2, NList: 1024, NProbe: []int{c.nprobe},
			Refine: c.refine, Queries: 300, CacheDir: t.TempDir(),
		}, io.Discard, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s nprobe %d refine %d: recall@10 %.4f, %.0f QPS", c.data, c.nprobe, c.refine, rows[0].Recall, rows[0].QPS)
		if rows[0].Recall < c.floor {
			t.Errorf("%s: recall@10 %.4f below floor %.2f", c.data, rows[0].Recall, c.floor)
		}
	}
}
