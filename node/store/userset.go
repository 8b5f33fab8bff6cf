package store

import (
	"hash/maphash"
	"math/bits"

	"github.com/cockroachdb/pebble/v2"
)

// userFilter is a Bloom filter of user ids: exact in one direction only.
// "Absent" (mayHave false) is certain; "present" may be false about 1 %
// of the time at 10 bits per id, and must be checked against the
// directory. Deleting an id leaves it in the filter (a false "present"
// costs one read). Not safe for concurrent use.
//
// It is blocked: the probes of one id fall in one 512-bit block (a cache
// line), so a check costs one cache miss rather than one per probe, for
// slightly more false positives than a plain Bloom filter of the same
// size (0.97 % measured at 10 bits an id, against about 0.8 %).
type userFilter struct {
	bits   []uint64
	blocks uint64 // len(bits) / 8, a power of two
	n      int    // ids added (not one whose bits were all set already)
	limit  int    // past it, false positives pass about 1 %: rebuild larger
}

// userFilterK is the number of probes per id.
const userFilterK = 7

var userFilterSeed = maphash.MakeSeed()

// newUserFilter returns an empty filter sized for expect ids (at least
// 65,536 bits).
func newUserFilter(expect int) *userFilter {
	m := max(1<<16, 1<<bits.Len(uint(expect*10)))
	return &userFilter{bits: make([]uint64, m/64), blocks: uint64(m / 512), limit: m / 10}
}

// add adds a user id.
func (f *userFilter) add(u string) { f.addHash(maphash.String(userFilterSeed, u)) }

// addBytes is add of a user id held in b (the same hash: maphash hashes
// equal content alike), without copying it into a string.
func (f *userFilter) addBytes(b []byte) { f.addHash(maphash.Bytes(userFilterSeed, b)) }

// probes returns the first word of h's block and the bit offsets of its
// probes inside the block, 9 bits each, from a second mix of h.
func (f *userFilter) probes(h uint64) (base uint64, pos uint64) {
	return (h >> 32 & (f.blocks - 1)) * 8, h * 0x9e3779b97f4a7c15
}

// addHash sets an id's bits; it counts the id only if one of them was
// clear, so that upserts of ids already in do not fill the filter.
func (f *userFilter) addHash(h uint64) {
	base, pos := f.probes(h)
	fresh := false
	for range userFilterK {
		b := pos & 511
		pos >>= 9
		w := &f.bits[base+b/64]
		if *w&(1<<(b%64)) == 0 {
			fresh = true
			*w |= 1 << (b % 64)
		}
	}
	if fresh {
		f.n++
	}
}

// mayHave reports false when u was certainly never added.
func (f *userFilter) mayHave(u string) bool {
	base, pos := f.probes(maphash.String(userFilterSeed, u))
	for range userFilterK {
		b := pos & 511
		pos >>= 9
		if f.bits[base+b/64]&(1<<(b%64)) == 0 {
			return false
		}
	}
	return true
}

// full reports whether the filter holds more ids than it was sized for
// (its false positives then pass 1 %): it stays correct, but should be
// rebuilt larger.
func (f *userFilter) full() bool { return f.n > f.limit }

// userSet spares Apply the directory read for a put of a user id that the
// collection has never held, as idSet does for internal ids (and
// ApplyEntries the read of an entry collection's record, entries.go). With ids
// that do not sort in insertion order (the 32 random hex digits the server
// generates, UUIDs, content hashes) every such read was a seek to a
// random place in every level and in the memtable: a third of a node's
// ingest CPU, and ingest at about half the rate of ids that sort in order
// (docs/format/keys.md, "Resolution").
//
// The filter is built from a key-only scan of the directory in the
// background, the first time a collection is written after Open (and
// again, four times as large, when it fills up); until then Apply reads the
// directory as before. The scan's iterator is opened under writeMu, so it
// sees every put committed before, and the puts committed after are
// noted in pending and added when the scan ends. All fields are guarded
// by the store's writeMu; the filter lives in memory only.
type userSet struct {
	f        *userFilter // nil until the first build ends
	building bool
	pending  []string // puts committed while a build scans
}

