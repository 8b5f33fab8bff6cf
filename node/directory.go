package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"time"

	"lookalike/coordinator/meta"
	"lookalike/internal/failpoint"
	"lookalike/proto"
)

// The id directory (decision 10; docs/node.md, "The id directory"). A
// cluster's collection X is created with its directory: one partition
// per live node at creation, each a collection meta.DirName(X, p) of one
// flat shard, never trained, a user id's entry living in partition
// BufferShard(id, partitions), and each replicated, failed over,
// restored and caught up by the same code as any shard. Its items are
// entries: user id → the lists of X that may hold a copy of it. A
// gateway adds a list to the entry (DirAdd) before it writes a copy
// there, so an entry names every list holding a copy of its id, and
// maybe lists that hold none (a write that failed, a prune not yet
// done). Reads and deletes by id then go only to the
// shards an entry names, and so does the eviction after an upsert:
// lists are removed from an entry (DirPrune) once the copies there are
// evicted and no write naming them can still be in flight.
//
// Before training, X's copies sit in its buffer shard, which the user
// id alone names: writes then skip the directory. While the buffer
// moves to the lists, a user id's buffer shard is asked too.

// dirRef is one list of an entry.
type dirRef struct {
	List int32
	// Added is when the list was last added (Unix milliseconds on the
	// partition's primary): a prune spares it for dirSettle after that.
	Added int64
}

// encodeEntry encodes an entry as the JSON array of its lists, each
// [list, added] (docs/format/rpc.md, "Directory entries"): the store
// keeps it as the item's metadata, which must be JSON. An empty entry
// encodes as nil (an empty entry is deleted).
func encodeEntry(refs []dirRef) []byte {
	if len(refs) == 0 {
		return nil
	}
	b := make([]byte, 0, 2+len(refs)*24)
	b = append(b, '[')
	for i, r := range refs {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '[')
		b = strconv.AppendInt(b, int64(r.List), 10)
		b = append(b, ',')
		b = strconv.AppendInt(b, r.Added, 10)
		b = append(b, ']')
	}
	return append(b, ']')
}

// maxEntryRefs bounds an entry's lists when decoding.
const maxEntryRefs = 1 << 16

// decodeEntry decodes an entry (nil or empty: no lists). encodeEntry's
// own form is read by hand (parseEntry); anything else, such as JSON
// with spaces, by encoding/json, which took 0.7 µs an entry: 2.5 % of a
// 3-node cluster's ingest CPU, for one decode per vector on the
// partition's primary. Both read every input alike (FuzzDecodeEntry).
func decodeEntry(b []byte) ([]dirRef, error) {
	if len(b) == 0 {
		return nil, nil
	}
	if refs, ok := parseEntry(b); ok {
		return refs, nil
	}
	var raw [][]int64
	if err := json.Unmarshal(b, &raw); err != nil {
		return nil, fmt.Errorf("%w: directory entry: %v", ErrInvalid, err)
	}
	if len(raw) > maxEntryRefs {
		return nil, fmt.Errorf("%w: directory entry of %d lists", ErrInvalid, len(raw))
	}
	refs := make([]dirRef, len(raw))
	for i, r := range raw {
		if len(r) != 2 {
			return nil, fmt.Errorf("%w: directory entry: %d numbers for a list, want 2", ErrInvalid, len(r))
		}
		if r[0] < 0 || r[0] >= meta.MaxNList {
			return nil, fmt.Errorf("%w: directory entry: list %d", ErrInvalid, r[0])
		}
		refs[i] = dirRef{List: int32(r[0]), Added: r[1]}
	}
	return refs, nil
}

