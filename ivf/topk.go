package ivf

import (
	"cmp"
	"slices"
)

// Hit is one search result. Dist is the internal distance, smaller is
// closer: the squared L2 distance, or the negated inner product / cosine
// similarity. Metric.Score turns it into the metric's own value.
type Hit struct {
	ID   uint64
	Dist float32
}

// less orders hits best first; ties break on the smaller id so that every
// merge is deterministic.
func less(a, b Hit) bool {
	if a.Dist != b.Dist {
		return a.Dist < b.Dist
	}
	return a.ID < b.ID
}

func compareHits(a, b Hit) int {
	if c := cmp.Compare(a.Dist, b.Dist); c != 0 {
		return c
	}
	return cmp.Compare(a.ID, b.ID)
}

// TopK keeps the k best hits seen so far in a bounded max-heap (worst on
// top). The zero value is unusable; use NewTopK or Reset.
type TopK struct {
	k int
	h []Hit
}

// NewTopK returns an empty collector of the k best hits.
func NewTopK(k int) *TopK { return &TopK{k: k, h: make([]Hit, 0, k)} }

// Reset empties t and sets its capacity to k, keeping its memory.
func (t *TopK) Reset(k int) {
	t.k = k
	t.h = t.h[:0]
	if cap(t.h) < k {
		t.h = make([]Hit, 0, k)
	}
}

// Len is the number of hits held.
func (t *TopK) Len() int { return len(t.h) }

// Full reports whether t holds k hits.
func (t *TopK) Full() bool { return len(t.h) >= t.k }

// Worst is the distance a hit must beat to enter a full collector; +Inf
// (as the largest float32) while t is not full.
func (t *TopK) Worst() float32 {
	if len(t.h) < t.k {
		return maxFloat32
	}
	return t.h[0].Dist
}

const maxFloat32 = 3.40282346638528859811704183484516925440e+38

// Push offers a hit; it is kept if it is among the k best so far.
func (t *TopK) Push(id uint64, dist float32) {
	x := Hit{ID: id, Dist: dist}
	if len(t.h) < t.k {
		t.h = append(t.h, x)
		t.up(len(t.h) - 1)
		return
	}
	if t.k == 0 || !less(x, t.h[0]) {
		return
	}
	t.h[0] = x
	t.down(0)
}

func (t *TopK) up(i int) {
	h := t.h
	for i > 0 {
		p := (i - 1) / 2
		if !less(h[p], h[i]) {
			break
		}
		h[p], h[i] = h[i], h[p]
		i = p
	}
}

func (t *TopK) down(i int) {
	h := t.h
	n := len(h)
	for {
		l := 2*i + 1
		if l >= n {
			return
		}
		m := l
		if r := l + 1; r < n && less(h[l], h[r]) {
			m = r
		}
		if !less(h[i], h[m]) {
			return
		}
		h[i], h[m] = h[m], h[i]
		i = m
	}
}

// Sorted returns the hits best first, appended to dst. t is left empty.
func (t *TopK) Sorted(dst []Hit) []Hit {
	start := len(dst)
	dst = append(dst, t.h...)
	slices.SortFunc(dst[start:], compareHits)
	t.h = t.h[:0]
	return dst
}

// MergeTopK merges result lists (each best first or not) into the k best
// hits overall, best first. An id that appears in several lists is kept
// once, with its best distance: while lists move between shards, both
// copies of a vector may answer.
func MergeTopK(k int, lists ...[]Hit) []Hit {
	n := 0
	for _, l := range lists {
		n += len(l)
	}
	all := make([]Hit, 0, n)
	for _, l := range lists {
		all = append(all, l...)
	}
	slices.SortFunc(all, compareHits)
	seen := make(map[uint64]struct{}, min(n, 2*k))
	out := make([]Hit, 0, min(k, n))
	for _, h := range all {
		if len(out) == k {
			break
		}
		if _, dup := seen[h.ID]; dup {
			continue
		}
		seen[h.ID] = struct{}{}
		out = append(out, h)
	}
	return out
}
