//go:build cgo

package cuda

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"lookalike/cuda/cudatest"
	"lookalike/cuda/hostmath"
	"lookalike/ivf"
	"lookalike/ivf/ivftest"
)

func openFake(t testing.TB, f *fakeDev, o Options) *Scanner {
	t.Helper()
	if o.MaxWait == 0 {
		o.MaxWait = -1
	}
	if o.MemoryBudget == 0 {
		o.MemoryBudget = 1 << 28
	}
	s, err := newScanner(o, f.opener())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
		if len(f.allocs) != 0 {
			t.Errorf("%d device allocations leaked", len(f.allocs))
		}
	})
	return s
}

// opener opens a scanner for the suite tests below: on the fake device
// here, on the GPU in gpu_test.go (build tag cuda).
type opener func(t testing.TB, o Options) *Scanner

func fakeOpener(sms int) opener {
	return func(t testing.TB, o Options) *Scanner { return openFake(t, newFakeDev(sms), o) }
}

func TestScannerMatchesCPU(t *testing.T)           { testScannerMatchesCPU(t, fakeOpener(3)) }
func TestEmptyListsAndLargeK(t *testing.T)         { testEmptyListsAndLargeK(t, fakeOpener(3)) }
func TestBudgetSendsListsToCPU(t *testing.T)       { testBudgetSendsListsToCPU(t, fakeOpener(3)) }
func TestAddsTailsAndUploads(t *testing.T)         { testAddsTailsAndUploads(t, fakeOpener(3)) }
func TestRefreshUploadsTailsWhenIdle(t *testing.T) { testRefreshUploadsTailsWhenIdle(t, fakeOpener(3)) }
func TestDeletesAndCompact(t *testing.T)           { testDeletesAndCompact(t, fakeOpener(3)) }
func TestConcurrentScansAreBatched(t *testing.T)   { testConcurrentScansAreBatched(t, fakeOpener(3)) }
func TestTwoIndexesAndForget(t *testing.T)         { testTwoIndexesAndForget(t, fakeOpener(3)) }
func TestPreload(t *testing.T)                     { testPreload(t, fakeOpener(3)) }
func TestPreloadThenFill(t *testing.T)             { testPreloadThenFill(t, fakeOpener(3)) }
func TestAddsAndDeletesDuringScans(t *testing.T)   { testAddsAndDeletesDuringScans(t, fakeOpener(3)) }

// compare scans with s and with ivf's CPU scanner and checks the hits agree.
func compare(t testing.TB, s ivf.Scanner, ix *ivf.Index, queries []float32, probes [][]ivf.Probe, k int) {
	t.Helper()
	nq := len(probes)
	got := make([][]ivf.Hit, nq)
	want := make([][]ivf.Hit, nq)
	if err := s.Scan(ix, queries, probes, k, got); err != nil {
		t.Fatal(err)
	}
	if err := (ivf.CPUScanner{}).Scan(ix, queries, probes, k, want); err != nil {
		t.Fatal(err)
	}
	for i := range want {
		if err := cudatest.CheckSorted(got[i]); err != nil {
			t.Fatalf("k=%d query %d: %v", k, i, err)
		}
		if err := cudatest.CompareHits(got[i], want[i], 1e-4); err != nil {
			t.Fatalf("k=%d query %d: %v", k, i, err)
		}
	}
}

// The property: the scanner equals ivf.CPUScanner for every metric, on
// awkward dimensions, with k from 1 to beyond the probed entries, whether a
// query's rows go to one block or many (merge kernel).
func testScannerMatchesCPU(t *testing.T, open opener) {
	for _, m := range []ivf.Metric{ivf.L2, ivf.IP, ivf.Cosine} {
		for _, dim := range []int{3, 16, 37, 128} {
			for _, minRows := range []int{1, 100000} {
				t.Run(fmt.Sprintf("%v/dim%d/minrows%d", m, dim, minRows), func(t *testing.T) {
					const n, nlist, nq = 2000, 20, 9
					ix, _ := cudatest.Build(t, m, n, dim, nlist, uint64(dim))
					s := open(t, Options{MinBlockRows: minRows})
					queries, probes := cudatest.Probes(ix, ivftest.Clustered(nq, dim, 20, 5), 6)
					for _, k := range []int{1, 10, 257, 1024} {
						compare(t, s, ix, queries, probes, k)
					}
					st := s.Stats()
					if minRows == 1 && st.Merges == 0 {
						t.Error("many blocks per query, yet no merge launch")
					}
					if minRows > n && st.Merges != 0 {
						t.Error("one block per query, yet a merge launch")
					}
					if st.CPUListScans != 0 || st.TailRows != 0 || st.Batches == 0 || st.GPURows == 0 {
						t.Errorf("stats %+v", st)
					}
				})
			}
		}
	}
}

