package node

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"lookalike/coordinator/meta"
	"lookalike/ivf"
)

// collection is the runtime of one collection on this node: its flat
// buffer while untrained, its ivf index once trained, and both while
// training moves buffered vectors into lists. On one node it is the
// collection's only shard.
type collection struct {
	n      *Node
	meta   CollectionMeta // as opened; Epoch and State live below
	ctx    context.Context
	cancel context.CancelFunc

	// mu serialises writes and the state transitions of training, so a
	// write sees either the buffer or the index as its destination, and
	// the move never races an upsert of the id it moves.
	mu    sync.Mutex
	epoch atomic.Uint64
	state atomic.Uint32
	buf   atomic.Pointer[flatBuffer] // nil once trained and moved
	ix    atomic.Pointer[ivf.Index]  // nil until trained
	count atomic.Int64               // live items
	wg    sync.WaitGroup             // training goroutine
	// dead counts tombstones set in the lists since the last compaction;
	// compacting says whether one runs.
	dead       atomic.Int64
	compacting atomic.Bool
	// writes counts items written to the trained lists since the last
	// index save; saving says whether a background save runs.
	writes atomic.Int64
	saving atomic.Bool
	// gate orders the collection's store writes and index saves
	// (read-locked) against retire (write-locked): once a drop retired
	// the collection nothing of it reaches the store. Without it a
	// training or background save that outlived close (which stops
	// waiting after closeWait), or a write that passed its context check
	// just before the drop, could land after the drop deleted the data:
	// under a fresh store number for the name, data with no incarnation
	// that no sweep deletes. retired is under gate.
	gate    sync.RWMutex
	retired bool
	// commits counts the batches committed to the store (applyStore;
	// under mu): an eviction that looked up its ids without the lock
	// looks again at every one when a batch landed meanwhile (evict).
	commits uint64

	// The cluster data plane (dist.go, replicate.go): followMu serialises
	// loading centroids trained elsewhere; dropping says whether the
	// buffered copies are being dropped; out numbers this primary's calls
	// to each backup (under mu); in orders each primary's calls to this
	// backup (under streamMu).
	followMu sync.Mutex
	// listsAhead: opened untrained, the store held items in lists (a
	// restarted node whose table replays from before training): follow
	// loads them with the centroids.
	listsAhead atomic.Bool
	dropping   atomic.Bool
	// retraining: resumeTrainingLater's job is queued or running.
	retraining atomic.Bool
	out        map[string]*outStream
	streamMu   sync.Mutex
	in         map[string]*inStream
	// Copies to joining replicas (copy.go): joining are the joiners this
	// primary streams to (under mu), copies the copies running (under
	// streamMu); on a joiner, incoming are the copies coming in, by
	// shard (under mu). purging says whether unheld copies are being
	// dropped.
	joining  map[copyKey]bool
	copies   map[copyKey]bool
	incoming map[shardKey]*inCopy
	// joinCalls counts the calls in flight to each copy's joiner that no
	// write waits for; promoting are the copies whose joiner is being
	// made in sync; joinCond signals the end of such a call (replicate.go,
	// detachJoinCalls; all under mu).
	joinCalls map[copyKey]int
	promoting map[copyKey]bool
	joinCond  *sync.Cond
	// On a joiner, what decides between two copies of a user id
	// (copy.go, "Two copies of a user id"; under mu): kept is what the
	// evictions seen while copies come in kept, held the copied items
	// held back until one decides.
	kept  map[string]keptID
	held  map[string]heldItem
	swept time.Time // the last sweepLocked that looked
	// evicted is, on a collection with an id directory, the highest
	// version each recent eviction kept of a user id (under mu): a write
	// of a lower version arriving after it is superseded (dist.go,
	// "Versions").
	evicted      map[string]keptID
	evictedSwept time.Time
	evictedFull  time.Time // when the bound last stopped a mark (logged)
	purging      atomic.Bool
	// moving says whether this node moves the buffer to the lists.
	moving atomic.Bool
	// dir: this is a collection's id directory (directory.go), never
	// trained, whose items are entries.
	dir bool
	// On a directory partition (directory.go, dirMergeAt; under mu):
	// dirSince is this node's time (Unix milliseconds) at its first merge
	// after it opened the partition or last applied entries stamped by
	// another node, 0 before that merge; dirForeign says that such
	// entries (a replicated write or a copy) were applied since it was
	// set.
	dirSince   int64
	dirForeign bool
	// dirMerges counts the merges of entries here (dirMergeAt; under
	// mu). The directory sweep skips a partition whose last scan found
	// no entry naming several lists, settled or not, when no merge came
	// since (sweptMerges, sweptIdle; sweep.go): an idle partition is not
	// scanned every minute.
	dirMerges   uint64
	sweptMerges uint64
	sweptIdle   bool
}

