package cuda

import (
	"encoding/binary"
	"math"
	"unsafe"

	"lookalike/ivf"
)

// Facts shared with the kernels. The C side is cuda/kernels/sq8.h and
// sq8.cu; the hostmath tests check that the two agree.
const (
	// chunk is the bytes of codes one lane reads at a time; code rows are
	// padded to a multiple of it.
	chunk = 16
	// maxLanes is the widest group of threads that scores one vector.
	maxLanes = 32
	// threadsPerBlock is the block size of both kernels (SQ8_THREADS).
	threadsPerBlock = 256
	// roundRows is how many rows a block scores between two checks of its
	// candidate buffer (SQ8_ROUND).
	roundRows = 256
	// sharedLimit is the dynamic shared memory a launch may ask for: the
	// 48 KiB every sm_80/sm_90 part grants without an opt-in, less room for
	// the kernels' static shared variables.
	sharedLimit = 48<<10 - 64

	probeDescBytes = 40 // sq8_probe_desc
	blockDescBytes = 24 // sq8_block_desc
	mergeDescBytes = 16 // sq8_merge_desc

	// devAlign aligns every region of device memory the host lays out (the
	// driver's allocations are at least 256-byte aligned).
	devAlign = 256
)

// padDim is the padded row length of dim codes (sq8_pad).
func padDim(dim int) int { return (dim + chunk - 1) / chunk * chunk }

// lanesFor is the number of threads that score one row of dp codes
// (sq8_lanes): the smallest power of two whose chunks cover the row, at
// most a warp.
func lanesFor(dp int) int {
	w := 1
	for w < maxLanes && w*chunk < dp {
		w <<= 1
	}
	return w
}

// topCap is the capacity kp of a block's sorted best area for k hits: a
// power of two, at least 32.
func topCap(k int) int {
	kp := 32
	for kp < k {
		kp <<= 1
	}
	return kp
}

// topBuf is the size of a block's selection buffer (best area plus
// candidate area): a power of two that leaves at least one round of room
// for candidates.
func topBuf(kp int) int { return max(2*kp, 512) }

// scanShared is the dynamic shared memory of one sq8_scan block: the
// selection buffer (8-byte ids, then 4-byte distances), then for L2 the
// (a, Step) pairs (sharedPairs), for IP the weights w (sharedVec), each
// padded.
func scanShared(kp, dp int, m ivf.Metric) int {
	n := topBuf(kp) * 12
	if m == ivf.L2 {
		return n + sharedPairs(dp)*8
	}
	return n + sharedVec(dp)*4
}

// sharedVec is the length in floats of the IP weight vector in the scan
// kernel's shared memory: dp plus one float of padding per 32 against
// bank conflicts (sq8_svec).
func sharedVec(dp int) int { return dp + dp>>5 }

// sharedPairs is the length in float pairs of the L2 (a, Step) table: dp
// plus one pair of padding per 16 (sq8_spairs).
func sharedPairs(dp int) int { return dp + dp>>4 }

// mergeShared is the dynamic shared memory of one sq8_merge block.
func mergeShared(kp int) int { return topBuf(kp) * 12 }

// deviceFits reports whether searches of k hits on an index of this
// dimension and metric can run on the GPU at all; the rest run on the CPU.
func deviceFits(dim, k int, m ivf.Metric) bool {
	return scanShared(topCap(k), padDim(dim), m) <= sharedLimit
}

func alignUp(n, a int64) int64 { return (n + a - 1) / a * a }

// listLayout is where a resident list's arrays lie in its one device
// allocation: the code rows (cap × dp bytes), the ids (cap × 8 bytes) and
// the deleted bitmap (one bit per entry, in 32-bit words), each region
// 256-byte aligned.
type listLayout struct {
	cap                    int
	codes, ids, tomb, size int64
}

func layoutList(cap, dp int) listLayout {
	l := listLayout{cap: cap}
	l.codes = 0
	l.ids = alignUp(int64(cap)*int64(dp), devAlign)
	l.tomb = alignUp(l.ids+8*int64(cap), devAlign)
	l.size = alignUp(l.tomb+4*int64(tombWords(cap)), devAlign)
	if l.size == 0 {
		l.size = devAlign
	}
	return l
}

func tombWords(n int) int { return (n + 31) / 32 }

// growCap is the capacity given to a list of n entries when it is
// (re)allocated: room to grow by a quarter before the next reallocation.
func growCap(n int) int { return n + n/4 + 32 }

// constLayout is where an index's constants lie in their allocation: the
// centroids (nlist × dp floats), Min and Step (dp floats each).
type constLayout struct {
	centroids, min, step, size int64
}

