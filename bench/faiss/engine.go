//go:build faiss

package faiss

// #cgo CXXFLAGS: -std=c++17 -O2
// #include <stdlib.h>
// #include "faiss_wrapper.h"
import "C"

import (
	"fmt"
	"time"
	"unsafe"

	"lookalike/bench"
	"lookalike/ivf"
)

// Options are the FAISS engine's own settings beyond bench.EngineConfig.
type Options struct {
	// TrainThreads is the OpenMP thread count for training and adding.
	// 0 (the default) is OpenMP's default: OMP_NUM_THREADS, or all cores,
	// which is what FAISS uses unless told otherwise.
	TrainThreads int
	// SearchThreads is the OpenMP thread count for a search. 0 (the
	// default) means 1: one thread per query, as Milvus runs them.
	SearchThreads int
}

// EnsureDefaults fills in the defaults.
func (o *Options) EnsureDefaults() {
	if o.SearchThreads == 0 {
		o.SearchThreads = 1
	}
}

// Engine is FAISS's IndexIVFScalarQuantizer(QT_8bit) behind bench.Engine.
// Build once, then Search from one goroutine at a time; it is not safe for
// concurrent use.
type Engine struct {
	name   string
	cfg    bench.EngineConfig
	ix     *C.lk_faiss_index
	built  bool
	trainT time.Duration
	addT   time.Duration
	q      []float32 // query copy for Cosine
	dist   []float32
	labels []int64
}

var (
	_ bench.Engine = (*Engine)(nil)
	_ interface {
		BuildTimes() (train, add time.Duration)
	} = (*Engine)(nil) // bench.BuildTimer
)

// New makes an untrained FAISS engine that reports itself as name. For
// Cosine it normalises copies of all vectors and searches by inner product.
// cfg.Refine is ignored: IVF_SQ8 has no refine step. Only the low 31 bits
// of cfg.Seed reach FAISS (its seed is an int).
func New(name string, cfg bench.EngineConfig, opt Options) (*Engine, error) {
	opt.EnsureDefaults()
	var metric C.int
	switch cfg.Metric {
	case ivf.L2:
		metric = C.LK_FAISS_L2
	case ivf.IP, ivf.Cosine:
		metric = C.LK_FAISS_IP
	default:
		return nil, fmt.Errorf("faiss: %w: %v", ivf.ErrUnknownMetric, cfg.Metric)
	}
	if cfg.Dim <= 0 || cfg.NList <= 0 || opt.TrainThreads < 0 || opt.SearchThreads < 0 {
		return nil, fmt.Errorf("faiss: %w: dim %d, nlist %d, threads %d/%d", ivf.ErrBadOptions,
			cfg.Dim, cfg.NList, opt.TrainThreads, opt.SearchThreads)
	}
	e := &Engine{name: name, cfg: cfg}
	if msg := C.lk_faiss_new(C.int(cfg.Dim), C.int(cfg.NList), metric, C.int(cfg.Seed&0x7fffffff), &e.ix); msg != nil {
		return nil, cError(msg)
	}
	C.lk_faiss_set_threads(e.ix, C.int(opt.TrainThreads), C.int(opt.SearchThreads))
	return e, nil
}

// cError turns a wrapper error string into an error and frees it.
func cError(msg *C.char) error {
	defer C.free(unsafe.Pointer(msg))
	return fmt.Errorf("%w: %s", ErrLibrary, C.GoString(msg))
}

// Name is the name given to New.
func (e *Engine) Name() string { return e.name }

// Build trains on train and adds base (ids = row numbers).
func (e *Engine) Build(train, base []float32) error {
	if e.ix == nil {
		return ErrClosed
	}
	if e.built {
		return fmt.Errorf("faiss: %w", ivf.ErrTrained)
	}
	d := e.cfg.Dim
	if len(train)%d != 0 || len(base)%d != 0 {
		return fmt.Errorf("faiss: %w: %d training and %d base floats are not rows of %d", ivf.ErrDimension, len(train), len(base), d)
	}
	if n := len(train) / d; n < e.cfg.NList {
		return fmt.Errorf("faiss: %w: %d rows for nlist %d", ivf.ErrTooFewPoints, n, e.cfg.NList)
	}
	if e.cfg.Metric == ivf.Cosine {
		train, base = normalizedCopy(train, d), normalizedCopy(base, d)
	}
	t0 := time.Now()
	if err := e.train(train); err != nil {
		return err
	}
	t1 := time.Now()
	if err := e.add(base); err != nil {
		return err
	}
	e.trainT, e.addT = t1.Sub(t0), time.Since(t1)
	e.built = true
	return nil
}

