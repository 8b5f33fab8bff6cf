package node

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"iter"
	"slices"
	"time"

	"lookalike/coordinator/meta"
	"lookalike/ivf"
	"lookalike/proto"
)

// The cluster data plane (docs/node.md, "Shards on several nodes"). A
// collection whose shard map names nodes other than this one is served
// by the gateway functions here: writes go to the primaries of the
// items' shards (rpc op write), which replicate them to their backups
// (replicate.go) before they answer; searches go to one replica of each
// shard holding a probed list, one call per node; deletes go to every
// node holding a replica. A collection placed on this node alone takes
// the one-node path of node.go.

// placer is what the data plane needs of the coordinator beyond Metadata.
// RaftMetadata implements it.
type placer interface {
	table() *meta.Table
	self() string
	// waitVersion waits until the local table reaches version v.
	waitVersion(ctx context.Context, v uint64) error
	// propose proposes a command through the leader.
	propose(ctx context.Context, cmd meta.Command) (any, error)
	// alive reports whether gossip sees the node (true for this node).
	alive(id string) bool
	// lease says whether this node may serve reads and writes (decision
	// 14): ErrCutOff once it has not heard from the leader for a lease.
	lease() error
}

// route is one read of a collection's placement.
type route struct {
	p       placer
	self    string
	version uint64
	c       *meta.Collection
	// dir are the partitions of the collection's id directory in the
	// same table (nil for a collection created without one: directory.go).
	dir []*meta.Collection
}

// newRoute reads collection name's placement from t.
func newRoute(p placer, t *meta.Table, c *meta.Collection) *route {
	rt := &route{p: p, self: p.self(), version: t.Version(), c: c}
	for i := range c.IDPartitions {
		d, ok := t.Collection(meta.DirName(c.Name, i))
		if !ok {
			return rt // cannot be: created and dropped with c
		}
		rt.dir = append(rt.dir, d)
	}
	return rt
}

// distRoute returns the placement of a collection on a node of a
// cluster (started with --gossip); ok is false outside one, where the
// one-node path serves every collection. In a cluster every collection
// takes the data plane, even one whose replicas are all on this node
// for now: a node may join it at any moment, and only the data plane
// replicates to joining nodes.
func (n *Node) distRoute(name string) (*route, bool) {
	p, ok := n.meta.(placer)
	if !ok || n.peers == nil {
		return nil, false
	}
	t := p.table()
	c, ok := t.Collection(name)
	if !ok {
		// Created through another node a moment ago? Catch up with the
		// leader's table first (read-your-writes across nodes).
		n.catchUp()
		t = p.table()
		if c, ok = t.Collection(name); !ok {
			return nil, false
		}
	}
	return newRoute(p, t, c), true
}

// leaderVersion answers OpVersion: the table version, on the leader.
func (n *Node) leaderVersion() (uint64, error) {
	rm, ok := n.meta.(*RaftMetadata)
	if !ok || !rm.s.IsLeader() {
		return 0, fmt.Errorf("%w: not the leader", ErrNotLeader)
	}
	return rm.s.Table().Version(), nil
}

// catchUp is a read barrier for a lookup that missed: it asks the Raft
// leader for its table version and waits (at most a second in all) until
// this node's table is as new. It reports whether the table may have
// changed (false outside a cluster, on the leader, or when the leader
// cannot be asked).
func (n *Node) catchUp() bool {
	rm, ok := n.meta.(*RaftMetadata)
	if !ok || n.peers == nil || rm.s.IsLeader() {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	v, err := n.askLeaderVersion(ctx)
	if err != nil {
		return false
	}
	if rm.s.Table().Version() >= v {
		return false
	}
	return rm.waitVersion(ctx, v) == nil
}

// askLeaderVersion returns the Raft leader's table version: its own on
// the leader, else from a call to it.
func (n *Node) askLeaderVersion(ctx context.Context) (uint64, error) {
	rm, ok := n.meta.(*RaftMetadata)
	if !ok || n.peers == nil {
		return 0, fmt.Errorf("%w: not in a cluster", ErrNotLeader)
	}
	if rm.s.IsLeader() {
		return rm.s.Table().Version(), nil
	}
	leader := rm.s.Leader().ID
	if leader == "" {
		return 0, fmt.Errorf("%w: no leader known", ErrUnavailable)
	}
	var r proto.RPCVersionReply
	if err := n.peers.call(ctx, leader, proto.OpVersion, &struct{}{}, &r); err != nil {
		return 0, err
	}
	return r.Version, nil
}

// leased fails with ErrCutOff when this node's lease has ended.
func (rt *route) leased() error { return rt.p.lease() }

// holdsBuffer reports whether this node is an in-sync replica of a buffer
// shard.
func (rt *route) holdsBuffer() bool {
	for _, s := range rt.c.Buffer {
		if slices.Contains(s.Replicas, rt.self) {
			return true
		}
	}
	return false
}

// shards returns the list shards then the buffer shards.
func (rt *route) shards() []meta.Shard {
	return append(slices.Clone(rt.c.Shards.Shards), rt.c.Buffer...)
}

// eachShard yields c's list shards, then its buffer shards, each with
// whether it is a buffer shard.
func eachShard(c *meta.Collection) iter.Seq2[meta.Shard, bool] {
	return func(yield func(meta.Shard, bool) bool) {
		for _, s := range c.Shards.Shards {
			if !yield(s, false) {
				return
			}
		}
		for _, s := range c.Buffer {
			if !yield(s, true) {
				return
			}
		}
	}
}

// trained reports whether writes go to lists (centroids committed).
func (rt *route) trained() bool { return !rt.c.Centroids.IsZero() && rt.c.State != meta.Untrained }

// shardOf returns the shard holding list l (BufferList: the buffer shard
// of userID).
func (rt *route) shardOf(l int32, userID string) (meta.Shard, bool) {
	if l == BufferList {
		if len(rt.c.Buffer) == 0 {
			return meta.Shard{}, false
		}
		return rt.c.Buffer[meta.BufferShard(userID, len(rt.c.Buffer))], true
	}
	if int(l) >= len(rt.c.Shards.ListShard) {
		return meta.Shard{}, false
	}
	return rt.c.Shards.Shards[rt.c.Shards.ListShard[l]], true
}

// holders returns the nodes holding or joining a replica of s: those a
// write or delete must reach.
func holders(s meta.Shard) []string { return append(slices.Clone(s.Replicas), s.Joining...) }

// nodes returns every node holding or joining a replica of some shard,
// sorted.
func (rt *route) nodes() []string {
	var out []string
	for _, s := range rt.shards() {
		for _, r := range holders(s) {
			if !slices.Contains(out, r) {
				out = append(out, r)
			}
		}
	}
	slices.Sort(out)
	return out
}

// pick chooses the replica of s that serves a read: this node if it holds
// one, else one already called for this request, else the live replica
// with the fewest reads assigned so far in this request, the primary
// first. ok is false when no replica is alive.
func (rt *route) pick(s meta.Shard, load map[string]int, avoid map[string]bool) (string, bool) {
	if slices.Contains(s.Replicas, rt.self) && !avoid[rt.self] {
		return rt.self, true
	}
	best, bestLoad := "", -1
	for _, r := range append([]string{s.Primary}, s.Replicas...) {
		if avoid[r] || !rt.p.alive(r) {
			continue
		}
		if l, called := load[r]; called {
			return r, true
		} else if best == "" || l < bestLoad {
			best, bestLoad = r, l
		}
	}
	return best, best != ""
}

// retryable reports whether a data-plane call may succeed when routed
// again after the table moves on (a failover, a training commit).
func retryable(err error) bool {
	return errors.Is(err, ErrStaleEpoch) || errors.Is(err, ErrNotPrimary) || errors.Is(err, ErrUnavailable) ||
		errors.Is(err, ErrNotLeader)
}

// backoff sleeps before the next try, or returns the context's error.
func backoff(ctx context.Context, delay *time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(*delay):
	}
	*delay = min(2**delay, 200*time.Millisecond)
	return nil
}

// --- gateway ---

// distInsert writes items through the primaries of their shards. Items
// with ids already set (preset non-nil) keep them: the buffer's move.
// It returns the internal id of each item. A user id given twice keeps
// its last item (as on one node).
//
// On a collection with an id directory the lists an item goes to are
// added to its entry before the item is written (directory.go), and
// evict sends the eviction of old copies only to the shards the entries
// named; without one, evict goes to every node.
func (n *Node) distInsert(ctx context.Context, name string, items []WriteItem, preset []uint64, evict bool) ([]uint64, error) {
	if err := n.lease(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, n.opts.CallTimeout)
	defer cancel()
	items, preset, back := lastOfEach(items, preset)
	prior := make([][]int32, len(items)) // the lists each id's entry named before
	// Without preset ids (the buffer's move presets its own), an item is
	// written under its version, the id of its entry's write ("Versions").
	var version []uint64
	if preset == nil {
		version = make([]uint64, len(items))
		preset = version
	}
	prepare := func(rt *route, todo []int) error {
		if rt.dir == nil || !rt.trained() {
			// Untrained: a user id's copy is in its buffer shard, known
			// from the id alone; the primary allocates its id (version
			// stays 0).
			return nil
		}
		return n.dirAdd(ctx, rt, items, todo, prior, version)
	}
	w, err := n.distWrite(ctx, name, items, preset, 0, prepare)
	if err != nil {
		return nil, err
	}
	if evict {
		if w.rt.dir != nil {
			if err := n.evictListed(ctx, w.rt, items, w.ids, w.applied, prior); err != nil {
				return nil, fmt.Errorf("written, but old copies of the ids may remain: %w", err)
			}
		} else if err := n.evictEverywhere(ctx, w.rt, items, w.ids, w.applied); err != nil {
			return nil, err
		}
	}
	return back(w.ids), nil
}

