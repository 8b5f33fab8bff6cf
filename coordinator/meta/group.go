package meta

import (
	"cmp"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
)

// GroupOptions configures GroupLists.
type GroupOptions struct {
	// Weights, when set, holds one non-negative weight per list (its vector
	// count, say); shards are balanced by total weight. Nil balances by
	// list count.
	Weights []float64
	// Iterations of the balanced k-means; 0 means 20.
	Iterations int
	// Seed fixes the initial shard centres.
	Seed uint64
}

// GroupLists groups the nlist centroids (row-major, dim floats each) into
// shards shards by a balanced k-means over the centroids (decision 12), so
// that a query's nearest lists tend to fall on the same few shards. It
// returns ListShard: the shard of each list.
//
// Balance: each shard holds at most ⌈nlist/shards⌉ lists (or, with Weights,
// at most total/shards + the largest weight). Each iteration assigns lists
// greedily by increasing squared L2 distance to the shard centres under
// those capacities, then moves each centre to the mean of its lists.
// Distances are L2 for every metric: ip and cosine centroids are
// normalised, where L2 order is inner-product order. The result is a
// deterministic function of the inputs and the seed.
func GroupLists(centroids []float32, dim, shards int, o GroupOptions) ([]uint32, error) {
	if dim <= 0 || len(centroids)%dim != 0 {
		return nil, fmt.Errorf("%w: %d floats of dim %d", ErrBadDim, len(centroids), dim)
	}
	n := len(centroids) / dim
	if shards < 1 || shards > MaxShards || n < 1 {
		return nil, fmt.Errorf("%w: %d shards for %d lists", ErrBadShards, shards, n)
	}
	w := o.Weights
	if w == nil {
		w = make([]float64, n)
		for i := range w {
			w[i] = 1
		}
	}
	if len(w) != n {
		return nil, fmt.Errorf("%w: %d weights for %d lists", ErrBadShardMap, len(w), n)
	}
	total, maxW := 0.0, 0.0
	for _, x := range w {
		if x < 0 || math.IsNaN(x) || math.IsInf(x, 0) {
			return nil, fmt.Errorf("%w: weight %v", ErrBadShardMap, x)
		}
		total += x
		maxW = max(maxW, x)
	}
	capacity := math.Ceil(float64(n) / float64(shards))
	if o.Weights != nil {
		capacity = total/float64(shards) + maxW
	}
	iters := o.Iterations
	if iters <= 0 {
		iters = 20
	}
	if shards >= n {
		out := make([]uint32, n)
		for i := range out {
			out[i] = uint32(i)
		}
		return out, nil
	}

	// Initial centres: k-means++ from the seed.
	r := rand.New(rand.NewPCG(o.Seed, 0x6c6f6f6b616c696b))
	centres := make([]float64, shards*dim)
	row := func(i int) []float32 { return centroids[i*dim : (i+1)*dim] }
	dist := func(x []float32, c []float64) float64 {
		s := 0.0
		for j, v := range x {
			d := float64(v) - c[j]
			s += d * d
		}
		return s
	}
	setCentre := func(k, i int) {
		for j, v := range row(i) {
			centres[k*dim+j] = float64(v)
		}
	}
	setCentre(0, r.IntN(n))
	best := make([]float64, n)
	for i := range best {
		best[i] = dist(row(i), centres[:dim])
	}
	for k := 1; k < shards; k++ {
		sum := 0.0
		for _, d := range best {
			sum += d
		}
		pick := n - 1
		if sum > 0 {
			x := r.Float64() * sum
			for i, d := range best {
				if x -= d; x < 0 {
					pick = i
					break
				}
			}
		} else {
			pick = r.IntN(n)
		}
		setCentre(k, pick)
		for i := range best {
			best[i] = min(best[i], dist(row(i), centres[k*dim:(k+1)*dim]))
		}
	}

	type pair struct {
		d    float64
		list int32
		sh   int32
	}
	pairs := make([]pair, 0, n*shards)
	assign := make([]uint32, n)
	prev := make([]uint32, n)
	load := make([]float64, shards)
	done := make([]bool, n)
	for it := 0; it < iters; it++ {
		pairs = pairs[:0]
		for i := 0; i < n; i++ {
			for k := 0; k < shards; k++ {
				pairs = append(pairs, pair{dist(row(i), centres[k*dim:(k+1)*dim]), int32(i), int32(k)})
			}
		}
		slices.SortFunc(pairs, func(a, b pair) int {
			if c := cmp.Compare(a.d, b.d); c != 0 {
				return c
			}
			if c := cmp.Compare(a.list, b.list); c != 0 {
				return c
			}
			return cmp.Compare(a.sh, b.sh)
		})
		clear(load)
		clear(done)
		left := n
		for _, p := range pairs {
			if left == 0 {
				break
			}
			if done[p.list] || load[p.sh]+w[p.list] > capacity+1e-9 {
				continue
			}
			done[p.list] = true
			assign[p.list] = uint32(p.sh)
			load[p.sh] += w[p.list]
			left--
		}
		if left > 0 { // capacities too tight for the greedy pass: least loaded shard
			for i := 0; i < n; i++ {
				if !done[i] {
					k := slices.Index(load, slices.Min(load))
					assign[i] = uint32(k)
					load[k] += w[i]
				}
			}
		}
		if it > 0 && slices.Equal(assign, prev) {
			break
		}
		copy(prev, assign)
		// Move the centres to the (unweighted) means of their lists.
		clear(centres)
		count := make([]int, shards)
		for i, k := range assign {
			count[k]++
			for j, v := range row(i) {
				centres[int(k)*dim+j] += float64(v)
			}
		}
		for k := 0; k < shards; k++ {
			if count[k] == 0 {
				setCentre(k, r.IntN(n))
				continue
			}
			for j := 0; j < dim; j++ {
				centres[k*dim+j] /= float64(count[k])
			}
		}
	}
	return assign, nil
}
