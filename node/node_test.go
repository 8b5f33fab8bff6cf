package node_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"lookalike/ivf"
	"lookalike/node"
	"lookalike/node/nodetest"
)

func randVecs(r *rand.Rand, n, d int) []float32 {
	v := make([]float32, n*d)
	for i := range v {
		v[i] = r.Float32()*2 - 1
	}
	return v
}

func items(prefix string, vecs []float32, d int) []node.WriteItem {
	out := make([]node.WriteItem, len(vecs)/d)
	for i := range out {
		out[i] = node.WriteItem{UserID: fmt.Sprintf("%s%d", prefix, i), Vector: vecs[i*d : (i+1)*d], Meta: []byte(fmt.Sprintf(`{"i":%d}`, i))}
	}
	return out
}

func open(t *testing.T, meta *nodetest.Meta, st *nodetest.Store, opts node.Options) *node.Node {
	t.Helper()
	if opts.NodeID == "" {
		opts.NodeID = "n1"
	}
	if opts.AutoTrainAt == 0 {
		opts.AutoTrainAt = -1
	}
	n, err := node.Open(opts, meta, st)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

func waitState(t *testing.T, n *node.Node, name string, want node.State) node.CollectionStatus {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		s, err := n.Describe(name)
		if err != nil {
			t.Fatal(err)
		}
		if s.State == want {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("collection %q still %v after 20 s, want %v", name, s.State, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// bruteIDs answers q exactly over vecs (row i is id prefix+i).
func bruteIDs(t *testing.T, m ivf.Metric, d int, vecs, q []float32, k int, prefix string) []string {
	t.Helper()
	res, err := ivf.BruteForce(m, d, vecs, q, k, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]string, len(res[0]))
	for i, h := range res[0] {
		out[i] = fmt.Sprintf("%s%d", prefix, h.ID)
	}
	return out
}

func hitIDs(h []node.Hit) []string {
	out := make([]string, len(h))
	for i, x := range h {
		out[i] = x.UserID
	}
	return out
}

func equalIDs(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestUntrainedIsExact(t *testing.T) {
	for _, m := range []ivf.Metric{ivf.L2, ivf.IP, ivf.Cosine} {
		t.Run(m.String(), func(t *testing.T) {
			ctx := context.Background()
			n := open(t, nodetest.NewMeta(), nodetest.NewStore(), node.Options{})
			const d = 16
			if _, err := n.CreateCollection(ctx, node.CollectionMeta{Name: "c", Dim: d, Metric: m}); err != nil {
				t.Fatal(err)
			}
			r := rand.New(rand.NewPCG(1, 2))
			vecs := randVecs(r, 500, d)
			if _, err := n.Insert(ctx, "c", items("v", vecs, d)); err != nil {
				t.Fatal(err)
			}
			for qi := 0; qi < 20; qi++ {
				q := randVecs(r, 1, d)
				res, err := n.Search(ctx, "c", node.SearchRequest{Vector: q, K: 10})
				if err != nil {
					t.Fatal(err)
				}
				if want := bruteIDs(t, m, d, vecs, q, 10, "v"); !equalIDs(hitIDs(res.Hits), want) {
					t.Fatalf("query %d: got %v, want %v", qi, hitIDs(res.Hits), want)
				}
			}
		})
	}
}

// TestTrainingKeepsAnswering trains while writers insert and searchers
// look up vectors they know are stored: every search finds its vector,
// no answer holds an id twice, and at the end exhaustive search with
// refine equals brute force.
func TestTrainingKeepsAnswering(t *testing.T) {
	ctx := context.Background()
	meta, st := nodetest.NewMeta(), nodetest.NewStore()
	n := open(t, meta, st, node.Options{MoveChunk: 64})
	const d, nb = 8, 4000
	if _, err := n.CreateCollection(ctx, node.CollectionMeta{Name: "c", Dim: d, Metric: ivf.L2, NList: 16}); err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(3, 4))
	vecs := randVecs(r, nb, d)
	if _, err := n.Insert(ctx, "c", items("v", vecs[:nb/2*d], d)); err != nil {
		t.Fatal(err)
	}
	var stop atomic.Bool
	var wg sync.WaitGroup
	errc := make(chan error, 4)
	for w := 0; w < 2; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			rr := rand.New(rand.NewPCG(uint64(w), 9))
			for i := 0; !stop.Load(); i++ {
				j := rr.IntN(nb / 2)
				res, err := n.Search(ctx, "c", node.SearchRequest{Vector: vecs[j*d : (j+1)*d], K: 5, NProbe: 16, Refine: 4})
				if err != nil {
					errc <- err
					return
				}
				seen := map[string]bool{}
				for _, h := range res.Hits {
					if seen[h.UserID] {
						errc <- fmt.Errorf("duplicate id %s in %v", h.UserID, hitIDs(res.Hits))
						return
					}
					seen[h.UserID] = true
				}
				if len(res.Hits) == 0 || res.Hits[0].UserID != fmt.Sprintf("v%d", j) {
					errc <- fmt.Errorf("search for v%d: got %v", j, hitIDs(res.Hits))
					return
				}
			}
		}(w)
	}
	if _, err := n.Train(ctx, "c", 0); err != nil {
		t.Fatal(err)
	}
	// Writes during training and the move land once.
	rest := items("v", vecs, d)[nb/2:]
	for i := 0; i < len(rest); i += 100 {
		if _, err := n.Insert(ctx, "c", rest[i:i+100]); err != nil {
			t.Fatal(err)
		}
	}
	s := waitState(t, n, "c", node.Ready)
	stop.Store(true)
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}
	if s.Count != nb || s.Epoch != 2 || s.TrainedNList != 16 {
		t.Fatalf("after training: %+v", s)
	}
	for deadline := time.Now().Add(10 * time.Second); meta.Retired() != 1; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("RetireBuffer called %d times", meta.Retired())
		}
	}
	for qi := 0; qi < 20; qi++ {
		q := randVecs(r, 1, d)
		res, err := n.Search(ctx, "c", node.SearchRequest{Vector: q, K: 10, NProbe: 16, Refine: 64})
		if err != nil {
			t.Fatal(err)
		}
		if want := bruteIDs(t, ivf.L2, d, vecs, q, 10, "v"); !equalIDs(hitIDs(res.Hits), want) {
			t.Fatalf("query %d: got %v, want %v", qi, hitIDs(res.Hits), want)
		}
	}
	// Restart over the same table and store: the saved index is loaded.
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	n2 := open(t, meta, st, node.Options{})
	s2, err := n2.Describe("c")
	if err != nil {
		t.Fatal(err)
	}
	if s2.Count != nb || s2.State != node.Ready || s2.Epoch != 2 {
		t.Fatalf("after restart: %+v", s2)
	}
}