func testEmptyListsAndLargeK(t *testing.T, open opener) {
	const dim = 21
	ix, err := ivf.New(ivf.Options{Dim: dim, NList: 8, MinPointsPerCentroid: 1})
	if err != nil {
		t.Fatal(err)
	}
	data := ivftest.Clustered(400, dim, 4, 1)
	if _, err := ix.Train(data); err != nil {
		t.Fatal(err)
	}
	s := open(t, Options{})
	queries, probes := cudatest.Probes(ix, ivftest.Clustered(4, dim, 4, 2), 8)
	// Nothing added: every list is empty.
	compare(t, s, ix, queries, probes, 10)
	if err := ix.Add(ivftest.Seq(30), data[:30*dim]); err != nil {
		t.Fatal(err)
	}
	// k beyond all entries; some lists still empty; a query with no probes.
	probes[1] = nil
	compare(t, s, ix, queries, probes, 1000)
	// No queries at all.
	if err := s.Scan(ix, nil, nil, 5, nil); err != nil {
		t.Fatal(err)
	}
}

func testBudgetSendsListsToCPU(t *testing.T, open opener) {
	const dim, n, nlist = 32, 3000, 16
	ix, _ := cudatest.Build(t, ivf.L2, n, dim, nlist, 7)
	// Room for the constants and about a third of the lists.
	consts := layoutConsts(nlist, padDim(dim)).size
	budget := consts + int64(n/3)*int64(padDim(dim)+8)
	s := open(t, Options{MemoryBudget: budget})
	queries, probes := cudatest.Probes(ix, ivftest.Clustered(20, dim, 20, 8), nlist)
	compare(t, s, ix, queries, probes, 50)
	st := s.Stats()
	if st.CPUListScans == 0 || st.ResidentLists == 0 || st.ResidentLists == nlist {
		t.Errorf("want some lists resident and some on the CPU: %+v", st)
	}
	if st.ResidentBytes > budget {
		t.Errorf("resident %d bytes over the budget %d", st.ResidentBytes, budget)
	}
	// No budget at all: everything on the CPU, same answers.
	s2 := open(t, Options{MemoryBudget: 1})
	compare(t, s2, ix, queries, probes, 50)
	if st := s2.Stats(); st.ResidentLists != 0 || st.CPUListScans != int64(20*nlist) {
		t.Errorf("budget 1: %+v", st)
	}
}

func testAddsTailsAndUploads(t *testing.T, open opener) {
	for _, m := range []ivf.Metric{ivf.L2, ivf.IP} {
		t.Run(m.String(), func(t *testing.T) {
			const dim, nlist = 24, 10
			data := ivftest.Clustered(6000, dim, 10, 3)
			ix := cudatest.BuildFrom(t, m, data[:2000*dim], dim, nlist, 3)
			queries, probes := cudatest.Probes(ix, ivftest.Clustered(10, dim, 10, 4), 4)
			add := func(from, to int) {
				if err := ix.Add(ivftest.Seq(to)[from:], data[from*dim:to*dim]); err != nil {
					t.Fatal(err)
				}
			}

			// Tails left to the CPU.
			s := open(t, Options{MaxTail: 1 << 20, RefreshInterval: -1})
			compare(t, s, ix, queries, probes, 20)
			add(2000, 2600)
			compare(t, s, ix, queries, probes, 1024)
			if st := s.Stats(); st.TailRows == 0 || st.TailScans == 0 {
				t.Errorf("appended rows were not scanned as tails: %+v", st)
			}

			// Every tail uploaded before the launch: first into spare
			// capacity (k covers every probed row, so a row missing on the
			// device would show), then beyond it (reallocation).
			s2 := open(t, Options{MaxTail: -1, RefreshInterval: -1})
			compare(t, s2, ix, queries, probes, 20)
			up, bytes := s2.Stats().Uploads, s2.Stats().UploadBytes
			add(2600, 2650)
			compare(t, s2, ix, queries, probes, 1024)
			st := s2.Stats()
			if st.TailRows != 0 || st.Uploads <= up || st.UploadBytes-bytes > 50*int64(padDim(dim)+8) {
				t.Errorf("appended rows not uploaded alone: %+v", st)
			}
			add(2650, 6000)
			compare(t, s2, ix, queries, probes, 1024)
			if st := s2.Stats(); st.TailRows != 0 {
				t.Errorf("tails scanned on the CPU with MaxTail -1: %+v", st)
			}
		})
	}
}