// parseEntry reads an entry in encodeEntry's form: [[list,added],...],
// no spaces, integers without leading zeros and of at most 18 digits, a
// list in 0..MaxNList-1. ok is false for any other input, valid JSON or
// not, which decodeEntry then reads with encoding/json.
func parseEntry(b []byte) (refs []dirRef, ok bool) {
	if len(b) < 7 || b[0] != '[' || b[len(b)-1] != ']' {
		return nil, false
	}
	n := 0 // the lists: one '[' each after the first
	for _, c := range b[1:] {
		if c == '[' {
			n++
		}
	}
	if n > maxEntryRefs {
		return nil, false
	}
	refs = make([]dirRef, 0, n)
	i := 1
	for {
		if b[i] != '[' {
			return nil, false
		}
		l, j, ok := parseEntryInt(b, i+1)
		if !ok || j >= len(b) || b[j] != ',' || l < 0 || l >= meta.MaxNList {
			return nil, false
		}
		a, k, ok := parseEntryInt(b, j+1)
		if !ok || k+1 >= len(b) || b[k] != ']' {
			return nil, false
		}
		refs = append(refs, dirRef{List: int32(l), Added: a})
		switch {
		case b[k+1] == ']' && k+2 == len(b):
			return refs, true
		case b[k+1] != ',' || k+2 >= len(b):
			return nil, false
		}
		i = k + 2
	}
}

// parseEntryInt reads an integer at b[i:]: an optional '-', then "0" or
// 1..18 digits not starting with 0. It returns the value and where it
// ends.
func parseEntryInt(b []byte, i int) (v int64, end int, ok bool) {
	neg := i < len(b) && b[i] == '-'
	if neg {
		i++
	}
	start := i
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		v = v*10 + int64(b[i]-'0')
		i++
	}
	digits := i - start
	if digits == 0 || digits > 18 || digits > 1 && b[start] == '0' || neg && v == 0 {
		return 0, 0, false
	}
	if neg {
		v = -v
	}
	return v, i, true
}

// dirSettle is how long after a list was added to an entry a prune
// spares it: longer than a write naming it can take to be applied
// anywhere (the gateway's deadline, which the primary checks before it
// applies, plus the primary's replication to its backups or their
// removal from the shard).
func (n *Node) dirSettle() time.Duration {
	return n.opts.CallTimeout + 2*replicaTimeout + 10*time.Second
}

// noteForeign records, on a directory partition, that entries stamped
// by another node were applied here (dirMergeAt). mu is held.
func (c *collection) noteForeign() {
	if c.dir {
		c.dirForeign = true
	}
}

// dirMerge turns a gateway's directory operations (each kept item's Meta
// an entry of the lists to add or remove) into the entries to store, and
// returns each item's entry as it was. mu is held.
func (c *collection) dirMerge(op uint8, items []WriteItem, keep []int) ([][]byte, error) {
	return c.dirMergeAt(op, items, keep, time.Now().UnixMilli())
}

// dirMergeAt is dirMerge at time now (Unix milliseconds).
//
// A prune spares a list until dirSettle has passed since it was last
// added, as this node can tell without trusting another node's clock:
// a list's Added is this node's own stamp when it was added here since
// dirSince; any other stamp (another primary's, before a failover or
// restart, or this node's own from before entries stamped elsewhere
// were applied here) was applied here before dirSince. So now −
// max(Added, dirSince) is at most the real age of the list's last add,
// whatever the clocks of the partition's earlier primaries said. The
// cost: after a failover or a restart a partition prunes nothing for
// dirSettle, and entries name an evicted list a little longer.
func (c *collection) dirMergeAt(op uint8, items []WriteItem, keep []int, now int64) ([][]byte, error) {
	if op != proto.DirAdd && op != proto.DirPrune {
		return nil, fmt.Errorf("%w: directory operation %d", ErrInvalid, op)
	}
	settle := c.n.dirSettle().Milliseconds()
	if c.dirForeign || c.dirSince == 0 {
		c.dirSince, c.dirForeign = now, false
	}
	c.dirMerges++
	users := make([]string, len(keep))
	for j, i := range keep {
		users[j] = items[i].UserID
	}
	may := c.mayHoldLocked(users)
	prior := make([][]byte, len(items))
	for j, i := range keep {
		arg, err := decodeEntry(items[i].Meta)
		if err != nil {
			return nil, fmt.Errorf("items[%d]: %w", i, err)
		}
		var cur []dirRef
		if may == nil || may[j] {
			e, err := c.n.store.Entry(c.meta.Name, users[j])
			switch {
			case err == nil:
				if cur, err = decodeEntry(e.Value); err != nil {
					return nil, fmt.Errorf("stored entry of %q: %w", users[j], err)
				}
				prior[i] = e.Value
			case !errors.Is(err, ErrNoItem):
				return nil, err
			}
		}
		for _, a := range arg {
			at := slices.IndexFunc(cur, func(r dirRef) bool { return r.List == a.List })
			switch {
			case op == proto.DirAdd && at < 0:
				cur = append(cur, dirRef{List: a.List, Added: now})
			case op == proto.DirAdd:
				cur[at].Added = now
			case at >= 0 && now-max(cur[at].Added, c.dirSince) > settle:
				cur = slices.Delete(cur, at, at+1)
			}
		}
		items[i].Meta = encodeEntry(cur)
	}
	return prior, nil
}

