package main

import (
	"lookalike/bench"
	"lookalike/cuda"
)

// The "ivf-gpu" benchmark engine: lookalike's index with its lists scanned
// by package cuda. In a binary built without -tags cuda, cuda.NewScanner
// returns cuda.ErrNotBuilt and the engine says so.
func init() {
	bench.RegisterEngine("ivf-gpu", func(cfg bench.EngineConfig) (bench.Engine, error) {
		sc, err := cuda.NewScanner(cuda.Options{})
		if err != nil {
			return nil, err
		}
		return bench.NewIVFEngine("ivf-gpu", cfg, sc, sc)
	})
}
