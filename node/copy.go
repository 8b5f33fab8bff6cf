package node

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"lookalike/coordinator/meta"
	"lookalike/proto"
)

// Restoring the replication factor (decision 3; docs/node.md,
// "Replication"). When a shard has fewer copies than its collection asks
// for, the Raft leader names a live node as joining (SetReplicas): one
// that held the shard before (away: dead, drained at shutdown, or a
// backup that failed a call) when one is back, else another. The shard's
// primary then copies the shard to it:
//
//  1. Begin: the joiner notes the internal ids it holds of the shard
//     (copies left from before it was taken out, kept for this) and
//     starts recording the user ids that replicated writes and deletes
//     touch.
//  2. Under the collection lock the primary registers the joiner as a
//     target of its replication stream and snapshots the ids of the
//     shard's live items (of an id directory partition: opens a view of
//     its entries, read a part at a time in step 3): every write before
//     is in the snapshot, every write after goes down the stream.
//  3. The primary offers the snapshot's ids in chunks (when the joiner
//     holds anything of the shard); the joiner answers those it lacks.
//     The primary sends those items (all of the snapshot to a joiner that
//     held nothing); the joiner skips an item whose user id the stream
//     touched, or that it holds under another internal id in a shard it
//     holds in sync (both newer). An internal id never changes its item
//     (an upsert allocates a new one), so an id held is an item held.
//  4. End: the joiner deletes the ids it held that were never offered
//     (deleted or replaced while it was away, or written only on its side
//     of a partition and never acknowledged), unless the stream touched
//     their user id since; the primary proposes the joiner as an in-sync
//     replica, once the replicated calls to it that no write waited for
//     have ended (writes do not wait for a joiner until its promotion
//     begins: replicate.go, detachJoinCalls).
//
// This is the catch-up of decision 3 and 11, by comparing ids rather
// than by replaying the shard's log: it needs no sequence shared by the
// replicas, cuts a divergent suffix for free, and costs 8 bytes per item
// held however long the joiner was away (docs/node.md, "Catch-up").
//
// A failure at any step drops the joiner from the shard's joining set;
// the leader names one again later and the copy starts over.

// copyKey names one copy: a shard (list or buffer) and the joining node.
type copyKey struct {
	shard  uint32
	buffer bool
	node   string
}

// shardKey names a list shard or a buffer shard.
type shardKey struct {
	shard  uint32
	buffer bool
}

// inCopy is a copy coming into this node: what happened since it began.
// A user id written by the stream or deleted is touched: the copy's
// (older) item for it is skipped, whichever shard it went to. (An
// eviction after an upsert keeps one internal id: collection.kept.)
type inCopy struct {
	touched map[string]bool
	// held are the internal ids of the shard this node held at Begin,
	// sorted; offered[i]: held[i] was offered since.
	held    []uint64
	offered []bool
	// unindexed are held ids missing from the lists in memory: an offer
	// of one is answered missing, so that the copy writes it again.
	unindexed map[uint64]bool
}

// copyChunk is how many items one copy call carries.
const copyChunk = 1024

// offerChunk is how many ids one offer carries.
const offerChunk = 8192

// startCopies starts a copy for every joining node of the shards this
// node leads, and forgets joiners that left the joining sets (promoted or
// dropped). Called on table changes.
func (c *collection) startCopies(rt *route) {
	want := map[copyKey]bool{}
	for s, buffer := range eachShard(rt.c) {
		if s.Primary != rt.self {
			continue
		}
		for _, j := range s.Joining {
			want[copyKey{s.ID, buffer, j}] = true
		}
	}
	c.mu.Lock()
	for k := range c.joining {
		if !want[k] {
			c.dropJoiner(k)
		}
	}
	c.mu.Unlock()
	c.streamMu.Lock()
	defer c.streamMu.Unlock()
	if c.copies == nil {
		c.copies = map[copyKey]bool{}
	}
	for k := range want {
		if c.copies[k] {
			continue
		}
		c.copies[k] = true
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			err := c.copyShard(k)
			c.streamMu.Lock()
			delete(c.copies, k)
			c.streamMu.Unlock()
			if err != nil && c.ctx.Err() == nil {
				c.n.log.Warn("copy to a joining replica failed", "collection", c.meta.Name, "shard", k.shard, "buffer", k.buffer, "node", k.node, "err", err)
				c.mu.Lock()
				c.dropJoiner(k)
				c.mu.Unlock()
				ctx, cancel := context.WithTimeout(c.ctx, 10*time.Second)
				defer cancel()
				if err := c.setJoining(ctx, k, false); err != nil {
					c.n.log.Warn("joining replica not dropped", "collection", c.meta.Name, "node", k.node, "err", err)
				}
			}
		}()
	}
}

