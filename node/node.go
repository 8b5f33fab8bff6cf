package node

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"lookalike/coordinator/meta"
	"lookalike/ivf"
	"lookalike/proto"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"
)

// Node is one server process's runtime: the collections it serves and the
// gateway that routes API calls to their shards. The HTTP API (Handler)
// sits on top.
type Node struct {
	opts  Options
	meta  Metadata
	store Storage
	log   *slog.Logger
	ids   idAllocator

	ctx    context.Context
	cancel context.CancelFunc

	mu     sync.RWMutex
	colls  map[string]*collection
	closed bool
	shard  Shard
	// tableNames are the collection names of the table at the last Sync,
	// and swept is whether the store was swept at a Sync whose table
	// names every collection its data belongs to (sweepDropped); both
	// under mu. Sync sweeps again only when it is not, or a name left.
	tableNames map[string]bool
	swept      bool

	// peers calls the other nodes of a cluster (rpc.go); nil outside one,
	// which keeps every collection on the one-node path.
	peers *peers
	// nodesContacted observes how many nodes each search called.
	nodesContacted prometheus.Histogram
	// scans bounds the scans running at once (gate.go).
	scans *gate
	// shed says when the API refuses new searches because Go's run queue
	// is long (sched.go); shedGauge exports the queue.
	shed      *shedder
	shedGauge prometheus.GaugeFunc
	// extra is the budget of a search's hedges and overload retries;
	// extraCalls counts them by kind and whether the budget allowed them.
	extra      *budget
	extraCalls *prometheus.CounterVec
	// copyItems counts the items of shard copies this node sent as a
	// primary, and those the joiner held already (a catch-up).
	copyItems *prometheus.CounterVec
	// rpcServed counts the internal calls served, by op.
	rpcServed *prometheus.CounterVec
	// dirSwept counts the entries the directory sweep settled, by outcome
	// (sweep.go).
	dirSwept *prometheus.CounterVec
	// scanner is Options.Scanner behind a CPU fallback (scanner.go); nil
	// without one (ivf's CPU kernels).
	scanner *fallbackScanner
	// leaving is set when the node starts handing its shards off at
	// shutdown: as a primary it no longer takes a failed backup out of a
	// shard (replicate.go, sendReplica).
	leaving atomic.Bool
}

// Open starts a node over meta and store and opens every collection of
// the table (loading persisted indexes, or rebuilding them from the
// items). The node does not own meta and store: the caller closes them
// after Close.
func Open(opts Options, meta Metadata, store Storage) (*Node, error) {
	opts.EnsureDefaults()
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	n := &Node{opts: opts, meta: meta, store: store, log: opts.Logger, ctx: ctx, cancel: cancel, colls: map[string]*collection{}}
	n.ids = idAllocator{meta: meta, block: opts.IDBlock}
	n.shard = localShard{n}
	n.peers = opts.peers
	n.nodesContacted = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "lookalike_search_nodes_contacted",
		Help:    "Nodes a search called (this one included), per search this node routed.",
		Buckets: []float64{1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64},
	})
	n.scans = newGate(opts.MaxScans, opts.ScanWait)
	n.shed = &shedder{above: opts.ShedAbove, log: n.log}
	n.shedGauge = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "lookalike_sched_runnable_per_proc",
		Help: "Goroutines ready to run but waiting for a processor, per processor (moving average over ~40 ms); new searches are refused above --shed-above.",
	}, runnablePerProc)
	n.extra = newBudget(extraCallRatio, extraCallBurst)
	n.extraCalls = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "lookalike_search_extra_calls_total",
		Help: "Calls a search made beyond one per part: hedges of a slow node and retries after an overloaded one, sent or refused by the budget.",
	}, []string{"kind", "result"})
	n.copyItems = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "lookalike_copy_items_total",
		Help: "Items of the shards this node copied as a primary to joining replicas: sent, or held by the joiner already (kept; a replica catching up).",
	}, []string{"result"})
	n.dirSwept = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "lookalike_dir_sweep_entries_total",
		Help: "Id directory entries naming several lists that this node's sweep settled: evicted (older copies of the id removed), pruned (lists holding no copy removed from the entry), skipped (a shard had no replica that answered; tried again at the next sweep).",
	}, []string{"outcome"})
	n.rpcServed = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "lookalike_rpc_served_total",
		Help: "Internal calls this node served, by op (a node's calls to itself run in process and are not counted).",
	}, []string{"op"})
	if opts.Scanner != nil {
		n.scanner = newFallbackScanner(opts.Scanner, n.log)
	}
	if err := n.Sync(); err != nil {
		n.Close()
		return nil, err
	}
	return n, nil
}