// lastOfEach keeps the last item of each user id; back maps the kept
// items' ids to the ids of all of them, in the caller's order.
func lastOfEach(items []WriteItem, preset []uint64) ([]WriteItem, []uint64, func([]uint64) []uint64) {
	last := make(map[string]int, len(items))
	for i, it := range items {
		last[it.UserID] = i
	}
	if len(last) == len(items) {
		return items, preset, func(ids []uint64) []uint64 { return ids }
	}
	var kept []WriteItem
	var keptPreset []uint64
	keptAt := make(map[int]int, len(last)) // an item's index → its index in kept
	for i, it := range items {
		if last[it.UserID] == i {
			keptAt[i] = len(kept)
			kept = append(kept, it)
			if preset != nil {
				keptPreset = append(keptPreset, preset[i])
			}
		}
	}
	at := make([]int, len(items)) // at[i]: the kept item of items[i]'s user id
	for i, it := range items {
		at[i] = keptAt[last[it.UserID]]
	}
	return kept, keptPreset, func(ids []uint64) []uint64 {
		out := make([]uint64, len(items))
		for i, k := range at {
			out[i] = ids[k]
		}
		return out
	}
}

// written is what distWrite did.
type written struct {
	ids     []uint64   // each item's internal id
	applied [][]string // the nodes that applied each item
	prior   [][]byte   // a directory operation: each item's entry before
	rt      *route     // the last route written through
}

// distWrite sends items (lists assigned by groupWrites) to the primaries
// of their shards, routing again and resending the items a primary
// refused while the table moves on (a failover, a training commit).
// prepare, when set, runs after the items of todo got their lists and
// before they are sent. dir is RPCWrite.Dir.
func (n *Node) distWrite(ctx context.Context, name string, items []WriteItem, preset []uint64, dir uint8,
	prepare func(rt *route, todo []int) error) (*written, error) {
	w := &written{ids: make([]uint64, len(items)), applied: make([][]string, len(items))}
	if dir != 0 {
		w.prior = make([][]byte, len(items))
	}
	todo := make([]int, len(items))
	for i := range todo {
		todo[i] = i
	}
	var deadline int64
	if d, ok := ctx.Deadline(); ok {
		deadline = d.UnixNano()
	}
	delay := 5 * time.Millisecond
	var lastErr error
	for len(todo) > 0 {
		rt, ok := n.distRoute(name)
		if !ok {
			return nil, fmt.Errorf("%w: %q", ErrNoCollection, name)
		}
		w.rt = rt
		groups, err := n.groupWrites(rt, items, todo)
		if err == nil && prepare != nil {
			err = prepare(rt, todo)
		}
		if err != nil {
			if !retryable(err) {
				return nil, err
			}
			lastErr = err
			if berr := backoff(ctx, &delay); berr != nil {
				return nil, fmt.Errorf("%w (after %v)", lastErr, berr)
			}
			continue
		}
		type result struct {
			idx   []int
			reply *proto.RPCWriteReply
			err   error
		}
		results := make(chan result, len(groups))
		for node, idx := range groups {
			call := &proto.RPCWrite{Collection: name, Epoch: rt.c.Epoch, Version: rt.version, Items: make([]proto.RPCItem, len(idx)), Dir: dir, Deadline: deadline}
			for j, i := range idx {
				it := items[i]
				call.Items[j] = proto.RPCItem{UserID: it.UserID, List: it.list, Vector: proto.VectorView(it.Vector), Meta: it.Meta, Attachment: it.Attachment}
				if preset != nil {
					call.Items[j].ID = preset[i]
				}
			}
			go func() {
				reply, err := n.writeTo(ctx, node, call)
				results <- result{idx, reply, err}
			}()
		}
		var next []int
		for range groups {
			r := <-results
			switch {
			case r.err == nil && len(r.reply.IDs) == len(r.idx) && (w.prior == nil || len(r.reply.Prior) == len(r.idx)):
				for j, i := range r.idx {
					w.ids[i] = r.reply.IDs[j]
					w.applied[i] = r.reply.Applied
					if w.prior != nil {
						w.prior[i] = r.reply.Prior[j]
					}
				}
			case r.err == nil:
				return nil, fmt.Errorf("node: a primary answered %d ids and %d entries for %d items", len(r.reply.IDs), len(r.reply.Prior), len(r.idx))
			case retryable(r.err):
				lastErr = r.err
				next = append(next, r.idx...)
			default:
				return nil, r.err
			}
		}
		todo = next
		if len(todo) > 0 {
			if berr := backoff(ctx, &delay); berr != nil {
				return nil, fmt.Errorf("%w (after %v)", lastErr, berr)
			}
		}
	}
	return w, nil
}

// evictEverywhere is the eviction of a collection without an id
// directory: an upsert may have placed a user id's new copy on another
// shard than its old one, so every node holding a replica drops the
// copies other than the new (docs/node.md, "Shards on several nodes").
func (n *Node) evictEverywhere(ctx context.Context, rt *route, items []WriteItem, ids []uint64, applied [][]string) error {
	users := make([]string, len(items))
	for i, it := range items {
		users[i] = it.UserID
	}
	// A node that applied an item's new copy holds no old one (one copy
	// per user id a node): it is told, and skips the lookup.
	here := func(node string) []bool {
		flags := make([]bool, len(items))
		for i := range items {
			flags[i] = slices.Contains(applied[i], node)
		}
		return flags
	}
	if _, err := n.distDelete(ctx, rt, &proto.RPCDelete{Collection: rt.c.Name, UserIDs: users, Keep: ids}, here); err != nil {
		return fmt.Errorf("written, but old copies of the ids may remain: %w", err)
	}
	return nil
}

// localRoute is the route of a collection whose replicas are all here.
func (n *Node) localRoute(name string) *route {
	p, ok := n.meta.(placer)
	if !ok {
		return nil
	}
	t := p.table()
	c, ok := t.Collection(name)
	if !ok {
		return nil
	}
	return newRoute(p, t, c)
}

// groupWrites assigns each item of todo its list (the buffer before
// training) and groups the items by the node of their shard's primary.
// It sets items[i].list.
func (n *Node) groupWrites(rt *route, items []WriteItem, todo []int) (map[string][]int, error) {
	groups := map[string][]int{}
	if rt.trained() {
		c, err := n.collection(rt.c.Name)
		if err != nil {
			return nil, err
		}
		ix := c.follow()
		if ix == nil {
			return nil, fmt.Errorf("%w: collection %q: centroids not loaded yet", ErrStaleEpoch, rt.c.Name)
		}
		vecs := make([]float32, 0, len(todo)*rt.c.Dim)
		for _, i := range todo {
			if err := c.checkVector(items[i].Vector); err != nil {
				return nil, fmt.Errorf("items[%d]: %w", i, err)
			}
			vecs = append(vecs, items[i].Vector...)
		}
		labels, err := ix.Assign(vecs)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
		}
		for j, i := range todo {
			items[i].list = labels[j]
		}
	} else {
		for _, i := range todo {
			items[i].list = BufferList
		}
	}
	for _, i := range todo {
		s, ok := rt.shardOf(items[i].list, items[i].UserID)
		if !ok {
			return nil, fmt.Errorf("%w: collection %q has no shard for list %d", ErrStaleEpoch, rt.c.Name, items[i].list)
		}
		groups[s.Primary] = append(groups[s.Primary], i)
	}
	return groups, nil
}

// writeTo calls a primary, in process when it is this node.
func (n *Node) writeTo(ctx context.Context, node string, call *proto.RPCWrite) (*proto.RPCWriteReply, error) {
	if node == n.opts.NodeID {
		return n.primaryWrite(ctx, call)
	}
	var reply proto.RPCWriteReply
	if err := n.peers.call(ctx, node, proto.OpWrite, call, &reply); err != nil {
		return nil, err
	}
	return &reply, nil
}

