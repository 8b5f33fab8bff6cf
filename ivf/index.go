package ivf

import (
	"context"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"
)

// Index is an IVF-SQ8 index: k-means centroids split the space into lists;
// each vector is stored in its nearest centroid's list as the SQ8 code of
// its residual, with its id. Floats are not kept: refine reads them from a
// caller-supplied VectorSource.
//
// Concurrency: Train once, before anything else. After that, Search,
// SearchBatch, Add, Delete and Compact are safe for concurrent use. A
// search sees every Add and Delete that returned before it started, and
// possibly some that run concurrently with it; it never sees a torn vector.
// No lock is held while lists are scanned.
type Index struct {
	opts  Options
	model atomic.Pointer[model]
	// lists is set once, by Train or Load, before model is published.
	lists   []*List
	trainMu sync.Mutex
}

// model is the trained, immutable part of an index.
type model struct {
	nlist     int
	centroids []float32 // nlist × dim
	cnorm     []float32 // squared norms of the centroids (L2 only)
	sq        SQ8
	// The centroids quantized to SQ8 (not residuals), with each one's
	// quantization error ‖c − ĉ‖: the coarse step scans these 4× smaller
	// codes and then checks candidates exactly (see coarse).
	csq    SQ8
	ccodes []byte
	cerr   []float32
}

// New returns an empty, untrained index. It copies opts.
func New(opts Options) (*Index, error) {
	opts.EnsureDefaults()
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	return &Index{opts: opts}, nil
}

// Dim is the vector dimension.
func (ix *Index) Dim() int { return ix.opts.Dim }

// Metric is the index's metric.
func (ix *Index) Metric() Metric { return ix.opts.Metric }

// Options returns the index's options with defaults filled in.
func (ix *Index) Options() Options { return ix.opts }

// Trained reports whether Train (or Load) has completed.
func (ix *Index) Trained() bool { return ix.model.Load() != nil }

// NList is the number of lists: that of the trained model, else the
// requested one.
func (ix *Index) NList() int {
	if m := ix.model.Load(); m != nil {
		return m.nlist
	}
	return ix.opts.NList
}

// List returns list i; i must be below NList of a trained index.
func (ix *Index) List(i int) *List { return ix.lists[i] }

// Centroid returns centroid i. The caller must not modify it.
func (ix *Index) Centroid(i int) []float32 {
	m := ix.model.Load()
	d := ix.opts.Dim
	return m.centroids[i*d : (i+1)*d]
}

// Quantizer returns the trained SQ8 parameters. The caller must not modify
// them.
func (ix *Index) Quantizer() SQ8 { return ix.model.Load().sq }

// TrainReport says what Train did.
type TrainReport struct {
	NList          int           // lists trained
	RequestedNList int           // lists asked for in Options
	Points         int           // training points used (after sampling)
	Warning        string        // non-empty when NList was lowered
	Duration       time.Duration // wall time
}

// Train learns the centroids (k-means) and the SQ8 ranges (on residuals)
// from data, rows of Dim floats, sampling MaxPointsPerCentroid×NList rows
// when there are more. With fewer than MinPointsPerCentroid×NList rows,
// NList is lowered to fit and the report says so.
func (ix *Index) Train(data []float32) (TrainReport, error) {
	return ix.TrainContext(context.Background(), data)
}

// TrainContext is Train that gives up when ctx ends: k-means stops within
// one tile of 256 rows of its current pass (or one centroid of its
// k-means++ seeding), and the index stays untrained, so it can be trained
// again. It returns ctx's error.
func (ix *Index) TrainContext(ctx context.Context, data []float32) (TrainReport, error) {
	start := time.Now()
	ix.trainMu.Lock()
	defer ix.trainMu.Unlock()
	if ix.Trained() {
		return TrainReport{}, ErrTrained
	}
	d := ix.opts.Dim
	if len(data)%d != 0 {
		return TrainReport{}, fmt.Errorf("%w: %d floats are not rows of %d", ErrDimension, len(data), d)
	}
	n := len(data) / d
	rep := TrainReport{RequestedNList: ix.opts.NList, NList: ix.opts.NList}
	if n < 1 {
		return rep, fmt.Errorf("%w: no vectors", ErrTooFewPoints)
	}
	if err := checkRows(data, d); err != nil {
		return rep, err
	}
	if minN := ix.opts.MinPointsPerCentroid * ix.opts.NList; n < minN {
		rep.NList = max(1, n/ix.opts.MinPointsPerCentroid)
		rep.Warning = fmt.Sprintf("ivf: %d training points are fewer than %d per list for nlist %d; nlist lowered to %d",
			n, ix.opts.MinPointsPerCentroid, ix.opts.NList, rep.NList)
	}
	o := ix.opts
	o.NList = rep.NList
	sample := TrainingSample(data, o)
	if ix.opts.Metric == Cosine {
		sample = normalizedCopy(sample, d)
	}
	rep.Points = len(sample) / d
	spherical := ix.opts.Metric != L2
	cents := kmeans(sample, kmeansConfig{
		dim: d, k: rep.NList, iters: ix.opts.Iterations, threads: ix.opts.Threads,
		seed: ix.opts.Seed, spherical: spherical, plusplus: ix.opts.KMeansPlusPlus,
		done: ctx.Done(),
	})
	if err := ctx.Err(); err != nil {
		return rep, fmt.Errorf("ivf: training stopped: %w", err)
	}
	// SQ8 ranges on the residuals of the sample.
	labels := make([]int32, rep.Points)
	if !assignUntil(ctx.Done(), sample, d, cents, ix.opts.Metric.coarse(), ix.opts.Threads, labels, nil) {
		return rep, fmt.Errorf("ivf: training stopped: %w", ctx.Err())
	}
	res := make([]float32, len(sample))
	for i, l := range labels {
		c := cents[int(l)*d : (int(l)+1)*d]
		row := sample[i*d : (i+1)*d]
		for j := range row {
			res[i*d+j] = row[j] - c[j]
		}
	}
	m := &model{nlist: rep.NList, centroids: cents, sq: trainSQ8(res, d)}
	ix.publish(m)
	rep.Duration = time.Since(start)
	return rep, nil
}

