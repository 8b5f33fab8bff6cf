// Package meta is the cluster metadata of lookalike: the immutable Table that
// the coordinator replicates through Raft, the typed Commands that change it,
// and the pure routing helpers that turn a query's probed lists into calls
// to nodes.
//
// Everything here is pure: no I/O, no clock, no randomness other than a seed
// passed in, and no dependence on map iteration order. Table.Apply is a
// function of the table and the command, so every replica that applies the
// same log reaches a byte-identical table (see Table.Encode). A Table is never
// modified after it is built: a transition returns a new *Table that shares the
// unchanged parts with the old one, so readers may hold a *Table without a
// lock for as long as they like. Values reached through a Table (collections,
// shards, nodes, blobs) are shared and read-only.
//
// The wire formats (command entries, snapshot records, blob chunking) are
// documented in docs/format/raft.md.
package meta
