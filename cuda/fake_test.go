//go:build cgo

package cuda

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"sync"

	"lookalike/cuda/hostmath"
	"lookalike/ivf"
)

// fakeDev is a device made of Go memory. Its kernels read the same
// descriptors the real ones do, from the bytes the host uploaded, and score
// rows with the kernels' own arithmetic (sq8.h through hostmath), so the
// host logic — residency, layouts, planning, batching, tails, merging — is
// tested end to end without a GPU. Every access is bounds-checked against
// the allocations: a wrong offset is an error, not a silent misread.
type fakeDev struct {
	mu     sync.Mutex
	inf    deviceInfo
	next   devPtr
	allocs map[devPtr][]byte
	// counts
	scans, merges, uploads int
	live, peak             int64
	// failAt makes the n-th call of the named method fail ("scan",
	// "upload", ...); 0 never.
	failOp string
	failAt int
	calls  map[string]int
	closed bool
}

var errFake = errors.New("fake device failure")

func newFakeDev(sms int) *fakeDev {
	return &fakeDev{
		inf:    deviceInfo{Name: "fake", SMs: sms, TotalMem: 1 << 30, FreeMem: 1 << 30, Major: 8},
		next:   0x10000000,
		allocs: map[devPtr][]byte{},
		calls:  map[string]int{},
	}
}

func (f *fakeDev) opener() openFunc {
	return func(Options) (device, error) { return f, nil }
}

func (f *fakeDev) call(op string) error {
	f.calls[op]++
	if f.failOp == op && f.calls[op] == f.failAt {
		return fmt.Errorf("%s: %w", op, errFake)
	}
	return nil
}

func (f *fakeDev) info() deviceInfo { return f.inf }

func (f *fakeDev) alloc(n int64) (devPtr, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.call("alloc"); err != nil {
		return 0, err
	}
	if n <= 0 {
		return 0, fmt.Errorf("alloc of %d bytes", n)
	}
	p := f.next
	f.next += devPtr(alignUp(n, devAlign) + 4096) // a gap: overruns don't land in a neighbour
	f.allocs[p] = make([]byte, n)
	for i := range f.allocs[p] {
		f.allocs[p][i] = 0xA5 // device memory is not zeroed
	}
	f.live += n
	f.peak = max(f.peak, f.live)
	return p, nil
}

func (f *fakeDev) free(p devPtr) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	b, ok := f.allocs[p]
	if !ok {
		return fmt.Errorf("free of %#x: not an allocation", p)
	}
	f.live -= int64(len(b))
	delete(f.allocs, p)
	return nil
}

// mem returns the n bytes at p, which must lie inside one allocation.
func (f *fakeDev) mem(p devPtr, n int64) ([]byte, error) {
	for base, b := range f.allocs {
		if p >= base && p < base+devPtr(len(b)) {
			off := int64(p - base)
			if off+n > int64(len(b)) || n < 0 {
				return nil, fmt.Errorf("access [%#x, +%d) overruns allocation %#x of %d bytes", p, n, base, len(b))
			}
			return b[off : off+n], nil
		}
	}
	if n == 0 {
		return nil, nil
	}
	return nil, fmt.Errorf("access [%#x, +%d) outside every allocation", p, n)
}

func (f *fakeDev) upload(dst devPtr, src []byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.call("upload"); err != nil {
		return err
	}
	m, err := f.mem(dst, int64(len(src)))
	if err != nil {
		return err
	}
	copy(m, src)
	f.uploads++
	return nil
}

func (f *fakeDev) download(dst []byte, src devPtr) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.call("download"); err != nil {
		return err
	}
	m, err := f.mem(src, int64(len(dst)))
	if err != nil {
		return err
	}
	copy(dst, m)
	return nil
}

func (f *fakeDev) close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closed = true
	if len(f.allocs) != 0 {
		return fmt.Errorf("close with %d allocations live", len(f.allocs))
	}
	return nil
}