// absent reports whether u is certainly not in the directory.
func (u *userSet) absent(userID string) bool { return u.f != nil && !u.f.mayHave(userID) }

// userSetLocked returns the collection's user set, starting its build (or
// a larger rebuild) when it has none or its filter is full. writeMu and
// the read side of closeMu are held.
func (s *Store) userSetLocked(coll uint32) *userSet {
	set := s.userSets[coll]
	if set == nil {
		set = &userSet{}
		s.userSets[coll] = set
	}
	switch {
	case set.building:
	case set.f == nil:
		s.buildUserSet(coll, set, 0)
	case set.f.full():
		// Four times the ids counted so far: rebuilds of a growing
		// collection scan its directory a few times in all, not at each
		// doubling.
		s.buildUserSet(coll, set, 4*set.f.n)
	}
	return set
}

// MayHoldUsers reports, per user id, whether the collection's directory
// may hold it; false is certain, as of the last Apply (a caller that
// orders its own writes around this call sees its own puts). ok is false
// while the collection's filter is not built yet (this starts its scan
// if none runs): the caller must read the directory for every id.
func (s *Store) MayHoldUsers(coll uint32, users []string) (may []bool, ok bool) {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	_ = s.read(func() error {
		set := s.userSetLocked(coll)
		if set.f == nil {
			return nil
		}
		may, ok = make([]bool, len(users)), true
		for i, u := range users {
			may[i] = set.f.mayHave(u)
		}
		return nil
	})
	return may, ok
}

// addedLocked records the user ids a committed batch put. writeMu is held.
func (u *userSet) addedLocked(users []string) {
	if u.f != nil {
		for _, id := range users {
			u.f.add(id)
		}
	}
	if u.building {
		u.pending = append(u.pending, users...)
	}
}

// buildUserSet opens iterators over the collection's directory and its
// entries (an entry collection keeps its user ids there: entries.go; a
// collection has one or the other) now (writeMu held) and scans them in
// the background into a new filter sized for expect ids (0: twice the
// keys', counted first), which then replaces set's. A failed scan leaves
// the set as it was, to be tried again at a later write.
func (s *Store) buildUserSet(coll uint32, set *userSet, expect int) {
	if s.closing {
		return // Close waits for the scans under way; it starts no more
	}
	var its []*pebble.Iterator
	for _, typ := range []byte{recDir, recEntry} {
		p := collPrefix(typ, coll)
		it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: p, UpperBound: prefixEnd(p)})
		if err != nil {
			for _, it := range its {
				_ = it.Close()
			}
			return
		}
		its = append(its, it)
	}
	set.building = true
	s.bg.Add(1)
	go func() {
		defer s.bg.Done()
		f, ok := s.scanUsers(its, len(collPrefix(recDir, coll)), expect)
		s.writeMu.Lock()
		defer s.writeMu.Unlock()
		set.building = false
		if ok && s.userSets[coll] == set {
			for _, u := range set.pending {
				f.add(u)
			}
			set.f = f
		}
		set.pending = nil
	}()
}

// scanUsers adds the keys of its (each after a prefix of that length)
// to a filter sized for expect ids (0: counts the keys first, and sizes
// it for twice as many); it closes them. It gives up when the store
// closes.
func (s *Store) scanUsers(its []*pebble.Iterator, prefix, expect int) (*userFilter, bool) {
	defer func() {
		for _, it := range its {
			_ = it.Close()
		}
	}()
	if expect == 0 {
		n := 0
		for _, it := range its {
			for ok := it.First(); ok; ok = it.Next() {
				if n++; n%4096 == 0 && s.closingScans.Load() {
					return nil, false
				}
			}
			if it.Error() != nil {
				return nil, false
			}
		}
		expect = 2 * n
	}
	f := newUserFilter(expect)
	i := 0
	for _, it := range its {
		for ok := it.First(); ok; ok = it.Next() {
			if i++; i%4096 == 0 && s.closingScans.Load() {
				return nil, false
			}
			f.addBytes(it.Key()[prefix:])
		}
		if it.Error() != nil {
			return nil, false
		}
	}
	return f, true
}
