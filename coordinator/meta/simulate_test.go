package meta_test

import (
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"lookalike/coordinator/meta"
	"lookalike/ivf"
)

func TestSimulateRoutingExact(t *testing.T) {
	sim := meta.RoutingSim{
		Nodes:     []string{"n1", "n2", "n3"},
		ListSizes: []int64{10, 20, 30, 40},
		Map: meta.ShardMap{ListShard: []uint32{0, 0, 1, 1}, Shards: []meta.Shard{
			{ID: 0, Replicas: []string{"n1"}, Primary: "n1"},
			{ID: 1, Replicas: []string{"n2"}, Primary: "n2"},
		}},
	}
	probed := [][]uint32{{0, 1}, {2, 1}, {3, 3}}
	st, err := meta.SimulateRouting(sim, probed)
	if err != nil {
		t.Fatal(err)
	}
	// q0: n1 scans 30; q1: n1 20, n2 30; q2: n2 40 (list 3 once).
	if st.Queries != 3 || st.Nodes != 3 || st.NodesMax != 2 || st.NodesP50 != 1 || st.NodesP99 != 2 ||
		math.Abs(st.NodesMean-4.0/3) > 1e-12 || math.Abs(st.ShardsMean-4.0/3) > 1e-12 {
		t.Fatalf("calls: %+v", st)
	}
	if !slices.Equal(st.NodeScanned, []int64{50, 70, 0}) || st.Scanned != 120 || st.ScanMean != 40 || st.ScanImbalance != 1.75 {
		t.Fatalf("load: %+v", st)
	}
	if want := math.Sqrt((100+900+1600)/3.0) / 40; math.Abs(st.ScanCV-want) > 1e-12 {
		t.Fatalf("cv %v, want %v", st.ScanCV, want)
	}
	if want := (1 + 30.0/50 + 1) / 3; math.Abs(st.CriticalShare-want) > 1e-12 {
		t.Fatalf("critical share %v, want %v", st.CriticalShare, want)
	}

	// Broadcast: every node, each an even share of every probed list.
	sim.Broadcast = true
	st, err = meta.SimulateRouting(sim, probed)
	if err != nil {
		t.Fatal(err)
	}
	// list 0: 10 = 3,3,3 + 1 on n1; list 1: 20 = 6,6,6 + 2 on n2,n3;
	// list 2: 30 = 10 each; list 3: 40 = 13 each + 1 on n1.
	if st.NodesMean != 3 || st.NodesMax != 3 || !slices.Equal(st.NodeScanned, []int64{3 + 1 + 6 + 6 + 10 + 13 + 1, 3 + 6 + 1 + 6 + 1 + 10 + 13, 3 + 6 + 1 + 6 + 1 + 10 + 13}) {
		t.Fatalf("broadcast: %+v", st)
	}

	// Replicas: with no call in common, the least loaded replica (node
	// order on a tie); affinity keeps a query on a node it already calls,
	// even a busier one.
	sim.Broadcast = false
	sim.Map.Shards = []meta.Shard{
		{ID: 0, Replicas: []string{"n1", "n2"}, Primary: "n1"},
		{ID: 1, Replicas: []string{"n2", "n3"}, Primary: "n3"},
	}
	st, _ = meta.SimulateRouting(sim, [][]uint32{{0, 2}, {0, 2}})
	if !slices.Equal(st.NodeScanned, []int64{20, 30, 30}) || st.NodesMean != 2 {
		t.Fatalf("least loaded: %+v", st)
	}
	sim.Map.Shards[0] = meta.Shard{ID: 0, Replicas: []string{"n2"}, Primary: "n2"}
	st, _ = meta.SimulateRouting(sim, [][]uint32{{0, 2}})
	if !slices.Equal(st.NodeScanned, []int64{0, 40, 0}) || st.NodesMean != 1 {
		t.Fatalf("affinity: %+v", st)
	}
	sim.Policy = meta.ReplicaPrimary
	st, _ = meta.SimulateRouting(sim, [][]uint32{{0, 2}})
	if !slices.Equal(st.NodeScanned, []int64{0, 10, 30}) || st.NodesMean != 2 {
		t.Fatalf("primary: %+v", st)
	}

	for _, bad := range []struct {
		sim    meta.RoutingSim
		probed [][]uint32
		want   error
	}{
		{meta.RoutingSim{}, nil, meta.ErrNotEnoughNodes},
		{meta.RoutingSim{Nodes: []string{"a", "a"}, Broadcast: true}, nil, meta.ErrBadNode},
		{meta.RoutingSim{Nodes: []string{"a"}, ListSizes: []int64{1}, Broadcast: true}, [][]uint32{{1}}, meta.ErrBadNList},
		{meta.RoutingSim{Nodes: []string{"a"}, ListSizes: []int64{1}}, nil, meta.ErrBadShardMap},
		{meta.RoutingSim{Nodes: []string{"a"}, ListSizes: []int64{1}, Map: meta.ShardMap{ListShard: []uint32{0}, Shards: []meta.Shard{{Replicas: []string{"b"}, Primary: "b"}}}}, nil, meta.ErrUnknownNode},
	} {
		if _, err := meta.SimulateRouting(bad.sim, bad.probed); !errors.Is(err, bad.want) {
			t.Errorf("SimulateRouting(%+v) = %v, want %v", bad.sim, err, bad.want)
		}
	}
}

