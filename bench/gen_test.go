package bench

import (
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
)

func TestGaussianMixtureDeterministic(t *testing.T) {
	const n, dim = 3*genBlock + 17, 8 // several blocks and a partial one
	a := GaussianMixture(n, dim, 10, 5)
	if len(a) != n*dim {
		t.Fatalf("%d values", len(a))
	}
	prev := runtime.GOMAXPROCS(1)
	b := GaussianMixture(n, dim, 10, 5)
	runtime.GOMAXPROCS(prev)
	if !slices.Equal(a, b) {
		t.Fatal("output depends on GOMAXPROCS")
	}
	// A prefix is the same rows.
	if !slices.Equal(GaussianMixture(100, dim, 10, 5), a[:100*dim]) {
		t.Fatal("n=100 is not a prefix of the larger draw")
	}
	if slices.Equal(GaussianMixture(100, dim, 10, 6), a[:100*dim]) {
		t.Fatal("different seeds, same rows")
	}
	q := GaussianMixtureQueries(100, dim, 10, 5)
	if slices.Equal(q, a[:100*dim]) {
		t.Fatal("queries repeat the base rows")
	}
	for _, bad := range [][3]int{{0, 8, 1}, {1, 0, 1}, {1, 8, 0}, {1, MaxVecsDim + 1, 1}} {
		if GaussianMixture(bad[0], bad[1], bad[2], 1) != nil {
			t.Errorf("GaussianMixture%v: want nil", bad)
		}
	}
}

// TestGaussianMixtureShape checks the model does what its comment says:
// finite values of unit-ish scale, clusters of unequal size, and nearest
// neighbours that are mostly, but not always, in the query's own cluster.
func TestGaussianMixtureShape(t *testing.T) {
	const n, nq, dim, clusters = 4000, 200, 32, 20
	m := newMixture(dim, clusters, 1)
	base := m.sample(n, streamBase)
	queries := m.sample(nq, streamQueries)
	var sum, sq float64
	for _, x := range base {
		if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
			t.Fatal("non-finite value")
		}
		sum += float64(x)
		sq += float64(x) * float64(x)
	}
	if rms := math.Sqrt(sq / float64(len(base))); rms < 0.8 || rms > 2 {
		t.Errorf("rms %v, want about 1.2", rms)
	}
	label := func(x []float32) int { // nearest centre
		best, bd := 0, math.Inf(1)
		for j := range clusters {
			if d := sqDist(x, m.centres[j*dim:(j+1)*dim]); d < bd {
				best, bd = j, d
			}
		}
		return best
	}
	size := make([]int, clusters)
	for i := range n {
		size[label(base[i*dim:(i+1)*dim])]++
	}
	if lo, hi := slices.Min(size), slices.Max(size); hi < 3*max(lo, 1) {
		t.Errorf("cluster sizes %d..%d: want unequal clusters", lo, hi)
	}
	same := 0
	for qi := range nq {
		q := queries[qi*dim : (qi+1)*dim]
		best, bd := 0, math.Inf(1)
		for i := range n {
			if d := sqDist(q, base[i*dim:(i+1)*dim]); d < bd {
				best, bd = i, d
			}
		}
		if label(q) == label(base[best*dim:(best+1)*dim]) {
			same++
		}
	}
	t.Logf("same %d/%d", same, nq)
	if frac := float64(same) / nq; frac < 0.5 || frac > 0.98 {
		t.Errorf("%.2f of queries share the nearest centre with their nearest neighbour; want clusters that overlap", frac)
	}
}

func TestGenOptions(t *testing.T) {
	var o GenOptions
	o.EnsureDefaults()
	if o != (GenOptions{N: 1_000_000, Queries: 10_000, Dim: 128, Clusters: 1000, Out: "."}) {
		t.Fatalf("defaults %+v", o)
	}
	if err := o.Validate(); err != nil {
		t.Fatal(err)
	}
	bad := GenOptions{N: -1, Queries: -2, Dim: MaxVecsDim + 1, Clusters: 0}
	err := bad.Validate()
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"n -1", "queries -2", "dim 65537", "clusters 0", "out directory"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%q does not report %q", err, want)
		}
	}
}

func TestGenerateFiles(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "gen")
	o := GenOptions{N: genBlock + 5, Queries: 50, Dim: 12, Clusters: 7, Seed: 3, Out: dir}
	var progress strings.Builder
	spec, err := GenerateFiles(context.Background(), o, &progress)
	if err != nil {
		t.Fatal(err)
	}
	ds, err := LoadDataset(spec)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(ds.Base, GaussianMixture(o.N, o.Dim, o.Clusters, o.Seed)) ||
		!slices.Equal(ds.Queries, GaussianMixtureQueries(o.Queries, o.Dim, o.Clusters, o.Seed)) {
		t.Fatal("files differ from the in-memory draw")
	}
	if !strings.Contains(progress.String(), "base.fvecs") {
		t.Errorf("no progress shown: %q", progress.String())
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 2 {
		t.Errorf("files left in %s: %v", dir, entries)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	o.Out = filepath.Join(t.TempDir(), "cancelled")
	if _, err := GenerateFiles(ctx, o, nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled: got %v", err)
	}
	if entries, _ := os.ReadDir(o.Out); len(entries) != 0 {
		t.Errorf("cancelled run left %v", entries)
	}
	if _, err := GenerateFiles(context.Background(), GenOptions{N: 5, Clusters: 6}, nil); err == nil {
		t.Error("invalid options: no error")
	}
}

func BenchmarkGenerateFiles(b *testing.B) {
	o := GenOptions{N: 100_000, Queries: 1, Dim: 128, Out: b.TempDir()}
	b.SetBytes(int64(o.N * (4 + 4*o.Dim)))
	for b.Loop() {
		if _, err := GenerateFiles(context.Background(), o, nil); err != nil {
			b.Fatal(err)
		}
	}
}
