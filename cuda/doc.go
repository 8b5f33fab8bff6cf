// Package cuda scans IVF-SQ8 lists on an NVIDIA GPU, behind the same
// ivf.Scanner interface as ivf.CPUScanner.
//
// The kernels are CUDA C (kernels/sq8.cu, arithmetic in kernels/sq8.h),
// compiled to PTX for sm_80 and sm_90 by `make ptx`, committed under ptx/
// and loaded at run time through the CUDA driver API (gorgonia.org/cu).
// Only files behind the build tag `cuda` import cu, whose package init
// exits the process when no GPU is present; without the tag the package
// builds everywhere and NewScanner returns ErrNotBuilt.
//
// Everything else — gathering concurrent Scan calls into batches, which
// lists are resident under the memory budget and how they follow Adds,
// Deletes and Compacts, the device memory layouts, cutting a batch into
// thread blocks, the CPU's share (lists that do not fit, tails appended
// since the last upload) and the final merge — is host logic in untagged
// files, written against a small device interface (device.go) and tested
// with a Go fake device that runs the kernels' arithmetic through package
// hostmath. docs/cuda.md has the design and the list of checks that need
// a GPU.
//
// Concurrency: a Scanner is safe for concurrent use. One goroutine, locked
// to its OS thread, owns the CUDA context and all device memory; callers
// never touch either.
package cuda
