package ivf

import (
	"sync"

	"golang.org/x/sys/cpu"
)

// The assembly kernels live in kernel_amd64.s, generated with avo from
// _asm/ (its own module, so avo stays out of this go.mod).
//go:generate go run -C _asm . -out ../kernel_amd64.s -stubs ../kernel_amd64_decl.go -pkg ivf

// detectArch sets maxLevel from the CPU's features and the OS's support
// for saving the vector registers (x/sys/cpu checks both).
func detectArch() {
	x := cpu.X86
	switch {
	case x.HasAVX512F && x.HasAVX512BW && x.HasAVX512VL && x.HasAVX512DQ && x.HasAVX2 && x.HasFMA:
		maxLevel = LevelAVX512
	case x.HasAVX2 && x.HasFMA:
		maxLevel = LevelAVX2
	}
}

// setArchLevel installs the assembly kernels of level l; SetKernelLevel has
// already installed the generic ones.
func setArchLevel(l Level) {
	switch l {
	case LevelAVX512:
		dotF32, l2F32 = dotF32AVX512Go, l2F32AVX512Go
		sq8L2, sq8IP = sq8L2AVX512Go, sq8IPAVX512Go
		dotBatch, gemmNT = dotBatchAVX512Go, gemmAVX512.gemmNT
	case LevelAVX2:
		dotF32, l2F32 = dotF32AVX2Go, l2F32AVX2Go
		sq8L2, sq8IP = sq8L2AVX2Go, sq8IPAVX2Go
		dotBatch, gemmNT = dotBatchAVX2Go, gemmAVX2.gemmNT
	}
}

// The wrappers below give the assembly the generic kernels' contracts: they
// slice their arguments to the lengths the assembly reads (panicking, like
// the generic code, when a slice is too short) and handle the empty cases
// the assembly does not.

func dotF32AVX512Go(x, y []float32) float32 { return dotF32AVX512(x, y[:len(x)]) }
func l2F32AVX512Go(x, y []float32) float32  { return l2F32AVX512(x, y[:len(x)]) }
func dotF32AVX2Go(x, y []float32) float32   { return dotF32AVX2(x, y[:len(x)]) }
func l2F32AVX2Go(x, y []float32) float32    { return l2F32AVX2(x, y[:len(x)]) }

func sq8L2AVX512Go(a, s []float32, codes []byte, out []float32) {
	if sq8Trivial(len(a), s, codes, out) {
		return
	}
	sq8L2AVX512(a, s, codes, out)
}

func sq8L2AVX2Go(a, s []float32, codes []byte, out []float32) {
	if sq8Trivial(len(a), s, codes, out) {
		return
	}
	sq8L2AVX2(a, s, codes, out)
}

func sq8IPAVX512Go(w []float32, codes []byte, out []float32) {
	if sq8Trivial(len(w), nil, codes, out) {
		return
	}
	sq8IPAVX512(w, codes, out)
}

func sq8IPAVX2Go(w []float32, codes []byte, out []float32) {
	if sq8Trivial(len(w), nil, codes, out) {
		return
	}
	sq8IPAVX2(w, codes, out)
}

// sq8Trivial checks the lengths of an sq8 call (s may be nil for sq8IP) and
// reports whether it is already done: no rows, or d = 0.
func sq8Trivial(d int, s []float32, codes []byte, out []float32) bool {
	if s != nil {
		_ = s[:d]
	}
	_ = codes[:len(out)*d]
	if d == 0 {
		clear(out)
	}
	return d == 0 || len(out) == 0
}

func dotBatchAVX512Go(x, ys, out []float32) {
	if dotBatchTrivial(x, ys, out) {
		return
	}
	dotBatchAVX512(x, ys, out)
}

func dotBatchAVX2Go(x, ys, out []float32) {
	if dotBatchTrivial(x, ys, out) {
		return
	}
	dotBatchAVX2(x, ys, out)
}

func dotBatchTrivial(x, ys, out []float32) bool {
	d := len(x)
	_ = ys[:len(out)*d]
	if d == 0 {
		clear(out)
	}
	return d == 0 || len(out) == 0
}

