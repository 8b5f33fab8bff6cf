package store

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/cockroachdb/pebble/v2"
)

func TestUserFilter(t *testing.T) {
	f := newUserFilter(10000)
	for i := range 10000 {
		f.add(fmt.Sprint("in-", i))
	}
	for i := range 10000 {
		if !f.mayHave(fmt.Sprint("in-", i)) {
			t.Fatalf("in-%d added but absent", i)
		}
	}
	fp := 0
	for i := range 100000 {
		if f.mayHave(fmt.Sprint("out-", i)) {
			fp++
		}
	}
	t.Logf("%d false positives in 100,000", fp)
	if fp > 2000 { // under 1 % expected at 10 bits an id or more
		t.Fatalf("%d false positives in 100,000", fp)
	}
	if f.full() {
		t.Fatal("full at its expected size")
	}
	// Adding an id again does not count.
	n := f.n
	f.add("in-7")
	if f.n != n {
		t.Fatalf("re-adding an id counted: %d ids, was %d", f.n, n)
	}
	for i := range 2 * f.limit {
		f.add(fmt.Sprint("more-", i))
	}
	if !f.full() {
		t.Fatalf("not full past its limit: %d ids counted, limit %d", f.n, f.limit)
	}
}

// upsertsOf returns the user ids whose old copy a result deleted.
func upsertsOf(r Result) map[string]bool {
	out := map[string]bool{}
	for _, op := range r.Ops {
		if op.Kind == OpDelete {
			out[op.Item.UserID] = true
		}
	}
	return out
}

// reopenedWith stores n items named prefix0, prefix1, ... (internal ids
// 1..n, list 0 of collection 1), closes the store and opens it again, so
// that the next write starts the user set's scan. It returns the store
// and its folder.
func reopenedWith(t *testing.T, dim, n int, prefix string) (*Store, string) {
	t.Helper()
	dir := t.TempDir()
	s := openT(t, dir)
	for lo := 0; lo < n; lo += 1000 {
		b := NewBatch(1, 0, dim)
		for i := lo; i < min(lo+1000, n); i++ {
			b.Put(item(fmt.Sprint(prefix, i), uint64(i+1), 0, dim))
		}
		apply(t, s, b)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return openT(t, dir), dir
}

// dirUsers returns the user ids in a collection's directory.
func dirUsers(t *testing.T, s *Store, coll uint32) []string {
	t.Helper()
	p := collPrefix(recDir, coll)
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: p, UpperBound: prefixEnd(p)})
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	var out []string
	for ok := it.First(); ok; ok = it.Next() {
		out = append(out, string(it.Key()[len(p):]))
	}
	return out
}

// TestUserSetResolvesUpserts: with the user set built (from the directory
// at reopen, and from puts made while its scan runs), a put of a held
// user id is still an upsert that deletes the old copy, and a new one is
// a plain put.
func TestUserSetResolvesUpserts(t *testing.T) {
	const dim, held = 4, 20000
	s, _ := reopenedWith(t, dim, held, "h-")
	id := uint64(held)
	// Each round: a new id and the upsert of the previous round's, and of
	// an id held before the reopen. The first round starts the scan; the
	// rounds that commit during it go through pending.
	for i := range 300 {
		b := NewBatch(1, 0, dim)
		id++
		b.Put(item(fmt.Sprint("p-", i), id, 1, dim))
		if i > 0 {
			id++
			b.Put(item(fmt.Sprint("p-", i-1), id, 2, dim))
		}
		id++
		b.Put(item(fmt.Sprint("h-", i), id, 2, dim))
		got := upsertsOf(apply(t, s, b))
		want := map[string]bool{fmt.Sprint("h-", i): true}
		if i > 0 {
			want[fmt.Sprint("p-", i-1)] = true
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("round %d: old copies deleted %v, want %v", i, got, want)
		}
	}
	s.bg.Wait()
	s.writeMu.Lock()
	set := s.userSets[1]
	s.writeMu.Unlock()
	if set == nil || set.f == nil {
		t.Fatal("no user set after the scan")
	}
	// Every user id held answers "maybe": none is skipped.
	for _, u := range dirUsers(t, s, 1) {
		if !set.f.mayHave(u) {
			t.Fatalf("user id %q held but absent from the filter", u)
		}
	}
	// One directory entry and one item per user id.
	if n, want := countKeys(t, s, recDir), held+300; n != want {
		t.Fatalf("%d directory entries, want %d", n, want)
	}
	if n, want := countKeys(t, s, recItem), held+300; n != want {
		t.Fatalf("%d items, want %d", n, want)
	}
}

