package store

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

var ctx = context.Background()

func openT(t *testing.T, dir string) *Store {
	t.Helper()
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// vecOf is a deterministic vector for an internal id.
func vecOf(id uint64, dim int) []float32 {
	r := rand.New(rand.NewPCG(id, 7))
	v := make([]float32, dim)
	for i := range v {
		v[i] = float32(r.NormFloat64())
	}
	return v
}

func item(uid string, id uint64, list uint32, dim int) Item {
	return Item{UserID: uid, ID: id, List: list, Vector: vecOf(id, dim), Meta: []byte(fmt.Sprintf(`{"n":%d}`, id))}
}

func apply(t *testing.T, s *Store, b *Batch) Result {
	t.Helper()
	r, err := s.Apply(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// countKeys counts every key of a record type (all collections).
func countKeys(t *testing.T, s *Store, typ byte) int {
	t.Helper()
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte{typ}, UpperBound: []byte{typ + 1}})
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	n := 0
	for ok := it.First(); ok; ok = it.Next() {
		n++
	}
	return n
}

// listItems returns the items of a list.
func listItems(t *testing.T, s *Store, coll, list uint32) []Item {
	t.Helper()
	var out []Item
	if err := s.ScanList(ctx, coll, list, func(it Item) error { out = append(out, it); return nil }); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestRoundTrip(t *testing.T) {
	s := openT(t, t.TempDir())
	const dim = 5
	b := NewBatch(1, 0, dim)
	b.Put(item("a", 10, 2, dim))
	b.Put(item("b", 11, 2, dim))
	b.Put(item("c", 12, BufferList(3), dim))
	b.Put(Item{UserID: "d", ID: 13, List: 0, Vector: vecOf(13, dim)}) // no metadata
	r := apply(t, s, b)
	if r.Seq != 1 || len(r.Ops) != 4 || len(r.NotFound) != 0 {
		t.Fatalf("result %+v", r)
	}
	for _, want := range []Item{item("a", 10, 2, dim), item("c", 12, BufferList(3), dim), {UserID: "d", ID: 13, Vector: vecOf(13, dim)}} {
		got, err := s.GetByUserID(ctx, 1, want.UserID)
		if err != nil {
			t.Fatal(err)
		}
		if got.UserID != want.UserID || got.ID != want.ID || got.List != want.List || !slices.Equal(got.Vector, want.Vector) || string(got.Meta) != string(want.Meta) {
			t.Fatalf("got %+v, want %+v", got, want)
		}
	}
	if _, err := s.GetByUserID(ctx, 1, "zz"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("absent id: %v", err)
	}
	if _, err := s.GetByUserID(ctx, 2, "a"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("other collection: %v", err)
	}
	got := listItems(t, s, 1, 2)
	if len(got) != 2 || got[0].UserID != "a" || got[1].UserID != "b" {
		t.Fatalf("list 2: %+v", got)
	}
	lists, err := s.Lists(ctx, 1)
	if err != nil || !slices.Equal(lists, []uint32{0, 2, BufferList(3)}) {
		t.Fatalf("lists %v, %v", lists, err)
	}
	dst := make([]float32, 3*dim)
	if err := s.Source(1).Vectors([]uint64{12, 10, 13}, dst); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(dst[:dim], vecOf(12, dim)) || !slices.Equal(dst[dim:2*dim], vecOf(10, dim)) || !slices.Equal(dst[2*dim:], vecOf(13, dim)) {
		t.Fatal("Vectors returned the wrong floats")
	}
	if err := s.Source(1).Vectors([]uint64{99}, dst[:dim]); !errors.Is(err, ErrNotFound) {
		t.Fatalf("absent vector: %v", err)
	}
	m, err := s.Metrics()
	if err != nil || m.Pebble == nil || m.DiskBytes == 0 {
		t.Fatalf("metrics %+v, %v", m, err)
	}
}

func TestUpsertMovesBetweenLists(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir)
	const dim = 4
	b := NewBatch(1, 0, dim)
	b.Put(item("u", 1, 5, dim))
	b.Put(item("v", 2, 5, dim))
	apply(t, s, b)
	// Move u to list 7 under a new internal id, then again within the batch.
	b = NewBatch(1, 0, dim)
	b.Put(item("u", 3, 7, dim))
	b.Put(item("u", 4, 8, dim))
	r := apply(t, s, b)
	wantKinds := []OpKind{OpDelete, OpPut, OpDelete, OpPut}
	for i, op := range r.Ops {
		if op.Kind != wantKinds[i] {
			t.Fatalf("ops %+v", r.Ops)
		}
	}
	if r.Ops[0].Item.List != 5 || r.Ops[0].Item.ID != 1 || r.Ops[2].Item.List != 7 || r.Ops[2].Item.ID != 3 {
		t.Fatalf("deletes %+v %+v", r.Ops[0].Item, r.Ops[2].Item)
	}
	// Retried with the same internal id and list: idempotent.
	b = NewBatch(1, 0, dim)
	b.Put(item("u", 4, 8, dim))
	apply(t, s, b)
	check := func(s *Store) {
		t.Helper()
		copies := 0
		for _, l := range []uint32{5, 7, 8} {
			for _, it := range listItems(t, s, 1, l) {
				if it.UserID == "u" {
					copies++
					if it.ID != 4 || l != 8 || !slices.Equal(it.Vector, vecOf(4, dim)) {
						t.Fatalf("live copy %+v in list %d", it, l)
					}
				}
			}
		}
		if copies != 1 {
			t.Fatalf("%d copies of u", copies)
		}
		for l, want := range map[uint32][]uint64{5: {2}, 7: nil, 8: {4}} {
			if got, err := s.ListIDs(ctx, 1, l); err != nil || !slices.Equal(got, want) {
				t.Fatalf("ListIDs of list %d: %v %v, want %v", l, got, err, want)
			}
		}
		if n := countKeys(t, s, recItem); n != 2 {
			t.Fatalf("%d items stored, want 2", n)
		}
		if n := countKeys(t, s, recID); n != 2 {
			t.Fatalf("%d id entries, want 2", n)
		}
		if err := s.Source(1).Vectors([]uint64{1}, make([]float32, dim)); !errors.Is(err, ErrNotFound) {
			t.Fatalf("old internal id still readable: %v", err)
		}
	}
	check(s)
	_ = s.Close()
	check(openT(t, dir))
}

func TestInternalIDConflict(t *testing.T) {
	s := openT(t, t.TempDir())
	b := NewBatch(1, 0, 2)
	b.Put(item("a", 1, 0, 2))
	apply(t, s, b)
	b = NewBatch(1, 0, 2)
	b.Put(item("x", 5, 0, 2))
	b.Put(item("b", 1, 0, 2)) // id 1 belongs to "a"
	if _, err := s.Apply(ctx, b); !errors.Is(err, ErrInvalid) {
		t.Fatalf("reused internal id: %v", err)
	}
	if _, err := s.GetByUserID(ctx, 1, "x"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("half a failed batch stored: %v", err)
	}
	// Moving the id from "a" to "b" in one batch is allowed once "a" is gone.
	b = NewBatch(1, 0, 2)
	b.Delete("a")
	b.Put(item("b", 1, 0, 2))
	apply(t, s, b)
	if it, err := s.GetByUserID(ctx, 1, "b"); err != nil || it.ID != 1 {
		t.Fatalf("%+v %v", it, err)
	}
}

func TestDeleteStaysDeleted(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir)
	const dim = 3
	b := NewBatch(1, 0, dim)
	for i := range 100 {
		b.Put(item(fmt.Sprint("id", i), uint64(i+1), uint32(i%4), dim))
	}
	apply(t, s, b)
	if err := s.db.Flush(); err != nil { // put the items in an sstable under the deletes
		t.Fatal(err)
	}
	b = NewBatch(1, 0, dim)
	for i := 0; i < 100; i += 2 {
		b.Delete(fmt.Sprint("id", i))
	}
	b.Delete("never-there")
	r := apply(t, s, b)
	if !slices.Equal(r.NotFound, []int{50}) || len(r.Ops) != 50 {
		t.Fatalf("result: %d ops, not found %v", len(r.Ops), r.NotFound)
	}
	check := func(s *Store) {
		t.Helper()
		for i := range 100 {
			_, err := s.GetByUserID(ctx, 1, fmt.Sprint("id", i))
			if (i%2 == 0) != errors.Is(err, ErrNotFound) || (i%2 == 1 && err != nil) {
				t.Fatalf("id%d: %v", i, err)
			}
		}
		n := 0
		for l := range uint32(4) {
			for _, it := range listItems(t, s, 1, l) {
				if it.ID%2 == 1 { // ids i+1 of even i
					t.Fatalf("deleted item %+v listed", it)
				}
				n++
			}
		}
		if n != 50 {
			t.Fatalf("%d items listed, want 50", n)
		}
	}
	check(s)
	// A delete of nothing at all logs nothing.
	b = NewBatch(1, 0, dim)
	b.Delete("id0")
	if r := apply(t, s, b); r.Seq != 2 || len(r.Ops) != 0 {
		t.Fatalf("no-op delete: %+v", r)
	}
	_ = s.Close()
	s = openT(t, dir)
	check(s)
	if err := s.Compact(ctx); err != nil {
		t.Fatal(err)
	}
	check(s)
	_ = s.Close()
	check(openT(t, dir))
}

