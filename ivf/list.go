package ivf

import (
	"sync"
	"sync/atomic"
)

// List is one inverted list: the SQ8 codes of its vectors, contiguous, and
// their ids, in insertion order. Writers (Append, Delete, Compact) are
// serialised by the list; readers take a View and scan it without a lock.
//
// A device that keeps a copy of a list (the cuda package) tracks it by the
// View's Gen (changes when Compact rewrites the arrays), N (the published
// length: entries below N never change within a generation) and
// TombVersion (the number of deletes so far in the generation).
type List struct {
	dim  int
	mu   sync.Mutex
	view atomic.Pointer[View]
}

// View is a published state of a List. Its N entries never change; only
// their tombstones may be set later, which Deleted reads atomically.
type View struct {
	// Gen identifies the arrays; Compact starts a new generation.
	Gen uint64
	// N is the number of entries, deleted ones included.
	N     int
	dim   int
	codes []byte   // len ≥ N·dim
	ids   []uint64 // len ≥ N
	tomb  *tombstones
}

type tombstones struct {
	words   []uint32 // bit i: entry i is deleted; read and set atomically
	version atomic.Uint64
	deleted atomic.Int64
}

func newList(dim int) *List {
	l := &List{dim: dim}
	l.view.Store(&View{dim: dim, tomb: &tombstones{}})
	return l
}

// View returns the list's current published state.
func (l *List) View() *View { return l.view.Load() }

// Codes returns the N·dim code bytes. The caller must not modify them.
func (v *View) Codes() []byte { return v.codes[:v.N*v.dim] }

// IDs returns the N ids. The caller must not modify them.
func (v *View) IDs() []uint64 { return v.ids[:v.N] }

// Deleted reports whether entry i carries a tombstone (now, not as of the
// view: deletes are visible at once).
func (v *View) Deleted(i int) bool {
	return atomic.LoadUint32(&v.tomb.words[i>>5])&(1<<(uint(i)&31)) != 0
}

// TombVersion counts the deletes made in this generation so far.
func (v *View) TombVersion() uint64 { return v.tomb.version.Load() }

// DeletedCount is the number of tombstoned entries in this generation.
func (v *View) DeletedCount() int { return int(v.tomb.deleted.Load()) }

// Live is the number of entries without a tombstone.
func (v *View) Live() int { return v.N - v.DeletedCount() }

// append adds m entries (ids, and their codes of m·dim bytes).
func (l *List) append(ids []uint64, codes []byte) {
	l.mu.Lock()
	defer l.mu.Unlock()
	v := l.view.Load()
	n, m, d := v.N, len(ids), l.dim
	if n+m > len(v.ids) {
		c := n + m // a first fill (bulk add, load) is sized exactly
		if n > 0 {
			c += (n+m)/8 + 8 // a list that grows keeps growing: amortise
		}
		codes2 := make([]byte, c*d)
		copy(codes2, v.codes[:n*d])
		ids2 := make([]uint64, c)
		copy(ids2, v.ids[:n])
		t := &tombstones{words: make([]uint32, (c+31)/32)}
		for i := range v.tomb.words {
			t.words[i] = atomic.LoadUint32(&v.tomb.words[i])
		}
		t.version.Store(v.tomb.version.Load())
		t.deleted.Store(v.tomb.deleted.Load())
		v = &View{Gen: v.Gen, N: n, dim: d, codes: codes2, ids: ids2, tomb: t}
	}
	// Entries at and beyond N are invisible to readers of any published
	// view, so they can be written in place.
	copy(v.codes[n*d:], codes)
	copy(v.ids[n:], ids)
	l.view.Store(&View{Gen: v.Gen, N: n + m, dim: d, codes: v.codes, ids: v.ids, tomb: v.tomb})
}

// deleteID tombstones every live entry with this id and reports how many.
func (l *List) deleteID(id uint64) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	v := l.view.Load()
	found := 0
	for i, x := range v.ids[:v.N] {
		if x == id && !v.Deleted(i) {
			atomic.OrUint32(&v.tomb.words[i>>5], 1<<(uint(i)&31))
			found++
		}
	}
	if found > 0 {
		v.tomb.deleted.Add(int64(found))
		v.tomb.version.Add(uint64(found))
	}
	return found
}

// compact rewrites the list without its deleted entries, as a new
// generation, and reports how many entries it dropped.
func (l *List) compact() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	v := l.view.Load()
	dropped := v.DeletedCount()
	if dropped == 0 {
		return 0
	}
	d, live := l.dim, v.N-dropped
	codes := make([]byte, live*d)
	ids := make([]uint64, live)
	j := 0
	for i := 0; i < v.N; i++ {
		if v.Deleted(i) {
			continue
		}
		copy(codes[j*d:(j+1)*d], v.codes[i*d:(i+1)*d])
		ids[j] = v.ids[i]
		j++
	}
	t := &tombstones{words: make([]uint32, (live+31)/32)}
	l.view.Store(&View{Gen: v.Gen + 1, N: live, dim: d, codes: codes, ids: ids, tomb: t})
	return dropped
}

// memory is the bytes the list holds (capacity, not length).
func (v *View) memory() int64 {
	return int64(cap(v.codes)) + 8*int64(cap(v.ids)) + 4*int64(len(v.tomb.words))
}
