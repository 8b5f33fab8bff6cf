package node_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http/httptest"
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
	b.Run("pebble", func(b *testing.B) {
		st, err := node.OpenPebble(b.TempDir(), store.Options{})
		if err != nil {
			b.Fatal(err)
		}
		defer st.Close()
		benchUpsert(b, st)
	})
	// The node's own ceiling: the same over the in-memory store.
	b.Run("memory", func(b *testing.B) { benchUpsert(b, nodetest.NewStore()) })
}

func benchUpsert(b *testing.B, st node.Storage) {
	ctx := context.Background()
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

// BenchmarkSearchPath compares one search through the HTTP handler, the
// gateway and the bare index, over the real store (20,000 128-d vectors,
// nlist 128, nprobe 16, k 10).
func BenchmarkSearchPath(b *testing.B) {
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
	const d, nb = 128, 20000
	n.CreateCollection(ctx, node.CollectionMeta{Name: "c", Dim: d, Metric: ivf.L2, NList: 128})
	r := rand.New(rand.NewPCG(1, 1))
	vecs := randVecs(r, nb, d)
	for i := 0; i < nb; i += 5000 {
		batch := items(fmt.Sprintf("p%d-", i), vecs[i*d:(i+5000)*d], d)
		for j := range batch {
			if j%2 == 0 {
				batch[j].Meta = nil // half the items have metadata
			}
		}
		if _, err := n.Insert(ctx, "c", batch); err != nil {
			b.Fatal(err)
		}
	}
	n.Train(ctx, "c", 0)
	waitStateB(b, n, "c")
	q := vecs[:d]
	body, _ := json.Marshal(map[string]any{"vector": q, "k": 10, "nprobe": 16})
	h := n.Handler(node.APIOptions{})
	b.Run("http-handler", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			req := httptest.NewRequest("POST", "/v1/collections/c/search", bytes.NewReader(body))
			w := httptest.NewRecorder()
			h.ServeHTTP(w, req)
			if w.Code != 200 {
				b.Fatal(w.Body.String())
			}
		}
	})
	b.Run("gateway", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			if _, err := n.Search(ctx, "c", node.SearchRequest{Vector: q, K: 10, NProbe: 16}); err != nil {
				b.Fatal(err)
			}
		}
	})
}