func testRefreshUploadsTailsWhenIdle(t *testing.T, open opener) {
	const dim = 16
	data := ivftest.Clustered(3000, dim, 8, 9)
	ix := cudatest.BuildFrom(t, ivf.L2, data[:1000*dim], dim, 6, 9)
	queries, probes := cudatest.Probes(ix, ivftest.Clustered(5, dim, 8, 10), 6)
	s := open(t, Options{MaxTail: 1 << 20, RefreshInterval: time.Millisecond})
	compare(t, s, ix, queries, probes, 10)
	ids := make([]uint64, 2000)
	for i := range ids {
		ids[i] = uint64(1000 + i)
	}
	if err := ix.Add(ids, data[1000*dim:]); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for s.Stats().UploadBytes < int64(2000*(padDim(dim)+8)) {
		if time.Now().After(deadline) {
			t.Fatalf("idle refresh did not upload the tails: %+v", s.Stats())
		}
		time.Sleep(time.Millisecond)
	}
	before := s.Stats().TailRows
	compare(t, s, ix, queries, probes, 10)
	if st := s.Stats(); st.TailRows != before {
		t.Errorf("tails scanned on the CPU after refresh: %+v", st)
	}
}

func testDeletesAndCompact(t *testing.T, open opener) {
	for _, m := range []ivf.Metric{ivf.L2, ivf.Cosine} {
		t.Run(m.String(), func(t *testing.T) {
			const dim, n, nlist = 19, 3000, 12
			ix, _ := cudatest.Build(t, m, n, dim, nlist, 11)
			queries, probes := cudatest.Probes(ix, ivftest.Clustered(12, dim, 20, 12), 5)
			s := open(t, Options{MinBlockRows: 64})
			compare(t, s, ix, queries, probes, 30)
			// Delete the current best hits: they must vanish at once.
			got := make([][]ivf.Hit, len(probes))
			if err := s.Scan(ix, queries, probes, 30, got); err != nil {
				t.Fatal(err)
			}
			deleted := map[uint64]bool{}
			for _, h := range got {
				for _, x := range h[:10] {
					ix.Delete(x.ID)
					deleted[x.ID] = true
				}
			}
			for id := uint64(0); id < n; id += 5 {
				ix.Delete(id)
				deleted[id] = true
			}
			if err := s.Scan(ix, queries, probes, 30, got); err != nil {
				t.Fatal(err)
			}
			for i, h := range got {
				for _, x := range h {
					if deleted[x.ID] {
						t.Fatalf("query %d: deleted id %d returned", i, x.ID)
					}
				}
			}
			compare(t, s, ix, queries, probes, 30)
			if st := s.Stats(); st.TombUploads == 0 {
				t.Errorf("no bitmap uploads: %+v", st)
			}
			// Compact: new generations, uploaded again.
			if ix.Compact() == 0 {
				t.Fatal("nothing compacted")
			}
			compare(t, s, ix, queries, probes, 30)
			if st := s.Stats(); st.Reuploads == 0 {
				t.Errorf("no re-uploads after Compact: %+v", st)
			}
		})
	}
}

