//go:build cgo

package hostmath_test

import (
	"fmt"
	"slices"
	"testing"

	"lookalike/cuda/cudatest"
	"lookalike/cuda/hostmath"
	"lookalike/ivf"
	"lookalike/ivf/ivftest"
)

// scanHost is the GPU's arithmetic run on the CPU: every live row of the
// probed lists scored by the header's functions on padded rows, then the k
// best by (distance, id).
func scanHost(ix *ivf.Index, q []float32, probes []ivf.Probe, k int) []ivf.Hit {
	d := ix.Dim()
	dp := hostmath.Pad(d)
	lanes := hostmath.Lanes(dp)
	sq := ix.Quantizer()
	pad := func(x []float32) []float32 {
		p := make([]float32, dp)
		copy(p, x)
		return p
	}
	qp, mn, step := pad(q), pad(sq.Min), pad(sq.Step)
	vec := make([]float32, dp)
	var qmin float32
	for j := range q {
		qmin += q[j] * sq.Min[j]
	}
	if ix.Metric() != ivf.L2 {
		hostmath.PrepIP(qp, step, vec)
	}
	var all []ivf.Hit
	for _, p := range probes {
		v := ix.List(int(p.List)).View()
		if v.N == 0 {
			continue
		}
		codes := make([]byte, v.N*dp)
		for i := 0; i < v.N; i++ {
			copy(codes[i*dp:], v.Codes()[i*d:(i+1)*d])
		}
		dist := make([]float32, v.N)
		if ix.Metric() == ivf.L2 {
			hostmath.PrepL2(qp, pad(ix.Centroid(int(p.List))), mn, vec)
			hostmath.L2Rows(vec, step, codes, dp, lanes, dist)
		} else {
			hostmath.IPRows(p.Dist-qmin, vec, codes, dp, lanes, dist)
		}
		for i, x := range dist {
			if !v.Deleted(i) {
				all = append(all, ivf.Hit{ID: v.IDs()[i], Dist: x})
			}
		}
	}
	slices.SortFunc(all, func(a, b ivf.Hit) int {
		if hostmath.Less(a.Dist, a.ID, b.Dist, b.ID) {
			return -1
		}
		if hostmath.Less(b.Dist, b.ID, a.Dist, a.ID) {
			return 1
		}
		return 0
	})
	return all[:min(k, len(all))]
}

// The kernels' arithmetic (sq8.h, as compiled here) agrees with ivf's CPU
// scanner within 1e-4 relative, for every metric, on awkward dimensions
// (not multiples of 4 or 16), with deletes, empty lists and k beyond the
// probed entries.
func TestHeaderMatchesCPUScanner(t *testing.T) {
	for _, m := range []ivf.Metric{ivf.L2, ivf.IP, ivf.Cosine} {
		for _, dim := range []int{1, 3, 16, 37, 100, 130} {
			t.Run(fmt.Sprintf("%v/dim%d", m, dim), func(t *testing.T) {
				const n, nlist, nq = 1500, 24, 12
				ix, _ := cudatest.Build(t, m, n, dim, nlist, uint64(dim))
				for id := uint64(0); id < n; id += 7 {
					ix.Delete(id)
				}
				queries, probes := cudatest.Probes(ix, ivftest.Clustered(nq, dim, 20, 99), 5)
				for _, k := range []int{1, 10, 100, n} {
					want := make([][]ivf.Hit, nq)
					if err := (ivf.CPUScanner{}).Scan(ix, queries, probes, k, want); err != nil {
						t.Fatal(err)
					}
					for i := range probes {
						got := scanHost(ix, queries[i*dim:(i+1)*dim], probes[i], k)
						if err := cudatest.CompareHits(got, want[i], 1e-4); err != nil {
							t.Fatalf("k=%d query %d: %v", k, i, err)
						}
					}
				}
			})
		}
	}
}

// Padding: zero codes in padded dimensions with zero Min/Step/query add
// exactly nothing, so a row scores the same at any padding and lane count
// that covers it... up to the order of the sums.
func TestLanesAndPadding(t *testing.T) {
	for _, c := range []struct{ d, dp, lanes int }{
		{1, 16, 1}, {16, 16, 1}, {17, 32, 2}, {37, 48, 4}, {64, 64, 4}, {100, 112, 8},
		{128, 128, 8}, {256, 256, 16}, {512, 512, 32}, {784, 784, 32}, {1792, 1792, 32},
	} {
		if dp := hostmath.Pad(c.d); dp != c.dp {
			t.Errorf("Pad(%d) = %d, want %d", c.d, dp, c.dp)
		}
		if l := hostmath.Lanes(c.dp); l != c.lanes {
			t.Errorf("Lanes(%d) = %d, want %d", c.dp, l, c.lanes)
		}
	}
	// One row, scored with every lane count: the same up to rounding, and
	// bit-identical to itself (no hidden state).
	const dp = 96
	a := make([]float32, dp)
	s := make([]float32, dp)
	row := make([]byte, dp)
	for j := range a {
		a[j] = float32(j%7) - 3
		s[j] = 0.01 * float32(j%5+1)
		row[j] = byte(j * 37)
	}
	var ref float32
	for j := range a {
		x := a[j] - s[j]*float32(row[j])
		ref += x * x
	}
	for lanes := 1; lanes <= 32; lanes *= 2 {
		out := make([]float32, 1)
		hostmath.L2Rows(a, s, row, dp, lanes, out)
		if diff := out[0] - ref; diff > 1e-4*ref || diff < -1e-4*ref {
			t.Errorf("lanes %d: %v, want %v", lanes, out[0], ref)
		}
	}
}

func TestDeletedBits(t *testing.T) {
	tomb := []uint32{1<<0 | 1<<31, 1 << 5}
	for e, want := range map[int]bool{0: true, 1: false, 31: true, 32: false, 37: true, 63: false} {
		if got := hostmath.Deleted(tomb, e); got != want {
			t.Errorf("Deleted(%d) = %v", e, got)
		}
	}
	if hostmath.Deleted(nil, 3) {
		t.Error("nil bitmap reports a delete")
	}
}

func TestLessIsIvfOrder(t *testing.T) {
	for _, c := range []struct {
		d1   float32
		i1   uint64
		d2   float32
		i2   uint64
		want bool
	}{
		{1, 5, 2, 1, true}, {2, 1, 1, 5, false}, {1, 1, 1, 2, true}, {1, 2, 1, 2, false}, {-3, 9, -2, 0, true},
	} {
		if got := hostmath.Less(c.d1, c.i1, c.d2, c.i2); got != c.want {
			t.Errorf("Less(%v,%d,%v,%d) = %v", c.d1, c.i1, c.d2, c.i2, got)
		}
	}
}
