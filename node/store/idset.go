package store

import (
	"encoding/binary"
	"slices"

	"github.com/cockroachdb/pebble/v2"
)

// maxIDRuns bounds the runs an idSet keeps; past it the set merges the
// runs closest together (coalesce), which stays correct (the ids of a
// merged gap get looked up) and small.
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
		s.coalesce(maxIDRuns / 2)
	}
}

// coalesce merges the runs separated by the smallest gaps until at most
// n are left: the ids of a merged gap count as maybe held and are looked
// up if they ever come, which is rare, as a gap is mostly ids handed to
// items of shards held elsewhere. It used to fold every run into the
// floor, which made every id below the highest one written a lookup:
// where a collection's ids come from several increasing sequences at
// once (an id directory's partitions version its copies: node/dist.go,
// "Versions"), that was most new ids, a read of the id index each.
func (s *idSet) coalesce(n int) {
	if n < 1 || len(s.runs) <= n {
		return
	}
	gaps := make([]uint64, len(s.runs)-1)
	for i := 1; i < len(s.runs); i++ {
		gaps[i-1] = s.runs[i].lo - s.runs[i-1].hi
	}
	sorted := slices.Clone(gaps)
	slices.Sort(sorted)
	limit := sorted[len(s.runs)-n-1] // merging every gap up to it leaves n runs at most
	out := s.runs[:1]
	for i := 1; i < len(s.runs); i++ {
		if gaps[i-1] <= limit {
			out[len(out)-1].hi = s.runs[i].hi
		} else {
			out = append(out, s.runs[i])
		}
	}
	s.runs = out
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
