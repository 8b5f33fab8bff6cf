package main

import (
	"fmt"

	. "github.com/mmcloughlin/avo/build"
	. "github.com/mmcloughlin/avo/operand"
	. "github.com/mmcloughlin/avo/reg"
)

// width says how many lanes a chunk of a row covers.
type width int

const (
	wFull width = iota // v.lanes lanes
	wMask              // AVX-512 tail: the lanes of the K mask, zeros elsewhere
	wX4                // AVX2 tail: 4 lanes in an XMM register, upper lanes zero
	wS1                // AVX2 tail: lane 0 of an XMM register, other lanes zero
)

// loader emits loads of one chunk at a given width. Every load leaves the
// lanes it does not cover zero, so the chunk can be added at full width.
type loader struct {
	v  isa
	k  Op         // wMask: the tail mask
	zx VecVirtual // wS1: a zero XMM register (source of VCVTSI2SSL's upper lanes)
}

// f32 loads float32 values.
func (l loader) f32(w width, m Mem) VecVirtual {
	switch w {
	case wFull:
		r := l.v.vec()
		VMOVUPS(m, r)
		return r
	case wMask:
		r := ZMM()
		VMOVUPS_Z(m, l.k, r)
		return r
	case wX4:
		r := XMM()
		VMOVUPS(m, r)
		return r
	default:
		r := XMM()
		VMOVSS(m, r)
		return r
	}
}

// u8 loads bytes and converts them to float32 values.
func (l loader) u8(w width, m Mem) VecVirtual {
	var r VecVirtual
	switch w {
	case wFull:
		r = l.v.vec()
		VPMOVZXBD(m, r)
	case wMask:
		r = ZMM()
		VPMOVZXBD_Z(m, l.k, r)
	case wX4:
		r = XMM()
		VPMOVZXBD(m, r)
	default:
		g := GP32()
		MOVBLZX(m, g)
		r = XMM()
		VCVTSI2SSL(g, l.zx, r)
		return r
	}
	VCVTDQ2PS(r, r)
	return r
}

// wide views a chunk register at full width (VEX.128 and EVEX writes zero
// the upper lanes, so the view is exact).
func (l loader) wide(r VecVirtual) Register {
	if l.v.avx512 {
		return r.AsZ()
	}
	return r.AsY()
}

// rowSpec describes a kernel of the shape out[j] = Σ_i f(shared[i], row_j[i])
// over n rows of length d, d = len(first shared slice), n = len(out).
type rowSpec struct {
	name   string   // without the level suffix
	doc    []string // doc comment lines
	sig    string   // Go signature
	shared []string // float32 slice params read at every i, first gives d
	rows   string   // row-major param: n rows of d elements
	elem   int      // bytes per row element: 1 (codes) or 4 (float32)
	// chunk accumulates the contribution of lanes [i, i+w) of one row into
	// acc, given the shared values of those lanes.
	chunk func(l loader, w width, sh []VecVirtual, row Mem, acc VecVirtual)
}

