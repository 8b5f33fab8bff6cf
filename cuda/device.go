package cuda

// devPtr is a device address (CUdeviceptr). Offsets into an allocation are
// plain additions.
type devPtr uint64

// deviceInfo describes the GPU behind a device.
type deviceInfo struct {
	Name string
	// SMs is the number of multiprocessors; the planner aims for a few
	// blocks on each.
	SMs int
	// TotalMem and FreeMem are device memory in bytes, FreeMem at open.
	TotalMem, FreeMem int64
	// Bandwidth is the theoretical memory bandwidth in bytes per second
	// (0: unknown), for reports.
	Bandwidth float64
	// Major and Minor are the compute capability.
	Major, Minor int
}

// scanLaunch is one sq8_scan launch: blocks descriptors in one grid, each
// writing its partial slot.
type scanLaunch struct {
	queries, centroids, min, step devPtr
	probes, blocks                devPtr
	outDist, outID, outCount      devPtr
	nblocks                       int
	dp                            int
	l2                            bool
	lanes                         int
	kmax, kp, buf                 int
	shared                        int // dynamic shared memory bytes
}

// mergeLaunch is one sq8_merge launch: one block per merge descriptor.
type mergeLaunch struct {
	inDist, inID, inCount    devPtr
	merges                   devPtr
	outDist, outID, outCount devPtr
	nmerges                  int
	kmax, kp, buf            int
	shared                   int
}

// device is the little that the host logic needs from a GPU. It is
// implemented with the CUDA driver API in device_cuda.go (build tag cuda)
// and by a Go test double that runs the same descriptors through the
// shared kernel arithmetic (fake_test.go).
//
// Every method is called from the one goroutine that owns the device (and,
// for the real one, its CUDA context on a locked OS thread). Launches are
// ordered; download waits for the launches before it and reports their
// errors.
type device interface {
	info() deviceInfo
	alloc(bytes int64) (devPtr, error)
	free(p devPtr) error
	upload(dst devPtr, src []byte) error
	download(dst []byte, src devPtr) error
	scan(l *scanLaunch) error
	merge(l *mergeLaunch) error
	close() error
}

// openFunc opens a device; it runs on the goroutine that will own it.
type openFunc func(o Options) (device, error)
