package cuda

import (
	"math/rand/v2"
	"strings"
	"testing"

	"lookalike/ivf"
)

func containsFold(s, sub string) bool {
	return strings.Contains(strings.ToLower(s), strings.ToLower(sub))
}

// checkPlan verifies the invariants the kernels rely on: blocks cover each
// query's rows exactly once, in order, starting inside a probe; slots are
// numbered consecutively per query; merges describe them.
func checkPlan(t *testing.T, pstart, rows, ks []int, pl plan) {
	t.Helper()
	nq := len(pstart) - 1
	if len(pl.merges) != nq {
		t.Fatalf("%d merges for %d queries", len(pl.merges), nq)
	}
	slot := 0
	bi := 0
	need := false
	for q := 0; q < nq; q++ {
		m := pl.merges[q]
		if int(m.first) != slot || m.k != int32(ks[q]) || m.out != int32(q) {
			t.Fatalf("query %d: merge %+v, next slot %d", q, m, slot)
		}
		// Expected sequence of (probe, row) for this query.
		var want [][2]int
		for p := pstart[q]; p < pstart[q+1]; p++ {
			for r := 0; r < rows[p]; r++ {
				want = append(want, [2]int{p, r})
			}
		}
		var got [][2]int
		for s := 0; s < int(m.nslots); s++ {
			b := pl.blocks[bi]
			bi++
			if int(b.query) != q || int(b.slot) != slot || b.k != int32(ks[q]) || b.count < 1 {
				t.Fatalf("block %d: %+v (query %d, slot %d)", bi-1, b, q, slot)
			}
			slot++
			p, off := int(b.probe), int(b.offset)
			if p < pstart[q] || p >= pstart[q+1] || off < 0 || off >= rows[p] {
				t.Fatalf("block %+v starts outside query %d's probes", b, q)
			}
			for c := 0; c < int(b.count); c++ {
				if p >= pstart[q+1] {
					t.Fatalf("block %+v runs past query %d's probes", b, q)
				}
				got = append(got, [2]int{p, off})
				off++
				if off == rows[p] {
					p, off = p+1, 0
				}
			}
		}
		if len(got) != len(want) {
			t.Fatalf("query %d: blocks cover %d rows, want %d", q, len(got), len(want))
		}
		for i := range got {
			if got[i] != want[i] {
				t.Fatalf("query %d: row %d is %v, want %v", q, i, got[i], want[i])
			}
		}
		if m.nslots > 1 {
			need = true
		}
	}
	if bi != len(pl.blocks) || slot != pl.nslots || need != pl.needMerge {
		t.Fatalf("%d blocks used of %d, %d slots of %d, needMerge %v want %v", bi, len(pl.blocks), slot, pl.nslots, pl.needMerge, need)
	}
}

func TestPlanBlocks(t *testing.T) {
	for _, c := range []struct {
		name            string
		pstart, rows    []int
		target, minRows int
		blocks          int
		merge           bool
	}{
		{"empty batch", []int{0}, nil, 8, 1, 0, false},
		{"query without rows", []int{0, 0, 1}, []int{5}, 8, 1, 5, true},
		{"query without rows, one block", []int{0, 0, 1}, []int{5}, 8, 5, 1, false},
		{"one query spreads", []int{0, 3}, []int{100, 100, 100}, 10, 1, 10, true},
		{"min rows limits", []int{0, 3}, []int{100, 100, 100}, 10, 100, 3, true},
		{"big batch, block per query", []int{0, 2, 4, 6}, []int{50, 50, 50, 50, 50, 50}, 2, 1, 3, false},
		{"one row", []int{0, 1}, []int{1}, 100, 1, 1, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			ks := make([]int, len(c.pstart)-1)
			for i := range ks {
				ks[i] = 3
			}
			pl := planBlocks(c.pstart, c.rows, ks, c.target, c.minRows)
			checkPlan(t, c.pstart, c.rows, ks, pl)
			if len(pl.blocks) != c.blocks || pl.needMerge != c.merge {
				t.Errorf("%d blocks (merge %v), want %d (%v)", len(pl.blocks), pl.needMerge, c.blocks, c.merge)
			}
		})
	}
}

func TestPlanBlocksRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for it := 0; it < 200; it++ {
		nq := r.IntN(20)
		pstart := []int{0}
		var rows, ks []int
		for q := 0; q < nq; q++ {
			np := r.IntN(6)
			for p := 0; p < np; p++ {
				rows = append(rows, 1+r.IntN(1000))
			}
			pstart = append(pstart, len(rows))
			ks = append(ks, 1+r.IntN(ivf.MaxK))
		}
		target := 1 + r.IntN(600)
		pl := planBlocks(pstart, rows, ks, target, 1+r.IntN(2000))
		checkPlan(t, pstart, rows, ks, pl)
		if pl.nslots > target+nq {
			t.Fatalf("%d slots for target %d and %d queries", pl.nslots, target, nq)
		}
	}
}