// genRows emits one row kernel. The Go caller guarantees d ≥ 1, n ≥ 1 and
// len(rows) ≥ n·d. Rows go four at a time (sharing the loads of the shared
// slices), then one at a time; each row has two accumulators per chunk
// position to hide FMA latency.
func genRows(v isa, s rowSpec) {
	name := s.name + v.name
	TEXT(name, NOSPLIT, s.sig)
	Pragma("noescape")
	Doc(s.doc...)
	var sp []GPVirtual
	for _, p := range s.shared {
		sp = append(sp, Load(Param(p).Base(), GP64()).(GPVirtual))
	}
	d := Load(Param(s.shared[0]).Len(), GP64())
	rp := Load(Param(s.rows).Base(), GP64())
	op := Load(Param("out").Base(), GP64())
	n := Load(Param("out").Len(), GP64())

	l := loader{v: v}
	if v.avx512 {
		l.k = tailMask(d)
	} else {
		l.zx = XMM()
		VXORPS(l.zx, l.zx, l.zx)
	}
	stride := GP64() // bytes per row
	MOVQ(d, stride)
	if s.elem == 4 {
		SHLQ(U8(2), stride)
	}
	d2 := GP64() // end of the two-chunk loop
	MOVQ(d, d2)
	ANDQ(I32(-2*v.lanes), d2)
	d1 := GP64() // end of the one-chunk loop
	MOVQ(d, d1)
	ANDQ(I32(-v.lanes), d1)

	const unroll = 2
	block := func(g int) {
		lbl := func(s string) string { return fmt.Sprintf("%s_g%d_%s", name, g, s) }
		Label(lbl("rows"))
		CMPQ(n, U32(g))
		JB(LabelRef(lbl("end")))

		q := []Register{rp}
		for k := 1; k < g; k++ {
			r := GP64()
			LEAQ(Mem{Base: q[k-1], Index: stride, Scale: 1}, r)
			q = append(q, r)
		}
		acc := make([][unroll]VecVirtual, g)
		for k := range acc {
			for u := range acc[k] {
				acc[k][u] = v.zero()
			}
		}
		i := GP64()
		XORQ(i, i)

		// step emits the chunk at lane i+u·lanes of all g rows into
		// accumulator a.
		step := func(w width, u, a int) {
			var sh []VecVirtual
			for _, p := range sp {
				sh = append(sh, l.f32(w, Mem{Base: p, Index: i, Scale: 4, Disp: 4 * u * v.lanes}))
			}
			for k := 0; k < g; k++ {
				s.chunk(l, w, sh, Mem{Base: q[k], Index: i, Scale: uint8(s.elem), Disp: s.elem * u * v.lanes}, acc[k][a])
			}
		}

		Label(lbl("loop2"))
		CMPQ(i, d2)
		JAE(LabelRef(lbl("loop1")))
		for u := 0; u < unroll; u++ {
			step(wFull, u, u)
		}
		ADDQ(U32(unroll*v.lanes), i)
		JMP(LabelRef(lbl("loop2")))

		Label(lbl("loop1"))
		CMPQ(i, d1)
		JAE(LabelRef(lbl("tail")))
		step(wFull, 0, 0)
		ADDQ(U32(v.lanes), i)
		JMP(LabelRef(lbl("loop1")))

		Label(lbl("tail"))
		if v.avx512 {
			CMPQ(i, d)
			JAE(LabelRef(lbl("sum")))
			step(wMask, 0, 1)
		} else {
			// At most 7 lanes remain: one 4-lane chunk, then single lanes.
			t := GP64()
			MOVQ(d, t)
			SUBQ(i, t)
			CMPQ(t, U8(4))
			JB(LabelRef(lbl("single")))
			step(wX4, 0, 1)
			ADDQ(U8(4), i)
			Label(lbl("single"))
			CMPQ(i, d)
			JAE(LabelRef(lbl("sum")))
			step(wS1, 0, 0)
			INCQ(i)
			JMP(LabelRef(lbl("single")))
		}

		Label(lbl("sum"))
		var tot [4]VecVirtual
		for k := 0; k < g; k++ {
			VADDPS(acc[k][1], acc[k][0], acc[k][0])
			tot[k] = acc[k][0]
		}
		if g == 4 {
			VMOVUPS(hsum4(v, tot), Mem{Base: op})
		} else {
			VMOVSS(hsum(v, tot[0]), Mem{Base: op})
		}
		LEAQ(Mem{Base: q[g-1], Index: stride, Scale: 1}, rp)
		ADDQ(U8(4*g), op)
		SUBQ(U8(g), n)
		JMP(LabelRef(lbl("rows")))
		Label(lbl("end"))
	}
	block(4)
	block(1)
	VZEROUPPER()
	RET()
}

// genDotBatch emits dotBatch: out[j] = Σ_i x[i]·ys[j·d+i].
func genDotBatch(v isa) {
	genRows(v, rowSpec{
		name:   "dotBatch",
		doc:    []string{"dotBatch" + v.name + " sets out[j] = Σ_i x[i]·ys[j·len(x)+i]; needs len(x) ≥ 1, len(out) ≥ 1, len(ys) ≥ len(out)·len(x)."},
		sig:    "func(x, ys, out []float32)",
		shared: []string{"x"},
		rows:   "ys",
		elem:   4,
		chunk: func(l loader, w width, sh []VecVirtual, row Mem, acc VecVirtual) {
			if w == wFull {
				VFMADD231PS(row, sh[0], acc)
				return
			}
			y := l.f32(w, row)
			VFMADD231PS(l.wide(y), l.wide(sh[0]), acc)
		},
	})
}

type sq8Kind int

const (
	sq8L2 sq8Kind = iota
	sq8IP
)

// genSQ8 emits sq8L2 (out[j] = Σ_i (a[i] − s[i]·c)²) or sq8IP
// (out[j] = Σ_i w[i]·c), c = float32(codes[j·d+i]).
func genSQ8(v isa, kind sq8Kind) {
	if kind == sq8L2 {
		genRows(v, rowSpec{
			name:   "sq8L2",
			doc:    []string{"sq8L2" + v.name + " sets out[j] = Σ_i (a[i] − s[i]·codes[j·d+i])², d = len(a); needs d ≥ 1, len(out) ≥ 1, len(s) ≥ d, len(codes) ≥ len(out)·d."},
			sig:    "func(a, s []float32, codes []byte, out []float32)",
			shared: []string{"a", "s"},
			rows:   "codes",
			elem:   1,
			chunk: func(l loader, w width, sh []VecVirtual, row Mem, acc VecVirtual) {
				c := l.u8(w, row)
				VFNMADD213PS(sh[0], sh[1], c) // c = a − s·c
				VFMADD231PS(l.wide(c), l.wide(c), acc)
			},
		})
		return
	}
	genRows(v, rowSpec{
		name:   "sq8IP",
		doc:    []string{"sq8IP" + v.name + " sets out[j] = Σ_i w[i]·codes[j·d+i], d = len(w); needs d ≥ 1, len(out) ≥ 1, len(codes) ≥ len(out)·d."},
		sig:    "func(w []float32, codes []byte, out []float32)",
		shared: []string{"w"},
		rows:   "codes",
		elem:   1,
		chunk: func(l loader, w width, sh []VecVirtual, row Mem, acc VecVirtual) {
			c := l.u8(w, row)
			VFMADD231PS(l.wide(c), l.wide(sh[0]), acc)
		},
	})
}
