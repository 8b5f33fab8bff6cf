package node

import "lookalike/node/store"

// The user filter of a collection (collection.users) is a Bloom filter
// of the user ids a node holds (store.UserFilter). The eviction after an
// upsert in a cluster (every node drops other copies of the batch's user
// ids) asks it first: a user id it has never seen here needs no
// directory read, and for new ids, the bulk of an import, that is every
// one. It is built from the store's directory the first time it is
// needed and again, twice as large, when it fills up.

// userLister is a Storage that lists a collection's user ids from its
// directory alone (PebbleStorage).
type userLister interface {
	UserIDs(coll string, fn func(string) error) error
}

// usersLocked returns the collection's user filter, building it (or
// rebuilding it larger) from the store's directory; nil when the store
// cannot list user ids. mu is held.
func (c *collection) usersLocked() *store.UserFilter {
	f := c.users
	if f != nil && !f.Full() {
		return f
	}
	ul, ok := c.n.store.(userLister)
	if !ok {
		return nil
	}
	expect := int(c.count.Load())
	if f != nil {
		expect = 2 * f.Len()
	}
	nf := store.NewUserFilter(max(expect, 1<<14))
	if err := ul.UserIDs(c.meta.Name, func(u string) error { nf.Add(u); return nil }); err != nil {
		c.n.log.Warn("user id filter not built", "collection", c.meta.Name, "err", err)
		c.users = nil
		return nil
	}
	c.users = nf
	return nf
}
