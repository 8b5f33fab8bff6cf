package ivf

import (
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"testing"

	"golang.org/x/sys/cpu"
)

// The kernel tests cross-check every kernel of every level this CPU runs
// against the generic Go version, on seeded random data of awkward lengths
// and misaligned slices. Results may differ by float reassociation only:
// |got − want| ≤ 1e-4·Σ|terms| + 1e-5.

// ktLengths are the vector lengths tried: every length up to 70 (all tail
// shapes of 8- and 16-lane code), and around the sizes that matter.
var ktLengths = func() []int {
	var ls []int
	for d := 0; d <= 70; d++ {
		ls = append(ls, d)
	}
	return append(ls, 127, 128, 129, 255, 256, 257, 783, 784, 785, 1792)
}()

// ktRows are the row counts tried for the batch kernels.
var ktRows = []int{0, 1, 2, 3, 5, 17}

// forEachLevel runs f as a subtest at every level up to MaxLevel and
// restores the level in force before.
func forEachLevel(t *testing.T, f func(t *testing.T)) {
	t.Helper()
	prev := KernelLevel()
	t.Cleanup(func() {
		if err := SetKernelLevel(prev); err != nil {
			t.Fatal(err)
		}
	})
	for l := LevelGeneric; l <= MaxLevel(); l++ {
		t.Run(l.String(), func(t *testing.T) {
			if err := SetKernelLevel(l); err != nil {
				t.Fatal(err)
			}
			f(t)
		})
	}
}

// ktFloats returns n random values in [-scale, scale) starting at an odd
// offset of their backing array, with n+off+1 elements so that the kernel
// sees a slice that is neither aligned nor at the array's end.
func ktFloats(r *rand.Rand, n int, scale float32) []float32 {
	buf := make([]float32, n+3)
	for i := range buf {
		buf[i] = (2*r.Float32() - 1) * scale
	}
	return buf[1 : 1+n]
}

// ktCodes returns n random codes at an odd offset, with 0 and 255 among them.
func ktCodes(r *rand.Rand, n int) []byte {
	buf := make([]byte, n+5)
	for i := range buf {
		buf[i] = byte(r.UintN(256))
	}
	c := buf[3 : 3+n]
	if n > 0 {
		c[0] = 255
		c[n/2] = 0
		c[n-1] = 255
	}
	return c
}

// ktClose reports whether got matches want within the reassociation
// tolerance for a sum whose terms have absolute sum mag.
func ktClose(got, want float32, mag float64) bool {
	if math.IsNaN(float64(want)) {
		return math.IsNaN(float64(got))
	}
	if math.IsInf(float64(want), 0) {
		return got == want
	}
	return math.Abs(float64(got)-float64(want)) <= 1e-4*mag+1e-5
}

func TestKernelLevel(t *testing.T) {
	t.Logf("GOARCH %s: max kernel level %v, running %v", runtime.GOARCH, MaxLevel(), KernelLevel())
	x := cpu.X86
	switch {
	case runtime.GOARCH != "amd64":
		if MaxLevel() != LevelGeneric {
			t.Errorf("MaxLevel() = %v on %s, want generic", MaxLevel(), runtime.GOARCH)
		}
	case x.HasAVX512F && x.HasAVX512BW && x.HasAVX512VL && x.HasAVX512DQ && x.HasAVX2 && x.HasFMA:
		if MaxLevel() != LevelAVX512 {
			t.Errorf("MaxLevel() = %v on a CPU with AVX-512 F/BW/VL/DQ, want avx512", MaxLevel())
		}
	case x.HasAVX2 && x.HasFMA:
		if MaxLevel() != LevelAVX2 {
			t.Errorf("MaxLevel() = %v on a CPU with AVX2+FMA, want avx2", MaxLevel())
		}
	}
}

func TestSetKernelLevelRejectsUnsupported(t *testing.T) {
	prev := KernelLevel()
	if err := SetKernelLevel(MaxLevel() + 1); err == nil {
		t.Fatalf("SetKernelLevel(%v) above MaxLevel %v: no error", MaxLevel()+1, MaxLevel())
	}
	if KernelLevel() != prev {
		t.Fatalf("failed SetKernelLevel changed the level from %v to %v", prev, KernelLevel())
	}
}

func TestKernelLevelParse(t *testing.T) {
	for l := LevelGeneric; l <= LevelAVX512; l++ {
		got, err := ParseLevel(l.String())
		if err != nil || got != l {
			t.Errorf("ParseLevel(%q) = %v, %v; want %v", l.String(), got, err, l)
		}
	}
	if _, err := ParseLevel("sse9"); err == nil {
		t.Error("ParseLevel(sse9): no error")
	}
}

