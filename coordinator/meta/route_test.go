package meta_test

import (
	"math"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"

	"lookalike/coordinator/meta"
	"lookalike/ivf"
)

func TestRoute(t *testing.T) {
	tb, ref := base(t)
	// Untrained: every buffer shard, no lists.
	calls, missing, err := tb.Route("c", []uint32{1, 2}, nil)
	want := []meta.NodeCall{
		{Node: "n1", Shards: []meta.ShardLists{{Shard: 0, Buffer: true, Epoch: 1}}},
		{Node: "n2", Shards: []meta.ShardLists{{Shard: 1, Buffer: true, Epoch: 1}}},
	}
	if err != nil || missing != nil || !reflect.DeepEqual(calls, want) {
		t.Fatalf("untrained: %+v %v %v", calls, missing, err)
	}
	sm := meta.ShardMap{ListShard: []uint32{0, 1, 2, 0, 1, 2}, Shards: []meta.Shard{
		{ID: 0, Replicas: []string{"n1"}, Primary: "n1"},
		{ID: 1, Replicas: []string{"n2"}, Primary: "n2"},
		{ID: 2, Replicas: []string{"n1"}, Primary: "n1"},
	}}
	tb = must(t, tb, meta.BeginTraining{Collection: "c", Epoch: 1},
		meta.CommitTraining{Collection: "c", Epoch: 1, Centroids: ref, NList: 6, Shards: sm})
	// Trained, buffer not retired yet: the probed lists' shards plus every
	// buffer shard.
	calls, missing, err = tb.Route("c", []uint32{5, 0, 3, 2, 3}, nil)
	want = []meta.NodeCall{
		{Node: "n1", Shards: []meta.ShardLists{{Shard: 0, Epoch: 2, Lists: []uint32{0, 3}}, {Shard: 2, Epoch: 2, Lists: []uint32{2, 5}}, {Shard: 0, Buffer: true, Epoch: 1}}},
		{Node: "n2", Shards: []meta.ShardLists{{Shard: 1, Buffer: true, Epoch: 1}}},
	}
	if err != nil || missing != nil || !reflect.DeepEqual(calls, want) {
		t.Fatalf("trained with buffer: %+v %v %v", calls, missing, err)
	}
	tb = must(t, tb, meta.RetireBuffer{Collection: "c", Epoch: 2})
	calls, missing, err = tb.Route("c", []uint32{5, 0, 3, 2, 3}, nil)
	want = []meta.NodeCall{{Node: "n1", Shards: []meta.ShardLists{{Shard: 0, Epoch: 2, Lists: []uint32{0, 3}}, {Shard: 2, Epoch: 2, Lists: []uint32{2, 5}}}}}
	if err != nil || missing != nil || !reflect.DeepEqual(calls, want) {
		t.Fatalf("trained: %+v %v %v", calls, missing, err)
	}
	// A shard without a live replica is reported missing.
	down := func(s meta.Shard) string {
		if s.ID == 2 {
			return ""
		}
		return s.Primary
	}
	calls, missing, _ = tb.Route("c", []uint32{1, 2}, down)
	if len(calls) != 1 || calls[0].Node != "n2" || !reflect.DeepEqual(missing, []meta.ShardLists{{Shard: 2, Epoch: 2, Lists: []uint32{2}}}) {
		t.Fatalf("partial: %+v %v", calls, missing)
	}
	if _, _, err := tb.Route("c", []uint32{6}, nil); err == nil {
		t.Fatal("routed a list past nlist")
	}
	if _, _, err := tb.Route("zz", nil, nil); err == nil {
		t.Fatal("routed an unknown collection")
	}
}

func TestBufferShard(t *testing.T) {
	count := make([]int, 4)
	for i := 0; i < 4000; i++ {
		s := meta.BufferShard(string(rune('a'+i%26))+string(rune(i)), 4)
		count[s]++
	}
	for _, c := range count {
		if c < 800 || c > 1200 {
			t.Fatalf("buffer shards unbalanced: %v", count)
		}
	}
	if meta.BufferShard("x", 1) != 0 || meta.BufferShard("item-1", 7) != meta.BufferShard("item-1", 7) {
		t.Fatal("not a function of the id")
	}
}

func TestAutoNList(t *testing.T) {
	for _, c := range []struct{ n, want int }{
		{0, 1}, {77, 1}, {78, 2}, {1000, 16}, {10_000, 256}, {100_000, 1024}, {1_000_000, 4096}, {100_000_000, 32768}, {1 << 40, 65536},
	} {
		got := meta.AutoNList(c.n)
		if got != c.want {
			t.Errorf("AutoNList(%d) = %d, want %d", c.n, got, c.want)
		}
		if got > 1 && c.n/got < meta.MinPointsPerList {
			t.Errorf("AutoNList(%d) = %d leaves < 39 points per list", c.n, got)
		}
		if got&(got-1) != 0 {
			t.Errorf("AutoNList(%d) = %d is not a power of two", c.n, got)
		}
	}
}