func testConcurrentScansAreBatched(t *testing.T, open opener) {
	const dim, nlist = 40, 16
	ix, _ := cudatest.Build(t, ivf.L2, 4000, dim, nlist, 13)
	queries, probes := cudatest.Probes(ix, ivftest.Clustered(64, dim, 20, 14), 4)
	want := make([][]ivf.Hit, len(probes))
	if err := (ivf.CPUScanner{}).Scan(ix, queries, probes, 10, want); err != nil {
		t.Fatal(err)
	}
	s := open(t, Options{MaxWait: 20 * time.Millisecond, MaxBatch: 16})
	var wg sync.WaitGroup
	errs := make(chan error, len(probes))
	for i := range probes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out := make([][]ivf.Hit, 1)
			if err := s.Scan(ix, queries[i*dim:(i+1)*dim], probes[i:i+1], 10, out); err != nil {
				errs <- err
				return
			}
			if err := cudatest.CompareHits(out[0], want[i], 1e-4); err != nil {
				errs <- fmt.Errorf("query %d: %w", i, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	st := s.Stats()
	if st.Requests != int64(len(probes)) || st.Batches >= st.Requests || st.Batches < int64(len(probes)/16) {
		t.Errorf("%d requests in %d batches: want batching up to 16 queries", st.Requests, st.Batches)
	}
	// One call larger than MaxBatch is split, and still right.
	compare(t, s, ix, queries, probes, 10)
}

func testTwoIndexesAndForget(t *testing.T, open opener) {
	a, _ := cudatest.Build(t, ivf.L2, 1500, 20, 8, 1)
	b, _ := cudatest.Build(t, ivf.IP, 1500, 33, 8, 2)
	qa, pa := cudatest.Probes(a, ivftest.Clustered(6, 20, 20, 3), 3)
	qb, pb := cudatest.Probes(b, ivftest.Clustered(6, 33, 20, 4), 3)
	s := open(t, Options{MaxWait: 5 * time.Millisecond})
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if i%2 == 0 {
				compare(t, s, a, qa, pa, 7)
			} else {
				compare(t, s, b, qb, pb, 7)
			}
		}()
	}
	wg.Wait()
	before := s.Stats().ResidentBytes
	if err := s.Forget(a); err != nil {
		t.Fatal(err)
	}
	if after := s.Stats().ResidentBytes; after >= before {
		t.Errorf("Forget freed nothing: %d → %d bytes", before, after)
	}
	compare(t, s, a, qa, pa, 7)
}

func testPreload(t *testing.T, open opener) {
	ix, _ := cudatest.Build(t, ivf.L2, 2000, 24, 10, 5)
	s := open(t, Options{})
	if err := s.Preload(ix); err != nil {
		t.Fatal(err)
	}
	nonEmpty := 0
	for l := 0; l < ix.NList(); l++ {
		if ix.List(l).View().N > 0 {
			nonEmpty++
		}
	}
	if st := s.Stats(); st.ResidentLists != nonEmpty {
		t.Errorf("%d lists resident after Preload, want %d", st.ResidentLists, nonEmpty)
	}
	up := s.Stats().Uploads
	queries, probes := cudatest.Probes(ix, ivftest.Clustered(4, 24, 20, 6), 10)
	compare(t, s, ix, queries, probes, 10)
	if s.Stats().Uploads != up {
		t.Error("searches after Preload uploaded lists")
	}
}