func TestUpsertAndDelete(t *testing.T) {
	for _, trained := range []bool{false, true} {
		t.Run(fmt.Sprint("trained=", trained), func(t *testing.T) {
			ctx := context.Background()
			meta, st := nodetest.NewMeta(), nodetest.NewStore()
			n := open(t, meta, st, node.Options{})
			const d = 4
			n.CreateCollection(ctx, node.CollectionMeta{Name: "c", Dim: d, Metric: ivf.L2, NList: 2})
			r := rand.New(rand.NewPCG(5, 6))
			vecs := randVecs(r, 200, d)
			if _, err := n.Insert(ctx, "c", items("v", vecs, d)); err != nil {
				t.Fatal(err)
			}
			if trained {
				n.Train(ctx, "c", 0)
				waitState(t, n, "c", node.Ready)
			}
			far := []float32{100, 100, 100, 100}
			// Upsert v7 far away, twice in one batch (the last wins).
			if _, err := n.Insert(ctx, "c", []node.WriteItem{{UserID: "v7", Vector: []float32{50, 50, 50, 50}}, {UserID: "v7", Vector: far}}); err != nil {
				t.Fatal(err)
			}
			res, err := n.Search(ctx, "c", node.SearchRequest{Vector: far, K: 3, NProbe: 2, Refine: 8})
			if err != nil {
				t.Fatal(err)
			}
			if res.Hits[0].UserID != "v7" || res.Hits[0].Score > 1e-3 || res.Hits[1].UserID == "v7" {
				t.Fatalf("after upsert: %+v", res.Hits)
			}
			old, _ := n.Search(ctx, "c", node.SearchRequest{Vector: vecs[7*d : 8*d], K: 5, NProbe: 2})
			for _, h := range old.Hits {
				if h.UserID == "v7" {
					t.Fatalf("old copy of v7 still found: %+v", old.Hits)
				}
			}
			if s, _ := n.Describe("c"); s.Count != 200 {
				t.Fatalf("count %d after upsert, want 200", s.Count)
			}
			if err := n.Delete(ctx, "c", "v7"); err != nil {
				t.Fatal(err)
			}
			if err := n.Delete(ctx, "c", "v7"); !errors.Is(err, node.ErrNoItem) {
				t.Fatalf("second delete: %v", err)
			}
			res, _ = n.Search(ctx, "c", node.SearchRequest{Vector: far, K: 3, NProbe: 2})
			for _, h := range res.Hits {
				if h.UserID == "v7" {
					t.Fatal("deleted v7 found")
				}
			}
			if _, err := n.Get(ctx, "c", "v7", false); !errors.Is(err, node.ErrNoItem) {
				t.Fatalf("get deleted: %v", err)
			}
			it, err := n.Get(ctx, "c", "v8", true)
			if err != nil || len(it.Vector) != d || string(it.Meta) != `{"i":8}` {
				t.Fatalf("get v8: %+v %v", it, err)
			}
			// Search by id finds the item itself first.
			res, err = n.Search(ctx, "c", node.SearchRequest{UserID: "v8", K: 1, NProbe: 2})
			if err != nil || res.Hits[0].UserID != "v8" {
				t.Fatalf("search by id: %+v %v", res, err)
			}
			// Restart rebuilds from the store (the index is stale after the delete).
			n.Close()
			n2 := open(t, meta, st, node.Options{})
			if s, _ := n2.Describe("c"); s.Count != 199 {
				t.Fatalf("count %d after restart, want 199", s.Count)
			}
			res, _ = n2.Search(ctx, "c", node.SearchRequest{Vector: far, K: 3, NProbe: 2})
			for _, h := range res.Hits {
				if h.UserID == "v7" {
					t.Fatal("deleted v7 back after restart")
				}
			}
		})
	}
}