// mixture returns n centroids of dim d around k cluster centres.
func mixture(n, d, k int, seed uint64) []float32 {
	r := rand.New(rand.NewPCG(seed, 2))
	centres := make([]float32, k*d)
	for i := range centres {
		centres[i] = float32(r.NormFloat64() * 4)
	}
	out := make([]float32, n*d)
	for i := 0; i < n; i++ {
		c := r.IntN(k)
		for j := 0; j < d; j++ {
			out[i*d+j] = centres[c*d+j] + float32(r.NormFloat64())
		}
	}
	return out
}

// shardsTouched is the mean number of distinct shards holding the nprobe
// nearest centroids of random queries near the data.
func shardsTouched(cents []float32, d int, assign []uint32, nprobe, queries int, seed uint64) float64 {
	r := rand.New(rand.NewPCG(seed, 3))
	n := len(cents) / d
	total := 0
	for q := 0; q < queries; q++ {
		base := r.IntN(n)
		x := make([]float32, d)
		for j := range x {
			x[j] = cents[base*d+j] + float32(r.NormFloat64())
		}
		idx := make([]int, n)
		dist := make([]float32, n)
		for i := range idx {
			idx[i] = i
			dist[i] = ivf.L2.Distance(x, cents[i*d:(i+1)*d])
		}
		slices.SortFunc(idx, func(a, b int) int { return int(math.Copysign(1, float64(dist[a]-dist[b]))) })
		seen := map[uint32]bool{}
		for _, i := range idx[:nprobe] {
			seen[assign[i]] = true
		}
		total += len(seen)
	}
	return float64(total) / float64(queries)
}

func TestGroupLists(t *testing.T) {
	const n, d, shards, nprobe = 512, 16, 8, 16
	cents := mixture(n, d, 24, 1)
	a, err := meta.GroupLists(cents, d, shards, meta.GroupOptions{Seed: 7})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := meta.GroupLists(cents, d, shards, meta.GroupOptions{Seed: 7})
	if !slices.Equal(a, b) {
		t.Fatal("not deterministic")
	}
	count := make([]int, shards)
	for _, s := range a {
		count[s]++
	}
	for _, c := range count {
		if c > n/shards { // n divisible by shards: exact balance
			t.Fatalf("unbalanced: %v", count)
		}
	}
	random := make([]uint32, n)
	for i, p := range rand.New(rand.NewPCG(9, 9)).Perm(n) {
		random[i] = uint32(p % shards)
	}
	clustered := shardsTouched(cents, d, a, nprobe, 200, 5)
	rnd := shardsTouched(cents, d, random, nprobe, 200, 5)
	t.Logf("shards touched by %d probed lists of %d on %d shards: clustered %.2f, random %.2f", nprobe, n, shards, clustered, rnd)
	if clustered > rnd/2 {
		t.Fatalf("clustered grouping touches %.2f shards, random %.2f: want at most half", clustered, rnd)
	}

	// More shards than candidates per list (8): still balanced and local.
	big := mixture(1024, d, 40, 2)
	g32, err := meta.GroupLists(big, d, 32, meta.GroupOptions{Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	count = make([]int, 32)
	for _, s := range g32 {
		count[s]++
	}
	if slices.Max(count) > 1024/32 {
		t.Fatalf("32 shards unbalanced: %v", count)
	}
	rnd32 := make([]uint32, 1024)
	for i := range rnd32 {
		rnd32[i] = uint32(i % 32)
	}
	c32, r32 := shardsTouched(big, d, g32, nprobe, 100, 6), shardsTouched(big, d, rnd32, nprobe, 100, 6)
	t.Logf("32 shards of 1024 lists: clustered %.2f, random %.2f", c32, r32)
	if c32 > r32/2 {
		t.Fatalf("32 shards: clustered %.2f, random %.2f", c32, r32)
	}

	// Weighted: balanced by weight.
	w := make([]float64, n)
	r := rand.New(rand.NewPCG(4, 4))
	total, maxW := 0.0, 0.0
	for i := range w {
		w[i] = float64(1 + r.IntN(100))
		total += w[i]
		maxW = max(maxW, w[i])
	}
	g, err := meta.GroupLists(cents, d, shards, meta.GroupOptions{Seed: 1, Weights: w})
	if err != nil {
		t.Fatal(err)
	}
	load := make([]float64, shards)
	for i, s := range g {
		load[s] += w[i]
	}
	for _, l := range load {
		if l > total/shards+maxW {
			t.Fatalf("weighted load %v over %v", load, total/shards+maxW)
		}
	}

	// Edge cases.
	if g, _ := meta.GroupLists(cents[:3*d], d, 5, meta.GroupOptions{}); !slices.Equal(g, []uint32{0, 1, 2}) {
		t.Fatal("fewer lists than shards", g)
	}
	for _, bad := range []func() error{
		func() error { _, err := meta.GroupLists(cents, 0, 2, meta.GroupOptions{}); return err },
		func() error { _, err := meta.GroupLists(cents[:d+1], d, 2, meta.GroupOptions{}); return err },
		func() error { _, err := meta.GroupLists(cents, d, 0, meta.GroupOptions{}); return err },
		func() error {
			_, err := meta.GroupLists(cents, d, 2, meta.GroupOptions{Weights: []float64{1}})
			return err
		},
	} {
		if bad() == nil {
			t.Fatal("accepted bad input")
		}
	}
}
