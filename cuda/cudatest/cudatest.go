// Package cudatest has helpers for the tests of package cuda and its
// harness: seeded indexes, coarse probes, a tolerant comparison of hit
// lists, and the Fashion-MNIST loader the GPU tests and benchmarks use.
package cudatest

import (
	"bufio"
	"compress/gzip"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"lookalike/ivf"
	"lookalike/ivf/ivftest"
)

// Build returns a trained index of n clustered vectors of dim floats (ids
// 0..n-1), and the vectors.
func Build(tb testing.TB, m ivf.Metric, n, dim, nlist int, seed uint64) (*ivf.Index, []float32) {
	tb.Helper()
	data := ivftest.Clustered(n, dim, 20, seed)
	ix := BuildFrom(tb, m, data, dim, nlist, seed)
	return ix, data
}

// BuildFrom trains an index on data (rows of dim floats) and adds all of
// it under ids 0..n-1.
func BuildFrom(tb testing.TB, m ivf.Metric, data []float32, dim, nlist int, seed uint64) *ivf.Index {
	tb.Helper()
	ix, err := ivf.New(ivf.Options{Dim: dim, Metric: m, NList: nlist, Seed: int64(seed), MinPointsPerCentroid: 1})
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := ix.Train(data); err != nil {
		tb.Fatal(err)
	}
	if err := ix.Add(ivftest.Seq(len(data)/dim), data); err != nil {
		tb.Fatal(err)
	}
	return ix
}

// Probes prepares queries as a search does (a normalised copy for Cosine)
// and returns them with each query's nprobe nearest lists, nearest first,
// with the internal centroid distance (squared L2, or −ip) that
// ivf.Scanner implementations receive.
func Probes(ix *ivf.Index, queries []float32, nprobe int) ([]float32, [][]ivf.Probe) {
	d := ix.Dim()
	q := slices.Clone(queries)
	if ix.Metric() == ivf.Cosine {
		for i := 0; i < len(q); i += d {
			ivf.Normalize(q[i : i+d])
		}
	}
	nq := len(q) / d
	nlist := ix.NList()
	probes := make([][]ivf.Probe, nq)
	all := make([]ivf.Probe, nlist)
	for i := range probes {
		row := q[i*d : (i+1)*d]
		for l := range all {
			c := ix.Centroid(l)
			var s float32
			if ix.Metric() == ivf.L2 {
				for j, x := range row {
					t := x - c[j]
					s += t * t
				}
			} else {
				for j, x := range row {
					s += x * c[j]
				}
				s = -s
			}
			all[l] = ivf.Probe{List: int32(l), Dist: s}
		}
		slices.SortFunc(all, func(a, b ivf.Probe) int {
			if a.Dist != b.Dist {
				if a.Dist < b.Dist {
					return -1
				}
				return 1
			}
			return int(a.List - b.List)
		})
		probes[i] = slices.Clone(all[:min(nprobe, nlist)])
	}
	return q, probes
}

// CompareHits reports how got differs from want beyond float rounding:
// the same length; rank by rank, distances within tol; the same ids,
// except that ids at the k-th distance (within tol) may be swapped for
// others at it; and an id in both with distances within tol.
//
// tol is rel relative to the scale of the query's distances, the largest
// |want| (at least 1): an inner product near 0 is the difference of terms
// of that size, and float32 rounds it at that size, not at its own.
func CompareHits(got, want []ivf.Hit, rel float64) error {
	if len(got) != len(want) {
		return fmt.Errorf("%d hits, want %d", len(got), len(want))
	}
	if len(want) == 0 {
		return nil
	}
	scale := 1.0
	for _, h := range want {
		scale = max(scale, math.Abs(float64(h.Dist)))
	}
	tol := rel * scale
	for i := range want {
		if math.Abs(float64(got[i].Dist-want[i].Dist)) > tol {
			return fmt.Errorf("hit %d: dist %v (id %d), want %v (id %d)", i, got[i].Dist, got[i].ID, want[i].Dist, want[i].ID)
		}
	}
	kth := want[len(want)-1].Dist
	wantBy := map[uint64]float32{}
	for _, h := range want {
		wantBy[h.ID] = h.Dist
	}
	gotBy := map[uint64]float32{}
	for _, h := range got {
		gotBy[h.ID] = h.Dist
	}
	for _, h := range got {
		w, ok := wantBy[h.ID]
		if !ok {
			if math.Abs(float64(h.Dist-kth)) > tol {
				return fmt.Errorf("id %d (dist %v) is not among the wanted hits (k-th dist %v)", h.ID, h.Dist, kth)
			}
			continue
		}
		if math.Abs(float64(h.Dist-w)) > tol {
			return fmt.Errorf("id %d: dist %v, want %v", h.ID, h.Dist, w)
		}
	}
	for _, h := range want {
		if _, ok := gotBy[h.ID]; !ok && math.Abs(float64(h.Dist-kth)) > tol {
			return fmt.Errorf("id %d (dist %v) is missing (k-th dist %v)", h.ID, h.Dist, kth)
		}
	}
	return nil
}

