package bench

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
)

// The synthetic data model (GaussianMixture). Every parameter comes from
// the seed, so a (seed, dim, clusters) triple names one distribution:
//
//   - Clusters come in ⌈√clusters⌉ groups. A group centre g is N(0, I); a
//     cluster centre is g + 0.2·N(0, I), so sibling clusters overlap (at
//     128-d with 100 clusters, 10–15% of queries have their nearest
//     neighbour in a sibling cluster) while groups stand apart: structure
//     at two scales, as in real embeddings.
//   - A cluster's weight is log-normal (exp(0.75·N(0,1)), normalised), so
//     cluster sizes vary by about 10× between the small and the large ones.
//   - A point of cluster j is c_j + σ_j·(W_j·u + 0.25·ε): u ~ N(0, I_r)
//     with r = min(dim, 16) is a latent position, W_j a dim×r matrix of
//     N(0, 1/r) entries (the cluster's own orientation), ε ~ N(0, I_dim)
//     isotropic noise, and the spread σ_j log-uniform in [0.4, 1.0]. Points
//     thus lie near a tilted r-dimensional sheet per cluster, like the low
//     intrinsic dimension of SIFT or CNN features, and neither clusters nor
//     Voronoi cells of a k-means separate neighbours cleanly.
//
// Rows are drawn in blocks of genBlock, block b of stream s from its own
// PCG stream, so the output is the same for any number of threads. Base
// rows are stream 1, queries stream 2: queries come from the same mixture
// but are not copies of base rows.

const (
	genBlock      = 4096
	streamModel   = 0
	streamBase    = 1
	streamQueries = 2
)

// mixture holds the parameters of the model above.
type mixture struct {
	dim, rank int
	seed      int64
	cum       []float64 // cumulative cluster weights, last = 1
	centres   []float32 // clusters × dim
	spread    []float32 // σ_j
	basis     []float32 // clusters × dim × rank, W_j row-major
}

// splitmix64 is a bijective mixer for deriving stream seeds.
func splitmix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ x>>30) * 0xbf58476d1ce4e5b9
	x = (x ^ x>>27) * 0x94d049bb133111eb
	return x ^ x>>31
}

func genRand(seed int64, stream, block uint64) *rand.Rand {
	return rand.New(rand.NewPCG(uint64(seed), splitmix64(stream<<40^block)))
}

func newMixture(dim, clusters int, seed int64) *mixture {
	rank := min(dim, 16)
	m := &mixture{
		dim: dim, rank: rank, seed: seed,
		cum:     make([]float64, clusters),
		centres: make([]float32, clusters*dim),
		spread:  make([]float32, clusters),
		basis:   make([]float32, clusters*dim*rank),
	}
	rng := genRand(seed, streamModel, 0)
	groups := int(math.Ceil(math.Sqrt(float64(clusters))))
	group := make([]float64, groups*dim)
	for i := range group {
		group[i] = rng.NormFloat64()
	}
	var total float64
	for j := range clusters {
		g := group[(j%groups)*dim : (j%groups)*dim+dim]
		for i := range dim {
			m.centres[j*dim+i] = float32(g[i] + 0.2*rng.NormFloat64())
		}
		total += math.Exp(0.75 * rng.NormFloat64())
		m.cum[j] = total
		m.spread[j] = float32(0.4 * math.Exp(rng.Float64()*math.Log(2.5)))
	}
	for j := range m.cum {
		m.cum[j] /= total
	}
	m.cum[clusters-1] = 1
	scale := 1 / math.Sqrt(float64(rank))
	for i := range m.basis {
		m.basis[i] = float32(scale * rng.NormFloat64())
	}
	return m
}

// fill draws block b of stream s into dst (at most genBlock rows).
func (m *mixture) fill(dst []float32, stream, block uint64) {
	rng := genRand(m.seed, stream, block)
	dim, rank := m.dim, m.rank
	u := make([]float32, rank)
	for row := 0; row+dim <= len(dst); row += dim {
		j, _ := slices.BinarySearch(m.cum, rng.Float64())
		j = min(j, len(m.cum)-1)
		for i := range u {
			u[i] = float32(rng.NormFloat64())
		}
		c := m.centres[j*dim : j*dim+dim]
		w := m.basis[j*dim*rank : (j+1)*dim*rank]
		s := m.spread[j]
		x := dst[row : row+dim]
		for i := range x {
			wi := w[i*rank:][:len(u)]
			var a float32
			for k, uk := range u {
				a += wi[k] * uk
			}
			x[i] = c[i] + s*(a+0.25*float32(rng.NormFloat64()))
		}
	}
}

