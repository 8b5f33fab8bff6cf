// Package hostmath compiles the kernels' SQ8 arithmetic (cuda/kernels/sq8.h)
// for the CPU with cgo, so that tests without a GPU check the exact
// expressions the GPU evaluates: against ivf's CPU scanner (hostmath_test.go)
// and inside the fake device that package cuda's tests run the host logic
// on. It is a test harness, not a search kernel: it is slow (one cgo call
// per batch of rows, scalar C) and needs cgo; without cgo it is empty.
package hostmath
