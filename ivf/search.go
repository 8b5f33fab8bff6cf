package ivf

import (
	"fmt"
	"math"
	"slices"
	"sync"
)

// SearchOptions control one search.
type SearchOptions struct {
	// K is the number of hits wanted, 1..MaxK.
	K int
	// NProbe is the number of lists scanned, 1..NList. Default 1.
	NProbe int
	// Refine > 1 re-ranks the best K×Refine candidates by exact distance,
	// with floats from Source. 0 or 1: off.
	Refine int
	// Source supplies float vectors for Refine.
	Source VectorSource
}

// VectorSource supplies the float vectors of stored ids, for refine. A node
// reads them from its storage; a benchmark from its data set.
type VectorSource interface {
	// Vectors writes the vectors of ids, in order, into dst, which holds
	// len(ids)×Dim floats. It must be safe for concurrent use.
	Vectors(ids []uint64, dst []float32) error
}

// Probe is one list to scan for a query, with the query's internal
// distance to the list's centroid (squared L2, or −ip).
type Probe struct {
	List int32
	Dist float32
}

// Scanner scans probed lists: the one interface behind which the CPU
// kernels of this package and the GPU kernels of package cuda sit.
//
// Scan fills out[i] (appending to out[i][:0]) with the k best hits of
// query i among the live entries of the lists probes[i], best first, by the
// SQ8 distance of the index's metric (see Hit). queries holds len(probes)
// rows of ix.Dim() floats, already normalised for Cosine. Scan must be safe
// for concurrent use, must not retain queries or out after it returns, and
// must honour tombstones set before it was called. k may exceed MaxK: with
// refine, the search asks for K×Refine candidates.
type Scanner interface {
	Scan(ix *Index, queries []float32, probes [][]Probe, k int, out [][]Hit) error
}

// validate checks options against the index and fills defaults.
func (o *SearchOptions) validate(nlist int) error {
	if o.K < 1 || o.K > MaxK {
		return fmt.Errorf("%w: got %d", ErrBadK, o.K)
	}
	if o.NProbe == 0 {
		o.NProbe = 1
	}
	if o.NProbe < 1 || o.NProbe > nlist {
		return fmt.Errorf("%w: got %d, nlist is %d", ErrBadNProbe, o.NProbe, nlist)
	}
	if o.Refine < 0 || o.Refine > 64 {
		return fmt.Errorf("%w: refine %d outside 0..64", ErrBadOptions, o.Refine)
	}
	if o.Refine > 1 && o.Source == nil {
		return ErrNoSource
	}
	return nil
}

// Search returns the K nearest entries to q, best first. It runs on the
// calling goroutine.
func (ix *Index) Search(q []float32, o SearchOptions) ([]Hit, error) {
	out, err := ix.SearchBatch(q, o)
	if err != nil {
		return nil, err
	}
	return out[0], nil
}

// SearchBatch searches every row of queries; hits[i] answers row i. Rows
// are spread over Options.Threads goroutines.
func (ix *Index) SearchBatch(queries []float32, o SearchOptions) ([][]Hit, error) {
	m := ix.model.Load()
	if m == nil {
		return nil, ErrNotTrained
	}
	if err := o.validate(m.nlist); err != nil {
		return nil, err
	}
	q, err := ix.prepare(queries)
	if err != nil {
		return nil, err
	}
	d := ix.opts.Dim
	nq := len(q) / d
	out := make([][]Hit, nq)
	if nq == 0 {
		return out, nil
	}
	threads := 1
	if nq >= 4 {
		threads = ix.opts.Threads
	}
	var errOnce error
	var mu sync.Mutex
	parallelRange(nq, threads, func(i0, i1 int) {
		if err := ix.searchRange(m, q[i0*d:i1*d], o, out[i0:i1]); err != nil {
			mu.Lock()
			errOnce = err
			mu.Unlock()
		}
	})
	if errOnce != nil {
		return nil, errOnce
	}
	return out, nil
}

