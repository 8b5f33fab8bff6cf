package bench

import (
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
)

// RandomRotation returns a dim×dim orthogonal matrix, row-major, drawn from
// the uniform (Haar) distribution: a matrix of standard normal entries from
// a PCG stream seeded by seed, orthonormalised row by row with modified
// Gram-Schmidt run twice (in float64, so R·Rᵀ = I to float32 precision).
// The same dim and seed give the same matrix on every machine. It returns
// nil when dim is outside 1..MaxVecsDim.
//
// Rotating a data set keeps every distance and inner product, but spreads
// each coordinate's information over all of them: integer pixels become
// reals with no grid, so 8-bit scalar quantization can no longer be exact.
func RandomRotation(dim int, seed int64) []float32 {
	if dim < 1 || dim > MaxVecsDim {
		return nil
	}
	rng := rand.New(rand.NewPCG(uint64(seed), 0x726f74617465)) // "rotate"
	q := make([]float64, dim*dim)
	for i := range q {
		q[i] = rng.NormFloat64()
	}
	for range 2 {
		for i := range dim {
			qi := q[i*dim : i*dim+dim]
			norm := math.Sqrt(dot64(qi, qi))
			if norm < 1e-12 { // measure zero for a Gaussian draw; keep it safe
				qi[i] = 1
				norm = math.Sqrt(dot64(qi, qi))
			}
			for k := range qi {
				qi[k] /= norm
			}
			// Remove qi from every later row (right-looking MGS).
			for j := i + 1; j < dim; j++ {
				qj := q[j*dim : j*dim+dim]
				p := dot64(qi, qj)
				for k, x := range qi {
					qj[k] -= p * x
				}
			}
		}
	}
	r := make([]float32, dim*dim)
	for i, x := range q {
		r[i] = float32(x)
	}
	return r
}

func dot64(x, y []float64) float64 {
	y = y[:len(x)]
	var s0, s1, s2, s3 float64
	i := 0
	for ; i+4 <= len(x); i += 4 {
		s0 += x[i] * y[i]
		s1 += x[i+1] * y[i+1]
		s2 += x[i+2] * y[i+2]
		s3 += x[i+3] * y[i+3]
	}
	for ; i < len(x); i++ {
		s0 += x[i] * y[i]
	}
	return s0 + s1 + s2 + s3
}

// Rotate replaces every row x of data (rows of dim floats) by R·x, where r
// is a dim×dim row-major matrix such as RandomRotation returns. It uses all
// of GOMAXPROCS; the result does not depend on how many.
func Rotate(data []float32, dim int, r []float32) error {
	if dim < 1 || len(data)%dim != 0 {
		return fmt.Errorf("bench: rotate: %d values are not rows of %d", len(data), dim)
	}
	if len(r) != dim*dim {
		return fmt.Errorf("bench: rotate: matrix has %d entries, want %d×%d", len(r), dim, dim)
	}
	// R·x = Σ_k x[k]·(column k of R): with Rᵀ's rows as those columns, each
	// row is a sum of contiguous axpys, and zero components (half of
	// Fashion-MNIST's pixels) cost nothing.
	rt := make([]float32, dim*dim)
	for i := range dim {
		for k, v := range r[i*dim : i*dim+dim] {
			rt[k*dim+i] = v
		}
	}
	n := len(data) / dim
	const chunk = 64
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), (n+chunk-1)/chunk) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			y := make([]float32, dim)
			nz := make([]int, 0, dim)
			for {
				i0 := int(next.Add(chunk)) - chunk
				if i0 >= n {
					return
				}
				for i := i0; i < min(i0+chunk, n); i++ {
					x := data[i*dim : i*dim+dim]
					nz = rotateRow(x, rt, y, nz)
					copy(x, y)
				}
			}
		}()
	}
	wg.Wait()
	return nil
}

// rotateRow sets y = Σ_k x[k]·rt[k], over the nonzero x[k], four rows of rt
// per pass over y. nz is scratch space for the nonzero indices; it returns
// it for reuse. In plain Go this runs at about one multiply-add per cycle,
// the limit of scalar SSE.
func rotateRow(x, rt, y []float32, nz []int) []int {
	dim := len(x)
	y = y[:dim]
	clear(y)
	nz = nz[:0]
	for k, u := range x {
		if u != 0 {
			nz = append(nz, k)
		}
	}
	j := 0
	for ; j+4 <= len(nz); j += 4 {
		k0, k1, k2, k3 := nz[j], nz[j+1], nz[j+2], nz[j+3]
		u0, u1, u2, u3 := x[k0], x[k1], x[k2], x[k3]
		// Sliced to len(y) so the compiler drops the bounds checks below.
		t0 := rt[k0*dim:][:len(y)]
		t1 := rt[k1*dim:][:len(y)]
		t2 := rt[k2*dim:][:len(y)]
		t3 := rt[k3*dim:][:len(y)]
		for i := range y {
			y[i] += u0*t0[i] + u1*t1[i] + u2*t2[i] + u3*t3[i]
		}
	}
	for ; j < len(nz); j++ {
		u, t := x[nz[j]], rt[nz[j]*dim:][:len(y)]
		for i := range y {
			y[i] += u * t[i]
		}
	}
	return nz
}