// dirItem is the directory item carrying an operation on userID's entry.
func dirItem(userID string, lists ...int32) WriteItem {
	refs := make([]dirRef, len(lists))
	for i, l := range lists {
		refs[i].List = l
	}
	return WriteItem{UserID: userID, Vector: dirVector, Meta: encodeEntry(refs)}
}

// dirVector stands in for a directory item's vector (its collection has
// dim 1).
var dirVector = []float32{0}

// partition returns the index of userID's partition of rt's directory.
func (rt *route) partition(userID string) int { return int(meta.BufferShard(userID, len(rt.dir))) }

// dirWrite sends directory operations (ops[i] on users[i]'s entry, RPCWrite.Dir
// op) to the primaries of their partitions, in parallel, and returns the
// entries as they were and the internal ids of the entries' writes
// (versions: dist.go, "Versions").
func (n *Node) dirWrite(ctx context.Context, rt *route, op uint8, ops []WriteItem) ([][]byte, []uint64, error) {
	byPart := map[int][]int{}
	for i, it := range ops {
		p := rt.partition(it.UserID)
		byPart[p] = append(byPart[p], i)
	}
	prior := make([][]byte, len(ops))
	ids := make([]uint64, len(ops))
	errs := make(chan error, len(byPart))
	for p, idx := range byPart {
		part := make([]WriteItem, len(idx))
		for j, i := range idx {
			part[j] = ops[i]
		}
		go func() {
			w, err := n.distWrite(ctx, rt.dir[p].Name, part, nil, op, nil)
			if err == nil {
				for j, i := range idx {
					ids[i], prior[i] = w.ids[j], w.prior[j]
				}
			}
			errs <- err
		}()
	}
	var first error
	for range byPart {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	if first != nil {
		return nil, nil, fmt.Errorf("id directory: %w", first)
	}
	return prior, ids, nil
}

// dirAdd adds the lists that the items of todo are about to be written
// to (set by groupWrites) to their entries, and merges the lists of each
// item's entry as it was into prior. version, when set, gets each item's
// version: the internal id of its entry's write, under which the item is
// written (dist.go, "Versions").
func (n *Node) dirAdd(ctx context.Context, rt *route, items []WriteItem, todo []int, prior [][]int32, version []uint64) error {
	ops := make([]WriteItem, len(todo))
	for j, i := range todo {
		ops[j] = dirItem(items[i].UserID, items[i].list)
	}
	was, ids, err := n.dirWrite(ctx, rt, proto.DirAdd, ops)
	if err != nil {
		return err
	}
	for j, i := range todo {
		if version != nil {
			version[i] = ids[j]
		}
		refs, err := decodeEntry(was[j])
		if err != nil {
			return fmt.Errorf("id directory entry of %q: %w", items[i].UserID, err)
		}
		for _, r := range refs {
			if !slices.Contains(prior[i], r.List) {
				prior[i] = append(prior[i], r.List)
			}
		}
	}
	return nil
}

// dirPrune removes lists from entries (users[i]'s lists[i]); a failure
// leaves entries naming lists that hold no copy, which costs a later read
// of the id a call, and is only logged.
func (n *Node) dirPrune(ctx context.Context, rt *route, users []string, lists [][]int32) {
	var ops []WriteItem
	for i, u := range users {
		if len(lists[i]) > 0 {
			ops = append(ops, dirItem(u, lists[i]...))
		}
	}
	if len(ops) == 0 {
		return
	}
	if _, _, err := n.dirWrite(ctx, rt, proto.DirPrune, ops); err != nil {
		n.log.Debug("id directory not pruned", "collection", rt.c.Name, "ids", len(ops), "err", err)
	}
}

// dirLookup reads the lists of userID's entry from a replica of its
// partition (this node first, else the primary first), trying the others
// when one fails.
func (n *Node) dirLookup(ctx context.Context, rt *route, userID string) ([]int32, error) {
	d := rt.dir[rt.partition(userID)]
	if len(d.Buffer) != 1 {
		return nil, fmt.Errorf("%w: id directory partition %q has %d shards", ErrUnavailable, d.Name, len(d.Buffer))
	}
	part := d.Buffer[0]
	call := &proto.RPCGet{Collection: d.Name, Epoch: d.Epoch, UserID: userID}
	avoid := map[string]bool{}
	var lastErr error
	for {
		node, ok := rt.pick(part, map[string]int{}, avoid)
		if !ok {
			if lastErr == nil {
				lastErr = fmt.Errorf("%w: no live replica of id directory partition %q", ErrUnavailable, d.Name)
			}
			return nil, lastErr
		}
		avoid[node] = true
		reply, err := n.getAt(ctx, rt, node, call)
		if err == nil {
			if !reply.Found {
				return nil, nil
			}
			return entryLists(reply.Item.Meta)
		}
		lastErr = err
		if ctx.Err() != nil {
			return nil, err
		}
	}
}

// getAt sends call to node: in process when it is this node.
func (n *Node) getAt(ctx context.Context, rt *route, node string, call *proto.RPCGet) (*proto.RPCGetReply, error) {
	if node == rt.self {
		return n.getLocal(call)
	}
	reply := new(proto.RPCGetReply)
	return reply, n.peers.call(ctx, node, proto.OpGet, call, reply)
}

// entryLists decodes an entry into the lists it names.
func entryLists(b []byte) ([]int32, error) {
	refs, err := decodeEntry(b)
	if err != nil {
		return nil, err
	}
	lists := make([]int32, len(refs))
	for i, r := range refs {
		lists[i] = r.List
	}
	return lists, nil
}

// dirLists is dirLookup where the entry can name a list: before
// training writes skip the directory and a copy can only be in the id's
// buffer shard (listedShards adds it), so nothing is read.
func (n *Node) dirLists(ctx context.Context, rt *route, userID string) ([]int32, error) {
	if !rt.trained() {
		return nil, nil
	}
	return n.dirLookup(ctx, rt, userID)
}

// placeKey names a shard of a collection: a list shard, or a buffer
// shard.
type placeKey struct {
	buffer bool
	id     uint32
}

// listedShards returns the shards that may hold a copy of userID whose
// entry names lists: the shards of those lists, and the user id's buffer
// shard while the collection has a buffer. Lists the table does not
// know are skipped.
func (rt *route) listedShards(userID string, lists []int32) map[placeKey]meta.Shard {
	out := map[placeKey]meta.Shard{}
	for _, l := range lists {
		if int(l) < len(rt.c.Shards.ListShard) {
			s := rt.c.Shards.Shards[rt.c.Shards.ListShard[l]]
			out[placeKey{id: s.ID}] = s
		}
	}
	if len(rt.c.Buffer) > 0 {
		s := rt.c.Buffer[meta.BufferShard(userID, len(rt.c.Buffer))]
		out[placeKey{buffer: true, id: s.ID}] = s
	}
	return out
}

// exitBeforeEvict is the failpoint exit-before-evict (package
// failpoint): a test's gateway exits in evictListed after the write.
var exitBeforeEvict = failpoint.Enabled("exit-before-evict")

// evictListed is the eviction after an upsert on a collection with an
// id directory: each item's old copies can only be in the lists its
// entry named before the write (prior), so the eviction goes only to the
// nodes holding those lists' shards (and the buffer shard while there is
// one), none for a new id. Then the lists evicted are pruned from the
// entries.
func (n *Node) evictListed(ctx context.Context, rt *route, items []WriteItem, ids []uint64, applied [][]string, prior [][]int32) error {
	old := make([][]int32, len(items)) // the lists to prune from each entry
	anyOld := false
	for i, it := range items {
		for _, l := range prior[i] {
			if l != it.list {
				old[i] = append(old[i], l)
			}
		}
		anyOld = anyOld || len(old[i]) > 0
	}
	if !anyOld && len(rt.c.Buffer) == 0 {
		return nil
	}
	if anyOld && exitBeforeEvict {
		// A gateway killed here leaves the old copies and the entries
		// naming their lists to the directory sweep (sweep.go).
		n.log.Error("failpoint exit-before-evict: exiting between an upsert's write and its eviction")
		os.Exit(3)
	}
	calls := func(rt *route) map[string]*proto.RPCDelete {
		out := map[string]*proto.RPCDelete{}
		for i, it := range items {
			shards := rt.listedShards(it.UserID, old[i])
			// The new copy's shard holds it instead of the old one (a node
			// keeps one copy per user id).
			if s, ok := rt.shardOf(it.list, it.UserID); ok {
				delete(shards, placeKey{buffer: it.list == BufferList, id: s.ID})
			}
			for _, s := range shards {
				for _, node := range holders(s) {
					call := out[node]
					if call == nil {
						call = &proto.RPCDelete{Collection: rt.c.Name}
						out[node] = call
					}
					if k := len(call.UserIDs); k > 0 && call.UserIDs[k-1] == it.UserID {
						continue // two shards on one node
					}
					call.UserIDs = append(call.UserIDs, it.UserID)
					call.Keep = append(call.Keep, ids[i])
					call.Applied = append(call.Applied, slices.Contains(applied[i], node))
				}
			}
		}
		return out
	}
	if _, err := n.deleteAt(ctx, rt, calls); err != nil {
		return err
	}
	users := make([]string, len(items))
	for i, it := range items {
		users[i] = it.UserID
	}
	n.dirPrune(ctx, rt, users, old)
	return nil
}

// dirDelete deletes userID from a collection with an id directory: from
// the shards its entry names (and its buffer shard while there is one),
// then prunes the entry. It returns the copies one node removed.
//
// Once trained, it first rewrites the entry (a prune of no list: the
// entry as it was, under a new internal id v, above the version of every
// copy written so far, those from before versions included, since a
// partition's primary starts a fresh range of ids), and the delete is an
// eviction that keeps v: it removes every copy so far and a late one,
// but not the copy of an upsert whose entry write came after (its
// version is higher), so a delete and an upsert of one id at once end
// alike on every replica ("Versions" in dist.go).
func (n *Node) dirDelete(ctx context.Context, rt *route, userID string) (int, error) {
	if err := rt.leased(); err != nil {
		return 0, err
	}
	var lists []int32
	var version uint64
	if rt.trained() {
		was, ids, err := n.dirWrite(ctx, rt, proto.DirPrune, []WriteItem{dirItem(userID)})
		if err != nil {
			return 0, err
		}
		if lists, err = entryLists(was[0]); err != nil {
			return 0, fmt.Errorf("id directory entry of %q: %w", userID, err)
		}
		version = ids[0]
	}
	removed, err := n.deleteAt(ctx, rt, listedDeletes(userID, lists, version))
	if err != nil {
		return 0, err
	}
	n.dirPrune(ctx, rt, []string{userID}, [][]int32{lists})
	return removed, nil
}

// listedDeletes is deleteAt's calls for one user id whose entry names
// lists: a delete to every holder of those lists' shards (listedShards),
// keeping the copy of internal id keep and newer ones unless keep is 0.
func listedDeletes(userID string, lists []int32, keep uint64) func(rt *route) map[string]*proto.RPCDelete {
	return func(rt *route) map[string]*proto.RPCDelete {
		out := map[string]*proto.RPCDelete{}
		for _, s := range rt.listedShards(userID, lists) {
			for _, node := range holders(s) {
				call := &proto.RPCDelete{Collection: rt.c.Name, UserIDs: []string{userID}}
				if keep != 0 {
					call.Keep = []uint64{keep}
				}
				out[node] = call
			}
		}
		return out
	}
}

// dirGet reads userID's item from one replica of each shard its entry
// names, all at once (this node for the shards it holds), and returns
// the newest copy found (the highest version). Two copies live side by
// side until an upsert's eviction or the directory sweep removes the
// older (a gateway that died between its write and its eviction), and
// every node must answer the newer one. A replica whose call fails is
// replaced by another of its shard's; a shard that no replica answers
// fails the read, for the copy it holds may be the newest.
func (n *Node) dirGet(ctx context.Context, rt *route, call *proto.RPCGet) (*Item, error) {
	lists, err := n.dirLists(ctx, rt, call.UserID)
	if err != nil {
		return nil, err
	}
	shards := rt.listedShards(call.UserID, lists)
	if len(shards) == 0 {
		return nil, fmt.Errorf("%w: %q", ErrNoItem, call.UserID)
	}
	type answer struct {
		node  string
		reply *proto.RPCGetReply
		err   error
	}
	var newest *proto.RPCItem
	answered := map[placeKey]bool{}
	avoid := map[string]bool{}
	var lastErr error
	for {
		load := map[string]int{}
		on := map[string][]placeKey{} // node → the shards it answers for
		for k, s := range shards {
			if answered[k] {
				continue
			}
			node, ok := rt.pick(s, load, avoid)
			if !ok {
				if lastErr == nil {
					lastErr = fmt.Errorf("%w: no live replica of shard %d of collection %q", ErrUnavailable, s.ID, rt.c.Name)
				}
				return nil, fmt.Errorf("%q: %w", call.UserID, lastErr)
			}
			load[node]++
			on[node] = append(on[node], k)
		}
		if len(on) == 0 {
			break
		}
		answers := make(chan answer, len(on))
		for node := range on {
			go func() {
				r, err := n.getAt(ctx, rt, node, call)
				answers <- answer{node, r, err}
			}()
		}
		for range on {
			a := <-answers
			if a.err != nil {
				if classify(a.err) == callFatal && !errors.Is(a.err, ErrStaleEpoch) && !errors.Is(a.err, ErrNoCollection) && !errors.Is(a.err, ErrClosed) {
					return nil, a.err // a bad request, or the caller gone
				}
				// That replica is behind, going away, out or overloaded:
				// ask another of its shard's.
				avoid[a.node], lastErr = true, a.err
				continue
			}
			for _, k := range on[a.node] {
				answered[k] = true
			}
			if a.reply.Found && (newest == nil || a.reply.Item.ID > newest.ID) {
				newest = &a.reply.Item
			}
		}
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("%q: %w", call.UserID, err)
		}
	}
	if newest == nil {
		return nil, fmt.Errorf("%w: %q", ErrNoItem, call.UserID)
	}
	return itemOf(newest)
}

