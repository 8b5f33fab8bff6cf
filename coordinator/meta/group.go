package meta

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"

	"lookalike/ivf"
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
// greedily under those capacities — (list, centre) pairs by increasing
// squared L2 distance, each list's 8 nearest centres taking part, each list
// to the first centre with room — then moves each centre to the mean of its
// lists. Cost per iteration: nlist·shards·dim for the distances plus a sort
// of 8·nlist integers.
// Distances are L2 for every metric: ip and cosine centroids are
// normalised, where L2 order is inner-product order. The result is a
// deterministic function of the inputs and the seed on a given CPU (the
// distance kernel is ivf's SIMD one, whose last bits depend on the
// instruction set). The leader computes it once, before proposing; the
// result travels in the shard map, so replicas never recompute it.
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

	// Each (list, shard) pair is one uint64 sort key: the float32 bits of
	// the distance (non-negative floats order like their bits), the list
	// (20 bits, MaxNList) and the shard (12 bits, MaxShards); ties break by
	// list, then shard.
	// Only each list's m nearest centres take part in the global sort; a
	// list that finds them all full (rare) takes the nearest centre with
	// room afterwards.
	m := min(shards, 8)
	keys := make([]uint64, 0, n*m)
	row64 := make([]uint64, shards)
	c32 := make([]float32, shards*dim)
	assign := make([]uint32, n)
	prev := make([]uint32, n)
	load := make([]float64, shards)
	done := make([]bool, n)
	for it := 0; it < iters; it++ {
		for j, v := range centres {
			c32[j] = float32(v)
		}
		keys = keys[:0]
		for i := 0; i < n; i++ {
			x := row(i)
			for k := 0; k < shards; k++ {
				d := ivf.L2.Distance(x, c32[k*dim:(k+1)*dim]) // SIMD
				row64[k] = uint64(math.Float32bits(max(d, 0)))<<32 | uint64(i)<<12 | uint64(k)
			}
			slices.Sort(row64)
			keys = append(keys, row64[:m]...)
		}
		slices.Sort(keys)
		clear(load)
		clear(done)
		left := n
		for _, key := range keys {
			if left == 0 {
				break
			}
			i, k := int(key>>12&(1<<20-1)), int(key&(1<<12-1))
			if done[i] || load[k]+w[i] > capacity+1e-9 {
				continue
			}
			done[i] = true
			assign[i] = uint32(k)
			load[k] += w[i]
			left--
		}
		for i := 0; i < n && left > 0; i++ {
			if done[i] {
				continue
			}
			best, bestD := -1, float32(math.Inf(1))
			for k := 0; k < shards; k++ {
				if d := ivf.L2.Distance(row(i), c32[k*dim:(k+1)*dim]); d < bestD && load[k]+w[i] <= capacity+1e-9 {
					best, bestD = k, d
				}
			}
			if best < 0 { // capacities too tight (weights): the least loaded shard
				best = slices.Index(load, slices.Min(load))
			}
			assign[i] = uint32(best)
			load[best] += w[i]
			left--
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
