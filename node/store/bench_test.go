package store

import (
	"fmt"
	"testing"
)

// BenchmarkApply measures synced ingest: batches of 1,000 new 128-d items
// (the ingest target is 50,000 vectors/s through the whole server).
func BenchmarkApply(b *testing.B) {
	for _, n := range []int{100, 1000} {
		b.Run(fmt.Sprint("batch=", n), func(b *testing.B) {
			s, err := Open(b.TempDir(), Options{})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			const dim = 128
			vecs := make([][]float32, n)
			for i := range vecs {
				vecs[i] = vecOf(uint64(i), dim)
			}
			b.SetBytes(int64(n * dim * 4))
			b.ReportAllocs()
			next := uint64(1)
			for b.Loop() {
				bt := NewBatch(1, 0, dim)
				for i := range n {
					bt.Put(Item{UserID: fmt.Sprint("id-", next), ID: next, List: uint32(next % 1024), Vector: vecs[i], Meta: []byte(`{"k":1}`)})
					next++
				}
				if _, err := s.Apply(ctx, bt); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(int(next)-1)/b.Elapsed().Seconds(), "vectors/s")
		})
	}
}