// sameIncarnation reports whether c is the collection that the table's m
// describes, not an earlier one of its name.
func sameIncarnation(m CollectionMeta, c *collection) bool {
	return m.Dim == c.meta.Dim && m.Metric == c.meta.Metric && m.Created == c.meta.Created
}

// Sync brings the local runtime in line with the table: it opens the
// collections that appeared and closes the ones dropped. Callers run it
// after the table changes.
func (n *Node) Sync() error {
	// Read before the collections: every collection created at or before
	// it that they lack has been dropped (sweepDropped).
	version := n.meta.TableVersion()
	want := map[string]CollectionMeta{}
	for _, m := range n.meta.Collections() {
		want[m.Name] = m
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return ErrClosed
	}
	var errs []error
	for name, c := range n.colls {
		if m, ok := want[name]; ok && sameIncarnation(m, c) {
			continue
		}
		// Dropped (and maybe created again since): this node's data of it
		// goes with it, not only the data of the node that served the drop.
		n.log.Info("deleting the data of a dropped collection", "collection", name)
		c.retire()
		c.close()
		c.forgetIndex()
		delete(n.colls, name)
		if err := n.store.Drop(name); err != nil {
			errs = append(errs, fmt.Errorf("node: delete the data of dropped collection %q: %w", name, err))
		}
	}
	for name, m := range want {
		if c, ok := n.colls[name]; ok {
			c.syncTable(m)
			continue
		}
		if err := n.claimStore(m); errors.Is(err, errTableBehind) {
			n.log.Info("not opening a collection yet: this node holds data of a later one of its name than its table says", "collection", name, "created", m.Created)
			continue
		} else if err != nil {
			errs = append(errs, fmt.Errorf("node: open collection %q: %w", name, err))
			continue
		}
		c, err := n.openCollection(m)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		n.colls[name] = c
		if n.peers != nil {
			n.log.Info("opened collection", "collection", name, "state", c.State(), "items", c.count.Load())
			c.syncTable(m) // what a table change would start: copies, a move to resume
		}
	}
	left := false
	for name := range n.tableNames {
		if _, ok := want[name]; !ok {
			left = true
		}
	}
	n.tableNames = map[string]bool{}
	for name := range want {
		n.tableNames[name] = true
	}
	if !n.swept || left {
		// A collection dropped while this node was away or behind (a
		// snapshot jumps over the drop) has data here that no collection
		// of the table claims. The sweep reads the incarnation records,
		// which are written only for collections of the table
		// (claimStore) and deleted with their data: a sweep that found
		// none the table lacks holds until a name leaves it.
		later, err := n.sweepDropped(want, version)
		if err != nil {
			errs = append(errs, err)
		}
		n.swept = err == nil && !later
	}
	return errors.Join(errs...)
}

