// Package coordinator replicates the cluster metadata (package meta's Table)
// through Raft (github.com/hashicorp/raft) and serves it to the node.
//
// The FSM decodes each log entry into a meta.Command, applies it to the
// current immutable table and swaps the result in behind an atomic pointer;
// it has no clock, no randomness and no side effects, so every replica
// reaches the same table. A domain error (unknown collection, stale epoch,
// ...) is the command's result: Propose returns it to the caller, and the
// table is unchanged. An entry that does not decode panics: a replica must
// never skip what others applied.
//
// Server runs one Raft peer: log and stable store in BoltDB
// (raft-boltdb/v2), snapshots in files, a TCP transport. A one-node server
// bootstraps itself as the only voter when its data directory is empty and
// keeps its state across restarts. A clustered server opens without
// bootstrapping; node decides from gossip when one server calls Bootstrap
// with the founding members, and the leader changes the configuration
// with AddMember (voters and non-voters; cluster.go). A follower's
// proposals go through the Options.Forward hook, which node sets to an
// HTTP call to the leader.
//
// Formats: docs/format/raft.md.
package coordinator
