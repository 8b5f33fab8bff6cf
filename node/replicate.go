package node

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"lookalike/coordinator/meta"
	"lookalike/proto"
)

// Replication (decision 3; docs/node.md, "Replication"). The primary of a
// shard orders its writes under the collection lock and sends each backup
// of the items' shards the items as it stored them, numbered in a stream
// of its own (one per primary process, collection and backup). A backup
// applies a stream's calls strictly in order, so every replica applies a
// shard's writes in the primary's order. The primary answers the gateway
// once its own write is durable and every backup has applied and synced
// its part; a backup that fails to is first taken out of the shard's
// replica set through Raft (SetReplicas), and a write whose backup cannot
// be removed (no quorum) fails with 503.

// replicaTimeout bounds one replicate call: a backup that has not applied
// a write by then is taken out of the shard.
const replicaTimeout = 5 * time.Second

// outStream numbers a primary's calls to one backup.
type outStream struct {
	id  uint64
	seq uint64
}

// inStream orders a backup's application of one primary's calls.
type inStream struct {
	mu      sync.Mutex
	id      uint64
	next    uint64
	changed chan struct{}
}

var errDuplicate = errors.New("node: replicated call already applied")

func randomStreamID() uint64 {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return binary.LittleEndian.Uint64(b[:]) | 1
}

// streamGrace is how long a call of a stream this backup does not know
// waits for the stream's first call (calls travel concurrently, so call
// 2 may come first) before it is refused.
const streamGrace = time.Second

// await returns when call seq of stream id is next. A new stream starts
// at seq 1 and replaces the old one. A later call of a stream whose
// first has not come within streamGrace is refused: the stream began
// before this process did (a restart loses the streams, and the calls
// the previous process applied never come again), or its first call
// failed. The primary then takes this node out of the shard and starts
// a new stream, instead of waiting for its call's deadline.
func (s *inStream) await(ctx context.Context, id, seq uint64) error {
	var grace <-chan time.Time
	for {
		s.mu.Lock()
		if s.id != id && seq == 1 {
			s.id, s.next = id, 1
		}
		if s.id == id && s.next == seq {
			s.mu.Unlock()
			return nil
		}
		if s.id == id && seq < s.next {
			s.mu.Unlock()
			return errDuplicate
		}
		known := s.id == id
		ch := s.changed
		s.mu.Unlock()
		if !known && grace == nil {
			t := time.NewTimer(streamGrace)
			defer t.Stop()
			grace = t.C
		}
		select {
		case <-ch:
		case <-grace:
			if s.streamID() != id {
				return fmt.Errorf("%w: replicated call %d of stream %x, whose first call never came here (restarted since?)", ErrUnavailable, seq, id)
			}
		case <-ctx.Done():
			return fmt.Errorf("%w: replicated call %d of stream %x waits for %d: %v", ErrUnavailable, seq, id, s.nextSeq(), ctx.Err())
		}
	}
}

func (s *inStream) streamID() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.id
}

func (s *inStream) nextSeq() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.next
}

// advance lets the next call of the stream in.
func (s *inStream) advance() {
	s.mu.Lock()
	s.next++
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()
}

func (c *collection) inStream(from string) *inStream {
	c.streamMu.Lock()
	defer c.streamMu.Unlock()
	if c.in == nil {
		c.in = map[string]*inStream{}
	}
	s := c.in[from]
	if s == nil {
		s = &inStream{changed: make(chan struct{})}
		c.in[from] = s
	}
	return s
}

// replicaCall is one backup's part of a write.
type replicaCall struct {
	node   string
	shards []meta.Shard // the shards of its items it is a replica of (as routed)
	bufs   []bool       // shards[i] is a buffer shard
	// joins are the shards of its items it is joining (being copied to):
	// a failure there drops it from the copy, without delaying the write.
	joins []copyKey
	call  *proto.RPCReplicate
	// applied: the node acknowledged the call (set by sendReplica).
	applied bool
	// detached: a call only to a joiner, with no promotion of it under
	// way: the write does not wait for it (counted in joinCalls).
	detached bool
}