func TestLayouts(t *testing.T) {
	for _, c := range []struct{ cap, dp int }{{0, 16}, {1, 16}, {31, 48}, {32, 784}, {1000, 128}, {12345, 1792}} {
		l := layoutList(c.cap, c.dp)
		if l.codes != 0 || l.ids < int64(c.cap*c.dp) || l.tomb < l.ids+8*int64(c.cap) ||
			l.size < l.tomb+4*int64(tombWords(c.cap)) || l.size == 0 ||
			l.ids%devAlign != 0 || l.tomb%devAlign != 0 || l.size%devAlign != 0 {
			t.Errorf("layoutList(%d, %d) = %+v", c.cap, c.dp, l)
		}
	}
	cl := layoutConsts(100, 48)
	if cl.min < 4*100*48 || cl.step < cl.min+4*48 || cl.size < cl.step+4*48 || cl.min%devAlign != 0 || cl.step%devAlign != 0 {
		t.Errorf("layoutConsts = %+v", cl)
	}
	s := layoutScratch(7, 48, 30, 11, 13, 100)
	regions := [][2]int64{
		{s.queries, 4 * 7 * 48}, {s.probes, 30 * probeDescBytes}, {s.blocks, 11 * blockDescBytes}, {s.merges, 7 * mergeDescBytes},
		{s.pDist, 4 * 13 * 100}, {s.pID, 8 * 13 * 100}, {s.pCount, 4 * 13},
		{s.fDist, 4 * 7 * 100}, {s.fID, 8 * 7 * 100}, {s.fCount, 4 * 7},
	}
	for i, r := range regions {
		if r[0]%devAlign != 0 {
			t.Errorf("region %d at %d is not aligned", i, r[0])
		}
		if i > 0 && r[0] < regions[i-1][0]+regions[i-1][1] {
			t.Errorf("region %d at %d overlaps region %d", i, r[0], i-1)
		}
	}
	if s.inEnd != s.merges+7*mergeDescBytes || s.pEnd != s.pCount+4*13 || s.fEnd != s.fCount+4*7 || s.size < s.fEnd {
		t.Errorf("layoutScratch ends: %+v", s)
	}
}

func TestSharedMemoryLimits(t *testing.T) {
	for _, c := range []struct {
		dim, k int
		m      ivf.Metric
		fits   bool
	}{
		{128, 10, ivf.L2, true}, {784, 1024, ivf.L2, true}, {1792, 1024, ivf.L2, true},
		{2880, 1024, ivf.L2, true}, {2881, 1024, ivf.L2, false}, {5040, 10, ivf.L2, true}, {5041, 10, ivf.L2, false},
		{4320, 512, ivf.L2, true}, {4321, 512, ivf.L2, false}, {8912, 512, ivf.IP, true}, {8913, 512, ivf.IP, false},
		{5936, 1024, ivf.IP, true}, {5937, 1024, ivf.IP, false}, {10400, 256, ivf.IP, true}, {10401, 256, ivf.IP, false},
		{65536, 1, ivf.IP, false},
	} {
		if got := deviceFits(c.dim, c.k, c.m); got != c.fits {
			t.Errorf("deviceFits(%d, %d, %v) = %v (%d bytes)", c.dim, c.k, c.m, got, scanShared(topCap(c.k), padDim(c.dim), c.m))
		}
	}
	for _, c := range []struct{ k, kp, buf int }{{1, 32, 512}, {32, 32, 512}, {33, 64, 512}, {256, 256, 512}, {257, 512, 1024}, {1024, 1024, 2048}} {
		if kp := topCap(c.k); kp != c.kp || topBuf(kp) != c.buf {
			t.Errorf("k=%d: kp %d buf %d, want %d %d", c.k, kp, topBuf(kp), c.kp, c.buf)
		}
		if topBuf(topCap(c.k))-topCap(c.k) < roundRows {
			t.Errorf("k=%d: candidate area below one round", c.k)
		}
	}
}

func TestDescriptorEncoding(t *testing.T) {
	p := probeDesc{codes: 0x1122334455667788, ids: 42, tomb: 7, n: 1000, list: 3, base: -1.5}
	b := make([]byte, probeDescBytes)
	p.put(b)
	if got := getProbeDesc(b); got != p {
		t.Errorf("probe round trip: %+v", got)
	}
	bd := blockDesc{1, 2, 3, 4, 5, 6}
	bb := make([]byte, blockDescBytes)
	bd.put(bb)
	if getBlockDesc(bb) != bd {
		t.Error("block round trip")
	}
	md := mergeDesc{7, 8, 9, 10}
	mb := make([]byte, mergeDescBytes)
	md.put(mb)
	if getMergeDesc(mb) != md {
		t.Error("merge round trip")
	}
}

func TestMergeHitsKeepsOrderAndDuplicates(t *testing.T) {
	h := func(id uint64, d float32) ivf.Hit { return ivf.Hit{ID: id, Dist: d} }
	a := []ivf.Hit{h(1, 1), h(5, 3)}
	b := []ivf.Hit{h(2, 1), h(5, 3), h(0, 9)}
	got := mergeHits(nil, 4, a, b, nil)
	want := []ivf.Hit{h(1, 1), h(2, 1), h(5, 3), h(5, 3)}
	if len(got) != len(want) {
		t.Fatalf("got %v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("got %v, want %v", got, want)
		}
	}
}
