package meta

import (
	"cmp"
	"fmt"
	"hash/fnv"
	"math"
	"slices"
)

// ShardLists is the part of a query that one shard serves.
type ShardLists struct {
	Shard  uint32   // shard id (in Collection.Shards, or in Collection.Buffer when Buffer is set)
	Buffer bool     // a flat buffer shard: scanned in full, exactly
	Epoch  uint64   // the shard's epoch, sent with the call (decision 9)
	Lists  []uint32 // probed lists on this shard, ascending; nil for a buffer shard
}

// NodeCall is everything a query asks of one node: one RPC.
type NodeCall struct {
	Node   string
	Shards []ShardLists // ascending by shard
}

// Pick chooses the replica of a shard that serves a read. It must return
// one of s.Replicas, or "" when none is live (the shard is then reported as
// missing: a partial answer).
type Pick func(s Shard) string

// PickPrimary picks the shard's primary. It is the one-node choice; a cluster
// picks a live in-sync replica with a current lease (decision 14).
func PickPrimary(s Shard) string { return s.Primary }

// Route groups a query's probed lists by shard and by node, choosing one
// replica per shard with pick (nil: PickPrimary). Every flat buffer shard
// of the collection is called too, with Buffer set and no lists: that is
// the whole query of an untrained collection, and it keeps a trained one
// exact while buffered vectors are still being moved to their lists
// (until RetireBuffer; the gateway drops duplicate ids when merging). For
// an untrained collection probed is ignored. Calls come back sorted by
// node id, their shards list-shards first, then buffer shards, each by
// id; missing holds, in the same order, the shards for which pick found
// no replica (a partial answer names them).
func (t *Table) Route(collection string, probed []uint32, pick Pick) (calls []NodeCall, missing []ShardLists, err error) {
	col, ok := t.colls[collection]
	if !ok {
		return nil, nil, fmt.Errorf("%w: %q", ErrUnknownCollection, collection)
	}
	if pick == nil {
		pick = PickPrimary
	}
	byNode := map[string]*NodeCall{}
	add := func(s Shard, buffer bool, lists []uint32) {
		sl := ShardLists{Shard: s.ID, Buffer: buffer, Epoch: s.Epoch, Lists: lists}
		node := pick(s)
		if node == "" {
			missing = append(missing, sl)
			return
		}
		nc := byNode[node]
		if nc == nil {
			nc = &NodeCall{Node: node}
			byNode[node] = nc
		}
		nc.Shards = append(nc.Shards, sl)
	}
	if !col.Centroids.IsZero() {
		per := make(map[uint32][]uint32)
		for _, l := range probed {
			if int(l) >= len(col.Shards.ListShard) {
				return nil, nil, fmt.Errorf("%w: list %d of %d", ErrBadNList, l, len(col.Shards.ListShard))
			}
			s := col.Shards.ListShard[l]
			per[s] = append(per[s], l)
		}
		ids := make([]uint32, 0, len(per))
		for s := range per {
			ids = append(ids, s)
		}
		slices.Sort(ids)
		for _, s := range ids {
			lists := per[s]
			slices.Sort(lists)
			add(col.Shards.Shards[s], false, slices.Compact(lists))
		}
	}
	for _, s := range col.Buffer {
		add(s, true, nil)
	}
	for _, nc := range byNode {
		calls = append(calls, *nc)
	}
	slices.SortFunc(calls, func(a, b NodeCall) int { return cmp.Compare(a.Node, b.Node) })
	return calls, missing, nil
}

// BufferShard returns the flat buffer shard (0..shards-1) of a user id:
// FNV-1a 64 of the id, modulo shards.
func BufferShard(id string, shards int) uint32 {
	h := fnv.New64a()
	h.Write([]byte(id))
	return uint32(h.Sum64() % uint64(shards))
}

// MinPointsPerList is the fewest training points per list that AutoNList
// allows (FAISS warns below 39; knowhere clamps nlist to n/39).
const MinPointsPerList = 39

// AutoNList chooses nlist for a collection of n vectors: 4·√n rounded to the
// nearest power of two (in log scale), then lowered to the largest power of
// two that leaves at least MinPointsPerList points per list, and kept within
// 1..65536. For example 10k → 256 (4√n = 400 → 512,
// lowered because 10k/512 < 39), 1M → 4096, 100M → 32768.
func AutoNList(n int) int {
	if n < 2*MinPointsPerList {
		return 1
	}
	target := 4 * math.Sqrt(float64(n))
	nlist := 1 << int(math.Round(math.Log2(target)))
	for nlist > 1 && n/nlist < MinPointsPerList {
		nlist >>= 1
	}
	return min(nlist, 1<<16)
}