// WriteItem is one item of an upsert, validated by the caller's decoder.
type WriteItem struct {
	UserID     string // non-empty
	Vector     []float32
	Meta       []byte
	Attachment []byte // stored with the item (an image record), or nil

	list int32 // the list a cluster gateway assigned (dist.go)
}

func (c *collection) State() State { return State(c.state.Load()) }

func (c *collection) indexOptions(nlist int) ivf.Options {
	return ivf.Options{Dim: c.meta.Dim, Metric: c.meta.Metric, NList: nlist, Seed: c.n.opts.Seed, Threads: c.n.opts.Threads, Scanner: c.n.indexScanner()}
}

// open builds the runtime from the table and the store, finishing a move
// that a crash interrupted.
func (n *Node) openCollection(m CollectionMeta) (*collection, error) {
	ctx, cancel := context.WithCancel(n.ctx)
	c := &collection{n: n, meta: m, ctx: ctx, cancel: cancel}
	_, _, c.dir = meta.DirOf(m.Name)
	c.epoch.Store(m.Epoch)
	if err := c.load(m); err != nil {
		cancel()
		return nil, fmt.Errorf("node: open collection %q: %w", m.Name, err)
	}
	if m.State == Training && n.trainsHere(m.Name) {
		// A crash (or a lost leader) interrupted k-means: train again.
		c.state.Store(uint32(Training))
		c.wg.Add(1)
		go c.train(m.Epoch, m.NList)
	}
	return c, nil
}

func (c *collection) load(m CollectionMeta) error {
	if c.dir {
		return c.loadEntries()
	}
	st := c.n.store
	if m.State != Ready {
		buf := newFlatBuffer(m.Dim, m.Metric)
		var ids []uint64
		var vecs []float32
		flush := func() {
			buf.append(ids, vecs)
			ids, vecs = ids[:0], vecs[:0]
		}
		_, clustered := c.n.meta.(placer)
		clustered = clustered && c.n.peers != nil
		err := st.Scan(m.Name, func(it Item) error {
			if it.List != BufferList && clustered {
				// Written after a training this node's table has not
				// replayed yet: follow adds them to the lists.
				c.listsAhead.Store(true)
				return nil
			}
			ids = append(ids, it.ID)
			vecs = append(vecs, it.Vector...)
			if len(ids) == 4096 {
				flush()
			}
			return nil
		})
		if err != nil {
			return err
		}
		flush()
		c.buf.Store(buf)
		c.count.Store(int64(buf.len()))
		c.state.Store(uint32(Untrained))
		return nil
	}
	if _, ok := c.n.distRoute(m.Name); ok {
		return c.loadDistributed(m)
	}
	ix, rebuild, err := c.savedOrCentroids()
	if err != nil {
		return err
	}
	if !rebuild {
		c.setIndex(ix)
		c.count.Store(int64(ix.Len()))
		c.state.Store(uint32(Ready))
		if m.Buffered {
			c.retireBufferLater(m.Epoch)
		}
		return nil
	}
	count, moves, err := c.scanItems(ix)
	if err != nil {
		return err
	}
	c.setIndex(ix)
	c.count.Store(count)
	// Finish the move a crash interrupted: re-list what is still buffered.
	if len(moves) > 0 {
		c.n.log.Info("finishing an interrupted move", "collection", m.Name, "vectors", len(moves))
		if err := c.moveRows(ix, moves, nil); err != nil {
			return err
		}
	}
	c.state.Store(uint32(Ready))
	if len(moves) > 0 {
		if err := c.saveIndex(ix); err != nil {
			return err
		}
	}
	if m.Buffered {
		c.retireBufferLater(m.Epoch)
	}
	return nil
}