// routingCase is a seeded clustered data set seen through its lists: the
// centroids, vectors per list and each query's nprobe nearest lists.
func routingCase(nlist, d, clusters, queries, nprobe int, seed uint64) (cents []float32, sizes []int64, probed [][]uint32) {
	cents = mixture(nlist, d, clusters, seed)
	r := rand.New(rand.NewPCG(seed, 11))
	sizes = make([]int64, nlist)
	for i := range sizes {
		sizes[i] = int64(math.Exp(0.75*r.NormFloat64()) * 200)
	}
	dist := make([]float32, nlist)
	idx := make([]int, nlist)
	x := make([]float32, d)
	for q := 0; q < queries; q++ {
		c := r.IntN(nlist)
		for j := range x {
			x[j] = cents[c*d+j] + float32(r.NormFloat64())
		}
		for i := range idx {
			idx[i] = i
			dist[i] = ivf.L2.Distance(x, cents[i*d:(i+1)*d])
		}
		slices.SortFunc(idx, func(a, b int) int {
			if dist[a] != dist[b] {
				return int(math.Copysign(1, float64(dist[a]-dist[b])))
			}
			return a - b
		})
		p := make([]uint32, nprobe)
		for i := range p {
			p[i] = uint32(idx[i])
		}
		probed = append(probed, p)
	}
	return cents, sizes, probed
}

// layout builds the shard map of a routing simulation: lists grouped by
// group into nodes×perNode shards balanced by vector count, placed by
// PlaceByWeight.
func layout(t *testing.T, listShard []uint32, sizes []int64, shards, replicas int, nodes []string) meta.ShardMap {
	t.Helper()
	w := make([]float64, shards)
	for l, s := range listShard {
		w[s] += float64(sizes[l])
	}
	placed, err := meta.PlaceByWeight(w, replicas, nodes, 1)
	if err != nil {
		t.Fatal(err)
	}
	return meta.ShardMap{ListShard: listShard, Shards: placed}
}

// TestRoutingPaysOff is decision 12 as a property: on clustered data a
// query's probed lists, grouped by GroupLists, reach far fewer nodes than
// under a random grouping, and broadcast reaches every node; every layout
// scans the same vectors in total, and the nodes' parts add up to it.
func TestRoutingPaysOff(t *testing.T) {
	const nlist, d, nprobe = 1024, 16, 16
	cents, sizes, probed := routingCase(nlist, d, 40, 400, nprobe, 1)
	weights := make([]float64, nlist)
	for i, s := range sizes {
		weights[i] = float64(s)
	}
	for _, c := range []struct{ nodes, perNode, replicas int }{{12, 1, 1}, {24, 1, 2}, {48, 1, 1}, {48, 2, 2}} {
		nodes := nodeIDs(c.nodes)
		shards := c.nodes * c.perNode
		grouped, err := meta.GroupLists(cents, d, shards, meta.GroupOptions{Weights: weights, Seed: 1})
		if err != nil {
			t.Fatal(err)
		}
		random, err := meta.GroupRandom(nlist, shards, 1)
		if err != nil {
			t.Fatal(err)
		}
		var stats [3]meta.RoutingStats
		for i, sim := range []meta.RoutingSim{
			{Nodes: nodes, ListSizes: sizes, Map: layout(t, grouped, sizes, shards, c.replicas, nodes)},
			{Nodes: nodes, ListSizes: sizes, Map: layout(t, random, sizes, shards, c.replicas, nodes)},
			{Nodes: nodes, ListSizes: sizes, Broadcast: true},
		} {
			st, err := meta.SimulateRouting(sim, probed)
			if err != nil {
				t.Fatal(err)
			}
			var sum int64
			for _, x := range st.NodeScanned {
				sum += x
			}
			if sum != st.Scanned || st.Scanned != stats[0].Scanned && i > 0 {
				t.Fatalf("%+v: node loads sum to %d, scanned %d (clustered %d)", c, sum, st.Scanned, stats[0].Scanned)
			}
			again, _ := meta.SimulateRouting(sim, probed)
			if !slices.Equal(again.NodeScanned, st.NodeScanned) || again.NodesMean != st.NodesMean {
				t.Fatal("not deterministic")
			}
			stats[i] = st
		}
		cl, rnd, bc := stats[0], stats[1], stats[2]
		t.Logf("%d nodes × %d shards, replicas %d, nprobe %d of %d: nodes per query clustered %.2f (p99 %d), random %.2f (p99 %d), broadcast %.0f; imbalance %.2f / %.2f / %.2f",
			c.nodes, c.perNode, c.replicas, nprobe, nlist, cl.NodesMean, cl.NodesP99, rnd.NodesMean, rnd.NodesP99, bc.NodesMean, cl.ScanImbalance, rnd.ScanImbalance, bc.ScanImbalance)
		if bc.NodesMean != float64(c.nodes) || bc.NodesP50 != c.nodes || bc.NodesMax != c.nodes {
			t.Fatalf("broadcast missed nodes: %+v", bc)
		}
		if cl.NodesMean > 0.6*rnd.NodesMean {
			t.Fatalf("%+v: clustered grouping contacts %.2f nodes per query, random %.2f: want ≤ 0.6×", c, cl.NodesMean, rnd.NodesMean)
		}
		if cl.NodesMax > nprobe || rnd.NodesMax > nprobe {
			t.Fatalf("more nodes than probed lists: %d, %d", cl.NodesMax, rnd.NodesMax)
		}
	}
}