// An index preloaded while its lists are empty (a node installs a trained
// index, then moves the rows in): once rows arrive, the idle refresh makes
// the lists resident without a search probing them first.
func testPreloadThenFill(t *testing.T, open opener) {
	const dim, n, nlist = 20, 3000, 8
	data := ivftest.Clustered(n, dim, 8, 13)
	ix, err := ivf.New(ivf.Options{Dim: dim, Metric: ivf.L2, NList: nlist, Seed: 13, MinPointsPerCentroid: 1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ix.Train(data); err != nil {
		t.Fatal(err)
	}
	s := open(t, Options{RefreshInterval: time.Millisecond})
	if err := s.Preload(ix); err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); st.ResidentLists != 0 {
		t.Fatalf("%d empty lists resident", st.ResidentLists)
	}
	if err := ix.Add(ivftest.Seq(n), data); err != nil {
		t.Fatal(err)
	}
	nonEmpty := 0
	for l := 0; l < nlist; l++ {
		if ix.List(l).View().N > 0 {
			nonEmpty++
		}
	}
	for deadline := time.Now().Add(5 * time.Second); s.Stats().ResidentLists != nonEmpty; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d lists resident after the rows came: %+v", s.Stats().ResidentLists, nonEmpty, s.Stats())
		}
	}
	before := s.Stats()
	queries, probes := cudatest.Probes(ix, ivftest.Clustered(6, dim, 8, 14), 4)
	compare(t, s, ix, queries, probes, 10)
	if st := s.Stats(); st.TailRows != before.TailRows || st.CPUListScans != before.CPUListScans || st.Uploads != before.Uploads {
		t.Errorf("the first searches scanned on the CPU or uploaded: before %+v, after %+v", before, st)
	}
}

// Adds and deletes while scans run: no error, no torn result, no deleted
// id that was deleted before the scan started; afterwards, exact.
func testAddsAndDeletesDuringScans(t *testing.T, open opener) {
	const dim, nlist = 12, 8
	data := ivftest.Clustered(8000, dim, 8, 21)
	ix := cudatest.BuildFrom(t, ivf.L2, data[:2000*dim], dim, nlist, 21)
	queries, probes := cudatest.Probes(ix, ivftest.Clustered(16, dim, 8, 22), 3)
	s := open(t, Options{MaxTail: 300, RefreshInterval: time.Millisecond, MaxWait: time.Millisecond})
	var deletedMu sync.Mutex
	deleted := map[uint64]bool{}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		r := rand.New(rand.NewPCG(1, 2))
		for next := 2000; next < 8000; next += 100 {
			if err := ix.Add(ivftest.Seq(8000)[next:next+100], data[next*dim:(next+100)*dim]); err != nil {
				t.Error(err)
				return
			}
			id := uint64(r.IntN(next))
			ix.Delete(id)
			deletedMu.Lock()
			deleted[id] = true
			deletedMu.Unlock()
		}
		close(stop)
	}()
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out := make([][]ivf.Hit, len(probes))
			for {
				select {
				case <-stop:
					return
				default:
				}
				deletedMu.Lock()
				before := make(map[uint64]bool, len(deleted))
				for id := range deleted {
					before[id] = true
				}
				deletedMu.Unlock()
				if err := s.Scan(ix, queries, probes, 15, out); err != nil {
					t.Error(err)
					return
				}
				for i, h := range out {
					if err := cudatest.CheckSorted(h); err != nil {
						t.Errorf("query %d: %v", i, err)
						return
					}
					for _, x := range h {
						if before[x.ID] || x.ID >= 8000 {
							t.Errorf("query %d: id %d (deleted before the scan, or unknown)", i, x.ID)
							return
						}
					}
				}
			}
		}()
	}
	wg.Wait()
	compare(t, s, ix, queries, probes, 15)
}