// savedOrCentroids returns the index saved here, with the write log after
// it replayed; without one (or with one that is unusable, logged) it
// returns an empty index of the committed centroids, and rebuild: the
// caller adds the stored items.
func (c *collection) savedOrCentroids() (ix *ivf.Index, rebuild bool, err error) {
	ix, err = c.n.store.LoadIndex(c.meta.Name, c.indexOptions(0))
	if err != nil {
		c.n.log.Warn("persisted index unusable, rebuilding from items", "collection", c.meta.Name, "err", err)
		ix = nil
	}
	if ix != nil {
		return ix, false, nil
	}
	blob, err := c.n.meta.Centroids(c.meta.Name)
	if err != nil {
		return nil, false, err
	}
	if ix, err = ivf.Load(bytes.NewReader(blob), c.indexOptions(0)); err != nil {
		return nil, false, fmt.Errorf("centroids: %w", err)
	}
	return ix, true, nil
}

// scanItems reads every stored item of the collection: those in lists
// are added to ix (nil: counted only), the buffered ones returned. It
// returns the number of items.
func (c *collection) scanItems(ix *ivf.Index) (count int64, buffered []Item, err error) {
	var ids []uint64
	var vecs []float32
	err = c.n.store.Scan(c.meta.Name, func(it Item) error {
		count++
		if it.List == BufferList {
			buffered = append(buffered, it)
			return nil
		}
		if ix == nil {
			return nil
		}
		ids = append(ids, it.ID)
		vecs = append(vecs, it.Vector...)
		if len(ids) == 1<<16 {
			if err := ix.Add(ids, vecs); err != nil {
				return err
			}
			ids, vecs = ids[:0], vecs[:0]
		}
		return nil
	})
	if err == nil && ix != nil {
		err = ix.Add(ids, vecs)
	}
	return count, buffered, err
}

// checkEpoch refuses a call routed with another table epoch.
func (c *collection) checkEpoch(epoch uint64) error {
	if e := c.epoch.Load(); epoch != e {
		return fmt.Errorf("%w: collection %q is at epoch %d, call carries %d", ErrStaleEpoch, c.meta.Name, e, epoch)
	}
	return nil
}

// checkVectors validates a batch's vectors whole.
func (c *collection) checkVector(v []float32) error {
	if len(v) != c.meta.Dim {
		return fmt.Errorf("%w: vector has %d components, collection dim is %d", ErrInvalid, len(v), c.meta.Dim)
	}
	if i := ivf.FirstNotFinite(v); i >= 0 {
		return fmt.Errorf("%w: vector component %d is %v", ErrInvalid, i, v[i])
	}
	if c.meta.Metric == ivf.Cosine {
		zero := true
		for _, x := range v {
			if x != 0 {
				zero = false
				break
			}
		}
		if zero {
			return fmt.Errorf("%w: a zero vector has no direction (metric cosine)", ErrInvalid)
		}
	}
	return nil
}