func TestBadInputStoresNothing(t *testing.T) {
	ctx := context.Background()
	st := nodetest.NewStore()
	n := open(t, nodetest.NewMeta(), st, node.Options{})
	n.CreateCollection(ctx, node.CollectionMeta{Name: "c", Dim: 3, Metric: ivf.Cosine})
	nan := float32(0)
	nan = nan / nan
	for name, batch := range map[string][]node.WriteItem{
		"dim":  {{UserID: "a", Vector: []float32{1, 2, 3}}, {UserID: "b", Vector: []float32{1, 2}}},
		"nan":  {{UserID: "a", Vector: []float32{1, 2, 3}}, {UserID: "b", Vector: []float32{1, nan, 3}}},
		"zero": {{UserID: "a", Vector: []float32{1, 2, 3}}, {UserID: "b", Vector: []float32{0, 0, 0}}},
	} {
		if _, err := n.Insert(ctx, "c", batch); !errors.Is(err, node.ErrInvalid) {
			t.Errorf("%s: got %v, want ErrInvalid", name, err)
		}
	}
	if _, err := n.Insert(ctx, "c", nil); !errors.Is(err, node.ErrInvalid) {
		t.Errorf("empty batch: %v", err)
	}
	if _, err := n.Insert(ctx, "nope", []node.WriteItem{{UserID: "a", Vector: []float32{1, 2, 3}}}); !errors.Is(err, node.ErrNoCollection) {
		t.Errorf("unknown collection: %v", err)
	}
	if _, err := n.CreateCollection(ctx, node.CollectionMeta{Name: "c", Dim: 3, Metric: ivf.L2}); !errors.Is(err, node.ErrExists) {
		t.Errorf("duplicate collection: %v", err)
	}
	if st.Applies != 0 {
		t.Fatalf("%d batches stored", st.Applies)
	}
	for _, k := range []int{0, -1, 1025} {
		if _, err := n.Search(ctx, "c", node.SearchRequest{Vector: []float32{1, 2, 3}, K: k}); !errors.Is(err, node.ErrInvalid) {
			t.Errorf("k %d: %v", k, err)
		}
	}
}