func TestDropCollection(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir)
	const dim = 4
	for coll := uint32(1); coll <= 3; coll++ {
		for sh := uint32(0); sh < 2; sh++ {
			b := NewBatch(coll, sh, dim)
			for i := range 10 {
				id := uint64(coll)*1000 + uint64(sh)*100 + uint64(i) + 1
				b.Put(item(fmt.Sprint("u", sh, "-", i), id, uint32(i%3), dim))
			}
			apply(t, s, b)
		}
		if err := s.SetIncarnation(coll, uint64(coll)); err != nil {
			t.Fatal(err)
		}
		// (A collection holds items or entries, never both; the store
		// does not mind, and the drop must delete either.)
		applyEntries(t, s, coll, []Entry{{UserID: "e", ID: 9999, Value: []byte("v")}}, nil)
	}
	ix := trainedIndex(t, dim, 2)
	if err := s.SaveIndex(ctx, 2, ix, Seqs{0: 1, 1: 1}); err != nil {
		t.Fatal(err)
	}
	if err := s.DropCollection(ctx, 2); err != nil {
		t.Fatal(err)
	}
	if err := s.Compact(ctx); err != nil {
		t.Fatal(err)
	}
	for _, typ := range recordTypes {
		for _, coll := range []uint32{1, 2, 3} {
			p := collPrefix(typ, coll)
			it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: p, UpperBound: prefixEnd(p)})
			if err != nil {
				t.Fatal(err)
			}
			has := it.First()
			_ = it.Close()
			if coll == 2 && has {
				t.Fatalf("record type %d of the dropped collection remains", typ)
			}
			if coll != 2 && !has && typ != recIndexPtr && typ != recAttach { // (TestAttachment covers attachments)
				t.Fatalf("record type %d of collection %d is gone", typ, coll)
			}
		}
	}
	if _, _, err := s.LoadIndex(ctx, 2, ivfOpts(dim)); !errors.Is(err, ErrNoIndex) {
		t.Fatalf("index after drop: %v", err)
	}
	if ents, _ := os.ReadDir(filepath.Join(dir, "index")); len(ents) != 0 {
		t.Fatalf("index files remain: %v", ents)
	}
	// The dropped collection starts over.
	b := NewBatch(2, 0, dim)
	b.Put(item("u0-0", 5, 0, dim))
	if r := apply(t, s, b); r.Seq != 1 {
		t.Fatalf("seq after drop %d", r.Seq)
	}
	if it, err := s.GetByUserID(ctx, 3, "u1-9"); err != nil || it.ID != 3110 {
		t.Fatalf("other collection: %+v %v", it, err)
	}
}

