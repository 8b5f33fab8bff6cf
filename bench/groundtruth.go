package bench

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"

	"lookalike/ivf"
)

// GroundTruth returns, for each query of ds, the ids (base row numbers) of
// its k exact nearest base rows under metric, best first, ties broken by
// the smaller id. In order, it
//
//  1. uses ds.GT when it has a row per query and at least k columns (the
//     caller vouches that it was made for this metric);
//  2. reads cacheDir/gt-<key>.ivecs, where key is the first 16 hex digits
//     of a SHA-256 over the base and query bytes, dim, metric and k;
//  3. computes it by brute force on all cores (ivf.BruteForce), showing a
//     progress bar on progress when it is not nil, and writes the cache
//     file atomically.
//
// An empty cacheDir turns the cache off. A cache file that does not decode
// to nq rows of k ids below nb is ignored and rewritten.
func GroundTruth(ds *Dataset, metric ivf.Metric, k int, cacheDir string, progress io.Writer) ([][]int32, error) {
	if err := ds.check(); err != nil {
		return nil, err
	}
	if k < 1 || k > ivf.MaxK {
		return nil, fmt.Errorf("bench: ground truth: k %d out of range 1..%d", k, ivf.MaxK)
	}
	nb, nq := ds.NumBase(), ds.NumQueries()
	if nb < k {
		return nil, fmt.Errorf("bench: ground truth: k %d exceeds the %d base vectors", k, nb)
	}
	if gt := ds.GT; len(gt) == nq && minCols(gt) >= k {
		out := make([][]int32, nq)
		for i, row := range gt {
			out[i] = row[:k:k]
		}
		return out, nil
	}
	var path string
	if cacheDir != "" {
		path = filepath.Join(cacheDir, "gt-"+groundTruthKey(ds, metric, k)+".ivecs")
		if gt, err := readGroundTruth(path, nq, nb, k); err == nil {
			return gt, nil
		} else if !errors.Is(err, fs.ErrNotExist) && progress != nil {
			fmt.Fprintf(progress, "ignoring ground-truth cache %s: %v\n", path, err)
		}
	}
	bar := newBar(progress, int64(nq), fmt.Sprintf("ground truth %s k=%d", ds.Name, k))
	var mu sync.Mutex
	best := 0
	hits, err := ivf.BruteForce(metric, ds.Dim, ds.Base, ds.Queries, k, 0, func(done int) {
		mu.Lock()
		defer mu.Unlock()
		if done > best { // workers report out of order
			bar.add(done - best)
			best = done
		}
	})
	if err != nil {
		bar.exit()
		return nil, fmt.Errorf("bench: ground truth: %w", err)
	}
	bar.finish()
	flat := make([]int32, nq*k)
	gt := make([][]int32, nq)
	for i, row := range hits {
		gt[i] = flat[i*k : i*k+k : i*k+k]
		for j, h := range row {
			gt[i][j] = int32(h.ID)
		}
	}
	if path != "" {
		if err := os.MkdirAll(cacheDir, 0o755); err != nil {
			return nil, fmt.Errorf("bench: ground truth cache: %w", err)
		}
		if err := WriteIvecsFile(path, flat, k); err != nil {
			return nil, fmt.Errorf("bench: ground truth cache: %w", err)
		}
	}
	return gt, nil
}

func minCols(rows [][]int32) int {
	m := math.MaxInt
	for _, r := range rows {
		m = min(m, len(r))
	}
	return m
}

// groundTruthKey names a ground truth by what it depends on.
func groundTruthKey(ds *Dataset, metric ivf.Metric, k int) string {
	h := sha256.New()
	var hdr []byte
	hdr = append(hdr, "lookalike ground truth v1\x00"...)
	hdr = binary.LittleEndian.AppendUint64(hdr, uint64(ds.Dim))
	hdr = append(hdr, byte(metric))
	hdr = binary.LittleEndian.AppendUint64(hdr, uint64(k))
	hdr = binary.LittleEndian.AppendUint64(hdr, uint64(len(ds.Base)))
	hdr = binary.LittleEndian.AppendUint64(hdr, uint64(len(ds.Queries)))
	h.Write(hdr)
	buf := make([]byte, 0, 1<<16)
	for _, v := range [][]float32{ds.Base, ds.Queries} {
		for _, x := range v { // little-endian, as in .fvecs, on any machine
			buf = binary.LittleEndian.AppendUint32(buf, math.Float32bits(x))
			if len(buf) == cap(buf) {
				h.Write(buf)
				buf = buf[:0]
			}
		}
	}
	h.Write(buf)
	return hex.EncodeToString(h.Sum(nil))[:16]
}

func readGroundTruth(path string, nq, nb, k int) ([][]int32, error) {
	flat, dim, err := ReadIvecsFile(path)
	if err != nil {
		return nil, err
	}
	if dim != k || len(flat) != nq*k {
		return nil, fmt.Errorf("%d rows of %d ids, want %d of %d: %w", len(flat)/dim, dim, nq, k, ErrFormat)
	}
	for i, id := range flat {
		if id < 0 || int(id) >= nb {
			return nil, fmt.Errorf("row %d: id %d out of range 0..%d: %w", i/k, id, nb-1, ErrFormat)
		}
	}
	gt := make([][]int32, nq)
	for i := range gt {
		gt[i] = flat[i*k : i*k+k : i*k+k]
	}
	return gt, nil
}

// DefaultCacheDir is where ground truths are cached: $LOOKALIKE_CACHE,
// else $XDG_CACHE_HOME/lookalike, else ~/.cache/lookalike, else (no home
// directory) lookalike-cache under the temporary directory.
func DefaultCacheDir() string {
	if d := os.Getenv("LOOKALIKE_CACHE"); d != "" {
		return d
	}
	if d := os.Getenv("XDG_CACHE_HOME"); d != "" {
		return filepath.Join(d, "lookalike")
	}
	if h, err := os.UserHomeDir(); err == nil && h != "" {
		return filepath.Join(h, ".cache", "lookalike")
	}
	return filepath.Join(os.TempDir(), "lookalike-cache")
}

// bar is a progress bar that does nothing when there is nowhere to draw it.
type bar struct{ p *progressbar.ProgressBar }

func newBar(w io.Writer, max int64, desc string) bar {
	if w == nil {
		return bar{}
	}
	return bar{progressbar.NewOptions64(max,
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetDescription(desc),
		progressbar.OptionShowCount(),
		progressbar.OptionShowIts(),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionThrottle(200*time.Millisecond),
		progressbar.OptionOnCompletion(func() { fmt.Fprintln(w) }),
	)}
}

func (b bar) add(n int) {
	if b.p != nil {
		b.p.Add(n)
	}
}

func (b bar) finish() {
	if b.p != nil {
		b.p.Finish()
	}
}

// exit stops the bar where it is, for a task that failed.
func (b bar) exit() {
	if b.p != nil {
		b.p.Exit()
	}
}