// sweepDropped deletes the data of collections dropped while this node
// was away, which no later collection of the same name claimed
// (claimStore): the store holds data of a name the table (want, at
// version or later) lacks, recorded as of a collection created at or
// before version. Such a collection was in the table once and is not
// now, so it was dropped. Data with no recorded incarnation (written
// before it was recorded), or of a collection created after version (a
// table that has not replayed its creation yet), is kept. n.mu is held.
func (n *Node) sweepDropped(want map[string]CollectionMeta, version uint64) (later bool, err error) {
	held, err := n.store.Incarnations()
	if err != nil {
		return false, fmt.Errorf("node: list the collections stored here: %w", err)
	}
	var errs []error
	for name, created := range held {
		if _, ok := want[name]; ok {
			continue
		}
		if created > version {
			later = true // the table has not caught up with it yet
			continue
		}
		if _, ok := n.colls[name]; ok {
			continue
		}
		n.log.Info("deleting the data of a collection dropped while this node was away", "collection", name, "created", created, "table_version", version)
		if err := n.store.Drop(name); err != nil {
			errs = append(errs, fmt.Errorf("node: delete the data of dropped collection %q: %w", name, err))
		}
	}
	return later, errors.Join(errs...)
}

// errTableBehind: the store holds the data of a later collection of the
// name than the table's (a restart from an older snapshot); the table
// catches up.
var errTableBehind = errors.New("node: the table names an earlier collection than this node's data")

// claimStore makes the store's data under m's name m's own before m is
// opened: the data of an earlier collection of the name (dropped while
// this node was away, so Sync never saw it go) is deleted, and m's
// Created is recorded as the incarnation of what the store holds there.
// Data without a recorded incarnation (written before it was recorded)
// is kept, as it always was.
func (n *Node) claimStore(m CollectionMeta) error {
	if m.Created == 0 { // created before the table recorded it
		return nil
	}
	held, err := n.store.Incarnation(m.Name)
	if err != nil {
		return err
	}
	switch {
	case held == m.Created:
		return nil
	case held > m.Created:
		return errTableBehind
	case held != 0:
		n.log.Info("deleting the data of an earlier collection of the same name", "collection", m.Name, "created", held, "now", m.Created)
		if err := n.store.Drop(m.Name); err != nil {
			return err
		}
	}
	return n.store.SetIncarnation(m.Name, m.Created)
}

func (n *Node) collection(name string) (*collection, error) {
	n.mu.RLock()
	c, ok := n.colls[name]
	closed := n.closed
	n.mu.RUnlock()
	if closed {
		return nil, ErrClosed
	}
	// current: c is not an earlier collection of the name than the
	// table's (or the table has none of it, dropped: Sync closes it).
	current := func(c *collection) bool {
		m, inTable := n.meta.Collection(name)
		return !inTable || sameIncarnation(m, c)
	}
	if ok {
		if current(c) {
			return c, nil
		}
		// The table names a later collection of this name (dropped and
		// created again) that this node has not reconciled yet, as while
		// it replays its Raft log after a restart: the earlier one must
		// not answer for it (a search would be refused for the earlier
		// one's dimension). Reconcile now (an error of another
		// collection's does not fail this one).
		serr := n.Sync()
		n.mu.RLock()
		c, ok = n.colls[name]
		n.mu.RUnlock()
		if ok && current(c) {
			return c, nil
		}
		if serr != nil {
			return nil, serr
		}
		return nil, fmt.Errorf("%w: collection %q was created again, and this node has not opened the new one yet", ErrStaleEpoch, name)
	}
	// The table may know it while the runtime does not yet (a create
	// whose proposal failed after it was applied, or, on a cluster, one
	// made through another node a moment ago): catch up once.
	_, inTable := n.meta.Collection(name)
	if !inTable {
		n.catchUp()
		_, inTable = n.meta.Collection(name)
	}
	if inTable {
		if err := n.Sync(); err != nil {
			return nil, err
		}
		n.mu.RLock()
		c, ok = n.colls[name]
		n.mu.RUnlock()
		if ok {
			return c, nil
		}
	}
	return nil, fmt.Errorf("%w: %q", ErrNoCollection, name)
}

