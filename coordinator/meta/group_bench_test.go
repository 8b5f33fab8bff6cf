package meta_test

import (
	"fmt"
	"testing"

	"lookalike/coordinator/meta"
)

func BenchmarkGroupLists(b *testing.B) {
	for _, c := range []struct{ nlist, dim, shards int }{{1024, 128, 8}, {4096, 128, 32}, {16384, 128, 64}} {
		cents := mixture(c.nlist, c.dim, 64, 1)
		b.Run(fmt.Sprintf("nlist=%d/shards=%d", c.nlist, c.shards), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := meta.GroupLists(cents, c.dim, c.shards, meta.GroupOptions{Seed: 1}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