// upsert stores items (one synced batch) and then indexes them; an
// existing user id's old copy is tombstoned. Repeated user ids in a batch:
// the last wins.
func (c *collection) upsert(ctx context.Context, items []WriteItem) error {
	for i, it := range items {
		if err := c.checkVector(it.Vector); err != nil {
			return fmt.Errorf("items[%d]: %w", i, err)
		}
	}
	last := make(map[string]int, len(items))
	for i, it := range items {
		last[it.UserID] = i
	}
	keep := make([]int, 0, len(last))
	for i, it := range items {
		if last[it.UserID] == i {
			keep = append(keep, i)
		}
	}
	d := c.meta.Dim
	vecs := make([]float32, 0, len(keep)*d)
	for _, i := range keep {
		vecs = append(vecs, items[i].Vector...)
	}

	// Ids and list assignment need no lock: a batch's assignment can run
	// while the previous batch commits. If training switched the index
	// meanwhile, the batch is assigned again under the lock.
	ids, err := c.n.ids.take(ctx, len(keep))
	if err != nil {
		return err
	}
	assign := func(ix *ivf.Index) ([]int32, error) {
		if ix == nil {
			return nil, nil
		}
		labels, err := ix.Assign(vecs)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
		}
		return labels, nil
	}
	ix := c.ix.Load()
	labels, err := assign(ix)
	if err != nil {
		return err
	}
	wait, err := c.upsertLocked(ix, labels, ids, keep, items, vecs, assign)
	if err != nil {
		return err
	}
	// The batch is ordered and applied in memory; the lock is free for
	// the next batch while this one's sync runs, so that concurrent
	// batches share syncs. The write is acknowledged only when it is durable.
	return wait()
}

// upsertLocked commits a batch under the collection lock: in the store
// (ordered, and durable once the returned wait says so) and in memory.
func (c *collection) upsertLocked(ix *ivf.Index, labels []int32, ids []uint64, keep []int, items []WriteItem, vecs []float32,
	assign func(*ivf.Index) ([]int32, error)) (wait func() error, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.ctx.Err(); err != nil {
		return nil, ErrNoCollection
	}
	d := c.meta.Dim
	if cur := c.ix.Load(); cur != ix {
		ix = cur
		if labels, err = assign(ix); err != nil {
			return nil, err
		}
	}
	b := &Batch{Collection: c.meta.Name, Dim: d, Puts: make([]Item, len(keep))}
	for j, i := range keep {
		it := items[i]
		l := BufferList
		if labels != nil {
			l = labels[j]
		}
		b.Puts[j] = Item{ID: ids[j], UserID: it.UserID, List: l, Vector: it.Vector, Meta: it.Meta, Attachment: it.Attachment}
	}
	removed, wait, err := c.applyStore(b)
	if err != nil {
		return nil, err
	}
	if ix != nil {
		// The lists the store was given, not assigned again (ix.Add
		// would: it doubled one node's assignment work).
		if err := ix.AddToLists(ids, vecs, labels); err != nil {
			_ = wait()
			return nil, err // validated above: cannot happen
		}
	} else {
		c.buf.Load().append(ids, vecs)
	}
	c.count.Add(int64(len(keep) - len(removed)))
	c.maybeSave(ix, len(keep)+len(removed))
	c.maybeTrain()
	return wait, nil
}

// applyStore commits b, ordered now and durable once wait says so (at
// once for a store that cannot split the two), and drops the copies it
// replaced from memory. mu is held.
func (c *collection) applyStore(b *Batch) (removed []Removed, wait func() error, err error) {
	c.gate.RLock()
	defer c.gate.RUnlock()
	if c.retired {
		return nil, nil, c.errRetired()
	}
	wait = func() error { return nil }
	if as, ok := c.n.store.(AsyncStorage); ok {
		removed, wait, err = as.ApplyAsync(b)
	} else {
		removed, err = c.n.store.Apply(b)
	}
	if err != nil {
		return nil, nil, err
	}
	c.commits++
	for _, o := range removed {
		c.dropMem(o.ID, o.List)
	}
	return removed, wait, nil
}

