package store

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
)

// TestIDSetFree checks the property free relies on: an id reported free
// was never added and is above the floor it was loaded with.
func TestIDSetFree(t *testing.T) {
	for seed := range uint64(50) {
		rng := rand.New(rand.NewPCG(seed, 1))
		floor := rng.Uint64N(100)
		s := &idSet{floor: floor}
		added := map[uint64]bool{}
		for range 200 {
			// Batches of consecutive ids from a few ranges, out of order,
			// with some stragglers and duplicates.
			base := rng.Uint64N(5000) + 1
			n := rng.IntN(40) + 1
			var ids []uint64
			for i := range n {
				if rng.IntN(10) > 0 {
					ids = append(ids, base+uint64(i))
				}
			}
			if len(ids) > 0 && rng.IntN(4) == 0 {
				ids = append(ids, ids[0])
			}
			for _, id := range ids {
				added[id] = true
			}
			s.add(ids)
			if rng.IntN(8) == 0 {
				s.coalesce(rng.IntN(6) + 1)
			}
			for id := uint64(0); id < 5100; id++ {
				if s.free(id) && (added[id] || id <= floor) {
					t.Fatalf("seed %d: id %d reported free (floor %d, runs %v)", seed, id, s.floor, s.runs)
				}
			}
			for i := 1; i < len(s.runs); i++ {
				if s.runs[i].lo <= s.runs[i-1].hi+1 {
					t.Fatalf("seed %d: runs not disjoint and apart: %v", seed, s.runs)
				}
			}
		}
	}
}

// TestIDSetSequences: ids from three increasing sequences at once, each
// batch's ids a scattered two thirds of a stretch of each (an id
// directory's partitions hand out versions; the third shard's ids go
// elsewhere). Past maxIDRuns the set merges the closest runs, and the
// next ids of every sequence are still known free; folding the runs
// into the floor, as it used to, left only the highest sequence's.
func TestIDSetSequences(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	s := &idSet{}
	next := []uint64{1_000, 1_000_000, 2_000_000}
	for range 400 {
		for q := range next {
			var ids []uint64
			for range 100 {
				if rng.IntN(3) > 0 {
					ids = append(ids, next[q])
				}
				next[q]++
			}
			s.add(ids)
		}
	}
	if len(s.runs) > maxIDRuns {
		t.Fatalf("%d runs, want at most %d", len(s.runs), maxIDRuns)
	}
	for q, id := range next {
		if !s.free(id) {
			t.Errorf("sequence %d: its next id %d is not known free (floor %d, %d runs)", q, id, s.floor, len(s.runs))
		}
	}
}

// TestIDSetCoalesces: ranges handed out in order and committed out of
// order end as the floor, with no runs left.
func TestIDSetCoalesces(t *testing.T) {
	s := &idSet{floor: 10}
	for _, r := range [][2]uint64{{31, 40}, {11, 20}, {41, 50}, {21, 30}} {
		var ids []uint64
		for id := r[0]; id <= r[1]; id++ {
			ids = append(ids, id)
		}
		s.add(ids)
	}
	if s.floor != 50 || len(s.runs) != 0 {
		t.Fatalf("floor %d, runs %v; want 50 and none", s.floor, s.runs)
	}
	if s.free(50) || !s.free(51) {
		t.Fatal("free(50) or not free(51)")
	}
}

// TestInternalIDConflictBelowAndBetween: an id that is held is refused
// whether it is below the floor loaded at Open, in a run written since, or
// in a gap between runs that another batch filled; an id above everything
// is accepted.
func TestInternalIDConflictBelowAndBetween(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir)
	for _, id := range []uint64{10, 30, 20} { // committed out of order
		b := NewBatch(1, 0, 2)
		b.Put(item(fmt.Sprint("u", id), id, 0, 2))
		apply(t, s, b)
	}
	refused := func(s *Store, id uint64) {
		t.Helper()
		b := NewBatch(1, 0, 2)
		b.Put(item("new", id, 0, 2))
		if _, err := s.Apply(ctx, b); !errors.Is(err, ErrInvalid) {
			t.Fatalf("held internal id %d: %v", id, err)
		}
	}
	for _, id := range []uint64{10, 20, 30} {
		refused(s, id)
	}
	_ = s.Close()
	s = openT(t, dir)
	for _, id := range []uint64{10, 20, 30} {
		refused(s, id)
	}
	b := NewBatch(1, 0, 2)
	b.Put(item("late", 31, 0, 2))
	apply(t, s, b)
	refused(s, 31)
	// A dropped collection starts again with no ids held.
	if err := s.DropCollection(ctx, 1); err != nil {
		t.Fatal(err)
	}
	b = NewBatch(1, 0, 2)
	b.Put(item("again", 10, 0, 2))
	apply(t, s, b)
}
