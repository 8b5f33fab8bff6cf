package ivf

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// Kernel benchmarks run per level and per dimension, named like
// BenchmarkSQ8L2/avx512/d=784. The batch kernels scan about 64 KiB of codes
// (or 256 KiB of floats) per call, so their data sits in L2 and they
// measure the kernel, not memory.

var ktBenchDims = []int{128, 784}

// benchLevels runs f as a sub-benchmark at every level up to MaxLevel and
// every dimension of ktBenchDims.
func benchLevels(b *testing.B, f func(b *testing.B, d int)) {
	prev := KernelLevel()
	defer SetKernelLevel(prev)
	for l := LevelGeneric; l <= MaxLevel(); l++ {
		b.Run(l.String(), func(b *testing.B) {
			for _, d := range ktBenchDims {
				b.Run(fmt.Sprintf("d=%d", d), func(b *testing.B) {
					if err := SetKernelLevel(l); err != nil {
						b.Fatal(err)
					}
					f(b, d)
				})
			}
		})
	}
}

func ktBenchFloats(r *rand.Rand, n int) []float32 {
	x := make([]float32, n)
	for i := range x {
		x[i] = 2*r.Float32() - 1
	}
	return x
}

func ktBenchCodes(r *rand.Rand, n int) []byte {
	c := make([]byte, n)
	for i := range c {
		c[i] = byte(r.UintN(256))
	}
	return c
}

func BenchmarkSQ8L2(b *testing.B) {
	benchLevels(b, func(b *testing.B, d int) {
		r := rand.New(rand.NewPCG(1, 1))
		n := (64 << 10) / d
		a, s, codes, out := ktBenchFloats(r, d), ktBenchFloats(r, d), ktBenchCodes(r, n*d), make([]float32, n)
		b.SetBytes(int64(n * d))
		b.ReportAllocs()
		for b.Loop() {
			sq8L2(a, s, codes, out)
		}
	})
}

func BenchmarkSQ8IP(b *testing.B) {
	benchLevels(b, func(b *testing.B, d int) {
		r := rand.New(rand.NewPCG(2, 2))
		n := (64 << 10) / d
		w, codes, out := ktBenchFloats(r, d), ktBenchCodes(r, n*d), make([]float32, n)
		b.SetBytes(int64(n * d))
		b.ReportAllocs()
		for b.Loop() {
			sq8IP(w, codes, out)
		}
	})
}

func BenchmarkDotBatch(b *testing.B) {
	benchLevels(b, func(b *testing.B, d int) {
		r := rand.New(rand.NewPCG(3, 3))
		n := (256 << 10) / (4 * d)
		x, ys, out := ktBenchFloats(r, d), ktBenchFloats(r, n*d), make([]float32, n)
		b.SetBytes(int64(4 * n * d))
		b.ReportAllocs()
		for b.Loop() {
			dotBatch(x, ys, out)
		}
	})
}

// BenchmarkL2F32 is one call on two vectors (the bytes are both of them):
// call overhead and the final horizontal sum count here.
func BenchmarkL2F32(b *testing.B) {
	benchLevels(b, func(b *testing.B, d int) {
		r := rand.New(rand.NewPCG(4, 4))
		x, y := ktBenchFloats(r, d), ktBenchFloats(r, d)
		b.SetBytes(int64(8 * d))
		b.ReportAllocs()
		var sink float32
		for b.Loop() {
			sink += l2F32(x, y)
		}
		_ = sink
	})
}

// BenchmarkGemmNT multiplies 256 rows against 1024 (k-means assignment of
// a tile of points to 1024 centroids) and reports GFLOPS (2·m·n·d flops).
func BenchmarkGemmNT(b *testing.B) {
	const m, n = 256, 1024
	benchLevels(b, func(b *testing.B, d int) {
		r := rand.New(rand.NewPCG(5, 5))
		a, bm, c := ktBenchFloats(r, m*d), ktBenchFloats(r, n*d), make([]float32, m*n)
		b.ReportAllocs()
		for b.Loop() {
			gemmNT(a, bm, d, c)
		}
		b.ReportMetric(2*m*n*float64(d)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOPS")
	})
}
