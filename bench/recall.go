package bench

import (
	"math"
	"slices"
	"time"
)

// Recall is recall@k: the mean over the queries of gt of
// |got[i][:k] ∩ gt[i][:k]| / k, where got holds the ids an engine returned
// (best first) and gt the exact nearest ids. An id counts once however
// often got repeats it. A missing or short got row counts what it has; a
// gt row shorter than k (a tiny base) divides by its length instead. It is
// 0 when there are no queries or k < 1.
func Recall(got [][]int64, gt [][]int32, k int) float64 {
	if k < 1 || len(gt) == 0 {
		return 0
	}
	var sum float64
	want := make(map[int64]bool, k)
	for i, g := range gt {
		g = g[:min(k, len(g))]
		if len(g) == 0 {
			continue
		}
		clear(want)
		for _, id := range g {
			want[int64(id)] = true
		}
		hit := 0
		if i < len(got) {
			for _, id := range got[i][:min(k, len(got[i]))] {
				if want[id] {
					hit++
					want[id] = false // count an id once
				}
			}
		}
		sum += float64(hit) / float64(len(g))
	}
	return sum / float64(len(gt))
}

// Latency summarises the latencies of a run.
type Latency struct {
	N             int
	Mean          time.Duration
	P50, P95, P99 time.Duration
	Min, Max      time.Duration
}

// LatencyStats summarises d with nearest-rank percentiles: Pp is the
// smallest value with at least p% of the values at or below it. d is not
// modified. The zero Latency describes no values.
func LatencyStats(d []time.Duration) Latency {
	if len(d) == 0 {
		return Latency{}
	}
	s := slices.Clone(d)
	slices.Sort(s)
	var sum float64
	for _, x := range s {
		sum += float64(x)
	}
	return Latency{
		N:    len(s),
		Mean: time.Duration(sum / float64(len(s))),
		P50:  nearestRank(s, 50),
		P95:  nearestRank(s, 95),
		P99:  nearestRank(s, 99),
		Min:  s[0],
		Max:  s[len(s)-1],
	}
}

// nearestRank is the p-th percentile of sorted s: s[⌈p/100·n⌉ - 1].
func nearestRank(s []time.Duration, p float64) time.Duration {
	r := int(math.Ceil(p / 100 * float64(len(s))))
	return s[min(max(r, 1), len(s))-1]
}
