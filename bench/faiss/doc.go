// Package faiss runs FAISS's IndexIVFScalarQuantizer (QT_8bit) — the index
// behind Milvus's IVF_SQ8 — as a benchmark engine beside lookalike's own, so
// `lookalike bench ivf --compare faiss,faiss-avx2` measures both in one run.
//
// Everything but this file sits behind the build tag `faiss`: a plain
// `go build ./...` needs no FAISS. Two builds exist, because two FAISS
// archives cannot be linked into one binary (their symbols clash):
//
//   - -tags faiss links Debian's libfaiss-dev 1.7.3 (static libfaiss.a,
//     generic x86-64 without AVX2) and registers the engine "faiss"
//     in-process. It also registers "faiss-avx2", which runs the second
//     binary as a subprocess and talks to it over stdin/stdout (Remote).
//   - -tags 'faiss faiss_avx2' links libfaiss_avx2.a, built from Debian's
//     source package with FAISS_OPT_LEVEL=avx2 by scripts/build-faiss-avx2.sh
//     (which passes the archive in CGO_LDFLAGS), and registers
//     "faiss-avx2" in-process. This is the fair stand-in for Milvus's
//     knowhere, which runs AVX2/AVX-512 kernels.
//
// The C++ side is faiss_wrapper.cc, an extern "C" wrapper compiled by cgo
// that turns every C++ exception into an error string. Training and adding
// use OpenMP's default thread count (all cores, as FAISS does by default);
// search runs on one thread, as Milvus runs each query. k-means keeps FAISS's
// default clustering parameters (25 iterations, at most 256 points per
// centroid, ...) except the seed, which is EngineConfig.Seed. Its distance
// computations run on BLAS: with Debian's reference BLAS instead of OpenBLAS
// training is about 60× slower (scripts/setup-faiss.sh selects OpenBLAS).
//
// See docs/faiss.md for how to build and run both.
package faiss
