// Package imagebench measures image embedding: throughput and latency of
// a model behind embed's micro-batching Pipeline (one client against many,
// and by batch size), and retrieval quality as precision@k among images of
// the same category, against a raw-pixel baseline measured the same way.
//
// It works on files given as paths with a label (the category folder of
// Debian's openclipart-png in `lookalike bench embed` and `bench
// quality`); Sample picks a seeded subset. Vectors computed for quality
// are cached by model hash and file content (VectorCache), so a rerun does
// not embed again. The commands that run these, and the end-to-end import
// and search-by-image figures through a real server, are in
// cmd/lookalike (benchimage.go); the figures are in docs/benchmarks.md.
package imagebench
