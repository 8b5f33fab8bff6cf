package main

import (
	"fmt"

	. "github.com/mmcloughlin/avo/build"
	. "github.com/mmcloughlin/avo/operand"
	. "github.com/mmcloughlin/avo/reg"
)

// The gemmNT kernels compute C = A·Bᵀ (A m×d, B n×d, C m×n, all
// row-major) from a packed copy of A: a panel of P = nv·lanes rows of A
// stored k-major, ap[kk·P + ii] = A[i0+ii][kk], so that nv vector loads
// yield column kk of the panel. The micro-kernel holds a P×nb tile of C in
// nv·nb accumulators, each a piece of a column of the tile:
//
//	acc[jb][h] += ap[kk·P + h·lanes : …+lanes] · broadcast(B[j0+jb][kk])
//
// No horizontal sums are needed; at the end each group of lanes columns is
// transposed in registers (16×16 or 8×8) and stored to C as rows, with a
// lane mask when nb < lanes. B is read in place; A is packed once per call
// (m·d moves against 2·m·n·d flops), which suits the callers: tiles of a
// few dozen to a few hundred rows of A against all the centroids.

// gemmShape is a level's micro-kernel: nv vectors of A rows per k (P =
// nv·lanes rows per panel) against up to nb rows of B.
type gemmShape struct{ nv, nb int }

// gemmShapes: AVX-512 holds a 16×16 tile in 16 of its 32 registers (one
// vector load and 16 broadcast FMAs per k); AVX2 holds a 16×6 tile in 12
// of its 16 (two loads, six broadcasts, twelve FMAs per k), enough
// independent accumulators to cover the FMA latency on two pipes. On Zen 5
// the AVX-512 alternatives {nv: 2, nb: 8} (32×8) ran no faster and
// {nv: 2, nb: 12} slower; an 8×8 AVX2 tile (8 accumulators) ran at a
// third to a half of the speed of 16×6.
var gemmShapes = map[string]gemmShape{
	"AVX512": {nv: 1, nb: 16},
	"AVX2":   {nv: 2, nb: 6},
}

// genGemm emits packA<P><level> and gemm<P>x<nb><level> for nb = 1..max.
func genGemm(v isa) {
	sh := gemmShapes[v.name]
	genPackA(v, sh.nv)
	for nb := 1; nb <= sh.nb; nb++ {
		genGemmKernel(v, sh.nv, nb)
	}
}

// rowAddr returns a function giving row r (byte offset disp) of a row-major
// matrix of up to 18 rows whose row stride in bytes is ld, using six base
// registers for rows 0, 3, 6, … (computed here) and the index forms
// (base)(ld*1), (base)(ld*2).
func rowAddr(p0, ld Register, rows int) (func(r, disp int) Mem, []Register) {
	ld3 := GP64()
	LEAQ(Mem{Base: ld, Index: ld, Scale: 2}, ld3)
	base := []Register{p0}
	for q := 1; 3*q < rows; q++ {
		r := GP64()
		LEAQ(Mem{Base: base[q-1], Index: ld3, Scale: 1}, r)
		base = append(base, r)
	}
	return func(r, disp int) Mem {
		m := Mem{Base: base[r/3], Disp: disp}
		if t := r % 3; t > 0 {
			m.Index, m.Scale = ld, uint8(t)
		}
		return m
	}, base
}

// transpose passes to emit, in an order of its choosing, each row ii of the
// p×p matrix whose columns are in (lane ii of in[j] is element (ii, j));
// nil entries of in read as don't-care. Emitting rows as soon as they are
// ready keeps at most about p+5 registers live.
func transpose(v isa, in []VecVirtual, emit func(ii int, x VecVirtual)) {
	p := v.lanes
	r := make([]VecVirtual, p)
	copy(r, in)
	var fill VecVirtual
	for j := range r {
		if r[j] == nil {
			if fill == nil {
				fill = v.zero()
			}
			r[j] = fill
		}
	}
	// Within 128-bit lanes: t[j], t[j+1] interleave the 32-bit elements of
	// columns j and j+1.
	// Shuffles of two fill registers give the fill register: skip them.
	shuf := func(op func(...Op), b, a VecVirtual) VecVirtual {
		if fill != nil && a == fill && b == fill {
			return fill
		}
		x := v.vec()
		op(b, a, x)
		return x
	}
	t := make([]VecVirtual, p)
	for j := 0; j < p; j += 2 {
		t[j] = shuf(VUNPCKLPS, r[j+1], r[j])
		t[j+1] = shuf(VUNPCKHPS, r[j+1], r[j])
	}
	// u[4g+s], 128-bit lane L: row 4L+s, columns 4g…4g+3.
	u := make([]VecVirtual, p)
	for j := 0; j < p; j += 4 {
		u[j] = shuf(VUNPCKLPD, t[j+2], t[j])
		u[j+1] = shuf(VUNPCKHPD, t[j+2], t[j])
		u[j+2] = shuf(VUNPCKLPD, t[j+3], t[j+1])
		u[j+3] = shuf(VUNPCKHPD, t[j+3], t[j+1])
	}
	if !v.avx512 {
		// Row 4L+s = [u[s].lane L, u[4+s].lane L].
		for s := 0; s < 4; s++ {
			lo, hi := YMM(), YMM()
			VPERM2F128(U8(0x20), u[4+s], u[s], lo)
			emit(s, lo)
			VPERM2F128(U8(0x31), u[4+s], u[s], hi)
			emit(4+s, hi)
		}
		return
	}
	// Row 4L+s = [u[s].L, u[4+s].L, u[8+s].L, u[12+s].L]: a 4×4 transpose
	// of 128-bit lanes.
	for s := 0; s < 4; s++ {
		g0, g1, g2, g3 := u[s], u[4+s], u[8+s], u[12+s]
		v0, v1, v2, v3 := ZMM(), ZMM(), ZMM(), ZMM()
		VSHUFF32X4(U8(0x44), g1, g0, v0) // g0.0 g0.1 g1.0 g1.1
		VSHUFF32X4(U8(0xEE), g1, g0, v1) // g0.2 g0.3 g1.2 g1.3
		VSHUFF32X4(U8(0x44), g3, g2, v2)
		VSHUFF32X4(U8(0xEE), g3, g2, v3)
		for i, o := range []struct {
			imm    uint8
			hi, lo VecVirtual
		}{{0x88, v2, v0}, {0xDD, v2, v0}, {0x88, v3, v1}, {0xDD, v3, v1}} {
			x := ZMM()
			VSHUFF32X4(U8(o.imm), o.hi, o.lo, x)
			emit(4*i+s, x)
		}
	}
}

