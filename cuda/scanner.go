package cuda

import (
	"encoding/binary"
	"fmt"
	"math"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"lookalike/ivf"
)

// Scanner scans probed IVF-SQ8 lists on a GPU. It implements ivf.Scanner,
// so an index (ivf.Options.Scanner) or a node takes it in place of
// ivf.CPUScanner.
//
// One goroutine, locked to its OS thread, owns the CUDA context and all
// device memory. Scan calls from any number of goroutines queue their
// queries to it; it gathers them into batches (Options.MaxBatch,
// Options.MaxWait), brings the probed lists up to date on the device,
// launches the kernels and hands each caller its GPU hits together with
// the work the GPU could not do: lists that are not resident and tails
// appended since the last upload. The caller scans those on its own
// goroutine and merges. So Scan is safe for concurrent use, holds no lock
// while lists are scanned, and gives the same hits as ivf.CPUScanner up to
// float rounding (distances within about 1e-6 relative; equal-distance ties
// at the k-th place may resolve to other ids only when the distances differ
// in the last bits).
type Scanner struct {
	opts Options

	mu     sync.RWMutex // held for reading while submitting; closed under it
	closed bool
	reqs   chan *part
	ctl    chan func()
	stop   chan struct{}
	done   chan struct{}

	closeOnce sync.Once
	closeErr  error
	failed    atomic.Pointer[error]
	st        counters

	// Set before NewScanner returns, read-only after.
	info   deviceInfo
	budget int64

	// Owned by the device goroutine.
	dev         device
	res         *residency
	pending     []*part
	scratch     devPtr
	scratchSize int64
	in, out     []byte
	lists       map[int32]listState
}

// request is one Scan call; part a run of its queries that goes into one
// batch.
type request struct {
	ix      *ivf.Index
	queries []float32
	probes  [][]ivf.Probe
	k       int
	res     []queryResult
	wg      sync.WaitGroup
	mu      sync.Mutex
	err     error
}

type part struct {
	req    *request
	q0, q1 int
}

func (p *part) n() int { return p.q1 - p.q0 }

func (p *part) finish(err error) {
	if err != nil {
		p.req.mu.Lock()
		if p.req.err == nil {
			p.req.err = err
		}
		p.req.mu.Unlock()
	}
	p.req.wg.Done()
}

// queryResult is what the device goroutine hands back for one query.
type queryResult struct {
	gpu   []ivf.Hit   // best first
	cpu   []ivf.Probe // lists that are not resident: the CPU scans them whole
	tails []tailScan  // rows appended since upload: the CPU scans them
}

// NewScanner opens CUDA device opts.Device, loads the kernels and starts
// the goroutine that owns them. Without the cuda build tag it returns
// ErrNotBuilt.
func NewScanner(opts Options) (*Scanner, error) { return newScanner(opts, openDevice) }

func newScanner(opts Options, open openFunc) (*Scanner, error) {
	opts.EnsureDefaults()
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	s := &Scanner{
		opts:  opts,
		reqs:  make(chan *part, 256),
		ctl:   make(chan func()),
		stop:  make(chan struct{}),
		done:  make(chan struct{}),
		lists: map[int32]listState{},
	}
	ready := make(chan error, 1)
	go s.loop(open, ready)
	if err := <-ready; err != nil {
		<-s.done
		return nil, err
	}
	return s, nil
}

// Scan implements ivf.Scanner.
func (s *Scanner) Scan(ix *ivf.Index, queries []float32, probes [][]ivf.Probe, k int, out [][]ivf.Hit) error {
	if err := check(ix, queries, probes, k, out); err != nil {
		return err
	}
	nq := len(probes)
	if nq == 0 {
		return nil
	}
	if p := s.failed.Load(); p != nil {
		return *p
	}
	s.st.requests.Add(1)
	s.st.queries.Add(int64(nq))
	if !deviceFits(ix.Dim(), k, ix.Metric()) {
		s.st.cpuQueries.Add(int64(nq))
		return ivf.CPUScanner{}.Scan(ix, queries, probes, k, out)
	}
	r := &request{ix: ix, queries: queries, probes: probes, k: k, res: make([]queryResult, nq)}
	for q0 := 0; q0 < nq; q0 += s.opts.MaxBatch {
		p := &part{req: r, q0: q0, q1: min(nq, q0+s.opts.MaxBatch)}
		r.wg.Add(1)
		if err := s.submit(p); err != nil {
			p.finish(err)
			break
		}
	}
	r.wg.Wait()
	if r.err != nil {
		return r.err
	}
	return s.finish(r, out)
}

