package node

import "lookalike/ivf"

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