// TestUserSetConcurrent applies batches from several goroutines while the
// scan runs (run under -race by make test-race): every upsert finds its
// old copy.
func TestUserSetConcurrent(t *testing.T) {
	const dim, writers, rounds = 4, 4, 50
	s := openT(t, t.TempDir())
	var next atomic.Uint64
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range rounds {
				u := fmt.Sprintf("w%d-%d", w, i)
				for pass := range 2 {
					b := NewBatch(1, uint32(w), dim)
					b.Put(item(u, next.Add(1), uint32(pass), dim))
					r, err := s.Apply(ctx, b)
					if err != nil {
						errs <- err
						return
					}
					if got := upsertsOf(r)[u]; got != (pass == 1) {
						errs <- fmt.Errorf("%s pass %d: old copy deleted %v", u, pass, got)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if n := countKeys(t, s, recItem); n != writers*rounds {
		t.Fatalf("%d items, want %d", n, writers*rounds)
	}
}

// TestUserSetCloseDuringScan: Close while a scan runs ends it; nothing
// leaks (TestMain checks goroutines) and a reopened store resolves as
// before.
func TestUserSetCloseDuringScan(t *testing.T) {
	const dim = 4
	s, dir := reopenedWith(t, dim, 5000, "u-")
	b := NewBatch(1, 0, dim)
	b.Put(item("new", 9999, 0, dim))
	apply(t, s, b) // starts the scan
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openT(t, dir)
	b = NewBatch(1, 0, dim)
	b.Put(item("u-7", 10000, 1, dim))
	if got := upsertsOf(apply(t, s, b)); !got["u-7"] {
		t.Fatalf("upsert after reopen deleted %v", got)
	}
}

// TestUserSetGrows: a collection that outgrows its filter gets a larger
// one (rebuilt in the background while puts go on), and no upsert is
// missed on the way.
func TestUserSetGrows(t *testing.T) {
	const dim, per, batches = 4, 500, 40
	s := openT(t, t.TempDir())
	id := uint64(0)
	for k := range batches {
		b := NewBatch(1, 0, dim)
		for j := range per {
			id++
			b.Put(item(fmt.Sprint("g-", k*per+j), id, 0, dim))
		}
		want := map[string]bool{}
		if k > 0 {
			for j := range per {
				u := fmt.Sprint("g-", (k-1)*per+j)
				id++
				b.Put(item(u, id, 1, dim))
				want[u] = true
			}
		}
		if got := upsertsOf(apply(t, s, b)); len(got) != len(want) || fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("batch %d: %d old copies deleted, want %d", k, len(got), len(want))
		}
	}
	s.bg.Wait()
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	f := s.userSets[1].f
	if f == nil {
		t.Fatal("no filter")
	}
	if len(f.bits)*64 <= 1<<16 || f.full() {
		t.Fatalf("filter of %d bits, %d ids counted, full %v: not grown for %d ids", len(f.bits)*64, f.n, f.full(), per*batches)
	}
}

// TestMayHoldUsers: no answer until the filter is built (the call starts
// its scan), then a certain "no" for ids never put and a "maybe" for
// every id held, including those put after the scan.
func TestMayHoldUsers(t *testing.T) {
	const dim = 4
	s, _ := reopenedWith(t, dim, 3000, "u-")
	ask := []string{"u-1", "u-2999", "never-1", "later"}
	if may, ok := s.MayHoldUsers(1, ask); ok {
		t.Fatalf("answered %v before any scan", may)
	}
	s.bg.Wait()
	b := NewBatch(1, 0, dim)
	b.Put(item("later", 5000, 0, dim))
	apply(t, s, b)
	may, ok := s.MayHoldUsers(1, ask)
	if !ok {
		t.Fatal("no answer after the scan")
	}
	if !may[0] || !may[1] || !may[3] {
		t.Fatalf("held ids answered %v", may)
	}
	never := 0
	for i := range 1000 {
		if m, _ := s.MayHoldUsers(1, []string{fmt.Sprint("never-", i)}); !m[0] {
			never++
		}
	}
	if never < 950 {
		t.Fatalf("only %d of 1,000 ids never put answered no", never)
	}
}
