//go:build faiss

package faiss

import (
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"lookalike/bench"
	"lookalike/ivf"
)

// The test binary doubles as a faiss-serve child (os/exec's helper-process
// pattern), so the subprocess path is tested without cmd/lookalike.
const helperEnv = "LOOKALIKE_FAISS_TEST_SERVE"

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) == "1" {
		if err := ServeEngine(os.Stdin, os.Stdout, NativeEngine); err != nil {
			os.Stderr.WriteString(err.Error() + "\n")
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

const (
	testDim   = 64
	testN     = 20000
	testNList = 64
	testNQ    = 100
	testK     = 10
)

// clustered returns n rows of dim floats around 200 seeded Gaussian centres,
// each row scaled by a random factor in [0.5, 2) (which Cosine must ignore).
func clustered(seed uint64, n, dim int) []float32 {
	rng := rand.New(rand.NewPCG(seed, 1))
	centres := make([]float32, 200*dim)
	for i := range centres {
		centres[i] = float32(rng.NormFloat64())
	}
	x := make([]float32, n*dim)
	for i := range n {
		c := centres[rng.IntN(200)*dim:][:dim]
		s := float32(0.5 + 1.5*rng.Float64())
		for j := range dim {
			x[i*dim+j] = s * (c[j] + 0.3*float32(rng.NormFloat64()))
		}
	}
	return x
}

type dataset struct {
	base, train, queries []float32
}

func testData() dataset {
	base := clustered(1, testN, testDim)
	return dataset{base: base, train: base[:10000*testDim], queries: clustered(2, testNQ, testDim)}
}

func config(m ivf.Metric) bench.EngineConfig {
	return bench.EngineConfig{Dim: testDim, Metric: m, NList: testNList, Seed: 42}
}

func build(t testing.TB, m ivf.Metric, d dataset) *Engine {
	t.Helper()
	e, err := New(NativeEngine, config(m), Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	if err := e.Build(d.train, d.base); err != nil {
		t.Fatal(err)
	}
	return e
}

// recall is the mean fraction of the exact top k that got found.
func recall(t *testing.T, m ivf.Metric, d dataset, search func(q []float32) []int64) float64 {
	t.Helper()
	truth, err := ivf.BruteForce(m, testDim, d.base, d.queries, testK, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	var found int
	for i, hits := range truth {
		got := search(d.queries[i*testDim : (i+1)*testDim])
		for _, h := range hits {
			if slices.Contains(got, int64(h.ID)) {
				found++
			}
		}
	}
	return float64(found) / float64(len(truth)*testK)
}

func TestRecall(t *testing.T) {
	d := testData()
	for _, m := range []ivf.Metric{ivf.L2, ivf.IP, ivf.Cosine} {
		t.Run(m.String(), func(t *testing.T) {
			e := build(t, m, d)
			if got, want := e.MemoryBytes(), int64(testN*(testDim+8)+4*(testNList*testDim+2*testDim)); got != want {
				t.Errorf("MemoryBytes = %d, want %d", got, want)
			}
			var r1 float64
			for _, nprobe := range []int{1, testNList} {
				r := recall(t, m, d, func(q []float32) []int64 {
					ids, err := e.Search(q, testK, nprobe)
					if err != nil {
						t.Fatal(err)
					}
					if nprobe == testNList && len(ids) != testK {
						t.Fatalf("got %d ids, want %d", len(ids), testK)
					}
					return ids
				})
				t.Logf("%s nprobe %d: recall@%d %.3f", m, nprobe, testK, r)
				if nprobe == 1 {
					r1 = r
				} else if r < 0.9 || r < r1 {
					t.Errorf("recall@%d at nprobe=nlist is %.3f, want ≥ 0.9 and ≥ nprobe=1's %.3f", testK, r, r1)
				}
			}
		})
	}
}

func TestCosineIgnoresScale(t *testing.T) {
	d := testData()
	e := build(t, ivf.Cosine, d)
	q := d.queries[:testDim]
	want, err := e.Search(q, testK, 8)
	if err != nil {
		t.Fatal(err)
	}
	scaled := slices.Clone(q)
	for i := range scaled {
		scaled[i] *= 7.5
	}
	got, err := e.Search(scaled, testK, 8)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, want) {
		t.Errorf("scaled query: got %v, want %v", got, want)
	}
	if !slices.Equal(q, testData().queries[:testDim]) {
		t.Error("Search modified the caller's query")
	}
}

func TestErrors(t *testing.T) {
	d := testData()
	if _, err := New(NativeEngine, bench.EngineConfig{Dim: 8, NList: 4, Metric: 9}, Options{}); !errors.Is(err, ivf.ErrUnknownMetric) {
		t.Errorf("bad metric: %v", err)
	}
	if _, err := New(NativeEngine, bench.EngineConfig{Dim: 0, NList: 4, Metric: ivf.L2}, Options{}); !errors.Is(err, ivf.ErrBadOptions) {
		t.Errorf("dim 0: %v", err)
	}

	e, err := New(NativeEngine, config(ivf.L2), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if _, err := e.Search(d.queries[:testDim], testK, 1); !errors.Is(err, ivf.ErrNotTrained) {
		t.Errorf("search before build: %v", err)
	}
	// A C++ exception (adding to an untrained index) comes back as an error.
	if err := e.add(d.base[:10*testDim]); !errors.Is(err, ErrLibrary) {
		t.Errorf("add before train: %v, want ErrLibrary", err)
	} else {
		t.Logf("FAISS exception as error: %v", err)
	}
	if err := e.Build(d.train[:testDim*10+3], d.base); !errors.Is(err, ivf.ErrDimension) {
		t.Errorf("ragged training rows: %v", err)
	}
	if err := e.Build(d.train[:testDim*(testNList-1)], d.base); !errors.Is(err, ivf.ErrTooFewPoints) {
		t.Errorf("too few training rows: %v", err)
	}
	if err := e.Build(d.train, d.base); err != nil {
		t.Fatal(err)
	}
	if err := e.Build(d.train, d.base); !errors.Is(err, ivf.ErrTrained) {
		t.Errorf("second build: %v", err)
	}
	for _, c := range []struct {
		name      string
		q         []float32
		k, nprobe int
		want      error
	}{
		{"short query", d.queries[:testDim-1], testK, 1, ivf.ErrDimension},
		{"long query", d.queries[:testDim+1], testK, 1, ivf.ErrDimension},
		{"k 0", d.queries[:testDim], 0, 1, ivf.ErrBadK},
		{"k too big", d.queries[:testDim], ivf.MaxK + 1, 1, ivf.ErrBadK},
		{"nprobe 0", d.queries[:testDim], testK, 0, ivf.ErrBadNProbe},
		{"nprobe > nlist", d.queries[:testDim], testK, testNList + 1, ivf.ErrBadNProbe},
	} {
		if _, err := e.Search(c.q, c.k, c.nprobe); !errors.Is(err, c.want) {
			t.Errorf("%s: got %v, want %v", c.name, err, c.want)
		}
	}
	e.Close()
	if _, err := e.Search(d.queries[:testDim], testK, 1); !errors.Is(err, ErrClosed) {
		t.Errorf("search after close: %v", err)
	}
	if err := e.Close(); err != nil {
		t.Errorf("second close: %v", err)
	}
}

func TestRegistered(t *testing.T) {
	names := bench.EngineNames()
	if !slices.Contains(names, NativeEngine) {
		t.Errorf("%q not registered: %v", NativeEngine, names)
	}
	e, err := bench.NewEngine(NativeEngine, config(ivf.L2))
	if err != nil {
		t.Fatal(err)
	}
	e.Close()
}

// remoteVsNative checks that a Remote answers like a native engine built
// from the same data and seed, and returns the remote's self-timed and the
// parent's wall-clock nanoseconds per search.
func remoteVsNative(t *testing.T, r *Remote, d dataset) (self, wall time.Duration) {
	t.Helper()
	if err := r.Build(d.train, d.base); err != nil {
		t.Fatal(err)
	}
	if tr, ad := r.BuildTimes(); tr <= 0 || ad <= 0 {
		t.Errorf("remote BuildTimes = %v, %v", tr, ad)
	}
	e := build(t, ivf.L2, d)
	if got, want := r.MemoryBytes(), e.MemoryBytes(); got != want {
		t.Errorf("remote MemoryBytes = %d, native %d", got, want)
	}
	for i := range testNQ {
		q := d.queries[i*testDim : (i+1)*testDim]
		t0 := time.Now()
		got, err := r.Search(q, testK, 4)
		wall += time.Since(t0)
		if err != nil {
			t.Fatal(err)
		}
		self += time.Duration(r.LastSearchNanos())
		want, err := e.Search(q, testK, 4)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("query %d: remote %v, native %v", i, got, want)
		}
	}
	if r.LastSearchNanos() <= 0 {
		t.Errorf("LastSearchNanos = %d", r.LastSearchNanos())
	}
	// Errors: checked locally, and reported by the server.
	if _, err := r.Search(d.queries[:testDim-1], testK, 4); !errors.Is(err, ivf.ErrDimension) {
		t.Errorf("remote short query: %v", err)
	}
	if err := r.Build(d.train, d.base); !errors.Is(err, ErrRemote) {
		t.Errorf("remote second build: %v, want ErrRemote", err)
	}
	// The stream survives an engine error.
	if _, err := r.Search(d.queries[:testDim], testK, 4); err != nil {
		t.Errorf("search after a remote error: %v", err)
	}
	return self / testNQ, wall / testNQ
}

func TestServeRoundTrip(t *testing.T) {
	d := testData()
	toServer, fromClient := io.Pipe()
	toClient, fromServer := io.Pipe()
	served := make(chan error, 1)
	go func() {
		err := ServeEngine(toServer, fromServer, NativeEngine)
		fromServer.Close()
		served <- err
	}()
	r, err := NewRemote(NativeEngine, toClient, fromClient, config(ivf.L2))
	if err != nil {
		t.Fatal(err)
	}
	self, wall := remoteVsNative(t, r, d)
	t.Logf("in-process pipe: %v per search in the engine, %v seen by the client", self, wall)
	if err := r.Close(); err != nil {
		t.Errorf("close: %v", err)
	}
	if err := <-served; err != nil {
		t.Errorf("ServeEngine: %v", err)
	}
	if _, err := r.Search(d.queries[:testDim], testK, 1); err == nil {
		t.Error("search after close succeeded")
	}
}

func TestServeRefusesOtherEngines(t *testing.T) {
	if err := ServeEngine(nil, io.Discard, "faiss-other"); err == nil {
		t.Error("ServeEngine served an engine it does not link")
	}
}

func TestRemoteConfigError(t *testing.T) {
	toServer, fromClient := io.Pipe()
	toClient, fromServer := io.Pipe()
	served := make(chan error, 1)
	go func() {
		err := ServeEngine(toServer, fromServer, NativeEngine)
		fromServer.Close()
		served <- err
	}()
	_, err := NewRemote(NativeEngine, toClient, fromClient, bench.EngineConfig{Dim: 8, NList: 4, Metric: 9})
	if !errors.Is(err, ErrRemote) {
		t.Errorf("bad metric through the server: %v", err)
	}
	if err := <-served; err != nil {
		t.Errorf("ServeEngine: %v", err)
	}
}

func TestSubprocess(t *testing.T) {
	d := testData()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"=1")
	r, err := StartCommand(NativeEngine, cmd, config(ivf.L2))
	if err != nil {
		t.Fatal(err)
	}
	self, wall := remoteVsNative(t, r, d)
	t.Logf("subprocess: %v per search in the child, %v seen by the parent (pipe overhead %v)", self, wall, wall-self)
	if err := r.Close(); err != nil {
		t.Errorf("close: %v", err)
	}
	if cmd.ProcessState == nil || !cmd.ProcessState.Success() {
		t.Errorf("child state after Close: %v", cmd.ProcessState)
	}
}

func TestStartRemoteNoBinary(t *testing.T) {
	_, err := StartRemote(AVX2Engine, filepath.Join(t.TempDir(), "missing"), config(ivf.L2))
	if !errors.Is(err, ErrNoBinary) {
		t.Errorf("missing binary: %v, want ErrNoBinary", err)
	}
}

func TestAVX2Binary(t *testing.T) {
	t.Setenv("LOOKALIKE_FAISS_AVX2_BIN", "/x/y")
	if got := AVX2Binary(); got != "/x/y" {
		t.Errorf("with LOOKALIKE_FAISS_AVX2_BIN: %q", got)
	}
	t.Setenv("LOOKALIKE_FAISS_AVX2_BIN", "")
	t.Setenv("LOOKALIKE_CACHE", "/c")
	if got, want := AVX2Binary(), "/c/faiss-avx2/lookalike-faiss-avx2"; got != want {
		t.Errorf("with LOOKALIKE_CACHE: %q, want %q", got, want)
	}
}

// BenchmarkSearch is single-thread search latency at a few nprobes, with
// recall@10 against brute force.
func BenchmarkSearch(b *testing.B) {
	d := testData()
	e := build(b, ivf.L2, d)
	for _, nprobe := range []int{1, 8, testNList} {
		b.Run("nprobe="+strconv.Itoa(nprobe), func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if _, err := e.Search(d.queries[i*testDim:(i+1)*testDim], testK, nprobe); err != nil {
					b.Fatal(err)
				}
				i = (i + 1) % testNQ
			}
		})
	}
}

func TestOpenBLAS(t *testing.T) {
	libs := BLASLibraries()
	t.Logf("BLAS/LAPACK loaded: %v", libs)
	if !UsesOpenBLAS() {
		t.Errorf("FAISS runs on %v, not OpenBLAS: k-means is ~60× slower; run scripts/setup-faiss.sh", libs)
	}
}

// BenchmarkSubprocess is a search through a child process; pipe-ns/op is
// the parent's clock minus the child's, the overhead that LastSearchNanos
// leaves out.
func BenchmarkSubprocess(b *testing.B) {
	d := testData()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"=1")
	r, err := StartCommand(NativeEngine, cmd, config(ivf.L2))
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	if err := r.Build(d.train, d.base); err != nil {
		b.Fatal(err)
	}
	var self int64
	i := 0
	for b.Loop() {
		if _, err := r.Search(d.queries[i*testDim:(i+1)*testDim], testK, 1); err != nil {
			b.Fatal(err)
		}
		self += r.LastSearchNanos()
		i = (i + 1) % testNQ
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds()-self)/float64(b.N), "pipe-ns/op")
	b.ReportMetric(float64(self)/float64(b.N), "self-ns/op")
}
