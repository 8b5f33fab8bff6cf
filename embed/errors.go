package embed

import "errors"

var (
	ErrNotImage    = errors.New("embed: not an image")
	ErrUnsupported = errors.New("embed: unsupported image format")
	ErrTooLarge    = errors.New("embed: image too large")
	ErrTruncated   = errors.New("embed: truncated or corrupt image")
	ErrNoRuntime   = errors.New("embed: ONNX Runtime library not found")
	ErrNoModel     = errors.New("embed: model not found")
	ErrBadModel    = errors.New("embed: not a usable ONNX image model")
	ErrClosed      = errors.New("embed: closed")
)