// copyShard runs steps 1–4 for one joiner.
func (c *collection) copyShard(k copyKey) error {
	ctx := c.ctx
	rt := c.n.localRoute(c.meta.Name)
	if rt == nil {
		return ErrNoCollection
	}
	begin := time.Now()
	var lists []int32
	if !k.buffer {
		for _, l := range rt.c.Shards.Lists(k.shard) {
			lists = append(lists, int32(l))
		}
	}
	var reply proto.RPCCopyReply
	call := func(cp *proto.RPCCopy) error {
		cp.Collection, cp.From, cp.Buffer, cp.Lists = c.meta.Name, rt.self, k.buffer, lists
		cp.Version = rt.p.table().Version()
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		reply = proto.RPCCopyReply{}
		return c.n.peers.call(cctx, k.node, proto.OpCopy, cp, &reply)
	}
	if err := call(&proto.RPCCopy{Begin: true}); err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	held := reply.Held
	// Step 2: the snapshot, and the stream from here on.
	c.mu.Lock()
	if c.joining == nil {
		c.joining = map[copyKey]bool{}
	}
	c.freshStream(k.node)
	c.joining[k] = true
	var ids []uint64
	var view EntryView
	var err error
	if c.dir {
		// The entries' view is fixed here, and read a part at a time
		// after the lock is released: the partition's writes never wait
		// for it, and the copy holds one part of the partition in memory
		// (its entries are found by user id), not all of it.
		view, err = c.n.store.OpenEntries(c.meta.Name)
	} else {
		err = c.eachLive(k.buffer, lists, func(id uint64, _ int32) { ids = append(ids, id) })
	}
	c.mu.Unlock()
	if err != nil {
		return err
	}
	// next returns the snapshot's next ids, at most offerChunk, and on a
	// partition their user ids.
	next := func() ([]uint64, []string, error) {
		part := ids[:min(offerChunk, len(ids))]
		ids = ids[len(part):]
		return part, nil, nil
	}
	if view != nil {
		defer view.Close()
		next = func() ([]uint64, []string, error) {
			es, err := view.Next(offerChunk)
			part, users := make([]uint64, len(es)), make([]string, len(es))
			for i, e := range es {
				part[i], users[i] = e.ID, e.UserID
			}
			return part, users, err
		}
	}
	sent, kept := 0, 0
	send := func(ids []uint64, users []string) error {
		for i0 := 0; i0 < len(ids); i0 += copyChunk {
			i1 := min(i0+copyChunk, len(ids))
			var items []proto.RPCItem
			var err error
			if c.dir {
				items, err = c.readEntries(ids[i0:i1], users[i0:i1])
			} else {
				items, err = c.readItems(ids[i0:i1])
			}
			if err != nil {
				return err
			}
			if len(items) == 0 {
				continue
			}
			if err := call(&proto.RPCCopy{Items: items}); err != nil {
				return fmt.Errorf("items: %w", err)
			}
			sent += len(items)
			c.n.copyItems.WithLabelValues("sent").Add(float64(len(items)))
		}
		return nil
	}
	for {
		offer, users, err := next()
		if err != nil {
			return err
		}
		if len(offer) == 0 {
			break
		}
		if held == 0 {
			if err := send(offer, users); err != nil {
				return err
			}
			continue
		}
		if err := call(&proto.RPCCopy{Offer: offer, Users: users}); err != nil {
			return fmt.Errorf("offer: %w", err)
		}
		var missing []uint64
		var missingUsers []string
		for _, i := range missingOf(offer, reply.Missing) {
			missing = append(missing, offer[i])
			if users != nil {
				missingUsers = append(missingUsers, users[i])
			}
		}
		kept += len(offer) - len(missing)
		c.n.copyItems.WithLabelValues("kept").Add(float64(len(offer) - len(missing)))
		if err := send(missing, missingUsers); err != nil {
			return err
		}
	}
	if err := call(&proto.RPCCopy{End: true}); err != nil {
		return fmt.Errorf("end: %w", err)
	}
	// The promotion: writes from here on wait for their calls to the
	// joiner (until it leaves the joining set: promoted, or dropped);
	// the calls no write waited for are let end first.
	c.mu.Lock()
	if c.promoting == nil {
		c.promoting = map[copyKey]bool{}
	}
	c.promoting[k] = true
	for c.joinCalls[k] > 0 && c.joining[k] {
		c.joinDone().Wait()
	}
	still := c.joining[k]
	c.mu.Unlock()
	if !still {
		return fmt.Errorf("a replicated write to %s failed during the copy", k.node)
	}
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := c.setJoining(pctx, k, true); err != nil {
		return fmt.Errorf("promote: %w", err)
	}
	c.n.log.Info("copied a shard to a new replica", "collection", c.meta.Name, "shard", k.shard, "buffer", k.buffer, "node", k.node,
		"items", sent, "held_already", kept, "joiner_held", held, "took", time.Since(begin).Round(time.Millisecond))
	return nil
}

// missingOf returns where in offer the ids of a joiner's answer are, in
// offer order: a joiner names no id that was not offered.
func missingOf(offer, answer []uint64) []int {
	if len(answer) == 0 {
		return nil
	}
	want := make(map[uint64]bool, len(answer))
	for _, id := range answer {
		want[id] = true
	}
	var out []int
	for i, id := range offer {
		if want[id] {
			out = append(out, i)
			delete(want, id)
		}
	}
	return out
}

// dropJoiner forgets a copy's joiner: promoted, or dropped. mu is held.
func (c *collection) dropJoiner(k copyKey) {
	delete(c.joining, k)
	delete(c.promoting, k)
}