// CheckSorted reports hits that are not best first (distance, then id).
func CheckSorted(h []ivf.Hit) error {
	for i := 1; i < len(h); i++ {
		a, b := h[i-1], h[i]
		if a.Dist > b.Dist || (a.Dist == b.Dist && a.ID >= b.ID) {
			return fmt.Errorf("hits %d and %d out of order: %+v, %+v", i-1, i, a, b)
		}
	}
	return nil
}

// FashionMNISTDirs are searched, in order, by FashionMNIST: the directory
// named by $LOOKALIKE_FASHION_MNIST, Debian's dataset-fashion-mnist, and
// testdata/fashion-mnist beside the test binary (where `make gpu-test`
// copies it).
func FashionMNISTDirs() []string {
	var dirs []string
	if d := os.Getenv("LOOKALIKE_FASHION_MNIST"); d != "" {
		dirs = append(dirs, d)
	}
	dirs = append(dirs, "/usr/share/datasets/fashion-mnist")
	if exe, err := os.Executable(); err == nil {
		dirs = append(dirs, filepath.Join(filepath.Dir(exe), "testdata", "fashion-mnist"))
	}
	return dirs
}

// FashionMNIST loads the 60,000 training and 10,000 test images of
// Fashion-MNIST as rows of 784 floats (pixel values 0..255). ok is false
// when no directory of FashionMNISTDirs holds them.
func FashionMNIST() (train, test []float32, dir string, ok bool, err error) {
	for _, d := range FashionMNISTDirs() {
		tr := filepath.Join(d, "train-images-idx3-ubyte.gz")
		if _, err := os.Stat(tr); err != nil {
			continue
		}
		if train, err = readIDX3(tr); err != nil {
			return nil, nil, d, false, err
		}
		if test, err = readIDX3(filepath.Join(d, "t10k-images-idx3-ubyte.gz")); err != nil {
			return nil, nil, d, false, err
		}
		return train, test, d, true, nil
	}
	return nil, nil, "", false, nil
}

// readIDX3 reads a gzipped IDX file of unsigned bytes with three
// dimensions (images × rows × columns) as rows of floats.
func readIDX3(path string) ([]float32, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	z, err := gzip.NewReader(bufio.NewReader(f))
	if err != nil {
		return nil, fmt.Errorf("cudatest: %s: %w", path, err)
	}
	var h [4]uint32
	if err := binary.Read(z, binary.BigEndian, &h); err != nil {
		return nil, fmt.Errorf("cudatest: %s: header: %w", path, err)
	}
	if h[0] != 0x803 || h[1] == 0 || h[1] > 1<<24 || h[2]*h[3] == 0 || h[2]*h[3] > 1<<16 {
		return nil, fmt.Errorf("cudatest: %s: not an IDX3 file of bytes (header %x)", path, h)
	}
	raw := make([]byte, int(h[1])*int(h[2])*int(h[3]))
	if _, err := io.ReadFull(z, raw); err != nil {
		return nil, fmt.Errorf("cudatest: %s: %w", path, err)
	}
	out := make([]float32, len(raw))
	for i, b := range raw {
		out[i] = float32(b)
	}
	return out, nil
}
