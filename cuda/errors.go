package cuda

import "errors"

// Sentinel errors. Callers test them with errors.Is; messages wrap them
// with the details.
var (
	// ErrNotBuilt is returned by NewScanner in a binary built without the
	// cuda build tag.
	ErrNotBuilt = errors.New("cuda: built without the cuda build tag (go build -tags cuda)")
	// ErrNoDevice is returned when no usable CUDA device is present.
	ErrNoDevice = errors.New("cuda: no usable CUDA device")
	// ErrUnsupported is returned for a GPU older than compute capability 8.0.
	ErrUnsupported = errors.New("cuda: GPU not supported (needs compute capability 8.0 or later)")
	// ErrClosed is returned by a Scanner after Close.
	ErrClosed = errors.New("cuda: scanner closed")
	// ErrDevice wraps a failure of the device; the scanner stops using it.
	ErrDevice = errors.New("cuda: device error")
	// ErrBadOptions is returned for invalid Options.
	ErrBadOptions = errors.New("cuda: invalid options")
	// ErrBadRequest is returned for a Scan whose arguments do not fit the
	// index.
	ErrBadRequest = errors.New("cuda: bad scan request")
)