// sample draws rows [0, n) of stream s, using all of GOMAXPROCS.
func (m *mixture) sample(n int, stream uint64) []float32 {
	out := make([]float32, n*m.dim)
	blocks := (n + genBlock - 1) / genBlock
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), blocks) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				b := int(next.Add(1)) - 1
				if b >= blocks {
					return
				}
				lo, hi := b*genBlock*m.dim, min((b+1)*genBlock, n)*m.dim
				m.fill(out[lo:hi], stream, uint64(b))
			}
		}()
	}
	wg.Wait()
	return out
}

// GaussianMixture returns n rows of dim floats drawn from the mixture of
// the given number of clusters that seed names (see the model above). The
// result is the same for the same arguments on every machine and at any
// GOMAXPROCS. It returns nil when n, dim or clusters is below 1 or dim is
// above MaxVecsDim.
func GaussianMixture(n, dim, clusters int, seed int64) []float32 {
	if n < 1 || dim < 1 || dim > MaxVecsDim || clusters < 1 {
		return nil
	}
	return newMixture(dim, clusters, seed).sample(n, streamBase)
}

// GaussianMixtureQueries returns n query rows from the same mixture as
// GaussianMixture(·, dim, clusters, seed), drawn from a different stream.
func GaussianMixtureQueries(n, dim, clusters int, seed int64) []float32 {
	if n < 1 || dim < 1 || dim > MaxVecsDim || clusters < 1 {
		return nil
	}
	return newMixture(dim, clusters, seed).sample(n, streamQueries)
}

// GenOptions configures GenerateFiles (`lookalike bench gen`).
type GenOptions struct {
	// N is the number of base vectors. Default 1,000,000.
	N int
	// Queries is the number of query vectors. Default 10,000.
	Queries int
	// Dim is the vector dimension. Default 128.
	Dim int
	// Clusters is the number of mixture components. Default min(1000, N).
	Clusters int
	// Seed names the mixture and its draws; 0 is a seed like any other.
	Seed int64
	// Out is the directory that receives base.fvecs and query.fvecs,
	// created if missing. Default ".".
	Out string
}

// EnsureDefaults fills the zero fields with their defaults.
func (o *GenOptions) EnsureDefaults() {
	if o.N == 0 {
		o.N = 1_000_000
	}
	if o.Queries == 0 {
		o.Queries = 10_000
	}
	if o.Dim == 0 {
		o.Dim = 128
	}
	if o.Clusters == 0 {
		o.Clusters = max(1, min(1000, o.N))
	}
	if o.Out == "" {
		o.Out = "."
	}
}

// Validate reports every invalid field at once.
func (o *GenOptions) Validate() error {
	var errs []error
	if o.N < 1 || o.N > math.MaxInt32 {
		errs = append(errs, fmt.Errorf("n %d out of range 1..%d", o.N, math.MaxInt32))
	}
	if o.Queries < 1 || o.Queries > math.MaxInt32 {
		errs = append(errs, fmt.Errorf("queries %d out of range 1..%d", o.Queries, math.MaxInt32))
	}
	if o.Dim < 1 || o.Dim > MaxVecsDim {
		errs = append(errs, fmt.Errorf("dim %d out of range 1..%d", o.Dim, MaxVecsDim))
	}
	if o.Clusters < 1 || (o.N >= 1 && o.Clusters > o.N) {
		errs = append(errs, fmt.Errorf("clusters %d out of range 1..n (%d)", o.Clusters, o.N))
	} else if o.Dim >= 1 && int64(o.Clusters)*int64(o.Dim)*int64(min(o.Dim, 16)) > 1<<28 {
		errs = append(errs, fmt.Errorf("clusters %d × dim %d: the model would take over 1 GiB", o.Clusters, o.Dim))
	}
	if o.Out == "" {
		errs = append(errs, errors.New("out directory is empty"))
	}
	if len(errs) > 0 {
		return fmt.Errorf("bench: gen options: %w", errors.Join(errs...))
	}
	return nil
}

