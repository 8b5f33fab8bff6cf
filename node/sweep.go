package node

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"lookalike/proto"
)

// The directory sweep (docs/node.md, "The directory sweep"). An upsert
// that moves a user id to a list of another shard writes the new copy,
// then evicts the old one and prunes its list from the id's entry. A
// gateway that dies between the two (or whose eviction fails) leaves two
// copies in the cluster, and an entry naming both lists: the older
// copy's vector still finds the id, the count is one too high, and a read
// may answer either copy. And a prune spares a list added less than the
// settle time ago, so an id upserted twice within it, or by two clients
// at once, keeps a list that holds no copy in its entry, which costs
// every later read of the id a call.
//
// Each node sweeps the directory partitions it is the primary of, every
// ClusterOptions.DirSweep: it scans their entries (paced, about a tenth
// of a core) for those naming more than one list, every list added more
// than the settle time ago, so that no write naming them can still be in
// flight. For each it asks every replica of the shards those lists are
// on for its copy of the id, by one table version (RPCGet.Version, and
// the leader's version checked after), and keeps the newest (versions:
// dist.go): an eviction keeping that version removes the older copies,
// and the other lists, which hold no copy now, are pruned. A write of
// the id meanwhile is newer than every copy found (a higher version),
// and its list was added since, so neither step touches it.

// sweepLoop runs the sweep every every until stop closes.
func (n *Node) sweepLoop(every time.Duration, stop <-chan struct{}) {
	ctx, cancel := context.WithCancel(n.ctx)
	defer cancel()
	go func() {
		select {
		case <-stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		n.sweepDirectories(ctx)
	}
}

// sweepOutcome is what the sweep did with one entry.
type sweepOutcome string

const (
	sweepEvicted sweepOutcome = "evicted" // older copies evicted (and lists pruned)
	sweepPruned  sweepOutcome = "pruned"  // lists holding no copy pruned only
	sweepSkipped sweepOutcome = "skipped" // a shard had no replica that answered: next time
)

// maxSweepEntries bounds the entries one sweep of a partition settles;
// the rest wait for the next sweep.
const maxSweepEntries = 10_000

// sweepDirectories sweeps the directory partitions this node is the
// primary of, of every trained collection without a buffer.
func (n *Node) sweepDirectories(ctx context.Context) {
	p, ok := n.meta.(placer)
	if !ok || n.peers == nil {
		return
	}
	for _, c := range p.table().Collections() {
		if c.IDPartitions == 0 {
			continue
		}
		rt, ok := n.distRoute(c.Name)
		if !ok || !rt.trained() || len(rt.c.Buffer) > 0 {
			continue
		}
		for i, d := range rt.dir {
			if len(d.Buffer) != 1 || d.Buffer[0].Primary != rt.self {
				continue
			}
			done, err := n.sweepPartition(ctx, rt, i)
			if err != nil && ctx.Err() == nil {
				n.log.Warn("directory sweep", "collection", c.Name, "partition", i, "err", err)
			}
			if len(done) > 0 {
				n.log.Info("directory sweep: settled entries naming several lists", "collection", c.Name, "partition", i,
					"evicted", done[sweepEvicted], "pruned", done[sweepPruned], "skipped", done[sweepSkipped])
			}
		}
	}
}

// sweepCandidate is an entry the sweep settles: a user id and its lists.
type sweepCandidate struct {
	user  string
	lists []int32
}

// sweepPartition sweeps partition i of rt's directory, held here as its
// primary, and counts what it did by outcome.
func (n *Node) sweepPartition(ctx context.Context, rt *route, i int) (map[sweepOutcome]int, error) {
	d := rt.dir[i]
	pc, err := n.collection(d.Name)
	if err != nil {
		return nil, err
	}
	pc.mu.Lock()
	since, fresh := pc.dirSince, pc.dirForeign || pc.dirSince == 0
	merges := pc.dirMerges
	if pc.sweptIdle && pc.sweptMerges == merges && !fresh {
		pc.mu.Unlock()
		return nil, nil // nothing merged since a scan found nothing to settle
	}
	pc.mu.Unlock()
	// Paced: a part's scan, then nine times as long idle.
	pace := func(took time.Duration) error {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(9 * took):
			return nil
		}
	}
	limit := maxSweepEntries
	if fresh {
		limit = 1 // one entry to rewrite (below)
	}
	cands, unsettled, err := sweepScan(n.store, d.Name, since, n.dirSettle().Milliseconds(), fresh, limit, pace)
	if err != nil {
		return nil, err
	}
	pc.mu.Lock()
	pc.sweptMerges, pc.sweptIdle = merges, len(cands) == 0 && unsettled == 0
	pc.mu.Unlock()
	if len(cands) == 0 {
		return nil, nil
	}
	if fresh {
		// This node has not written the partition since it became its
		// primary (or opened it), so it cannot tell how old any list is
		// (dirMergeAt). Rewriting one entry starts its clock; the entries
		// settle a settle time later, at a later sweep.
		if _, _, err := n.dirWrite(ctx, rt, proto.DirPrune, []WriteItem{dirItem(cands[0].user)}); err != nil {
			return nil, err
		}
		return nil, nil
	}
	done := map[sweepOutcome]int{}
	for _, c := range cands[:min(len(cands), maxSweepEntries)] {
		// The table as of now: the scan may have taken a while.
		if rt, _ = n.distRoute(rt.c.Name); rt == nil || !rt.trained() || len(rt.c.Buffer) > 0 {
			break
		}
		out, err := n.sweepEntry(ctx, rt, c.user, c.lists)
		if err != nil {
			return done, fmt.Errorf("entry of %q: %w", c.user, err)
		}
		if out != "" {
			done[out]++
			n.dirSwept.WithLabelValues(string(out)).Inc()
		}
	}
	return done, nil
}

