package store

import (
	"bytes"
	"errors"
	"testing"

	"github.com/cockroachdb/pebble/v2"
)

// TestAttachment: an item's attachment is written and logged with its
// put, stays when the item moves, goes with a delete or an upsert (which
// gives the item a new internal id), survives a restart, and goes with
// its collection.
func TestAttachment(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir)
	const dim = 3
	att := func(id uint64) ([]byte, error) { return s.Attachment(ctx, 1, id) }
	b := NewBatch(1, 0, dim)
	a := item("a", 10, BufferList(0), dim)
	a.Attachment = []byte("thumb-a")
	b.Put(a)
	b.Put(item("b", 11, BufferList(0), dim)) // none
	apply(t, s, b)
	if got, err := att(10); err != nil || string(got) != "thumb-a" {
		t.Fatalf("a: %q %v", got, err)
	}
	if got, err := att(11); err != nil || got != nil {
		t.Fatalf("b: %q %v, want nil", got, err)
	}
	if _, err := att(12); !errors.Is(err, ErrNotFound) {
		t.Fatalf("absent item: %v", err)
	}
	// Item reads leave it out.
	if it, err := s.GetByUserID(ctx, 1, "a"); err != nil || it.Attachment != nil {
		t.Fatalf("GetByUserID: %+v %v", it, err)
	}

	// A move keeps it.
	b = NewBatch(1, 0, dim)
	b.Move(10, 4)
	apply(t, s, b)
	if got, err := att(10); err != nil || string(got) != "thumb-a" {
		t.Fatalf("after move: %q %v", got, err)
	}

	// An upsert under a new internal id replaces it; a delete removes it.
	b = NewBatch(1, 0, dim)
	a2 := item("a", 20, 4, dim)
	a2.Attachment = []byte("thumb-a2")
	b.Put(a2)
	c := item("c", 21, 4, dim)
	c.Attachment = []byte("thumb-c")
	b.Put(c)
	apply(t, s, b)
	b = NewBatch(1, 0, dim)
	b.Delete("c")
	apply(t, s, b)
	if _, err := att(10); !errors.Is(err, ErrNotFound) {
		t.Fatalf("old copy of a: %v", err)
	}
	if _, err := att(21); !errors.Is(err, ErrNotFound) {
		t.Fatalf("deleted c: %v", err)
	}
	if n := countKeys(t, s, recAttach); n != 1 {
		t.Fatalf("%d attachment keys, want 1 (a's new copy)", n)
	}

	// Reading the log, a put comes with its item's attachment; the puts
	// that later operations undid (a's first copy and its move, c) are
	// Gone.
	var logged [][]byte
	var gone []bool
	if err := s.ScanLog(ctx, 1, 0, 1, func(r Record) error {
		for _, op := range r.Ops {
			if op.Kind == OpPut {
				logged = append(logged, op.Item.Attachment)
				gone = append(gone, op.Gone)
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	want := [][]byte{nil, nil, nil, []byte("thumb-a2"), nil}
	wantGone := []bool{true, false, true, false, true}
	if len(logged) != len(want) {
		t.Fatalf("logged puts %q, want %q", logged, want)
	}
	for i := range want {
		if !bytes.Equal(logged[i], want[i]) || gone[i] != wantGone[i] {
			t.Fatalf("logged put %d: %q gone=%v, want %q gone=%v", i, logged[i], gone[i], want[i], wantGone[i])
		}
	}

	// A restart keeps it; dropping the collection removes it.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openT(t, dir)
	if got, err := s.Attachment(ctx, 1, 20); err != nil || string(got) != "thumb-a2" {
		t.Fatalf("after restart: %q %v", got, err)
	}
	if err := s.DropCollection(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if n := countKeys(t, s, recAttach); n != 0 {
		t.Fatalf("%d attachment keys after drop", n)
	}
}

// TestRecordVersion1: log records written before attachments (version 1)
// still decode.
func TestRecordVersion1(t *testing.T) {
	it := item("u", 7, 3, 2)
	e := encoder{}
	e.u8(1)
	e.uvarint(1)
	e.u8(uint8(OpPut))
	e.u32(it.List)
	e.u64(it.ID)
	e.itemBody(&it)
	r, err := decodeRecord(e.b, 5)
	if err != nil || len(r.Ops) != 1 || r.Ops[0].Item.UserID != "u" || r.Ops[0].Item.Attachment != nil {
		t.Fatalf("%+v %v", r, err)
	}
	e.b[0] = 3
	if _, err := decodeRecord(e.b, 5); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("version 3: %v", err)
	}
}

// TestItemByID: reads by internal id follow moves and upserts and never
// return a deleted item; without the vector they leave it nil.
func TestItemByID(t *testing.T) {
	s := openT(t, t.TempDir())
	const dim = 3
	b := NewBatch(1, 0, dim)
	a := item("a", 10, BufferList(0), dim)
	a.Meta = []byte(`{"k":1}`)
	b.Put(a)
	b.Put(item("b", 11, BufferList(1), dim))
	apply(t, s, b)
	get := func(id uint64, vec bool) (Item, error) { return s.ItemByID(ctx, 1, id, vec) }
	if it, err := get(10, true); err != nil || it.UserID != "a" || string(it.Meta) != `{"k":1}` || len(it.Vector) != dim || it.List != BufferList(0) {
		t.Fatalf("a: %+v %v", it, err)
	}
	if it, err := get(10, false); err != nil || it.UserID != "a" || string(it.Meta) != `{"k":1}` || it.Vector != nil {
		t.Fatalf("a without vector: %+v %v", it, err)
	}
	b = NewBatch(1, 0, dim)
	b.Move(10, 7)
	b.Delete("b")
	apply(t, s, b)
	if it, err := get(10, false); err != nil || it.List != 7 || it.UserID != "a" {
		t.Fatalf("a after move: %+v %v", it, err)
	}
	if _, err := get(11, false); !errors.Is(err, ErrNotFound) {
		t.Fatalf("deleted b: %v", err)
	}
	if _, err := get(99, false); !errors.Is(err, ErrNotFound) {
		t.Fatalf("never stored: %v", err)
	}
}

// TestItemByIDOldEntry: a 4-byte id index entry (list only, as written
// before entries named their item) still leads to the item.
func TestItemByIDOldEntry(t *testing.T) {
	s := openT(t, t.TempDir())
	b := NewBatch(1, 0, 3)
	b.Put(item("a", 10, 4, 3))
	apply(t, s, b)
	if err := s.db.Set(idKey(1, 10), encodeList(4), pebble.Sync); err != nil {
		t.Fatal(err)
	}
	if it, err := s.ItemByID(ctx, 1, 10, false); err != nil || it.UserID != "a" || it.List != 4 {
		t.Fatalf("%+v %v", it, err)
	}
	vec := make([]float32, 3)
	if err := s.Source(1).Vectors([]uint64{10}, vec); err != nil {
		t.Fatal(err)
	}
}