// GenerateFiles writes o.N base and o.Queries query vectors of the mixture
// that o names to o.Out/base.fvecs and o.Out/query.fvecs, and returns the
// spec that loads them. Rows are generated on all cores and streamed to
// disk in order, a few blocks at a time; each file appears atomically when
// complete. progress, when not nil, receives a progress bar.
func GenerateFiles(ctx context.Context, o GenOptions, progress io.Writer) (DatasetSpec, error) {
	o.EnsureDefaults()
	if err := o.Validate(); err != nil {
		return DatasetSpec{}, err
	}
	if err := os.MkdirAll(o.Out, 0o755); err != nil {
		return DatasetSpec{}, fmt.Errorf("bench: gen: %w", err)
	}
	m := newMixture(o.Dim, o.Clusters, o.Seed)
	spec := DatasetSpec{
		Name:  fmt.Sprintf("gauss-%d-%d-c%d-s%d", o.N, o.Dim, o.Clusters, o.Seed),
		Base:  filepath.Join(o.Out, "base.fvecs"),
		Query: filepath.Join(o.Out, "query.fvecs"),
	}
	for _, f := range []struct {
		path   string
		n      int
		stream uint64
	}{{spec.Base, o.N, streamBase}, {spec.Query, o.Queries, streamQueries}} {
		b := newBar(progress, int64(f.n), "generate "+filepath.Base(f.path))
		err := writeFileAtomic(f.path, func(w io.Writer) error {
			return m.stream(ctx, w, f.n, f.stream, b.add)
		})
		if err != nil {
			b.exit()
			return DatasetSpec{}, err
		}
		b.finish()
	}
	return spec, nil
}

// stream writes rows [0, n) of a stream as .fvecs records to w. Workers
// generate and encode blocks; this goroutine writes them in block order.
func (m *mixture) stream(ctx context.Context, w io.Writer, n int, stream uint64, progress func(rows int)) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	blocks := (n + genBlock - 1) / genBlock
	workers := min(runtime.GOMAXPROCS(0), blocks)
	type job struct {
		b   int
		out chan []byte
	}
	jobs := make(chan job)
	order := make(chan chan []byte, 2*workers)
	var wg sync.WaitGroup
	wg.Add(1 + workers)
	go func() { // feeder: hands out blocks in order
		defer wg.Done()
		defer close(jobs)
		defer close(order)
		for b := range blocks {
			j := job{b, make(chan []byte, 1)}
			select {
			case order <- j.out:
			case <-ctx.Done():
				return
			}
			select {
			case jobs <- j:
			case <-ctx.Done():
				return
			}
		}
	}()
	for range workers {
		go func() {
			defer wg.Done()
			rows := make([]float32, genBlock*m.dim)
			for j := range jobs {
				k := min(genBlock, n-j.b*genBlock)
				x := rows[:k*m.dim]
				m.fill(x, stream, uint64(j.b))
				buf := make([]byte, 0, k*(4+4*m.dim))
				for r := range k {
					buf = binary.LittleEndian.AppendUint32(buf, uint32(m.dim))
					for _, v := range x[r*m.dim : (r+1)*m.dim] {
						buf = binary.LittleEndian.AppendUint32(buf, math.Float32bits(v))
					}
				}
				j.out <- buf
			}
		}()
	}
	var err error
	written := 0
	for ch := range order {
		var buf []byte
		select {
		case buf = <-ch:
		case <-ctx.Done():
		}
		if err = ctx.Err(); err != nil {
			err = fmt.Errorf("bench: gen: %w", err)
			break
		}
		if _, err = w.Write(buf); err != nil {
			err = fmt.Errorf("bench: gen: %w", err)
			break
		}
		written++
		progress(len(buf) / (4 + 4*m.dim))
	}
	if err == nil && written < blocks { // the feeder saw the cancellation first
		err = fmt.Errorf("bench: gen: %w", context.Cause(ctx))
	}
	cancel()
	for range order { // let the feeder finish
	}
	wg.Wait()
	return err
}