// check validates a Scan's arguments against the index.
func check(ix *ivf.Index, queries []float32, probes [][]ivf.Probe, k int, out [][]ivf.Hit) error {
	if ix == nil || !ix.Trained() {
		return ivf.ErrNotTrained
	}
	if k < 1 || k > ivf.MaxK {
		return fmt.Errorf("%w: got %d", ivf.ErrBadK, k)
	}
	d := ix.Dim()
	if len(queries) != len(probes)*d {
		return fmt.Errorf("%w: %d floats for %d queries of dim %d", ErrBadRequest, len(queries), len(probes), d)
	}
	if len(out) < len(probes) {
		return fmt.Errorf("%w: %d result slots for %d queries", ErrBadRequest, len(out), len(probes))
	}
	nlist := ix.NList()
	for i, ps := range probes {
		for _, p := range ps {
			if p.List < 0 || int(p.List) >= nlist {
				return fmt.Errorf("%w: query %d probes list %d of %d", ErrBadRequest, i, p.List, nlist)
			}
		}
	}
	return nil
}

func (s *Scanner) submit(p *part) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return ErrClosed
	}
	s.reqs <- p
	return nil
}

// do runs f on the device goroutine and returns its error.
func (s *Scanner) do(f func() error) error {
	errc := make(chan error, 1)
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return ErrClosed
	}
	s.ctl <- func() { errc <- f() }
	s.mu.RUnlock()
	return <-errc
}

// finish does the CPU side of a request: the lists the device does not
// hold and the tails, merged with the GPU hits.
func (s *Scanner) finish(r *request, out [][]ivf.Hit) error {
	ix := r.ix
	d := ix.Dim()
	sq := ix.Quantizer()
	var top *ivf.TopK
	var a []float32
	tmp := make([][]ivf.Hit, 1)
	for qi := range r.res {
		res := &r.res[qi]
		if len(res.cpu) == 0 && len(res.tails) == 0 {
			out[qi] = append(out[qi][:0], res.gpu...)
			continue
		}
		q := r.queries[qi*d : (qi+1)*d]
		var cpuHits, tailHits []ivf.Hit
		if len(res.cpu) > 0 {
			tmp[0] = nil
			if err := (ivf.CPUScanner{}).Scan(ix, q, [][]ivf.Probe{res.cpu}, r.k, tmp); err != nil {
				return err
			}
			cpuHits = tmp[0]
		}
		if len(res.tails) > 0 {
			if top == nil {
				top, a = ivf.NewTopK(r.k), make([]float32, d)
			}
			top.Reset(r.k)
			var qmin float32
			if ix.Metric() != ivf.L2 {
				qmin = dot(q, sq.Min)
			}
			rows := 0
			for _, t := range res.tails {
				rows += scanTail(ix, sq, q, qmin, t, top, a)
			}
			s.st.tailScans.Add(int64(len(res.tails)))
			s.st.tailRows.Add(int64(rows))
			tailHits = top.Sorted(nil)
		}
		out[qi] = mergeHits(out[qi], r.k, res.gpu, cpuHits, tailHits)
	}
	return nil
}

// Preload makes every list of ix resident that fits the budget, in list
// order, so that the first searches find them there. Lists added to ix
// later become resident when a search first probes them.
func (s *Scanner) Preload(ix *ivf.Index) error {
	if ix == nil || !ix.Trained() {
		return ivf.ErrNotTrained
	}
	return s.do(func() error {
		if p := s.failed.Load(); p != nil {
			return *p
		}
		if err := s.res.preload(ix); err != nil {
			return s.fail(err)
		}
		return nil
	})
}

