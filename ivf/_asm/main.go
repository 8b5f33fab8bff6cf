// Command asm generates the AVX-512 and AVX2 distance kernels of package ivf
// (kernel_amd64.s and their Go declarations) with avo.
//
//	cd ivf/_asm && go run . -out ../kernel_amd64.s -stubs ../kernel_amd64_decl.go -pkg ivf
//
// Every kernel exists once per level, suffixed AVX512 or AVX2. The Go side
// (kernel_amd64.go) checks slice lengths and handles empty inputs before it
// calls them, so the assembly assumes d ≥ 1 and n ≥ 1 wherever it says so.
//
// Tails: the AVX-512 kernels finish a row with k-masked loads (masked-out
// lanes are not read and cannot fault); the AVX2 kernels use VMASKMOVPS for
// float tails and scalar loads for byte tails. No kernel reads a byte outside
// its slices.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"regexp"
	"strings"

	. "github.com/mmcloughlin/avo/build"
	. "github.com/mmcloughlin/avo/operand"
	. "github.com/mmcloughlin/avo/reg"
)

// isa describes one target level.
type isa struct {
	name   string // function name suffix: "AVX512" or "AVX2"
	lanes  int    // float32 lanes in a vector register
	avx512 bool
}

var (
	avx512 = isa{name: "AVX512", lanes: 16, avx512: true}
	avx2   = isa{name: "AVX2", lanes: 8}
)

// vec allocates a full-width vector register.
func (v isa) vec() VecVirtual {
	if v.avx512 {
		return ZMM()
	}
	return YMM()
}

// bytes is the size of a vector register in bytes.
func (v isa) bytes() int { return 4 * v.lanes }

// zero allocates a zeroed vector register.
func (v isa) zero() VecVirtual {
	r := v.vec()
	VXORPS(r, r, r)
	return r
}

func main() {
	ConstraintExpr("amd64")

	for _, v := range []isa{avx512, avx2} {
		genFloat(v)
		genDotBatch(v)
		genSQ8(v, sq8L2)
		genSQ8(v, sq8IP)
		genGemm(v)
	}
	Generate()

	if err := checkVEXRegisters(flag.Lookup("out").Value.String()); err != nil {
		fmt.Fprintln(os.Stderr, "asm:", err)
		os.Exit(1)
	}
}

// checkVEXRegisters fails if an AVX2 function uses a register that only
// AVX-512 can encode (X16–X31, Y16–Y31, Z*, K*): avo's allocator does not
// know that those functions must run on AVX2-only CPUs.
func checkVEXRegisters(path string) error {
	if path == "" {
		return nil
	}
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	high := regexp.MustCompile(`\b([XY](1[6-9]|2[0-9]|3[01])|Z[0-9]+|K[1-7])\b`)
	var fn string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "TEXT ") {
			fn = strings.Fields(line)[1]
		}
		if strings.Contains(fn, "AVX2") && high.MatchString(line) {
			return fmt.Errorf("%s uses an AVX-512 register: %s", fn, strings.TrimSpace(line))
		}
	}
	return sc.Err()
}

// hsum reduces the vector acc to a scalar in lane 0 of the returned XMM
// register. Only EVEX-encodable instructions are used at AVX-512 (the
// allocator may hand out X16–X31 there).
func hsum(v isa, acc VecVirtual) VecVirtual {
	var x VecVirtual
	if v.avx512 {
		y := YMM()
		VEXTRACTF32X8(U8(1), acc, y)
		VADDPS(y, acc.AsY(), y)
		x = XMM()
		VEXTRACTF32X4(U8(1), y, x)
		VADDPS(x, y.AsX(), x)
	} else {
		x = XMM()
		VEXTRACTF128(U8(1), acc, x)
		VADDPS(x, acc.AsX(), x)
	}
	t := XMM()
	VMOVHLPS(x, x, t)
	VADDPS(t, x, x)
	VMOVSHDUP(x, t)
	VADDSS(t, x, x)
	return x
}

