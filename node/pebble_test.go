package node_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"lookalike/ivf"
	"lookalike/node"
	"lookalike/node/nodetest"
	"lookalike/node/store"
)

// TestPebbleStorage runs the lifecycle over the real store: insert,
// train, upsert, delete, then a crash (no Close: the saved index is
// behind the log) and a clean restart.
func TestPebbleStorage(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	meta := nodetest.NewMeta()
	st, err := node.OpenPebble(dir, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	n, err := node.Open(node.Options{NodeID: "n1", AutoTrainAt: -1, MoveChunk: 100, SaveEvery: 15}, meta, st)
	if err != nil {
		t.Fatal(err)
	}
	const d, nb = 8, 1000
	if _, err := n.CreateCollection(ctx, node.CollectionMeta{Name: "c", Dim: d, Metric: ivf.Cosine, NList: 8}); err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(11, 12))
	vecs := randVecs(r, nb, d)
	if _, err := n.Insert(ctx, "c", items("v", vecs, d)); err != nil {
		t.Fatal(err)
	}
	check := func(n *node.Node, wantCount int64) {
		t.Helper()
		s, err := n.Describe("c")
		if err != nil {
			t.Fatal(err)
		}
		if s.Count != wantCount {
			t.Fatalf("count %d, want %d (%+v)", s.Count, wantCount, s)
		}
		for _, j := range []int{0, 17, 500, 999} {
			if j == 3 {
				continue
			}
			res, err := n.Search(ctx, "c", node.SearchRequest{Vector: vecs[j*d : (j+1)*d], K: 3, NProbe: 8, Refine: 4})
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Hits) == 0 || res.Hits[0].UserID != fmt.Sprintf("v%d", j) || string(res.Hits[0].Meta) != fmt.Sprintf(`{"i":%d}`, j) {
				t.Fatalf("search v%d: %+v", j, res.Hits)
			}
		}
		if _, err := n.Get(ctx, "c", "v3", false); err == nil {
			t.Fatal("deleted v3 is back")
		}
	}
	if err := n.Delete(ctx, "c", "v3"); err != nil {
		t.Fatal(err)
	}
	check(n, nb-1)
	if _, err := n.Train(ctx, "c", 0); err != nil {
		t.Fatal(err)
	}
	waitState(t, n, "c", node.Ready)
	check(n, nb-1)
	// The index saved after the move covers the log, which is truncated.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		last, truncated, err := st.Store().LastSeq(num(t, st, "c"), 0)
		if err == nil && truncated > 0 && truncated == last {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("log after the save: last %d, truncated %d, %v", last, truncated, err)
		}
	}
	// Writes after the index was saved live only in the log.
	more := randVecs(r, 10, d)
	if _, err := n.Insert(ctx, "c", items("w", more, d)); err != nil {
		t.Fatal(err)
	}
	if _, err := n.Insert(ctx, "c", []node.WriteItem{{UserID: "v17", Vector: vecs[17*d : 18*d], Meta: []byte(`{"i":17}`)}}); err != nil {
		t.Fatal(err)
	}
	check(n, nb+9)
	// A background save after SaveEvery (15) writes truncates the log.
	before, _, _ := st.Store().LastSeq(num(t, st, "c"), 0)
	if _, err := n.Insert(ctx, "c", items("x", randVecs(r, 5, d), d)); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		_, truncated, _ := st.Store().LastSeq(num(t, st, "c"), 0)
		if truncated > before {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no background save: truncated %d, last before %d", truncated, before)
		}
	}
	if _, err := n.Insert(ctx, "c", items("y", randVecs(r, 1, d), d)); err != nil {
		t.Fatal(err)
	}
	// Crash: the store closes under the node, no flush.
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	st2, err := node.OpenPebble(dir, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	n2, err := node.Open(node.Options{NodeID: "n1", AutoTrainAt: -1}, meta, st2)
	if err != nil {
		t.Fatal(err)
	}
	check(n2, nb+15)
	res, _ := n2.Search(ctx, "c", node.SearchRequest{Vector: vecs[17*d : 18*d], K: 2, NProbe: 8, Refine: 4})
	if res.Hits[1].UserID == "v17" {
		t.Fatalf("v17 twice: %+v", res.Hits)
	}
	if err := n2.Close(); err != nil {
		t.Fatal(err)
	}
	st2.Close()
	st3, err := node.OpenPebble(dir, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st3.Close()
	n3, err := node.Open(node.Options{NodeID: "n1", AutoTrainAt: -1}, meta, st3)
	if err != nil {
		t.Fatal(err)
	}
	defer n3.Close()
	check(n3, nb+15)
	old := num(t, st3, "c")
	if err := n3.DropCollection(ctx, "c"); err != nil {
		t.Fatal(err)
	}
	// Created again under the same name, it starts from nothing.
	if _, err := n3.CreateCollection(ctx, node.CollectionMeta{Name: "c", Dim: d, Metric: ivf.L2}); err != nil {
		t.Fatal(err)
	}
	if s, _ := n3.Describe("c"); s.Count != 0 || num(t, st3, "c") == old {
		t.Fatalf("recreated: %+v, number %d (was %d)", s, num(t, st3, "c"), old)
	}
	if _, err := n3.Get(ctx, "c", "v0", false); err == nil {
		t.Fatal("an item of the dropped collection is back")
	}
	if st3.Stats()["disk_bytes"] <= 0 {
		t.Fatal("no pebble stats")
	}
}

func num(t *testing.T, st *node.PebbleStorage, name string) uint32 {
	t.Helper()
	c, err := st.CollectionNumber(name)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestPebbleReadsAssignNoNumber: reads of a name the store holds nothing
// of (never written, or dropped) find nothing and write nothing; before,
// each assigned the name a collection number with a synced write.
func TestPebbleReadsAssignNoNumber(t *testing.T) {
	st, err := node.OpenPebble(t.TempDir(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := st.Apply(&node.Batch{Collection: "c", Dim: 2, Puts: []node.Item{{UserID: "a", ID: 1, List: node.BufferList, Vector: []float32{1, 2}}}}); err != nil {
		t.Fatal(err)
	}
	if it, err := st.Get("c", "a"); err != nil || it.ID != 1 {
		t.Fatalf("get a: %+v, %v", it, err)
	}
	if err := st.Drop("c"); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"c", "never"} {
		noItem := func(what string, err error) {
			t.Helper()
			if !errors.Is(err, node.ErrNoItem) {
				t.Fatalf("%s of %q: %v, want ErrNoItem", what, name, err)
			}
		}
		_, err := st.Get(name, "a")
		noItem("get", err)
		_, err = st.Item(name, 1)
		noItem("item", err)
		_, _, err = st.Locate(name, "a")
		noItem("locate", err)
		_, err = st.Attachment(name, 1)
		noItem("attachment", err)
		noItem("vectors", st.Vectors(name, []uint64{1}, make([]float32, 2)))
		if ids, err := st.ListIDs(name, node.BufferList); err != nil || len(ids) != 0 {
			t.Fatalf("list ids of %q: %v, %v", name, ids, err)
		}
		if err := st.Scan(name, func(node.Item) error { return errors.New("an item") }); err != nil {
			t.Fatalf("scan of %q: %v", name, err)
		}
		if v, err := st.Incarnation(name); v != 0 || err != nil {
			t.Fatalf("incarnation of %q: %d, %v", name, v, err)
		}
		if v, err := st.Checkpoint(name); v != 0 || err != nil {
			t.Fatalf("checkpoint of %q: %d, %v", name, v, err)
		}
		if ix, err := st.LoadIndex(name, ivf.Options{}); ix != nil || err != nil {
			t.Fatalf("load index of %q: %v, %v", name, ix, err)
		}
		if may, ok := st.MayHoldUsers(name, []string{"a"}); !ok || len(may) != 1 || may[0] {
			t.Fatalf("may hold users of %q: %v, %v; want certainly not", name, may, ok)
		}
		if err := st.Drop(name); err != nil {
			t.Fatalf("drop of %q: %v", name, err)
		}
		if _, ok, err := st.Store().LookupCollection(name); ok || err != nil {
			t.Fatalf("after the reads %q has a collection number (%v)", name, err)
		}
	}
	// The next number is the one after c's: the reads took none.
	if c, err := st.CollectionNumber("d"); c != 2 || err != nil {
		t.Fatalf("the next collection's number: %d, %v; want 2", c, err)
	}
}

// TestLateWritesAfterDropWriteNothing: an index save that outlives its
// collection's drop (a training that close stopped waiting for) writes
// nothing, and a write that passed its checks before the drop fails
// with ErrNoCollection. Before, each gave the dropped name a fresh store
// number holding the old index or the item, with no incarnation record:
// neither the sweep nor claimStore deletes such data, only a create
// served by this node.
func TestLateWritesAfterDropWriteNothing(t *testing.T) {
	ctx := context.Background()
	n, st := openPebbleNode(t, node.Options{NodeID: "n1", AutoTrainAt: -1})
	const d, nlist = 8, 4
	if _, err := n.CreateCollection(ctx, node.CollectionMeta{Name: "c", Dim: d, Metric: ivf.L2, NList: nlist}); err != nil {
		t.Fatal(err)
	}
	if _, err := n.Insert(ctx, "c", items("v", randVecs(rand.New(rand.NewPCG(7, 8)), 200, d), d)); err != nil {
		t.Fatal(err)
	}
	if _, err := n.Train(ctx, "c", nlist); err != nil {
		t.Fatal(err)
	}
	waitState(t, n, "c", node.Ready)
	save, err := node.SaveIndexLater(n, "c")
	if err != nil {
		t.Fatal(err)
	}
	write, err := node.WriteLater(n, "c")
	if err != nil {
		t.Fatal(err)
	}
	if err := n.DropCollection(ctx, "c"); err != nil {
		t.Fatal(err)
	}
	if err := save(); err != nil {
		t.Fatalf("a save after the drop: %v", err)
	}
	if err := write(); !errors.Is(err, node.ErrNoCollection) {
		t.Fatalf("a write after the drop: %v, want ErrNoCollection", err)
	}
	if _, ok, err := st.Store().LookupCollection("c"); ok || err != nil {
		t.Fatalf("a save or a write after the drop wrote under the dropped name (%v)", err)
	}
	// A collection of the name with another dimension starts empty and
	// untrained, not from the old index.
	if _, err := n.CreateCollection(ctx, node.CollectionMeta{Name: "c", Dim: 3, Metric: ivf.L2, NList: nlist}); err != nil {
		t.Fatal(err)
	}
	if s, err := n.Describe("c"); err != nil || s.Count != 0 || s.State == node.Ready {
		t.Fatalf("the collection created again: %+v, %v", s, err)
	}
}
