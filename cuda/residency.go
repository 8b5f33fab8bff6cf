package cuda

import (
	"fmt"

	"lookalike/ivf"
)

// residency keeps lists in device memory under a budget. It is owned by
// the device goroutine: nothing in it is locked.
//
// Each index gets one allocation for its constants (centroids, Min, Step,
// rows padded to dp) and one allocation per resident list (layoutList).
// A list becomes resident the first time a batch probes it (or on
// Preload) if it fits the budget; otherwise the CPU scans it, and the next
// batch that probes it tries again. After a Preload, the idle refresh also
// uploads the lists of that index that were empty then and have rows now
// (a node preloads an index as it installs it, before rows move in). A
// resident list follows its ivf.List:
//
//   - View.Gen differs: Compact rewrote it; upload it whole again (into
//     the same allocation when it fits).
//   - View.N grew: rows were appended. Up to maxTail of them are left to
//     the CPU (the batch's tail scan); beyond that the new rows are
//     uploaded (into the spare capacity, or a larger allocation).
//   - View.TombVersion differs, or rows were uploaded while the list has
//     deletes: upload its deleted bitmap for the device-held rows.
//
// A list that must grow but no longer fits is evicted (the CPU scans it).
type residency struct {
	dev     device
	budget  int64
	used    int64
	indexes map[*ivf.Index]*indexState
	st      *counters
}

type indexState struct {
	ix     *ivf.Index
	dim    int
	dp     int
	metric ivf.Metric
	// consts is 0 when the constants did not fit: every list of the index
	// is then scanned on the CPU.
	consts devPtr
	cl     constLayout
	lists  []*resList // by list number; nil: not resident
	// preloaded: Preload asked for every list; refresh uploads lists
	// that are not resident yet too.
	preloaded bool
}

type resList struct {
	mem       devPtr
	lay       listLayout
	gen       uint64
	n         int // rows on the device
	tombVer   uint64
	tombStale bool // rows were uploaded since the bitmap was
	hasTomb   bool // the bitmap is uploaded and must be read
}

// listState is what a batch learns about one probed list.
type listState struct {
	view *ivf.View
	res  *resList // nil: not resident
	n    int      // rows the device holds, a prefix of view's N
}

func newResidency(dev device, budget int64, st *counters) *residency {
	return &residency{dev: dev, budget: budget, indexes: map[*ivf.Index]*indexState{}, st: st}
}

// index returns ix's state, uploading its constants on first use.
func (rs *residency) index(ix *ivf.Index) (*indexState, error) {
	if is := rs.indexes[ix]; is != nil {
		return is, nil
	}
	d := ix.Dim()
	is := &indexState{ix: ix, dim: d, dp: padDim(d), metric: ix.Metric(), lists: make([]*resList, ix.NList())}
	rs.indexes[ix] = is
	is.cl = layoutConsts(ix.NList(), is.dp)
	if rs.used+is.cl.size > rs.budget {
		return is, nil
	}
	p, err := rs.dev.alloc(is.cl.size)
	if err != nil {
		rs.st.allocFailures.Add(1)
		return is, nil
	}
	buf := make([]float32, is.cl.size/4)
	for l := range is.lists {
		copy(buf[l*is.dp:], ix.Centroid(l))
	}
	sq := ix.Quantizer()
	copy(buf[is.cl.min/4:], sq.Min)
	copy(buf[is.cl.step/4:], sq.Step)
	if err := rs.dev.upload(p, f32Bytes(buf)); err != nil {
		return nil, err
	}
	is.consts = p
	rs.used += is.cl.size
	rs.st.residentBytes.Store(rs.used)
	return is, nil
}

// sync brings list l of is up to date for a batch and reports its state.
// Tails longer than maxTail are uploaded (maxTail < 0: any tail).
func (rs *residency) sync(is *indexState, l int, maxTail int) (listState, error) {
	v := is.ix.List(l).View()
	st := listState{view: v}
	if is.consts == 0 {
		return st, nil
	}
	r := is.lists[l]
	var err error
	switch {
	case r == nil:
		if v.N == 0 {
			return st, nil
		}
		r, err = rs.fill(is, l, v)
	case r.gen != v.Gen:
		rs.st.reuploads.Add(1)
		r, err = rs.fill(is, l, v)
	case v.N > r.n && (maxTail < 0 || v.N-r.n > maxTail):
		if v.N > r.lay.cap {
			r, err = rs.fill(is, l, v)
		} else {
			err = rs.uploadRows(is, r, v, r.n, v.N)
			r.n = v.N
			r.tombStale = true
		}
	}
	if err != nil || r == nil {
		return st, err
	}
	if ver := v.TombVersion(); ver != r.tombVer || r.tombStale {
		if err := rs.uploadTomb(is, r, v, ver); err != nil {
			return st, err
		}
	}
	st.res, st.n = r, r.n
	return st, nil
}

