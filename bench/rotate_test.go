package bench

import (
	"math"
	"slices"
	"testing"
)

func TestRandomRotationOrthogonal(t *testing.T) {
	for _, dim := range []int{1, 2, 3, 17, 128} {
		r := RandomRotation(dim, 42)
		if len(r) != dim*dim {
			t.Fatalf("dim %d: %d entries", dim, len(r))
		}
		var worst float64
		for i := range dim {
			for j := range dim {
				var s float64
				for k := range dim {
					s += float64(r[i*dim+k]) * float64(r[j*dim+k])
				}
				if i == j {
					s--
				}
				worst = max(worst, math.Abs(s))
			}
		}
		if worst > 1e-5 {
			t.Errorf("dim %d: |R·Rᵀ - I| up to %g", dim, worst)
		}
	}
}

func TestRandomRotationDeterministic(t *testing.T) {
	a, b, c := RandomRotation(50, 7), RandomRotation(50, 7), RandomRotation(50, 8)
	if !slices.Equal(a, b) {
		t.Fatal("same seed, different matrices")
	}
	if slices.Equal(a, c) {
		t.Fatal("different seeds, same matrix")
	}
	if RandomRotation(0, 1) != nil || RandomRotation(MaxVecsDim+1, 1) != nil {
		t.Fatal("out-of-range dim gave a matrix")
	}
}

func TestRotatePreservesDistances(t *testing.T) {
	const dim, n = 33, 101 // odd sizes: the 4-way loops' tails run too
	data := GaussianMixture(n, dim, 4, 3)
	for i := range dim { // zeros take the sparse path
		data[5*dim+i] = 0
		if i%3 == 0 {
			data[6*dim+i] = 0
		}
	}
	orig := slices.Clone(data)
	r := RandomRotation(dim, 99)
	if err := Rotate(data, dim, r); err != nil {
		t.Fatal(err)
	}
	if slices.Equal(data, orig) {
		t.Fatal("nothing changed")
	}
	row := func(v []float32, i int) []float32 { return v[i*dim : i*dim+dim] }
	for i := range n {
		// Against the definition y = R·x, in float64.
		for j := range dim {
			var s float64
			for k := range dim {
				s += float64(r[j*dim+k]) * float64(orig[i*dim+k])
			}
			if d := math.Abs(s - float64(data[i*dim+j])); d > 1e-4 {
				t.Fatalf("row %d component %d: %v, want %v", i, j, data[i*dim+j], s)
			}
		}
		a, b := (i*7)%n, (i*13+1)%n
		d0, d1 := sqDist(row(orig, a), row(orig, b)), sqDist(row(data, a), row(data, b))
		if math.Abs(d0-d1) > 1e-4*(1+d0) {
			t.Errorf("rows %d,%d: distance² %v before, %v after", a, b, d0, d1)
		}
	}
	if err := Rotate(data[:dim+1], dim, r); err == nil {
		t.Error("ragged data: no error")
	}
	if err := Rotate(data, dim, r[:dim]); err == nil {
		t.Error("short matrix: no error")
	}
}

func BenchmarkRotate(b *testing.B) {
	const dim, n = 784, 2000
	data := GaussianMixture(n, dim, 10, 1)
	r := RandomRotation(dim, 1)
	b.SetBytes(int64(4 * len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if err := Rotate(data, dim, r); err != nil {
			b.Fatal(err)
		}
	}
}
