package bench

import (
	"io"
	"time"

	"lookalike/ivf"
)

// BuildTimer is implemented by engines that time training and adding
// separately; the harness reports both when it can.
type BuildTimer interface {
	BuildTimes() (train, add time.Duration)
}

func init() { RegisterEngine("ivf", newIVFEngine) }

// ivfEngine is lookalike's own index.
type ivfEngine struct {
	name       string
	closer     io.Closer
	cfg        EngineConfig
	ix         *ivf.Index
	src        ivf.VectorSource
	floatBytes int64
	train, add time.Duration
}

func newIVFEngine(cfg EngineConfig) (Engine, error) { return NewIVFEngine("ivf", cfg, nil, nil) }

// NewIVFEngine returns lookalike's index as an engine named name, scanning
// lists with scanner (nil: the CPU kernels). closer, when not nil, is closed
// with the engine (a GPU scanner).
func NewIVFEngine(name string, cfg EngineConfig, scanner ivf.Scanner, closer io.Closer) (Engine, error) {
	ix, err := ivf.New(ivf.Options{
		Dim: cfg.Dim, Metric: cfg.Metric, NList: cfg.NList, Seed: cfg.Seed,
		// The harness hands every engine the same, already sampled, rows.
		MaxPointsPerCentroid: 1 << 30,
		Scanner:              scanner,
	})
	if err != nil {
		return nil, err
	}
	return &ivfEngine{name: name, closer: closer, cfg: cfg, ix: ix}, nil
}

func (e *ivfEngine) Name() string { return e.name }

func (e *ivfEngine) Build(train, base []float32) error {
	t0 := time.Now()
	if _, err := e.ix.Train(train); err != nil {
		return err
	}
	t1 := time.Now()
	if err := e.ix.Add(seqIDs(len(base)/e.cfg.Dim), base); err != nil {
		return err
	}
	e.train, e.add = t1.Sub(t0), time.Since(t1)
	if e.cfg.Refine > 1 {
		// Refine reads exact floats: they count against this engine's memory.
		e.src = ivf.Rows{Dim: e.cfg.Dim, Data: base}
		e.floatBytes = int64(len(base)) * 4
	}
	return nil
}

func (e *ivfEngine) BuildTimes() (train, add time.Duration) { return e.train, e.add }

func (e *ivfEngine) Search(q []float32, k, nprobe int) ([]int64, error) {
	hits, err := e.ix.Search(q, ivf.SearchOptions{K: k, NProbe: nprobe, Refine: e.cfg.Refine, Source: e.src})
	if err != nil {
		return nil, err
	}
	out := make([]int64, len(hits))
	for i, h := range hits {
		out[i] = int64(h.ID)
	}
	return out, nil
}

func (e *ivfEngine) MemoryBytes() int64 { return e.ix.Stats().MemoryBytes + e.floatBytes }

func (e *ivfEngine) Close() error {
	if e.closer != nil {
		return e.closer.Close()
	}
	return nil
}

func seqIDs(n int) []uint64 {
	ids := make([]uint64, n)
	for i := range ids {
		ids[i] = uint64(i)
	}
	return ids
}
