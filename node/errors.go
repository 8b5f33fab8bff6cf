package node

import "errors"

// Sentinel errors. The HTTP layer maps each to its API code in one place
// (apiError in http.go).
var (
	ErrNoCollection  = errors.New("node: no such collection")
	ErrExists        = errors.New("node: collection already exists")
	ErrNoItem        = errors.New("node: no such item")
	ErrStaleEpoch    = errors.New("node: stale table epoch")
	ErrBadState      = errors.New("node: collection state does not allow this")
	ErrInvalid       = errors.New("node: invalid request")
	ErrOverloaded    = errors.New("node: too many requests in flight")
	ErrUnauthorized  = errors.New("node: missing or wrong key")
	ErrClosed        = errors.New("node: shutting down")
	ErrTooFewVectors = errors.New("node: too few vectors to train")
	ErrNotLeader     = errors.New("node: no raft leader")
	// Cluster data plane.
	ErrNotPrimary  = errors.New("node: not the primary of the shard")
	ErrUnavailable = errors.New("node: replica unavailable")
	ErrCutOff      = errors.New("node: cut off from the cluster")
	// Image collections.
	ErrBadImage      = errors.New("node: bad image")
	ErrImageTooLarge = errors.New("node: image too large")
	ErrModelMismatch = errors.New("node: model differs from the collection's")
	ErrNoEmbedder    = errors.New("node: model not served by this node")
	ErrCorruptRecord = errors.New("node: corrupt stored record")
)