func TestFailedApplyChangesNothing(t *testing.T) {
	ctx := context.Background()
	st := nodetest.NewStore()
	n := open(t, nodetest.NewMeta(), st, node.Options{})
	n.CreateCollection(ctx, node.CollectionMeta{Name: "c", Dim: 2, Metric: ivf.L2})
	st.FailApply = errors.New("disk full")
	if _, err := n.Insert(ctx, "c", []node.WriteItem{{UserID: "a", Vector: []float32{1, 2}}}); err == nil {
		t.Fatal("insert succeeded")
	}
	st.FailApply = nil
	res, err := n.Search(ctx, "c", node.SearchRequest{Vector: []float32{1, 2}, K: 1})
	if err != nil || len(res.Hits) != 0 {
		t.Fatalf("after failed apply: %+v %v", res, err)
	}
}

// TestInterruptedMove opens a node over a table that committed training
// while the store still holds buffered items, as after a crash during the
// move: opening finishes the move.
func TestInterruptedMove(t *testing.T) {
	ctx := context.Background()
	meta, st := nodetest.NewMeta(), nodetest.NewStore()
	n := open(t, meta, st, node.Options{})
	const d = 4
	n.CreateCollection(ctx, node.CollectionMeta{Name: "c", Dim: d, Metric: ivf.L2, NList: 4})
	r := rand.New(rand.NewPCG(7, 8))
	vecs := randVecs(r, 400, d)
	n.Insert(ctx, "c", items("v", vecs, d))
	n.Close()
	// Train out of band and commit, as the crashed node had done.
	ix, _ := ivf.New(ivf.Options{Dim: d, Metric: ivf.L2, NList: 4})
	if _, err := ix.Train(vecs); err != nil {
		t.Fatal(err)
	}
	var blob bytesBuffer
	ix.WriteTo(&blob)
	meta.BeginTraining(ctx, "c", 1)
	if err := meta.CommitTraining(ctx, "c", 1, 4, blob.b, nil); err != nil {
		t.Fatal(err)
	}
	n2 := open(t, meta, st, node.Options{})
	s, _ := n2.Describe("c")
	if s.State != node.Ready || s.Count != 400 || s.Lists != 4 {
		t.Fatalf("after reopen: %+v", s)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		if m, _ := meta.Collection("c"); !m.Buffered {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("buffer not retired after the interrupted move")
		}
	}
	var buffered int
	st.Scan("c", func(it node.Item) error {
		if it.List == node.BufferList {
			buffered++
		}
		return nil
	})
	if buffered != 0 {
		t.Fatalf("%d items still buffered", buffered)
	}
	res, _ := n2.Search(ctx, "c", node.SearchRequest{Vector: vecs[5*d : 6*d], K: 1, NProbe: 4, Refine: 2})
	if res.Hits[0].UserID != "v5" {
		t.Fatalf("got %+v", res.Hits)
	}
}

type bytesBuffer struct{ b []byte }

func (w *bytesBuffer) Write(p []byte) (int, error) { w.b = append(w.b, p...); return len(p), nil }

func TestAutoTrainAndNList(t *testing.T) {
	ctx := context.Background()
	n := open(t, nodetest.NewMeta(), nodetest.NewStore(), node.Options{AutoTrainAt: 390})
	n.CreateCollection(ctx, node.CollectionMeta{Name: "c", Dim: 4, Metric: ivf.IP})
	r := rand.New(rand.NewPCG(9, 10))
	n.Insert(ctx, "c", items("v", randVecs(r, 400, 4), 4))
	s := waitState(t, n, "c", node.Ready)
	if want := node.AutoNList(400); s.TrainedNList != want {
		t.Fatalf("nlist %d, want %d", s.TrainedNList, want)
	}
	for _, c := range []struct{ n, want int }{{0, 1}, {10, 1}, {400, 8}, {10000, 256}, {1000000, 4096}} {
		if got := node.AutoNList(c.n); got != c.want {
			t.Errorf("AutoNList(%d) = %d, want %d", c.n, got, c.want)
		}
	}
}