func TestCloseAndErrors(t *testing.T) {
	ix, _ := cudatest.Build(t, ivf.L2, 500, 8, 4, 1)
	queries, probes := cudatest.Probes(ix, ivftest.Clustered(3, 8, 20, 2), 2)
	out := make([][]ivf.Hit, 3)

	f := newFakeDev(2)
	s := openFake(t, f, Options{})
	for _, c := range []struct {
		name string
		err  error
		run  func() error
	}{
		{"k=0", ivf.ErrBadK, func() error { return s.Scan(ix, queries, probes, 0, out) }},
		{"k>max", ivf.ErrBadK, func() error { return s.Scan(ix, queries, probes, ivf.MaxK+1, out) }},
		{"dim", ErrBadRequest, func() error { return s.Scan(ix, queries[1:], probes, 5, out) }},
		{"out", ErrBadRequest, func() error { return s.Scan(ix, queries, probes, 5, out[:1]) }},
		{"list", ErrBadRequest, func() error {
			return s.Scan(ix, queries[:8], [][]ivf.Probe{{{List: 99}}}, 5, out)
		}},
		{"untrained", ivf.ErrNotTrained, func() error {
			u, _ := ivf.New(ivf.Options{Dim: 8, NList: 4})
			return s.Scan(u, queries, probes, 5, out)
		}},
	} {
		if err := c.run(); !errors.Is(err, c.err) {
			t.Errorf("%s: %v, want %v", c.name, err, c.err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal("second Close:", err)
	}
	if err := s.Scan(ix, queries, probes, 5, out); !errors.Is(err, ErrClosed) {
		t.Errorf("Scan after Close: %v", err)
	}
	if err := s.Preload(ix); !errors.Is(err, ErrClosed) {
		t.Errorf("Preload after Close: %v", err)
	}
	if !f.closed {
		t.Error("device not closed")
	}

	// A failing device fails the scan and every later one.
	f2 := newFakeDev(2)
	f2.failOp, f2.failAt = "scan", 2
	s2 := openFake(t, f2, Options{})
	if err := s2.Scan(ix, queries, probes, 5, out); err != nil {
		t.Fatal(err)
	}
	if err := s2.Scan(ix, queries, probes, 5, out); !errors.Is(err, ErrDevice) || !errors.Is(err, errFake) {
		t.Errorf("failing launch: %v", err)
	}
	if err := s2.Scan(ix, queries, probes, 5, out); !errors.Is(err, ErrDevice) {
		t.Errorf("after a failure: %v", err)
	}
}

func TestOptions(t *testing.T) {
	var o Options
	o.EnsureDefaults()
	if err := o.Validate(); err != nil {
		t.Fatal(err)
	}
	bad := Options{Device: -1, MemoryBudget: -1, MaxBatch: -3, MaxWait: time.Hour, BlocksPerSM: 100, MinBlockRows: -1}
	err := bad.Validate()
	if !errors.Is(err, ErrBadOptions) {
		t.Fatalf("got %v", err)
	}
	for _, s := range []string{"device", "budget", "batch", "wait", "per SM", "block rows"} {
		if !containsFold(err.Error(), s) {
			t.Errorf("error %q does not mention %q", err, s)
		}
	}
	if _, err := newScanner(bad, newFakeDev(1).opener()); !errors.Is(err, ErrBadOptions) {
		t.Errorf("newScanner with bad options: %v", err)
	}
	if got := budgetFor(Options{}, deviceInfo{FreeMem: 10 << 30}); got != 10<<30*8/10-256<<20 {
		t.Errorf("default budget %d", got)
	}
}

// layout.go mirrors facts of sq8.h; the header as compiled by the C
// compiler must agree.
func TestLayoutMatchesHeader(t *testing.T) {
	if hostmath.ProbeDescBytes != probeDescBytes || hostmath.BlockDescBytes != blockDescBytes || hostmath.MergeDescBytes != mergeDescBytes {
		t.Errorf("descriptor sizes: C %d/%d/%d, Go %d/%d/%d", hostmath.ProbeDescBytes, hostmath.BlockDescBytes, hostmath.MergeDescBytes,
			probeDescBytes, blockDescBytes, mergeDescBytes)
	}
	if hostmath.Chunk != chunk || hostmath.MaxLanes != maxLanes {
		t.Errorf("chunk %d/%d, lanes %d/%d", hostmath.Chunk, chunk, hostmath.MaxLanes, maxLanes)
	}
	for d := 1; d <= 2000; d++ {
		if padDim(d) != hostmath.Pad(d) || lanesFor(padDim(d)) != hostmath.Lanes(padDim(d)) {
			t.Fatalf("dim %d: Go pad %d lanes %d, C pad %d lanes %d", d, padDim(d), lanesFor(padDim(d)), hostmath.Pad(d), hostmath.Lanes(hostmath.Pad(d)))
		}
		if dp := padDim(d); sharedVec(dp) != hostmath.SVec(dp) {
			t.Fatalf("dp %d: Go shared vector %d floats, C %d", dp, sharedVec(dp), hostmath.SVec(dp))
		}
		if dp := padDim(d); sharedPairs(dp) != hostmath.SPairs(dp) {
			t.Fatalf("dp %d: Go shared pairs %d, C %d", dp, sharedPairs(dp), hostmath.SPairs(dp))
		}
	}
}
