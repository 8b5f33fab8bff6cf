//go:build linux || darwin

package ivf

import (
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"syscall"
	"testing"
	"unsafe"
)

// ktGuarded is memory with an inaccessible page either side: a kernel that
// reads or writes one byte outside a slice placed against either edge
// faults, and the test binary dies.
type ktGuarded struct{ data []byte }

func ktNewGuarded(t *testing.T, size int) ktGuarded {
	t.Helper()
	page := os.Getpagesize()
	size = (size + page - 1) / page * page
	mem, err := syscall.Mmap(-1, 0, size+2*page, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
	if err != nil {
		t.Skipf("mmap: %v", err)
	}
	t.Cleanup(func() { syscall.Munmap(mem) })
	if err := syscall.Mprotect(mem[:page], syscall.PROT_NONE); err != nil {
		t.Skipf("mprotect: %v", err)
	}
	if err := syscall.Mprotect(mem[page+size:], syscall.PROT_NONE); err != nil {
		t.Skipf("mprotect: %v", err)
	}
	return ktGuarded{data: mem[page : page+size]}
}

// floats returns n float32 against the end (atEnd) or the start of the
// memory, filled from r.
func (g ktGuarded) floats(r *rand.Rand, n int, atEnd bool) []float32 {
	all := unsafe.Slice((*float32)(unsafe.Pointer(&g.data[0])), len(g.data)/4)
	x := all[:n]
	if atEnd {
		x = all[len(all)-n:]
	}
	for i := range x {
		x[i] = 2*r.Float32() - 1
	}
	return x
}

// bytes returns n random bytes against the end or the start of the memory.
func (g ktGuarded) bytes(r *rand.Rand, n int, atEnd bool) []byte {
	b := g.data[:n]
	if atEnd {
		b = g.data[len(g.data)-n:]
	}
	for i := range b {
		b[i] = byte(r.UintN(256))
	}
	return b
}

// TestKernelGuardPages runs every kernel on slices that touch an
// inaccessible page, at their end or at their start: the masked and scalar
// tails must not read (or, for gemmNT, write) past them.
func TestKernelGuardPages(t *testing.T) {
	const maxD, maxN = 1792, 17
	gx, gy := ktNewGuarded(t, 4*maxD*maxN), ktNewGuarded(t, 4*maxD*maxN)
	gc, gout := ktNewGuarded(t, maxD*maxN), ktNewGuarded(t, 4*maxD*maxN)
	forEachLevel(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(9, 10))
		for _, atEnd := range []bool{true, false} {
			for _, d := range ktLengths {
				x, y := gx.floats(r, d, atEnd), gy.floats(r, d, atEnd)
				if got, want := dotF32(x, y), dotF32Generic(x, y); !ktClose(got, want, float64(d)) {
					t.Errorf("dotF32 d=%d: got %v, want %v", d, got, want)
				}
				if got, want := l2F32(x, y), l2F32Generic(x, y); !ktClose(got, want, 4*float64(d)) {
					t.Errorf("l2F32 d=%d: got %v, want %v", d, got, want)
				}
				for _, n := range []int{1, 3, 4, 5} {
					ys := gy.floats(r, n*d, atEnd)
					codes := gc.bytes(r, n*d, atEnd)
					out := gout.floats(r, n, atEnd)
					dotBatch(x, ys, out)
					sq8L2(x, x, codes, out)
					sq8IP(x, codes, out)
				}
			}
			for _, d := range []int{1, 3, 17, 33, 129} {
				for _, m := range []int{1, 5, 16, 17, 33} {
					for _, n := range []int{1, 5, 16, 17} {
						a, b := gx.floats(r, m*d, atEnd), gy.floats(r, n*d, atEnd)
						c := gout.floats(r, m*n, atEnd)
						gemmNT(a, b, d, c)
					}
				}
			}
		}
	})
}

func TestFirstNotFinite(t *testing.T) {
	bad := []float32{float32(math.NaN()), float32(math.Inf(1)), float32(math.Inf(-1))}
	for n := 0; n <= 9; n++ {
		v := make([]float32, n)
		for i := range v {
			v[i] = math.MaxFloat32 * float32(1-2*(i%2)) // extremes stay finite
		}
		if got := FirstNotFinite(v); got != -1 {
			t.Fatalf("len %d, all finite: got %d", n, got)
		}
		for at := range n {
			for _, b := range bad {
				w := slices.Clone(v)
				w[at] = b
				if got := FirstNotFinite(w); got != at || got != naiveFirstNotFinite(w) {
					t.Fatalf("len %d, %v at %d: got %d", n, b, at, got)
				}
				w[n-1] = b // a second one later does not change the first
				if got := FirstNotFinite(w); got != at {
					t.Fatalf("len %d, %v at %d and %d: got %d", n, b, at, n-1, got)
				}
			}
		}
	}
}

// naiveFirstNotFinite is the plain loop FirstNotFinite replaced: the
// reference for the test and the baseline of the benchmark.
func naiveFirstNotFinite(v []float32) int {
	for i, x := range v {
		if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
			return i
		}
	}
	return -1
}

// BenchmarkFirstNotFinite: the branch-free pass against the plain loop on
// a finite 128-d vector (what every write checks several times).
func BenchmarkFirstNotFinite(b *testing.B) {
	v := make([]float32, 128)
	for i := range v {
		v[i] = float32(i) - 64
	}
	for _, c := range []struct {
		name string
		f    func([]float32) int
	}{{"impl=branchless", FirstNotFinite}, {"impl=naive", naiveFirstNotFinite}} {
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(int64(4 * len(v)))
			for b.Loop() {
				if c.f(v) != -1 {
					b.Fatal("finite vector reported")
				}
			}
		})
	}
}