// fill uploads all of v into list l's allocation, reallocating (or
// evicting the list) when it does not fit. It returns the list's new
// state, nil when it is not resident.
func (rs *residency) fill(is *indexState, l int, v *ivf.View) (*resList, error) {
	r := is.lists[l]
	if r == nil || r.lay.cap < v.N {
		var old int64
		if r != nil {
			old = r.lay.size
		}
		lay := layoutList(growCap(v.N), is.dp)
		if rs.used-old+lay.size > rs.budget {
			lay = layoutList(v.N, is.dp)
		}
		if rs.used-old+lay.size > rs.budget {
			if r != nil {
				rs.st.evictions.Add(1)
			}
			rs.free(is, l)
			return nil, nil
		}
		rs.free(is, l)
		p, err := rs.dev.alloc(lay.size)
		if err != nil {
			rs.st.allocFailures.Add(1)
			return nil, nil
		}
		r = &resList{mem: p, lay: lay}
		is.lists[l] = r
		rs.used += lay.size
		rs.st.residentBytes.Store(rs.used)
		rs.st.residentLists.Add(1)
	}
	r.gen, r.n, r.hasTomb = v.Gen, 0, false
	if err := rs.uploadRows(is, r, v, 0, v.N); err != nil {
		return nil, err
	}
	r.n = v.N
	r.tombStale = true
	return r, nil
}

// free releases list l of is, if resident.
func (rs *residency) free(is *indexState, l int) {
	r := is.lists[l]
	if r == nil {
		return
	}
	_ = rs.dev.free(r.mem)
	is.lists[l] = nil
	rs.used -= r.lay.size
	rs.st.residentBytes.Store(rs.used)
	rs.st.residentLists.Add(-1)
}

// uploadRows copies rows [from, to) of v (codes padded to dp, and ids).
func (rs *residency) uploadRows(is *indexState, r *resList, v *ivf.View, from, to int) error {
	if from >= to {
		return nil
	}
	d, dp := is.dim, is.dp
	codes := v.Codes()[from*d : to*d]
	src := codes
	if d != dp {
		src = make([]byte, (to-from)*dp)
		for i := 0; i < to-from; i++ {
			copy(src[i*dp:i*dp+d], codes[i*d:(i+1)*d])
		}
	}
	if err := rs.dev.upload(r.mem+devPtr(r.lay.codes)+devPtr(from*dp), src); err != nil {
		return fmt.Errorf("upload codes: %w", err)
	}
	if err := rs.dev.upload(r.mem+devPtr(r.lay.ids)+devPtr(8*from), u64Bytes(v.IDs()[from:to])); err != nil {
		return fmt.Errorf("upload ids: %w", err)
	}
	rs.st.uploads.Add(1)
	rs.st.uploadBytes.Add(int64(len(src) + 8*(to-from)))
	return nil
}

// uploadTomb uploads the deleted bitmap of the device-held rows. ver is
// the TombVersion read before the bits, so a delete that races with the
// copy shows up as a new version next time.
func (rs *residency) uploadTomb(is *indexState, r *resList, v *ivf.View, ver uint64) error {
	r.tombVer, r.tombStale = ver, false
	if v.DeletedCount() == 0 {
		r.hasTomb = false
		return nil
	}
	words := make([]uint32, tombWords(r.n))
	for i := 0; i < r.n; i++ {
		if v.Deleted(i) {
			words[i>>5] |= 1 << (uint(i) & 31)
		}
	}
	if err := rs.dev.upload(r.mem+devPtr(r.lay.tomb), u32Bytes(words)); err != nil {
		return fmt.Errorf("upload deleted bitmap: %w", err)
	}
	r.hasTomb = true
	rs.st.tombUploads.Add(1)
	return nil
}

// preload makes every list of ix resident that fits, in list order, and
// uploads every tail.
func (rs *residency) preload(ix *ivf.Index) error {
	is, err := rs.index(ix)
	if err != nil {
		return err
	}
	is.preloaded = true
	for l := range is.lists {
		if _, err := rs.sync(is, l, -1); err != nil {
			return err
		}
	}
	return nil
}

// refresh uploads the tails and bitmaps of every resident list, and the
// lists of preloaded indexes that are not resident but have rows and fit.
func (rs *residency) refresh() error {
	for _, is := range rs.indexes {
		for l, r := range is.lists {
			if r == nil && !is.preloaded {
				continue
			}
			if _, err := rs.sync(is, l, -1); err != nil {
				return err
			}
		}
	}
	return nil
}

// forget frees everything held for ix.
func (rs *residency) forget(ix *ivf.Index) {
	is := rs.indexes[ix]
	if is == nil {
		return
	}
	for l := range is.lists {
		rs.free(is, l)
	}
	if is.consts != 0 {
		_ = rs.dev.free(is.consts)
		rs.used -= is.cl.size
	}
	rs.st.residentBytes.Store(rs.used)
	delete(rs.indexes, ix)
}

// releaseAll frees everything.
func (rs *residency) releaseAll() {
	for ix := range rs.indexes {
		rs.forget(ix)
	}
}