// maybeSave starts a background save of a trained index after SaveEvery
// writes. Called with mu held: the checkpoint taken here names exactly
// the batches ix holds, and the save runs without the lock.
func (c *collection) maybeSave(ix *ivf.Index, n int) {
	every := c.n.opts.SaveEvery
	if ix == nil || c.buf.Load() != nil || every < 0 {
		return
	}
	if c.writes.Add(int64(n)) < int64(every) || !c.saving.CompareAndSwap(false, true) {
		return
	}
	cp, err := c.n.store.Checkpoint(c.meta.Name)
	if err != nil {
		c.saving.Store(false)
		c.n.log.Warn("no checkpoint for a background save", "collection", c.meta.Name, "err", err)
		return
	}
	c.writes.Store(0)
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		defer c.saving.Store(false)
		if err := c.saveIndexAt(ix, cp); err != nil && c.ctx.Err() == nil {
			c.n.log.Warn("background index save failed", "collection", c.meta.Name, "err", err)
		}
	}()
}

// dropMem removes an old copy from memory wherever it is (both places
// while the move runs).
func (c *collection) dropMem(id uint64, list int32) {
	if buf := c.buf.Load(); buf != nil {
		buf.delete(id)
	}
	if ix := c.ix.Load(); ix != nil && list >= 0 {
		if ix.DeleteFromList(int(list), id) {
			c.maybeCompact(ix)
		}
	}
}

// maybeCompact rewrites the lists without their tombstones, in the
// background, once they hold more than a tenth of the live count (and at
// least 1,024): deleted and replaced vectors stop costing scan time and
// memory. ivf.Index.Compact is safe beside searches and writes.
func (c *collection) maybeCompact(ix *ivf.Index) {
	d := c.dead.Add(1)
	if d < max(1024, c.count.Load()/10) {
		return
	}
	c.background(&c.compacting, func() {
		c.dead.Add(-d)
		n := ix.Compact()
		c.n.log.Debug("compacted lists", "collection", c.meta.Name, "reclaimed", n)
	})
}

// background runs f on a goroutine of the collection (waited for by
// close) unless a job guarded by the same flag runs already.
func (c *collection) background(running *atomic.Bool, f func()) {
	if !running.CompareAndSwap(false, true) {
		return
	}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		defer running.Store(false)
		f()
	}()
}

// remove deletes user ids; it reports how many existed.
func (c *collection) remove(ctx context.Context, userIDs []string) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.ctx.Err(); err != nil {
		return 0, ErrNoCollection
	}
	return c.removeLocked(userIDs)
}

// search answers q from the buffer (exactly) and the index, merged
// without duplicates. The buffer is read before the index so that a
// vector moving between them is seen at least once.
func (c *collection) search(q []float32, k, nprobe, refine int) ([]ivf.Hit, error) {
	if err := c.checkVector(q); err != nil {
		return nil, err
	}
	if k < 1 || k > ivf.MaxK {
		return nil, fmt.Errorf("%w: k %d outside 1..%d", ErrInvalid, k, ivf.MaxK)
	}
	var parts [][]ivf.Hit
	if buf := c.buf.Load(); buf != nil {
		qq := q
		if c.meta.Metric == ivf.Cosine {
			qq = append([]float32(nil), q...)
			ivf.Normalize(qq)
		}
		parts = append(parts, buf.search(qq, k))
	}
	if ix := c.ix.Load(); ix != nil {
		nl := ix.NList()
		if nprobe > nl {
			return nil, fmt.Errorf("%w: nprobe %d exceeds nlist %d", ErrInvalid, nprobe, nl)
		}
		if nprobe <= 0 {
			nprobe = min(c.n.opts.DefaultNProbe, nl)
		}
		o := ivf.SearchOptions{K: k, NProbe: nprobe}
		if refine > 1 {
			o.Refine, o.Source = refine, storeSource{c.n.store, c.meta.Name}
		}
		h, err := ix.Search(q, o)
		if err != nil {
			return nil, err
		}
		parts = append(parts, h)
	}
	return ivf.MergeTopK(k, parts...), nil
}

// storeSource reads a collection's floats from storage for refine.
type storeSource struct {
	s    Storage
	coll string
}

func (s storeSource) Vectors(ids []uint64, dst []float32) error { return s.s.Vectors(s.coll, ids, dst) }