func TestKernelDotL2F32(t *testing.T) {
	forEachLevel(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(1, 2))
		for _, n := range ktLengths {
			x, y := ktFloats(r, n, 1), ktFloats(r, n, 4)
			var mDot, mL2 float64
			for i := range x {
				mDot += math.Abs(float64(x[i]) * float64(y[i]))
				e := float64(x[i]) - float64(y[i])
				mL2 += e * e
			}
			if got, want := dotF32(x, y), dotF32Generic(x, y); !ktClose(got, want, mDot) {
				t.Errorf("dotF32 n=%d: got %v, want %v", n, got, want)
			}
			if got, want := l2F32(x, y), l2F32Generic(x, y); !ktClose(got, want, mL2) {
				t.Errorf("l2F32 n=%d: got %v, want %v", n, got, want)
			}
		}
	})
}

func TestKernelSQ8(t *testing.T) {
	forEachLevel(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(3, 4))
		for _, d := range ktLengths {
			for _, n := range ktRows {
				a, s, w := ktFloats(r, d, 100), ktFloats(r, d, 1), ktFloats(r, d, 1)
				codes := ktCodes(r, n*d)
				gotL2, wantL2 := ktFloats(r, n, 1), make([]float32, n)
				gotIP, wantIP := ktFloats(r, n, 1), make([]float32, n)
				sq8L2(a, s, codes, gotL2)
				sq8L2Generic(a, s, codes, wantL2)
				sq8IP(w, codes, gotIP)
				sq8IPGeneric(w, codes, wantIP)
				for j := 0; j < n; j++ {
					var mL2, mIP float64
					for i := 0; i < d; i++ {
						c := float64(codes[j*d+i])
						e := float64(a[i]) - float64(s[i])*c
						mL2 += e * e
						mIP += math.Abs(float64(w[i]) * c)
					}
					if !ktClose(gotL2[j], wantL2[j], mL2) {
						t.Errorf("sq8L2 d=%d n=%d row %d: got %v, want %v", d, n, j, gotL2[j], wantL2[j])
					}
					if !ktClose(gotIP[j], wantIP[j], mIP) {
						t.Errorf("sq8IP d=%d n=%d row %d: got %v, want %v", d, n, j, gotIP[j], wantIP[j])
					}
				}
			}
		}
	})
}

func TestKernelDotBatch(t *testing.T) {
	forEachLevel(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(5, 6))
		for _, d := range ktLengths {
			for _, n := range ktRows {
				x, ys := ktFloats(r, d, 1), ktFloats(r, n*d, 1)
				got, want := ktFloats(r, n, 1), make([]float32, n)
				dotBatch(x, ys, got)
				dotBatchGeneric(x, ys, want)
				for j := range got {
					var m float64
					for i := 0; i < d; i++ {
						m += math.Abs(float64(x[i]) * float64(ys[j*d+i]))
					}
					if !ktClose(got[j], want[j], m) {
						t.Errorf("dotBatch d=%d n=%d row %d: got %v, want %v", d, n, j, got[j], want[j])
					}
				}
			}
		}
	})
}

// ktGemmCheck runs gemmNT on random m×d and n×d matrices and compares it
// with the generic version; the output has a sentinel either side.
func ktGemmCheck(t *testing.T, r *rand.Rand, m, n, d int) {
	t.Helper()
	a, b := ktFloats(r, m*d, 1), ktFloats(r, n*d, 1)
	buf := make([]float32, m*n+2)
	buf[0], buf[m*n+1] = 12345, 54321
	got, want := buf[1:1+m*n], make([]float32, m*n)
	for i := range got {
		got[i] = float32(math.NaN())
	}
	gemmNT(a, b, d, got)
	gemmNTGeneric(a, b, d, want)
	if buf[0] != 12345 || buf[m*n+1] != 54321 {
		t.Fatalf("gemmNT m=%d n=%d d=%d wrote outside c", m, n, d)
	}
	bad := 0
	for i := 0; i < m; i++ {
		for j := 0; j < n; j++ {
			var mag float64
			for k := 0; k < d; k++ {
				mag += math.Abs(float64(a[i*d+k]) * float64(b[j*d+k]))
			}
			if g, w := got[i*n+j], want[i*n+j]; !ktClose(g, w, mag) {
				if bad++; bad <= 5 {
					t.Errorf("gemmNT m=%d n=%d d=%d c[%d,%d]: got %v, want %v", m, n, d, i, j, g, w)
				}
			}
		}
	}
}

func TestKernelGemmNT(t *testing.T) {
	ms := []int{0, 1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 33}
	ns := []int{0, 1, 3, 4, 5, 7, 8, 9, 15, 16, 17, 33}
	ds := []int{1, 2, 3, 7, 8, 9, 15, 16, 17, 31, 33, 128, 129, 784}
	forEachLevel(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(7, 8))
		for _, d := range ds {
			for _, m := range ms {
				for _, n := range ns {
					ktGemmCheck(t, r, m, n, d)
				}
			}
		}
		// Several blocks of A and of B on amd64 (gemmBlockA = 256 rows,
		// gemmBlockBBytes = 384 KiB), with partial panels and tiles at the
		// ends.
		ktGemmCheck(t, r, 533, 301, 784)
		ktGemmCheck(t, r, 257, 1100, 128)
	})
}

