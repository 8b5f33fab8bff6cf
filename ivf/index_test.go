package ivf_test

import (
	"bytes"
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"lookalike/ivf"
	"lookalike/ivf/ivftest"
)

func build(t testing.TB, m ivf.Metric, n, dim, nlist int, seed uint64) (*ivf.Index, []float32) {
	t.Helper()
	data := ivftest.Clustered(n, dim, 20, seed)
	ix, err := ivf.New(ivf.Options{Dim: dim, Metric: m, NList: nlist, Seed: int64(seed)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ix.Train(data); err != nil {
		t.Fatal(err)
	}
	if err := ix.Add(ivftest.Seq(n), data); err != nil {
		t.Fatal(err)
	}
	return ix, data
}

func ids(h []ivf.Hit) []uint64 {
	out := make([]uint64, len(h))
	for i, x := range h {
		out[i] = x.ID
	}
	return out
}

// Property: scanning every list and re-ranking with exact distances gives
// the brute-force answer.
func TestExhaustiveRefineEqualsBruteForce(t *testing.T) {
	for _, m := range []ivf.Metric{ivf.L2, ivf.IP, ivf.Cosine} {
		t.Run(m.String(), func(t *testing.T) {
			const n, dim, nlist, k = 3000, 37, 16, 10
			ix, data := build(t, m, n, dim, nlist, 3)
			queries := ivftest.Clustered(50, dim, 20, 99)
			want, err := ivf.BruteForce(m, dim, data, queries, k, 0, nil)
			if err != nil {
				t.Fatal(err)
			}
			got, err := ix.SearchBatch(queries, ivf.SearchOptions{K: k, NProbe: nlist, Refine: 30, Source: ivftest.Source{Dim: dim, Data: data}})
			if err != nil {
				t.Fatal(err)
			}
			for i := range want {
				if !slices.Equal(ids(got[i]), ids(want[i])) {
					t.Fatalf("query %d: got %v, want %v", i, ids(got[i]), ids(want[i]))
				}
				for j := range want[i] {
					if d := math.Abs(float64(got[i][j].Dist - want[i][j].Dist)); d > 1e-3*math.Abs(float64(want[i][j].Dist))+1e-4 {
						t.Fatalf("query %d hit %d: dist %v, want %v", i, j, got[i][j].Dist, want[i][j].Dist)
					}
				}
			}
		})
	}
}

// Property: SQ8 distances are within the quantization bound of exact ones.
func TestSQ8DistanceBound(t *testing.T) {
	for _, m := range []ivf.Metric{ivf.L2, ivf.IP} {
		t.Run(m.String(), func(t *testing.T) {
			const n, dim, nlist = 1000, 29, 4
			ix, data := build(t, m, n, dim, nlist, 5)
			q := ivftest.Clustered(1, dim, 20, 11)
			step := ix.Quantizer().Step
			var errNorm, ipBound float64
			for i, s := range step {
				errNorm += float64(s/2) * float64(s/2)
				ipBound += math.Abs(float64(q[i])) * float64(s/2)
			}
			errNorm = math.Sqrt(errNorm)
			hits, err := ix.Search(q, ivf.SearchOptions{K: ivf.MaxK, NProbe: nlist})
			if err != nil {
				t.Fatal(err)
			}
			if len(hits) != n {
				t.Fatalf("got %d hits, want all %d", len(hits), n)
			}
			for _, h := range hits {
				x := data[h.ID*dim : (h.ID+1)*dim]
				exact := m.Distance(q, x)
				if m == ivf.L2 {
					if d := math.Abs(math.Sqrt(float64(h.Dist)) - math.Sqrt(float64(exact))); d > errNorm*1.001+1e-4 {
						t.Fatalf("id %d: |√sq8 − √exact| = %v > bound %v", h.ID, d, errNorm)
					}
				} else if d := math.Abs(float64(h.Dist - exact)); d > ipBound*1.001+1e-3 {
					t.Fatalf("id %d: |sq8 − exact| = %v > bound %v", h.ID, d, ipBound)
				}
			}
		})
	}
}

func TestSaveLoadRoundTrip(t *testing.T) {
	const n, dim, nlist = 2000, 16, 8
	ix, _ := build(t, ivf.L2, n, dim, nlist, 7)
	ix.Delete(5)
	var buf bytes.Buffer
	if _, err := ix.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	ix2, err := ivf.Load(bytes.NewReader(buf.Bytes()), ivf.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if ix2.Len() != n-1 || ix2.NList() != nlist || ix2.Dim() != dim || ix2.Metric() != ivf.L2 {
		t.Fatalf("loaded len %d nlist %d dim %d metric %v", ix2.Len(), ix2.NList(), ix2.Dim(), ix2.Metric())
	}
	qs := ivftest.Clustered(20, dim, 20, 8)
	o := ivf.SearchOptions{K: 10, NProbe: 3}
	a, _ := ix.SearchBatch(qs, o)
	b, err := ix2.SearchBatch(qs, o)
	if err != nil {
		t.Fatal(err)
	}
	for i := range a {
		if !slices.Equal(a[i], b[i]) {
			t.Fatalf("query %d: before %v, after %v", i, a[i], b[i])
		}
	}
	// Writing the loaded index gives the same bytes: save → load is the identity.
	var buf2 bytes.Buffer
	if _, err := ix2.WriteTo(&buf2); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf.Bytes(), buf2.Bytes()) {
		t.Fatal("re-saved index differs")
	}
}

func TestLoadRejectsCorruption(t *testing.T) {
	ix, _ := build(t, ivf.IP, 800, 8, 4, 9)
	var buf bytes.Buffer
	if _, err := ix.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	good := buf.Bytes()
	for cut := 0; cut < len(good); cut += 1 + cut/7 {
		if _, err := ivf.Load(bytes.NewReader(good[:cut]), ivf.Options{}); !errors.Is(err, ivf.ErrCorrupt) {
			t.Fatalf("truncated at %d: err %v, want ErrCorrupt", cut, err)
		}
	}
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 200; i++ {
		bad := slices.Clone(good)
		bad[r.IntN(len(bad))] ^= byte(1 + r.IntN(255))
		if _, err := ivf.Load(bytes.NewReader(bad), ivf.Options{}); err == nil {
			t.Fatalf("flipped byte %d accepted", i)
		}
	}
	if _, err := ivf.Load(bytes.NewReader(good), ivf.Options{Dim: 9}); !errors.Is(err, ivf.ErrDimension) {
		t.Fatalf("dim mismatch: %v", err)
	}
}

func FuzzLoad(f *testing.F) {
	ix, _ := build(f, ivf.L2, 400, 4, 2, 1)
	var buf bytes.Buffer
	if _, err := ix.WriteTo(&buf); err != nil {
		f.Fatal(err)
	}
	f.Add(buf.Bytes())
	f.Add([]byte("LKIVF\r\n\x1a\x01\x00\x00\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		ix, err := ivf.Load(bytes.NewReader(b), ivf.Options{})
		if err != nil {
			return
		}
		// Whatever loads must be usable.
		q := make([]float32, ix.Dim())
		if _, err := ix.Search(q, ivf.SearchOptions{K: 3, NProbe: ix.NList()}); err != nil {
			t.Fatalf("loaded index cannot search: %v", err)
		}
	})
}

func TestDeletedNeverComesBack(t *testing.T) {
	const n, dim, nlist = 2000, 12, 8
	ix, data := build(t, ivf.L2, n, dim, nlist, 13)
	gone := map[uint64]bool{}
	for id := uint64(0); id < n; id += 7 {
		if !ix.Delete(id) {
			t.Fatalf("delete %d: not found", id)
		}
		gone[id] = true
	}
	if ix.Delete(n + 5) {
		t.Fatal("deleted an id that was never added")
	}
	check := func(ix *ivf.Index, stage string) {
		for qi := uint64(0); qi < 60; qi++ {
			q := data[qi*dim : (qi+1)*dim]
			hits, err := ix.Search(q, ivf.SearchOptions{K: 50, NProbe: nlist})
			if err != nil {
				t.Fatal(err)
			}
			for _, h := range hits {
				if gone[h.ID] {
					t.Fatalf("%s: deleted id %d returned", stage, h.ID)
				}
			}
		}
		if want := n - len(gone); ix.Len() != want {
			t.Fatalf("%s: len %d, want %d", stage, ix.Len(), want)
		}
	}
	check(ix, "after delete")
	if got := ix.Compact(); got != len(gone) {
		t.Fatalf("compact reclaimed %d, want %d", got, len(gone))
	}
	check(ix, "after compact")
	var buf bytes.Buffer
	ix.WriteTo(&buf)
	ix2, err := ivf.Load(&buf, ivf.Options{})
	if err != nil {
		t.Fatal(err)
	}
	check(ix2, "after reload")
}

func TestConcurrentAddSearchDelete(t *testing.T) {
	const dim, nlist = 16, 8
	ix, _ := build(t, ivf.L2, 1000, dim, nlist, 17)
	more := ivftest.Clustered(4000, dim, 20, 18)
	var wg sync.WaitGroup
	wg.Add(3)
	go func() {
		defer wg.Done()
		for i := 0; i < 40; i++ {
			ids := make([]uint64, 100)
			for j := range ids {
				ids[j] = uint64(10000 + i*100 + j)
			}
			if err := ix.Add(ids, more[i*100*dim:(i+1)*100*dim]); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	go func() {
		defer wg.Done()
		for i := uint64(0); i < 1000; i += 3 {
			ix.Delete(i)
			if i%300 == 0 {
				ix.Compact()
			}
		}
	}()
	go func() {
		defer wg.Done()
		for i := 0; i < 200; i++ {
			if _, err := ix.SearchBatch(more[:4*dim], ivf.SearchOptions{K: 20, NProbe: 4}); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	wg.Wait()
	if got, want := ix.Len(), 1000-334+4000; got != want {
		t.Fatalf("len %d, want %d", got, want)
	}
}

func TestTrainDeterministic(t *testing.T) {
	data := ivftest.Clustered(5000, 20, 20, 21)
	save := func(threads int) []byte {
		ix, _ := ivf.New(ivf.Options{Dim: 20, NList: 32, Seed: 4, Threads: threads})
		if _, err := ix.Train(data); err != nil {
			t.Fatal(err)
		}
		var b bytes.Buffer
		ix.WriteTo(&b)
		return b.Bytes()
	}
	if !bytes.Equal(save(1), save(3)) {
		t.Fatal("training differs with the number of threads")
	}
}

// TestTrainContext: a training whose context ends stops, returns the
// context's error and leaves the index untrained, and the next training
// gives what an uninterrupted one gives.
func TestTrainContext(t *testing.T) {
	data := ivftest.Clustered(5000, 20, 20, 21)
	save := func(ix *ivf.Index) []byte {
		var b bytes.Buffer
		if _, err := ix.WriteTo(&b); err != nil {
			t.Fatal(err)
		}
		return b.Bytes()
	}
	for _, plusplus := range []bool{false, true} {
		opts := ivf.Options{Dim: 20, NList: 32, Seed: 4, KMeansPlusPlus: plusplus}
		want, _ := ivf.New(opts)
		if _, err := want.Train(data); err != nil {
			t.Fatal(err)
		}
		ix, _ := ivf.New(opts)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if _, err := ix.TrainContext(ctx, data); !errors.Is(err, context.Canceled) {
			t.Fatalf("k-means++ %v: cancelled training returned %v", plusplus, err)
		}
		if ix.Trained() {
			t.Fatalf("k-means++ %v: a cancelled training left the index trained", plusplus)
		}
		if _, err := ix.TrainContext(context.Background(), data); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(save(ix), save(want)) {
			t.Fatalf("k-means++ %v: training after a cancelled one differs from a fresh one", plusplus)
		}
	}

	// Cancelled while it runs: a training of several minutes here (100,000
	// rows, 1,024 lists, 1,000 iterations) ends soon after.
	big := ivftest.Clustered(100_000, 64, 200, 5)
	ix, _ := ivf.New(ivf.Options{Dim: 64, NList: 1024, Iterations: 1000, Seed: 1})
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(200*time.Millisecond, cancel)
	done := make(chan error, 1)
	go func() {
		_, err := ix.TrainContext(ctx, big)
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("training cancelled while it ran returned %v", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("training still running 60 s after its context was cancelled")
	}
	if ix.Trained() {
		t.Fatal("a cancelled training left the index trained")
	}
}

func TestTrainAdaptsNList(t *testing.T) {
	ix, _ := ivf.New(ivf.Options{Dim: 4, NList: 100})
	rep, err := ix.Train(ivftest.Clustered(390, 4, 5, 1))
	if err != nil {
		t.Fatal(err)
	}
	if rep.NList != 10 || ix.NList() != 10 || rep.Warning == "" {
		t.Fatalf("report %+v, nlist %d", rep, ix.NList())
	}
}

func TestBadInput(t *testing.T) {
	ix, _ := build(t, ivf.L2, 500, 4, 4, 1)
	nan := float32(math.NaN())
	inf := float32(math.Inf(1))
	cases := []struct {
		name string
		err  error
		want error
	}{
		{"add wrong dim", ix.Add([]uint64{1}, []float32{1, 2, 3}), ivf.ErrDimension},
		{"add NaN", ix.Add([]uint64{1}, []float32{1, nan, 3, 4}), ivf.ErrNotFinite},
		{"add Inf", ix.Add([]uint64{1, 2}, []float32{1, 2, 3, 4, 1, 2, 3, inf}), ivf.ErrNotFinite},
		{"search k=0", searchErr(ix, []float32{1, 2, 3, 4}, 0, 1), ivf.ErrBadK},
		{"search k>1024", searchErr(ix, []float32{1, 2, 3, 4}, 1025, 1), ivf.ErrBadK},
		{"search nprobe>nlist", searchErr(ix, []float32{1, 2, 3, 4}, 5, 5), ivf.ErrBadNProbe},
		{"search wrong dim", searchErr(ix, []float32{1, 2}, 5, 1), ivf.ErrDimension},
		{"search NaN", searchErr(ix, []float32{1, 2, nan, 4}, 5, 1), ivf.ErrNotFinite},
		{"refine without source", func() error {
			_, err := ix.Search([]float32{1, 2, 3, 4}, ivf.SearchOptions{K: 1, Refine: 4})
			return err
		}(), ivf.ErrNoSource},
		{"train twice", func() error { _, err := ix.Train(make([]float32, 400)); return err }(), ivf.ErrTrained},
		{"train empty", func() error {
			ix, _ := ivf.New(ivf.Options{Dim: 4, NList: 4})
			_, err := ix.Train(nil)
			return err
		}(), ivf.ErrTooFewPoints},
		{"train ragged", func() error {
			ix, _ := ivf.New(ivf.Options{Dim: 4, NList: 4})
			_, err := ix.Train(make([]float32, 7))
			return err
		}(), ivf.ErrDimension},
		{"untrained search", func() error {
			ix, _ := ivf.New(ivf.Options{Dim: 4, NList: 4})
			_, err := ix.Search(make([]float32, 4), ivf.SearchOptions{K: 1})
			return err
		}(), ivf.ErrNotTrained},
		{"untrained add", func() error {
			ix, _ := ivf.New(ivf.Options{Dim: 4, NList: 4})
			return ix.Add([]uint64{1}, make([]float32, 4))
		}(), ivf.ErrNotTrained},
		{"unknown metric", func() error { _, err := ivf.New(ivf.Options{Dim: 4, NList: 4, Metric: 9}); return err }(), ivf.ErrUnknownMetric},
		{"bad options", func() error { _, err := ivf.New(ivf.Options{Dim: 0, NList: -1}); return err }(), ivf.ErrBadOptions},
		{"parse metric", func() error { _, err := ivf.ParseMetric("hamming"); return err }(), ivf.ErrUnknownMetric},
		{"cosine zero vector", func() error {
			ix, _ := build(t, ivf.Cosine, 500, 4, 4, 1)
			return ix.Add([]uint64{1}, make([]float32, 4))
		}(), ivf.ErrZeroVector},
	}
	for _, c := range cases {
		if !errors.Is(c.err, c.want) {
			t.Errorf("%s: err %v, want %v", c.name, c.err, c.want)
		}
	}
	if got := ix.Len(); got != 500 {
		t.Fatalf("a failed batch stored something: len %d", got)
	}
}

func searchErr(ix *ivf.Index, q []float32, k, nprobe int) error {
	_, err := ix.Search(q, ivf.SearchOptions{K: k, NProbe: nprobe})
	return err
}

// Property: MergeTopK of shards equals a global sort without duplicates.
func TestMergeTopKEqualsGlobalSort(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for trial := 0; trial < 300; trial++ {
		k := 1 + r.IntN(20)
		var lists [][]ivf.Hit
		best := map[uint64]float32{}
		for s := 0; s < r.IntN(5); s++ {
			var l []ivf.Hit
			for i := 0; i < r.IntN(30); i++ {
				h := ivf.Hit{ID: uint64(r.IntN(40)), Dist: float32(r.IntN(50))}
				l = append(l, h)
				if d, ok := best[h.ID]; !ok || h.Dist < d {
					best[h.ID] = h.Dist
				}
			}
			lists = append(lists, l)
		}
		var want []ivf.Hit
		for id, d := range best {
			want = append(want, ivf.Hit{ID: id, Dist: d})
		}
		slices.SortFunc(want, func(a, b ivf.Hit) int {
			if a.Dist != b.Dist {
				if a.Dist < b.Dist {
					return -1
				}
				return 1
			}
			return int(a.ID) - int(b.ID)
		})
		want = want[:min(k, len(want))]
		got := ivf.MergeTopK(k, lists...)
		if !slices.Equal(got, want) && !(len(got) == 0 && len(want) == 0) {
			t.Fatalf("trial %d: got %v, want %v", trial, got, want)
		}
	}
}

func TestTopKKeepsBest(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for trial := 0; trial < 100; trial++ {
		k := 1 + r.IntN(50)
		top := ivf.NewTopK(k)
		var all []ivf.Hit
		for i := 0; i < r.IntN(200); i++ {
			h := ivf.Hit{ID: uint64(i), Dist: float32(r.NormFloat64())}
			all = append(all, h)
			top.Push(h.ID, h.Dist)
		}
		slices.SortFunc(all, func(a, b ivf.Hit) int {
			if a.Dist < b.Dist {
				return -1
			} else if a.Dist > b.Dist {
				return 1
			}
			return 0
		})
		want := all[:min(k, len(all))]
		if got := top.Sorted(nil); !slices.Equal(got, want) && len(want) > 0 {
			t.Fatalf("got %v, want %v", got, want)
		}
	}
}