// distDelete sends a delete to every node holding a replica and returns
// the most copies one node removed (each replica holds every item of its
// shards, so that is how many ids existed).
//
// With applied set (an eviction after an upsert), each node's call
// carries applied(node) as its Applied flags.
func (n *Node) distDelete(ctx context.Context, rt *route, call *proto.RPCDelete, applied func(node string) []bool) (int, error) {
	return n.deleteAt(ctx, rt, func(rt *route) map[string]*proto.RPCDelete {
		out := map[string]*proto.RPCDelete{}
		for _, node := range rt.nodes() {
			c := *call
			if applied != nil {
				c.Applied = applied(node)
			}
			out[node] = &c
		}
		return out
	})
}

// deleteAt sends each node of calls(rt) its delete and returns the most
// copies one node removed. When a node fails, it routes again and sends
// the calls of the new route to the nodes that have not answered yet:
// once the leader has taken a failed replica out of its shards (or it
// answers again), the delete is complete.
func (n *Node) deleteAt(ctx context.Context, rt *route, calls func(rt *route) map[string]*proto.RPCDelete) (int, error) {
	if err := rt.leased(); err != nil {
		return 0, err
	}
	delay := 5 * time.Millisecond
	done := map[string]bool{}
	best := 0
	for {
		type result struct {
			node    string
			removed int
			err     error
		}
		targets := calls(rt)
		for node := range done {
			delete(targets, node)
		}
		results := make(chan result, len(targets))
		for node, call := range targets {
			call.Epoch, call.Version = rt.c.Epoch, rt.version
			go func() {
				var r int
				var err error
				if node == rt.self {
					r, err = n.deleteLocal(ctx, call)
				} else {
					var reply proto.RPCDeleteReply
					err = n.peers.call(ctx, node, proto.OpDelete, call, &reply)
					r = reply.Removed
				}
				results <- result{node, r, err}
			}()
		}
		var lastErr error
		for range targets {
			r := <-results
			switch {
			case r.err == nil:
				done[r.node] = true
				best = max(best, r.removed)
			case retryable(r.err):
				lastErr = r.err
			default:
				return 0, r.err
			}
		}
		if lastErr == nil {
			return best, nil
		}
		if err := backoff(ctx, &delay); err != nil {
			return 0, fmt.Errorf("%w (after %v)", lastErr, err)
		}
		next, ok := n.distRoute(rt.c.Name)
		if !ok {
			if next = n.localRoute(rt.c.Name); next == nil {
				return 0, fmt.Errorf("%w: %q", ErrNoCollection, rt.c.Name)
			}
		}
		rt = next
	}
}

// maxSearchWaves bounds the calls of one search: the first, retries of
// failed calls on other replicas, and hedges.
const maxSearchWaves = 6

// searchHedge is how long a search waits for a node before it asks
// another replica of the same lists too.
const searchHedge = 250 * time.Millisecond

// Hedges and retries after an overloaded node are allowed for about one
// search in ten (extraCallRatio), with a burst of extraCallBurst: enough
// for the odd slow node, not enough to double the load of a slow cluster.
// Retries after a failed or dead node are not budgeted: they are what
// keeps searches whole through a failover.
const (
	extraCallRatio = 0.1
	extraCallBurst = 20
)

// extraCall asks the budget for one extra call of a kind ("hedge",
// "overload_retry") and counts the answer in extraCalls.
func (n *Node) extraCall(kind string) bool {
	if !n.extra.spend() {
		n.extraCalls.WithLabelValues(kind, "over_budget").Inc()
		return false
	}
	n.extraCalls.WithLabelValues(kind, "sent").Inc()
	return true
}

// distSearch scans the probed lists on one replica of each shard holding
// them, one call per node, and merges the answers.
func (n *Node) distSearch(ctx context.Context, rt *route, req SearchRequest) (*SearchResult, error) {
	if err := rt.leased(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, n.opts.CallTimeout)
	defer cancel()
	name := rt.c.Name
	c, err := n.collection(name)
	if err != nil {
		return nil, err
	}
	if err := c.checkVector(req.Vector); err != nil {
		return nil, err
	}
	n.extra.earn()
	// What to scan: shard → probes, and the buffer shards.
	type part struct {
		shard  meta.Shard
		sid    int // index in the shard map (or the buffer)
		name   string
		probes []ivf.Probe
		buffer bool
	}
	var parts []*part
	if rt.trained() {
		ix := c.follow()
		if ix == nil {
			return nil, fmt.Errorf("%w: collection %q: centroids not loaded yet", ErrStaleEpoch, name)
		}
		nprobe := req.NProbe
		nl := ix.NList()
		if nprobe > nl {
			return nil, fmt.Errorf("%w: nprobe %d exceeds nlist %d", ErrInvalid, nprobe, nl)
		}
		if nprobe <= 0 {
			nprobe = min(n.opts.DefaultNProbe, nl)
		}
		probes, err := ix.Probes(req.Vector, nprobe)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
		}
		byShard := map[uint32]*part{}
		for _, p := range probes {
			if int(p.List) >= len(rt.c.Shards.ListShard) {
				return nil, fmt.Errorf("%w: list %d outside the shard map", ErrStaleEpoch, p.List)
			}
			sid := rt.c.Shards.ListShard[p.List]
			pt := byShard[sid]
			if pt == nil {
				pt = &part{shard: rt.c.Shards.Shards[sid], sid: int(sid), name: fmt.Sprintf("%s/%d", name, sid)}
				byShard[sid] = pt
				parts = append(parts, pt)
			}
			pt.probes = append(pt.probes, p)
		}
	}
	for i, s := range rt.c.Buffer {
		parts = append(parts, &part{shard: s, sid: i, name: fmt.Sprintf("%s/buffer/%d", name, i), buffer: true})
	}
	res := &SearchResult{}
	var replies [][]ivf.Hit
	named := map[uint64]proto.RPCHit{}
	load := map[string]int{}
	avoid := map[string]bool{}
	contacted := map[string]bool{}
	answered := map[*part]bool{}
	type result struct {
		node  string
		parts []*part
		reply *proto.RPCSearchReply
		local []ivf.Hit // this node's part: not named yet
		err   error
	}
	cctx, cancelCalls := context.WithCancel(ctx)
	defer cancelCalls() // calls still running once every part has an answer
	results := make(chan result, maxSearchWaves*(len(parts)+1))
	pending := map[string][]*part{} // parts of calls in flight, by node
	outstanding := 0
	waves := 0
	// launch calls one replica of each part's shard, one call per node.
	launch := func(pts []*part) {
		waves++
		byNode := map[string][]*part{}
		for _, pt := range pts {
			if answered[pt] {
				continue
			}
			node, ok := rt.pick(pt.shard, load, avoid)
			if !ok {
				continue // no live replica left: reported missing below
			}
			load[node] += len(pt.probes) + 1
			byNode[node] = append(byNode[node], pt)
		}
		for node, pts := range byNode {
			contacted[node] = true
			pending[node] = append(pending[node], pts...)
			outstanding++
			call := &proto.RPCSearch{Collection: name, Epoch: rt.c.Epoch, Vector: proto.PackVector(req.Vector), K: req.K, Refine: req.Refine}
			for _, pt := range pts {
				call.Buffer = call.Buffer || pt.buffer
				for _, p := range pt.probes {
					call.Lists = append(call.Lists, p.List)
					call.Dists = append(call.Dists, p.Dist)
				}
			}
			go func() {
				if node == rt.self {
					local, err := n.scanPart(cctx, call)
					results <- result{node: node, parts: pts, local: local, err: err}
					return
				}
				reply := new(proto.RPCSearchReply)
				err := n.peers.call(cctx, node, proto.OpSearch, call, reply)
				results <- result{node: node, parts: pts, reply: reply, err: err}
			}()
		}
	}
	unanswered := func(pts []*part) []*part {
		var out []*part
		for _, pt := range pts {
			if !answered[pt] {
				out = append(out, pt)
			}
		}
		return out
	}
	launch(parts)
	// Hedging: parts a node has not answered within searchHedge are asked
	// of another replica too; the first answer counts (both are exact
	// answers for the same lists, and MergeTopK drops duplicates).
	hedge := time.NewTimer(searchHedge)
	defer hedge.Stop()
