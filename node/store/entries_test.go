package store

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
)

func applyEntries(t *testing.T, s *Store, coll uint32, puts []Entry, dels []EntryDelete) EntriesResult {
	t.Helper()
	res, wait, err := s.ApplyEntries(ctx, coll, puts, dels)
	if err != nil {
		t.Fatal(err)
	}
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	return res
}

func scanEntries(t *testing.T, s *Store, coll uint32) []Entry {
	t.Helper()
	v, err := s.OpenEntries(coll)
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	var out []Entry
	for {
		part, err := v.Next(3) // several calls for most tests' entries
		if err != nil {
			t.Fatal(err)
		}
		if len(part) == 0 {
			return out
		}
		out = append(out, part...)
	}
}

// Entries: one key each, counted as added and removed, a conditional
// delete sparing a newer version, nothing stored of a refused batch, and
// all of it (the user-id filter included) back after a reopen.
func TestEntries(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir)
	var puts []Entry
	for i := range 100 {
		puts = append(puts, Entry{UserID: fmt.Sprint("u", i), ID: uint64(i + 1), Value: []byte(fmt.Sprint("v", i))})
	}
	if r := applyEntries(t, s, 7, puts, nil); r != (EntriesResult{Added: 100}) {
		t.Fatalf("first batch: %+v", r)
	}
	if n := countKeys(t, s, recEntry); n != 100 {
		t.Fatalf("%d entry keys, want 100", n)
	}
	for _, typ := range []byte{recItem, recDir, recID, recLog} {
		if n := countKeys(t, s, typ); n != 0 {
			t.Fatalf("%d keys of record type %d, want none", n, typ)
		}
	}
	// An upsert of two (one new), a delete of one whose version is
	// older than the stored one (spared), one deleted unconditionally,
	// one of the right version, and one of an absent user id.
	r := applyEntries(t, s, 7, []Entry{{UserID: "u1", ID: 500, Value: []byte("new")}, {UserID: "x", ID: 501, Value: []byte("x")}},
		[]EntryDelete{{UserID: "u1", ID: 2}, {UserID: "u2"}, {UserID: "u3", ID: 4}, {UserID: "nobody"}})
	if r != (EntriesResult{Added: 1, Removed: 2}) {
		t.Fatalf("second batch: %+v", r)
	}
	if e, err := s.GetEntry(ctx, 7, "u1"); err != nil || e.ID != 500 || string(e.Value) != "new" {
		t.Fatalf("u1: %+v %v", e, err)
	}
	for _, u := range []string{"u2", "u3", "nobody"} {
		if _, err := s.GetEntry(ctx, 7, u); !errors.Is(err, ErrNotFound) {
			t.Fatalf("%s: %v, want ErrNotFound", u, err)
		}
	}
	// A put and a delete of the same id in one batch: the delete comes
	// after the put.
	if r := applyEntries(t, s, 7, []Entry{{UserID: "y", ID: 600, Value: []byte("y")}}, []EntryDelete{{UserID: "y"}}); r != (EntriesResult{Added: 1, Removed: 1}) {
		t.Fatalf("put then delete: %+v", r)
	}
	bad := [][]Entry{
		{{UserID: "", ID: 1, Value: []byte("v")}},
		{{UserID: "z", ID: 0, Value: []byte("v")}},
		{{UserID: "z", ID: 1}},
		{{UserID: "z", ID: 1, Value: make([]byte, 1<<17)}},
		{{UserID: "ok", ID: 9, Value: []byte("v")}, {UserID: string([]byte{0xff}), ID: 1, Value: []byte("v")}},
	}
	for i, b := range bad {
		if _, _, err := s.ApplyEntries(ctx, 7, b, nil); !errors.Is(err, ErrInvalid) {
			t.Fatalf("bad batch %d: %v, want ErrInvalid", i, err)
		}
	}
	if _, err := s.GetEntry(ctx, 7, "ok"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a refused batch stored its good entry: %v", err)
	}
	want := scanEntries(t, s, 7)
	if len(want) != 99 || !slices.IsSortedFunc(want, func(a, b Entry) int { return strings.Compare(a.UserID, b.UserID) }) {
		t.Fatalf("%d entries (want 99), sorted %v", len(want), slices.IsSortedFunc(want, func(a, b Entry) int { return strings.Compare(a.UserID, b.UserID) }))
	}
	if got := scanEntries(t, s, 8); len(got) != 0 {
		t.Fatalf("another collection has %d entries", len(got))
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = openT(t, dir)
	if got := scanEntries(t, s, 7); !slices.EqualFunc(got, want, func(a, b Entry) bool {
		return a.UserID == b.UserID && a.ID == b.ID && string(a.Value) == string(b.Value)
	}) {
		t.Fatalf("after reopen: %d entries, not the %d written", len(got), len(want))
	}
	// The user-id filter is built from the entries' keys.
	s.MayHoldUsers(7, nil)
	s.bg.Wait()
	may, ok := s.MayHoldUsers(7, []string{"u50", "x", "never"})
	if !ok || !may[0] || !may[1] {
		t.Fatalf("filter after reopen: %v %v", may, ok)
	}
	// A put of a user id the filter holds reads the stored entry: an
	// upsert is not counted as added.
	if r := applyEntries(t, s, 7, []Entry{{UserID: "u50", ID: 700, Value: []byte("w")}}, nil); r != (EntriesResult{}) {
		t.Fatalf("upsert after reopen: %+v", r)
	}
}

