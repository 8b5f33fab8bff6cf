package bench

import (
	"errors"
	"math"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"lookalike/internal/testenv"
)

// requireFMNIST skips (or, under make test, fails) a test that needs the
// Debian Fashion-MNIST files.
func requireFMNIST(t testing.TB) {
	t.Helper()
	testenv.RequireFile(t, filepath.Join(DefaultFMNISTDir, "train-images-idx3-ubyte.gz"),
		"the Fashion-MNIST dataset (install dataset-fashion-mnist)", fmnistHint)
}

func TestLoadDatasetFiles(t *testing.T) {
	dir := t.TempDir()
	base := GaussianMixture(50, 4, 3, 1)
	queries := GaussianMixtureQueries(5, 4, 3, 1)
	write := func(name string, data []float32, dim int) string {
		p := filepath.Join(dir, name)
		if err := WriteFvecsFile(p, data, dim); err != nil {
			t.Fatal(err)
		}
		return p
	}
	bp, qp := write("base.fvecs", base, 4), write("query.fvecs", queries, 4)
	gtp := filepath.Join(dir, "gt.ivecs")
	if err := WriteIvecsFile(gtp, []int32{0, 1, 2, 3, 4, 5, 6, 7, 8, 49}, 2); err != nil {
		t.Fatal(err)
	}
	ds, err := LoadDataset(DatasetSpec{Base: bp, Query: qp, GT: gtp})
	if err != nil {
		t.Fatal(err)
	}
	if ds.Name != "base" || ds.Dim != 4 || ds.NumBase() != 50 || ds.NumQueries() != 5 || len(ds.GT) != 5 || !slices.Equal(ds.GT[4], []int32{8, 49}) {
		t.Fatalf("got %+v", ds)
	}
	if !slices.Equal(ds.Base, base) || !slices.Equal(ds.Query(4), queries[16:20]) {
		t.Fatal("vectors differ from what was written")
	}

	// The comma form parses to the same spec.
	spec, err := ParseDatasetSpec(bp + "," + qp + "," + gtp)
	if err != nil || spec != (DatasetSpec{Base: bp, Query: qp, GT: gtp}) {
		t.Fatalf("parse: %+v %v", spec, err)
	}

	badGT := filepath.Join(dir, "bad.ivecs")
	for _, tc := range []struct {
		name string
		spec DatasetSpec
		gt   []int32
		want string
	}{
		{"no query", DatasetSpec{Base: bp}, nil, "need both"},
		{"dim mismatch", DatasetSpec{Base: bp, Query: write("q3.fvecs", queries[:9], 3)}, nil, "dimension 3, but"},
		{"gt rows", DatasetSpec{Base: bp, Query: qp, GT: badGT}, []int32{1, 2}, "2 rows, but"},
		{"gt ids", DatasetSpec{Base: bp, Query: qp, GT: badGT}, []int32{0, 1, 2, 3, 50}, "id 50 out of range"},
		{"missing file", DatasetSpec{Base: bp, Query: filepath.Join(dir, "nope.fvecs")}, nil, "no such file"},
	} {
		if tc.gt != nil {
			if err := WriteIvecsFile(badGT, tc.gt, 1); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := LoadDataset(tc.spec); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want an error containing %q", tc.name, err, tc.want)
		}
	}
}

func TestParseDatasetSpec(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want DatasetSpec
		err  bool
	}{
		{"fmnist", DatasetSpec{Name: FMNIST}, false},
		{" fmnist-rot ", DatasetSpec{Name: FMNISTRot}, false},
		{"a.fvecs,b.bvecs", DatasetSpec{Base: "a.fvecs", Query: "b.bvecs"}, false},
		{"sift", DatasetSpec{}, true},
		{"a.fvecs,", DatasetSpec{}, true},
		{"a,b,c,d", DatasetSpec{}, true},
	} {
		got, err := ParseDatasetSpec(tc.in)
		if (err != nil) != tc.err || got != tc.want {
			t.Errorf("%q: got %+v, %v", tc.in, got, err)
		}
		if err != nil && !errors.Is(err, ErrUnknownDataset) {
			t.Errorf("%q: %v does not wrap ErrUnknownDataset", tc.in, err)
		}
	}
	if _, err := LoadDataset(DatasetSpec{Name: "sift"}); !errors.Is(err, ErrUnknownDataset) {
		t.Errorf("load unknown: %v", err)
	}
}

func TestLoadDatasetMissingFMNIST(t *testing.T) {
	_, err := LoadDataset(DatasetSpec{Name: FMNIST, Dir: t.TempDir()})
	if !errors.Is(err, ErrDatasetMissing) || !strings.Contains(err.Error(), "install it with: sudo apt-get install dataset-fashion-mnist (or run scripts/setup.sh)") {
		t.Fatalf("got %v", err)
	}
}

func TestFirstQueries(t *testing.T) {
	ds := &Dataset{Name: "x", Dim: 2, Base: make([]float32, 20), Queries: []float32{1, 2, 3, 4, 5, 6}, GT: [][]int32{{1}, {2}, {3}}}
	q := ds.FirstQueries(2)
	if q.NumQueries() != 2 || len(q.GT) != 2 || q.NumBase() != 10 || ds.NumQueries() != 3 {
		t.Fatalf("got %d queries, %d gt rows", q.NumQueries(), len(q.GT))
	}
	if q.Queries = append(q.Queries, 9, 9); ds.Queries[4] != 5 {
		t.Fatal("appending to the prefix overwrote the parent's queries")
	}
	for _, n := range []int{0, -1, 3, 100} {
		if got := ds.FirstQueries(n).NumQueries(); got != 3 {
			t.Errorf("FirstQueries(%d) kept %d", n, got)
		}
	}
}

func TestLoadFashionMNIST(t *testing.T) {
	requireFMNIST(t)
	ds, err := LoadDataset(DatasetSpec{Name: FMNIST})
	if err != nil {
		t.Fatal(err)
	}
	if ds.Dim != 784 || ds.NumBase() != 60000 || ds.NumQueries() != 10000 {
		t.Fatalf("dim %d, %d base, %d queries", ds.Dim, ds.NumBase(), ds.NumQueries())
	}
	rot, err := LoadDataset(DatasetSpec{Name: FMNISTRot})
	if err != nil {
		t.Fatal(err)
	}
	// Same distances, but no longer integers.
	integral := 0
	for _, x := range rot.Base[:784*10] {
		if x == float32(math.Round(float64(x))) {
			integral++
		}
	}
	if integral > 100 {
		t.Errorf("%d of 7840 rotated values are integers", integral)
	}
	for _, pair := range [][2]int{{0, 1}, {5, 59999}} {
		a, b := pair[0], pair[1]
		d0 := sqDist(ds.Base[a*784:(a+1)*784], ds.Base[b*784:(b+1)*784])
		d1 := sqDist(rot.Base[a*784:(a+1)*784], rot.Base[b*784:(b+1)*784])
		if math.Abs(d0-d1) > 1e-4*d0 {
			t.Errorf("rows %d,%d: distance² %v before rotation, %v after", a, b, d0, d1)
		}
	}
}

func sqDist(x, y []float32) float64 {
	var s float64
	for i := range x {
		d := float64(x[i]) - float64(y[i])
		s += d * d
	}
	return s
}