// maybeTrain starts training when an untrained collection reaches its
// threshold. Called with mu held.
func (c *collection) maybeTrain() {
	if c.State() != Untrained || c.dir {
		return
	}
	at := c.n.opts.AutoTrainAt
	if c.meta.NList > 0 && at >= 0 {
		at = 39 * c.meta.NList
	}
	if at < 0 || c.count.Load() < int64(at) {
		return
	}
	if _, err := c.beginTraining(c.ctx, 0); err != nil {
		c.n.log.Warn("automatic training not started", "collection", c.meta.Name, "err", err)
	}
}

// startTraining is POST .../train: it returns the epoch training will
// commit.
func (c *collection) startTraining(ctx context.Context, nlist int) (uint64, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.beginTraining(ctx, nlist)
}

func (c *collection) beginTraining(ctx context.Context, nlist int) (uint64, error) {
	if s := c.State(); s != Untrained {
		return 0, fmt.Errorf("%w: collection %q is %v", ErrBadState, c.meta.Name, s)
	}
	if c.count.Load() < 1 {
		return 0, fmt.Errorf("%w: collection %q is empty", ErrTooFewVectors, c.meta.Name)
	}
	e := c.epoch.Load()
	if err := c.n.meta.BeginTraining(ctx, c.meta.Name, e); err != nil {
		return 0, err
	}
	c.state.Store(uint32(Training))
	c.wg.Add(1)
	go c.train(e, nlist)
	return e + 1, nil
}

// AutoNList is the nlist chosen for n vectors when the collection says
// "auto": the coordinator's rule (meta.AutoNList: 4·√n to a power of two,
// at least 39 points per list), so every node picks the same.
func AutoNList(n int) int { return meta.AutoNList(n) }

// train runs k-means on the buffered vectors, commits the centroids at
// epoch+1 and moves the buffer into the lists. It runs on its own
// goroutine, owned by c (c.wg; stopped by c.ctx).
func (c *collection) train(epoch uint64, nlist int) {
	defer c.wg.Done()
	log := c.n.log.With("collection", c.meta.Name, "epoch", epoch+1)
	abort := func(err error) {
		if c.ctx.Err() != nil {
			return // closing or dropped: the next start trains again
		}
		log.Error("training failed", "err", err)
		c.mu.Lock()
		defer c.mu.Unlock()
		if err := c.n.meta.AbortTraining(c.ctx, c.meta.Name, epoch); err != nil {
			log.Error("abort training", "err", err)
		}
		c.state.Store(uint32(Untrained))
	}
	_, vecs := c.buf.Load().liveRows()
	n := len(vecs) / c.meta.Dim
	if nlist <= 0 {
		nlist = c.meta.NList
	}
	if nlist <= 0 {
		nlist = AutoNList(n)
	}
	ix, err := ivf.New(c.indexOptions(nlist))
	if err != nil {
		abort(err)
		return
	}
	rep, err := ix.TrainContext(c.ctx, vecs) // a drop or shutdown stops k-means
	if err != nil {
		abort(err)
		return
	}
	if c.ctx.Err() != nil {
		return
	}
	var blob bytes.Buffer
	if _, err := ix.WriteTo(&blob); err != nil {
		abort(err)
		return
	}
	committed := blob.Bytes()
	var sizes []int64
	if _, ok := c.n.distRoute(c.meta.Name); ok {
		// A cluster balances the shards by the vectors their lists will
		// hold (issue 5).
		sizes = listSizes(ix, vecs, c.meta.Dim)
	}
	if err := c.n.meta.CommitTraining(c.ctx, c.meta.Name, epoch, rep.NList, committed, sizes); err != nil {
		// The proposal may have been applied although the call failed (a
		// timeout): the table decides.
		m, ok := c.n.meta.Collection(c.meta.Name)
		if !ok || m.State != Ready || m.Epoch != epoch+1 {
			abort(err)
			return
		}
		if committed, err = c.n.meta.Centroids(c.meta.Name); err != nil {
			log.Error("training committed but its centroids are unreadable; restart the node", "err", err)
			return
		}
	}
	// Build the serving index from the committed blob, as every node
	// holding lists of this collection does.
	ix, err = ivf.Load(bytes.NewReader(committed), c.indexOptions(0))
	if err != nil {
		abort(err)
		return
	}
	log.Info("trained", "nlist", rep.NList, "points", rep.Points, "took", rep.Duration)
	if err := c.adopt(ix, epoch+1); err != nil && c.ctx.Err() == nil {
		log.Error("move after training", "err", err)
	}
}