// Forget frees the device memory held for ix (a dropped collection). A
// later Scan of ix uploads it again.
func (s *Scanner) Forget(ix *ivf.Index) error {
	return s.do(func() error {
		s.res.forget(ix)
		return nil
	})
}

// Stats returns the scanner's counters.
func (s *Scanner) Stats() Stats {
	st := s.st.snapshot()
	st.Device = s.info.Name
	st.BudgetBytes = s.budget
	return st
}

// Close fails queued and later Scans with ErrClosed, frees the device
// memory and destroys the CUDA context. It waits for the batch in flight.
func (s *Scanner) Close() error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		s.mu.Unlock()
		close(s.stop)
	})
	<-s.done
	return s.closeErr
}

// fail records a device failure: later Scans return it.
func (s *Scanner) fail(err error) error {
	err = fmt.Errorf("%w: %w", ErrDevice, err)
	s.failed.CompareAndSwap(nil, &err)
	return err
}

// loop is the device goroutine.
func (s *Scanner) loop(open openFunc, ready chan<- error) {
	defer close(s.done)
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	dev, err := open(s.opts)
	if err != nil {
		ready <- err
		return
	}
	s.dev = dev
	s.info = dev.info()
	s.budget = budgetFor(s.opts, s.info)
	s.res = newResidency(dev, s.budget, &s.st)
	ready <- nil
	defer s.shutdown()

	var tick <-chan time.Time
	if s.opts.RefreshInterval > 0 {
		t := time.NewTicker(s.opts.RefreshInterval)
		defer t.Stop()
		tick = t.C
	}
	for {
		if len(s.pending) == 0 {
			select {
			case <-s.stop:
				return
			case f := <-s.ctl:
				f()
				continue
			case <-tick:
				s.refresh()
				continue
			case p := <-s.reqs:
				s.pending = append(s.pending, p)
			}
		}
		select {
		case <-s.stop:
			return
		default:
		}
		s.runBatch(s.gather())
		select {
		case f := <-s.ctl:
			f()
		default:
		}
	}
}

func (s *Scanner) refresh() {
	if s.failed.Load() != nil {
		return
	}
	if err := s.res.refresh(); err != nil {
		s.fail(err)
	}
}

// gather takes the next batch: pending parts for the first one's index,
// then whatever arrives within MaxWait, up to MaxBatch queries. Parts for
// other indexes, or that would overflow the batch, wait in order.
func (s *Scanner) gather() []*part {
	ix := s.pending[0].req.ix
	var batch []*part
	n := 0
	take := func(p *part) bool {
		if p.req.ix == ix && (n == 0 || n+p.n() <= s.opts.MaxBatch) {
			batch = append(batch, p)
			n += p.n()
			return true
		}
		return false
	}
	rest := s.pending[:0]
	for _, p := range s.pending {
		if !take(p) {
			rest = append(rest, p)
		}
	}
	clear(s.pending[len(rest):])
	s.pending = rest
	var timeout <-chan time.Time
	if s.opts.MaxWait > 0 {
		t := time.NewTimer(s.opts.MaxWait)
		defer t.Stop()
		timeout = t.C
	}
	for n < s.opts.MaxBatch {
		var p *part
		if timeout == nil {
			select {
			case p = <-s.reqs:
			default:
				return batch
			}
		} else {
			select {
			case p = <-s.reqs:
			case <-timeout:
				return batch
			case <-s.stop:
				return batch
			}
		}
		if !take(p) {
			s.pending = append(s.pending, p)
			if p.req.ix == ix {
				return batch // full
			}
		}
	}
	return batch
}

func (s *Scanner) runBatch(batch []*part) {
	var err error
	if p := s.failed.Load(); p != nil {
		err = *p
	} else if err = s.scanBatch(batch); err != nil {
		err = s.fail(err)
	}
	for _, p := range batch {
		p.finish(err)
	}
}

