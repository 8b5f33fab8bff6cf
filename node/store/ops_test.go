package store

import (
	"errors"
	"fmt"
	"slices"
	"testing"
)

func TestDeleteIDAndMove(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir)
	const dim = 3
	b := NewBatch(1, 0, dim)
	for i := range 6 {
		b.Put(item(fmt.Sprint("u", i), uint64(10+i), BufferList(uint32(i%2)), dim))
	}
	apply(t, s, b)

	// The move step: buffered items into trained lists, by internal id.
	b = NewBatch(1, 0, dim)
	b.Move(10, 4)
	b.Move(11, 5)
	b.Move(12, BufferList(0)) // already there: nothing to do
	b.Move(99, 4)             // absent
	b.DeleteID(13)
	b.DeleteID(98) // absent
	// Upsert by the node's own resolution: delete the old id, put a new one.
	b.DeleteID(14)
	b.Put(item("u4", 20, 5, dim))
	r := apply(t, s, b)
	if !slices.Equal(r.NotFound, []int{3, 5}) {
		t.Fatalf("not found %v", r.NotFound)
	}
	var kinds []OpKind
	for _, op := range r.Ops {
		kinds = append(kinds, op.Kind)
	}
	if want := []OpKind{OpDelete, OpPut, OpDelete, OpPut, OpDelete, OpDelete, OpPut}; !slices.Equal(kinds, want) {
		t.Fatalf("logged ops %v, want %v", kinds, want)
	}
	check := func(s *Store) {
		t.Helper()
		want := map[string][2]uint64{"u0": {10, 4}, "u1": {11, 5}, "u2": {12, uint64(BufferList(0))}, "u4": {20, 5}, "u5": {15, uint64(BufferList(1))}}
		for u, w := range want {
			it, err := s.GetByUserID(ctx, 1, u)
			if err != nil || it.ID != w[0] || uint64(it.List) != w[1] || !slices.Equal(it.Vector, vecOf(w[0], dim)) {
				t.Fatalf("%s: %+v %v, want %v", u, it, err, w)
			}
		}
		if _, err := s.GetByUserID(ctx, 1, "u3"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("u3: %v", err)
		}
		var ids []uint64
		if err := s.ScanCollection(ctx, 1, func(it Item) error { ids = append(ids, it.ID); return nil }); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(ids, []uint64{10, 11, 12, 15, 20}) {
			t.Fatalf("collection scan %v", ids)
		}
		if n := countKeys(t, s, recItem); n != 5 {
			t.Fatalf("%d items stored", n)
		}
	}
	check(s)
	_ = s.Close()
	check(openT(t, dir))
}

func TestMoveKeepsNewerDirectoryEntry(t *testing.T) {
	s := openT(t, t.TempDir())
	b := NewBatch(1, 0, 2)
	b.Put(item("a", 1, 0, 2))
	apply(t, s, b)
	// "a" is upserted to id 2; then the old id 1 (already gone) is moved.
	b = NewBatch(1, 0, 2)
	b.Put(item("a", 2, 1, 2))
	b.Move(1, 3)
	r := apply(t, s, b)
	if !slices.Equal(r.NotFound, []int{1}) {
		t.Fatalf("not found %v", r.NotFound)
	}
	if it, err := s.GetByUserID(ctx, 1, "a"); err != nil || it.ID != 2 || it.List != 1 {
		t.Fatalf("%+v %v", it, err)
	}
}

func TestCollectionID(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir)
	a, err := s.CollectionID(ctx, "alpha")
	if err != nil {
		t.Fatal(err)
	}
	bb, _ := s.CollectionID(ctx, "beta")
	a2, _ := s.CollectionID(ctx, "alpha")
	if a != 1 || bb != 2 || a2 != a {
		t.Fatalf("ids %d %d %d", a, bb, a2)
	}
	if _, err := s.CollectionID(ctx, ""); !errors.Is(err, ErrInvalid) {
		t.Fatalf("empty name: %v", err)
	}
	if err := s.DropCollection(ctx, a); err != nil {
		t.Fatal(err)
	}
	_ = s.Close()
	s = openT(t, dir)
	if a3, _ := s.CollectionID(ctx, "alpha"); a3 != 3 {
		t.Fatalf("alpha after drop got %d, want a fresh 3", a3)
	}
	if b2, _ := s.CollectionID(ctx, "beta"); b2 != bb {
		t.Fatalf("beta %d", b2)
	}
}

// The incarnation recorded for a collection survives a restart and goes
// with the collection's drop.
func TestIncarnation(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir)
	a, _ := s.CollectionID(ctx, "alpha")
	b, _ := s.CollectionID(ctx, "beta")
	if v, err := s.Incarnation(a); err != nil || v != 0 {
		t.Fatalf("before any: %d %v", v, err)
	}
	if err := s.SetIncarnation(a, 7); err != nil {
		t.Fatal(err)
	}
	if err := s.SetIncarnation(b, 9); err != nil {
		t.Fatal(err)
	}
	_ = s.Close()
	s = openT(t, dir)
	if v, err := s.Incarnation(a); err != nil || v != 7 {
		t.Fatalf("after a restart: %d %v, want 7", v, err)
	}
	if _, err := s.CollectionID(ctx, "gamma"); err != nil { // a name with none recorded
		t.Fatal(err)
	}
	if m, err := s.Incarnations(); err != nil || fmt.Sprint(m) != "map[alpha:7 beta:9]" {
		t.Fatalf("Incarnations: %v %v, want alpha 7 and beta 9", m, err)
	}
	if err := s.DropCollection(ctx, a); err != nil {
		t.Fatal(err)
	}
	if v, _ := s.Incarnation(a); v != 0 {
		t.Fatalf("after the drop: %d, want 0", v)
	}
	if v, _ := s.Incarnation(b); v != 9 {
		t.Fatalf("the other collection's after the drop: %d, want 9", v)
	}
	if m, err := s.Incarnations(); err != nil || fmt.Sprint(m) != "map[beta:9]" {
		t.Fatalf("Incarnations after the drop: %v %v, want beta 9", m, err)
	}
}
