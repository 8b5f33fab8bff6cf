package meta_test

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"lookalike/coordinator/meta"
)

func BenchmarkPlaceByWeight(b *testing.B) {
	for _, c := range []struct{ shards, nodes, replicas int }{{48, 12, 2}, {192, 48, 2}, {1024, 256, 3}} {
		r := rand.New(rand.NewPCG(1, 1))
		w := make([]float64, c.shards)
		for i := range w {
			w[i] = float64(1000 + r.IntN(1000))
		}
		nodes := nodeIDs(c.nodes)
		b.Run(fmt.Sprintf("shards=%d/nodes=%d/r=%d", c.shards, c.nodes, c.replicas), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := meta.PlaceByWeight(w, c.replicas, nodes, 1); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkSimulateRouting reports the cost per routed query.
func BenchmarkSimulateRouting(b *testing.B) {
	const nlist, d, nprobe, queries = 1024, 16, 16, 1000
	cents, sizes, probed := routingCase(nlist, d, 40, queries, nprobe, 1)
	weights := make([]float64, nlist)
	for i, s := range sizes {
		weights[i] = float64(s)
	}
	nodes := nodeIDs(48)
	grouped, err := meta.GroupLists(cents, d, 96, meta.GroupOptions{Weights: weights, Seed: 1})
	if err != nil {
		b.Fatal(err)
	}
	sw := make([]float64, 96)
	for l, s := range grouped {
		sw[s] += weights[l]
	}
	placed, err := meta.PlaceByWeight(sw, 2, nodes, 1)
	if err != nil {
		b.Fatal(err)
	}
	for _, bc := range []bool{false, true} {
		sim := meta.RoutingSim{Nodes: nodes, ListSizes: sizes, Map: meta.ShardMap{ListShard: grouped, Shards: placed}, Broadcast: bc}
		b.Run(fmt.Sprintf("broadcast=%v", bc), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := meta.SimulateRouting(sim, probed); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*queries), "ns/query")
		})
	}
}