// genPackA emits packA<P><level>(a, lda, k, dst): dst[kk·P+ii] =
// a[ii·lda+kk] for ii < P, kk < k: P full rows of A, k-major. Needs k ≥ 1.
// Each group of p = lanes rows is one pass over k, p columns at a time
// through a p×p transpose.
func genPackA(v isa, nv int) {
	p := v.lanes
	P := nv * p
	name := fmt.Sprintf("packA%d%s", P, v.name)
	TEXT(name, NOSPLIT, "func(a *float32, lda int, k int, dst *float32)")
	Pragma("noescape")
	Doc(fmt.Sprintf("%s packs %d rows of A (row stride lda) k-major: dst[kk·%d+ii] = a[ii·lda+kk] for kk < k; needs k ≥ 1.", name, P, P))
	lda := Load(Param("lda"), GP64())
	SHLQ(U8(2), lda)
	for h := 0; h < nv; h++ {
		lbl := func(s string) string { return fmt.Sprintf("%s_h%d_%s", name, h, s) }
		ap := Load(Param("a"), GP64())
		if h > 0 {
			off := GP64()
			MOVQ(lda, off)
			SHLQ(U8(bitsOf(h*p)), off)
			ADDQ(off, ap)
		}
		k := Load(Param("k"), GP64())
		dp := Load(Param("dst"), GP64())
		row, base := rowAddr(ap, lda, p)
		at := func(kk int) Mem { return Mem{Base: dp, Disp: 4*P*kk + v.bytes()*h} }
		// block transposes p columns (k) of the p rows.
		block := func(load func(r int) VecVirtual, store func(kk int, x VecVirtual)) {
			in := make([]VecVirtual, p)
			for r := range in {
				in[r] = load(r)
			}
			transpose(v, in, store)
		}

		cnt := GP64()
		MOVQ(k, cnt)
		SHRQ(U8(bitsOf(p)), cnt)
		JZ(LabelRef(lbl("tail")))
		Label(lbl("loop"))
		block(func(r int) VecVirtual {
			x := v.vec()
			VMOVUPS(row(r, 0), x)
			return x
		}, func(kk int, x VecVirtual) {
			VMOVUPS(x, at(kk))
		})
		for _, b := range base {
			ADDQ(U8(4*p), b)
		}
		ADDQ(U32(4*P*p), dp)
		DECQ(cnt)
		JNZ(LabelRef(lbl("loop")))

		// The last k mod p columns: masked loads, and only that many rows
		// of the transpose are stored.
		Label(lbl("tail"))
		rem := GP64()
		MOVQ(k, rem)
		ANDQ(U8(p-1), rem)
		JZ(LabelRef(lbl("done")))
		var load func(r int) VecVirtual
		if v.avx512 {
			km := tailMask(k)
			load = func(r int) VecVirtual {
				x := ZMM()
				VMOVUPS_Z(row(r, 0), km, x)
				return x
			}
		} else {
			m := avx2Mask(k)
			load = func(r int) VecVirtual {
				x := YMM()
				VMASKMOVPS(row(r, 0), m, x)
				return x
			}
		}
		block(load, func(kk int, x VecVirtual) {
			if kk == p-1 {
				return // rem < p
			}
			skip := fmt.Sprintf("%s_kk%d", lbl("tail"), kk)
			if kk > 0 {
				CMPQ(rem, U8(kk))
				JBE(LabelRef(skip))
			}
			VMOVUPS(x, at(kk))
			Label(skip)
		})
		Label(lbl("done"))
	}
	VZEROUPPER()
	RET()
}