// A view of the entries is fixed when it is opened and read in parts
// (writes between the parts change nothing); the store closes the views
// left open when it closes, and a read after that fails cleanly.
func TestEntryView(t *testing.T) {
	s, err := Open(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	applyEntries(t, s, 3, []Entry{{UserID: "a", ID: 1, Value: []byte("1")}, {UserID: "b", ID: 2, Value: []byte("2")}}, nil)
	v, err := s.OpenEntries(3)
	if err != nil {
		t.Fatal(err)
	}
	applyEntries(t, s, 3, []Entry{{UserID: "c", ID: 3, Value: []byte("3")}}, []EntryDelete{{UserID: "a"}})
	var seen []string
	for i := range 4 {
		part, err := v.Next(1)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range part {
			seen = append(seen, fmt.Sprint(e.UserID, e.ID))
		}
		if i == 0 {
			applyEntries(t, s, 3, []Entry{{UserID: "b", ID: 4, Value: []byte("4")}, {UserID: "bb", ID: 5, Value: []byte("5")}}, nil)
		}
	}
	if !slices.Equal(seen, []string{"a1", "b2"}) {
		t.Fatalf("the view saw %v, want [a1 b2] (as of its opening)", seen)
	}
	v.Close()
	v.Close() // a second Close does nothing

	left, err := s.OpenEntries(3)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("close with a view open: %v", err)
	}
	if _, err := left.Next(10); !errors.Is(err, ErrClosed) {
		t.Fatalf("read after the store closed: %v, want ErrClosed", err)
	}
	left.Close()
}

// An open view holds no Pebble iterator between reads: an iterator keeps
// every memtable and table it reads until it closes, and a copy keeps
// its view open for the whole copy while the node goes on writing and
// compacting.
func TestEntryViewPinsNoFiles(t *testing.T) {
	s, err := Open(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	batch := func(from, id int) []Entry {
		var out []Entry
		for i := from; i < from+1000; i++ {
			out = append(out, Entry{UserID: fmt.Sprintf("u%06d", i), ID: uint64(id + i), Value: []byte("v")})
		}
		return out
	}
	applyEntries(t, s, 3, batch(0, 1), nil)
	if err := s.db.Flush(); err != nil {
		t.Fatal(err)
	}
	v, err := s.OpenEntries(3)
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	first, err := v.Next(10)
	if err != nil || len(first) != 10 {
		t.Fatalf("first part: %d entries, %v", len(first), err)
	}
	// Rewrite and compact everything the view was opened on.
	applyEntries(t, s, 3, batch(0, 5001), nil) // new versions of every entry
	applyEntries(t, s, 3, batch(1000, 1), nil)
	if err := s.db.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := s.db.Compact(ctx, []byte{0}, []byte{0xff}, true); err != nil {
		t.Fatal(err)
	}
	if m := s.db.Metrics(); m.Table.ZombieCount != 0 {
		t.Fatalf("%d tables (%d bytes) compacted away are kept for the open view", m.Table.ZombieCount, m.Table.ZombieSize)
	}
	// The view still reads as of its opening.
	n := len(first)
	for {
		part, err := v.Next(300)
		if err != nil {
			t.Fatal(err)
		}
		if len(part) == 0 {
			break
		}
		for _, e := range part {
			if want := fmt.Sprintf("u%06d", n); e.UserID != want || e.ID != uint64(n+1) {
				t.Fatalf("entry %d: %s %d, want %s %d", n, e.UserID, e.ID, want, n+1)
			}
			n++
		}
	}
	if n != 1000 {
		t.Fatalf("the view read %d entries, want the 1,000 of its opening", n)
	}
}
