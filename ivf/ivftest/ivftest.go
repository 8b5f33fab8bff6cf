// Package ivftest has helpers for tests of the ivf package and its users:
// seeded data sets and an in-memory vector source.
package ivftest

import (
	"math/rand/v2"

	"lookalike/ivf"
)

// Clustered returns n rows of dim floats drawn around `clusters` random
// centres (Gaussian, unit spread, centres spread 4×), determined by seed.
func Clustered(n, dim, clusters int, seed uint64) []float32 {
	r := rand.New(rand.NewPCG(seed, 7))
	centres := make([]float32, clusters*dim)
	for i := range centres {
		centres[i] = float32(r.NormFloat64() * 4)
	}
	out := make([]float32, n*dim)
	for i := 0; i < n; i++ {
		c := centres[r.IntN(clusters)*dim:]
		for j := 0; j < dim; j++ {
			out[i*dim+j] = c[j] + float32(r.NormFloat64())
		}
	}
	return out
}

// Source serves rows of a row-major matrix by id = row number.
type Source = ivf.Rows

// Seq returns the ids 0..n-1.
func Seq(n int) []uint64 {
	ids := make([]uint64, n)
	for i := range ids {
		ids[i] = uint64(i)
	}
	return ids
}