func (f *fakeDev) f32s(p devPtr, n int) ([]float32, error) {
	b, err := f.mem(p, 4*int64(n))
	if err != nil {
		return nil, err
	}
	out := make([]float32, n)
	for i := range out {
		out[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return out, nil
}

type fakeHit struct {
	d  float32
	id uint64
}

func sortHits(h []fakeHit) {
	sort.Slice(h, func(i, j int) bool { return hostmath.Less(h[i].d, h[i].id, h[j].d, h[j].id) })
}

// writeTop writes the k best of h, sorted, and their count to row r.
func (f *fakeDev) writeTop(h []fakeHit, k int, dist, ids, count devPtr, kmax, r int) error {
	sortHits(h)
	h = h[:min(k, len(h))]
	bd, err := f.mem(dist+devPtr(4*r*kmax), 4*int64(len(h)))
	if err != nil {
		return err
	}
	bi, err := f.mem(ids+devPtr(8*r*kmax), 8*int64(len(h)))
	if err != nil {
		return err
	}
	bc, err := f.mem(count+devPtr(4*r), 4)
	if err != nil {
		return err
	}
	for i, x := range h {
		binary.LittleEndian.PutUint32(bd[4*i:], math.Float32bits(x.d))
		binary.LittleEndian.PutUint64(bi[8*i:], x.id)
	}
	binary.LittleEndian.PutUint32(bc, uint32(len(h)))
	return nil
}

func (f *fakeDev) scan(l *scanLaunch) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.call("scan"); err != nil {
		return err
	}
	f.scans++
	if err := f.checkLaunch(l.kmax, l.kp, l.buf, l.shared); err != nil {
		return err
	}
	if l.lanes != hostmath.Lanes(l.dp) || l.dp%hostmath.Chunk != 0 {
		return fmt.Errorf("scan: lanes %d for dp %d", l.lanes, l.dp)
	}
	if want := scanShared(l.kp, l.dp, map[bool]ivf.Metric{true: ivf.L2, false: ivf.IP}[l.l2]); l.shared != want {
		return fmt.Errorf("scan: shared %d, want %d", l.shared, want)
	}
	dp := l.dp
	step, err := f.f32s(l.step, dp)
	if err != nil {
		return err
	}
	mn, err := f.f32s(l.min, dp)
	if err != nil {
		return err
	}
	vec := make([]float32, dp)
	for bi := 0; bi < l.nblocks; bi++ {
		bb, err := f.mem(l.blocks+devPtr(bi*blockDescBytes), blockDescBytes)
		if err != nil {
			return err
		}
		b := getBlockDesc(bb)
		if b.k < 1 || int(b.k) > l.kmax || int(b.k) > l.kp || b.count < 1 {
			return fmt.Errorf("scan: block %d: %+v (kmax %d, kp %d)", bi, b, l.kmax, l.kp)
		}
		q, err := f.f32s(l.queries+devPtr(4*int(b.query)*dp), dp)
		if err != nil {
			return err
		}
		if !l.l2 {
			hostmath.PrepIP(q, step, vec)
		}
		var cand []fakeHit
		p, off, left := int(b.probe), int(b.offset), int(b.count)
		for left > 0 {
			pb, err := f.mem(l.probes+devPtr(p*probeDescBytes), probeDescBytes)
			if err != nil {
				return err
			}
			pr := getProbeDesc(pb)
			take := min(int(pr.n)-off, left)
			if take <= 0 || off < 0 {
				return fmt.Errorf("scan: block %d reaches probe %d at offset %d of %d", bi, p, off, pr.n)
			}
			if l.l2 {
				c, err := f.f32s(l.centroids+devPtr(4*int(pr.list)*dp), dp)
				if err != nil {
					return err
				}
				hostmath.PrepL2(q, c, mn, vec)
			}
			codes, err := f.mem(pr.codes+devPtr(off*dp), int64(take*dp))
			if err != nil {
				return err
			}
			idb, err := f.mem(pr.ids+devPtr(8*off), 8*int64(take))
			if err != nil {
				return err
			}
			var tomb []uint32
			if pr.tomb != 0 {
				tb, err := f.mem(pr.tomb, 4*int64(tombWords(off+take)))
				if err != nil {
					return err
				}
				tomb = make([]uint32, len(tb)/4)
				for i := range tomb {
					tomb[i] = binary.LittleEndian.Uint32(tb[4*i:])
				}
			}
			dist := make([]float32, take)
			if l.l2 {
				hostmath.L2Rows(vec, step, codes, dp, l.lanes, dist)
			} else {
				hostmath.IPRows(pr.base, vec, codes, dp, l.lanes, dist)
			}
			for i, x := range dist {
				if hostmath.Deleted(tomb, off+i) {
					continue
				}
				cand = append(cand, fakeHit{x, binary.LittleEndian.Uint64(idb[8*i:])})
			}
			left -= take
			off = 0
			p++
		}
		if err := f.writeTop(cand, int(b.k), l.outDist, l.outID, l.outCount, l.kmax, int(b.slot)); err != nil {
			return err
		}
	}
	return nil
}

func (f *fakeDev) merge(l *mergeLaunch) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.call("merge"); err != nil {
		return err
	}
	f.merges++
	if err := f.checkLaunch(l.kmax, l.kp, l.buf, l.shared); err != nil {
		return err
	}
	if l.shared != mergeShared(l.kp) {
		return fmt.Errorf("merge: shared %d", l.shared)
	}
	for mi := 0; mi < l.nmerges; mi++ {
		mb, err := f.mem(l.merges+devPtr(mi*mergeDescBytes), mergeDescBytes)
		if err != nil {
			return err
		}
		m := getMergeDesc(mb)
		var cand []fakeHit
		for s := int(m.first); s < int(m.first+m.nslots); s++ {
			cb, err := f.mem(l.inCount+devPtr(4*s), 4)
			if err != nil {
				return err
			}
			n := int(binary.LittleEndian.Uint32(cb))
			if n > l.kmax {
				return fmt.Errorf("merge: slot %d holds %d > kmax %d", s, n, l.kmax)
			}
			d, err := f.f32s(l.inDist+devPtr(4*s*l.kmax), n)
			if err != nil {
				return err
			}
			ib, err := f.mem(l.inID+devPtr(8*s*l.kmax), 8*int64(n))
			if err != nil {
				return err
			}
			if !slices.IsSortedFunc(d, func(a, b float32) int {
				if a < b {
					return -1
				}
				if a > b {
					return 1
				}
				return 0
			}) {
				return fmt.Errorf("merge: slot %d not sorted", s)
			}
			for i := range d {
				cand = append(cand, fakeHit{d[i], binary.LittleEndian.Uint64(ib[8*i:])})
			}
		}
		if err := f.writeTop(cand, int(m.k), l.outDist, l.outID, l.outCount, l.kmax, int(m.out)); err != nil {
			return err
		}
	}
	return nil
}

// checkLaunch checks what the real kernels rely on.
func (f *fakeDev) checkLaunch(kmax, kp, buf, shared int) error {
	switch {
	case kp < kmax || kp&(kp-1) != 0:
		return fmt.Errorf("launch: kp %d for kmax %d", kp, kmax)
	case buf&(buf-1) != 0 || buf-kp < roundRows:
		return fmt.Errorf("launch: buf %d for kp %d", buf, kp)
	case shared > sharedLimit:
		return fmt.Errorf("launch: %d bytes of shared memory", shared)
	}
	return nil
}