// hsum4 reduces four vectors to one XMM register holding their four sums in
// order.
func hsum4(v isa, acc [4]VecVirtual) VecVirtual {
	if !v.avx512 {
		t1, t2 := YMM(), YMM()
		VHADDPS(acc[1], acc[0], t1) // a0+a1 a2+a3 b0+b1 b2+b3 | a4+a5 …
		VHADDPS(acc[3], acc[2], t2)
		VHADDPS(t2, t1, t1) // Σa Σb Σc Σd of the low halves | of the high halves
		x := XMM()
		VEXTRACTF128(U8(1), t1, x)
		VADDPS(x, t1.AsX(), x)
		return x
	}
	// 512 → 2×256: ab = [a.lo+a.hi, b.lo+b.hi], cd likewise.
	pair := func(p, q VecVirtual) VecVirtual {
		lo, hi := ZMM(), ZMM()
		VINSERTF64X4(U8(1), q.AsY(), p, lo) // p.lo256 q.lo256
		VSHUFF64X2(U8(0xEE), q, p, hi)      // p.hi256 q.hi256
		VADDPS(hi, lo, lo)
		return lo
	}
	ab, cd := pair(acc[0], acc[1]), pair(acc[2], acc[3])
	// 128-bit lanes: ab = [a0 a1 b0 b1], cd = [c0 c1 d0 d1] → f = [a b c d]
	// with four partial sums per lane.
	x, y := ZMM(), ZMM()
	VSHUFF32X4(U8(0x88), cd, ab, x) // a0 b0 c0 d0
	VSHUFF32X4(U8(0xDD), cd, ab, y) // a1 b1 c1 d1
	VADDPS(y, x, x)
	// Transpose the 4×4 so each lane holds one partial of each of a b c d,
	// then add the lanes.
	idx := ZMM()
	VMOVDQU32(transpose4x4, idx)
	VPERMPS(x, idx, x)
	h := YMM()
	VEXTRACTF32X8(U8(1), x, h)
	VADDPS(h, x.AsY(), h)
	r := XMM()
	VEXTRACTF32X4(U8(1), h, r)
	VADDPS(r, h.AsX(), r)
	return r
}

// transpose4x4 is the VPERMPS index that transposes the 4×4 matrix of
// 128-bit lanes.
var transpose4x4 Mem

// maskTable holds eight all-ones dwords followed by eight zero dwords: the
// 8 bytes at offset 4·(8−r) are a VMASKMOVPS mask selecting r lanes.
var maskTable Mem

func init() {
	transpose4x4 = GLOBL("transpose4x4", RODATA|NOPTR)
	for i := 0; i < 16; i++ {
		DATA(4*i, U32(uint32(4*(i%4)+i/4)))
	}
	maskTable = GLOBL("maskTable", RODATA|NOPTR)
	for i := 0; i < 16; i++ {
		v := uint32(0)
		if i < 8 {
			v = 0xffffffff
		}
		DATA(4*i, U32(v))
	}
}

// tailMask loads into a new K register the mask of the low (n mod 16) lanes.
func tailMask(n Register) Op {
	MOVQ(n, RCX)
	ANDQ(U8(15), RCX)
	m := GP64()
	MOVQ(U32(1), m)
	SHLQ(CL, m)
	DECQ(m)
	k := K()
	KMOVW(m.As32(), k)
	return k
}

// avx2Mask loads into a new YMM register the VMASKMOVPS mask of the low
// (n mod 8) lanes.
func avx2Mask(n Register) VecVirtual {
	r := GP64()
	MOVQ(U32(8), r)
	t := GP64()
	MOVQ(n, t)
	ANDQ(U8(7), t)
	SUBQ(t, r)
	base := GP64()
	LEAQ(maskTable, base)
	m := YMM()
	VMOVDQU(Mem{Base: base, Index: r, Scale: 4}, m)
	return m
}

// retF32 stores lane 0 of x as the float32 result (VMOVSS, unlike MOVSS, can
// encode X16–X31).
func retF32(x VecVirtual) {
	b, err := ReturnIndex(0).Resolve()
	if err != nil {
		panic(err)
	}
	VMOVSS(x, b.Addr)
}
