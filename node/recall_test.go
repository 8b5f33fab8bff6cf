package node_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"

	"lookalike/ivf"
	"lookalike/node"
	"lookalike/node/nodetest"
)

// TestServerEqualsEngine: a collection trained by the node answers every
// query exactly as an ivf.Index trained by hand on the same vectors, in
// the same order, with the same seed and nlist — so recall through the
// server equals the engine's.
func TestServerEqualsEngine(t *testing.T) {
	for _, m := range []ivf.Metric{ivf.L2, ivf.Cosine} {
		t.Run(m.String(), func(t *testing.T) {
			ctx := context.Background()
			n := open(t, nodetest.NewMeta(), nodetest.NewStore(), node.Options{Seed: 7, MoveChunk: 500})
			const d, nb, nlist = 16, 4000, 32
			n.CreateCollection(ctx, node.CollectionMeta{Name: "c", Dim: d, Metric: m, NList: nlist})
			r := rand.New(rand.NewPCG(5, 5))
			vecs := randVecs(r, nb, d)
			for i := 0; i < nb; i += 1000 {
				if _, err := n.Insert(ctx, "c", items("v", vecs, d)[i:i+1000]); err != nil {
					t.Fatal(err)
				}
			}
			n.Train(ctx, "c", 0)
			waitState(t, n, "c", node.Ready)

			ix, err := ivf.New(ivf.Options{Dim: d, Metric: m, NList: nlist, Seed: 7})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := ix.Train(vecs); err != nil {
				t.Fatal(err)
			}
			ids := make([]uint64, nb)
			for i := range ids {
				ids[i] = uint64(i)
			}
			if err := ix.Add(ids, vecs); err != nil {
				t.Fatal(err)
			}
			for qi := 0; qi < 100; qi++ {
				q := randVecs(r, 1, d)
				res, err := n.Search(ctx, "c", node.SearchRequest{Vector: q, K: 10, NProbe: 4})
				if err != nil {
					t.Fatal(err)
				}
				want, err := ix.Search(q, ivf.SearchOptions{K: 10, NProbe: 4})
				if err != nil {
					t.Fatal(err)
				}
				if len(res.Hits) != len(want) {
					t.Fatalf("query %d: %d hits, engine %d", qi, len(res.Hits), len(want))
				}
				for i, h := range want {
					if res.Hits[i].UserID != fmt.Sprintf("v%d", h.ID) || res.Hits[i].Score != m.Score(h.Dist) {
						t.Fatalf("query %d hit %d: server %+v, engine v%d %v", qi, i, res.Hits[i], h.ID, m.Score(h.Dist))
					}
				}
			}
		})
	}
}
