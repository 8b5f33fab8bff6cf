//go:build faiss

package faiss

import "errors"

// Sentinel errors. Messages wrap them with the details.
var (
	// ErrLibrary wraps an exception thrown by FAISS.
	ErrLibrary = errors.New("faiss: library error")
	// ErrProtocol is a malformed or unexpected message between a Remote
	// and its server.
	ErrProtocol = errors.New("faiss: protocol error")
	// ErrRemote wraps an error that the serving process reported.
	ErrRemote = errors.New("faiss: remote engine")
	// ErrNoBinary is a missing faiss-avx2 binary.
	ErrNoBinary = errors.New("faiss: no faiss-avx2 binary")
	// ErrClosed is a call on a closed engine.
	ErrClosed = errors.New("faiss: engine is closed")
)