// TestKernelEdgeValues checks inputs that are exact or extreme: zeros,
// codes at both ends of the byte range, and values whose squares overflow.
func TestKernelEdgeValues(t *testing.T) {
	fill := func(n int, v float32) []float32 {
		x := make([]float32, n)
		for i := range x {
			x[i] = v
		}
		return x
	}
	bytesOf := func(n int, v byte) []byte {
		c := make([]byte, n)
		for i := range c {
			c[i] = v
		}
		return c
	}
	const d = 100
	inf := float32(math.Inf(1))
	tests := []struct {
		name      string
		x, y      []float32 // dotF32, l2F32, dotBatch (y is one row)
		a, s      []float32 // sq8L2; a doubles as the weights of sq8IP
		codes     []byte
		dot, l2   float32
		sqL2, sqI float32
	}{
		{"zeros", fill(d, 0), fill(d, 0), fill(d, 0), fill(d, 0), bytesOf(d, 0), 0, 0, 0, 0},
		{"ones", fill(d, 1), fill(d, 1), fill(d, 1), fill(d, 1), bytesOf(d, 1), d, 0, 0, d},
		{"codes 255", fill(d, 2), fill(d, -1), fill(d, 255), fill(d, 1), bytesOf(d, 255), -2 * d, 9 * d, 0, 255 * 255 * d},
		{"codes 0", fill(d, 0.5), fill(d, 0.5), fill(d, 3), fill(d, 7), bytesOf(d, 0), 0.25 * d, 0, 9 * d, 0},
		{"overflow", fill(d, 1e30), fill(d, -1e30), fill(d, 1e37), fill(d, -1e30), bytesOf(d, 200), -inf, inf, inf, inf},
	}
	forEachLevel(t, func(t *testing.T) {
		for _, tc := range tests {
			if got := dotF32(tc.x, tc.y); got != tc.dot {
				t.Errorf("%s: dotF32 = %v, want %v", tc.name, got, tc.dot)
			}
			if got := l2F32(tc.x, tc.y); got != tc.l2 {
				t.Errorf("%s: l2F32 = %v, want %v", tc.name, got, tc.l2)
			}
			out := make([]float32, 1)
			dotBatch(tc.x, tc.y, out)
			if out[0] != tc.dot {
				t.Errorf("%s: dotBatch = %v, want %v", tc.name, out[0], tc.dot)
			}
			sq8L2(tc.a, tc.s, tc.codes, out)
			if out[0] != tc.sqL2 {
				t.Errorf("%s: sq8L2 = %v, want %v", tc.name, out[0], tc.sqL2)
			}
			sq8IP(tc.a, tc.codes, out)
			if out[0] != tc.sqI {
				t.Errorf("%s: sq8IP = %v, want %v", tc.name, out[0], tc.sqI)
			}
			gemmNT(tc.x, tc.y, d, out)
			if out[0] != tc.dot {
				t.Errorf("%s: gemmNT = %v, want %v", tc.name, out[0], tc.dot)
			}
		}
		nan := float32(math.NaN())
		x := fill(37, 1)
		x[20] = nan
		if got := dotF32(x, fill(37, 1)); !math.IsNaN(float64(got)) {
			t.Errorf("dotF32 with a NaN = %v, want NaN", got)
		}
	})
}

// TestKernelShortSlicesPanic checks that the assembly kernels, like the
// generic ones, panic rather than read past a slice that is too short.
func TestKernelShortSlicesPanic(t *testing.T) {
	mustPanic := func(t *testing.T, name string, f func()) {
		t.Helper()
		defer func() {
			if recover() == nil {
				t.Errorf("%s: no panic", name)
			}
		}()
		f()
	}
	forEachLevel(t, func(t *testing.T) {
		x, short := make([]float32, 20), make([]float32, 19)
		out := make([]float32, 2)
		mustPanic(t, "dotF32", func() { dotF32(x, short) })
		mustPanic(t, "l2F32", func() { l2F32(x, short) })
		mustPanic(t, "dotBatch", func() { dotBatch(x, make([]float32, 39), out) })
		mustPanic(t, "sq8L2 s", func() { sq8L2(x, short, make([]byte, 40), out) })
		mustPanic(t, "sq8L2 codes", func() { sq8L2(x, x, make([]byte, 39), out) })
		mustPanic(t, "sq8IP", func() { sq8IP(x, make([]byte, 39), out) })
		mustPanic(t, "gemmNT", func() { gemmNT(x, x, 10, make([]float32, 3)) })
	})
}

func ExampleSetKernelLevel() {
	prev := KernelLevel()
	defer SetKernelLevel(prev)
	if err := SetKernelLevel(LevelGeneric); err != nil {
		panic(err)
	}
	fmt.Println(KernelLevel(), dotF32([]float32{1, 2, 3}, []float32{4, 5, 6}))
	// Output: generic 32
}