// Close stops training, persists the indexes of ready collections (so the
// next start loads them) and releases the runtime. It does not close meta
// or store.
func (n *Node) Close() error {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return nil
	}
	n.closed = true
	colls := n.colls
	n.colls = map[string]*collection{}
	n.mu.Unlock()
	n.cancel()
	var errs []error
	for _, c := range colls {
		c.close()
		if err := c.flush(); err != nil {
			errs = append(errs, fmt.Errorf("node: flush %q: %w", c.meta.Name, err))
		}
	}
	return errors.Join(errs...)
}

// CollectionStatus is a collection as the API describes it.
type CollectionStatus struct {
	CollectionMeta
	Count        int64
	State        State
	Epoch        uint64
	TrainedNList int
	Lists        int // ivf lists held here
	// CountErr says why Count is not known (0 then): on a cluster, this
	// node is cut off from the Raft leader. The API
	// answers 503 rather than a wrong count; metrics leave the gauge out.
	CountErr error
	// CountMissing names the shards no replica of which answered its
	// count (distCount): Count sums the others (partial).
	CountMissing []string
}

// CreateCollection proposes a new collection and opens it. With a Model
// (an image collection) the dim comes from the model's embedder (m.Dim,
// when set, must equal it) and the model's hash is recorded.
func (n *Node) CreateCollection(ctx context.Context, m CollectionMeta) (CollectionStatus, error) {
	if m.Model != "" {
		e, err := n.imageModel(m.Model)
		if err != nil {
			return CollectionStatus{}, err
		}
		if m.Dim != 0 && m.Dim != e.Dim() {
			return CollectionStatus{}, fmt.Errorf("%w: dim %d, but model %q gives vectors of %d (leave dim out for an image collection)", ErrInvalid, m.Dim, m.Model, e.Dim())
		}
		m.Dim, m.ModelHash = e.Dim(), e.ModelHash()
	}
	if _, ok := n.meta.Collection(m.Name); ok {
		return CollectionStatus{}, fmt.Errorf("%w: %q", ErrExists, m.Name)
	}
	if err := n.store.Drop(m.Name); err != nil { // leftovers of a drop that crashed midway
		return CollectionStatus{}, err
	}
	live := 0 // the live nodes of a cluster; 0 outside one
	if ln, ok := n.meta.(interface{ LiveNodes() []string }); ok && n.peers != nil {
		live = len(ln.LiveNodes())
		// A cluster's collection gets its id directory (decision 10): one
		// partition per live node.
		m.IDDirectory = true
		for p := range live {
			if err := n.store.Drop(meta.DirName(m.Name, p)); err != nil {
				return CollectionStatus{}, err
			}
		}
	}
	m.State, m.Epoch = Untrained, 1
	if m.Replicas == 0 {
		// decision 3: one copy on one node, two from three nodes on.
		m.Replicas = 1
		if live >= 3 {
			m.Replicas = 2
		}
	}
	if err := n.meta.CreateCollection(ctx, m); err != nil {
		return CollectionStatus{}, err
	}
	if err := n.Sync(); err != nil {
		return CollectionStatus{}, err
	}
	s, err := n.Describe(m.Name)
	if s.CountErr != nil || s.CountMissing != nil {
		s.Count, s.CountErr, s.CountMissing = 0, nil, nil // created a moment ago: nothing in it
	}
	return s, err
}

// DropCollection proposes the drop, closes the collection and deletes its
// data.
func (n *Node) DropCollection(ctx context.Context, name string) error {
	if _, ok := n.meta.Collection(name); !ok {
		return fmt.Errorf("%w: %q", ErrNoCollection, name)
	}
	if err := n.meta.DropCollection(ctx, name); err != nil {
		n.Sync() // the drop may have been applied although the call failed
		return err
	}
	// Sync closes the collection and its directory's partitions and
	// deletes their data, as every node's does when it sees the drop.
	return n.Sync()
}

// Describe returns a collection's status.
func (n *Node) Describe(name string) (CollectionStatus, error) { return n.describe(name, true) }