// scanBatch runs one batch on the device and fills the parts' results.
func (s *Scanner) scanBatch(batch []*part) error {
	ix := batch[0].req.ix
	is, err := s.res.index(ix)
	if err != nil {
		return err
	}
	d, dp := is.dim, is.dp
	l2 := is.metric == ivf.L2
	sq := ix.Quantizer()
	nq, kmax := 0, 0
	for _, p := range batch {
		nq += p.n()
		kmax = max(kmax, p.req.k)
	}
	clear(s.lists)
	pstart := make([]int, 1, nq+1)
	ks := make([]int, 0, nq)
	var probes []probeDesc
	var rows []int
	for _, p := range batch {
		r := p.req
		for qi := p.q0; qi < p.q1; qi++ {
			res := &r.res[qi]
			q := r.queries[qi*d : (qi+1)*d]
			var qmin float32
			haveQmin := false
			for _, pr := range r.probes[qi] {
				st, ok := s.lists[pr.List]
				if !ok {
					if st, err = s.res.sync(is, int(pr.List), s.opts.MaxTail); err != nil {
						return err
					}
					s.lists[pr.List] = st
				}
				if st.view.N == 0 {
					continue
				}
				if st.res == nil {
					res.cpu = append(res.cpu, pr)
					s.st.cpuListScans.Add(1)
					continue
				}
				if st.view.N > st.n {
					res.tails = append(res.tails, tailScan{probe: pr, view: st.view, from: st.n})
				}
				if st.n == 0 {
					continue
				}
				rl := st.res
				pd := probeDesc{
					codes: rl.mem + devPtr(rl.lay.codes),
					ids:   rl.mem + devPtr(rl.lay.ids),
					n:     int32(st.n),
					list:  pr.List,
				}
				if rl.hasTomb {
					pd.tomb = rl.mem + devPtr(rl.lay.tomb)
				}
				if !l2 {
					if !haveQmin {
						qmin, haveQmin = dot(q, sq.Min), true
					}
					pd.base = pr.Dist - qmin
				}
				probes = append(probes, pd)
				rows = append(rows, st.n)
			}
			pstart = append(pstart, len(probes))
			ks = append(ks, r.k)
		}
	}
	if len(probes) == 0 {
		return nil
	}

	pl := planBlocks(pstart, rows, ks, s.info.SMs*s.opts.BlocksPerSM, max(s.opts.MinBlockRows, 2*kmax))
	lay := layoutScratch(nq, dp, len(probes), len(pl.blocks), pl.nslots, kmax)
	if err := s.ensureScratch(lay.size); err != nil {
		return err
	}
	in := grow(&s.in, int(lay.inEnd))
	bi := 0
	for _, p := range batch {
		for qi := p.q0; qi < p.q1; qi++ {
			copy(in[int(lay.queries)+4*bi*dp:], f32Bytes(p.req.queries[qi*d:(qi+1)*d]))
			bi++
		}
	}
	for i, pd := range probes {
		pd.put(in[int(lay.probes)+i*probeDescBytes:])
	}
	for i, b := range pl.blocks {
		b.put(in[int(lay.blocks)+i*blockDescBytes:])
	}
	for i, m := range pl.merges {
		m.put(in[int(lay.merges)+i*mergeDescBytes:])
	}

	t0 := time.Now()
	sc := s.scratch
	if err := s.dev.upload(sc, in); err != nil {
		return fmt.Errorf("upload batch: %w", err)
	}
	kp := topCap(kmax)
	buf := topBuf(kp)
	if err := s.dev.scan(&scanLaunch{
		queries:   sc + devPtr(lay.queries),
		centroids: is.consts + devPtr(is.cl.centroids),
		min:       is.consts + devPtr(is.cl.min),
		step:      is.consts + devPtr(is.cl.step),
		probes:    sc + devPtr(lay.probes),
		blocks:    sc + devPtr(lay.blocks),
		outDist:   sc + devPtr(lay.pDist),
		outID:     sc + devPtr(lay.pID),
		outCount:  sc + devPtr(lay.pCount),
		nblocks:   len(pl.blocks),
		dp:        dp,
		l2:        l2,
		lanes:     lanesFor(dp),
		kmax:      kmax,
		kp:        kp,
		buf:       buf,
		shared:    scanShared(kp, dp, is.metric),
	}); err != nil {
		return fmt.Errorf("launch sq8_scan: %w", err)
	}
	from, to := lay.pDist, lay.pEnd
	dOff, iOff, cOff := lay.pDist, lay.pID, lay.pCount
	if pl.needMerge {
		if err := s.dev.merge(&mergeLaunch{
			inDist:   sc + devPtr(lay.pDist),
			inID:     sc + devPtr(lay.pID),
			inCount:  sc + devPtr(lay.pCount),
			merges:   sc + devPtr(lay.merges),
			outDist:  sc + devPtr(lay.fDist),
			outID:    sc + devPtr(lay.fID),
			outCount: sc + devPtr(lay.fCount),
			nmerges:  nq,
			kmax:     kmax,
			kp:       kp,
			buf:      buf,
			shared:   mergeShared(kp),
		}); err != nil {
			return fmt.Errorf("launch sq8_merge: %w", err)
		}
		from, to = lay.fDist, lay.fEnd
		dOff, iOff, cOff = lay.fDist, lay.fID, lay.fCount
		s.st.merges.Add(1)
	}
	out := grow(&s.out, int(to-from))
	if err := s.dev.download(out, sc+devPtr(from)); err != nil {
		return fmt.Errorf("download results: %w", err)
	}
	s.st.gpuNanos.Add(int64(time.Since(t0)))

	le := binary.LittleEndian
	dOff, iOff, cOff = dOff-from, iOff-from, cOff-from
	bi = 0
	for _, p := range batch {
		for qi := p.q0; qi < p.q1; qi++ {
			row := bi
			if !pl.needMerge {
				row = -1
				if m := pl.merges[bi]; m.nslots == 1 {
					row = int(m.first)
				}
			}
			bi++
			if row < 0 {
				continue
			}
			n := int(int32(le.Uint32(out[cOff+4*int64(row):])))
			if n < 0 || n > p.req.k {
				return fmt.Errorf("device returned %d hits for k=%d", n, p.req.k)
			}
			hits := make([]ivf.Hit, n)
			for j := range hits {
				e := int64(row*kmax + j)
				hits[j] = ivf.Hit{
					ID:   le.Uint64(out[iOff+8*e:]),
					Dist: math.Float32frombits(le.Uint32(out[dOff+4*e:])),
				}
			}
			p.req.res[qi].gpu = hits
		}
	}
	var total int64
	for _, n := range rows {
		total += int64(n)
	}
	s.st.batches.Add(1)
	s.st.blocks.Add(int64(len(pl.blocks)))
	s.st.gpuRows.Add(total)
	s.st.gpuCodeBytes.Add(total * int64(dp))
	return nil
}

