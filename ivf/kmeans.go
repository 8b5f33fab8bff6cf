package ivf

import (
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
)

// newRand returns the package's seeded generator: every random choice in
// ivf goes through one of these, so a seed fixes the result.
func newRand(seed int64, stream uint64) *rand.Rand {
	return rand.New(rand.NewPCG(uint64(seed), 0x9e3779b97f4a7c15^stream))
}

// SampleRows picks min(n, max) distinct row numbers out of n, sorted,
// determined by seed.
func SampleRows(n, max int, seed int64) []int {
	if max >= n {
		rows := make([]int, n)
		for i := range rows {
			rows[i] = i
		}
		return rows
	}
	r := newRand(seed, 1)
	perm := make([]int, n)
	for i := range perm {
		perm[i] = i
	}
	for i := 0; i < max; i++ { // partial Fisher–Yates
		j := i + r.IntN(n-i)
		perm[i], perm[j] = perm[j], perm[i]
	}
	rows := perm[:max]
	slices.Sort(rows)
	return rows
}

// TrainingSample returns the rows that Train with these options would use
// for data: all of them, or a seeded sample of MaxPointsPerCentroid×nlist.
// Benchmarks hand the same sample to other engines.
func TrainingSample(data []float32, o Options) []float32 {
	o.EnsureDefaults()
	n := len(data) / o.Dim
	rows := SampleRows(n, o.MaxPointsPerCentroid*o.NList, o.Seed)
	if len(rows) == n {
		return data[:n*o.Dim]
	}
	out := make([]float32, 0, len(rows)*o.Dim)
	for _, r := range rows {
		out = append(out, data[r*o.Dim:(r+1)*o.Dim]...)
	}
	return out
}

// kmeansConfig is what kmeans needs; spherical normalises centroids after
// each update (inner product and cosine).
type kmeansConfig struct {
	dim, k, iters, threads int
	seed                   int64
	spherical              bool
	plusplus               bool
	// done, when closed, stops kmeans early (its centroids are then
	// unfinished: the caller checks and drops them).
	done <-chan struct{}
}

// closed reports whether done (nil: never) is closed.
func closed(done <-chan struct{}) bool {
	select {
	case <-done:
		return true
	default:
		return false
	}
}

// kmeans clusters the rows of data into k centroids. It is deterministic for
// a seed whatever the number of threads: partial sums are kept per fixed
// chunk of rows and merged in chunk order. It returns early, with
// unfinished centroids, once c.done is closed.
func kmeans(data []float32, c kmeansConfig) []float32 {
	d, k := c.dim, c.k
	n := len(data) / d
	r := newRand(c.seed, 2)
	cents := make([]float32, k*d)
	if c.plusplus {
		if !kmeansPlusPlus(data, cents, c, r) {
			return cents
		}
	} else {
		// FAISS: k distinct random points.
		perm := r.Perm(n)
		for j := 0; j < k; j++ {
			copy(cents[j*d:(j+1)*d], data[perm[j]*d:(perm[j]+1)*d])
		}
	}
	if c.spherical {
		normalizeRows(cents, d)
	}
	metric := L2
	if c.spherical {
		metric = IP
	}
	labels := make([]int32, n)
	const chunks = 16
	sums := make([][]float64, chunks)
	counts := make([][]int, chunks)
	for it := 0; it < c.iters; it++ {
		if !assignUntil(c.done, data, d, cents, metric, c.threads, labels, nil) {
			return cents
		}
		var wg sync.WaitGroup
		sem := make(chan struct{}, c.threads)
		for ch := 0; ch < chunks; ch++ {
			wg.Add(1)
			sem <- struct{}{}
			go func(ch int) {
				defer wg.Done()
				defer func() { <-sem }()
				if sums[ch] == nil {
					sums[ch] = make([]float64, k*d)
					counts[ch] = make([]int, k)
				}
				s, cnt := sums[ch], counts[ch]
				clear(s)
				clear(cnt)
				for i := ch * n / chunks; i < (ch+1)*n/chunks; i++ {
					l := int(labels[i])
					cnt[l]++
					row := data[i*d : (i+1)*d]
					dst := s[l*d : (l+1)*d]
					for j, x := range row {
						dst[j] += float64(x)
					}
				}
			}(ch)
		}
		wg.Wait()
		total := make([]int, k)
		for j := 0; j < k; j++ {
			for ch := 0; ch < chunks; ch++ {
				total[j] += counts[ch][j]
			}
			if total[j] == 0 {
				continue
			}
			dst := cents[j*d : (j+1)*d]
			inv := 1 / float64(total[j])
			for x := 0; x < d; x++ {
				var v float64
				for ch := 0; ch < chunks; ch++ {
					v += sums[ch][j*d+x]
				}
				dst[x] = float32(v * inv)
			}
		}
		splitEmpty(cents, total, d, n, r)
		if c.spherical {
			normalizeRows(cents, d)
		}
	}
	return cents
}