// TestCommitTimeoutButApplied: CommitTraining fails although the table
// applied it (a proposal that timed out); the node follows the table.
func TestCommitTimeoutButApplied(t *testing.T) {
	ctx := context.Background()
	meta := nodetest.NewMeta()
	meta.CommitErr = errors.New("proposal timed out")
	n := open(t, meta, nodetest.NewStore(), node.Options{})
	n.CreateCollection(ctx, node.CollectionMeta{Name: "c", Dim: 4, Metric: ivf.L2, NList: 2})
	r := rand.New(rand.NewPCG(3, 3))
	vecs := randVecs(r, 100, 4)
	n.Insert(ctx, "c", items("v", vecs, 4))
	if _, err := n.Train(ctx, "c", 0); err != nil {
		t.Fatal(err)
	}
	s := waitState(t, n, "c", node.Ready)
	if s.Epoch != 2 || s.Count != 100 {
		t.Fatalf("after training: %+v", s)
	}
	res, err := n.Search(ctx, "c", node.SearchRequest{Vector: vecs[4:8], K: 1, NProbe: 2, Refine: 4})
	if err != nil || res.Hits[0].UserID != "v1" {
		t.Fatalf("search: %+v %v", res, err)
	}
}

// TestCompactionAfterDeletes: deleting many items compacts the lists in
// the background; the deleted stay gone and the rest stay found.
func TestCompactionAfterDeletes(t *testing.T) {
	ctx := context.Background()
	n := open(t, nodetest.NewMeta(), nodetest.NewStore(), node.Options{})
	const d, nb = 4, 3000
	n.CreateCollection(ctx, node.CollectionMeta{Name: "c", Dim: d, Metric: ivf.L2, NList: 4})
	r := rand.New(rand.NewPCG(8, 8))
	vecs := randVecs(r, nb, d)
	n.Insert(ctx, "c", items("v", vecs, d))
	n.Train(ctx, "c", 0)
	waitState(t, n, "c", node.Ready)
	for i := 0; i < 2000; i++ {
		if err := n.Delete(ctx, "c", fmt.Sprintf("v%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	for _, i := range []int{0, 1999, 2000, 2999} {
		res, err := n.Search(ctx, "c", node.SearchRequest{Vector: vecs[i*d : (i+1)*d], K: 1, NProbe: 4, Refine: 8})
		if err != nil {
			t.Fatal(err)
		}
		want := fmt.Sprintf("v%d", i)
		if got := res.Hits[0].UserID; (i < 2000) == (got == want) {
			t.Fatalf("search v%d: got %s", i, got)
		}
	}
	if s, _ := n.Describe("c"); s.Count != 1000 {
		t.Fatalf("count %d", s.Count)
	}
}

// A node that was closed while its collection was dropped and created
// again under the same name (so its Sync never saw the drop) deletes its
// data of the earlier collection when it opens the new one; a table that
// names an earlier collection than the store's data (a restart from an
// older snapshot) leaves the data alone and the collection closed.
func TestReopenAfterDropAndCreate(t *testing.T) {
	ctx := context.Background()
	meta, st := nodetest.NewMeta(), nodetest.NewStore()
	n := open(t, meta, st, node.Options{})
	const d = 4
	if _, err := n.CreateCollection(ctx, node.CollectionMeta{Name: "c", Dim: d, Metric: ivf.L2}); err != nil {
		t.Fatal(err)
	}
	vecs := randVecs(rand.New(rand.NewPCG(1, 2)), 10, d)
	if _, err := n.Insert(ctx, "c", items("old", vecs, d)); err != nil {
		t.Fatal(err)
	}
	first, _ := meta.Collection("c")
	if held, _ := st.Incarnation("c"); first.Created == 0 || held != first.Created {
		t.Fatalf("store incarnation %d, collection created %d", held, first.Created)
	}
	n.Close()

	// Dropped and created again while the node is closed.
	if err := meta.DropCollection(ctx, "c"); err != nil {
		t.Fatal(err)
	}
	if err := meta.CreateCollection(ctx, node.CollectionMeta{Name: "c", Dim: d, Metric: ivf.L2, State: node.Untrained, Epoch: 1}); err != nil {
		t.Fatal(err)
	}
	n = open(t, meta, st, node.Options{})
	if _, err := n.Get(ctx, "c", "old0", false); !errors.Is(err, node.ErrNoItem) {
		t.Fatalf("an item of the dropped collection after the reopen: %v", err)
	}
	if s, err := n.Describe("c"); err != nil || s.Count != 0 {
		t.Fatalf("the new collection: %+v %v", s, err)
	}
	if _, err := n.Insert(ctx, "c", items("new", vecs, d)); err != nil {
		t.Fatal(err)
	}
	n.Close()

	// The store's data is of a later collection than the table names.
	second, _ := meta.Collection("c")
	if err := st.SetIncarnation("c", second.Created+1); err != nil {
		t.Fatal(err)
	}
	n = open(t, meta, st, node.Options{})
	if _, err := n.Describe("c"); !errors.Is(err, node.ErrNoCollection) {
		t.Fatalf("a collection whose data is later than the table: %v", err)
	}
	if _, err := st.Get("c", "new0"); err != nil {
		t.Fatalf("its data: %v", err)
	}
}

// TestRecreatedBeforeSync: a collection dropped and created again with
// another dimension, in a table this node has not reconciled with yet
// (no Sync since, as while a restarted cluster node replays its Raft
// log): searches, inserts and gets name the new collection, not the
// earlier one still open here, which refused the new dimension.
func TestRecreatedBeforeSync(t *testing.T) {
	ctx := context.Background()
	meta, st := nodetest.NewMeta(), nodetest.NewStore()
	n := open(t, meta, st, node.Options{})
	if _, err := n.CreateCollection(ctx, node.CollectionMeta{Name: "c", Dim: 4, Metric: ivf.L2}); err != nil {
		t.Fatal(err)
	}
	if _, err := n.Insert(ctx, "c", items("old", randVecs(rand.New(rand.NewPCG(1, 2)), 10, 4), 4)); err != nil {
		t.Fatal(err)
	}
	// Changed in the table only, behind the node's back.
	if err := meta.DropCollection(ctx, "c"); err != nil {
		t.Fatal(err)
	}
	const d = 8
	if err := meta.CreateCollection(ctx, node.CollectionMeta{Name: "c", Dim: d, Metric: ivf.L2, State: node.Untrained, Epoch: 1}); err != nil {
		t.Fatal(err)
	}
	q := make([]float32, d)
	q[0] = 1
	res, err := n.Search(ctx, "c", node.SearchRequest{Vector: q, K: 5})
	if err != nil || len(res.Hits) != 0 {
		t.Fatalf("a search of the new collection: %+v %v", res, err)
	}
	if _, err := n.Get(ctx, "c", "old0", false); !errors.Is(err, node.ErrNoItem) {
		t.Fatalf("an item of the dropped collection: %v", err)
	}
	if _, err := n.Insert(ctx, "c", items("new", randVecs(rand.New(rand.NewPCG(3, 4)), 10, d), d)); err != nil {
		t.Fatal(err)
	}
	if s, err := n.Describe("c"); err != nil || s.Count != 10 || s.Dim != d {
		t.Fatalf("the new collection: %+v %v", s, err)
	}
}

// TestDropStopsTraining: dropping a collection while k-means runs stops
// k-means (it used to run on, abandoned after 5 s, with the node's lock
// held that long by the drop).
func TestDropStopsTraining(t *testing.T) {
	ctx := context.Background()
	// One thread, 400,000 vectors, 4,096 lists: k-means takes about 30 s
	// on the 2-vCPU VM (15 s for 200,000), far longer than the drop's
	// 5 s wait, unless it stops.
	n := open(t, nodetest.NewMeta(), nodetest.NewStore(), node.Options{Threads: 1})
	const d, nb = 16, 400_000
	if _, err := n.CreateCollection(ctx, node.CollectionMeta{Name: "c", Dim: d, Metric: ivf.L2, NList: 4096}); err != nil {
		t.Fatal(err)
	}
	vecs := randVecs(rand.New(rand.NewPCG(3, 4)), nb, d)
	for i := 0; i < nb; i += 20_000 {
		if _, err := n.Insert(ctx, "c", items(fmt.Sprint("b", i, "-"), vecs[i*d:(i+20_000)*d], d)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := n.Train(ctx, "c", 0); err != nil {
		t.Fatal(err)
	}
	inKMeans := func() bool {
		buf := make([]byte, 1<<20)
		return strings.Contains(string(buf[:runtime.Stack(buf, true)]), "lookalike/ivf.kmeans")
	}
	for deadline := time.Now().Add(30 * time.Second); !inKMeans(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("k-means never started")
		}
	}
	if err := n.DropCollection(ctx, "c"); err != nil {
		t.Fatal(err)
	}
	// The drop waited for training to end; it gives up after 5 s, and
	// k-means would then still be running.
	if inKMeans() {
		t.Fatal("k-means still runs after the drop returned")
	}
}

// A collection dropped while a node was away, with no later one of its
// name, goes from the node's store when it next syncs with the table:
// data recorded as of a collection the table has passed and lacks. Data
// of a later collection than the table knows, or with no record, stays.
func TestReopenAfterDrop(t *testing.T) {
	ctx := context.Background()
	meta, st := nodetest.NewMeta(), nodetest.NewStore()
	n := open(t, meta, st, node.Options{})
	const d = 4
	vecs := randVecs(rand.New(rand.NewPCG(1, 2)), 10, d)
	for _, name := range []string{"gone", "kept", "legacy"} {
		if _, err := n.CreateCollection(ctx, node.CollectionMeta{Name: name, Dim: d, Metric: ivf.L2}); err != nil {
			t.Fatal(err)
		}
		if _, err := n.Insert(ctx, name, items(name, vecs, d)); err != nil {
			t.Fatal(err)
		}
	}
	n.Close()

	// While the node is closed: two drops, one of data written before
	// incarnations were recorded; and data of a collection the table has
	// not reached yet (its create is later than the table's version).
	for _, name := range []string{"gone", "legacy"} {
		if err := meta.DropCollection(ctx, name); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.SetIncarnation("legacy", 0); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Apply(&node.Batch{Collection: "future", Dim: d, Puts: []node.Item{{ID: 1, UserID: "future0", List: node.BufferList, Vector: vecs[:d]}}}); err != nil {
		t.Fatal(err)
	}
	if err := st.SetIncarnation("future", meta.TableVersion()+1); err != nil {
		t.Fatal(err)
	}

	n = open(t, meta, st, node.Options{})
	if _, err := st.Get("gone", "gone0"); !errors.Is(err, node.ErrNoItem) {
		t.Fatalf("an item of the collection dropped while the node was away: %v", err)
	}
	if held, _ := st.Incarnations(); held["gone"] != 0 {
		t.Fatalf("the dropped collection's incarnation is still recorded: %v", held)
	}
	for _, id := range []struct{ coll, user string }{{"kept", "kept0"}, {"legacy", "legacy0"}, {"future", "future0"}} {
		if _, err := st.Get(id.coll, id.user); err != nil {
			t.Fatalf("%s of %q: %v", id.user, id.coll, err)
		}
	}
	if s, err := n.Describe("kept"); err != nil || s.Count != 10 {
		t.Fatalf("the collection kept: %+v %v", s, err)
	}

	// The table moves past future's create without naming it (a snapshot
	// covering its create and its drop): no name leaves the table, but
	// the sweep that kept future's data runs again and deletes it.
	if _, err := n.CreateCollection(ctx, node.CollectionMeta{Name: "next", Dim: d, Metric: ivf.L2}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Get("future", "future0"); !errors.Is(err, node.ErrNoItem) {
		t.Fatalf("data of a collection the table went past without it: %v", err)
	}
}

// countingStore counts the sweeps of the store (Incarnations).
type countingStore struct {
	node.Storage
	sweeps atomic.Int32
}

func (c *countingStore) Incarnations() (map[string]uint64, error) {
	c.sweeps.Add(1)
	return c.Storage.Incarnations()
}

// TestSyncSweepsOnlyWhenNeeded: Sync sweeps the store for dropped
// collections at open and when a name leaves the table, not at every
// table change (one store read per collection name each time).
func TestSyncSweepsOnlyWhenNeeded(t *testing.T) {
	ctx := context.Background()
	meta, st := nodetest.NewMeta(), &countingStore{Storage: nodetest.NewStore()}
	n, err := node.Open(node.Options{NodeID: "n1", AutoTrainAt: -1}, meta, st)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	want := func(sweeps int32, after string) {
		t.Helper()
		if got := st.sweeps.Load(); got != sweeps {
			t.Fatalf("after %s: %d sweeps, want %d", after, got, sweeps)
		}
	}
	want(1, "open")
	for _, name := range []string{"a", "b"} {
		if _, err := n.CreateCollection(ctx, node.CollectionMeta{Name: name, Dim: 2, Metric: ivf.L2}); err != nil {
			t.Fatal(err)
		}
	}
	if err := n.Sync(); err != nil {
		t.Fatal(err)
	}
	want(1, "two creates and a Sync")
	if err := n.DropCollection(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	want(2, "a drop")
	if err := n.Sync(); err != nil {
		t.Fatal(err)
	}
	want(2, "a Sync after the drop")
}
