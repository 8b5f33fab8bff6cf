package node

import (
	"math"
	"slices"
	"testing"

	"lookalike/ivf"
)

// A buffer whose rows must grow keeps only its live rows, in order, when
// more than a quarter are deleted; ids keep finding their rows (delete,
// search), and a view loaded before still answers as it did.
func TestFlatBufferCompacts(t *testing.T) {
	for _, m := range []ivf.Metric{ivf.L2, ivf.Cosine} {
		b := newFlatBuffer(2, m)
		// Rows on a half circle: no two alike in either metric.
		row := func(id uint64) []float32 {
			a := float64(id) * 0.0075
			return []float32{float32(math.Cos(a)), float32(math.Sin(a))}
		}
		add := func(from, to uint64) {
			var ids []uint64
			var vecs []float32
			for id := from; id < to; id++ {
				ids = append(ids, id)
				vecs = append(vecs, row(id)...)
			}
			b.append(ids, vecs)
		}
		add(1, 101) // room for 189 rows
		for id := uint64(1); id <= 60; id++ {
			if !b.delete(id) {
				t.Fatalf("delete %d", id)
			}
		}
		old := b.view.Load()
		add(101, 201) // 200 > 189: grows, 60 of 100 deleted: compacts
		v := b.view.Load()
		if v.n != 140 || b.len() != 140 {
			t.Fatalf("%v: %d rows, %d live after the compaction, want 140", m, v.n, b.len())
		}
		want := make([]uint64, 0, 140)
		for id := uint64(61); id <= 200; id++ {
			want = append(want, id)
		}
		if got := b.liveIDs(); !slices.Equal(got, want) {
			t.Fatalf("%v: live ids %v", m, got)
		}
		for _, id := range []uint64{61, 100, 101, 200} {
			q := row(id)
			if m == ivf.Cosine {
				ivf.Normalize(q)
			}
			if h := b.search(q, 1); len(h) != 1 || h[0].ID != id {
				t.Fatalf("%v: search for row %d: %+v", m, id, h)
			}
		}
		if !b.delete(61) || b.delete(61) || b.delete(5) || b.len() != 139 {
			t.Fatalf("%v: deletes after the compaction", m)
		}
		if h := b.search(row(61), 1); len(h) == 1 && h[0].ID == 61 {
			t.Fatalf("%v: a deleted row found", m)
		}
		if old.n != 100 || old.live != 40 {
			t.Fatalf("%v: the old view changed: %d rows, %d live", m, old.n, old.live)
		}
		// Few deletes: the rows grow as they are.
		add(201, 400)
		if v := b.view.Load(); v.n != 139+199+1 {
			t.Fatalf("%v: %d rows after a growth with few deletes, want %d", m, v.n, 139+199+1)
		}
	}
}
