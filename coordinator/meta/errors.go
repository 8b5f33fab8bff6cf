package meta

import "errors"

// Domain errors. A command that fails with one of them leaves the table as it
// was; the coordinator returns the error to the proposer through the Raft
// future's Response. Callers test them with errors.Is; messages wrap them with
// the details.
var (
	ErrUnknownCommand    = errors.New("meta: unknown command type")
	ErrCorruptCommand    = errors.New("meta: corrupt command")
	ErrCorruptTable      = errors.New("meta: corrupt table encoding")
	ErrBadName           = errors.New("meta: invalid collection name")
	ErrBadDim            = errors.New("meta: invalid dimension")
	ErrBadMetric         = errors.New("meta: invalid metric")
	ErrBadNList          = errors.New("meta: invalid nlist")
	ErrBadReplicas       = errors.New("meta: invalid replica count")
	ErrBadShards         = errors.New("meta: invalid shard count")
	ErrBadModel          = errors.New("meta: invalid model")
	ErrCollectionExists  = errors.New("meta: collection already exists")
	ErrUnknownCollection = errors.New("meta: unknown collection")
	ErrBadNode           = errors.New("meta: invalid node")
	ErrUnknownNode       = errors.New("meta: unknown node")
	ErrNotEnoughNodes    = errors.New("meta: not enough live nodes")
	ErrBadCount          = errors.New("meta: invalid id count")
	ErrIDSpaceExhausted  = errors.New("meta: internal id space exhausted")
	ErrStaleEpoch        = errors.New("meta: stale epoch")
	ErrStaleShard        = errors.New("meta: the shard changed since the proposer read it")
	ErrBadState          = errors.New("meta: collection is not in a state that allows this")
	ErrBadShardMap       = errors.New("meta: invalid shard map")
	ErrBadChunk          = errors.New("meta: invalid blob chunk")
	ErrBlobHash          = errors.New("meta: blob content does not match its hash")
	ErrUnknownBlob       = errors.New("meta: unknown blob")
	ErrIncompleteBlob    = errors.New("meta: blob is incomplete")
)