// coarse is the metric that assigns vectors to centroids.
func (m Metric) coarse() Metric {
	if m == L2 {
		return L2
	}
	return IP
}

// publish makes a trained model visible, with empty lists.
func (ix *Index) publish(m *model) {
	d := ix.opts.Dim
	if ix.opts.Metric == L2 {
		m.cnorm = rowNorms(m.centroids, d)
	}
	m.csq = trainSQ8(m.centroids, d)
	m.ccodes = make([]byte, len(m.centroids))
	m.cerr = make([]float32, m.nlist)
	rec := make([]float32, d)
	for j := 0; j < m.nlist; j++ {
		c := m.centroids[j*d : (j+1)*d]
		m.csq.encode(c, m.ccodes[j*d:(j+1)*d])
		m.csq.decode(m.ccodes[j*d:(j+1)*d], rec)
		var e float64
		for i, x := range c {
			t := float64(x) - float64(rec[i])
			e += t * t
		}
		// Rounded up, so float error in the kernels cannot undercut it.
		m.cerr[j] = float32(math.Sqrt(e)*(1+1e-4) + 1e-6)
	}
	if ix.lists == nil {
		ix.lists = make([]*List, m.nlist)
		for i := range ix.lists {
			ix.lists[i] = newList(ix.opts.Dim)
		}
	}
	ix.model.Store(m)
}

// checkRows validates every component of rows of d floats.
func checkRows(data []float32, d int) error {
	for i := 0; i+d <= len(data); i += d {
		if err := checkVector(data[i:i+d], d); err != nil {
			return fmt.Errorf("row %d: %w", i/d, err)
		}
	}
	return nil
}

// prepare validates rows and returns them ready to index: normalised
// copies for Cosine, the input itself otherwise.
func (ix *Index) prepare(vecs []float32) ([]float32, error) {
	d := ix.opts.Dim
	if len(vecs)%d != 0 {
		return nil, fmt.Errorf("%w: %d floats are not rows of %d", ErrDimension, len(vecs), d)
	}
	if err := checkRows(vecs, d); err != nil {
		return nil, err
	}
	if ix.opts.Metric != Cosine {
		return vecs, nil
	}
	c := make([]float32, len(vecs))
	copy(c, vecs)
	for i := 0; i < len(c); i += d {
		if !Normalize(c[i : i+d]) {
			return nil, fmt.Errorf("%w: row %d is all zeros and has no direction", ErrZeroVector, i/d)
		}
	}
	return c, nil
}

// Assign returns the list each row of vecs belongs to. Rows are validated
// as by Add.
func (ix *Index) Assign(vecs []float32) ([]int32, error) {
	m := ix.model.Load()
	if m == nil {
		return nil, ErrNotTrained
	}
	p, err := ix.prepare(vecs)
	if err != nil {
		return nil, err
	}
	labels := make([]int32, len(p)/ix.opts.Dim)
	assign(p, ix.opts.Dim, m.centroids, ix.opts.Metric.coarse(), ix.opts.Threads, labels, nil)
	return labels, nil
}

// Add indexes vecs (rows of Dim floats) under ids. The batch is validated
// whole first: on error nothing is added. Ids are not checked for
// uniqueness; replacing an id is Delete then Add.
func (ix *Index) Add(ids []uint64, vecs []float32) error {
	m := ix.model.Load()
	if m == nil {
		return ErrNotTrained
	}
	d := ix.opts.Dim
	if len(vecs) != len(ids)*d {
		return fmt.Errorf("%w: %d ids but %d floats (dim %d)", ErrDimension, len(ids), len(vecs), d)
	}
	p, err := ix.prepare(vecs)
	if err != nil {
		return err
	}
	n := len(ids)
	if n == 0 {
		return nil
	}
	labels := make([]int32, n)
	assign(p, d, m.centroids, ix.opts.Metric.coarse(), ix.opts.Threads, labels, nil)
	ix.addLabeled(m, ids, p, labels)
	return nil
}