// describe is Describe; count false skips the count of a collection on
// several nodes (one call per node), for callers that need only its
// metadata (the request handlers).
func (n *Node) describe(name string, count bool) (CollectionStatus, error) {
	c, err := n.collection(name)
	if err != nil {
		return CollectionStatus{}, err
	}
	m, ok := n.meta.Collection(name)
	if !ok {
		return CollectionStatus{}, fmt.Errorf("%w: %q", ErrNoCollection, name)
	}
	s := CollectionStatus{CollectionMeta: m, Count: c.count.Load(), State: c.State(), Epoch: c.epoch.Load(), TrainedNList: m.TrainedNList}
	if ix := c.ix.Load(); ix != nil {
		s.Lists = ix.NList()
		s.TrainedNList = ix.NList()
	}
	if rt, ok := n.distRoute(name); ok {
		// The collection as the cluster holds it: the table's state (still
		// training while the buffer moves to the lists) and the count of
		// one replica of each shard.
		s.State, s.Epoch = m.State, m.Epoch
		if m.State == Ready && m.Buffered {
			s.State = Training
		}
		// This node's own count is not the collection's: unknown until
		// the replicas answer.
		s.Count = 0
		if count {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if s.Count, s.CountMissing, s.CountErr = n.distCount(ctx, rt); s.CountErr != nil {
				s.CountErr = fmt.Errorf("collection %q: count: %w", name, s.CountErr)
			}
		}
	}
	return s, nil
}

// Collections describes every collection, sorted by name.
func (n *Node) Collections() []CollectionStatus {
	n.mu.RLock()
	names := make([]string, 0, len(n.colls))
	for name := range n.colls {
		if _, _, dir := meta.DirOf(name); !dir {
			names = append(names, name)
		}
	}
	n.mu.RUnlock()
	sort.Strings(names)
	out := make([]CollectionStatus, 0, len(names))
	for _, name := range names {
		if s, err := n.Describe(name); err == nil {
			out = append(out, s)
		}
	}
	return out
}

// route returns the shards of a collection and the epoch to call them
// with, from the table. On one node that is the local shard.
func (n *Node) route(name string) ([]Shard, uint64, ivf.Metric, error) {
	m, ok := n.meta.Collection(name)
	if !ok {
		return nil, 0, 0, fmt.Errorf("%w: %q", ErrNoCollection, name)
	}
	// The table's epoch. Right after a training commit the local runtime
	// may not have adopted it yet: the shard then answers ErrStaleEpoch
	// and withEpoch retries until it has.
	return []Shard{n.shard}, m.Epoch, m.Metric, nil
}

// withEpoch calls f with the current route and retries, for a bounded
// time, while a shard answers ErrStaleEpoch (the table moved on between
// routing and the call).
func (n *Node) withEpoch(ctx context.Context, name string, f func(ctx context.Context, shards []Shard, epoch uint64, metric ivf.Metric) error) error {
	ctx, cancel := context.WithTimeout(ctx, n.opts.CallTimeout)
	defer cancel()
	delay := time.Millisecond
	for {
		shards, epoch, metric, err := n.route(name)
		if err != nil {
			return err
		}
		err = f(ctx, shards, epoch, metric)
		if !errors.Is(err, ErrStaleEpoch) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(delay):
		}
		delay = min(2*delay, 50*time.Millisecond)
	}
}

