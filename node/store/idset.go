package store

import (
	"encoding/binary"
	"slices"

	"github.com/cockroachdb/pebble/v2"
)

// maxIDRuns bounds the runs an idSet keeps; past it the set folds them
// into its floor, which stays correct (more ids get looked up) and small.
const maxIDRuns = 4096

// idSet knows, per collection, which internal ids cannot be held, so that
// Apply need not look up each new item's id in the id index (for new
// items that lookup misses down to sstable blocks, and was half of
// Apply's time). An id is free by construction when it is above floor —
// the highest id in the id index when the set was loaded — and in none of
// the runs of ids written since. Internal ids come from increasing ranges
// (decision 10), so the runs coalesce and stay few even when concurrent
// batches commit out of allocation order. Any other id is looked up as
// before. The set lives in memory only, under writeMu; Open rebuilds it
// lazily from the id index, so the on-disk format is unchanged.
type idSet struct {
	floor uint64
	runs  []idRun // sorted, disjoint, not adjacent
}

// idRun is the ids lo..hi, inclusive.
type idRun struct{ lo, hi uint64 }

// loadIDSet reads the highest internal id of a collection's id index.
func (s *Store) loadIDSet(coll uint32) (*idSet, error) {
	p := collPrefix(recID, coll)
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: p, UpperBound: prefixEnd(p)})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	set := &idSet{}
	if it.Last() {
		k := it.Key()
		if len(k) != len(p)+8 {
			return nil, ErrCorrupt
		}
		set.floor = binary.BigEndian.Uint64(k[len(p):])
	}
	return set, it.Error()
}

// free reports whether id is certainly not held. False means unknown.
func (s *idSet) free(id uint64) bool {
	if id <= s.floor {
		return false
	}
	i, _ := slices.BinarySearchFunc(s.runs, id, func(r idRun, id uint64) int {
		switch {
		case r.hi < id:
			return -1
		case r.lo > id:
			return 1
		}
		return 0
	})
	return i == len(s.runs) || s.runs[i].lo > id
}

// add records ids as written. It sorts ids.
func (s *idSet) add(ids []uint64) {
	if len(ids) == 0 {
		return
	}
	slices.Sort(ids)
	for i := 0; i < len(ids); {
		j := i + 1
		for j < len(ids) && ids[j] <= ids[j-1]+1 {
			j++
		}
		s.addRun(idRun{ids[i], ids[j-1]})
		i = j
	}
	if len(s.runs) > maxIDRuns {
		s.floor = max(s.floor, s.runs[len(s.runs)-1].hi)
		s.runs = s.runs[:0]
	}
}

func (s *idSet) addRun(r idRun) {
	if r.hi <= s.floor {
		return
	}
	r.lo = max(r.lo, s.floor+1)
	// i: first run that could touch r (its hi+1 >= r.lo).
	i, _ := slices.BinarySearchFunc(s.runs, r.lo, func(x idRun, lo uint64) int {
		if x.hi+1 < lo {
			return -1
		}
		return 1
	})
	j := i
	for j < len(s.runs) && s.runs[j].lo <= r.hi+1 {
		r.lo = min(r.lo, s.runs[j].lo)
		r.hi = max(r.hi, s.runs[j].hi)
		j++
	}
	s.runs = slices.Replace(s.runs, i, j, r)
	// A run that reaches down to floor+1 folds into the floor.
	if len(s.runs) > 0 && s.runs[0].lo == s.floor+1 {
		s.floor = s.runs[0].hi
		s.runs = slices.Delete(s.runs, 0, 1)
	}
}