// listSizes estimates the vectors each list of the trained ix will hold
// once vecs move there: the lists of an even sample of at most
// listSizeSample rows, scaled to all of them. nil when it cannot tell.
func listSizes(ix *ivf.Index, vecs []float32, dim int) []int64 {
	n := len(vecs) / dim
	if n == 0 {
		return nil
	}
	step := (n + listSizeSample - 1) / listSizeSample
	sample := make([]float32, 0, min(n, listSizeSample)*dim)
	for i := 0; i < n; i += step {
		sample = append(sample, vecs[i*dim:(i+1)*dim]...)
	}
	labels, err := ix.Assign(sample)
	if err != nil {
		return nil
	}
	sizes := make([]int64, ix.NList())
	for _, l := range labels {
		sizes[l]++
	}
	if m := len(labels); m < n {
		for l := range sizes {
			sizes[l] = sizes[l] * int64(n) / int64(m)
		}
	}
	return sizes
}

// listSizeSample bounds the rows listSizes assigns.
const listSizeSample = 65536

// adopt switches the collection to ix at epoch and moves the buffered
// vectors into their lists: the general "move lists, switch epoch, drop
// duplicates while both copies exist" step. From the switch on, writes go
// to the lists; searches read the buffer and the lists and MergeTopK drops
// the duplicates until the buffer is retired.
func (c *collection) adopt(ix *ivf.Index, epoch uint64) error {
	if _, ok := c.n.distRoute(c.meta.Name); ok {
		return c.adoptDistributed(ix, epoch)
	}
	c.mu.Lock()
	c.setIndex(ix)
	c.epoch.Store(epoch)
	buf := c.buf.Load()
	c.mu.Unlock()
	// The buffered items by id; their floats come from buf chunk by chunk,
	// and any deleted or upserted from here on leave buf and are skipped.
	var moves []Item
	if buf != nil {
		for _, id := range buf.liveIDs() {
			moves = append(moves, Item{ID: id})
		}
	}
	if err := c.moveRows(ix, moves, buf); err != nil {
		return err
	}
	c.mu.Lock()
	c.buf.Store(nil)
	c.state.Store(uint32(Ready))
	err := c.saveIndex(ix)
	c.mu.Unlock()
	if err != nil {
		return err
	}
	return c.retireBuffer(epoch)
}

// retireBufferLater retires the buffer of a collection opened after a
// crash between the end of the move and RetireBuffer, on the training
// goroutine slot (open must not wait for Raft).
func (c *collection) retireBufferLater(epoch uint64) {
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		if err := c.retireBuffer(epoch); err != nil && c.ctx.Err() == nil {
			c.n.log.Warn("buffer not retired", "collection", c.meta.Name, "err", err)
		}
	}()
}

// retireBuffer tells the coordinator that no vector of the collection is
// buffered any more. It is idempotent in effect: a failure is logged and
// the next start tries again.
func (c *collection) retireBuffer(epoch uint64) error {
	if err := c.n.meta.RetireBuffer(c.ctx, c.meta.Name, epoch); err != nil {
		return fmt.Errorf("retire buffer: %w", err)
	}
	return nil
}

// moveRows re-lists buffered items in chunks, each chunk one synced batch
// under mu. With buf set, items no longer in it (deleted or upserted
// meanwhile) are skipped.
func (c *collection) moveRows(ix *ivf.Index, items []Item, buf *flatBuffer) error {
	chunk := c.n.opts.MoveChunk
	for i0 := 0; i0 < len(items); i0 += chunk {
		if err := c.ctx.Err(); err != nil {
			return err
		}
		if err := c.moveChunk(ix, items[i0:min(i0+chunk, len(items))], buf); err != nil {
			return err
		}
	}
	return nil
}