// writeAsPrimary stores items (lists assigned by the gateway; ids
// allocated here where preset[i] is 0) and replicates them. Repeated user
// ids: the last wins. It returns each item's internal id and the nodes
// that applied the whole write: this one and the backups that
// acknowledged a part holding every item.
//
// merge, when set, rewrites the kept items under the collection lock
// before they are applied (an id directory's entries, directory.go). A
// write whose ctx has ended by the time it holds the lock is refused,
// not applied.
func (c *collection) writeAsPrimary(ctx context.Context, rt *route, items []WriteItem, lists []int32, preset []uint64,
	merge func(items []WriteItem, keep []int) error) ([]uint64, []string, error) {
	last := make(map[string]int, len(items))
	for i, it := range items {
		last[it.UserID] = i
	}
	var keep []int
	need := 0
	for i, it := range items {
		if last[it.UserID] == i {
			keep = append(keep, i)
			if preset[i] == 0 {
				need++
			}
		}
	}
	ids := slices.Clone(preset)
	assign := func(fresh []uint64) {
		for _, i := range keep {
			if ids[i] == 0 {
				ids[i], fresh = fresh[0], fresh[1:]
			}
		}
		for i, it := range items {
			ids[i] = ids[last[it.UserID]]
		}
	}
	if merge == nil {
		fresh, err := c.n.ids.take(ctx, need)
		if err != nil {
			return nil, nil, err
		}
		assign(fresh)
	}

	c.mu.Lock()
	if merge != nil {
		// An id directory's entry: its internal id is the version of the
		// user id's copy the gateway writes next (distInsert), so it is
		// taken here, under the lock that orders the entry's writes: a
		// later DirAdd of a user id gets a higher id. A primary new to
		// the partition (it applied entries from another node, or has
		// just opened it: dirMergeAt's dirSince) starts a fresh range,
		// above every id its predecessors handed out.
		if c.dirForeign || c.dirSince == 0 {
			c.n.ids.freshBlock()
		}
		fresh, err := c.n.ids.take(ctx, need)
		if err != nil {
			c.mu.Unlock()
			return nil, nil, err
		}
		assign(fresh)
	}
	// The table as of now, under the lock that copies change their
	// joiners under: one that has just been promoted is in the replica
	// set here (the caller's route may predate it), so the write waits
	// for it.
	if cur := c.n.localRoute(c.meta.Name); cur != nil && cur.version > rt.version {
		if err := rt.samePrimary(cur, items, lists); err != nil {
			c.mu.Unlock()
			return nil, nil, err
		}
		rt = cur
	}
	if preset != nil {
		// A preset id is the buffer's move, or on a collection with an id
		// directory the version its entry gave the write: skip an item
		// whose user id got a newer copy meanwhile.
		keep = c.dropSuperseded(rt, items, preset, keep)
	}
	if err := ctx.Err(); err != nil {
		c.mu.Unlock()
		return nil, nil, fmt.Errorf("%w: the gateway's deadline passed before the write: %v", ErrUnavailable, err)
	}
	if merge != nil {
		if err := merge(items, keep); err != nil {
			c.mu.Unlock()
			return nil, nil, err
		}
	}
	wait, err := c.applyLocked(items, lists, ids, keep, true)
	if err != nil {
		c.mu.Unlock()
		return nil, nil, err
	}
	// Number the backups' parts in commit order.
	calls := c.replicaCalls(rt, items, lists, ids, keep)
	c.detachJoinCalls(calls)
	c.mu.Unlock()

	done := make([]chan error, len(calls))
	for i, rc := range calls {
		done[i] = make(chan error, 1)
		go func() {
			err := c.sendReplica(ctx, rt, rc)
			if rc.detached {
				c.mu.Lock()
				for _, k := range rc.joins {
					if c.joinCalls[k]--; c.joinCalls[k] <= 0 {
						delete(c.joinCalls, k)
					}
				}
				c.joinDone().Broadcast()
				c.mu.Unlock()
			}
			done[i] <- err
		}()
	}
	werr := wait()
	var rerr error
	applied := []string{rt.self}
	for i, rc := range calls {
		if rc.detached {
			continue // a joiner's failure ends its copy, not this write
		}
		if err := <-done[i]; err != nil && rerr == nil {
			rerr = err
		}
		// Named only when it applied every item: a backup of some of the
		// items' shards holds an old copy of the others' user ids as
		// before, and the gateway's eviction must not skip it there.
		if rc.applied && len(rc.call.Items) == len(keep) {
			applied = append(applied, rc.node)
		}
	}
	if werr != nil {
		return nil, nil, werr
	}
	if rerr != nil {
		return nil, nil, rerr
	}
	return ids, applied, nil
}

