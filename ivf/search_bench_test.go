package ivf_test

import (
	"fmt"
	"testing"

	"lookalike/ivf"
	"lookalike/ivf/ivftest"
)

// BenchmarkSearch measures one single-thread search on clustered data of
// Fashion-MNIST's shape (784-d) and of the 1M set's dimension (128-d).
func BenchmarkSearch(b *testing.B) {
	for _, c := range []struct{ n, dim, nlist int }{{30000, 784, 512}, {100000, 128, 1024}} {
		data := ivftest.Clustered(c.n, c.dim, 200, 1)
		ix, err := ivf.New(ivf.Options{Dim: c.dim, NList: c.nlist})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := ix.Train(data); err != nil {
			b.Fatal(err)
		}
		if err := ix.Add(ivftest.Seq(c.n), data); err != nil {
			b.Fatal(err)
		}
		qs := ivftest.Clustered(256, c.dim, 200, 2)
		for _, np := range []int{1, 8, 32} {
			b.Run(fmt.Sprintf("d=%d/nlist=%d/nprobe=%d", c.dim, c.nlist, np), func(b *testing.B) {
				b.ReportAllocs()
				o := ivf.SearchOptions{K: 10, NProbe: np}
				for i := 0; b.Loop(); i++ {
					q := qs[(i%256)*c.dim : (i%256+1)*c.dim]
					if _, err := ix.Search(q, o); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