// ensureScratch makes the scratch allocation at least size bytes.
func (s *Scanner) ensureScratch(size int64) error {
	if size <= s.scratchSize {
		return nil
	}
	size = alignUp(max(size, s.scratchSize*5/4), 1<<20)
	if s.scratch != 0 {
		if err := s.dev.free(s.scratch); err != nil {
			return err
		}
		s.scratch, s.scratchSize = 0, 0
	}
	p, err := s.dev.alloc(size)
	if err != nil {
		return fmt.Errorf("allocate %d bytes of scratch: %w", size, err)
	}
	s.scratch, s.scratchSize = p, size
	s.st.scratchBytes.Store(size)
	return nil
}

// grow returns (*b)[:n], zeroed, reallocating when short.
func grow(b *[]byte, n int) []byte {
	if cap(*b) < n {
		*b = make([]byte, n)
	}
	x := (*b)[:n]
	clear(x)
	return x
}

// shutdown runs on the device goroutine when it stops.
func (s *Scanner) shutdown() {
	// Close set closed before stop: nothing is sent after this drain.
	for {
		select {
		case p := <-s.reqs:
			s.pending = append(s.pending, p)
			continue
		default:
		}
		break
	}
	for _, p := range s.pending {
		p.finish(ErrClosed)
	}
	s.pending = nil
	s.res.releaseAll()
	if s.scratch != 0 {
		_ = s.dev.free(s.scratch)
		s.scratch = 0
	}
	s.closeErr = s.dev.close()
}

var _ ivf.Scanner = (*Scanner)(nil)