// detachJoinCalls marks the calls that go only to joiners none of whose
// copies is being promoted: the write is acknowledged without waiting
// for them, so a joiner busy applying its copy does not slow the writes
// down (a joiner holds no in-sync replica: a read never reaches it).
// The promotion waits until every detached call to its joiner has ended
// (joinCalls), and a write made while it runs waits for its call to the
// joiner: when the joiner becomes in sync, it has applied every
// acknowledged write. mu is held.
func (c *collection) detachJoinCalls(calls []*replicaCall) {
	for _, rc := range calls {
		if len(rc.shards) > 0 || len(rc.joins) == 0 || slices.ContainsFunc(rc.joins, func(k copyKey) bool { return c.promoting[k] }) {
			continue
		}
		rc.detached = true
		if c.joinCalls == nil {
			c.joinCalls = map[copyKey]int{}
		}
		for _, k := range rc.joins {
			c.joinCalls[k]++
		}
	}
}

// joinDone is signalled when a detached call ends. mu is held.
func (c *collection) joinDone() *sync.Cond {
	if c.joinCond == nil {
		c.joinCond = sync.NewCond(&c.mu)
	}
	return c.joinCond
}

// samePrimary checks that cur, a newer read of the placement, routes
// items as rt did to this node as their primary.
func (rt *route) samePrimary(cur *route, items []WriteItem, lists []int32) error {
	if cur.c.Epoch != rt.c.Epoch {
		return fmt.Errorf("%w: collection %q moved to epoch %d during the write", ErrStaleEpoch, rt.c.Name, cur.c.Epoch)
	}
	return cur.leads(items, lists)
}

// leads checks that this node is the primary of every item's shard.
func (rt *route) leads(items []WriteItem, lists []int32) error {
	for i := range items {
		s, ok := rt.shardOf(lists[i], items[i].UserID)
		if !ok || s.Primary != rt.self {
			return fmt.Errorf("%w: list %d of %q", ErrNotPrimary, lists[i], rt.c.Name)
		}
	}
	return nil
}

// replicaCalls splits the kept items by backup and numbers each part in
// its stream. mu is held.
func (c *collection) replicaCalls(rt *route, items []WriteItem, lists []int32, ids []uint64, keep []int) []*replicaCall {
	byNode := map[string]*replicaCall{}
	var order []string
	// The table as of now: a joiner registered by a copy is named in it,
	// and the backup waits until its own table is as new.
	version := max(rt.version, rt.p.table().Version())
	// Each backup's part sized once (a part of hundreds of items grew by
	// doubling); a joiner's part, rare, still grows.
	size := map[string]int{}
	for _, i := range keep {
		s, _ := rt.shardOf(lists[i], items[i].UserID)
		for _, r := range s.Replicas {
			if r != rt.self {
				size[r]++
			}
		}
	}
	target := func(r string) *replicaCall {
		rc := byNode[r]
		if rc == nil {
			rc = &replicaCall{node: r, call: &proto.RPCReplicate{Collection: c.meta.Name, Version: version, From: rt.self,
				Items: make([]proto.RPCItem, 0, size[r])}}
			byNode[r] = rc
			order = append(order, r)
		}
		return rc
	}
	for _, i := range keep {
		s, _ := rt.shardOf(lists[i], items[i].UserID)
		isBuf := lists[i] == BufferList
		it := items[i]
		ri := proto.RPCItem{UserID: it.UserID, ID: ids[i], List: lists[i], Vector: proto.VectorView(it.Vector), Meta: it.Meta, Attachment: it.Attachment}
		for k := range c.joining {
			if k.shard != s.ID || k.buffer != isBuf || slices.Contains(s.Replicas, k.node) {
				continue
			}
			rc := target(k.node)
			rc.call.Items = append(rc.call.Items, ri)
			if !slices.Contains(rc.joins, k) {
				rc.joins = append(rc.joins, k)
			}
		}
		for _, r := range s.Replicas {
			if r == rt.self {
				continue
			}
			rc := target(r)
			rc.call.Items = append(rc.call.Items, ri)
			seen := false
			for k, x := range rc.shards {
				seen = seen || x.ID == s.ID && rc.bufs[k] == isBuf
			}
			if !seen {
				rc.shards = append(rc.shards, s)
				rc.bufs = append(rc.bufs, isBuf)
			}
		}
	}
	if c.out == nil {
		c.out = map[string]*outStream{}
	}
	calls := make([]*replicaCall, 0, len(order))
	for _, r := range order {
		st := c.out[r]
		if st == nil {
			st = &outStream{id: randomStreamID()}
			c.out[r] = st
		}
		st.seq++
		rc := byNode[r]
		rc.call.Stream, rc.call.Seq = st.id, st.seq
		calls = append(calls, rc)
	}
	return calls
}

