package ivf

import (
	"math/rand/v2"
	"slices"
	"testing"
)

// The bounded coarse step must pick exactly the lists an exhaustive scan
// of the float centroids picks.
func TestCoarseEqualsExhaustive(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 1))
	for _, metric := range []Metric{L2, IP, Cosine} {
		for _, c := range []struct{ nlist, dim int }{{64, 7}, {300, 33}, {1024, 96}} {
			ix, err := New(Options{Dim: c.dim, NList: c.nlist, Metric: metric})
			if err != nil {
				t.Fatal(err)
			}
			// Centroids with a shared offset and mixed scales, so that
			// quantization error is not negligible.
			cents := make([]float32, c.nlist*c.dim)
			for i := range cents {
				cents[i] = float32(r.NormFloat64()*float64(1+i%c.dim%5)) + 3
			}
			if metric != L2 {
				normalizeRows(cents, c.dim)
			}
			ix.publish(&model{nlist: c.nlist, centroids: cents, sq: SQ8{Min: make([]float32, c.dim), Step: make([]float32, c.dim)}})
			m := ix.model.Load()
			var s coarseScratch
			for trial := 0; trial < 200; trial++ {
				q := make([]float32, c.dim)
				for i := range q {
					q[i] = float32(r.NormFloat64()*2) + 3
				}
				if metric == Cosine {
					Normalize(q)
				}
				nprobe := 1 + r.IntN(c.nlist/4)
				got := ix.coarse(m, q, nprobe, &s)
				want := make([]Hit, c.nlist)
				for j := range want {
					want[j] = Hit{ID: uint64(j), Dist: metric.coarse().Distance(q, cents[j*c.dim:(j+1)*c.dim])}
				}
				slices.SortFunc(want, compareHits)
				for i, p := range got {
					// Equal lists, or a float-rounding tie between distances.
					if uint64(p.List) != want[i].ID && !near(p.Dist, want[i].Dist) {
						t.Fatalf("%v nlist %d nprobe %d: probe %d is list %d (%v), exhaustive says %d (%v)",
							metric, c.nlist, nprobe, i, p.List, p.Dist, want[i].ID, want[i].Dist)
					}
				}
			}
		}
	}
}

func near(a, b float32) bool {
	d := a - b
	if d < 0 {
		d = -d
	}
	return d <= 1e-4*max(1, abs32(a), abs32(b))
}

func abs32(x float32) float32 {
	if x < 0 {
		return -x
	}
	return x
}
