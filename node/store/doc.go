// Package store is a node's durable layer: the items of its shards, the id
// directory, the per-shard write log and the pointers to persisted ivf
// index files, all in one Pebble database under a data directory.
//
// Every write goes through Apply, which validates a whole Batch first and
// then commits it as one synced Pebble batch (pebble.Sync): when Apply
// returns nil the batch is on disk, and no crash can leave part of it
// visible. The key schema is documented in docs/format/keys.md.
//
// An entry collection (a node's id directory partition) keeps entries
// instead of items: one key per user id, written by ApplyEntries, with
// no list, log or index (entries.go).
//
// The store knows nothing of the cluster: collections and shards are
// numbers chosen by the caller (the coordinator's table), and the list of an
// item is the caller's choice too. It must be the list that
// ivf.(*Index).Assign gives for a trained collection, or a flat-buffer list
// (BufferList) for an untrained one, so that replaying the log into an ivf
// index lands each item where the store keeps it.
//
// Concurrency: a Store is safe for concurrent use. Applies resolve and
// enter Pebble's commit pipeline one at a time (sequence numbers and
// upserts need a total order) and wait for the WAL sync together (group
// commit). Reads run beside them and see every batch whose Apply returned
// (and possibly one whose sync is still in flight, as with any Pebble
// write).
//
// Ingest: Apply does not look up internal ids that it knows to be free
// (above every id the collection held at Open and not written since; see
// idSet), nor user ids that a Bloom filter of the directory has never
// seen (userSet, built in the background after Open), nor read the old
// item of an upsert (the directory entry names its list and id). Figures
// in docs/format/keys.md, "Ingest".
//
// Restart: LoadIndex returns a collection's persisted ivf index and the
// log sequence of each shard it covers; replaying each shard's log after
// that (ScanLog, Replay) brings it up to date. Untrained collections have
// no index: ScanList over their flat-buffer lists (BufferList) rebuilds
// them.
package store
