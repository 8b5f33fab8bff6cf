package node

import (
	"hash/maphash"
	"math/bits"
)

// userFilter is a Bloom filter of the user ids a node holds in one
// collection. The eviction after an upsert in a cluster (every node
// drops other copies of the batch's user ids) asks it first: a user id
// it has never seen here needs no directory read, and for new ids, the
// bulk of an import, that is every one. It is exact in one direction
// only: "absent" is certain, "present" is checked against the store. It
// lives in memory, built from the store's directory the first time it is
// needed and again, twice as large, when it fills up; deletes leave
// their ids in it (a false "present" costs one directory read).
type userFilter struct {
	bits  []uint64
	mask  uint64
	n     int // ids added
	limit int // past it, false positives pass 1 %: rebuild larger
}

// userFilterK is the number of hash probes: ~1 % false positives at 10
// bits per id.
const userFilterK = 7

var userFilterSeed = maphash.MakeSeed()

func newUserFilter(expect int) *userFilter {
	m := max(1<<16, 1<<bits.Len(uint(expect*10)))
	return &userFilter{bits: make([]uint64, m/64), mask: uint64(m - 1), limit: m / 10}
}

func (f *userFilter) hashes(u string) (uint64, uint64) {
	h := maphash.String(userFilterSeed, u)
	return h, h>>33 | h<<31 | 1
}

func (f *userFilter) add(u string) {
	h1, h2 := f.hashes(u)
	for i := range uint64(userFilterK) {
		b := (h1 + i*h2) & f.mask
		f.bits[b/64] |= 1 << (b % 64)
	}
	f.n++
}

func (f *userFilter) mayHave(u string) bool {
	h1, h2 := f.hashes(u)
	for i := range uint64(userFilterK) {
		b := (h1 + i*h2) & f.mask
		if f.bits[b/64]&(1<<(b%64)) == 0 {
			return false
		}
	}
	return true
}

// full reports whether the filter should be rebuilt larger.
func (f *userFilter) full() bool { return f.n > f.limit }

// userLister is a Storage that lists a collection's user ids from its
// directory alone (PebbleStorage).
type userLister interface {
	UserIDs(coll string, fn func(string) error) error
}

// usersLocked returns the collection's user filter, building it (or
// rebuilding it larger) from the store's directory; nil when the store
// cannot list user ids. mu is held.
func (c *collection) usersLocked() *userFilter {
	f := c.users
	if f != nil && !f.full() {
		return f
	}
	ul, ok := c.n.store.(userLister)
	if !ok {
		return nil
	}
	expect := int(c.count.Load())
	if f != nil {
		expect = 2 * f.n
	}
	nf := newUserFilter(max(expect, 1<<14))
	if err := ul.UserIDs(c.meta.Name, func(u string) error { nf.add(u); return nil }); err != nil {
		c.n.log.Warn("user id filter not built", "collection", c.meta.Name, "err", err)
		c.users = nil
		return nil
	}
	c.users = nf
	return nf
}
