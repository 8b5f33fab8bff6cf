package cuda

import (
	"slices"

	"lookalike/ivf"
)

// tailScan is CPU work left by a batch: the rows [from, view.N) of a
// resident list that were appended after its last upload.
type tailScan struct {
	probe ivf.Probe
	view  *ivf.View
	from  int
}

// scanTail offers the live rows of t to top, scored as ivf's CPU scanner
// scores them (residual SQ8: see CPUScanner.Scan). q is the query; qmin is
// q·Min (inner products only); a is scratch of Dim floats.
func scanTail(ix *ivf.Index, sq ivf.SQ8, q []float32, qmin float32, t tailScan, top *ivf.TopK, a []float32) int {
	d := ix.Dim()
	v := t.view
	codes, ids := v.Codes(), v.IDs()
	hasTomb := v.DeletedCount() > 0
	l2 := ix.Metric() == ivf.L2
	var base float32
	if l2 {
		c := ix.Centroid(int(t.probe.List))
		for j := range a {
			a[j] = q[j] - c[j] - sq.Min[j]
		}
	} else {
		base = t.probe.Dist - qmin
		for j := range a {
			a[j] = q[j] * sq.Step[j]
		}
	}
	for i := t.from; i < v.N; i++ {
		if hasTomb && v.Deleted(i) {
			continue
		}
		row := codes[i*d : (i+1)*d]
		var dist float32
		if l2 {
			for j, c := range row {
				x := a[j] - sq.Step[j]*float32(c)
				dist += x * x
			}
		} else {
			var s float32
			for j, c := range row {
				s += a[j] * float32(c)
			}
			dist = base - s
		}
		if dist <= top.Worst() {
			top.Push(ids[i], dist)
		}
	}
	return v.N - t.from
}

// dot is Σ x·y in order.
func dot(x, y []float32) float32 {
	var s float32
	for i, v := range x {
		s += v * y[i]
	}
	return s
}

// mergeHits appends to dst[:0] the k best of the hit lists, best first
// (ivf's order: distance, then id). Unlike ivf.MergeTopK it keeps repeated
// ids, as ivf.CPUScanner does within one index: the sources here are
// disjoint parts of the same lists, not replicas.
func mergeHits(dst []ivf.Hit, k int, lists ...[]ivf.Hit) []ivf.Hit {
	dst = dst[:0]
	for _, l := range lists {
		dst = append(dst, l...)
	}
	slices.SortFunc(dst, func(a, b ivf.Hit) int {
		switch {
		case a.Dist < b.Dist:
			return -1
		case a.Dist > b.Dist:
			return 1
		case a.ID < b.ID:
			return -1
		case a.ID > b.ID:
			return 1
		}
		return 0
	})
	if len(dst) > k {
		dst = dst[:k]
	}
	return dst
}
