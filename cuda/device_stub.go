//go:build !cuda

package cuda

// openDevice without the cuda build tag: there is no device. The package
// still compiles, so callers need no build tag of their own to ask.
func openDevice(Options) (device, error) { return nil, ErrNotBuilt }