// sendReplica sends one backup its part. When the backup fails, it is
// taken out of the shards (so the write is acknowledged without it) and
// its stream is forgotten (a later re-add starts a new one).
func (c *collection) sendReplica(ctx context.Context, rt *route, rc *replicaCall) error {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), replicaTimeout)
	err := c.n.peers.call(cctx, rc.node, proto.OpReplicate, rc.call, &struct{}{})
	cancel()
	if err == nil {
		rc.applied = true
		return nil
	}
	c.n.log.Warn("backup failed a write: removing it from the shard", "collection", c.meta.Name, "backup", rc.node, "err", err)
	c.mu.Lock()
	if st := c.out[rc.node]; st != nil && st.id == rc.call.Stream {
		delete(c.out, rc.node)
	}
	for _, k := range rc.joins {
		c.dropJoiner(k)
	}
	c.mu.Unlock()
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	for _, k := range rc.joins {
		if jerr := c.setJoining(pctx, k, false); jerr != nil {
			c.n.log.Warn("joining replica not dropped", "collection", c.meta.Name, "node", k.node, "err", jerr)
		}
		// The copy may have made it a replica meanwhile: then it missed a
		// write as an in-sync replica, and leaves the set like a backup.
		if col, ok := rt.p.table().Collection(c.meta.Name); ok {
			shards := col.Shards.Shards
			if k.buffer {
				shards = col.Buffer
			}
			if int(k.shard) < len(shards) && slices.Contains(shards[k.shard].Replicas, k.node) &&
				!slices.ContainsFunc(rc.shards, func(s meta.Shard) bool { return s.ID == k.shard }) {
				rc.shards = append(rc.shards, shards[k.shard])
				rc.bufs = append(rc.bufs, k.buffer)
			}
		}
	}
	if len(rc.shards) == 0 {
		return nil // only joining: not in sync, nothing waits for it
	}
	if c.n.leaving.Load() {
		// This node hands its shards off: the leader takes it out of
		// every shard, and the backup, in sync until this write, takes
		// over. Taking the backup out instead would leave a shard whose
		// only replica is a node about to stop (a backup refuses a
		// leaving primary's calls once a failover names it primary of
		// some of their items). The write is not acknowledged.
		return fmt.Errorf("%w: backup %s failed (%v) while this node hands its shards off", ErrUnavailable, rc.node, err)
	}
	for i, s := range rc.shards {
		if rerr := c.removeReplica(pctx, rt.p, s.ID, rc.bufs[i], rc.node); rerr != nil {
			return fmt.Errorf("%w: backup %s failed (%v) and could not be taken out of shard %d: %v", ErrUnavailable, rc.node, err, s.ID, rerr)
		}
	}
	// The backup may be cut off and still think it is in sync: it stops
	// answering when its lease ends (decision 14). Acknowledge after.
	select {
	case <-time.After(leaseDuration):
	case <-c.ctx.Done():
		return ErrClosed
	}
	return nil
}