func TestInvalidBatchStoresNothing(t *testing.T) {
	s := openT(t, t.TempDir())
	const dim = 3
	good := func(i int) Item { return item(fmt.Sprint("g", i), uint64(i+1), 0, dim) }
	nan := good(9)
	nan.Vector[1] = float32(math.NaN())
	inf := good(9)
	inf.Vector[0] = float32(math.Inf(-1))
	short := good(9)
	short.Vector = short.Vector[:2]
	long := good(9)
	long.UserID = strings.Repeat("x", MaxUserIDBytes+1)
	empty := good(9)
	empty.UserID = ""
	badUTF := good(9)
	badUTF.UserID = "\xff"
	badJSON := good(9)
	badJSON.Meta = []byte(`{"a":`)
	bigMeta := good(9)
	bigMeta.Meta = []byte(`"` + strings.Repeat("m", 64<<10) + `"`)
	zero := good(9)
	zero.ID = 0
	dupID := good(9)
	dupID.ID = 1 // g0 has it
	cases := map[string]Item{
		"nan": nan, "inf": inf, "wrong dim": short, "user id too long": long, "empty user id": empty,
		"bad utf-8": badUTF, "bad json": badJSON, "meta too big": bigMeta, "internal id 0": zero, "duplicate internal id": dupID,
	}
	for name, bad := range cases {
		t.Run(name, func(t *testing.T) {
			b := NewBatch(1, 0, dim)
			b.Put(good(0))
			b.Put(good(1))
			b.Put(bad)
			b.Put(good(2))
			if _, err := s.Apply(ctx, b); !errors.Is(err, ErrInvalid) {
				t.Fatalf("want ErrInvalid, got %v", err)
			}
			for _, typ := range recordTypes {
				if n := countKeys(t, s, typ); n != 0 {
					t.Fatalf("%d records of type %d stored", n, typ)
				}
			}
		})
	}
	if _, err := s.Apply(ctx, NewBatch(1, 0, dim)); !errors.Is(err, ErrInvalid) {
		t.Fatalf("empty batch: %v", err)
	}
	b := NewBatch(1, 0, dim)
	b.Delete("")
	if _, err := s.Apply(ctx, b); !errors.Is(err, ErrInvalid) {
		t.Fatalf("delete of empty id: %v", err)
	}
	if last, _, err := s.LastSeq(1, 0); err != nil || last != 0 {
		t.Fatalf("last seq %d, %v", last, err)
	}
}

