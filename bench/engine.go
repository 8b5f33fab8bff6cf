package bench

import (
	"fmt"
	"sort"
	"sync"

	"lookalike/ivf"
)

// EngineConfig is what every engine of a comparison gets: the same
// dimension, metric, nlist, seed and training sample.
type EngineConfig struct {
	Dim    int
	Metric ivf.Metric
	NList  int
	Seed   int64
	// Refine > 1 re-ranks the best k×Refine candidates with exact distances,
	// for engines that support it (0 or 1: off).
	Refine int
}

// Engine is an index under test. Build runs once, then Search many times
// from one goroutine (the harness measures single-thread QPS).
type Engine interface {
	// Name is the engine's name in reports: "ivf", "faiss", "faiss-avx2".
	Name() string
	// Build trains on train (rows of Dim floats; the same sample for every
	// engine) and adds base, whose ids are the row numbers 0..n-1. For
	// Cosine, vectors arrive unnormalised: the engine normalises them.
	Build(train, base []float32) error
	// Search returns the ids of the k nearest base rows of q, best first.
	Search(q []float32, k, nprobe int) ([]int64, error)
	// MemoryBytes is what the index holds for the base vectors: codes, ids
	// and anything else per vector (floats kept for refine included).
	MemoryBytes() int64
	Close() error
}

// EngineFactory makes an engine for cfg.
type EngineFactory func(cfg EngineConfig) (Engine, error)

var (
	enginesMu sync.Mutex
	engines   = map[string]EngineFactory{}
)

// RegisterEngine makes an engine available to `lookalike bench ivf
// --compare NAME`. Engines that need optional libraries (FAISS) register
// themselves from files behind their build tag.
func RegisterEngine(name string, f EngineFactory) {
	enginesMu.Lock()
	defer enginesMu.Unlock()
	engines[name] = f
}

// NewEngine makes the engine registered as name.
func NewEngine(name string, cfg EngineConfig) (Engine, error) {
	enginesMu.Lock()
	f, ok := engines[name]
	enginesMu.Unlock()
	if !ok {
		return nil, fmt.Errorf("bench: unknown engine %q (have %v; FAISS engines need a binary built with -tags faiss, see docs/benchmarks.md)", name, EngineNames())
	}
	return f(cfg)
}

// EngineNames lists the registered engines, sorted.
func EngineNames() []string {
	enginesMu.Lock()
	defer enginesMu.Unlock()
	names := make([]string, 0, len(engines))
	for n := range engines {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}
