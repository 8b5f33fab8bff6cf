package node_test

import (
	"bytes"
	"math/rand/v2"
	"slices"
	"testing"

	"lookalike/coordinator/meta"
	"lookalike/ivf"
	"lookalike/node"
)

// A cluster balances its shards by the vectors their lists hold, not by
// their count: twelve lists in three far-apart groups, the first group's
// lists 100 times as full as the others. By list count the shards follow
// the groups, so one shard holds most of the vectors; by vector count the
// full lists are spread, within GroupLists' bound.
func TestPlaceListsByVectors(t *testing.T) {
	const d, nlist = 2, 12
	r := rand.New(rand.NewPCG(3, 4))
	var data []float32
	for g := range 3 {
		for i := range 4 {
			for range 200 {
				data = append(data, float32(g*1000+i*50)+float32(r.NormFloat64())*0.5, float32(r.NormFloat64())*0.5)
			}
		}
	}
	ix, err := ivf.New(ivf.Options{Dim: d, Metric: ivf.L2, NList: nlist})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ix.Train(data); err != nil {
		t.Fatal(err)
	}
	var blob bytes.Buffer
	if _, err := ix.WriteTo(&blob); err != nil {
		t.Fatal(err)
	}
	// The sizes the trainer estimates: with fewer rows than its sample,
	// exactly the rows each list gets.
	labels, err := ix.Assign(data)
	if err != nil {
		t.Fatal(err)
	}
	want := make([]int64, nlist)
	for _, l := range labels {
		want[l]++
	}
	if est := node.ListSizes(ix, data, d); !slices.Equal(est, want) {
		t.Fatalf("estimated sizes %v, want %v", est, want)
	}
	// With more rows than the sample (the data 40 times: 96,000 rows, a
	// sample of every second one), the counts scale to all of them: an
	// estimate, within a fifth here.
	var many []float32
	for range 40 {
		many = append(many, data...)
	}
	for l, s := range node.ListSizes(ix, many, d) {
		if w := 40 * want[l]; s < w*4/5 || s > w*6/5 {
			t.Fatalf("estimated size of list %d from %d rows: %d, want about %d", l, len(many)/d, s, w)
		}
	}
	sizes := make([]int64, nlist)
	var total int64
	for l := range sizes {
		sizes[l] = 10
		if ix.Centroid(l)[0] < 500 {
			sizes[l] = 1000
		}
		total += sizes[l]
	}
	col := &meta.Collection{Name: "c", Dim: d, Metric: ivf.L2, Replicas: 1}
	live := []string{"n1", "n2", "n3"}
	// The vectors of the heaviest shard when placed with the given sizes.
	heaviest := func(given []int64) int64 {
		t.Helper()
		sm, err := node.PlaceLists(blob.Bytes(), col, live, given)
		if err != nil {
			t.Fatal(err)
		}
		if len(sm.Shards) != 3 || len(sm.ListShard) != nlist {
			t.Fatalf("shard map %+v", sm)
		}
		per := make([]int64, len(sm.Shards))
		for l, s := range sm.ListShard {
			per[s] += sizes[l]
		}
		return max(per[0], per[1], per[2])
	}
	bound := (total+nlist)/3 + 1001 // GroupLists: total/shards + the largest weight
	byCount, byVectors := heaviest(nil), heaviest(sizes)
	t.Logf("heaviest shard: %d of %d vectors by list count, %d by vector count (bound %d)", byCount, total, byVectors, bound)
	if byCount <= bound {
		t.Fatalf("by list count the heaviest shard holds %d vectors, want more than %d (the test's data does not discriminate)", byCount, bound)
	}
	if byVectors > bound {
		t.Fatalf("by vector count the heaviest shard holds %d of %d vectors, want at most %d", byVectors, total, bound)
	}
}