// gemmArch is the gemmNT of one level: a packer of p-row panels of A and
// micro-kernels for p×nb tiles of C, nb = 1..len(kernel) (see
// _asm/gemm.go).
type gemmArch struct {
	p      int
	pack   func(a *float32, lda, k int, dst *float32)
	kernel []func(ap, b *float32, ldb, k int, c *float32, ldc, rows int) // kernel[nb-1]
	row    func(x, ys, out []float32)                                    // dotBatch, for few rows of A
}

var gemmAVX512 = &gemmArch{
	p:    16,
	pack: packA16AVX512,
	kernel: []func(ap, b *float32, ldb, k int, c *float32, ldc, rows int){
		gemm16x1AVX512, gemm16x2AVX512, gemm16x3AVX512, gemm16x4AVX512,
		gemm16x5AVX512, gemm16x6AVX512, gemm16x7AVX512, gemm16x8AVX512,
		gemm16x9AVX512, gemm16x10AVX512, gemm16x11AVX512, gemm16x12AVX512,
		gemm16x13AVX512, gemm16x14AVX512, gemm16x15AVX512, gemm16x16AVX512,
	},
	row: dotBatchAVX512,
}

var gemmAVX2 = &gemmArch{
	p:    16,
	pack: packA16AVX2,
	kernel: []func(ap, b *float32, ldb, k int, c *float32, ldc, rows int){
		gemm16x1AVX2, gemm16x2AVX2, gemm16x3AVX2, gemm16x4AVX2, gemm16x5AVX2, gemm16x6AVX2,
	},
	row: dotBatchAVX2,
}

// Blocking of gemmNT. A is packed gemmBlockA rows at a time; B is swept in
// blocks of about gemmBlockBBytes (kept in L2 while every packed panel of
// A runs over it); with fewer than gemmSmallM rows of A, packing does not
// pay and each row runs dotBatch over the blocks of B.
const (
	gemmBlockA      = 256
	gemmBlockBBytes = 384 << 10
	gemmSmallM      = 3
)

// packPool holds packing buffers ([]float32) for gemmNT.
var packPool sync.Pool

func (g *gemmArch) gemmNT(a, b []float32, d int, c []float32) {
	m, n := len(a)/d, len(b)/d
	c = c[:m*n]
	if m == 0 || n == 0 {
		return
	}
	p, nb := g.p, len(g.kernel)
	nc := max(nb, gemmBlockBBytes/(4*d)/nb*nb) // rows of B per block
	if m < gemmSmallM {
		for j0 := 0; j0 < n; j0 += nc {
			j1 := min(j0+nc, n)
			for i := 0; i < m; i++ {
				g.row(a[i*d:i*d+d], b[j0*d:j1*d], c[i*n+j0:i*n+j1])
			}
		}
		return
	}

	mc := min(m, gemmBlockA)
	need := (mc + p - 1) / p * p * d
	bp, _ := packPool.Get().(*[]float32)
	if bp == nil || cap(*bp) < need {
		s := make([]float32, need)
		bp = &s
	}
	ap := (*bp)[:need]
	defer packPool.Put(bp)

	for i0 := 0; i0 < m; i0 += mc {
		i1 := min(i0+mc, m)
		panels := (i1 - i0 + p - 1) / p
		for q := range panels {
			r0 := i0 + q*p
			dst := ap[q*p*d : (q+1)*p*d]
			if rows := min(p, i1-r0); rows == p {
				g.pack(&a[r0*d], d, d, &dst[0])
			} else {
				packPartial(dst, a[r0*d:(r0+rows)*d], d, p)
			}
		}
		for j0 := 0; j0 < n; j0 += nc {
			j1 := min(j0+nc, n)
			for q := range panels {
				r0 := i0 + q*p
				rows := min(p, i1-r0)
				pan := &ap[q*p*d]
				for jb := j0; jb < j1; jb += nb {
					w := min(nb, j1-jb)
					g.kernel[w-1](pan, &b[jb*d], d, d, &c[r0*n+jb], n, rows)
				}
			}
		}
	}
}

// packPartial packs the rows of a (fewer than p, each d long) into the
// k-major panel dst (p·d), zeroing the missing rows.
func packPartial(dst, a []float32, d, p int) {
	rows := len(a) / d
	for k := 0; k < d; k++ {
		col := dst[k*p : k*p+p]
		for ii := range col {
			if ii < rows {
				col[ii] = a[ii*d+k]
			} else {
				col[ii] = 0
			}
		}
	}
}
