//go:build faiss && faiss_avx2

package faiss

// The AVX2 archive comes from scripts/build-faiss-avx2.sh, which puts its
// path first in CGO_LDFLAGS (cgo directives cannot name a cache directory),
// and its source tree first in CGO_CXXFLAGS together with the flags FAISS's
// CMake gives faiss_avx2 (-mavx2 -mfma -mf16c -mpopcnt; cgo refuses -mfma
// and -mf16c in a directive), so inline code in the headers matches the
// archive.

// #cgo LDFLAGS: -lblas -llapack -lgomp -lstdc++ -lm
import "C"

import "lookalike/bench"

// NativeEngine is the engine this binary runs in-process and serves with
// ServeEngine: "faiss-avx2" (FAISS built with FAISS_OPT_LEVEL=avx2).
const NativeEngine = "faiss-avx2"

func init() {
	bench.RegisterEngine(NativeEngine, func(cfg bench.EngineConfig) (bench.Engine, error) {
		return New(NativeEngine, cfg, Options{})
	})
}