// A partition's entries live in the store as entries
// (Storage.ApplyEntries), not items: one small record per user id on each
// replica, with nothing in memory (the flat buffer stays empty) and no
// index or write log. Each write of an entry gets a fresh internal id
// (writeAsPrimary), which names that version of it: the copy to a
// joining replica offers and compares those ids as it does items'
// (copy.go).

// applyEntriesLocked commits a partition's kept entries: an empty entry
// is deleted. mu is held.
func (c *collection) applyEntriesLocked(items []WriteItem, ids []uint64, keep []int) (func() error, error) {
	puts := make([]Entry, 0, len(keep))
	var dels []EntryDelete
	for _, i := range keep {
		it := items[i]
		if len(it.Meta) == 0 {
			dels = append(dels, EntryDelete{UserID: it.UserID})
			continue
		}
		if ids[i] == 0 {
			return nil, fmt.Errorf("%w: directory entry of %q without an internal id", ErrInvalid, it.UserID)
		}
		puts = append(puts, Entry{UserID: it.UserID, ID: ids[i], Value: it.Meta})
	}
	return c.storeEntries(puts, dels)
}

// storeEntries commits entries, unless a drop retired the collection
// (ErrNoCollection), and counts them. mu is held.
func (c *collection) storeEntries(puts []Entry, dels []EntryDelete) (func() error, error) {
	c.gate.RLock()
	defer c.gate.RUnlock()
	if c.retired {
		return nil, c.errRetired()
	}
	added, removed, wait, err := c.n.store.ApplyEntries(c.meta.Name, puts, dels)
	if err != nil {
		return nil, err
	}
	c.count.Add(int64(added - removed))
	return wait, nil
}