// sweepScan reads the entries of partition coll and returns those naming
// several lists, every list settled (its last add, or since when later,
// more than settle milliseconds ago; every entry naming several lists
// when fresh), at most limit (the scan stops there), and how many
// entries read named several lists not all settled. pace is called
// after each part of entries with the time the part took.
func sweepScan(st Storage, coll string, since, settle int64, fresh bool, limit int, pace func(took time.Duration) error) ([]sweepCandidate, int, error) {
	var cands []sweepCandidate
	unsettled := 0
	err := eachEntryPart(st, coll, func(part []Entry) error {
		began := time.Now()
		now := began.UnixMilli()
		for _, e := range part {
			refs, err := decodeEntry(e.Value)
			if err != nil || len(refs) < 2 {
				continue
			}
			if !fresh && slices.ContainsFunc(refs, func(r dirRef) bool { return now-max(r.Added, since) <= settle }) {
				unsettled++
				continue
			}
			lists := make([]int32, len(refs))
			for j, r := range refs {
				lists[j] = r.List
			}
			cands = append(cands, sweepCandidate{e.UserID, lists})
			if len(cands) >= limit {
				return errSweepFull
			}
		}
		return pace(time.Since(began))
	})
	if err != nil && !errors.Is(err, errSweepFull) {
		return nil, 0, err
	}
	return cands, unsettled, nil
}

var errSweepFull = errors.New("sweep: enough entries for one round")

// sweepEntry settles user's entry, which names lists (all settled): it
// reads the id's copy from every replica of the lists' shards, evicts
// the copies older than the newest, and prunes the lists that do not
// hold the newest. The outcome is "" when there was nothing to do.
func (n *Node) sweepEntry(ctx context.Context, rt *route, user string, lists []int32) (sweepOutcome, error) {
	ctx, cancel := context.WithTimeout(ctx, n.opts.CallTimeout)
	defer cancel()
	shards := rt.listedShards(user, lists)
	on := map[string][]placeKey{} // node → the shards it holds in sync
	for k, s := range shards {
		for _, node := range s.Replicas {
			if node == rt.self || rt.p.alive(node) {
				on[node] = append(on[node], k)
			}
		}
	}
	call := &proto.RPCGet{Collection: rt.c.Name, Epoch: rt.c.Epoch, UserID: user, Version: rt.version}
	type answer struct {
		node  string
		reply *proto.RPCGetReply
		err   error
	}
	answers := make(chan answer, len(on))
	for node := range on {
		go func() {
			r, err := n.getAt(ctx, rt, node, call)
			answers <- answer{node, r, err}
		}()
	}
	answered := map[placeKey]bool{}
	var newest proto.RPCItem
	older := false
	for range on {
		a := <-answers
		if a.err != nil {
			continue
		}
		for _, k := range on[a.node] {
			answered[k] = true
		}
		if !a.reply.Found {
			continue
		}
		switch id := a.reply.Item.ID; {
		case id > newest.ID:
			older = older || newest.ID != 0
			newest = a.reply.Item
		case id < newest.ID:
			older = true
		}
	}
	if len(answered) < len(shards) {
		return sweepSkipped, nil
	}
	// Each replica answered by the table at rt.version or a newer one: by
	// rt.version itself unless the leader has a newer one now. A newer
	// table may have moved a shard to nodes not asked, or have the nodes
	// asked answer that they no longer hold it, and a list would be
	// pruned from the entry while it holds the newest copy.
	if v, err := n.askLeaderVersion(ctx); err != nil || v != rt.version {
		return sweepSkipped, nil
	}
	if newest.ID != 0 && !slices.Contains(lists, newest.List) {
		// Cannot be: a copy's list is added to the entry before the copy
		// is written. Leave the entry as it is.
		n.log.Warn("directory sweep: the newest copy of an id is in a list its entry does not name", "collection", rt.c.Name, "id", user, "list", newest.List, "entry", lists)
		return sweepSkipped, nil
	}
	out := sweepPruned
	if older {
		if _, err := n.deleteAt(ctx, rt, listedDeletes(user, lists, newest.ID)); err != nil {
			return "", err
		}
		out = sweepEvicted
	}
	// A shard holds one copy of a user id, so every list but the
	// newest copy's holds none now.
	var prune []int32
	for _, l := range lists {
		if newest.ID == 0 || l != newest.List {
			prune = append(prune, l)
		}
	}
	if len(prune) == 0 && !older {
		return "", nil
	}
	if len(prune) > 0 {
		if _, _, err := n.dirWrite(ctx, rt, proto.DirPrune, []WriteItem{dirItem(user, prune...)}); err != nil {
			return "", err
		}
	}
	return out, nil
}
