package store

import "errors"

// Sentinel errors. Callers test them with errors.Is.
var (
	ErrNotFound     = errors.New("store: not found")
	ErrInvalid      = errors.New("store: invalid batch")
	ErrCorrupt      = errors.New("store: corrupt record")
	ErrClosed       = errors.New("store: closed")
	ErrBadOptions   = errors.New("store: invalid options")
	ErrLogTruncated = errors.New("store: write log truncated past the requested sequence")
	ErrNoIndex      = errors.New("store: no persisted index")
)