// deleteEntriesLocked deletes entries (each only while it has the id
// given) and waits for the deletion to be durable. mu is held.
func (c *collection) deleteEntriesLocked(dels []EntryDelete) error {
	for i0 := 0; i0 < len(dels); i0 += 4096 {
		wait, err := c.storeEntries(nil, dels[i0:min(i0+4096, len(dels))])
		if err != nil {
			return err
		}
		if err := wait(); err != nil {
			return err
		}
	}
	return nil
}

// purgeEntriesLocked drops every entry of a partition this node no
// longer holds (purgeUnheld), a part of the entries at a time. mu is
// held.
func (c *collection) purgeEntriesLocked() {
	n, err := c.purgeEntryParts()
	if err != nil {
		c.n.log.Warn("entries of a partition no longer held not dropped", "collection", c.meta.Name, "dropped", n, "err", err)
		return
	}
	c.n.log.Info("dropped entries of a partition no longer held here", "collection", c.meta.Name, "entries", n)
}

// purgeEntryParts deletes the entries of a view of the partition, 4,096
// at a time, and returns how many it deleted. mu is held.
func (c *collection) purgeEntryParts() (int, error) {
	n := 0
	err := eachEntryPart(c.n.store, c.meta.Name, func(part []Entry) error {
		dels := make([]EntryDelete, len(part))
		for i, e := range part {
			dels[i] = EntryDelete{UserID: e.UserID, ID: e.ID}
		}
		if err := c.deleteEntriesLocked(dels); err != nil {
			return err
		}
		n += len(dels)
		return nil
	})
	return n, err
}