// BuildTimes are the durations of FAISS's train and add in Build (cosine
// normalisation left out); Engine implements bench.BuildTimer.
func (e *Engine) BuildTimes() (train, add time.Duration) { return e.trainT, e.addT }

// train trains FAISS on rows of x, as they are.
func (e *Engine) train(x []float32) error {
	if len(x) == 0 {
		return nil
	}
	if msg := C.lk_faiss_train(e.ix, C.int64_t(len(x)/e.cfg.Dim), (*C.float)(unsafe.Pointer(&x[0]))); msg != nil {
		return cError(msg)
	}
	return nil
}

// add adds rows of x, as they are; FAISS refuses them before training.
func (e *Engine) add(x []float32) error {
	if len(x) == 0 {
		return nil
	}
	if msg := C.lk_faiss_add(e.ix, C.int64_t(len(x)/e.cfg.Dim), (*C.float)(unsafe.Pointer(&x[0]))); msg != nil {
		return cError(msg)
	}
	return nil
}

// Search returns the ids of the k nearest base rows of q, best first, on
// one thread (Options.SearchThreads). Fewer than k come back when the
// probed lists hold fewer than k vectors.
func (e *Engine) Search(q []float32, k, nprobe int) ([]int64, error) {
	if e.ix == nil {
		return nil, ErrClosed
	}
	if !e.built {
		return nil, fmt.Errorf("faiss: %w", ivf.ErrNotTrained)
	}
	if len(q) != e.cfg.Dim {
		return nil, fmt.Errorf("faiss: %w: got %d components, want %d", ivf.ErrDimension, len(q), e.cfg.Dim)
	}
	if k < 1 || k > ivf.MaxK {
		return nil, fmt.Errorf("faiss: %w: got %d", ivf.ErrBadK, k)
	}
	if nprobe < 1 || nprobe > e.cfg.NList {
		return nil, fmt.Errorf("faiss: %w: got %d for nlist %d", ivf.ErrBadNProbe, nprobe, e.cfg.NList)
	}
	if e.cfg.Metric == ivf.Cosine {
		e.q = append(e.q[:0], q...)
		ivf.Normalize(e.q)
		q = e.q
	}
	if cap(e.labels) < k {
		e.dist, e.labels = make([]float32, k), make([]int64, k)
	}
	dist, labels := e.dist[:k], e.labels[:k]
	if msg := C.lk_faiss_search(e.ix, (*C.float)(unsafe.Pointer(&q[0])), C.int(k), C.int(nprobe),
		(*C.float)(unsafe.Pointer(&dist[0])), (*C.int64_t)(unsafe.Pointer(&labels[0]))); msg != nil {
		return nil, cError(msg)
	}
	n := 0
	for n < k && labels[n] >= 0 {
		n++
	}
	return append([]int64(nil), labels[:n]...), nil
}

// MemoryBytes is ntotal × (code size + 8) — one SQ8 code and one int64 id
// per vector, as FAISS's inverted lists store them — plus the coarse
// quantizer's nlist × dim float centroids and the SQ8 ranges, so that it
// counts what ivf's MemoryBytes counts.
func (e *Engine) MemoryBytes() int64 {
	if e.ix == nil {
		return 0
	}
	lists := int64(C.lk_faiss_ntotal(e.ix)) * (int64(C.lk_faiss_code_size(e.ix)) + 8)
	return lists + 4*int64(e.cfg.NList*e.cfg.Dim+2*e.cfg.Dim)
}

// Close frees the index. It is safe to call more than once.
func (e *Engine) Close() error {
	C.lk_faiss_free(e.ix)
	e.ix = nil
	return nil
}

// DefaultThreads is OpenMP's default thread count in this process, the
// count that training uses when Options.TrainThreads is 0.
func DefaultThreads() int { return int(C.lk_faiss_default_threads()) }

func normalizedCopy(x []float32, dim int) []float32 {
	out := append([]float32(nil), x...)
	for i := 0; i < len(out); i += dim {
		ivf.Normalize(out[i : i+dim])
	}
	return out
}