wait:
	for outstanding > 0 && len(answered) < len(parts) {
		select {
		case r := <-results:
			outstanding--
			pending[r.node] = slices.DeleteFunc(pending[r.node], func(p *part) bool { return slices.Contains(r.parts, p) })
			switch classify(r.err) {
			case callOK:
				if r.reply == nil {
					replies = append(replies, r.local) // named after the merge
				} else {
					hits := make([]ivf.Hit, len(r.reply.Hits))
					for i, h := range r.reply.Hits {
						hits[i] = ivf.Hit{ID: h.ID, Dist: h.Dist}
						named[h.ID] = h
					}
					replies = append(replies, hits)
				}
				for _, pt := range r.parts {
					answered[pt] = true
				}
			case callFatal:
				if !errors.Is(r.err, ErrStaleEpoch) && !errors.Is(r.err, ErrNoCollection) && !errors.Is(r.err, ErrClosed) {
					return nil, r.err
				}
				fallthrough // that replica is behind or going away: try another
			case callMissing:
				avoid[r.node] = true
				if waves < maxSearchWaves {
					launch(unanswered(r.parts))
				}
			case callOverloaded:
				// Another replica may have room, but retrying every
				// refusal would add load where there is none to spare.
				if !n.extraCall("overload_retry") {
					return nil, r.err
				}
				avoid[r.node] = true
				if waves < maxSearchWaves {
					launch(unanswered(r.parts))
				}
			}
		case <-hedge.C:
			var slow []*part
			var slowNodes []string
			for node, pts := range pending {
				if len(pts) > 0 {
					slow = append(slow, unanswered(pts)...)
					slowNodes = append(slowNodes, node)
				}
			}
			if len(slow) == 0 || waves >= maxSearchWaves || !n.extraCall("hedge") {
				break
			}
			for _, node := range slowNodes {
				avoid[node] = true
			}
			launch(slow)
		case <-ctx.Done():
			break wait
		}
		if outstanding == 0 && len(answered) < len(parts) && waves < maxSearchWaves {
			// Every replica of some part failed or was out (a failover, a
			// node restarting and not yet leased): wait a little, read
			// the table again and try them all once more.
			select {
			case <-ctx.Done():
				break wait
			case <-time.After(time.Duration(waves) * 50 * time.Millisecond):
			}
			if next, ok := n.distRoute(name); ok {
				for _, pt := range parts {
					switch {
					case pt.buffer && pt.sid < len(next.c.Buffer):
						pt.shard = next.c.Buffer[pt.sid]
					case !pt.buffer && pt.sid < len(next.c.Shards.Shards):
						pt.shard = next.c.Shards.Shards[pt.sid]
					}
				}
				rt = next
			}
			clear(avoid)
			launch(unanswered(parts))
		}
	}
	for _, pt := range parts {
		if !answered[pt] {
			res.Partial = true
			res.MissingShards = append(res.MissingShards, pt.name)
		}
	}
	n.nodesContacted.Observe(float64(len(contacted)))
	if len(replies) == 0 && len(parts) > 0 {
		return nil, fmt.Errorf("%w: no replica of collection %q answered", ErrUnavailable, name)
	}
	all := 0
	for _, r := range replies {
		all += len(r)
	}
	res.Hits = nameHits(ivf.MergeTopK(all, replies...), req.K, rt.c.Metric, rt.versioned(), named, func(id uint64) (Item, error) { return n.store.Item(name, id) })
	return res, nil
}

// nameHits returns the first k hits of merged (in order) with their names:
// those of named (a called node's, named there) or else from item (this
// node's own part: only the hits that made the top k are named here, for
// with parts on two nodes, naming every part's k was a quarter of a
// query's store reads for nothing). A hit whose item is gone (deleted
// since the scan) is skipped, and the next takes its place, as when the
// callee names.
//
// A user id is named once: while an upsert moves an item to a list of
// another shard, its new copy is written before the old one is evicted,
// and a search between the two found both (TestClusterChaos saw it in
// about 1 search in 8,000 during its kills); so does one after a gateway
// died between the two, until the directory sweep evicts the old copy.
// With versioned (the collection has an id directory, whose internal ids
// are versions: "Versions" below) the newer copy is named, at its own
// score, whichever scored better; else the best-scored one. One node
// never answers so: its store keeps one copy per user id.
func nameHits(merged []ivf.Hit, k int, metric ivf.Metric, versioned bool, named map[uint64]proto.RPCHit, item func(id uint64) (Item, error)) []Hit {
	out := make([]Hit, 0, min(k, len(merged)))
	ids := make([]uint64, 0, cap(out)) // ids[i] is out[i]'s internal id
	for _, h := range merged {
		if len(out) == k {
			break
		}
		nh, ok := named[h.ID]
		if !ok {
			it, err := item(h.ID)
			if err != nil {
				continue
			}
			nh = proto.RPCHit{UserID: it.UserID, Meta: it.Meta}
		}
		if i := slices.IndexFunc(out, func(x Hit) bool { return x.UserID == nh.UserID }); i >= 0 {
			if !versioned || h.ID < ids[i] {
				continue
			}
			// An older copy ranked first: it goes, and this one takes
			// its place in score order (merged is in order).
			out, ids = slices.Delete(out, i, i+1), slices.Delete(ids, i, i+1)
		}
		out = append(out, Hit{UserID: nh.UserID, Score: metric.Score(h.Dist), Meta: nh.Meta})
		ids = append(ids, h.ID)
	}
	return out
}

// distSearchRetry is distSearch, routed again (for a bounded time) while
// the table moves on under it.
func (n *Node) distSearchRetry(ctx context.Context, name string, rt *route, req SearchRequest) (*SearchResult, error) {
	ctx, cancel := context.WithTimeout(ctx, n.opts.CallTimeout)
	defer cancel()
	delay := 2 * time.Millisecond
	for {
		res, err := n.distSearch(ctx, rt, req)
		if err == nil || !errors.Is(err, ErrStaleEpoch) {
			return res, err
		}
		if berr := backoff(ctx, &delay); berr != nil {
			return nil, err
		}
		next, ok := n.distRoute(name)
		if !ok {
			return n.Search(ctx, name, req)
		}
		rt = next
	}
}

// distGet reads an item from one replica of every shard (this node
// first) and returns the first copy found; with an id directory, only
// from the shards the id's entry names (dirGet).
func (n *Node) distGet(ctx context.Context, rt *route, call *proto.RPCGet) (*Item, error) {
	if err := rt.leased(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, n.opts.CallTimeout)
	defer cancel()
	call.Epoch = rt.c.Epoch
	if rt.dir != nil {
		return n.dirGet(ctx, rt, call)
	}
	if it, err := n.getLocal(call); err == nil && it.Found {
		return itemOf(&it.Item)
	}
	var nodes []string
	load := map[string]int{rt.self: 0}
	for _, s := range rt.shards() {
		node, ok := rt.pick(s, load, nil)
		if !ok {
			continue
		}
		load[node]++
		if node != rt.self && !slices.Contains(nodes, node) {
			nodes = append(nodes, node)
		}
	}
	return n.getFrom(ctx, nodes, call)
}

// getFrom asks nodes for the item in parallel and returns the first copy
// found.
func (n *Node) getFrom(ctx context.Context, nodes []string, call *proto.RPCGet) (*Item, error) {
	type result struct {
		reply proto.RPCGetReply
		err   error
	}
	results := make(chan result, len(nodes))
	for _, node := range nodes {
		go func() {
			var r result
			r.err = n.peers.call(ctx, node, proto.OpGet, call, &r.reply)
			results <- r
		}()
	}
	var firstErr error
	for range nodes {
		r := <-results
		if r.err == nil && r.reply.Found {
			return itemOf(&r.reply.Item)
		}
		if r.err != nil && firstErr == nil {
			firstErr = r.err
		}
	}
	if firstErr != nil && !errors.Is(firstErr, ErrNoItem) {
		return nil, firstErr
	}
	return nil, fmt.Errorf("%w: %q", ErrNoItem, call.UserID)
}

func itemOf(ri *proto.RPCItem) (*Item, error) {
	it := &Item{ID: ri.ID, UserID: ri.UserID, List: ri.List, Meta: ri.Meta, Attachment: ri.Attachment}
	if ri.Vector != nil {
		v, err := proto.UnpackVector(ri.Vector)
		if err != nil {
			return nil, err
		}
		it.Vector = v
	}
	return it, nil
}

// distTrain starts training on the buffer's primary.
func (n *Node) distTrain(ctx context.Context, rt *route, nlist int) (uint64, error) {
	if err := rt.leased(); err != nil {
		return 0, err
	}
	if len(rt.c.Buffer) == 0 {
		return 0, fmt.Errorf("%w: collection %q is %v", ErrBadState, rt.c.Name, rt.c.State)
	}
	primary := rt.c.Buffer[0].Primary
	if primary == rt.self {
		return n.trainLocal(ctx, rt.c.Name, nlist)
	}
	var reply proto.RPCTrainReply
	if err := n.peers.call(ctx, primary, proto.OpTrain, &proto.RPCTrain{Collection: rt.c.Name, NList: nlist}, &reply); err != nil {
		return 0, err
	}
	return reply.Epoch, nil
}

// lease fails with ErrCutOff when this node of a cluster has not heard
// from the Raft leader for a lease (decision 14).
func (n *Node) lease() error {
	if p, ok := n.meta.(placer); ok && n.peers != nil {
		return p.lease()
	}
	return nil
}

// --- callee side ---