func layoutConsts(nlist, dp int) constLayout {
	var l constLayout
	l.min = alignUp(4*int64(nlist)*int64(dp), devAlign)
	l.step = alignUp(l.min+4*int64(dp), devAlign)
	l.size = alignUp(l.step+4*int64(dp), devAlign)
	return l
}

// scratchLayout is where one batch's inputs and outputs lie in the scratch
// allocation. The inputs (queries, probes, blocks, merges) are contiguous
// from 0 so one copy uploads them; each output set (partial slots, final
// rows) is contiguous so one copy downloads it.
type scratchLayout struct {
	queries, probes, blocks, merges, inEnd int64
	pDist, pID, pCount, pEnd               int64 // partial slots
	fDist, fID, fCount, fEnd               int64 // final rows (merge output)
	size                                   int64
}

func layoutScratch(nq, dp, nprobes, nblocks, nslots, kmax int) scratchLayout {
	var l scratchLayout
	a := func(n int64) int64 { return alignUp(n, devAlign) }
	l.queries = 0
	l.probes = a(4 * int64(nq) * int64(dp))
	l.blocks = a(l.probes + probeDescBytes*int64(nprobes))
	l.merges = a(l.blocks + blockDescBytes*int64(nblocks))
	l.inEnd = l.merges + mergeDescBytes*int64(nq)
	l.pDist = a(l.inEnd)
	l.pID = a(l.pDist + 4*int64(nslots)*int64(kmax))
	l.pCount = a(l.pID + 8*int64(nslots)*int64(kmax))
	l.pEnd = l.pCount + 4*int64(nslots)
	l.fDist = a(l.pEnd)
	l.fID = a(l.fDist + 4*int64(nq)*int64(kmax))
	l.fCount = a(l.fID + 8*int64(nq)*int64(kmax))
	l.fEnd = l.fCount + 4*int64(nq)
	l.size = a(l.fEnd)
	return l
}

// probeDesc mirrors sq8_probe_desc.
type probeDesc struct {
	codes, ids, tomb devPtr
	n                int32
	list             int32
	base             float32
}

func (p probeDesc) put(b []byte) {
	le := binary.LittleEndian
	le.PutUint64(b[0:], uint64(p.codes))
	le.PutUint64(b[8:], uint64(p.ids))
	le.PutUint64(b[16:], uint64(p.tomb))
	le.PutUint32(b[24:], uint32(p.n))
	le.PutUint32(b[28:], uint32(p.list))
	le.PutUint32(b[32:], math.Float32bits(p.base))
	le.PutUint32(b[36:], 0)
}

func getProbeDesc(b []byte) probeDesc {
	le := binary.LittleEndian
	return probeDesc{
		codes: devPtr(le.Uint64(b[0:])),
		ids:   devPtr(le.Uint64(b[8:])),
		tomb:  devPtr(le.Uint64(b[16:])),
		n:     int32(le.Uint32(b[24:])),
		list:  int32(le.Uint32(b[28:])),
		base:  math.Float32frombits(le.Uint32(b[32:])),
	}
}

// blockDesc mirrors sq8_block_desc.
type blockDesc struct {
	query, probe, offset, count, slot, k int32
}

func (d blockDesc) put(b []byte) {
	le := binary.LittleEndian
	for i, x := range [...]int32{d.query, d.probe, d.offset, d.count, d.slot, d.k} {
		le.PutUint32(b[4*i:], uint32(x))
	}
}

func getBlockDesc(b []byte) blockDesc {
	le := binary.LittleEndian
	g := func(i int) int32 { return int32(le.Uint32(b[4*i:])) }
	return blockDesc{g(0), g(1), g(2), g(3), g(4), g(5)}
}

// mergeDesc mirrors sq8_merge_desc.
type mergeDesc struct {
	first, nslots, k, out int32
}

func (d mergeDesc) put(b []byte) {
	le := binary.LittleEndian
	for i, x := range [...]int32{d.first, d.nslots, d.k, d.out} {
		le.PutUint32(b[4*i:], uint32(x))
	}
}

func getMergeDesc(b []byte) mergeDesc {
	le := binary.LittleEndian
	g := func(i int) int32 { return int32(le.Uint32(b[4*i:])) }
	return mergeDesc{g(0), g(1), g(2), g(3)}
}

// f32Bytes and u64Bytes view slices as their bytes without copying
// (lookalike runs on little-endian machines only, as the kernels do).
func f32Bytes(x []float32) []byte {
	if len(x) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(&x[0])), 4*len(x))
}

func u64Bytes(x []uint64) []byte {
	if len(x) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(&x[0])), 8*len(x))
}

func u32Bytes(x []uint32) []byte {
	if len(x) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(&x[0])), 4*len(x))
}