// freshStream starts a new replication stream to node when no write of
// this primary goes to it now: it is neither an in-sync replica of a
// shard led here nor joining another. A node that restarted has lost its
// streams, and would wait for the calls its previous process applied
// (docs/node.md, "Replication"). mu is held.
func (c *collection) freshStream(node string) {
	for k := range c.joining {
		if k.node == node {
			return
		}
	}
	if rt := c.n.localRoute(c.meta.Name); rt != nil {
		for _, s := range rt.shards() {
			if s.Primary == rt.self && slices.Contains(s.Replicas, node) {
				return
			}
		}
	}
	delete(c.out, node)
}

// readItems reads stored items by internal id, skipping those deleted
// since the snapshot.
func (c *collection) readItems(ids []uint64) ([]proto.RPCItem, error) {
	st := c.n.store
	out := make([]proto.RPCItem, 0, len(ids))
	v := make([]float32, c.meta.Dim)
	for _, id := range ids {
		it, err := st.Item(c.meta.Name, id)
		if errors.Is(err, ErrNoItem) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if err := st.Vectors(c.meta.Name, []uint64{id}, v); err != nil {
			if errors.Is(err, ErrNoItem) {
				continue
			}
			return nil, err
		}
		att, err := st.Attachment(c.meta.Name, id)
		if errors.Is(err, ErrNoItem) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, proto.RPCItem{UserID: it.UserID, ID: id, List: it.List, Vector: proto.PackVector(v), Meta: it.Meta, Attachment: att})
	}
	return out, nil
}

// setJoining ends a joiner's copy through Raft: promote makes it an
// in-sync replica; otherwise it leaves the joining set. Done when the
// table already says so.
func (c *collection) setJoining(ctx context.Context, k copyKey, promote bool) error {
	p, ok := c.n.meta.(placer)
	if !ok {
		return nil
	}
	for try := 0; ; try++ {
		col, ok := p.table().Collection(c.meta.Name)
		if !ok {
			return nil
		}
		shards := col.Shards.Shards
		if k.buffer {
			shards = col.Buffer
		}
		if int(k.shard) >= len(shards) {
			return nil
		}
		s := shards[k.shard]
		if !slices.Contains(s.Joining, k.node) {
			return nil
		}
		cmd := meta.SetReplicas{Collection: c.meta.Name, Buffer: k.buffer, Shard: k.shard, Primary: s.Primary,
			Replicas: slices.Clone(s.Replicas), From: s.Replicas, FromJoining: s.Joining,
			Joining: slices.DeleteFunc(slices.Clone(s.Joining), func(j string) bool { return j == k.node })}
		if promote {
			cmd.Replicas = append(cmd.Replicas, k.node)
		}
		_, err := p.propose(ctx, cmd)
		if err == nil || try >= 5 || !errors.Is(err, meta.ErrStaleShard) {
			return err
		}
	}
}

// applyCopy is the joiner's side of a copy call.
func (n *Node) applyCopy(ctx context.Context, call *proto.RPCCopy) (*proto.RPCCopyReply, error) {
	c, rt, err := n.callColl(ctx, call.Collection, call.Version)
	if err != nil {
		return nil, err
	}
	var s meta.Shard
	if call.Buffer {
		if len(rt.c.Buffer) == 0 {
			return nil, fmt.Errorf("%w: %q has no buffer", ErrStaleEpoch, call.Collection)
		}
		s = rt.c.Buffer[0]
	} else {
		if len(call.Lists) == 0 {
			return nil, fmt.Errorf("%w: a copy of no lists", ErrInvalid)
		}
		var ok bool
		if s, ok = rt.shardOf(call.Lists[0], ""); !ok {
			return nil, fmt.Errorf("%w: list %d of %q", ErrStaleEpoch, call.Lists[0], call.Collection)
		}
	}
	if s.Primary != call.From || !slices.Contains(s.Joining, rt.self) {
		return nil, fmt.Errorf("%w: %s does not copy shard %d of %q to this node", ErrNotPrimary, call.From, s.ID, call.Collection)
	}
	if rt.trained() && c.follow() == nil {
		return nil, fmt.Errorf("%w: collection %q: centroids not loaded yet", ErrStaleEpoch, call.Collection)
	}
	key := shardKey{s.ID, call.Buffer}
	switch {
	case call.Begin:
		held, err := c.beginCopy(key, call.Buffer, call.Lists)
		return &proto.RPCCopyReply{Held: held}, err
	case call.End:
		return &proto.RPCCopyReply{}, c.endCopy(key)
	case call.Offer != nil:
		missing, err := c.offered(key, call.Offer, call.Users)
		return &proto.RPCCopyReply{Missing: missing}, err
	}
	items, lists, ids, err := c.unpackItems(call.Items)
	if err != nil {
		return nil, err
	}
	// A few items per hold of the lock: replicated writes to this node
	// (which the primary may wait for) wait for one part, not the chunk.
	// Each applied part's sync is waited for once, whatever happens.
	var waits []func() error
	waitAll := func() error {
		var first error
		for _, w := range waits {
			if err := w(); err != nil && first == nil {
				first = err
			}
		}
		return first
	}
	for i0 := 0; i0 < len(items); i0 += copyApplyPart {
		i1 := min(i0+copyApplyPart, len(items))
		c.mu.Lock()
		in := c.incoming[key]
		if in == nil {
			c.mu.Unlock()
			_ = waitAll()
			return nil, fmt.Errorf("%w: no copy of shard %d of %q has begun here", ErrStaleEpoch, s.ID, call.Collection)
		}
		var keep []int
		for i := i0; i < i1; i++ {
			if j, ok := slices.BinarySearch(in.held, ids[i]); ok {
				in.offered[j] = true // sent whole (a primary that does not offer) is offered too
			}
			it := items[i]
			if ids[i] == 0 || in.touched[it.UserID] {
				continue
			}
			if c.dir {
				keep = append(keep, i) // a partition is one shard: no other copy
				continue
			}
			if rt.versioned() {
				// Versions decide (dist.go, "Versions"): a copy older than one
				// this node holds of its user id, or than one an eviction here
				// kept, is skipped; a newer one replaces what it holds.
				if !c.superseded(rt, it.UserID, ids[i]) {
					keep = append(keep, i)
				}
				continue
			}
			if k, ok := c.keptID(it.UserID); ok {
				if k == ids[i] {
					keep = append(keep, i)
				}
				continue
			}
			if c.otherCopy(rt, it.UserID, ids[i]) {
				c.holdBack(it, lists[i], ids[i])
				continue
			}
			keep = append(keep, i)
		}
		c.noteForeign()
		wait, err := c.applyLocked(items, lists, ids, keep, false)
		c.mu.Unlock()
		if err != nil {
			_ = waitAll()
			return nil, err
		}
		waits = append(waits, wait)
	}
	return &proto.RPCCopyReply{}, waitAll()
}