// Insert upserts items, generating ids for those without one, and returns
// the ids in request order.
func (n *Node) Insert(ctx context.Context, name string, items []WriteItem) ([]string, error) {
	if len(items) == 0 {
		return nil, fmt.Errorf("%w: empty batch", ErrInvalid)
	}
	ids := make([]string, len(items))
	given := false
	for i := range items {
		if items[i].UserID == "" {
			items[i].UserID = newUserID()
		} else {
			given = true
		}
		ids[i] = items[i].UserID
	}
	if _, ok := n.distRoute(name); ok {
		// A generated id is new: only a given one may have an old copy on
		// another shard to evict.
		if _, err := n.distInsert(ctx, name, items, nil, given); err != nil {
			return nil, err
		}
		return ids, nil
	}
	err := n.withEpoch(ctx, name, func(ctx context.Context, shards []Shard, epoch uint64, _ ivf.Metric) error {
		// One node: one shard holds every list and the buffer.
		return shards[0].Upsert(ctx, &UpsertCall{Collection: name, Epoch: epoch, Items: items})
	})
	if err != nil {
		return nil, err
	}
	return ids, nil
}

// Delete deletes one item; deleting an absent id is ErrNoItem.
func (n *Node) Delete(ctx context.Context, name, userID string) error {
	if rt, ok := n.distRoute(name); ok {
		ctx, cancel := context.WithTimeout(ctx, n.opts.CallTimeout)
		defer cancel()
		var got int
		var err error
		if rt.dir != nil {
			got, err = n.dirDelete(ctx, rt, userID)
		} else {
			got, err = n.distDelete(ctx, rt, &proto.RPCDelete{Collection: name, UserIDs: []string{userID}}, nil)
		}
		if err == nil && got == 0 {
			err = fmt.Errorf("%w: %q", ErrNoItem, userID)
		}
		return err
	}
	return n.withEpoch(ctx, name, func(ctx context.Context, shards []Shard, epoch uint64, _ ivf.Metric) error {
		got, err := shards[0].Delete(ctx, &DeleteCall{Collection: name, Epoch: epoch, UserIDs: []string{userID}})
		if err == nil && got == 0 {
			err = fmt.Errorf("%w: %q", ErrNoItem, userID)
		}
		return err
	})
}

// Get reads one item (without its attachment).
func (n *Node) Get(ctx context.Context, name, userID string, withVector bool) (*Item, error) {
	return n.getItem(ctx, name, userID, withVector, false)
}