func (ix *Index) searchRange(m *model, q []float32, o SearchOptions, out [][]Hit) error {
	d := ix.opts.Dim
	nq := len(q) / d
	ps := make([][]Probe, nq)
	cs := coarsePool.Get().(*coarseScratch)
	for i := 0; i < nq; i++ {
		ps[i] = ix.coarse(m, q[i*d:(i+1)*d], o.NProbe, cs)
	}
	coarsePool.Put(cs)
	kk := o.K
	if o.Refine > 1 {
		kk = min(o.K*o.Refine, MaxK*64)
	}
	if err := ix.opts.Scanner.Scan(ix, q, ps, kk, out); err != nil {
		return err
	}
	if o.Refine > 1 {
		for i := range out {
			r, err := ix.refine(q[i*d:(i+1)*d], out[i], o)
			if err != nil {
				return err
			}
			out[i] = r
		}
	}
	return nil
}

// coarse returns the nprobe lists nearest to q, nearest first, exactly.
//
// Reading every float centroid (nlist × dim × 4 bytes, 3 MiB for
// Fashion-MNIST at nlist 1024) would cost more than scanning the probed
// lists. So it scans the centroids' SQ8 codes (4× fewer bytes) for
// approximate distances, turns each into a lower bound on the exact one
// with the centroid's quantization error, and computes exact distances in
// order of increasing bound until the next bound cannot beat the
// nprobe-th exact distance found. The result equals the exhaustive one; if
// the candidates run out first it falls back to the exhaustive scan.
func (ix *Index) coarse(m *model, q []float32, nprobe int, s *coarseScratch) []Probe {
	d := ix.opts.Dim
	l2 := ix.opts.Metric == L2
	var qn float32
	if l2 {
		qn = dotF32(q, q)
	}
	exact := func(j int) float32 {
		dot := dotF32(q, m.centroids[j*d:(j+1)*d])
		if l2 {
			return max(0, m.cnorm[j]-2*dot+qn)
		}
		return -dot
	}
	top := &s.top
	if m.nlist < 64 || 4*nprobe > m.nlist {
		cd := s.buf(m.nlist)
		dotBatch(q, m.centroids, cd)
		top.Reset(nprobe)
		for j, dot := range cd {
			x := -dot
			if l2 {
				x = max(0, m.cnorm[j]-2*dot+qn)
			}
			if x <= top.Worst() {
				top.Push(uint64(j), x)
			}
		}
		return probes(top.Sorted(s.hits[:0]))
	}
	// Lower bounds from the quantized centroids.
	lb := s.buf(m.nlist)
	a := s.a(d)
	if l2 {
		for i := range a {
			a[i] = q[i] - m.csq.Min[i]
		}
		sq8L2(a, m.csq.Step, m.ccodes, lb)
		for j, x := range lb {
			r := float32(math.Sqrt(float64(x))) - m.cerr[j]
			if r < 0 {
				r = 0
			}
			lb[j] = r * r
		}
	} else {
		for i := range a {
			a[i] = q[i] * m.csq.Step[i]
		}
		qmin := dotF32(q, m.csq.Min)
		qnorm := float32(math.Sqrt(float64(dotF32(q, q))))
		sq8IP(a, m.ccodes, lb)
		for j, x := range lb {
			lb[j] = -(qmin + x) - qnorm*m.cerr[j]
		}
	}
	// The nprobe+margin smallest bounds, plus one more as a sentinel.
	cands := min(m.nlist, nprobe+16+nprobe/2)
	sel := &s.sel
	sel.Reset(cands + 1)
	for j, x := range lb {
		if x <= sel.Worst() {
			sel.Push(uint64(j), x)
		}
	}
	order := sel.Sorted(s.order[:0])
	s.order = order
	top.Reset(nprobe)
	for i, c := range order {
		if top.Full() && c.Dist > top.Worst() {
			return probes(top.Sorted(s.hits[:0]))
		}
		if i == cands { // sentinel reached without a proof: be exhaustive
			break
		}
		top.Push(c.ID, exact(int(c.ID)))
	}
	if len(order) <= cands { // every list was a candidate
		return probes(top.Sorted(s.hits[:0]))
	}
	top.Reset(nprobe)
	for j := 0; j < m.nlist; j++ {
		top.Push(uint64(j), exact(j))
	}
	return probes(top.Sorted(s.hits[:0]))
}

// coarseScratch is per-goroutine memory for coarse.
type coarseScratch struct {
	f, av    []float32
	top, sel TopK
	order    []Hit
	hits     []Hit
}

