package bench

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"lookalike/ivf"
)

func smallDataset() *Dataset {
	return &Dataset{
		Name:    "gauss",
		Dim:     16,
		Base:    GaussianMixture(3000, 16, 8, 11),
		Queries: GaussianMixtureQueries(40, 16, 8, 11),
	}
}

func TestGroundTruthCache(t *testing.T) {
	ds := smallDataset()
	dir := filepath.Join(t.TempDir(), "cache")
	var progress strings.Builder
	gt, err := GroundTruth(ds, ivf.L2, 10, dir, &progress)
	if err != nil {
		t.Fatal(err)
	}
	if len(gt) != 40 || len(gt[0]) != 10 {
		t.Fatalf("%d rows of %d", len(gt), len(gt[0]))
	}
	// Against a plain sort of exact distances.
	for qi, row := range gt {
		q := ds.Query(qi)
		ids := make([]int32, ds.NumBase())
		for i := range ids {
			ids[i] = int32(i)
		}
		dist := func(id int32) float64 { return sqDist(q, ds.Base[int(id)*16:int(id+1)*16]) }
		slices.SortFunc(ids, func(a, b int32) int {
			da, db := dist(a), dist(b)
			if da != db {
				if da < db {
					return -1
				}
				return 1
			}
			return int(a - b)
		})
		if !slices.Equal(row, ids[:10]) {
			t.Fatalf("query %d: %v, want %v", qi, row, ids[:10])
		}
	}
	if !strings.Contains(progress.String(), "ground truth") {
		t.Errorf("no progress bar: %q", progress.String())
	}
	path := filepath.Join(dir, "gt-"+groundTruthKey(ds, ivf.L2, 10)+".ivecs")
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}

	// A second call reads the cache: no progress bar, same answer, file
	// untouched.
	progress.Reset()
	again, err := GroundTruth(ds, ivf.L2, 10, dir, &progress)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.EqualFunc(gt, again, slices.Equal) {
		t.Fatal("cached ground truth differs")
	}
	if progress.Len() != 0 {
		t.Errorf("recomputed on a cache hit: %q", progress.String())
	}
	if st2, _ := os.Stat(path); !st2.ModTime().Equal(st.ModTime()) {
		t.Error("cache file rewritten on a hit")
	}

	// The key covers the metric, k and the data.
	keys := map[string]bool{groundTruthKey(ds, ivf.L2, 10): true}
	other := *ds
	other.Queries = slices.Clone(ds.Queries)
	other.Queries[5] += 1e-3
	for _, k := range []string{groundTruthKey(ds, ivf.IP, 10), groundTruthKey(ds, ivf.L2, 9), groundTruthKey(&other, ivf.L2, 10)} {
		if keys[k] {
			t.Errorf("key collision: %s", k)
		}
		keys[k] = true
	}

	// A corrupt cache file is recomputed and replaced.
	if err := os.WriteFile(path, []byte("junk"), 0o644); err != nil {
		t.Fatal(err)
	}
	progress.Reset()
	fixed, err := GroundTruth(ds, ivf.L2, 10, dir, &progress)
	if err != nil || !slices.EqualFunc(gt, fixed, slices.Equal) {
		t.Fatalf("after corruption: err %v, equal %v", err, slices.EqualFunc(gt, fixed, slices.Equal))
	}
	if !strings.Contains(progress.String(), "ignoring ground-truth cache") {
		t.Errorf("corrupt cache not reported: %q", progress.String())
	}
	if _, _, err := ReadIvecsFile(path); err != nil {
		t.Errorf("cache not rewritten: %v", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("cache dir holds %v", entries)
	}
}

