package node_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"lookalike/ivf"
	"lookalike/node"
	"lookalike/node/nodetest"
)

// scanDim is the dimension of trainSmall's collection.
const scanDim = 8

// trainSmall creates collection "c" on n (scanDim, L2, nlist 4), inserts
// 400 seeded random vectors under ids v0..v399 and trains it. It returns
// the vectors.
func trainSmall(t *testing.T, n *node.Node) []float32 {
	t.Helper()
	ctx := context.Background()
	const d, nb = scanDim, 400
	if _, err := n.CreateCollection(ctx, node.CollectionMeta{Name: "c", Dim: d, Metric: ivf.L2, NList: 4}); err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(1, 2))
	vecs := make([]float32, nb*d)
	for i := range vecs {
		vecs[i] = r.Float32()
	}
	if _, err := n.Insert(ctx, "c", items("v", vecs, d)); err != nil {
		t.Fatal(err)
	}
	if _, err := n.Train(ctx, "c", 0); err != nil {
		t.Fatal(err)
	}
	waitState(t, n, "c", node.Ready)
	return vecs
}

// countingScanner is the CPU scanner with ScannerStats, as package cuda's
// Scanner reports its own.
type countingScanner struct{ queries atomic.Int64 }

func (s *countingScanner) Scan(ix *ivf.Index, q []float32, probes [][]ivf.Probe, k int, out [][]ivf.Hit) error {
	s.queries.Add(int64(len(probes)))
	return ivf.CPUScanner{}.Scan(ix, q, probes, k, out)
}

func (s *countingScanner) Metrics() map[string]float64 {
	return map[string]float64{"queries_total": float64(s.queries.Load()), "resident_bytes": 42}
}

// TestScannerMetrics: a node's /metrics exports its Options.Scanner's
// figures, and the scanner really serves the trained collection.
func TestScannerMetrics(t *testing.T) {
	ctx := context.Background()
	sc := &countingScanner{}
	n := open(t, nodetest.NewMeta(), nodetest.NewStore(), node.Options{Scanner: sc})
	vecs := trainSmall(t, n)
	const d = scanDim
	for i := 0; i < 3; i++ {
		if _, err := n.Search(ctx, "c", node.SearchRequest{Vector: vecs[i*d : (i+1)*d], K: 5, NProbe: 2}); err != nil {
			t.Fatal(err)
		}
	}
	srv := httptest.NewServer(n.Handler(node.APIOptions{}))
	defer srv.Close()
	_, body, _ := client{t: t, base: srv.URL}.do("GET", "/metrics", "", nil)
	for _, want := range []string{
		"# TYPE lookalike_scanner_queries_total counter",
		fmt.Sprintf("lookalike_scanner_queries_total %d", sc.queries.Load()),
		"# TYPE lookalike_scanner_resident_bytes gauge",
		"lookalike_scanner_resident_bytes 42",
	} {
		if !strings.Contains(string(body), want+"\n") {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if sc.queries.Load() < 3 {
		t.Errorf("the scanner scanned %d queries, want ≥ 3", sc.queries.Load())
	}
}

// residentScanner records what the node tells a scanner that keeps
// indexes resident (package cuda's Preload and Forget).
type residentScanner struct {
	countingScanner
	mu     sync.Mutex
	events []string
	names  map[*ivf.Index]string
}

func (s *residentScanner) name(ix *ivf.Index) string {
	if s.names == nil {
		s.names = map[*ivf.Index]string{}
	}
	if _, ok := s.names[ix]; !ok {
		s.names[ix] = fmt.Sprintf("ix%d", len(s.names)+1)
	}
	return s.names[ix]
}

func (s *residentScanner) Preload(ix *ivf.Index) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.events = append(s.events, "preload "+s.name(ix))
	return nil
}

func (s *residentScanner) Forget(ix *ivf.Index) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.events = append(s.events, "forget "+s.name(ix))
	return nil
}

// waitEvents waits until the scanner has seen want (preloads run in the
// background), then checks that nothing else came.
func (s *residentScanner) waitEvents(t *testing.T, want ...string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		s.mu.Lock()
		got := slices.Clone(s.events)
		s.mu.Unlock()
		if slices.Equal(got, want) {
			return
		}
		if len(got) > len(want) || time.Now().After(deadline) {
			t.Fatalf("scanner events %q, want %q", got, want)
		}
	}
}

// TestResidentScanner: a scanner that keeps indexes resident (the GPU's)
// is told to preload a newly trained index and to forget a dropped
// collection's.
func TestResidentScanner(t *testing.T) {
	ctx := context.Background()
	sc := &residentScanner{}
	n := open(t, nodetest.NewMeta(), nodetest.NewStore(), node.Options{Scanner: sc})
	trainSmall(t, n)
	sc.waitEvents(t, "preload ix1")
	if err := n.DropCollection(ctx, "c"); err != nil {
		t.Fatal(err)
	}
	sc.waitEvents(t, "preload ix1", "forget ix1")
}

// failingScanner fails every scan, as package cuda's does after a device
// error.
type failingScanner struct{ calls atomic.Int64 }

func (s *failingScanner) Scan(*ivf.Index, []float32, [][]ivf.Probe, int, [][]ivf.Hit) error {
	s.calls.Add(1)
	return errors.New("cuda: device error: launch failed")
}

// TestScannerFallback: when the configured scanner fails, searches are
// answered by ivf's CPU kernels, exactly as a node without one answers,
// and /metrics counts the fallbacks.
func TestScannerFallback(t *testing.T) {
	ctx := context.Background()
	sc := &failingScanner{}
	n := open(t, nodetest.NewMeta(), nodetest.NewStore(), node.Options{Scanner: sc})
	plain := open(t, nodetest.NewMeta(), nodetest.NewStore(), node.Options{})
	const d, searches = scanDim, 5
	vecs := trainSmall(t, n)
	trainSmall(t, plain)
	for i := 0; i < searches; i++ {
		req := node.SearchRequest{Vector: vecs[i*d : (i+1)*d], K: 5, NProbe: 2}
		got, err := n.Search(ctx, "c", req)
		if err != nil {
			t.Fatalf("search %d with a failing scanner: %v", i, err)
		}
		want, err := plain.Search(ctx, "c", req)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(hitIDs(got.Hits), hitIDs(want.Hits)) {
			t.Errorf("search %d: %v, a node without a scanner %v", i, hitIDs(got.Hits), hitIDs(want.Hits))
		}
	}
	if sc.calls.Load() < searches {
		t.Fatalf("the scanner was called %d times for %d searches", sc.calls.Load(), searches)
	}
	srv := httptest.NewServer(n.Handler(node.APIOptions{}))
	defer srv.Close()
	_, body, _ := client{t: t, base: srv.URL}.do("GET", "/metrics", "", nil)
	if want := fmt.Sprintf("lookalike_scanner_fallbacks_total %d\n", sc.calls.Load()); !strings.Contains(string(body), want) {
		t.Errorf("/metrics lacks %q", want)
	}
}