var coarsePool = sync.Pool{New: func() any { return new(coarseScratch) }}

func (s *coarseScratch) buf(n int) []float32 {
	if cap(s.f) < n {
		s.f = make([]float32, n)
	}
	return s.f[:n]
}

func (s *coarseScratch) a(n int) []float32 {
	if cap(s.av) < n {
		s.av = make([]float32, n)
	}
	return s.av[:n]
}

func probes(h []Hit) []Probe {
	p := make([]Probe, len(h))
	for i, x := range h {
		p[i] = Probe{List: int32(x.ID), Dist: x.Dist}
	}
	return p
}

// refine re-ranks candidates by exact distance and keeps the best K.
func (ix *Index) refine(q []float32, cand []Hit, o SearchOptions) ([]Hit, error) {
	d := ix.opts.Dim
	ids := make([]uint64, len(cand))
	for i, h := range cand {
		ids[i] = h.ID
	}
	vecs := make([]float32, len(ids)*d)
	if err := o.Source.Vectors(ids, vecs); err != nil {
		return nil, fmt.Errorf("ivf: refine: %w", err)
	}
	out := make([]Hit, len(cand))
	for i, id := range ids {
		v := vecs[i*d : (i+1)*d]
		if ix.opts.Metric == Cosine {
			Normalize(v)
		}
		out[i] = Hit{ID: id, Dist: ix.opts.Metric.Distance(q, v)}
	}
	slices.SortFunc(out, compareHits)
	return out[:min(o.K, len(out))], nil
}

// CPUScanner scans lists with this package's SIMD kernels, one query after
// another on the calling goroutine.
type CPUScanner struct{}

// scanChunk is how many codes one kernel call scores.
const scanChunk = 256

type scanScratch struct {
	a, w []float32
	dist []float32
	top  TopK
}

var scratchPool = sync.Pool{New: func() any { return new(scanScratch) }}

// Scan implements Scanner.
func (CPUScanner) Scan(ix *Index, queries []float32, probes [][]Probe, k int, out [][]Hit) error {
	m := ix.model.Load()
	if m == nil {
		return ErrNotTrained
	}
	d := ix.opts.Dim
	s := scratchPool.Get().(*scanScratch)
	defer scratchPool.Put(s)
	if cap(s.a) < d {
		s.a = make([]float32, d)
		s.w = make([]float32, d)
	}
	if s.dist == nil {
		s.dist = make([]float32, scanChunk)
	}
	a, w, dist := s.a[:d], s.w[:d], s.dist
	for qi, ps := range probes {
		q := queries[qi*d : (qi+1)*d]
		top := &s.top
		top.Reset(k)
		var qmin float32 // q·Min, for inner products
		if ix.opts.Metric != L2 {
			qmin = dotF32(q, m.sq.Min)
			for j := range w {
				w[j] = q[j] * m.sq.Step[j]
			}
		}
		for _, p := range ps {
			v := ix.lists[p.List].View()
			if v.N == 0 {
				continue
			}
			c := m.centroids[int(p.List)*d : (int(p.List)+1)*d]
			var base float32
			if ix.opts.Metric == L2 {
				for j := range a {
					a[j] = q[j] - c[j] - m.sq.Min[j]
				}
			} else {
				// −(q·c + q·Min + Σ w·code); p.Dist is −q·c.
				base = p.Dist - qmin
			}
			codes, ids := v.Codes(), v.IDs()
			hasTomb := v.DeletedCount() > 0
			for j0 := 0; j0 < v.N; j0 += scanChunk {
				j1 := min(j0+scanChunk, v.N)
				dd := dist[:j1-j0]
				if ix.opts.Metric == L2 {
					sq8L2(a, m.sq.Step, codes[j0*d:j1*d], dd)
				} else {
					sq8IP(w, codes[j0*d:j1*d], dd)
					for j := range dd {
						dd[j] = base - dd[j]
					}
				}
				worst := top.Worst()
				for j, x := range dd {
					if x > worst {
						continue
					}
					if hasTomb && v.Deleted(j0+j) {
						continue
					}
					top.Push(ids[j0+j], x)
					worst = top.Worst()
				}
			}
		}
		out[qi] = top.Sorted(out[qi][:0])
	}
	return nil
}