// removeReplica takes node out of a shard's replica set through Raft
// (the primary stays, or the first other replica becomes primary). It
// succeeds when the node is out, by this call or another.
func (c *collection) removeReplica(ctx context.Context, p placer, shard uint32, buffer bool, node string) error {
	for try := 0; ; try++ {
		t := p.table()
		col, ok := t.Collection(c.meta.Name)
		if !ok {
			return fmt.Errorf("%w: %q", ErrNoCollection, c.meta.Name)
		}
		shards := col.Shards.Shards
		if buffer {
			shards = col.Buffer
		}
		if int(shard) >= len(shards) {
			return nil
		}
		s := shards[shard]
		if !slices.Contains(s.Replicas, node) {
			return nil
		}
		// Only the shard's primary drops a backup that failed its
		// writes: a deposed primary (cut off, its table behind) must not
		// drop the replica that replaced it.
		if s.Primary != c.n.opts.NodeID {
			return fmt.Errorf("%w: %s leads shard %d now", ErrNotPrimary, s.Primary, shard)
		}
		rest := slices.DeleteFunc(slices.Clone(s.Replicas), func(r string) bool { return r == node })
		if len(rest) == 0 {
			return fmt.Errorf("%w: %s is the last replica of shard %d", ErrUnavailable, node, shard)
		}
		primary := s.Primary
		if primary == node {
			primary = rest[0]
		}
		_, err := p.propose(ctx, meta.SetReplicas{Collection: c.meta.Name, Buffer: buffer, Shard: shard, Replicas: rest, Primary: primary, From: s.Replicas})
		if err == nil || try >= 5 {
			return err
		}
		if !errors.Is(err, meta.ErrStaleShard) {
			select {
			case <-ctx.Done():
				return err
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
}

// applyAsBackup applies a primary's call in its stream's order.
func (c *collection) applyAsBackup(ctx context.Context, from string, stream, seq uint64, items []WriteItem, lists []int32, ids []uint64) error {
	in := c.inStream(from)
	if err := in.await(ctx, stream, seq); err != nil {
		if errors.Is(err, errDuplicate) {
			return nil
		}
		return err
	}
	c.mu.Lock()
	// On a collection with an id directory, a copy older than one this
	// node holds of its user id (in another shard: a concurrent upsert's)
	// or than one an eviction kept is skipped, as on the primary, which
	// skipped it if it held the newer one too (dist.go, "Versions").
	keep := make([]int, len(items))
	for i := range keep {
		keep[i] = i
	}
	if rt := c.n.localRoute(c.meta.Name); rt != nil && rt.versioned() {
		keep = c.dropSuperseded(rt, items, ids, keep)
	}
	for _, it := range items {
		c.touch(it.UserID)
	}
	c.noteForeign()
	wait, err := c.applyLocked(items, lists, ids, keep, false)
	c.mu.Unlock()
	in.advance()
	if err != nil {
		return err
	}
	return wait()
}

// applyLocked commits the kept items (ids and lists set) in the store and
// in memory. primary: a buffered write may start training. mu is held.
func (c *collection) applyLocked(items []WriteItem, lists []int32, ids []uint64, keep []int, primary bool) (wait func() error, err error) {
	if err := c.ctx.Err(); err != nil {
		return nil, ErrNoCollection
	}
	if len(keep) == 0 {
		return func() error { return nil }, nil
	}
	if c.dir {
		return c.applyEntriesLocked(items, ids, keep)
	}
	d := c.meta.Dim
	ix, buf := c.ix.Load(), c.buf.Load()
	b := &Batch{Collection: c.meta.Name, Dim: d, Puts: make([]Item, len(keep))}
	nb := 0
	for _, i := range keep {
		if lists[i] == BufferList {
			nb++
		}
	}
	// Sized once: a batch of a thousand vectors grew these by doubling.
	listIDs, bufIDs := make([]uint64, 0, len(keep)-nb), make([]uint64, 0, nb)
	listVecs, bufVecs := make([]float32, 0, (len(keep)-nb)*d), make([]float32, 0, nb*d)
	listLabels := make([]int32, 0, len(keep)-nb)
	np := 0
	for _, i := range keep {
		it := items[i]
		if lists[i] == BufferList {
			if buf == nil {
				return nil, fmt.Errorf("%w: collection %q has no buffer here", ErrStaleEpoch, c.meta.Name)
			}
			bufIDs, bufVecs = append(bufIDs, ids[i]), append(bufVecs, it.Vector...)
		} else {
			if ix == nil || int(lists[i]) >= ix.NList() {
				return nil, fmt.Errorf("%w: collection %q has no list %d here", ErrStaleEpoch, c.meta.Name, lists[i])
			}
			listIDs, listVecs = append(listIDs, ids[i]), append(listVecs, it.Vector...)
			listLabels = append(listLabels, lists[i])
		}
		b.Puts[np] = Item{ID: ids[i], UserID: it.UserID, List: lists[i], Vector: it.Vector, Meta: it.Meta, Attachment: it.Attachment}
		np++
	}
	b.Puts = b.Puts[:np]
	removed, wait, err := c.applyStore(b)
	if err != nil {
		return nil, err
	}
	if len(listIDs) > 0 {
		// The lists the gateway assigned, with the same centroids: not
		// assigned again.
		if err := ix.AddToLists(listIDs, listVecs, listLabels); err != nil {
			_ = wait()
			return nil, err
		}
	}
	if len(bufIDs) > 0 {
		buf.append(bufIDs, bufVecs)
	}
	c.count.Add(int64(np - len(removed)))
	c.maybeSave(ix, np+len(removed))
	if primary && len(bufIDs) > 0 {
		c.maybeTrain()
	}
	return wait, nil
}