// Lookup reports which user ids are stored (an importer's resume check:
// one request for a batch of ids, no vectors or attachments sent back).
// On a cluster each id costs a read of its directory entry and one of
// its copy, so up to lookupParallel ids are read at once.
func (n *Node) Lookup(ctx context.Context, name string, userIDs []string) ([]bool, error) {
	found := make([]bool, len(userIDs))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(lookupParallel)
	for i, u := range userIDs {
		g.Go(func() error {
			_, err := n.getItem(gctx, name, u, false, false)
			switch {
			case err == nil:
				found[i] = true
			case errors.Is(err, ErrNoItem):
			default:
				return err
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return found, nil
}

// lookupParallel bounds the reads of one Lookup in flight.
const lookupParallel = 16

func (n *Node) getItem(ctx context.Context, name, userID string, withVector, withAttachment bool) (*Item, error) {
	if rt, ok := n.distRoute(name); ok {
		return n.distGet(ctx, rt, &proto.RPCGet{Collection: name, UserID: userID, WithVector: withVector, WithAttachment: withAttachment})
	}
	var it *Item
	err := n.withEpoch(ctx, name, func(ctx context.Context, shards []Shard, epoch uint64, _ ivf.Metric) error {
		var err error
		it, err = shards[0].Get(ctx, &GetCall{Collection: name, Epoch: epoch, UserID: userID, WithVector: withVector, WithAttachment: withAttachment})
		return err
	})
	return it, err
}

// SearchRequest is a gateway search: by Vector, or by the stored vector
// of UserID.
type SearchRequest struct {
	Vector []float32
	UserID string
	K      int
	NProbe int
	Refine int
}

// Search fans the query out to the collection's shards and merges their
// top-K. A shard that fails with anything but a bad request is named in
// MissingShards (partial); the query fails only when none answered.
func (n *Node) Search(ctx context.Context, name string, req SearchRequest) (*SearchResult, error) {
	if req.K < 1 || req.K > ivf.MaxK {
		return nil, fmt.Errorf("%w: k %d outside 1..%d", ErrInvalid, req.K, ivf.MaxK)
	}
	if req.Vector == nil {
		it, err := n.Get(ctx, name, req.UserID, true)
		if err != nil {
			return nil, err
		}
		req.Vector = it.Vector
	}
	if rt, ok := n.distRoute(name); ok {
		return n.distSearchRetry(ctx, name, rt, req)
	}
	var res *SearchResult
	err := n.withEpoch(ctx, name, func(ctx context.Context, shards []Shard, epoch uint64, metric ivf.Metric) error {
		res = &SearchResult{}
		replies := make([]*SearchReply, 0, len(shards))
		var firstErr error
		for i, s := range shards {
			r, err := s.Search(ctx, &SearchCall{Collection: name, Epoch: epoch, Vector: req.Vector, K: req.K, NProbe: req.NProbe, Refine: req.Refine})
			switch classify(err) {
			case callOK:
				replies = append(replies, r)
			case callFatal, callOverloaded:
				return err
			case callMissing:
				res.Partial = true
				res.MissingShards = append(res.MissingShards, fmt.Sprintf("%s/%d", name, i))
				if firstErr == nil {
					firstErr = err
				}
			}
		}
		if len(replies) == 0 && firstErr != nil {
			return firstErr
		}
		res.Hits = mergeShardHits(metric, req.K, replies)
		return nil
	})
	return res, err
}

type callClass int

const (
	callOK         callClass = iota
	callFatal                // fails the query: the request is wrong, or the table moved (retried)
	callMissing              // the shard had no live replica: the answer is partial
	callOverloaded           // the node refused the call as overloaded: another replica within the budget, else 429
)

// classify is the one place that decides what a shard's error does to a
// fanned-out query.
func classify(err error) callClass {
	switch {
	case err == nil:
		return callOK
	case errors.Is(err, ErrInvalid), errors.Is(err, ErrStaleEpoch), errors.Is(err, ErrNoCollection),
		errors.Is(err, ErrNoItem), errors.Is(err, ErrClosed):
		return callFatal
	case errors.Is(err, context.Canceled):
		return callFatal
	case errors.Is(err, ErrOverloaded):
		return callOverloaded
	}
	return callMissing
}

// Train starts training now and returns the epoch it will commit.
func (n *Node) Train(ctx context.Context, name string, nlist int) (uint64, error) {
	if rt, ok := n.distRoute(name); ok {
		return n.distTrain(ctx, rt, nlist)
	}
	c, err := n.collection(name)
	if err != nil {
		return 0, err
	}
	return c.startTraining(ctx, nlist)
}

// Cluster is the coordinator's view.
func (n *Node) Cluster() ClusterInfo { return n.meta.Cluster() }

// newUserID generates an id for an item that has none: 32 hex digits.
func newUserID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// idAllocator hands out internal ids from ranges reserved through the
// coordinator (decision 10).
type idAllocator struct {
	meta  Metadata
	block uint64

	mu        sync.Mutex
	next, end uint64
}

// freshBlock drops what is left of the current range: the next take
// reserves a new one, above every id any node was handed before. A
// directory partition's new primary calls it before its first entry, so
// that the ids it hands out, which version an id's copies, are above
// its predecessors' (writeAsPrimary).
func (a *idAllocator) freshBlock() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.next = a.end
}

func (a *idAllocator) take(ctx context.Context, n int) ([]uint64, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]uint64, 0, n)
	for len(out) < n {
		if a.next == a.end {
			want := max(a.block, uint64(n-len(out)))
			first, err := a.meta.AllocateIDs(ctx, want)
			if err != nil {
				return nil, fmt.Errorf("node: allocate ids: %w", err)
			}
			a.next, a.end = first, first+want
		}
		for a.next < a.end && len(out) < n {
			out = append(out, a.next)
			a.next++
		}
	}
	return out, nil
}
