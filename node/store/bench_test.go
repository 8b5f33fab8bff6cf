package store

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
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

// BenchmarkApplyParallel has 4 clients apply batches of 1,000 128-d items
// to different shards at once, as the ingest target does: their
// WAL syncs are shared. With prefill, the collection holds that many items
// first, so that the new items' lookups miss down to sstables (steady
// state). ids=ordered names items id-1, id-2, ... (they sort in
// insertion order, so the directory reads of a batch land side by side);
// ids=random names them by 32 hex digits, as the server generates them
// (every read a seek to a random place).
func BenchmarkApplyParallel(b *testing.B) {
	for _, prefill := range []int{0, 200_000} {
		for _, ids := range []string{"ordered", "random"} {
			b.Run(fmt.Sprintf("prefill=%d/ids=%s", prefill, ids), func(b *testing.B) { benchApplyParallel(b, prefill, ids == "random") })
		}
	}
}

// benchUserID names internal id id, in order or at random.
func benchUserID(id uint64, random bool) string {
	if !random {
		return fmt.Sprint("id-", id)
	}
	r := rand.New(rand.NewPCG(id, 11))
	return fmt.Sprintf("%016x%016x", r.Uint64(), r.Uint64())
}

func benchApplyParallel(b *testing.B, prefill int, random bool) {
	s, err := Open(b.TempDir(), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	const dim, n, clients = 128, 1000, 4
	vecs := make([][]float32, n)
	for i := range vecs {
		vecs[i] = vecOf(uint64(i), dim)
	}
	var next atomic.Uint64
	for done := 0; done < prefill; done += 10_000 {
		bt := NewBatch(1, 99, dim)
		for i := range 10_000 {
			id := next.Add(1)
			bt.Put(Item{UserID: benchUserID(id, random), ID: id, List: uint32(id % 1024), Vector: vecs[i%n]})
		}
		if _, err := s.Apply(ctx, bt); err != nil {
			b.Fatal(err)
		}
	}
	start := next.Load()
	b.SetBytes(int64(n * dim * 4))
	b.ResetTimer()
	var wg sync.WaitGroup
	per := (b.N + clients - 1) / clients
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range per {
				bt := NewBatch(1, uint32(c), dim)
				base := next.Add(n) - n + 1
				for i := range n {
					id := base + uint64(i)
					bt.Put(Item{UserID: benchUserID(id, random), ID: id, List: uint32(id % 1024), Vector: vecs[i]})
				}
				if _, err := s.Apply(ctx, bt); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	b.ReportMetric(float64(next.Load()-start)/b.Elapsed().Seconds(), "vectors/s")
}

// BenchmarkApplySequences: batches of 1,000 new items after 200,000,
// whose internal ids come from three increasing sequences at once, two
// thirds of each stretch here (an id directory's partition primaries
// hand out the versions, and the third shard's items go elsewhere:
// node/dist.go, "Versions"). How the id set bounds its runs decides
// whether the new ids need a lookup in the id index.
func BenchmarkApplySequences(b *testing.B) {
	s, err := Open(b.TempDir(), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	const dim, n, prefill = 128, 1000, 200_000
	vecs := make([][]float32, n)
	for i := range vecs {
		vecs[i] = vecOf(uint64(i), dim)
	}
	for done := uint64(0); done < prefill; done += 10_000 {
		bt := NewBatch(1, 99, dim)
		for i := range uint64(10_000) {
			id := done + i + 1
			bt.Put(Item{UserID: benchUserID(id, true), ID: id, List: uint32(id % 1024), Vector: vecs[i%n]})
		}
		if _, err := s.Apply(ctx, bt); err != nil {
			b.Fatal(err)
		}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	next := []uint64{1 << 20, 1 << 30, 1 << 40}
	b.SetBytes(int64(n * dim * 4))
	b.ReportAllocs()
	q := 0
	for b.Loop() {
		bt := NewBatch(1, 0, dim)
		for i := 0; i < n; next[q]++ {
			if rng.IntN(3) > 0 {
				id := next[q]
				bt.Put(Item{UserID: benchUserID(id, true), ID: id, List: uint32(id % 1024), Vector: vecs[i]})
				i++
			}
		}
		q = (q + 1) % len(next)
		if _, err := s.Apply(ctx, bt); err != nil {
			b.Fatal(err)
		}
	}
}