// splitEmpty gives every empty cluster half of a large one, as FAISS does:
// pick a cluster with probability proportional to its size, copy its
// centroid and push the two copies apart symmetrically.
func splitEmpty(cents []float32, size []int, d, n int, r *rand.Rand) {
	const eps = 1.0 / 1024
	k := len(size)
	for ci := 0; ci < k; ci++ {
		if size[ci] != 0 {
			continue
		}
		cj := 0
		if n <= k { // no size-proportional pick possible: split the largest
			for j := range size {
				if size[j] > size[cj] {
					cj = j
				}
			}
			if size[cj] < 2 {
				return
			}
		}
		for n > k {
			p := (float64(size[cj]) - 1) / float64(n-k)
			if r.Float64() < p {
				break
			}
			cj = (cj + 1) % k
		}
		copy(cents[ci*d:(ci+1)*d], cents[cj*d:(cj+1)*d])
		for x := 0; x < d; x++ {
			if x%2 == 0 {
				cents[ci*d+x] *= 1 + eps
				cents[cj*d+x] *= 1 - eps
			} else {
				cents[ci*d+x] *= 1 - eps
				cents[cj*d+x] *= 1 + eps
			}
		}
		size[ci] = size[cj] / 2
		size[cj] -= size[ci]
	}
}

// kmeansPlusPlus seeds cents with k-means++ (D² sampling). It reports
// false when c.done closed before it finished.
func kmeansPlusPlus(data, cents []float32, c kmeansConfig, r *rand.Rand) bool {
	d, k := c.dim, c.k
	n := len(data) / d
	first := r.IntN(n)
	copy(cents[:d], data[first*d:(first+1)*d])
	best := make([]float64, n)
	for i := range best {
		best[i] = math.Inf(1)
	}
	for j := 1; j <= k; j++ {
		if closed(c.done) {
			return false
		}
		prev := cents[(j-1)*d : j*d]
		var total float64
		for i := 0; i < n; i++ {
			dd := float64(l2F32(data[i*d:(i+1)*d], prev))
			if dd < best[i] {
				best[i] = dd
			}
			total += best[i]
		}
		if j == k {
			return true
		}
		pick := n - 1
		if total > 0 {
			t := r.Float64() * total
			for i := 0; i < n; i++ {
				t -= best[i]
				if t <= 0 {
					pick = i
					break
				}
			}
		} else {
			pick = r.IntN(n)
		}
		copy(cents[j*d:(j+1)*d], data[pick*d:(pick+1)*d])
	}
	return true
}

func normalizeRows(v []float32, d int) {
	for i := 0; i+d <= len(v); i += d {
		Normalize(v[i : i+d])
	}
}

// rowNorms returns the squared norm of each row.
func rowNorms(v []float32, d int) []float32 {
	out := make([]float32, len(v)/d)
	for i := range out {
		row := v[i*d : (i+1)*d]
		out[i] = dotF32(row, row)
	}
	return out
}

// assign writes the nearest centroid of each row of data into labels (and
// its internal distance into dists when not nil: squared L2, or −ip). Ties
// go to the lower centroid number. It runs gemmNT over tiles of rows on
// threads goroutines.
func assign(data []float32, d int, cents []float32, metric Metric, threads int, labels []int32, dists []float32) {
	assignUntil(nil, data, d, cents, metric, threads, labels, dists)
}

// assignUntil is assign that stops taking tiles once done (nil: never) is
// closed; it reports whether every row was assigned.
func assignUntil(done <-chan struct{}, data []float32, d int, cents []float32, metric Metric, threads int, labels []int32, dists []float32) bool {
	n, k := len(data)/d, len(cents)/d
	var cnorm []float32
	if metric == L2 {
		cnorm = rowNorms(cents, d)
	}
	const tile = 256 // rows of data per gemmNT call: large enough for the kernel's packing to pay
	var wg sync.WaitGroup
	tiles := (n + tile - 1) / tile
	var mu sync.Mutex
	var stopped atomic.Bool
	next := 0
	for w := 0; w < min(threads, tiles); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]float32, tile*k)
			for {
				mu.Lock()
				t := next
				next++
				mu.Unlock()
				if t >= tiles {
					return
				}
				if closed(done) {
					stopped.Store(true)
					return
				}
				i0, i1 := t*tile, min((t+1)*tile, n)
				c := buf[:(i1-i0)*k]
				gemmNT(data[i0*d:i1*d], cents, d, c)
				for i := i0; i < i1; i++ {
					row := c[(i-i0)*k : (i-i0+1)*k]
					bestJ, bestV := 0, float32(math.MaxFloat32)
					if metric == L2 {
						for j, dot := range row {
							if v := cnorm[j] - 2*dot; v < bestV {
								bestJ, bestV = j, v
							}
						}
						if dists != nil {
							x := data[i*d : (i+1)*d]
							bestV = max(0, bestV+dotF32(x, x))
						}
					} else {
						for j, dot := range row {
							if v := -dot; v < bestV {
								bestJ, bestV = j, v
							}
						}
					}
					labels[i] = int32(bestJ)
					if dists != nil {
						dists[i] = bestV
					}
				}
			}
		}()
	}
	wg.Wait()
	return !stopped.Load()
}