func (c *collection) moveChunk(ix *ivf.Index, items []Item, buf *flatBuffer) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if buf != nil {
		// Keep the items still buffered, with their floats from the buffer
		// (the move list holds ids only; see adopt).
		d := c.meta.Dim
		buf.mu.Lock()
		v := buf.view.Load()
		k := 0
		for _, it := range items {
			if p, ok := buf.pos[it.ID]; ok {
				it.Vector = append([]float32(nil), v.vecs[p*d:(p+1)*d]...)
				items[k] = it
				k++
			}
		}
		buf.mu.Unlock()
		items = items[:k]
	}
	if len(items) == 0 {
		return nil
	}
	d := c.meta.Dim
	ids := make([]uint64, len(items))
	vecs := make([]float32, 0, len(items)*d)
	for i, it := range items {
		ids[i] = it.ID
		vecs = append(vecs, it.Vector...)
	}
	labels, err := ix.Assign(vecs)
	if err != nil {
		return err
	}
	b := &Batch{Collection: c.meta.Name, Dim: d, Moves: make([]Move, len(items))}
	for i, it := range items {
		b.Moves[i] = Move{ID: it.ID, List: labels[i]}
	}
	// The removed copies are the buffered ones: they stay in buf, which
	// answers beside the lists until the move ends (MergeTopK drops the
	// duplicates).
	if _, err := c.storeApply(b); err != nil {
		return err
	}
	return ix.AddToLists(ids, vecs, labels)
}

// closeWait bounds how long close waits for the collection's goroutines.
// A k-means in progress stops within one tile of its pass once c.ctx
// ends (ivf.TrainContext), so this is a bound for what should not
// happen; a goroutine left behind checks the cancelled context and then
// touches nothing.
const closeWait = 5 * time.Second

// close stops training and waits for it, at most closeWait.
func (c *collection) close() {
	c.cancel()
	done := make(chan struct{})
	go func() {
		c.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(closeWait):
		c.n.log.Warn("not waiting any longer for the collection's work to stop", "collection", c.meta.Name)
	}
}

// flush persists the index of a ready collection, so the next start loads
// it instead of rebuilding.
func (c *collection) flush() error {
	if c.State() != Ready {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if ix := c.ix.Load(); ix != nil {
		return c.saveIndex(ix)
	}
	return nil
}

// storeApply commits b to the store, unless a drop retired the
// collection (ErrNoCollection). applyStore is its asynchronous form.
func (c *collection) storeApply(b *Batch) ([]Removed, error) {
	c.gate.RLock()
	defer c.gate.RUnlock()
	if c.retired {
		return nil, c.errRetired()
	}
	return c.n.store.Apply(b)
}

// saveIndex persists ix as the collection's index, unless a drop retired
// the collection (then it writes nothing and returns nil).
func (c *collection) saveIndex(ix *ivf.Index) error {
	c.gate.RLock()
	defer c.gate.RUnlock()
	if c.retired {
		return nil
	}
	return c.n.store.SaveIndex(c.meta.Name, ix)
}

// saveIndexAt is saveIndex as of checkpoint cp (Storage.SaveIndexAt).
func (c *collection) saveIndexAt(ix *ivf.Index, cp uint64) error {
	c.gate.RLock()
	defer c.gate.RUnlock()
	if c.retired {
		return nil
	}
	return c.n.store.SaveIndexAt(c.meta.Name, ix, cp)
}

// errRetired is what a write to a retired collection fails with.
func (c *collection) errRetired() error {
	return fmt.Errorf("%w: %q was dropped", ErrNoCollection, c.meta.Name)
}

// retire stops every store write and index save of a dropped collection
// before its data is deleted: it waits for those in progress (a store
// commit or an index file: disk time, never k-means or a lock of the
// node) and makes the later ones write nothing.
func (c *collection) retire() {
	c.gate.Lock()
	c.retired = true
	c.gate.Unlock()
}