// callColl opens the collection of a call after the local table has
// reached the caller's version.
func (n *Node) callColl(ctx context.Context, name string, version uint64) (*collection, *route, error) {
	p, ok := n.meta.(placer)
	if !ok {
		return nil, nil, fmt.Errorf("%w: not a cluster node", ErrInvalid)
	}
	if err := p.lease(); err != nil {
		return nil, nil, err
	}
	if version > 0 {
		wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := p.waitVersion(wctx, version)
		cancel()
		if err != nil {
			return nil, nil, fmt.Errorf("%w: table behind the caller's version %d: %v", ErrStaleEpoch, version, err)
		}
	}
	c, err := n.collection(name)
	if err != nil {
		return nil, nil, err
	}
	rt := n.localRoute(name)
	if rt == nil {
		return nil, nil, fmt.Errorf("%w: %q", ErrNoCollection, name)
	}
	return c, rt, nil
}

// unpackItems turns a call's items into the collection's, validated.
func (c *collection) unpackItems(in []proto.RPCItem) ([]WriteItem, []int32, []uint64, error) {
	items := make([]WriteItem, len(in))
	lists := make([]int32, len(in))
	ids := make([]uint64, len(in))
	packed := make([][]byte, len(in))
	for i := range in {
		packed[i] = in[i].Vector
	}
	vecs, err := proto.UnpackVectors(packed) // one allocation for the batch
	if err != nil {
		return nil, nil, nil, fmt.Errorf("%w: items: %v", ErrInvalid, err)
	}
	for i, ri := range in {
		v := vecs[i]
		if err := c.checkVector(v); err != nil {
			return nil, nil, nil, fmt.Errorf("items[%d]: %w", i, err)
		}
		if ri.UserID == "" {
			return nil, nil, nil, fmt.Errorf("%w: items[%d] has no user id", ErrInvalid, i)
		}
		items[i] = WriteItem{UserID: ri.UserID, Vector: v, Meta: ri.Meta, Attachment: ri.Attachment}
		lists[i], ids[i] = ri.List, ri.ID
	}
	return items, lists, ids, nil
}

// primaryWrite stores a gateway's items on this node, the primary of
// their shards, and replicates them to the backups before it returns.
func (n *Node) primaryWrite(ctx context.Context, call *proto.RPCWrite) (*proto.RPCWriteReply, error) {
	c, rt, err := n.callColl(ctx, call.Collection, call.Version)
	if err != nil {
		return nil, err
	}
	if rt.c.Epoch != call.Epoch {
		return nil, fmt.Errorf("%w: collection %q is at epoch %d, call carries %d", ErrStaleEpoch, call.Collection, rt.c.Epoch, call.Epoch)
	}
	items, lists, ids, err := c.unpackItems(call.Items)
	if err != nil {
		return nil, err
	}
	if err := rt.leads(items, lists); err != nil {
		return nil, err
	}
	if rt.trained() && c.follow() == nil {
		return nil, fmt.Errorf("%w: collection %q: centroids not loaded yet", ErrStaleEpoch, call.Collection)
	}
	if call.Deadline != 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, time.Unix(0, call.Deadline))
		defer cancel()
	}
	var merge func([]WriteItem, []int) error
	var prior [][]byte
	if call.Dir != 0 {
		if !c.dir {
			return nil, fmt.Errorf("%w: a directory operation on %q, which is not an id directory", ErrInvalid, call.Collection)
		}
		merge = func(items []WriteItem, keep []int) error {
			var err error
			prior, err = c.dirMerge(call.Dir, items, keep)
			return err
		}
	}
	ids, applied, err := c.writeAsPrimary(ctx, rt, items, lists, ids, merge)
	if err != nil {
		return nil, err
	}
	return &proto.RPCWriteReply{IDs: ids, Applied: applied, Prior: prior}, nil
}

// applyReplica applies a primary's write in its stream's order.
func (n *Node) applyReplica(ctx context.Context, call *proto.RPCReplicate) error {
	c, rt, err := n.callColl(ctx, call.Collection, call.Version)
	if err != nil {
		return err
	}
	items, lists, ids, err := c.unpackItems(call.Items)
	if err != nil {
		return err
	}
	// A node handing its shards off at shutdown still applies the calls
	// of a primary whose table does not show yet that it left (its copy
	// no longer counts, but a refusal would cost the write the primary's
	// removal of it and one lease).
	leaving := n.leaving.Load()
	for i := range items {
		s, ok := rt.shardOf(lists[i], items[i].UserID)
		if !ok || s.Primary != call.From || !slices.Contains(s.Replicas, rt.self) && !slices.Contains(s.Joining, rt.self) && !leaving {
			return fmt.Errorf("%w: %s is not the primary of list %d of %q with this node a replica", ErrNotPrimary, call.From, lists[i], call.Collection)
		}
		if ids[i] == 0 {
			return fmt.Errorf("%w: replicated item without an id", ErrInvalid)
		}
	}
	if rt.trained() && c.follow() == nil {
		return fmt.Errorf("%w: collection %q: centroids not loaded yet", ErrStaleEpoch, call.Collection)
	}
	return c.applyAsBackup(ctx, call.From, call.Stream, call.Seq, items, lists, ids)
}

// searchPart scans the lists (and buffer) a gateway asked this node for.
func (n *Node) searchPart(ctx context.Context, call *proto.RPCSearch) (*proto.RPCSearchReply, error) {
	hits, err := n.scanPart(ctx, call)
	if err != nil {
		return nil, err
	}
	out := &proto.RPCSearchReply{Hits: make([]proto.RPCHit, 0, min(call.K, len(hits)))}
	for _, h := range hits {
		if len(out.Hits) == call.K {
			break
		}
		it, err := n.store.Item(call.Collection, h.ID)
		if err != nil {
			continue // deleted between the scan and this read: the delete wins
		}
		out.Hits = append(out.Hits, proto.RPCHit{ID: h.ID, Dist: h.Dist, UserID: it.UserID, Meta: it.Meta})
	}
	return out, nil
}

// scanPart is searchPart's scan, without names: the gateway's own part,
// whose hits it names after the merge, only those that made the top k.
func (n *Node) scanPart(ctx context.Context, call *proto.RPCSearch) ([]ivf.Hit, error) {
	c, err := n.collection(call.Collection)
	if err != nil {
		return nil, err
	}
	if err := n.lease(); err != nil {
		return nil, err
	}
	rt := n.localRoute(call.Collection)
	if rt == nil {
		return nil, fmt.Errorf("%w: %q", ErrNoCollection, call.Collection)
	}
	if rt.c.Epoch != call.Epoch {
		return nil, fmt.Errorf("%w: collection %q is at epoch %d, call carries %d", ErrStaleEpoch, call.Collection, rt.c.Epoch, call.Epoch)
	}
	// Serve only what this node holds in sync, as its table says: a
	// gateway with an older table may still name a replica that left.
	for _, l := range call.Lists {
		if s, ok := rt.shardOf(l, ""); !ok || !slices.Contains(s.Replicas, rt.self) {
			return nil, fmt.Errorf("%w: list %d of %q is not held here in sync", ErrStaleEpoch, l, call.Collection)
		}
	}
	if call.Buffer && !rt.holdsBuffer() {
		return nil, fmt.Errorf("%w: the buffer of %q is not held here in sync", ErrStaleEpoch, call.Collection)
	}
	q, err := proto.UnpackVector(call.Vector)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if err := c.checkVector(q); err != nil {
		return nil, err
	}
	if len(call.Lists) != len(call.Dists) {
		return nil, fmt.Errorf("%w: %d lists, %d distances", ErrInvalid, len(call.Lists), len(call.Dists))
	}
	probes := make([]ivf.Probe, len(call.Lists))
	for i, l := range call.Lists {
		probes[i] = ivf.Probe{List: l, Dist: call.Dists[i]}
	}
	if call.K < 1 || call.K > ivf.MaxK {
		return nil, fmt.Errorf("%w: k %d outside 1..%d", ErrInvalid, call.K, ivf.MaxK)
	}
	release, err := n.scans.enter(ctx)
	if err != nil {
		return nil, err
	}
	defer release()
	return c.searchProbes(q, min(call.K+nameSlack, ivf.MaxK), call.Refine, probes, call.Buffer)
}

// nameSlack is how many hits past k a part scans: a hit whose item is
// gone when it is named (deleted, or dropped with a copy this node no
// longer holds, since the scan) is skipped, and the next takes its place
// rather than the answer coming back short. Only k are named.
const nameSlack = 2

