//go:build cuda

package cuda

import (
	_ "embed"
	"fmt"
	"unsafe"

	"gorgonia.org/cu"
)

// The kernels, compiled by `make ptx` (scripts/cuda.mk) from
// kernels/sq8.cu. PTX for sm_80 runs on every later GPU through the
// driver's JIT; sm_90 PTX is used on compute capability 9.x.
var (
	//go:embed ptx/sq8_sm80.ptx
	ptxSM80 string
	//go:embed ptx/sq8_sm90.ptx
	ptxSM90 string
)

// cuDevice is the device on the CUDA driver API (gorgonia.org/cu). Every
// method runs on the Scanner's device goroutine, locked to the OS thread
// the context is current on.
type cuDevice struct {
	ctx     cu.CUContext
	mod     cu.Module
	scanFn  cu.Function
	mergeFn cu.Function
	inf     deviceInfo
}

// openDevice creates a context on device o.Device, current on the calling
// (locked) thread, and loads the kernels.
func openDevice(o Options) (dev device, err error) {
	n, err := cu.NumDevices()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNoDevice, err)
	}
	if o.Device >= n {
		return nil, fmt.Errorf("%w: device %d of %d", ErrNoDevice, o.Device, n)
	}
	cd, err := cu.GetDevice(o.Device)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNoDevice, err)
	}
	d := &cuDevice{}
	d.inf.Major, d.inf.Minor, err = cd.ComputeCapability()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNoDevice, err)
	}
	if d.inf.Major < 8 {
		return nil, fmt.Errorf("%w: device %d is %d.%d", ErrUnsupported, o.Device, d.inf.Major, d.inf.Minor)
	}
	d.inf.Name, _ = cd.Name()
	if d.ctx, err = cd.MakeContext(cu.SchedBlockingSync); err != nil {
		return nil, fmt.Errorf("cuda: create context: %w", err)
	}
	defer func() {
		if err != nil {
			_ = d.ctx.Destroy()
		}
	}()
	if err := cu.SetCurrentContext(d.ctx); err != nil {
		return nil, fmt.Errorf("cuda: set context: %w", err)
	}
	ptx := ptxSM80
	if d.inf.Major >= 9 {
		ptx = ptxSM90
	}
	if d.mod, err = cu.LoadData(ptx); err != nil {
		return nil, fmt.Errorf("cuda: load kernels (PTX for compute %d.%d): %w", d.inf.Major, d.inf.Minor, err)
	}
	if d.scanFn, err = d.mod.Function("sq8_scan"); err != nil {
		return nil, fmt.Errorf("cuda: kernel sq8_scan: %w", err)
	}
	if d.mergeFn, err = d.mod.Function("sq8_merge"); err != nil {
		return nil, fmt.Errorf("cuda: kernel sq8_merge: %w", err)
	}
	if d.inf.SMs, err = cd.Attribute(cu.MultiprocessorCount); err != nil {
		return nil, fmt.Errorf("cuda: device attributes: %w", err)
	}
	clock, err1 := cd.Attribute(cu.MemoryClockRate)    // kHz
	bus, err2 := cd.Attribute(cu.GlobalMemoryBusWidth) // bits
	if err1 == nil && err2 == nil {
		d.inf.Bandwidth = 2 * float64(clock) * 1e3 * float64(bus) / 8 // double data rate
	}
	if d.inf.FreeMem, d.inf.TotalMem, err = cu.MemInfo(); err != nil {
		return nil, fmt.Errorf("cuda: memory info: %w", err)
	}
	return d, nil
}

func (d *cuDevice) info() deviceInfo { return d.inf }

func (d *cuDevice) alloc(n int64) (devPtr, error) {
	p, err := cu.MemAlloc(n)
	if err != nil {
		return 0, fmt.Errorf("cuMemAlloc %d bytes: %w", n, err)
	}
	return devPtr(p), nil
}

func (d *cuDevice) free(p devPtr) error { return cu.MemFree(cu.DevicePtr(p)) }

func (d *cuDevice) upload(dst devPtr, src []byte) error {
	if len(src) == 0 {
		return nil
	}
	return cu.MemcpyHtoD(cu.DevicePtr(dst), unsafe.Pointer(&src[0]), int64(len(src)))
}

// download waits for the launches before it (legacy default stream) and
// reports their errors.
func (d *cuDevice) download(dst []byte, src devPtr) error {
	if len(dst) == 0 {
		return cu.Synchronize()
	}
	return cu.MemcpyDtoH(unsafe.Pointer(&dst[0]), cu.DevicePtr(src), int64(len(dst)))
}

// launch passes every parameter as 8 bytes: cu copies 8 bytes per
// parameter, and the kernels declare pointers and long longs only.
func launch(fn cu.Function, grid, shared int, args ...uint64) error {
	params := make([]unsafe.Pointer, len(args))
	for i := range args {
		params[i] = unsafe.Pointer(&args[i])
	}
	return fn.Launch(grid, 1, 1, threadsPerBlock, 1, 1, shared, cu.NoStream, params)
}

func b2u(b bool) uint64 {
	if b {
		return 1
	}
	return 0
}

func (d *cuDevice) scan(l *scanLaunch) error {
	return launch(d.scanFn, l.nblocks, l.shared,
		uint64(l.queries), uint64(l.centroids), uint64(l.min), uint64(l.step),
		uint64(l.probes), uint64(l.blocks),
		uint64(l.outDist), uint64(l.outID), uint64(l.outCount),
		uint64(l.dp), b2u(l.l2), uint64(l.lanes), uint64(l.kmax), uint64(l.kp), uint64(l.buf))
}

func (d *cuDevice) merge(l *mergeLaunch) error {
	return launch(d.mergeFn, l.nmerges, l.shared,
		uint64(l.inDist), uint64(l.inID), uint64(l.inCount), uint64(l.merges),
		uint64(l.outDist), uint64(l.outID), uint64(l.outCount),
		uint64(l.kmax), uint64(l.kp), uint64(l.buf))
}

func (d *cuDevice) close() error {
	err := d.mod.Unload()
	if err2 := d.ctx.Destroy(); err == nil {
		err = err2
	}
	return err
}
