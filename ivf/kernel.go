package ivf

import (
	"fmt"
	"os"
	"strings"
)

// Level names an instruction-set level for the distance kernels.
type Level int

// Kernel levels, lowest first.
const (
	LevelGeneric Level = iota // portable Go
	LevelAVX2                 // AVX2 + FMA
	LevelAVX512               // AVX-512 F/BW/VL
)

func (l Level) String() string {
	switch l {
	case LevelGeneric:
		return "generic"
	case LevelAVX2:
		return "avx2"
	case LevelAVX512:
		return "avx512"
	}
	return fmt.Sprintf("level(%d)", int(l))
}

// ParseLevel parses "generic", "avx2" or "avx512".
func ParseLevel(s string) (Level, error) {
	switch strings.ToLower(s) {
	case "generic", "go":
		return LevelGeneric, nil
	case "avx2":
		return LevelAVX2, nil
	case "avx512", "avx-512":
		return LevelAVX512, nil
	}
	return 0, fmt.Errorf("ivf: unknown kernel level %q (want generic, avx2 or avx512)", s)
}

// The kernels. Each is a package variable holding the portable Go version,
// replaced at init by the best assembly version this CPU supports (see
// kernel_amd64.go). All of them are pure functions of their arguments, safe
// for concurrent use, and never retain or modify their inputs.
//
// Contracts (d = len(a) = len(s) = len(w); n = len(out)):
//
//	dotF32(x, y)            = Σ x[i]·y[i]                       len(x) == len(y)
//	l2F32(x, y)             = Σ (x[i]-y[i])²                    len(x) == len(y)
//	sq8L2(a, s, codes, out) : out[j] = Σ_i (a[i] - s[i]·codes[j·d+i])²   len(codes) == n·d
//	sq8IP(w, codes, out)    : out[j] = Σ_i w[i]·codes[j·d+i]            len(codes) == n·d
//	dotBatch(x, ys, out)    : out[j] = Σ_i x[i]·ys[j·d+i]               len(ys) == n·d
//	gemmNT(a, b, d, c)      : c[i·n+j] = Σ_k a[i·d+k]·b[j·d+k]           m = len(a)/d, n = len(b)/d, len(c) == m·n
//
// gemmNT is the workhorse of k-means and batched centroid assignment: the
// caller tiles it so that b fits in cache.
//
// codes[k] is read as an unsigned byte converted to float32.
var (
	dotF32   = dotF32Generic
	l2F32    = l2F32Generic
	sq8L2    = sq8L2Generic
	sq8IP    = sq8IPGeneric
	dotBatch = dotBatchGeneric
	gemmNT   = gemmNTGeneric
)

// maxLevel is the best level this CPU supports; set by kernel_amd64.go.
var maxLevel = LevelGeneric

// curLevel is the level the kernels run at now.
var curLevel = LevelGeneric

// MaxLevel reports the best kernel level this CPU supports.
func MaxLevel() Level { return maxLevel }

// KernelLevel reports the level the kernels run at.
func KernelLevel() Level { return curLevel }

// SetKernelLevel selects the kernels of level l (at most MaxLevel). It is
// meant for tests and benchmarks and must not race with searches.
func SetKernelLevel(l Level) error {
	if l > maxLevel {
		return fmt.Errorf("ivf: kernel level %v not supported by this CPU (best is %v)", l, maxLevel)
	}
	dotF32, l2F32, sq8L2, sq8IP, dotBatch, gemmNT = dotF32Generic, l2F32Generic, sq8L2Generic, sq8IPGeneric, dotBatchGeneric, gemmNTGeneric
	setArchLevel(l)
	curLevel = l
	return nil
}

func init() {
	detectArch()
	l := maxLevel
	if env := os.Getenv("LOOKALIKE_KERNEL"); env != "" {
		if p, err := ParseLevel(env); err == nil && p <= maxLevel {
			l = p
		}
	}
	_ = SetKernelLevel(l)
}

func dotF32Generic(x, y []float32) float32 {
	y = y[:len(x)]
	var s0, s1, s2, s3 float32
	i := 0
	for ; i+4 <= len(x); i += 4 {
		s0 += x[i] * y[i]
		s1 += x[i+1] * y[i+1]
		s2 += x[i+2] * y[i+2]
		s3 += x[i+3] * y[i+3]
	}
	for ; i < len(x); i++ {
		s0 += x[i] * y[i]
	}
	return (s0 + s1) + (s2 + s3)
}

func l2F32Generic(x, y []float32) float32 {
	y = y[:len(x)]
	var s0, s1, s2, s3 float32
	i := 0
	for ; i+4 <= len(x); i += 4 {
		d0 := x[i] - y[i]
		d1 := x[i+1] - y[i+1]
		d2 := x[i+2] - y[i+2]
		d3 := x[i+3] - y[i+3]
		s0 += d0 * d0
		s1 += d1 * d1
		s2 += d2 * d2
		s3 += d3 * d3
	}
	for ; i < len(x); i++ {
		d := x[i] - y[i]
		s0 += d * d
	}
	return (s0 + s1) + (s2 + s3)
}

func sq8L2Generic(a, s []float32, codes []byte, out []float32) {
	d := len(a)
	s = s[:d]
	for j := range out {
		c := codes[j*d : j*d+d]
		var acc float32
		for i, ci := range c {
			t := a[i] - s[i]*float32(ci)
			acc += t * t
		}
		out[j] = acc
	}
}

func sq8IPGeneric(w []float32, codes []byte, out []float32) {
	d := len(w)
	for j := range out {
		c := codes[j*d : j*d+d]
		var acc float32
		for i, ci := range c {
			acc += w[i] * float32(ci)
		}
		out[j] = acc
	}
}

func dotBatchGeneric(x, ys []float32, out []float32) {
	d := len(x)
	for j := range out {
		out[j] = dotF32Generic(x, ys[j*d:j*d+d])
	}
}

func gemmNTGeneric(a, b []float32, d int, c []float32) {
	m, n := len(a)/d, len(b)/d
	for i := 0; i < m; i++ {
		x := a[i*d : i*d+d]
		dotBatchGeneric(x, b[:n*d], c[i*n:i*n+n])
	}
}
