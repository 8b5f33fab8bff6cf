package node

// userChecker is a Storage that knows, from a filter of its directory,
// which user ids a collection certainly does not hold (PebbleStorage,
// store.MayHoldUsers). The eviction after an upsert in a cluster (every
// node drops other copies of the batch's user ids) asks it first: a user
// id never held here needs no directory read, and for new ids, the bulk
// of an import, that is every one. The filter is the store's: every
// write to the store adds its user ids to it, whichever path made it, and
// it is built in the background, so the first eviction after a restart
// does not wait for a scan of the directory (it reads the directory for
// every id until the scan ends).
type userChecker interface {
	MayHoldUsers(coll string, users []string) (may []bool, ok bool)
}

// mayHoldLocked returns, per user id, whether this node may hold it;
// nil when it cannot tell (every id must be looked up). mu is held, so
// no write here comes between the answer and the caller's use of it.
func (c *collection) mayHoldLocked(users []string) []bool {
	uc, ok := c.n.store.(userChecker)
	if !ok {
		return nil
	}
	may, ok := uc.MayHoldUsers(c.meta.Name, users)
	if !ok {
		return nil
	}
	return may
}