// getLocal reads an item from this node's store; a copy in a shard this
// node does not hold in sync (left over from before it failed) does not
// count.
func (n *Node) getLocal(call *proto.RPCGet) (*proto.RPCGetReply, error) {
	if err := n.lease(); err != nil {
		return nil, err
	}
	if call.Version > 0 {
		// The caller decides by what replicas of the table at Version
		// hold (the directory sweep): answer by that table or a newer.
		if p, ok := n.meta.(placer); ok {
			ctx, cancel := context.WithTimeout(n.ctx, time.Second)
			err := p.waitVersion(ctx, call.Version)
			cancel()
			if err != nil {
				return nil, fmt.Errorf("%w: table version %d not reached: %v", ErrStaleEpoch, call.Version, err)
			}
		}
	}
	c, err := n.collection(call.Collection)
	if err != nil {
		return nil, err
	}
	it, err := c.stored(call.UserID)
	if errors.Is(err, ErrNoItem) {
		return &proto.RPCGetReply{}, nil
	}
	if err != nil {
		return nil, err
	}
	if rt, ok := n.distRoute(call.Collection); ok {
		if s, ok := rt.shardOf(it.List, it.UserID); !ok || !slices.Contains(s.Replicas, rt.self) {
			return &proto.RPCGetReply{}, nil
		}
	}
	r := &proto.RPCGetReply{Found: true, Item: proto.RPCItem{UserID: it.UserID, ID: it.ID, List: it.List, Meta: it.Meta}}
	if call.WithVector {
		r.Item.Vector = proto.PackVector(it.Vector)
	}
	if call.WithAttachment && !c.dir { // an entry has none
		if r.Item.Attachment, err = n.store.Attachment(c.meta.Name, it.ID); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// deleteLocal deletes user ids from this node's copies (with Keep: the
// copies other than the kept internal ids).
func (n *Node) deleteLocal(ctx context.Context, call *proto.RPCDelete) (int, error) {
	c, err := n.collection(call.Collection)
	if err != nil {
		return 0, err
	}
	if call.Keep != nil && len(call.Keep) != len(call.UserIDs) {
		return 0, fmt.Errorf("%w: %d kept ids for %d user ids", ErrInvalid, len(call.Keep), len(call.UserIDs))
	}
	if call.Applied != nil && (call.Keep == nil || len(call.Applied) != len(call.UserIDs)) {
		return 0, fmt.Errorf("%w: %d applied flags for %d user ids (kept ids: %t)", ErrInvalid, len(call.Applied), len(call.UserIDs), call.Keep != nil)
	}
	// A delete goes from its gateway to every holder of the shards it
	// may touch, not down a primary's stream: one routed by a table from
	// before a node joined one of them never reaches that node, whose
	// copy (being caught up) would keep the deleted or evicted item for
	// good if the primary deleted it after the copy's snapshot
	// (TestClusterChaos saw such a node read an id as its version before
	// the last acknowledged upsert). Refused as stale, the gateway routes
	// it again and sends it there too.
	if rt := n.localRoute(call.Collection); call.Version != 0 && rt != nil {
		if added := holdersAdded(rt.c); call.Version < added {
			return 0, fmt.Errorf("%w: a delete of %q routed by table version %d, before a node joined a shard at version %d", ErrStaleEpoch, call.Collection, call.Version, added)
		}
	}
	if call.Keep == nil {
		return c.remove(ctx, call.UserIDs)
	}
	return c.evict(ctx, call.UserIDs, call.Keep, call.Applied)
}

// holdersAdded is the latest table version at which a node joined a
// shard of c (meta.Shard.Added).
func holdersAdded(c *meta.Collection) uint64 {
	var v uint64
	for s := range eachShard(c) {
		v = max(v, s.Added)
	}
	return v
}

// trainLocal starts training here (this node holds the buffer).
func (n *Node) trainLocal(ctx context.Context, name string, nlist int) (uint64, error) {
	c, err := n.collection(name)
	if err != nil {
		return 0, err
	}
	return c.startTraining(ctx, nlist)
}

// --- the collection's side ---

// follow brings a collection that another node trained in line with the
// table: it loads the committed centroids, so this node can assign lists
// and scan the lists it holds. It returns the index (nil while the table
// has no centroids for it).
func (c *collection) follow() *ivf.Index {
	if ix := c.ix.Load(); ix != nil {
		return ix
	}
	m, ok := c.n.meta.Collection(c.meta.Name)
	if !ok || m.State == Untrained || m.TrainedNList == 0 && m.State != Ready {
		return nil
	}
	c.followMu.Lock()
	defer c.followMu.Unlock()
	if ix := c.ix.Load(); ix != nil {
		return ix
	}
	if c.State() == Training {
		return nil // this node trains: adopt installs the index
	}
	if c.listsAhead.Load() {
		return c.followStored(m)
	}
	blob, err := c.n.meta.Centroids(c.meta.Name)
	if err != nil {
		return nil
	}
	ix, err := ivf.Load(bytes.NewReader(blob), c.indexOptions(0))
	if err != nil {
		c.n.log.Error("committed centroids unreadable", "collection", c.meta.Name, "err", err)
		return nil
	}
	c.mu.Lock()
	c.setIndex(ix)
	c.epoch.Store(m.Epoch)
	c.state.Store(uint32(Ready))
	c.mu.Unlock()
	c.n.log.Info("adopted centroids trained elsewhere", "collection", c.meta.Name, "nlist", ix.NList(), "epoch", m.Epoch)
	return ix
}

// followStored is follow for a node whose store holds items in lists
// that its table did not know of when the collection opened (a restart
// that replays the table from before training): the index saved here
// (and the write log after it), else the centroids plus every stored
// item of a list. Without it those items stayed in the store but not in
// the lists, so a catch-up did not see them, nor drop the stale ones.
// followMu is held.
func (c *collection) followStored(m CollectionMeta) *ivf.Index {
	ix, rebuild, err := c.savedOrCentroids()
	if err != nil {
		c.n.log.Error("stored lists not loaded", "collection", c.meta.Name, "err", err)
		return nil
	}
	if rebuild {
		if _, _, err := c.scanItems(ix); err != nil {
			c.n.log.Error("stored items not loaded", "collection", c.meta.Name, "err", err)
			return nil
		}
	}
	c.mu.Lock()
	c.setIndex(ix)
	c.count.Add(int64(ix.Len()))
	c.epoch.Store(m.Epoch)
	c.state.Store(uint32(Ready))
	c.listsAhead.Store(false)
	c.mu.Unlock()
	c.n.log.Info("loaded the lists stored here with centroids trained since the table replayed", "collection", c.meta.Name,
		"nlist", ix.NList(), "items", ix.Len(), "epoch", m.Epoch)
	return ix
}

// syncTable follows a table change: the epoch, centroids trained
// elsewhere, and the end of the buffer.
func (c *collection) syncTable(m CollectionMeta) {
	if c.State() == Training {
		return
	}
	if m.State == Training && c.n.trainsHere(c.meta.Name) {
		c.resumeTrainingLater()
	}
	if m.State == Ready {
		c.follow()
	}
	if m.Epoch > c.epoch.Load() {
		c.epoch.Store(m.Epoch)
	}
	if m.State == Ready && !m.Buffered && c.buf.Load() != nil && c.ix.Load() != nil {
		c.dropBufferLater()
	}
	if rt, ok := c.n.distRoute(c.meta.Name); ok {
		c.startCopies(rt)
		c.purgeUnheld(rt)
		c.forgetCopies()
		if m.State == Ready && m.Buffered && c.ix.Load() != nil && c.buf.Load() != nil && c.n.trainsHere(c.meta.Name) {
			c.resumeMoveLater(m.Epoch)
		}
	}
}

// dropBufferLater deletes the buffered copies this node still holds once
// the table has retired the buffer: every item moved to its list shard,
// on this node or another.
func (c *collection) dropBufferLater() {
	c.background(&c.dropping, func() {
		var users []string
		err := c.n.store.Scan(c.meta.Name, func(it Item) error {
			if it.List == BufferList {
				users = append(users, it.UserID)
			}
			return nil
		})
		if err != nil {
			c.n.log.Warn("buffer copies not dropped", "collection", c.meta.Name, "err", err)
			return
		}
		for i := 0; i < len(users); i += 4096 {
			if _, err := c.evictBuffered(users[i:min(i+4096, len(users))]); err != nil {
				c.n.log.Warn("buffer copies not dropped", "collection", c.meta.Name, "err", err)
				return
			}
		}
		c.mu.Lock()
		c.buf.Store(nil)
		c.mu.Unlock()
		c.n.log.Info("dropped buffered copies", "collection", c.meta.Name, "items", len(users))
	})
}

// searchProbes scans the given lists and, with buffer, the flat buffer.
func (c *collection) searchProbes(q []float32, k, refine int, probes []ivf.Probe, buffer bool) ([]ivf.Hit, error) {
	if k < 1 || k > ivf.MaxK {
		return nil, fmt.Errorf("%w: k %d outside 1..%d", ErrInvalid, k, ivf.MaxK)
	}
	var parts [][]ivf.Hit
	if buf := c.buf.Load(); buffer && buf != nil {
		qq := q
		if c.meta.Metric == ivf.Cosine {
			qq = append([]float32(nil), q...)
			ivf.Normalize(qq)
		}
		parts = append(parts, buf.search(qq, k))
	}
	if len(probes) > 0 {
		ix := c.follow()
		if ix == nil {
			return nil, fmt.Errorf("%w: collection %q has no centroids here yet", ErrStaleEpoch, c.meta.Name)
		}
		o := ivf.SearchOptions{K: k}
		if refine > 1 {
			o.Refine, o.Source = refine, storeSource{c.n.store, c.meta.Name}
		}
		h, err := ix.SearchProbes(q, probes, o)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
		}
		parts = append(parts, h)
	}
	return ivf.MergeTopK(k, parts...), nil
}

// evict deletes the copies of user ids whose internal id is not the kept
// one. It reports how many it removed.
//
// applied[i] (when set) says this node applied users[i]'s new copy in the
// write the eviction follows: a node holds one copy per user id, so there
// is no old one to look up, unless a copy into this node is in progress
// (it may bring one in; then every id is checked as before).
func (c *collection) evict(ctx context.Context, users []string, keep []uint64, applied []bool) (int, error) {
	versioned := false
	if rt := c.n.localRoute(c.meta.Name); rt != nil {
		versioned = rt.versioned()
	}
	stale := func(i int) (bool, error) {
		id, _, err := c.n.locate(c.meta.Name, users[i])
		if errors.Is(err, ErrNoItem) {
			return false, nil
		}
		if versioned {
			// Only an older copy goes: a concurrent upsert's may be newer.
			return err == nil && id < keep[i], err
		}
		return err == nil && id != keep[i], err
	}
	// maybeLocked picks the ids that may have a stale copy here: not
	// applied by this node, and passed by the user id filter, which
	// drops the ids never seen here (new ids, the common case) without
	// a read. mu is held.
	maybeLocked := func() []int {
		may := c.mayHoldLocked(users)
		if len(c.incoming) > 0 {
			applied = nil
		}
		var out []int
		for i := range users {
			if applied != nil && applied[i] {
				continue
			}
			if may == nil || may[i] {
				out = append(out, i)
			}
		}
		return out
	}
	// Directory reads for those, without the lock, so writes here need
	// not wait for them.
	c.mu.Lock()
	maybe := maybeLocked()
	commits := c.commits
	c.mu.Unlock()
	var cand []int
	for _, i := range maybe {
		s, err := stale(i)
		if err != nil {
			return 0, err
		}
		if s {
			cand = append(cand, i)
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if versioned {
		c.noteEvicted(users, keep)
	}
	if versioned && c.commits != commits {
		// A write landed since the lookups: it may have brought an older
		// copy of an id found clean (an older write, applied before the
		// mark above could stop it), which would stay here while the
		// shard's other replica, whose eviction ran wholly before or
		// after that write, skipped or removed it. So every id is looked
		// at again, but those whose kept copy this node applied: it holds
		// that version or a newer one, which an older write cannot
		// replace. (A failure of TestClusterConcurrentUpserts had this
		// signature; inferred, not reproduced: docs/node.md. Without
		// versions any other id goes, a newer write's too, so the ids
		// found clean are left as before.)
		cand = maybeLocked()
	}
	// A copy coming in must not bring back the old copies, nor skip the
	// kept one (copy.go, "Two copies of a user id").
	c.noteKept(users, keep)
	var del []string
	for _, i := range cand {
		s, err := stale(i)
		if err != nil {
			return 0, err
		}
		if s {
			del = append(del, users[i])
		}
	}
	n, err := c.removeUsersLocked(del, false)
	if err != nil {
		return n, err
	}
	for i, u := range users {
		if _, ok := c.held[u]; ok {
			if err := c.applyHeldLocked(u, keep[i]); err != nil {
				return n, err
			}
		}
	}
	return n, nil
}

// Versions. On a collection with an id directory an internal id is also
// the version of a user id's copy: each upsert writes its copy under the
// internal id of the directory entry write that named its list (DirAdd,
// distInsert), and a partition's primary hands those out in the order
// of the entry's writes, a new primary from a fresh range
// (writeAsPrimary). So of two copies of a user id the higher id is the
// newer, and:
//   - an eviction removes only copies older than the one it keeps: two
//     upserts of one id at once, each finding the other's list named in
//     the entry, no longer evict each other's copy (before, each did, on
//     the nodes its eviction reached before or after the other's write:
//     replicas of a shard disagreed, TestClusterConcurrentUpserts);
//   - a write (on the primary and on every backup) skips a copy when
//     this node holds a newer one of its user id, in any shard, or an
//     eviction that kept a newer one has passed here within the settle
//     time (evicted): an eviction that arrives before the older write
//     it makes obsolete still wins;
//   - a delete by id first rewrites the id's entry (a prune of no list),
//     and is an eviction keeping that write's id (dirDelete): an upsert
//     whose entry write came later survives it on every replica;
//   - a joining replica applies a copied item unless it is superseded
//     the same way (applyCopy), instead of holding back one of two
//     copies until an eviction decides (copy.go, "Two copies of a user
//     id", which still serves collections without a directory).
// docs/node.md, "Concurrent upserts of one user id".

// versioned says whether the collection's internal ids version its
// copies: it has an id directory.
func (rt *route) versioned() bool { return rt.c.IDPartitions > 0 }

// superseded says whether this node holds a newer copy of user than the
// one of internal id id, or what an eviction kept says there is one;
// mu is held. Without versions, any other id is newer: only the buffer's
// move presets ids there, and it must never overwrite a write.
func (c *collection) superseded(rt *route, user string, id uint64) bool {
	cur, _, err := c.n.locate(c.meta.Name, user)
	if !rt.versioned() {
		return err == nil && cur != id
	}
	return c.evictedAbove(user, id) || err == nil && cur > id
}

// evictedAbove says whether an eviction here kept a copy of user newer
// than id within the settle time (noteEvicted); mu is held.
func (c *collection) evictedAbove(user string, id uint64) bool {
	e, ok := c.evicted[user]
	return ok && e.id > id && time.Since(e.at) < c.n.dirSettle()
}

// dropSuperseded returns keep less the items superseded here (ids[i],
// when not 0, being items[i]'s id: superseded); mu is held. The store's
// filter of user ids spares the lookup of an id never held here (a new
// id, the bulk of an ingest): every write of a versioned collection
// carries its id, and a lookup per item on every replica cost the
// ingest a store read per vector.
func (c *collection) dropSuperseded(rt *route, items []WriteItem, ids []uint64, keep []int) []int {
	var check []int
	var users []string
	for _, i := range keep {
		if ids[i] != 0 {
			check = append(check, i)
			users = append(users, items[i].UserID)
		}
	}
	if len(check) == 0 {
		return keep
	}
	may := c.mayHoldLocked(users)
	drop := map[int]bool{}
	for j, i := range check {
		if may != nil && !may[j] {
			// Not held here: only what an eviction kept can supersede it.
			if rt.versioned() && c.evictedAbove(users[j], ids[i]) {
				drop[i] = true
			}
			continue
		}
		if c.superseded(rt, users[j], ids[i]) {
			drop[i] = true
		}
	}
	if len(drop) == 0 {
		return keep
	}
	out := make([]int, 0, len(keep)-len(drop))
	for _, i := range keep {
		if !drop[i] {
			out = append(out, i)
		}
	}
	return out
}

// maxEvictedMarks bounds what noteEvicted remembers per collection and
// node: about 100 MB at most. A re-import that moves every id to another
// list evicts each one once; at the cluster's ingest rate here (about
// 40,000 vectors a second) a node would otherwise keep a mark for each of
// the last settle time's, over a million. A mark matters only while an
// older write of its user id may still arrive (two writes of one id at
// once), so past the bound new marks are not kept, and such a race could
// again leave two copies until the id's next write.
const maxEvictedMarks = 1 << 20

// noteEvicted records the versions an eviction kept (evicted), and
// forgets those older than the settle time, at most once a second;
// mu is held.
func (c *collection) noteEvicted(users []string, keep []uint64) {
	now := time.Now()
	if c.evicted == nil {
		c.evicted = map[string]keptID{}
	}
	if now.Sub(c.evictedSwept) > time.Second {
		c.evictedSwept = now
		settle := c.n.dirSettle()
		for u, e := range c.evicted {
			if now.Sub(e.at) > settle {
				delete(c.evicted, u)
			}
		}
	}
	for i, u := range users {
		e, ok := c.evicted[u]
		if !ok && len(c.evicted) >= maxEvictedMarks {
			if now.Sub(c.evictedFull) > time.Minute {
				c.evictedFull = now
				c.n.log.Warn("versions: too many recent evictions to remember them all; an older write racing one may leave two copies until the id's next write",
					"collection", c.meta.Name, "marks", len(c.evicted))
			}
			continue
		}
		if !ok || keep[i] >= e.id {
			c.evicted[u] = keptID{id: keep[i], at: now}
		}
	}
}

// evictBuffered deletes the copies of user ids that are still buffered.
func (c *collection) evictBuffered(users []string) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var del []string
	for _, u := range users {
		_, list, err := c.n.locate(c.meta.Name, u)
		if errors.Is(err, ErrNoItem) {
			continue
		}
		if err != nil {
			return 0, err
		}
		if list == BufferList {
			del = append(del, u)
		}
	}
	// Not a write of the user ids (no touch): a copy coming in may bring
	// their moved copies, which are as new as the buffered ones (the move
	// keeps the internal id), and must not be skipped as older. Touching
	// them made a node that restarted during the move, and dropped its
	// buffer while catching up a list shard, skip the moved items of that
	// shard and be made in sync without them (TestClusterChaosTraining).
	n, err := c.removeUsersLocked(del, false)
	if err != nil {
		return n, err
	}
	// An item held back against a buffered copy is the one left.
	for _, u := range del {
		if err := c.applyHeldLocked(u, 0); err != nil {
			return n, err
		}
	}
	return n, nil
}

// removeLocked deletes user ids; mu is held.
func (c *collection) removeLocked(users []string) (int, error) {
	return c.removeUsersLocked(users, true)
}

// removeUsersLocked deletes user ids, recording them as touched for the
// copies coming in when touch is set (a delete; an eviction notes what
// it keeps instead); mu is held.
func (c *collection) removeUsersLocked(users []string, touch bool) (int, error) {
	if touch {
		c.touch(users...)
	}
	if len(users) == 0 {
		return 0, nil
	}
	if err := c.ctx.Err(); err != nil {
		return 0, ErrNoCollection
	}
	removed, err := c.storeApply(&Batch{Collection: c.meta.Name, Dim: c.meta.Dim, Deletes: users})
	if err != nil {
		return 0, err
	}
	for _, o := range removed {
		c.dropMem(o.ID, o.List)
	}
	c.count.Add(-int64(len(removed)))
	c.maybeSave(c.ix.Load(), len(removed))
	return len(removed), nil
}

// adoptDistributed is adopt for a collection of a cluster: this node
// (the buffer's primary, which trained) switches to ix and moves the
// buffer (moveBuffer).
func (c *collection) adoptDistributed(ix *ivf.Index, epoch uint64) error {
	c.mu.Lock()
	c.setIndex(ix)
	c.epoch.Store(epoch)
	c.mu.Unlock()
	if !c.moving.CompareAndSwap(false, true) {
		return nil
	}
	defer c.moving.Store(false)
	return c.moveBuffer(epoch, true)
}

// resumeTrainingLater trains the collection here when the table says it
// is training and this node, the buffer's primary, runs no training: the
// trainer died before it committed (the buffer's primary failed over to
// this node), or its abort was not committed. Nothing else would: a
// train request is refused while the table says "training", and the old
// trainer, restarted, is no longer the buffer's primary. It runs on a
// goroutine of its own, as the table's watcher must not wait for the
// collection's lock (a training being begun here holds it across its
// Raft proposal).
func (c *collection) resumeTrainingLater() {
	c.background(&c.retraining, func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.ctx.Err() != nil || c.State() != Untrained {
			return // closing, or a training runs here (or has ended)
		}
		m, ok := c.n.meta.Collection(c.meta.Name)
		if !ok || m.State != Training || !sameIncarnation(m, c) || !c.n.trainsHere(c.meta.Name) {
			return
		}
		c.n.log.Info("the table says training but no node trains: training here", "collection", c.meta.Name, "epoch", m.Epoch+1)
		c.state.Store(uint32(Training))
		c.wg.Add(1)
		go c.train(m.Epoch, m.NList)
	})
}

// resumeMoveLater moves the buffer when this node leads it but did not
// train: the trainer died during the move, or this node restarted during
// its own. The move is idempotent (items keep their ids).
func (c *collection) resumeMoveLater(epoch uint64) {
	c.background(&c.moving, func() {
		c.n.log.Info("resuming the move of the buffer to the list shards", "collection", c.meta.Name, "epoch", epoch)
		if err := c.moveBuffer(epoch, false); err != nil && c.ctx.Err() == nil {
			c.n.log.Error("move after training", "collection", c.meta.Name, "err", err)
		}
	})
}

// moveBuffer sends every buffered item, with its internal id, through
// the gateway's write path to the primary of its list's shard (this node
// or another), then retires the buffer. A chunk that fails is tried
// again until it goes through or the collection closes: the buffer must
// not stay for good. The buffered copies stay searchable until the table
// retires the buffer; then every node drops those it still holds
// (dropBufferLater).
func (c *collection) moveBuffer(epoch uint64, trainer bool) error {
	buf := c.buf.Load()
	var ids []uint64
	if buf != nil {
		ids = buf.liveIDs()
	}
	chunk := c.n.opts.MoveChunk
	moved := 0
	for i0 := 0; i0 < len(ids); i0 += chunk {
		if err := c.ctx.Err(); err != nil {
			return err
		}
		part := ids[i0:min(i0+chunk, len(ids))]
		items := make([]WriteItem, 0, len(part))
		preset := make([]uint64, 0, len(part))
		d := c.meta.Dim
		for _, id := range part {
			buf.mu.Lock()
			p, ok := buf.pos[id]
			var v []float32
			if ok {
				v = append([]float32(nil), buf.view.Load().vecs[p*d:(p+1)*d]...)
			}
			buf.mu.Unlock()
			if !ok {
				continue // deleted or upserted since
			}
			it, err := c.n.store.Item(c.meta.Name, id)
			if err != nil {
				continue
			}
			att, err := c.n.store.Attachment(c.meta.Name, id)
			if err != nil {
				continue
			}
			items = append(items, WriteItem{UserID: it.UserID, Vector: v, Meta: it.Meta, Attachment: att})
			preset = append(preset, id)
		}
		if len(items) == 0 {
			continue
		}
		for try := 0; ; try++ {
			_, err := c.n.distInsert(c.ctx, c.meta.Name, items, preset, false)
			if err == nil {
				break
			}
			if c.ctx.Err() != nil {
				return c.ctx.Err()
			}
			if !retryable(err) && !errors.Is(err, ErrCutOff) {
				return fmt.Errorf("move %d buffered items: %w", len(items), err)
			}
			c.n.log.Warn("move of buffered items: trying again", "collection", c.meta.Name, "items", len(items), "err", err)
			select {
			case <-c.ctx.Done():
				return c.ctx.Err()
			case <-time.After(time.Second):
			}
		}
		moved += len(items)
	}
	if trainer {
		c.mu.Lock()
		c.state.Store(uint32(Ready))
		err := c.saveIndex(c.ix.Load())
		c.mu.Unlock()
		if err != nil {
			return err
		}
	}
	c.n.log.Info("moved the buffer to the list shards", "collection", c.meta.Name, "items", moved)
	for {
		err := c.retireBuffer(epoch)
		if err == nil || c.ctx.Err() != nil {
			return err
		}
		c.n.log.Warn("buffer not retired: trying again", "collection", c.meta.Name, "err", err)
		select {
		case <-c.ctx.Done():
			return c.ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

// trainsHere reports whether this node runs a collection's training: the
// buffer's primary in a cluster, the node itself otherwise.
func (n *Node) trainsHere(name string) bool {
	rt, ok := n.distRoute(name)
	if !ok {
		return true
	}
	return len(rt.c.Buffer) > 0 && rt.c.Buffer[0].Primary == rt.self
}

// loadDistributed opens a trained collection of a cluster: the lists
// this node holds from the persisted index (or rebuilt from the items
// and the committed centroids), and the buffered copies while the table
// still has a buffer. Unlike one node, it finishes no move: the trainer
// owns the move, and copies left in the buffer stay searchable there.
func (c *collection) loadDistributed(m CollectionMeta) error {
	ix, rebuild, err := c.savedOrCentroids()
	if err != nil {
		return err
	}
	if !rebuild && !m.Buffered {
		// The saved index holds the lists; no buffer to load: no scan,
		// as on one node. (Buffered copies a crash left behind are not
		// served: no buffer shard names them.)
		c.setIndex(ix)
		c.count.Store(int64(ix.Len()))
		c.state.Store(uint32(Ready))
		return nil
	}
	var added *ivf.Index // rebuilt: the scan adds the lists' items
	if rebuild {
		added = ix
	}
	count, buffered, err := c.scanItems(added)
	if err != nil {
		return err
	}
	buf := newFlatBuffer(m.Dim, m.Metric)
	bids := make([]uint64, len(buffered))
	bvecs := make([]float32, 0, len(buffered)*m.Dim)
	for i, it := range buffered {
		bids[i], bvecs = it.ID, append(bvecs, it.Vector...)
	}
	c.setIndex(ix)
	c.count.Store(count)
	c.state.Store(uint32(Ready))
	if len(bids) > 0 {
		buf.append(bids, bvecs)
		c.buf.Store(buf)
		if !m.Buffered {
			c.dropBufferLater()
		}
	}
	return nil
}

// locator is a Storage that finds a user id's item without reading it
// (PebbleStorage: the directory entry only).
type locator interface {
	Locate(coll, userID string) (id uint64, list int32, err error)
}

// locate returns the internal id and list of a user id's live item, or
// an error wrapping ErrNoItem.
func (n *Node) locate(coll, userID string) (uint64, int32, error) {
	if l, ok := n.store.(locator); ok {
		return l.Locate(coll, userID)
	}
	it, err := n.store.Get(coll, userID)
	return it.ID, it.List, err
}
