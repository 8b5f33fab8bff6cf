package node_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"lookalike/ivf"
	"lookalike/node"
	"lookalike/node/nodetest"
	"lookalike/node/store"
)

// BenchmarkUpsert is the write path in process over the real store: one
// batch of 1,000 128-d vectors per op into a trained collection of 256
// lists.
func BenchmarkUpsert(b *testing.B) {
	ctx := context.Background()
	st, err := node.OpenPebble(b.TempDir(), store.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	n, err := node.Open(node.Options{NodeID: "n1", AutoTrainAt: -1}, nodetest.NewMeta(), st)
	if err != nil {
		b.Fatal(err)
	}
	defer n.Close()
	const d, batch = 128, 1000
	n.CreateCollection(ctx, node.CollectionMeta{Name: "c", Dim: d, Metric: ivf.L2, NList: 256})
	r := rand.New(rand.NewPCG(1, 1))
	mk := func(prefix string) []node.WriteItem { return items(prefix, randVecs(r, batch, d), d) }
	for i := 0; i < 11; i++ {
		if _, err := n.Insert(ctx, "c", mk(fmt.Sprintf("s%d-", i))); err != nil {
			b.Fatal(err)
		}
	}
	n.Train(ctx, "c", 0)
	waitStateB(b, n, "c")
	batches := make([][]node.WriteItem, 16)
	for i := range batches {
		batches[i] = mk(fmt.Sprintf("b%d-", i))
	}
	b.SetBytes(batch * d * 4)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := n.Insert(ctx, "c", batches[i%len(batches)]); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "vectors/s")
}

func waitStateB(b *testing.B, n *node.Node, name string) {
	for {
		s, _ := n.Describe(name)
		if s.State == node.Ready {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}