func TestGroundTruthUsesDatasetGT(t *testing.T) {
	ds := smallDataset()
	ds.GT = make([][]int32, ds.NumQueries())
	for i := range ds.GT {
		ds.GT[i] = []int32{int32(i), 1, 2, 3} // not the real answer: must be taken as is
	}
	gt, err := GroundTruth(ds, ivf.L2, 3, "", nil)
	if err != nil || len(gt) != 40 || !slices.Equal(gt[7], []int32{7, 1, 2}) {
		t.Fatalf("got %v, %v", gt[7], err)
	}
	// Too few columns: computed (no cache dir: nothing written).
	gt, err = GroundTruth(ds, ivf.L2, 5, "", nil)
	if err != nil || len(gt[7]) != 5 || gt[7][0] == 7 && gt[7][1] == 1 {
		t.Fatalf("got %v, %v", gt[7], err)
	}
}

func TestGroundTruthErrors(t *testing.T) {
	ds := smallDataset()
	for _, k := range []int{0, ivf.MaxK + 1} {
		if _, err := GroundTruth(ds, ivf.L2, k, "", nil); err == nil {
			t.Errorf("k=%d: no error", k)
		}
	}
	if _, err := GroundTruth(ds, ivf.Metric(9), 1, "", nil); err == nil {
		t.Error("bad metric: no error")
	}
	tiny := &Dataset{Name: "tiny", Dim: 2, Base: []float32{1, 2}, Queries: []float32{1, 2}}
	if _, err := GroundTruth(tiny, ivf.L2, 2, "", nil); err == nil {
		t.Error("k beyond the base: no error")
	}
	ragged := &Dataset{Name: "ragged", Dim: 2, Base: []float32{1, 2, 3}, Queries: []float32{1, 2}}
	if _, err := GroundTruth(ragged, ivf.L2, 1, "", nil); err == nil {
		t.Error("ragged base: no error")
	}
}

func TestGroundTruthFashionMNIST(t *testing.T) {
	requireFMNIST(t)
	ds, err := LoadDataset(DatasetSpec{Name: FMNIST})
	if err != nil {
		t.Fatal(err)
	}
	ds = ds.FirstQueries(200)
	dir := t.TempDir()
	start := time.Now()
	gt, err := GroundTruth(ds, ivf.L2, 10, dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("200 queries × 60,000 × 784 by brute force: %v", time.Since(start))
	// Exact neighbours mostly share the query's class.
	labels, err := ReadIDXLabels(filepath.Join(DefaultFMNISTDir, "train-labels-idx1-ubyte.gz"))
	if err != nil {
		t.Fatal(err)
	}
	qlabels, err := ReadIDXLabels(filepath.Join(DefaultFMNISTDir, "t10k-labels-idx1-ubyte.gz"))
	if err != nil {
		t.Fatal(err)
	}
	agree := 0
	for qi, row := range gt {
		for _, id := range row {
			if labels[id] == qlabels[qi] {
				agree++
			}
		}
	}
	// k-NN on raw Fashion-MNIST pixels is about 85% accurate.
	if frac := float64(agree) / float64(10*len(gt)); frac < 0.7 {
		t.Errorf("only %.2f of the neighbours share the query's class", frac)
	}
	start = time.Now()
	again, err := GroundTruth(ds, ivf.L2, 10, dir, nil)
	if err != nil || !slices.EqualFunc(gt, again, slices.Equal) {
		t.Fatalf("cache: %v", err)
	}
	t.Logf("cache hit: %v", time.Since(start))
}

func TestDefaultCacheDir(t *testing.T) {
	t.Setenv("LOOKALIKE_CACHE", "/x/cache")
	t.Setenv("XDG_CACHE_HOME", "/xdg")
	t.Setenv("HOME", "/home/u")
	if got := DefaultCacheDir(); got != "/x/cache" {
		t.Errorf("LOOKALIKE_CACHE: %s", got)
	}
	t.Setenv("LOOKALIKE_CACHE", "")
	if got := DefaultCacheDir(); got != "/xdg/lookalike" {
		t.Errorf("XDG_CACHE_HOME: %s", got)
	}
	t.Setenv("XDG_CACHE_HOME", "")
	if got := DefaultCacheDir(); got != "/home/u/.cache/lookalike" {
		t.Errorf("HOME: %s", got)
	}
}
