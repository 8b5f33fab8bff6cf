package node

import (
	"math"
	"sync"
	"sync/atomic"

	"lookalike/ivf"
)

// flatBuffer holds the float vectors of an untrained collection and is
// scanned in full, exactly (decision 5). Like ivf.List it is append-only:
// writers (append, delete) are serialised by mu and publish a new view;
// searches load a view and scan it without a lock. Deletes set a
// tombstone bit, visible at once.
type flatBuffer struct {
	dim    int
	metric ivf.Metric
	mu     sync.Mutex
	view   atomic.Pointer[bufView]
	pos    map[uint64]int // internal id → row; guarded by mu
}

type bufView struct {
	n    int
	vecs []float32 // len ≥ n·dim; rows as inserted (training samples them as the engine would)
	inv  []float32 // Cosine only: 1/‖row‖, len ≥ n
	ids  []uint64
	tomb []uint32 // shared by views of one generation; bits set atomically
	live int64
}

func newFlatBuffer(dim int, metric ivf.Metric) *flatBuffer {
	b := &flatBuffer{dim: dim, metric: metric, pos: map[uint64]int{}}
	b.view.Store(&bufView{})
	return b
}

func (v *bufView) deleted(i int) bool {
	return atomic.LoadUint32(&v.tomb[i>>5])&(1<<(uint(i)&31)) != 0
}

// append adds rows (already validated) under ids. When the rows must
// grow and more than a quarter of them are deleted, the new generation
// keeps only the live rows, in their order: a buffer rewritten in place
// (upserts, an id directory's entries) does not grow without bound.
func (b *flatBuffer) append(ids []uint64, vecs []float32) {
	b.mu.Lock()
	defer b.mu.Unlock()
	d := b.dim
	v := b.view.Load()
	n, m := v.n, len(ids)
	if n+m > len(v.ids) {
		live := int(v.live)
		compact := n-live > n/4
		rows := n
		if compact {
			rows = live
		}
		c := rows + m + (rows+m)/4 + 64
		nv := &bufView{n: rows, vecs: make([]float32, c*d), ids: make([]uint64, c), tomb: make([]uint32, (c+31)/32), live: v.live}
		if b.metric == ivf.Cosine {
			nv.inv = make([]float32, c)
		}
		if compact {
			j := 0
			for i := 0; i < n; i++ {
				if v.deleted(i) {
					continue
				}
				copy(nv.vecs[j*d:(j+1)*d], v.vecs[i*d:(i+1)*d])
				if nv.inv != nil {
					nv.inv[j] = v.inv[i]
				}
				nv.ids[j] = v.ids[i]
				b.pos[v.ids[i]] = j
				j++
			}
		} else {
			if nv.inv != nil {
				copy(nv.inv, v.inv[:n])
			}
			copy(nv.vecs, v.vecs[:n*d])
			copy(nv.ids, v.ids[:n])
			for i := range v.tomb {
				nv.tomb[i] = atomic.LoadUint32(&v.tomb[i])
			}
		}
		v, n = nv, rows
	}
	copy(v.vecs[n*d:], vecs)
	if b.metric == ivf.Cosine {
		for i := n; i < n+m; i++ {
			row := v.vecs[i*d : (i+1)*d]
			v.inv[i] = float32(1 / math.Sqrt(float64(-ivf.IP.Distance(row, row))))
		}
	}
	copy(v.ids[n:], ids)
	for i, id := range ids {
		b.pos[id] = n + i
	}
	b.view.Store(&bufView{n: n + m, vecs: v.vecs, inv: v.inv, ids: v.ids, tomb: v.tomb, live: v.live + int64(m)})
}

// delete tombstones id and reports whether it was there.
func (b *flatBuffer) delete(id uint64) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	i, ok := b.pos[id]
	if !ok {
		return false
	}
	delete(b.pos, id)
	v := b.view.Load()
	atomic.OrUint32(&v.tomb[i>>5], 1<<(uint(i)&31))
	b.view.Store(&bufView{n: v.n, vecs: v.vecs, inv: v.inv, ids: v.ids, tomb: v.tomb, live: v.live - 1})
	return true
}

// len is the number of live rows.
func (b *flatBuffer) len() int { return int(b.view.Load().live) }

// search scans every live row exactly and returns the k best, best first
// (internal distances, see ivf.Hit). q must be normalised for Cosine.
func (b *flatBuffer) search(q []float32, k int) []ivf.Hit {
	v := b.view.Load()
	d := b.dim
	top := ivf.NewTopK(k)
	for i := 0; i < v.n; i++ {
		x := b.metric.Distance(q, v.vecs[i*d:(i+1)*d])
		if v.inv != nil {
			x *= v.inv[i]
		}
		if x <= top.Worst() && !v.deleted(i) {
			top.Push(v.ids[i], x)
		}
	}
	return top.Sorted(nil)
}

// liveIDs returns the live ids of the current view.
func (b *flatBuffer) liveIDs() []uint64 {
	v := b.view.Load()
	ids := make([]uint64, 0, v.live)
	for i := 0; i < v.n; i++ {
		if !v.deleted(i) {
			ids = append(ids, v.ids[i])
		}
	}
	return ids
}

// liveRows returns copies of the live ids and rows of the current view,
// for training and the move.
func (b *flatBuffer) liveRows() ([]uint64, []float32) {
	v := b.view.Load()
	d := b.dim
	ids := make([]uint64, 0, v.live)
	vecs := make([]float32, 0, int(v.live)*d)
	for i := 0; i < v.n; i++ {
		if !v.deleted(i) {
			ids = append(ids, v.ids[i])
			vecs = append(vecs, v.vecs[i*d:(i+1)*d]...)
		}
	}
	return ids, vecs
}