// loadEntries opens a partition: it counts the entries, after converting
// the items that builds before 2026-11-27 kept entries as (the entry in
// the item's metadata, a float for a vector) into entries. The entries
// are written before the items are deleted: a crash between leaves both,
// and the next open converts the same items again.
func (c *collection) loadEntries() error {
	st := c.n.store
	var puts []Entry
	var old []uint64
	err := st.Scan(c.meta.Name, func(it Item) error {
		if len(it.Meta) > 0 && it.ID != 0 {
			puts = append(puts, Entry{UserID: it.UserID, ID: it.ID, Value: it.Meta})
		}
		old = append(old, it.ID)
		return nil
	})
	if err != nil {
		return err
	}
	for i0 := 0; i0 < len(puts); i0 += 4096 {
		_, _, wait, err := st.ApplyEntries(c.meta.Name, puts[i0:min(i0+4096, len(puts))], nil)
		if err == nil {
			err = wait()
		}
		if err != nil {
			return fmt.Errorf("converting directory items to entries: %w", err)
		}
	}
	for i0 := 0; i0 < len(old); i0 += 4096 {
		if _, err := st.Apply(&Batch{Collection: c.meta.Name, Dim: c.meta.Dim, DeleteIDs: old[i0:min(i0+4096, len(old))]}); err != nil {
			return fmt.Errorf("converting directory items to entries: %w", err)
		}
	}
	if len(old) > 0 {
		// The partition's write log named those items; nothing reads it
		// now (entries are not logged), and an untrained collection's
		// log was never truncated.
		if ld, ok := st.(logDropper); ok {
			if err := ld.DropLog(c.meta.Name); err != nil {
				return fmt.Errorf("converting directory items to entries: the old write log: %w", err)
			}
		}
		c.n.log.Info("converted the id directory's items to entries", "collection", c.meta.Name, "entries", len(puts))
	}
	var n int64
	if err := eachEntry(st, c.meta.Name, func(Entry) error { n++; return nil }); err != nil {
		return err
	}
	c.count.Store(n)
	c.buf.Store(newFlatBuffer(c.meta.Dim, c.meta.Metric))
	c.state.Store(uint32(Untrained))
	return nil
}

