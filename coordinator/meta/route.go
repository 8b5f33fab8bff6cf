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
	Shard uint32   // shard id
	Epoch uint64   // the shard's epoch, sent with the call (decision 9)
	Lists []uint32 // probed lists on this shard, ascending; nil for a buffer shard (scanned in full)
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
// replica per shard with pick (nil: PickPrimary). For an untrained
// collection, or when probed is nil, every buffer shard is called with no
// lists (a flat, exact scan). Calls come back sorted by node id; missing
// lists the shards for which pick found no replica.
func (t *Table) Route(collection string, probed []uint32, pick Pick) (calls []NodeCall, missing []uint32, err error) {
	col, ok := t.colls[collection]
	if !ok {
		return nil, nil, fmt.Errorf("%w: %q", ErrUnknownCollection, collection)
	}
	if pick == nil {
		pick = PickPrimary
	}
	byNode := map[string]*NodeCall{}
	add := func(s Shard, lists []uint32) {
		node := pick(s)
		if node == "" {
			missing = append(missing, s.ID)
			return
		}
		nc := byNode[node]
		if nc == nil {
			nc = &NodeCall{Node: node}
			byNode[node] = nc
		}
		nc.Shards = append(nc.Shards, ShardLists{Shard: s.ID, Epoch: s.Epoch, Lists: lists})
	}
	if col.Centroids.IsZero() || probed == nil {
		for _, s := range col.Buffer {
			add(s, nil)
		}
	} else {
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
			add(col.Shards.Shards[s], slices.Compact(lists))
		}
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
