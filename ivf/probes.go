package ivf

import "fmt"

// Probes returns the nprobe lists nearest to q, nearest first: the coarse
// step of Search on its own. A cluster gateway calls it to learn which
// lists (and so which shards and nodes) a query needs, and sends each
// node its part for SearchProbes.
func (ix *Index) Probes(q []float32, nprobe int) ([]Probe, error) {
	m := ix.model.Load()
	if m == nil {
		return nil, ErrNotTrained
	}
	if nprobe < 1 || nprobe > m.nlist {
		return nil, fmt.Errorf("%w: got %d, nlist is %d", ErrBadNProbe, nprobe, m.nlist)
	}
	qq, err := ix.prepare(q)
	if err != nil {
		return nil, err
	}
	if len(qq) != ix.opts.Dim {
		return nil, fmt.Errorf("%w: query has %d floats, want %d", ErrDimension, len(qq), ix.opts.Dim)
	}
	cs := coarsePool.Get().(*coarseScratch)
	defer coarsePool.Put(cs)
	return ix.coarse(m, qq, nprobe, cs), nil
}

// SearchProbes scans the given lists only (typically a part of what
// Probes returned on an index with the same centroids) and returns their
// K best entries, best first. o.NProbe is ignored. Searching the parts of
// a probe set on several indexes and merging with MergeTopK gives what
// Search gives on one index holding every list (without Refine, exactly).
func (ix *Index) SearchProbes(q []float32, probes []Probe, o SearchOptions) ([]Hit, error) {
	m := ix.model.Load()
	if m == nil {
		return nil, ErrNotTrained
	}
	o.NProbe = 1
	if err := o.validate(m.nlist); err != nil {
		return nil, err
	}
	for _, p := range probes {
		if p.List < 0 || int(p.List) >= m.nlist {
			return nil, fmt.Errorf("%w: list %d outside 0..%d", ErrBadOptions, p.List, m.nlist-1)
		}
	}
	qq, err := ix.prepare(q)
	if err != nil {
		return nil, err
	}
	if len(qq) != ix.opts.Dim {
		return nil, fmt.Errorf("%w: query has %d floats, want %d", ErrDimension, len(qq), ix.opts.Dim)
	}
	if len(probes) == 0 {
		return nil, nil
	}
	kk := o.K
	if o.Refine > 1 {
		kk = min(o.K*o.Refine, MaxK*64)
	}
	out := make([][]Hit, 1)
	if err := ix.opts.Scanner.Scan(ix, qq, [][]Probe{probes}, kk, out); err != nil {
		return nil, err
	}
	if o.Refine > 1 {
		return ix.refine(qq, out[0], o)
	}
	return out[0], nil
}