func bitsOf(p int) int {
	b := 0
	for 1<<b < p {
		b++
	}
	return b
}

// genGemmKernel emits gemm<P>x<nb><level>(ap, b, ldb, k, c, ldc, rows):
//
//	c[ii·ldc + jb] = Σ_kk ap[kk·P + ii]·b[jb·ldb + kk]   for ii < rows, jb < nb
//
// with ap a packed panel of P rows (see genPackA). Needs k ≥ 1 and
// 1 ≤ rows ≤ P.
func genGemmKernel(v isa, nv, nb int) {
	p := v.lanes
	P := nv * p
	name := fmt.Sprintf("gemm%dx%d%s", P, nb, v.name)
	TEXT(name, NOSPLIT, "func(ap *float32, b *float32, ldb int, k int, c *float32, ldc int, rows int)")
	Pragma("noescape")
	Doc(fmt.Sprintf("%s sets c[ii·ldc+jb] = Σ_kk ap[kk·%d+ii]·b[jb·ldb+kk] for ii < rows, jb < %d; needs k ≥ 1, 1 ≤ rows ≤ %d.", name, P, nb, P))
	ap := Load(Param("ap"), GP64())
	bp := Load(Param("b"), GP64())
	ldb := Load(Param("ldb"), GP64())
	k := Load(Param("k"), GP64())
	SHLQ(U8(2), ldb)
	brow, base := rowAddr(bp, ldb, nb)

	acc := make([][]VecVirtual, nv) // acc[h][jb]
	for h := range acc {
		acc[h] = make([]VecVirtual, nb)
		for j := range acc[h] {
			acc[h][j] = v.zero()
		}
	}
	step := func(kk int) {
		x := make([]VecVirtual, nv)
		for h := range x {
			x[h] = v.vec()
			VMOVUPS(Mem{Base: ap, Disp: 4*P*kk + v.bytes()*h}, x[h])
		}
		for j := 0; j < nb; j++ {
			if v.avx512 && nv == 1 {
				VFMADD231PS_BCST(brow(j, 4*kk), x[0], acc[0][j])
				continue
			}
			t := v.vec()
			VBROADCASTSS(brow(j, 4*kk), t)
			for h := range x {
				VFMADD231PS(t, x[h], acc[h][j])
			}
		}
	}
	advance := func(steps int) {
		for _, b := range base {
			ADDQ(U8(4*steps), b)
		}
		ADDQ(U32(4*P*steps), ap)
	}

	const unroll = 4
	cnt := GP64()
	MOVQ(k, cnt)
	SHRQ(U8(2), cnt)
	JZ(LabelRef(name + "_rem"))
	Label(name + "_loop4")
	for kk := 0; kk < unroll; kk++ {
		step(kk)
	}
	advance(unroll)
	DECQ(cnt)
	JNZ(LabelRef(name + "_loop4"))

	Label(name + "_rem")
	ANDQ(U8(unroll-1), k)
	JZ(LabelRef(name + "_store"))
	Label(name + "_loop1")
	step(0)
	advance(1)
	DECQ(k)
	JNZ(LabelRef(name + "_loop1"))

	// Transpose and store one group of p rows at a time, so that the
	// other groups' accumulators are all that stays live.
	// Transpose and store one group of p rows at a time, each row as soon
	// as it is ready, so that few registers stay live.
	Label(name + "_store")
	cp := Load(Param("c"), GP64())
	ldc := Load(Param("ldc"), GP64())
	rows := Load(Param("rows"), GP64())
	SHLQ(U8(2), ldc)
	crow, cbase := rowAddr(cp, ldc, p)
	var km Op
	var mask VecVirtual
	switch {
	case nb == p:
	case v.avx512:
		km = K()
		mr := GP32()
		MOVL(U32(1<<nb-1), mr)
		KMOVW(mr, km)
	default:
		mask = YMM()
		VMOVDQU(maskTable.Offset(4*(8-nb)), mask)
	}
	for h := range acc {
		if h > 0 {
			step := GP64()
			MOVQ(ldc, step)
			SHLQ(U8(bitsOf(p)), step)
			for _, b := range cbase {
				ADDQ(step, b)
			}
		}
		in := make([]VecVirtual, p)
		copy(in, acc[h])
		transpose(v, in, func(ii int, x VecVirtual) {
			g := h*p + ii
			skip := fmt.Sprintf("%s_row%d", name, g)
			if g > 0 {
				CMPQ(rows, U8(g))
				JBE(LabelRef(skip))
			}
			m := crow(ii, 0)
			switch {
			case nb == p:
				VMOVUPS(x, m)
			case v.avx512:
				VMOVUPS(x, km, m)
			default:
				VMASKMOVPS(x, mask, m)
			}
			Label(skip)
		})
	}
	VZEROUPPER()
	RET()
}
