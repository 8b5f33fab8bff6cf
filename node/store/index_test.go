package store

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"lookalike/ivf"
)

func ivfOpts(dim int) ivf.Options {
	return ivf.Options{Dim: dim, NList: 8, Seed: 3, Threads: 1, MinPointsPerCentroid: 4}
}

// trainingData is a fixed sample for the tests' indexes.
func trainingData(dim int) []float32 {
	r := rand.New(rand.NewPCG(42, 1))
	data := make([]float32, 400*dim)
	for i := range data {
		data[i] = float32(r.NormFloat64())
	}
	return data
}

func trainedIndex(t *testing.T, dim int, _ int) *ivf.Index {
	t.Helper()
	ix, err := ivf.New(ivfOpts(dim))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ix.Train(trainingData(dim)); err != nil {
		t.Fatal(err)
	}
	return ix
}

// writer applies batches to a store and an in-memory index, as a node
// does: Pebble first, then the lists.
type writer struct {
	t     *testing.T
	s     *Store
	ix    *ivf.Index
	dim   int
	next  uint64
	shard func(list uint32) uint32
}

func (w *writer) put(uids ...string) {
	w.t.Helper()
	batches := map[uint32]*Batch{}
	for _, u := range uids {
		w.next++
		v := vecOf(w.next, w.dim)
		l, err := w.ix.Assign(v)
		if err != nil {
			w.t.Fatal(err)
		}
		sh := w.shard(uint32(l[0]))
		if batches[sh] == nil {
			batches[sh] = NewBatch(1, sh, w.dim)
		}
		batches[sh].Put(Item{UserID: u, ID: w.next, List: uint32(l[0]), Vector: v})
	}
	for _, b := range batches {
		w.apply(b)
	}
}

func (w *writer) del(sh uint32, uids ...string) {
	w.t.Helper()
	b := NewBatch(1, sh, w.dim)
	for _, u := range uids {
		b.Delete(u)
	}
	w.apply(b)
}

func (w *writer) apply(b *Batch) {
	w.t.Helper()
	r, err := w.s.Apply(ctx, b)
	if err != nil {
		w.t.Fatal(err)
	}
	if err := Replay(w.ix, r.Ops); err != nil {
		w.t.Fatal(err)
	}
}

func TestRestartLoadsIndexAndReplaysLog(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir)
	const dim = 6
	w := &writer{t: t, s: s, ix: trainedIndex(t, dim, 0), dim: dim, shard: func(l uint32) uint32 { return l % 3 }}
	for i := range 300 {
		w.put(fmt.Sprint("a", i))
	}
	w.del(0, "a1", "a2", "a3", "a4")
	w.put("a5", "a6") // upserts
	covered := Seqs{}
	for sh := range uint32(3) {
		last, _, err := s.LastSeq(1, sh)
		if err != nil {
			t.Fatal(err)
		}
		covered[sh] = last
	}
	if err := s.SaveIndex(ctx, 1, w.ix, covered); err != nil {
		t.Fatal(err)
	}
	// More writes after the checkpoint: inserts, deletes, upserts.
	for i := range 100 {
		w.put(fmt.Sprint("b", i))
	}
	w.put("a7", "a8", "b1", "b2")
	w.del(1, "a9", "b3", "a10", "a11", "b4")
	// Saving again replaces the file; and a save that raced with writes
	// (covering less than the file holds) must still replay to one copy.
	w.put("c0")
	before := Seqs{}
	for sh := range uint32(3) {
		before[sh], _, _ = s.LastSeq(1, sh)
	}
	w.put("c1", "c2", "a12")
	if err := s.SaveIndex(ctx, 1, w.ix, before); err != nil {
		t.Fatal(err)
	}
	w.put("c3", "c4", "a13")
	if ents, _ := os.ReadDir(filepath.Join(dir, "index")); len(ents) != 1 {
		t.Fatalf("index dir holds %v", ents)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = openT(t, dir)
	ix, cov, err := s.LoadIndex(ctx, 1, ivf.Options{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	if !maps(cov, before) {
		t.Fatalf("covered %v, want %v", cov, before)
	}
	for sh := range uint32(3) {
		if err := s.ScanLog(ctx, 1, sh, cov[sh]+1, func(r Record) error { return Replay(ix, r.Ops) }); err != nil {
			t.Fatal(err)
		}
	}
	ix.Compact()

	// The index from scratch over every stored item.
	ref := trainedIndex(t, dim, 0)
	lists, err := s.Lists(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, l := range lists {
		if err := s.ScanList(ctx, 1, l, func(it Item) error { n++; return ref.Add([]uint64{it.ID}, it.Vector) }); err != nil {
			t.Fatal(err)
		}
	}
	if want := 300 + 100 + 5 - 4 - 5; n != want || ix.Len() != n {
		t.Fatalf("stored %d, loaded index holds %d, want %d", n, ix.Len(), want)
	}
	src := s.Source(1)
	for q := range 30 {
		query := vecOf(uint64(10_000+q), dim)
		for _, o := range []ivf.SearchOptions{{K: 20, NProbe: 8}, {K: 10, NProbe: 3, Refine: 4, Source: src}} {
			got, err := ix.Search(query, o)
			if err != nil {
				t.Fatal(err)
			}
			want, err := ref.Search(query, o)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, want) {
				t.Fatalf("query %d %+v:\n got %v\nwant %v", q, o, got, want)
			}
		}
	}
}

func maps(a, b Seqs) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func TestLoadIndexErrors(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir)
	if _, _, err := s.LoadIndex(ctx, 1, ivf.Options{}); !errors.Is(err, ErrNoIndex) {
		t.Fatalf("no index: %v", err)
	}
	untrained, _ := ivf.New(ivfOpts(4))
	if err := s.SaveIndex(ctx, 1, untrained, nil); !errors.Is(err, ivf.ErrNotTrained) {
		t.Fatalf("untrained: %v", err)
	}
	if err := s.SaveIndex(ctx, 1, trainedIndex(t, 4, 0), Seqs{2: 9}); err != nil {
		t.Fatal(err)
	}
	// A corrupt file is reported, not loaded.
	ents, _ := os.ReadDir(filepath.Join(dir, "index"))
	p := filepath.Join(dir, "index", ents[0].Name())
	b, _ := os.ReadFile(p)
	b[len(b)/2] ^= 1
	_ = os.WriteFile(p, b, 0o644)
	if _, _, err := s.LoadIndex(ctx, 1, ivf.Options{}); !errors.Is(err, ivf.ErrCorrupt) {
		t.Fatalf("corrupt file: %v", err)
	}
	// Leftovers of a crash inside SaveIndex go at the next open.
	_ = os.WriteFile(filepath.Join(dir, "index", ".tmp-123"), []byte("x"), 0o644)
	_ = os.WriteFile(filepath.Join(dir, "index", "c00000001-0000000000000001.ivf"), []byte("x"), 0o644)
	_ = s.Close()
	openT(t, dir)
	if ents, _ := os.ReadDir(filepath.Join(dir, "index")); len(ents) != 1 || ents[0].Name() != filepath.Base(p) {
		t.Fatalf("after reopen the index dir holds %v", ents)
	}
}
