//go:build faiss && !faiss_avx2

package faiss

// Debian's libfaiss-dev ships a static archive only; BLAS and LAPACK resolve
// to whatever libblas.so.3 / liblapack.so.3 the alternatives system selects
// (OpenBLAS, see scripts/setup-faiss.sh).

// #cgo LDFLAGS: /usr/lib/x86_64-linux-gnu/libfaiss.a -lblas -llapack -lgomp -lstdc++ -lm
import "C"

import "lookalike/bench"

// NativeEngine is the engine this binary runs in-process and serves with
// ServeEngine: "faiss" (Debian's generic x86-64 build).
const NativeEngine = "faiss"

func init() {
	bench.RegisterEngine(NativeEngine, func(cfg bench.EngineConfig) (bench.Engine, error) {
		return New(NativeEngine, cfg, Options{})
	})
	bench.RegisterEngine(AVX2Engine, func(cfg bench.EngineConfig) (bench.Engine, error) {
		return StartRemote(AVX2Engine, AVX2Binary(), cfg)
	})
}