// logDropper is a Storage that can delete a collection's whole write log
// (PebbleStorage).
type logDropper interface {
	DropLog(coll string) error
}

// stored returns the live copy of a user id stored here: a partition's
// entry comes back as an item of its buffer shard, the entry in Meta
// (getLocal, localShard.Get).
func (c *collection) stored(userID string) (Item, error) {
	if !c.dir {
		return c.n.store.Get(c.meta.Name, userID)
	}
	e, err := c.n.store.Entry(c.meta.Name, userID)
	if err != nil {
		return Item{}, err
	}
	return Item{ID: e.ID, UserID: e.UserID, List: BufferList, Vector: dirVector, Meta: e.Value}, nil
}

// readEntries reads the entries of ids (users[i]: the user id of ids[i])
// for a copy, leaving out those replaced or deleted since the snapshot
// (the stream carries what replaced them).
func (c *collection) readEntries(ids []uint64, users []string) ([]proto.RPCItem, error) {
	out := make([]proto.RPCItem, 0, len(ids))
	for i, id := range ids {
		e, err := c.n.store.Entry(c.meta.Name, users[i])
		if errors.Is(err, ErrNoItem) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if e.ID != id {
			continue
		}
		out = append(out, proto.RPCItem{UserID: e.UserID, ID: id, List: BufferList, Vector: proto.PackVector(dirVector), Meta: e.Value})
	}
	return out, nil
}

