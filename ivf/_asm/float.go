package main

import (
	. "github.com/mmcloughlin/avo/build"
	. "github.com/mmcloughlin/avo/operand"
	. "github.com/mmcloughlin/avo/reg"
)

// genFloat emits dotF32 and l2F32.
func genFloat(v isa) {
	genPair(v, "dotF32", false)
	genPair(v, "l2F32", true)
}

// genPair emits Σ x[i]·y[i] (l2 false) or Σ (x[i]−y[i])² (l2 true) over
// len(x) elements; len(y) ≥ len(x) is the caller's job. Four accumulators
// hide the FMA latency.
func genPair(v isa, name string, l2 bool) {
	name += v.name
	TEXT(name, NOSPLIT, "func(x, y []float32) float32")
	Pragma("noescape")
	if l2 {
		Doc(name + " returns Σ (x[i]−y[i])² over len(x) elements; needs len(y) ≥ len(x).")
	} else {
		Doc(name + " returns Σ x[i]·y[i] over len(x) elements; needs len(y) ≥ len(x).")
	}
	xp := Load(Param("x").Base(), GP64())
	yp := Load(Param("y").Base(), GP64())
	n := Load(Param("x").Len(), GP64())

	var acc [4]VecVirtual
	for u := range acc {
		acc[u] = v.zero()
	}
	i := GP64()
	XORQ(i, i)
	at := func(p Register, u int) Mem { return Mem{Base: p, Index: i, Scale: 4, Disp: u * v.bytes()} }
	// add accumulates lanes x (a register) against y (register or memory).
	add := func(x VecVirtual, y Op, acc VecVirtual) {
		if l2 {
			VSUBPS(y, x, x)
			VFMADD231PS(x, x, acc)
		} else {
			VFMADD231PS(y, x, acc)
		}
	}
	full := func(u int, acc VecVirtual) {
		x := v.vec()
		VMOVUPS(at(xp, u), x)
		add(x, at(yp, u), acc)
	}

	n4 := GP64()
	MOVQ(n, n4)
	ANDQ(I32(-4*v.lanes), n4)
	n1 := GP64()
	MOVQ(n, n1)
	ANDQ(I32(-v.lanes), n1)

	Label(name + "_loop4")
	CMPQ(i, n4)
	JAE(LabelRef(name + "_loop1"))
	for u := range acc {
		full(u, acc[u])
	}
	ADDQ(U32(4*v.lanes), i)
	JMP(LabelRef(name + "_loop4"))

	Label(name + "_loop1")
	CMPQ(i, n1)
	JAE(LabelRef(name + "_tail"))
	full(0, acc[0])
	ADDQ(U32(v.lanes), i)
	JMP(LabelRef(name + "_loop1"))

	Label(name + "_tail")
	CMPQ(i, n)
	JAE(LabelRef(name + "_sum"))
	x, y := v.vec(), v.vec()
	if v.avx512 {
		k := tailMask(n)
		VMOVUPS_Z(at(xp, 0), k, x)
		VMOVUPS_Z(at(yp, 0), k, y)
	} else {
		m := avx2Mask(n)
		VMASKMOVPS(at(xp, 0), m, x)
		VMASKMOVPS(at(yp, 0), m, y)
	}
	add(x, y, acc[1])

	Label(name + "_sum")
	VADDPS(acc[1], acc[0], acc[0])
	VADDPS(acc[3], acc[2], acc[2])
	VADDPS(acc[2], acc[0], acc[0])
	retF32(hsum(v, acc[0]))
	VZEROUPPER()
	RET()
}
