package node

import (
	"context"
	"time"

	"lookalike/coordinator/meta"
)

// Hooks for the external tests of this package (package node_test).

// CatchUp drives the joiner's side of a shard copy on a collection of
// this node directly, without the RPC and its cluster checks.
type CatchUp struct {
	c   *collection
	key shardKey
}

// BeginCatchUp is a copy's Begin for lists: it returns how many ids the
// node holds of them.
func BeginCatchUp(n *Node, name string, lists []int32) (*CatchUp, int, error) {
	c, err := n.collection(name)
	if err != nil {
		return nil, 0, err
	}
	cu := &CatchUp{c: c, key: shardKey{shard: 0}}
	held, err := c.beginCopy(cu.key, false, lists)
	return cu, held, err
}

// Offer answers an offer: the ids the node lacks.
func (cu *CatchUp) Offer(ids []uint64) ([]uint64, error) { return cu.c.offered(cu.key, ids, nil) }

// OfferEntries answers an offer of a partition's entries: ids[i] is a
// version of users[i]'s entry.
func (cu *CatchUp) OfferEntries(ids []uint64, users []string) ([]uint64, error) {
	return cu.c.offered(cu.key, ids, users)
}

// End ends the copy: the held ids never offered are dropped.
func (cu *CatchUp) End() error { return cu.c.endCopy(cu.key) }

// Touch records a user id as written by the stream during the copy.
func (cu *CatchUp) Touch(user string) {
	cu.c.mu.Lock()
	cu.c.touch(user)
	cu.c.mu.Unlock()
}

// Touched says whether the copy records user as written by the stream
// since it began (its copied item would then be skipped as older).
func (cu *CatchUp) Touched(user string) bool {
	cu.c.mu.Lock()
	defer cu.c.mu.Unlock()
	in := cu.c.incoming[cu.key]
	return in != nil && in.touched[user]
}

// EvictBuffered is the buffer drop's deletion of the user ids' buffered
// copies.
func EvictBuffered(n *Node, name string, users []string) (int, error) {
	c, err := n.collection(name)
	if err != nil {
		return 0, err
	}
	return c.evictBuffered(users)
}

// DropFromLists takes an internal id out of the lists in memory only,
// leaving it stored: the mismatch a catch-up mends.
func DropFromLists(n *Node, name string, id uint64, list int32) error {
	return underLock(n, name, func(c *collection) { c.dropMem(id, list) })
}

// DirRef is an id directory entry's list (dirRef).
type DirRef = dirRef

// EncodeEntry and DecodeEntry are the id directory entry's codec.
var EncodeEntry, DecodeEntry = encodeEntry, decodeEntry

// DirSettle is how long a pruned list is spared after it was added.
func (n *Node) DirSettle() time.Duration { return n.dirSettle() }

// DirNoteForeign marks the id directory partition name as having applied
// entries stamped by another node, as a replicated write or a copy does.
func (n *Node) DirNoteForeign(name string) error {
	return underLock(n, name, (*collection).noteForeign)
}

// DirApply applies directory operations (proto.DirAdd or DirPrune) to
// the id directory collection name as its primary does, at time now
// (Unix milliseconds): users[i]'s entry gets lists[i]. It returns each
// entry as it was.
func (n *Node) DirApply(name string, op uint8, users []string, lists [][]int32, now int64) ([][]byte, error) {
	c, err := n.collection(name)
	if err != nil {
		return nil, err
	}
	items := make([]WriteItem, len(users))
	keep := make([]int, len(users))
	bl := make([]int32, len(users))
	for i, u := range users {
		items[i] = dirItem(u, lists[i]...)
		keep[i], bl[i] = i, BufferList
	}
	ids, err := n.ids.take(context.Background(), len(users))
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	prior, err := c.dirMergeAt(op, items, keep, now)
	var wait func() error
	if err == nil {
		wait, err = c.applyLocked(items, bl, ids, keep, true)
	}
	c.mu.Unlock()
	if err != nil {
		return nil, err
	}
	return prior, wait()
}

// PlaceLists is the shard map a cluster commits with trained centroids.
var PlaceLists = placeLists

// ListSizes estimates the vectors per list of a trained index.
var ListSizes = listSizes

// SaveIndexLater returns a save of name's current index such as a
// training or a background save runs, to call after the collection was
// dropped: a save that outlived the drop's close.
func SaveIndexLater(n *Node, name string) (func() error, error) {
	c, err := n.collection(name)
	if err != nil {
		return nil, err
	}
	ix := c.ix.Load()
	return func() error { return c.saveIndex(ix) }, nil
}

// WriteLater returns a store write of one item to name such as a writer
// that passed its checks just before a drop makes, to call after the
// collection was dropped.
func WriteLater(n *Node, name string) (func() error, error) {
	c, err := n.collection(name)
	if err != nil {
		return nil, err
	}
	b := &Batch{Collection: name, Dim: c.meta.Dim, Puts: []Item{{UserID: "late", ID: 1 << 40, List: BufferList, Vector: make([]float32, c.meta.Dim)}}}
	return func() error {
		_, wait, err := c.applyStore(b)
		if err != nil {
			return err
		}
		return wait()
	}, nil
}

// Entries calls fn for every entry of coll (a directory partition).
func (p *PebbleStorage) Entries(coll string, fn func(Entry) error) error {
	return eachEntry(p, coll, fn)
}

// PurgeEntries drops every entry of the id directory partition name, as
// purgeUnheld does for a partition the node no longer holds.
func PurgeEntries(n *Node, name string) error {
	return underLock(n, name, (*collection).purgeEntriesLocked)
}

// MoveInLists moves an internal id from one list to another in memory
// only, leaving the store as it was: lists in memory that disagree with
// the store about where an item is.
func MoveInLists(n *Node, name string, id uint64, from, to int32) error {
	c, err := n.collection(name)
	if err != nil {
		return err
	}
	v := make([]float32, c.meta.Dim)
	if err := n.store.Vectors(name, []uint64{id}, v); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.dropMem(id, from)
	return c.ix.Load().AddToLists([]uint64{id}, v, []int32{to})
}

// underLock calls fn with collection name's lock held.
func underLock(n *Node, name string, fn func(c *collection)) error {
	c, err := n.collection(name)
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	fn(c)
	return nil
}

// EmptyGob is the empty reply a callee writes (rpc.go).
var EmptyGob = emptyGob

// Superseded is collection.superseded on a collection of this node, as
// if it had an id directory (versioned) or not.
func Superseded(n *Node, name, user string, id uint64, versioned bool) (bool, error) {
	c, err := n.collection(name)
	if err != nil {
		return false, err
	}
	rt := &route{c: &meta.Collection{}}
	if versioned {
		rt.c.IDPartitions = 1
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.superseded(rt, user, id), nil
}

// NoteEvicted records what an eviction of a versioned collection kept.
func NoteEvicted(n *Node, name, user string, keep uint64) error {
	c, err := n.collection(name)
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.noteEvicted([]string{user}, []uint64{keep})
	return nil
}
