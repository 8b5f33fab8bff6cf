//go:build cuda && cgo

package cuda

// Tests and benchmarks on a real GPU. They only run on a machine with an
// NVIDIA GPU (compute capability 8.0+) and its driver: build them with
// `make gpu-test` and run bin/gpu-test.sh there (docs/cuda.md). Every test
// here is named TestGPU*, every benchmark BenchmarkGPU*.

import (
	"fmt"
	"math"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"lookalike/cuda/cudatest"
	"lookalike/ivf"
	"lookalike/ivf/ivftest"
)

func gpuOpener(t testing.TB, o Options) *Scanner {
	t.Helper()
	if o.MaxWait == 0 {
		o.MaxWait = -1
	}
	s, err := NewScanner(o)
	if err != nil {
		t.Fatalf("open the GPU: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return s
}

func TestGPUDevice(t *testing.T) {
	s := gpuOpener(t, Options{})
	i := s.info
	t.Logf("%s: compute %d.%d, %d SMs, %.1f GiB (%.1f free), %.0f GB/s theoretical; budget %.1f GiB",
		i.Name, i.Major, i.Minor, i.SMs, float64(i.TotalMem)/(1<<30), float64(i.FreeMem)/(1<<30), i.Bandwidth/1e9,
		float64(s.budget)/(1<<30))
	if i.SMs < 1 || i.TotalMem <= 0 {
		t.Errorf("implausible device info %+v", i)
	}
}

// The suite of scanner_test.go, on the GPU.
func TestGPUScannerMatchesCPU(t *testing.T)           { testScannerMatchesCPU(t, gpuOpener) }
func TestGPUEmptyListsAndLargeK(t *testing.T)         { testEmptyListsAndLargeK(t, gpuOpener) }
func TestGPUBudgetSendsListsToCPU(t *testing.T)       { testBudgetSendsListsToCPU(t, gpuOpener) }
func TestGPUAddsTailsAndUploads(t *testing.T)         { testAddsTailsAndUploads(t, gpuOpener) }
func TestGPURefreshUploadsTailsWhenIdle(t *testing.T) { testRefreshUploadsTailsWhenIdle(t, gpuOpener) }
func TestGPUDeletesAndCompact(t *testing.T)           { testDeletesAndCompact(t, gpuOpener) }
func TestGPUConcurrentScansAreBatched(t *testing.T)   { testConcurrentScansAreBatched(t, gpuOpener) }
func TestGPUTwoIndexesAndForget(t *testing.T)         { testTwoIndexesAndForget(t, gpuOpener) }
func TestGPUPreload(t *testing.T)                     { testPreload(t, gpuOpener) }
func TestGPUPreloadThenFill(t *testing.T)             { testPreloadThenFill(t, gpuOpener) }
func TestGPUAddsAndDeletesDuringScans(t *testing.T)   { testAddsAndDeletesDuringScans(t, gpuOpener) }

// The GPU computes bit for bit what the shared header computes on the CPU
// (the fake device): same ids, same distance bits, in the same order — for
// one block per query and for many blocks merged, with deletes.
func TestGPUEqualsHostMath(t *testing.T) {
	for _, m := range []ivf.Metric{ivf.L2, ivf.IP, ivf.Cosine} {
		for _, dim := range []int{3, 37, 128, 784} {
			t.Run(fmt.Sprintf("%v/dim%d", m, dim), func(t *testing.T) {
				const n, nlist, nq = 6000, 16, 24
				ix, _ := cudatest.Build(t, m, n, dim, nlist, uint64(dim)+1)
				for id := uint64(0); id < n; id += 11 {
					ix.Delete(id)
				}
				queries, probes := cudatest.Probes(ix, ivftest.Clustered(nq, dim, 20, 3), 5)
				for _, minRows := range []int{1, 1 << 20} {
					g := gpuOpener(t, Options{MinBlockRows: minRows})
					f := openFake(t, newFakeDev(g.info.SMs), Options{MinBlockRows: minRows})
					for _, k := range []int{1, 10, 1024} {
						got := make([][]ivf.Hit, nq)
						want := make([][]ivf.Hit, nq)
						if err := g.Scan(ix, queries, probes, k, got); err != nil {
							t.Fatal(err)
						}
						if err := f.Scan(ix, queries, probes, k, want); err != nil {
							t.Fatal(err)
						}
						for i := range want {
							if !slices.EqualFunc(got[i], want[i], func(a, b ivf.Hit) bool {
								return a.ID == b.ID && math.Float32bits(a.Dist) == math.Float32bits(b.Dist)
							}) {
								t.Fatalf("minRows %d k %d query %d: GPU %v, host math %v", minRows, k, i, head(got[i]), head(want[i]))
							}
						}
					}
				}
			})
		}
	}
}

func head(h []ivf.Hit) []ivf.Hit { return h[:min(len(h), 8)] }

// Awkward sizes on the GPU: dimensions 1..40 (not multiples of 4 or 16),
// lists of a few entries, k beyond them.
func TestGPUAwkwardSizes(t *testing.T) {
	s := gpuOpener(t, Options{})
	for _, m := range []ivf.Metric{ivf.L2, ivf.IP} {
		for dim := 1; dim <= 40; dim += 3 {
			ix, _ := cudatest.Build(t, m, 200, dim, 50, uint64(dim))
			queries, probes := cudatest.Probes(ix, ivftest.Clustered(5, dim, 20, 9), 7)
			for _, k := range []int{1, 3, 100, 1024} {
				compare(t, s, ix, queries, probes, k)
			}
		}
	}
}

// Fashion-MNIST (784-d pixels), when present: L2 and cosine against the CPU.
func TestGPUFashionMNIST(t *testing.T) {
	train, test, dir, ok, err := cudatest.FashionMNIST()
	if err != nil {
		t.Fatal(err)
	}
	if !ok {
		t.Skipf("Fashion-MNIST not found in %v", cudatest.FashionMNISTDirs())
	}
	t.Logf("Fashion-MNIST from %s", dir)
	const dim = 784
	s := gpuOpener(t, Options{})
	for _, m := range []ivf.Metric{ivf.L2, ivf.Cosine} {
		ix := cudatest.BuildFrom(t, m, train, dim, 256, 1)
		queries, probes := cudatest.Probes(ix, test[:1000*dim], 16)
		for _, k := range []int{1, 10, 100, 1024} {
			compare(t, s, ix, queries, probes, k)
		}
	}
}

// Benchmarks: QPS of one Scan call per batch of 1, 16, 256 and 1024
// queries, GPU beside ivf's CPU scanner (all cores) on the same data in the
// same run, and the rate at which the GPU reads codes.

type benchSet struct {
	name    string
	ix      *ivf.Index
	queries []float32
	probes  [][]ivf.Probe
}

var bench struct {
	once sync.Once
	sets []benchSet
}

func benchSets(b *testing.B) []benchSet {
	bench.once.Do(func() {
		if train, test, _, ok, err := cudatest.FashionMNIST(); err == nil && ok {
			ix := cudatest.BuildFrom(b, ivf.L2, train, 784, 256, 1)
			q, p := cudatest.Probes(ix, test[:1024*784], 16)
			bench.sets = append(bench.sets, benchSet{"fmnist-nlist256-nprobe16", ix, q, p})
		} else {
			b.Logf("Fashion-MNIST not found in %v: skipped", cudatest.FashionMNISTDirs())
		}
		const n, dim = 1_000_000, 128
		data := ivftest.Clustered(n+1024, dim, 1000, 42)
		ix := cudatest.BuildFrom(b, ivf.L2, data[:n*dim], dim, 1024, 42)
		q, p := cudatest.Probes(ix, data[n*dim:], 32)
		bench.sets = append(bench.sets, benchSet{"random1M-128d-nlist1024-nprobe32", ix, q, p})
	})
	return bench.sets
}

func BenchmarkGPUScan(b *testing.B) {
	const k = 10
	sets := benchSets(b)
	s := gpuOpener(b, Options{})
	for _, set := range sets {
		if err := s.Preload(set.ix); err != nil {
			b.Fatal(err)
		}
		d := set.ix.Dim()
		for _, batch := range []int{1, 16, 256, 1024} {
			q, p := set.queries[:batch*d], set.probes[:batch]
			var rows int64
			for _, ps := range p {
				for _, pr := range ps {
					rows += int64(set.ix.List(int(pr.List)).View().N)
				}
			}
			out := make([][]ivf.Hit, batch)
			b.Run(fmt.Sprintf("%s/batch=%d/gpu", set.name, batch), func(b *testing.B) {
				b.SetBytes(rows * int64(d))
				b.ReportAllocs()
				st0 := s.Stats()
				for b.Loop() {
					if err := s.Scan(set.ix, q, p, k, out); err != nil {
						b.Fatal(err)
					}
				}
				st1 := s.Stats()
				n := float64(st1.Queries - st0.Queries)
				b.ReportMetric(n/b.Elapsed().Seconds(), "queries/s")
				if dt := (st1.GPUTime - st0.GPUTime).Seconds(); dt > 0 {
					bps := float64(st1.GPUCodeBytes-st0.GPUCodeBytes) / dt
					b.ReportMetric(bps/1e9, "GB/s-device")
					if s.info.Bandwidth > 0 {
						b.ReportMetric(100*bps/s.info.Bandwidth, "%peak-bw")
					}
				}
				if st1.CPUListScans != st0.CPUListScans || st1.TailRows != st0.TailRows {
					b.Errorf("CPU work in a GPU benchmark: %+v", st1)
				}
			})
			b.Run(fmt.Sprintf("%s/batch=%d/cpu", set.name, batch), func(b *testing.B) {
				b.SetBytes(rows * int64(d))
				b.ReportAllocs()
				threads := min(runtime.GOMAXPROCS(0), batch)
				for b.Loop() {
					var wg sync.WaitGroup
					for t := 0; t < threads; t++ {
						i0, i1 := t*batch/threads, (t+1)*batch/threads
						wg.Add(1)
						go func() {
							defer wg.Done()
							if err := (ivf.CPUScanner{}).Scan(set.ix, q[i0*d:i1*d], p[i0:i1], k, out[i0:i1]); err != nil {
								b.Error(err)
							}
						}()
					}
					wg.Wait()
				}
				b.ReportMetric(float64(batch)*float64(b.N)/b.Elapsed().Seconds(), "queries/s")
			})
		}
	}
}

// Single-query Scans from many goroutines: the batcher gathers them.
func BenchmarkGPUConcurrentSingleQueries(b *testing.B) {
	const k = 10
	sets := benchSets(b)
	s := gpuOpener(b, Options{MaxWait: 100 * time.Microsecond})
	for _, set := range sets {
		if err := s.Preload(set.ix); err != nil {
			b.Fatal(err)
		}
		d := set.ix.Dim()
		b.Run(set.name, func(b *testing.B) {
			st0 := s.Stats()
			b.SetParallelism(64)
			var next sync.Mutex
			i := 0
			b.RunParallel(func(pb *testing.PB) {
				out := make([][]ivf.Hit, 1)
				for pb.Next() {
					next.Lock()
					j := i % len(set.probes)
					i++
					next.Unlock()
					if err := s.Scan(set.ix, set.queries[j*d:(j+1)*d], set.probes[j:j+1], k, out); err != nil {
						b.Error(err)
						return
					}
				}
			})
			st1 := s.Stats()
			b.ReportMetric(float64(st1.Queries-st0.Queries)/b.Elapsed().Seconds(), "queries/s")
			if nb := st1.Batches - st0.Batches; nb > 0 {
				b.ReportMetric(float64(st1.Queries-st0.Queries)/float64(nb), "queries/batch")
			}
		})
	}
}

// The planner's knobs on the GPU: MinBlockRows and BlocksPerSM for batches
// of 1, 16 and 1024 queries (k=10). Batch-1 latency depends on how many
// multiprocessors the rows of one query are spread over; large batches on
// the blocks per query and the merge. Used to choose the defaults
// (docs/cuda.md, "Figures").
func BenchmarkGPUScanPlan(b *testing.B) {
	const k = 10
	sets := benchSets(b)
	for _, bps := range []int{4, 16} {
		for _, minRows := range []int{32, 64, 128, 256, 512} {
			s, err := NewScanner(Options{MinBlockRows: minRows, BlocksPerSM: bps, MaxWait: -1})
			if err != nil {
				b.Fatalf("open the GPU: %v", err)
			}
			for _, set := range sets {
				if err := s.Preload(set.ix); err != nil {
					b.Fatal(err)
				}
				d := set.ix.Dim()
				for _, batch := range []int{1, 16, 1024} {
					q, p := set.queries[:batch*d], set.probes[:batch]
					out := make([][]ivf.Hit, batch)
					b.Run(fmt.Sprintf("%s/batch=%d/blocksPerSM=%d/minRows=%d", set.name, batch, bps, minRows), func(b *testing.B) {
						st0 := s.Stats()
						for b.Loop() {
							if err := s.Scan(set.ix, q, p, k, out); err != nil {
								b.Fatal(err)
							}
						}
						st1 := s.Stats()
						b.ReportMetric(float64(st1.Queries-st0.Queries)/b.Elapsed().Seconds(), "queries/s")
						b.ReportMetric(float64((st1.GPUTime-st0.GPUTime).Microseconds())/float64(st1.Batches-st0.Batches), "µs-device/batch")
					})
				}
				if err := s.Forget(set.ix); err != nil {
					b.Fatal(err)
				}
			}
			if err := s.Close(); err != nil {
				b.Fatal(err)
			}
		}
	}
}
