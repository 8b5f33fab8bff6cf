package ivf

import (
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
)

// BruteForce returns, for each query, the k nearest rows of base by exact
// distance under m, best first; a hit's ID is the row number. base and
// queries are row-major with dim columns. For Cosine, rows are normalised
// on copies. threads ≤ 0 means GOMAXPROCS. progress, when not nil, is called
// from worker goroutines with the number of queries finished so far.
func BruteForce(m Metric, dim int, base, queries []float32, k, threads int, progress func(done int)) ([][]Hit, error) {
	if !m.valid() {
		return nil, fmt.Errorf("%w: %v", ErrUnknownMetric, m)
	}
	if dim <= 0 || len(base)%dim != 0 || len(queries)%dim != 0 {
		return nil, fmt.Errorf("%w: %d and %d floats are not rows of %d", ErrDimension, len(base), len(queries), dim)
	}
	if k < 1 {
		return nil, fmt.Errorf("%w: got %d", ErrBadK, k)
	}
	if m == Cosine {
		base = normalizedCopy(base, dim)
		queries = normalizedCopy(queries, dim)
	}
	nb, nq := len(base)/dim, len(queries)/dim
	if threads <= 0 {
		threads = runtime.GOMAXPROCS(0)
	}
	const qChunk, bBlock = 32, 256
	out := make([][]Hit, nq)
	var next, done atomic.Int64
	var wg sync.WaitGroup
	for range threads {
		wg.Add(1)
		go func() {
			defer wg.Done()
			heaps := make([]*TopK, qChunk)
			for i := range heaps {
				heaps[i] = NewTopK(k)
			}
			dist := make([]float32, bBlock)
			for {
				q0 := int(next.Add(qChunk)) - qChunk
				if q0 >= nq {
					return
				}
				q1 := min(q0+qChunk, nq)
				for i := range heaps {
					heaps[i].Reset(k)
				}
				for b0 := 0; b0 < nb; b0 += bBlock {
					b1 := min(b0+bBlock, nb)
					rows := base[b0*dim : b1*dim]
					d := dist[:b1-b0]
					for qi := q0; qi < q1; qi++ {
						q := queries[qi*dim : qi*dim+dim]
						if m == L2 {
							for j := range d {
								d[j] = l2F32(q, rows[j*dim:j*dim+dim])
							}
						} else {
							dotBatch(q, rows, d)
							for j := range d {
								d[j] = -d[j]
							}
						}
						h := heaps[qi-q0]
						for j, x := range d {
							if x <= h.Worst() {
								h.Push(uint64(b0+j), x)
							}
						}
					}
				}
				for qi := q0; qi < q1; qi++ {
					out[qi] = heaps[qi-q0].Sorted(nil)
				}
				n := done.Add(int64(q1 - q0))
				if progress != nil {
					progress(int(n))
				}
			}
		}()
	}
	wg.Wait()
	return out, nil
}

func normalizedCopy(v []float32, dim int) []float32 {
	c := make([]float32, len(v))
	copy(c, v)
	for i := 0; i+dim <= len(c); i += dim {
		Normalize(c[i : i+dim])
	}
	return c
}
