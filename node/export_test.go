package node

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
func (cu *CatchUp) Offer(ids []uint64) ([]uint64, error) { return cu.c.offered(cu.key, ids) }

// End ends the copy: the held ids never offered are dropped.
func (cu *CatchUp) End() error { return cu.c.endCopy(cu.key) }

// Touch records a user id as written by the stream during the copy.
func (cu *CatchUp) Touch(user string) {
	cu.c.mu.Lock()
	cu.c.touch(user)
	cu.c.mu.Unlock()
}

// DropFromLists takes an internal id out of the lists in memory only,
// leaving it stored: the mismatch a catch-up mends.
func DropFromLists(n *Node, name string, id uint64, list int32) error {
	c, err := n.collection(name)
	if err != nil {
		return err
	}
	c.mu.Lock()
	c.dropMem(id, list)
	c.mu.Unlock()
	return nil
}