// AddToLists is Add with each row's list given (labels[i] for row i, as
// Assign returned them on an index with the same centroids): a cluster's
// replicas store what the gateway assigned without assigning again.
func (ix *Index) AddToLists(ids []uint64, vecs []float32, labels []int32) error {
	m := ix.model.Load()
	if m == nil {
		return ErrNotTrained
	}
	d := ix.opts.Dim
	if len(vecs) != len(ids)*d || len(labels) != len(ids) {
		return fmt.Errorf("%w: %d ids, %d labels, %d floats (dim %d)", ErrDimension, len(ids), len(labels), len(vecs), d)
	}
	for _, l := range labels {
		if l < 0 || int(l) >= m.nlist {
			return fmt.Errorf("%w: list %d outside 0..%d", ErrBadOptions, l, m.nlist-1)
		}
	}
	p, err := ix.prepare(vecs)
	if err != nil {
		return err
	}
	if len(ids) > 0 {
		ix.addLabeled(m, ids, p, labels)
	}
	return nil
}

// addLabeled encodes prepared rows against their lists' centroids and
// appends them.
func (ix *Index) addLabeled(m *model, ids []uint64, p []float32, labels []int32) {
	d := ix.opts.Dim
	n := len(ids)
	codes := make([]byte, n*d)
	parallelRange(n, ix.opts.Threads, func(i0, i1 int) {
		res := make([]float32, d)
		for i := i0; i < i1; i++ {
			c := m.centroids[int(labels[i])*d : (int(labels[i])+1)*d]
			for j, x := range p[i*d : (i+1)*d] {
				res[j] = x - c[j]
			}
			m.sq.encode(res, codes[i*d:(i+1)*d])
		}
	})
	// Group by list (counting sort, stable) and append each group once.
	count := make([]int, m.nlist+1)
	for _, l := range labels {
		count[l+1]++
	}
	for i := 1; i <= m.nlist; i++ {
		count[i] += count[i-1]
	}
	order := make([]int, n)
	pos := append([]int(nil), count[:m.nlist]...)
	for i, l := range labels {
		order[pos[l]] = i
		pos[l]++
	}
	gIDs := make([]uint64, n)
	gCodes := make([]byte, n*d)
	for k, i := range order {
		gIDs[k] = ids[i]
		copy(gCodes[k*d:(k+1)*d], codes[i*d:(i+1)*d])
	}
	for l := 0; l < m.nlist; l++ {
		a, b := count[l], count[l+1]
		if a < b {
			ix.lists[l].append(gIDs[a:b], gCodes[a*d:b*d])
		}
	}
}

// Delete tombstones id wherever it is and reports whether it was found.
// It scans the ids of every list (8 bytes a vector); a caller that knows
// the list uses DeleteFromList.
func (ix *Index) Delete(id uint64) bool {
	if !ix.Trained() {
		return false
	}
	found := false
	for _, l := range ix.lists {
		if l.deleteID(id) > 0 {
			found = true
		}
	}
	return found
}

// DeleteFromList tombstones id in list l and reports whether it was found.
func (ix *Index) DeleteFromList(l int, id uint64) bool {
	if !ix.Trained() || l < 0 || l >= len(ix.lists) {
		return false
	}
	return ix.lists[l].deleteID(id) > 0
}

// Compact rewrites the lists that hold tombstones without them and reports
// how many entries it reclaimed.
func (ix *Index) Compact() int {
	if !ix.Trained() {
		return 0
	}
	n := 0
	for _, l := range ix.lists {
		n += l.compact()
	}
	return n
}

// Len is the number of live (not deleted) vectors.
func (ix *Index) Len() int {
	if !ix.Trained() {
		return 0
	}
	n := 0
	for _, l := range ix.lists {
		n += l.View().Live()
	}
	return n
}

// Stats describe an index's size.
type Stats struct {
	Vectors     int   // live vectors
	Deleted     int   // tombstoned, not yet compacted
	CodeBytes   int64 // n × dim: the codes of all entries
	MemoryBytes int64 // everything held: codes and ids (capacity), tombstones, centroids, quantizer
}

// Stats reports the index's size.
func (ix *Index) Stats() Stats {
	var s Stats
	m := ix.model.Load()
	if m == nil {
		return s
	}
	for _, l := range ix.lists {
		v := l.View()
		s.Vectors += v.Live()
		s.Deleted += v.DeletedCount()
		s.CodeBytes += int64(v.N) * int64(ix.opts.Dim)
		s.MemoryBytes += v.memory()
	}
	s.MemoryBytes += 4*int64(len(m.centroids)+len(m.cnorm)+len(m.cerr)+2*len(m.sq.Min)+2*len(m.csq.Min)) + int64(len(m.ccodes))
	return s
}

// parallelRange splits 0..n into contiguous parts run on up to threads
// goroutines and waits for them.
func parallelRange(n, threads int, f func(i0, i1 int)) {
	if threads <= 1 || n < 256 {
		f(0, n)
		return
	}
	parts := min(threads, n)
	var wg sync.WaitGroup
	for p := 0; p < parts; p++ {
		wg.Add(1)
		go func(p int) {
			defer wg.Done()
			f(p*n/parts, (p+1)*n/parts)
		}(p)
	}
	wg.Wait()
}
