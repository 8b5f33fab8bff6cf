package node

import (
	"errors"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"lookalike/ivf"
)

// fallbackScanner is Options.Scanner as the collections use it: a call
// the configured scanner fails is scanned again by ivf's CPU kernels, so a
// GPU that fails (package cuda then fails every later call with
// ErrDevice) slows searches down instead of failing them. Each such call
// counts in lookalike_scanner_fallbacks_total; the first failure is
// logged, then at most one a minute.
type fallbackScanner struct {
	inner     ivf.Scanner
	log       *slog.Logger
	fallbacks prometheus.Counter
	lastLog   atomic.Int64 // unix nanoseconds of the last log line
}

func newFallbackScanner(inner ivf.Scanner, log *slog.Logger) *fallbackScanner {
	return &fallbackScanner{inner: inner, log: log, fallbacks: prometheus.NewCounter(prometheus.CounterOpts{
		Name: "lookalike_scanner_fallbacks_total",
		Help: "Scans the configured scanner (--gpu) failed and ivf's CPU kernels did instead.",
	})}
}

func (s *fallbackScanner) Scan(ix *ivf.Index, queries []float32, probes [][]ivf.Probe, k int, out [][]ivf.Hit) error {
	err := s.inner.Scan(ix, queries, probes, k, out)
	if err == nil || errors.Is(err, ivf.ErrNotTrained) {
		return err
	}
	s.fallbacks.Inc()
	now := time.Now().UnixNano()
	if last := s.lastLog.Load(); (last == 0 || now-last >= int64(time.Minute)) && s.lastLog.CompareAndSwap(last, now) {
		s.log.Error("scanner failed: scanning on the CPU instead (counted in lookalike_scanner_fallbacks_total)", "err", err)
	}
	return ivf.CPUScanner{}.Scan(ix, queries, probes, k, out)
}

// residentScanner is an Options.Scanner that keeps indexes in memory of
// its own (package cuda's: the lists on the GPU). The node tells it which
// indexes are live, so that the first searches find their lists there and
// an index that was replaced or dropped stops holding device memory.
type residentScanner interface {
	// Preload uploads every list of a trained index that fits.
	Preload(*ivf.Index) error
	// Forget frees what is held for an index.
	Forget(*ivf.Index) error
}

// setIndex installs ix as the collection's index. With a residentScanner,
// the index it replaces is forgotten and ix is preloaded in the background
// (a job of the collection, waited for by close). A search that loaded the
// old index just before the swap may still scan it and upload its lists
// again; they stay until the collection is dropped or retrained. Lists
// that grow after the preload reach the device as the scanner keeps them
// current (docs/cuda.md, "Residency").
func (c *collection) setIndex(ix *ivf.Index) {
	old := c.ix.Swap(ix)
	rs, ok := c.n.opts.Scanner.(residentScanner)
	if !ok {
		return
	}
	if old != nil && old != ix {
		if err := rs.Forget(old); err != nil {
			c.n.log.Warn("scanner: forget the replaced index", "collection", c.meta.Name, "err", err)
		}
	}
	if ix == nil || ix == old {
		return
	}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		if err := rs.Preload(ix); err != nil {
			c.n.log.Warn("scanner: preload", "collection", c.meta.Name, "err", err)
		}
	}()
}

// forgetIndex frees what a residentScanner holds for the collection's
// index: the collection was dropped.
func (c *collection) forgetIndex() {
	rs, ok := c.n.opts.Scanner.(residentScanner)
	if !ok {
		return
	}
	if ix := c.ix.Load(); ix != nil {
		if err := rs.Forget(ix); err != nil {
			c.n.log.Warn("scanner: forget a dropped collection's index", "collection", c.meta.Name, "err", err)
		}
	}
}

// indexScanner is the scanner of the collections' indexes: nil (ivf's
// default, the CPU kernels) without Options.Scanner.
func (n *Node) indexScanner() ivf.Scanner {
	if n.scanner == nil {
		return nil
	}
	return n.scanner
}
