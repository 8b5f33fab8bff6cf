// Package node is a lookalike server process: the runtime of each
// collection's shards on this node (flat buffer, ivf lists, training and
// the list move), the write and search paths, the in-process gateway that
// calls shards through the same epoch-carrying interface the cluster will
// put on the network, and the HTTP API v1 with its metrics.
//
// The node reaches the cluster metadata through Metadata (the Raft
// coordinator) and its durable data through Storage (Pebble). Both are
// small interfaces declared here, so the runtime can be tested against
// in-memory versions (package nodetest) and run against the real ones
// (adapters in this package). docs/node.md says which are real.
//
// Concurrency: searches read immutable views (the flat buffer's published
// length, ivf list views) and hold no lock while scanning; writes to one
// collection are serialised by that collection, which also orders them
// with training's list move.
package node
