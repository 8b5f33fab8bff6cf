// Package bench measures lookalike's index against exact search and
// against other engines: recall@k, queries per second and latency
// percentiles on standard datasets.
//
// The data side, in the order a run uses it:
//
//   - Datasets (LoadDataset): the built-in Fashion-MNIST from the Debian
//     package dataset-fashion-mnist ("fmnist", the data of ann-benchmarks'
//     fashion-mnist-784-euclidean), its seeded random rotation
//     ("fmnist-rot", on which 8-bit quantization is no longer lossless), or
//     TEXMEX .fvecs/.bvecs/.ivecs files. Readers for those formats and for
//     MNIST's IDX format validate everything and never trust a header's
//     sizes for allocation.
//   - Synthetic data (GaussianMixture, GenerateFiles): a seeded mixture of
//     low-rank Gaussian clusters, streamed to .fvecs files.
//   - Ground truth (GroundTruth): exact neighbours by brute force on all
//     cores, cached on disk under DefaultCacheDir keyed by a hash of the
//     data, so the ten minutes Fashion-MNIST takes are spent once.
//   - Scoring (Recall, LatencyStats) and charts (PlotRecallQPS).
//
// Determinism: every generator and the rotation take a seed and give the
// same bytes on every machine and at any GOMAXPROCS. Functions that use
// several cores (Rotate, GaussianMixture, GroundTruth) own their
// goroutines and return only when all of them have ended. The readers
// return fresh slices; a Dataset from FirstQueries shares its parent's.
//
// Engines (Engine, RegisterEngine) are the other half of the package: the
// index under test and the engines it is compared with.
package bench