func TestLogContiguousReplayableTruncated(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir)
	const dim, n = 2, 20
	for i := 1; i <= n; i++ {
		b := NewBatch(7, 3, dim)
		b.Put(item(fmt.Sprint("u", i), uint64(i), 0, dim))
		if i > 1 {
			b.Delete(fmt.Sprint("u", i-1))
		}
		if r := apply(t, s, b); r.Seq != uint64(i) {
			t.Fatalf("batch %d got seq %d", i, r.Seq)
		}
		b = NewBatch(7, 4, dim) // another shard has its own sequence
		b.Put(item(fmt.Sprint("w", i), uint64(1000+i), 1, dim))
		if r := apply(t, s, b); r.Seq != uint64(i) {
			t.Fatalf("shard 4 batch %d got seq %d", i, r.Seq)
		}
	}
	scan := func(s *Store, from uint64) ([]uint64, error) {
		var seqs []uint64
		err := s.ScanLog(ctx, 7, 3, from, func(r Record) error {
			seqs = append(seqs, r.Seq)
			if r.Ops[0].Kind != OpPut || r.Ops[0].Item.UserID != fmt.Sprint("u", r.Seq) {
				return fmt.Errorf("record %d: %+v", r.Seq, r.Ops)
			}
			return nil
		})
		return seqs, err
	}
	for from := uint64(0); from <= n+1; from++ {
		seqs, err := scan(s, from)
		if err != nil {
			t.Fatal(err)
		}
		for i, q := range seqs {
			if q != max(from, 1)+uint64(i) {
				t.Fatalf("from %d: %v", from, seqs)
			}
		}
		if len(seqs) > 0 && seqs[len(seqs)-1] != n || len(seqs) != int(n+1-max(from, 1)) {
			t.Fatalf("from %d: %v", from, seqs)
		}
	}
	// Replaying the whole log into a map rebuilds the state.
	live := map[string]bool{}
	if err := s.ScanLog(ctx, 7, 3, 1, func(r Record) error {
		for _, op := range r.Ops {
			live[op.Item.UserID] = op.Kind == OpPut
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for u, ok := range live {
		if ok != (u == fmt.Sprint("u", n)) {
			t.Fatalf("replayed %s live=%v", u, ok)
		}
	}
	if err := s.TruncateLog(ctx, 7, 3, n+1); !errors.Is(err, ErrInvalid) {
		t.Fatalf("truncate past the end: %v", err)
	}
	if err := s.TruncateLog(ctx, 7, 3, 12); err != nil {
		t.Fatal(err)
	}
	check := func(s *Store) {
		t.Helper()
		if _, err := scan(s, 12); !errors.Is(err, ErrLogTruncated) {
			t.Fatalf("scan of truncated log: %v", err)
		}
		if seqs, err := scan(s, 13); err != nil || len(seqs) != n-12 || seqs[0] != 13 {
			t.Fatalf("after truncation: %v %v", seqs, err)
		}
		if last, tr, err := s.LastSeq(7, 3); last != n || tr != 12 || err != nil {
			t.Fatalf("last %d truncated %d %v", last, tr, err)
		}
		if last, tr, _ := s.LastSeq(7, 4); last != n || tr != 0 {
			t.Fatalf("shard 4: last %d truncated %d", last, tr)
		}
	}
	check(s)
	_ = s.Close()
	s = openT(t, dir)
	check(s)
	if err := s.TruncateLog(ctx, 7, 3, n); err != nil {
		t.Fatal(err)
	}
	if seqs, err := scan(s, n+1); err != nil || len(seqs) != 0 {
		t.Fatalf("scan past a fully truncated log: %v %v", seqs, err)
	}
	b := NewBatch(7, 3, dim)
	b.Put(item("next", 500, 0, dim))
	if r := apply(t, s, b); r.Seq != n+1 {
		t.Fatalf("seq after full truncation: %d", r.Seq)
	}
}

func TestClosed(t *testing.T) {
	s, err := Open(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	b := NewBatch(1, 0, 1)
	b.Put(item("a", 1, 0, 1))
	if _, err := s.Apply(ctx, b); !errors.Is(err, ErrClosed) {
		t.Fatalf("apply after close: %v", err)
	}
	if _, err := s.GetByUserID(ctx, 1, "a"); !errors.Is(err, ErrClosed) {
		t.Fatalf("get after close: %v", err)
	}
}

func TestOptionsValidate(t *testing.T) {
	o := Options{MaxMetaBytes: -1, MaxBatchItems: -1, CacheBytes: 1, MemTableBytes: 1}
	err := o.Validate()
	if !errors.Is(err, ErrBadOptions) || strings.Count(err.Error(), "\n") != 3 {
		t.Fatalf("want 4 problems, got %v", err)
	}
	if _, err := Open(t.TempDir(), o); !errors.Is(err, ErrBadOptions) {
		t.Fatalf("open with bad options: %v", err)
	}
}