// beginEntryCopy is beginCopy on a partition: the entries stored here
// are the ids held. Only their internal ids are kept (8 bytes an entry):
// an offer names each id's user id, and endCopy finds the user ids of
// the versions it drops by reading the entries once more.
func (c *collection) beginEntryCopy(key shardKey) (int, error) {
	var ids []uint64
	if err := eachEntry(c.n.store, c.meta.Name, func(e Entry) error { ids = append(ids, e.ID); return nil }); err != nil {
		return 0, err
	}
	slices.Sort(ids)
	c.mu.Lock()
	defer c.mu.Unlock()
	in := &inCopy{touched: map[string]bool{}, unindexed: map[uint64]bool{},
		held: ids, offered: make([]bool, len(ids))}
	if c.incoming == nil {
		c.incoming = map[shardKey]*inCopy{}
	}
	c.incoming[key] = in
	return len(ids), nil
}

// heldEntry checks that userID's entry is still stored in version id:
// an error wrapping ErrNoItem when not.
func (c *collection) heldEntry(userID string, id uint64) error {
	e, err := c.n.store.Entry(c.meta.Name, userID)
	if err != nil {
		return err
	}
	if e.ID != id {
		return fmt.Errorf("%w: entry of %q replaced", ErrNoItem, e.UserID)
	}
	return nil
}