// copyApplyPart is how many of a copy call's items the joiner applies
// per hold of the collection lock.
const copyApplyPart = 128

// beginCopy notes the ids this node holds of the lists (or the buffer),
// kept for the offers, and starts recording what happens to user ids
// (afresh: an earlier attempt at the same copy may have left a record).
// It returns how many ids it holds. Held means stored: the store is what
// reads answer from and what survives a restart. An id in the lists in
// memory but not stored is dropped from them; one stored but not in
// them is held but not indexed, so an offer of it is answered missing
// and the copy writes it again, into both (either is a bug elsewhere,
// logged; the catch-up mends it rather than keep it).
func (c *collection) beginCopy(key shardKey, buffer bool, lists []int32) (int, error) {
	if c.dir {
		return c.beginEntryCopy(key)
	}
	// The stored ids, read without the lock (writes here need not wait
	// for a scan of the shard's keys): nothing adds to these lists before
	// the primary streams to this node, after Begin, and what a write
	// removes meanwhile (an upsert elsewhere, an eviction) is checked
	// below. They are compared with the lists in memory a list at a time
	// (the buffer is one): the comparison holds one list's ids in a map,
	// not the shard's.
	groups := lists
	if buffer {
		groups = []int32{BufferList}
	}
	ls, listed := c.n.store.(idLister)
	var stored [][]uint64 // per group
	if listed {
		stored = make([][]uint64, len(groups))
		for g, l := range groups {
			ids, err := ls.ListIDs(c.meta.Name, l)
			if err != nil {
				return 0, err
			}
			stored[g] = ids
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	present := func(id uint64) (bool, error) {
		_, err := c.n.store.Item(c.meta.Name, id)
		if errors.Is(err, ErrNoItem) {
			return false, nil
		}
		return err == nil, err
	}
	in := &inCopy{touched: map[string]bool{}, unindexed: map[uint64]bool{}}
	ghosts := 0
	// The ids stored but not in their list in memory, and those in a
	// list in memory but stored under no list scanned (or stored since
	// the scan): an id in both sets (stored under one list, in memory
	// under another) is indexed; one only in the first is not. Both are
	// empty unless the store and the lists disagree.
	notInList, elsewhere := map[uint64]bool{}, map[uint64]bool{}
	for g, l := range groups {
		mem := map[uint64]bool{} // live in memory in this group
		if err := c.eachLive(buffer, []int32{l}, func(id uint64, _ int32) { mem[id] = true }); err != nil {
			return 0, err
		}
		var st []uint64
		if listed {
			st, stored[g] = stored[g], nil
		} else {
			for id := range mem {
				st = append(st, id)
			}
		}
		for _, id := range st {
			if mem[id] {
				delete(mem, id)
				in.held = append(in.held, id)
				continue
			}
			ok, err := present(id)
			if err != nil {
				return 0, err
			}
			if ok { // stored, not in this list in memory
				in.held = append(in.held, id)
				notInList[id] = true
			}
		}
		for id := range mem {
			ok, err := present(id)
			if err != nil {
				return 0, err
			}
			if ok { // stored since the scan, or under another list
				in.held = append(in.held, id)
				elsewhere[id] = true
				continue
			}
			c.dropMem(id, l) // in the lists in memory, not stored
			ghosts++
		}
	}
	for id := range notInList {
		if !elsewhere[id] {
			in.unindexed[id] = true
		}
	}
	slices.Sort(in.held)
	in.held = slices.Compact(in.held) // an id stored under one list and in memory under another
	in.offered = make([]bool, len(in.held))
	if ghosts > 0 || len(in.unindexed) > 0 {
		c.n.log.Warn("copy: the lists in memory and the store disagreed; the catch-up mends them", "collection", c.meta.Name,
			"shard", key.shard, "buffer", key.buffer, "in_memory_only", ghosts, "stored_only", len(in.unindexed))
	}
	if c.incoming == nil {
		c.incoming = map[shardKey]*inCopy{}
	}
	c.incoming[key] = in
	return len(in.held), nil
}

// eachLive calls fn for every live id in memory of the buffer (with
// BufferList) or, without buffer, of lists (with its list). mu is held.
func (c *collection) eachLive(buffer bool, lists []int32, fn func(id uint64, list int32)) error {
	if buffer {
		if buf := c.buf.Load(); buf != nil {
			for _, id := range buf.liveIDs() {
				fn(id, BufferList)
			}
		}
		return nil
	}
	ix := c.ix.Load()
	if ix == nil {
		return nil
	}
	for _, l := range lists {
		if l < 0 || int(l) >= ix.NList() {
			return fmt.Errorf("%w: list %d", ErrInvalid, l)
		}
		v := ix.List(int(l)).View()
		for i, id := range v.IDs() {
			if !v.Deleted(i) {
				fn(id, l)
			}
		}
	}
	return nil
}

// idLister is a Storage that lists a list's stored ids from its keys
// (PebbleStorage).
type idLister interface {
	ListIDs(coll string, list int32) ([]uint64, error)
}

// offered answers an offer: the ids this node lacks. A held id is looked
// up in the store (one small read), since a write or a delete may have
// removed it since Begin. On a partition an entry is looked up by its
// user id (users, in offer order); an offer without them (from a primary
// built before 2026-11-27) is answered missing for every id, and the
// primary sends all of it again.
func (c *collection) offered(key shardKey, offer []uint64, users []string) ([]uint64, error) {
	c.mu.Lock()
	in := c.incoming[key]
	if in == nil {
		c.mu.Unlock()
		return nil, fmt.Errorf("%w: no copy of shard %d has begun here", ErrStaleEpoch, key.shard)
	}
	var missing []uint64
	var check []int // places in offer
	for j, id := range offer {
		i, held := slices.BinarySearch(in.held, id)
		if held {
			in.offered[i] = true
		}
		if held && !in.unindexed[id] && (!c.dir || len(users) == len(offer)) {
			check = append(check, j)
		} else {
			missing = append(missing, id)
		}
	}
	c.mu.Unlock()
	for _, j := range check {
		var err error
		if c.dir {
			err = c.heldEntry(users[j], offer[j])
		} else {
			_, err = c.n.store.Item(c.meta.Name, offer[j])
		}
		if errors.Is(err, ErrNoItem) {
			missing = append(missing, offer[j])
		} else if err != nil {
			return nil, err
		}
	}
	return missing, nil
}

// endCopy deletes the ids held at Begin that the primary never offered,
// except those whose user id the stream touched since (the stream is
// newer), and stops recording.
func (c *collection) endCopy(key shardKey) error {
	c.mu.Lock()
	in := c.incoming[key]
	var gone []uint64
	if in != nil {
		for i, id := range in.held {
			if !in.offered[i] {
				gone = append(gone, id)
			}
		}
	}
	c.mu.Unlock()
	if in == nil {
		return nil // an End sent again
	}
	var goneUsers []string // a partition's: the user ids of gone
	if c.dir && len(gone) > 0 {
		// An entry is found by its user id: one pass over the entries
		// finds those of the versions gone (sorted, as held is).
		goneUsers = make([]string, len(gone))
		err := eachEntry(c.n.store, c.meta.Name, func(e Entry) error {
			if i, ok := slices.BinarySearch(gone, e.ID); ok {
				goneUsers[i] = e.UserID
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	dropped := 0
	for i0 := 0; i0 < len(gone); i0 += copyChunk {
		part := gone[i0:min(i0+copyChunk, len(gone))]
		users := make([]string, len(part))
		for i, id := range part {
			if c.dir {
				users[i] = goneUsers[i0+i] // "": no longer stored
				continue
			}
			it, err := c.n.store.Item(c.meta.Name, id)
			if err != nil && !errors.Is(err, ErrNoItem) {
				return err
			}
			users[i] = it.UserID
		}
		c.mu.Lock()
		var del []uint64
		var dels []EntryDelete
		for i, id := range part {
			if users[i] != "" && !in.touched[users[i]] {
				del = append(del, id)
				dels = append(dels, EntryDelete{UserID: users[i], ID: id})
			}
		}
		n0 := c.count.Load()
		var err error
		if c.dir {
			err = c.deleteEntriesLocked(dels)
		} else {
			err = c.deleteIDsLocked(del)
			for i := range part {
				if _, ok := c.held[users[i]]; ok && err == nil && !in.touched[users[i]] {
					err = c.applyHeldLocked(users[i], 0) // its rival was stale: the item held back is the copy
				}
			}
		}
		dropped += int(n0 - c.count.Load())
		c.mu.Unlock()
		if err != nil {
			return err
		}
	}
	c.mu.Lock()
	if c.incoming[key] == in {
		delete(c.incoming, key)
	}
	c.mu.Unlock()
	if dropped > 0 {
		c.n.log.Info("caught up: dropped items the primary no longer holds", "collection", c.meta.Name, "shard", key.shard, "buffer", key.buffer, "items", dropped)
	}
	return nil
}

// deleteIDsLocked deletes items by internal id; mu is held.
func (c *collection) deleteIDsLocked(ids []uint64) error {
	for i0 := 0; i0 < len(ids); i0 += 4096 {
		part := ids[i0:min(i0+4096, len(ids))]
		removed, err := c.storeApply(&Batch{Collection: c.meta.Name, Dim: c.meta.Dim, DeleteIDs: part})
		if err != nil {
			return err
		}
		for _, o := range removed {
			c.dropMem(o.ID, o.List)
		}
		c.count.Add(-int64(len(removed)))
	}
	return nil
}

// touch records user ids written or deleted while copies run into this
// node: newer than any copy's item for them, which is skipped, and than
// any item held back; mu is held.
func (c *collection) touch(users ...string) {
	for _, in := range c.incoming {
		for _, u := range users {
			in.touched[u] = true
		}
	}
	for _, u := range users {
		delete(c.kept, u)
		delete(c.held, u)
	}
}

// Two copies of a user id. A node stores one copy per user id, in
// whichever of its shards it went to (the store's user id index), while
// for a moment after an upsert moves an item to another shard the
// cluster holds two: the new copy is written, then the old one evicted
// from the nodes holding its shard. A joiner that catches up two shards
// at once can meet both, from two copies or from a copy and the stream,
// in either order, and cannot tell which is newer: internal ids are not
// ordered in time across nodes. Keeping the one that came last lost the
// newer copy when the older came second; keeping the one that came first
// lost it the other way round, and so did skipping a copied item whose
// user id an eviction had touched (the eviction that said to keep it):
// either way the joiner was made in sync without an acknowledged write,
// which TestClusterChaos found (in 3 of 15 runs of nine kills).
//
// So a joiner decides only on what says which copy is current:
//   - the eviction after the upsert names the internal id to keep (kept,
//     noted while copies come in or this node joins a shard): a copied
//     item of another id is skipped, and one of that id applied;
//   - a write or delete by the stream since a copy began is newer than
//     its items (touch);
//   - a copied item whose user id this node holds under another id in a
//     shard it holds or joins is held back (held) until the eviction
//     names one of them, or the copy that brought the rival drops it as
//     one its primary no longer holds; a write or delete of the user id
//     drops it, and so does heldFor passing without either.
//
// A copy held in a shard this node no longer holds or joins is a
// leftover (purgeUnheld drops it): the copied item replaces it.

// keptID is what an eviction kept of a user id; what a user id's
// evictions noted.
type keptID struct {
	id uint64
	at time.Time
}

// heldItem is a copied item held back.
type heldItem struct {
	item WriteItem
	list int32
	id   uint64
	at   time.Time
}

// heldFor is how long a joiner keeps what evictions kept and the items
// it held back: longer than any upsert's write and eviction can take
// (a write past the gateway's CallTimeout is refused).
const heldFor = 2 * time.Minute

// keptID returns the internal id the last eviction of a user id kept,
// noted within heldFor; mu is held.
func (c *collection) keptID(user string) (uint64, bool) {
	k, ok := c.kept[user]
	if !ok || time.Since(k.at) > heldFor {
		return 0, false
	}
	return k.id, true
}

// otherCopy says whether this node holds user under another internal id
// than id, in a shard it holds or joins; mu is held.
func (c *collection) otherCopy(rt *route, user string, id uint64) bool {
	cur, list, err := c.n.locate(c.meta.Name, user)
	if err != nil || cur == id {
		return false
	}
	s, ok := rt.shardOf(list, user)
	return ok && slices.Contains(holders(s), rt.self)
}

// holdBack holds a copied item back (the last one of its user id);
// mu is held.
func (c *collection) holdBack(it WriteItem, list int32, id uint64) {
	if c.held == nil {
		c.held = map[string]heldItem{}
	}
	c.sweepLocked()
	// Its own copy of the item: the call's body, which it views, may be
	// large, and the item may be held for a while.
	it.Vector, it.Meta, it.Attachment = slices.Clone(it.Vector), slices.Clone(it.Meta), slices.Clone(it.Attachment)
	c.held[it.UserID] = heldItem{item: it, list: list, id: id, at: time.Now()}
	c.n.log.Debug("copy: two copies of a user id; one held back until an eviction decides", "collection", c.meta.Name, "user_id", it.UserID, "held_back", id)
}

// sweepLocked forgets what evictions kept longer than heldFor ago, and
// decides for the items held back longer than that, which no eviction
// decided: one whose rival is in a shard this node no longer holds or
// joins (a leftover: its copy failed, or it was purged) or is gone is
// applied; one whose rival is in a shard this node holds in sync is
// dropped (the cluster holds both copies: no eviction came, so the
// upsert's gateway died between its write and its eviction, and either
// copy is as good); one whose rival's shard this node still joins waits
// for that copy's end. It runs at most once a second, however many
// evictions and copied items call it: a large catch-up may note and
// hold many. mu is held.
func (c *collection) sweepLocked() {
	now := time.Now()
	if len(c.held)+len(c.kept) == 0 || now.Sub(c.swept) < time.Second {
		return
	}
	c.swept = now
	for u, k := range c.kept {
		if now.Sub(k.at) > heldFor {
			delete(c.kept, u)
		}
	}
	rt := c.n.localRoute(c.meta.Name)
	if rt == nil {
		return // dropped: nothing held back is applied
	}
	for u, h := range c.held {
		if now.Sub(h.at) <= heldFor {
			continue
		}
		_, list, err := c.n.locate(c.meta.Name, u)
		switch {
		case err != nil && !errors.Is(err, ErrNoItem):
			continue
		case err == nil:
			s, ok := rt.shardOf(list, u)
			if ok && slices.Contains(s.Replicas, rt.self) {
				delete(c.held, u)
				c.n.log.Warn("copy: no eviction decided between two copies of a user id; this node keeps the one it holds in sync", "collection", c.meta.Name, "user_id", u, "dropped", h.id)
				continue
			}
			if ok && slices.Contains(s.Joining, rt.self) {
				continue
			}
		}
		if err == nil {
			// The rival is a leftover: the held item replaces it.
			if _, err := c.removeUsersLocked([]string{u}, false); err != nil {
				continue
			}
		}
		if err := c.applyHeldLocked(u, 0); err != nil {
			c.n.log.Warn("copy: an item held back could not be applied", "collection", c.meta.Name, "user_id", u, "err", err)
		}
	}
}

// noteKept records an eviction's kept ids while copies come in or this
// node joins a shard (the copy may begin after the eviction and still
// bring the evicted copy), and decides for the items held back; mu is
// held.
func (c *collection) noteKept(users []string, keep []uint64) {
	if len(c.incoming) == 0 && len(c.held) == 0 && !c.joinsHere() {
		if len(c.kept) > 0 {
			clear(c.kept)
		}
		return
	}
	if c.kept == nil {
		c.kept = map[string]keptID{}
	}
	c.sweepLocked()
	now := time.Now()
	for i, u := range users {
		c.kept[u] = keptID{id: keep[i], at: now}
		for _, in := range c.incoming {
			delete(in.touched, u) // the eviction is newer than the write that touched it
		}
		if h, ok := c.held[u]; ok && h.id != keep[i] {
			delete(c.held, u)
		}
	}
}

// joinsHere says whether this node joins a shard of the collection;
// mu is held.
func (c *collection) joinsHere() bool {
	rt := c.n.localRoute(c.meta.Name)
	if rt == nil {
		return false
	}
	for s := range eachShard(rt.c) {
		if slices.Contains(s.Joining, rt.self) {
			return true
		}
	}
	return false
}

// applyHeldLocked applies the item held back for user, if any (and, with
// keep set, if it is keep), once this node holds no other copy of user:
// the rival was evicted or dropped. mu is held.
func (c *collection) applyHeldLocked(user string, keep uint64) error {
	h, ok := c.held[user]
	if !ok || (keep != 0 && h.id != keep) {
		return nil
	}
	switch cur, _, err := c.n.locate(c.meta.Name, user); {
	case err == nil && cur == h.id:
		delete(c.held, user) // here already
		return nil
	case err == nil:
		return nil // a rival is still here
	case !errors.Is(err, ErrNoItem):
		return err
	}
	delete(c.held, user)
	rt := c.n.localRoute(c.meta.Name)
	if rt == nil {
		return nil
	}
	if s, ok := rt.shardOf(h.list, user); !ok || !slices.Contains(holders(s), rt.self) {
		return nil // its shard is not held here any more
	}
	wait, err := c.applyLocked([]WriteItem{h.item}, []int32{h.list}, []uint64{h.id}, []int{0}, false)
	if err != nil {
		return err
	}
	c.n.log.Debug("copy: applied the copy of a user id held back", "collection", c.meta.Name, "user_id", user, "id", h.id)
	return wait()
}

// forgetCopies drops the records of copies into shards this node no
// longer joins (a copy that failed without its end).
func (c *collection) forgetCopies() {
	c.mu.Lock()
	defer c.mu.Unlock()
	rt := c.n.localRoute(c.meta.Name) // now, under the lock a Begin takes
	if rt == nil {
		return
	}
	c.sweepLocked()
	for k := range c.incoming {
		shards := rt.c.Shards.Shards
		if k.buffer {
			shards = rt.c.Buffer
		}
		if int(k.shard) >= len(shards) || !slices.Contains(shards[k.shard].Joining, rt.self) {
			delete(c.incoming, k)
		}
	}
}

// purgeUnheld drops, in the background, the copies this node holds of
// shards it is neither a replica of nor joining, once they have their
// full count of replicas elsewhere: left from before a failure or a
// shutdown took it out of them. The copy of a shard still short of
// replicas is kept: the leader may name this node to catch it up.
func (c *collection) purgeUnheld(rt *route) {
	if lists, buffer := c.unheld(rt); len(lists) == 0 && !buffer {
		return
	}
	c.background(&c.purging, func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		// Decide again under the lock, from the table as it is now: a
		// copy to this node may have begun since (and holds the lock to
		// apply its items).
		rt := c.n.localRoute(c.meta.Name)
		if rt == nil {
			return
		}
		lists, buffer := c.unheld(rt)
		if c.dir {
			if buffer {
				c.purgeEntriesLocked()
			}
			return
		}
		var ids []uint64
		if ix := c.ix.Load(); ix != nil {
			for _, l := range lists {
				ids = append(ids, ix.List(int(l)).View().IDs()...)
			}
		}
		if buf := c.buf.Load(); buffer && buf != nil {
			ids = append(ids, buf.liveIDs()...)
		}
		if len(ids) == 0 {
			return
		}
		if err := c.deleteIDsLocked(ids); err != nil {
			c.n.log.Warn("copies of shards no longer held not dropped", "collection", c.meta.Name, "err", err)
			return
		}
		c.n.log.Info("dropped copies of shards no longer held here", "collection", c.meta.Name, "lists", len(lists), "buffer", buffer, "items", len(ids))
	})
}

// unheld returns the lists with items here whose shard this node neither
// holds nor joins and that has its full count of replicas, and whether
// the same goes for the buffer.
func (c *collection) unheld(rt *route) (lists []int32, buffer bool) {
	held := func(s meta.Shard) bool {
		return slices.Contains(s.Replicas, rt.self) || slices.Contains(s.Joining, rt.self) ||
			len(s.Replicas)+len(s.Joining) < rt.c.Replicas
	}
	if ix := c.ix.Load(); ix != nil && len(rt.c.Shards.ListShard) == ix.NList() {
		for l, sid := range rt.c.Shards.ListShard {
			if ix.List(l).View().Live() > 0 && !held(rt.c.Shards.Shards[sid]) {
				lists = append(lists, int32(l))
			}
		}
	}
	if buf := c.buf.Load(); buf != nil && (buf.len() > 0 || c.dir && c.count.Load() > 0) && len(rt.c.Buffer) > 0 && !slices.ContainsFunc(rt.c.Buffer, held) {
		buffer = true
	}
	return lists, buffer
}

// countLocal counts the live items of lists (and the buffer) here.
func (n *Node) countLocal(call *proto.RPCCount) (int64, error) {
	if err := n.lease(); err != nil {
		return 0, err
	}
	c, err := n.collection(call.Collection)
	if err != nil {
		return 0, err
	}
	var total int64
	if ix := c.ix.Load(); ix != nil {
		for _, l := range call.Lists {
			if l < 0 || int(l) >= ix.NList() {
				return 0, fmt.Errorf("%w: list %d", ErrInvalid, l)
			}
			total += int64(ix.List(int(l)).View().Live())
		}
	}
	if buf := c.buf.Load(); call.Buffer && buf != nil {
		total += int64(buf.len())
	}
	if c.dir && call.Buffer {
		total += c.count.Load() // entries are stored only: the buffer is empty
	}
	return total, nil
}

// distCount counts a collection's items on one in-sync replica of each
// shard, the calls in parallel; a shard whose replica fails is counted on
// another, and one that no replica answers is named in missing (the
// count is then partial: until 2026-11-28 such a shard was left out
// silently, a failed call was not retried on another replica, and
// describe fell back on this node's own count). While training's move
// runs, an item may count twice (buffer and list).
func (n *Node) distCount(ctx context.Context, rt *route) (total int64, missing []string, err error) {
	if err := rt.leased(); err != nil {
		return 0, nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	type part struct {
		name   string
		shard  meta.Shard
		lists  []int32
		buffer bool
	}
	var parts []part
	for i, s := range rt.c.Shards.Shards {
		p := part{name: fmt.Sprintf("%s/%d", rt.c.Name, i), shard: s}
		for _, l := range rt.c.Shards.Lists(s.ID) {
			p.lists = append(p.lists, int32(l))
		}
		parts = append(parts, p)
	}
	for i, s := range rt.c.Buffer {
		parts = append(parts, part{name: fmt.Sprintf("%s/buffer/%d", rt.c.Name, i), shard: s, buffer: true})
	}
	done := make([]bool, len(parts))
	avoid := map[string]bool{}
	for {
		load := map[string]int{}
		calls := map[string]*proto.RPCCount{}
		of := map[string][]int{} // node → the parts its call counts
		for i, p := range parts {
			if done[i] {
				continue
			}
			node, ok := rt.pick(p.shard, load, avoid)
			if !ok || ctx.Err() != nil {
				missing, done[i] = append(missing, p.name), true
				continue
			}
			load[node]++
			cc := calls[node]
			if cc == nil {
				cc = &proto.RPCCount{Collection: rt.c.Name}
				calls[node] = cc
			}
			cc.Lists = append(cc.Lists, p.lists...)
			cc.Buffer = cc.Buffer || p.buffer
			of[node] = append(of[node], i)
		}
		if len(calls) == 0 {
			return total, missing, nil
		}
		type answer struct {
			node  string
			count int64
			err   error
		}
		answers := make(chan answer, len(calls))
		for node, cc := range calls {
			go func() {
				if node == rt.self {
					v, err := n.countLocal(cc)
					answers <- answer{node, v, err}
					return
				}
				var r proto.RPCCountReply
				err := n.peers.call(ctx, node, proto.OpCount, cc, &r)
				answers <- answer{node, r.Count, err}
			}()
		}
		for range calls {
			a := <-answers
			if a.err != nil {
				if errors.Is(a.err, ErrInvalid) || errors.Is(a.err, context.Canceled) {
					return 0, nil, a.err
				}
				avoid[a.node] = true // its parts: another replica, or missing
				continue
			}
			total += a.count
			for _, i := range of[a.node] {
				done[i] = true
			}
		}
	}
}
