package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
)

// Result says what Apply did.
type Result struct {
	// Seq is the log sequence number of the batch, or the shard's last
	// sequence unchanged when the batch changed nothing.
	Seq uint64
	// Ops are the operations applied, as logged: an upsert of an existing
	// user id appears as the delete of its old copy, then the put; a move
	// as the delete from the old list, then the put in the new one. The
	// node applies these to its in-memory lists (Replay).
	Ops []Op
	// NotFound lists the indexes of the batch's Delete, DeleteID and Move
	// operations whose target was absent (they did nothing).
	NotFound []int
}

// Apply validates b whole, resolves upserts, deletes and moves through the
// id directory and the id index, and commits the items, directory entries
// and the shard's next log record in one synced Pebble batch. On any error
// nothing is stored.
func (s *Store) Apply(ctx context.Context, b *Batch) (Result, error) {
	res, wait, err := s.ApplyAsync(ctx, b)
	if err != nil {
		return Result{}, err
	}
	if err := wait(); err != nil {
		return Result{}, err
	}
	return res, nil
}

// ApplyAsync is Apply in two steps, for callers that order their own
// in-memory state by commit order without holding a lock across the disk
// sync: it returns once the batch has entered Pebble's commit pipeline
// (its place in the log is fixed and it is visible to readers), and wait
// blocks until it is durable. The batch is acknowledged only when wait
// returns nil. The caller must call wait exactly once; an error from it
// poisons the store, as a failed sync does in Apply.
func (s *Store) ApplyAsync(ctx context.Context, b *Batch) (Result, func() error, error) {
	if err := b.validate(&s.opts); err != nil {
		return Result{}, nil, err
	}
	var res Result
	var pb *pebble.Batch
	s.writeMu.Lock()
	err := s.read(func() error {
		if s.failed != nil {
			return s.failed
		}
		st, err := s.shardState(b.coll, b.shard)
		if err != nil {
			return err
		}
		ids, ok := s.idSets[b.coll]
		if !ok {
			if ids, err = s.loadIDSet(b.coll); err != nil {
				return fmt.Errorf("store: collection %d id index: %w", b.coll, err)
			}
			s.idSets[b.coll] = ids
		}
		// Sized for the batch up front: growing a batch of 1,000 vectors
		// step by step copied it over and over.
		pb = s.db.NewBatchWithSize(b.sizeHint())
		users := s.userSetLocked(b.coll)
		r := &resolver{s: s, coll: b.coll, pb: pb, ids: ids, users: users, byUser: map[string]loc{}, byID: map[uint64]*Item{}}
		defer r.close()
		for i := range b.ops {
			found, err := r.op(i, &b.ops[i])
			if err != nil {
				return err
			}
			if !found {
				res.NotFound = append(res.NotFound, i)
			}
		}
		res.Ops = r.ops
		res.Seq = st.last
		if len(r.ops) == 0 {
			return nil
		}
		seq := st.last + 1
		_ = pb.Set(logKey(b.coll, b.shard, seq), encodeRecord(r.ops), nil)
		_ = pb.Set(shardKey(b.coll, b.shard), encodeShardState(seq, st.truncated), nil)
		if err := ctx.Err(); err != nil {
			return err
		}
		// Enter Pebble's commit pipeline in sequence order under the lock;
		// wait for the WAL sync outside it, so that concurrent Applies share
		// fsyncs (group commit). Like every Pebble write, the batch is
		// visible to readers from here, before it is durable; it is
		// acknowledged (Apply returns) only after the sync.
		if err := s.db.ApplyNoSyncWait(pb, pebble.Sync); err != nil {
			s.failed = fmt.Errorf("store: commit: %w", err)
			return s.failed
		}
		st.last = seq
		res.Seq = seq
		ids.add(r.written)
		users.addedLocked(r.putUsers)
		return nil
	})
	s.writeMu.Unlock()
	if err != nil {
		if pb != nil {
			_ = pb.Close()
		}
		return Result{}, nil, err
	}
	if len(res.Ops) == 0 {
		_ = pb.Close()
		return res, func() error { return nil }, nil
	}
	return res, s.syncWait(pb), nil
}

// syncWait returns the wait of a batch that entered Pebble's commit
// pipeline: it blocks until the batch is durable and closes it; a failed
// sync poisons the store.
func (s *Store) syncWait(pb *pebble.Batch) func() error {
	return func() error {
		defer pb.Close()
		if err := pb.SyncWait(); err != nil {
			s.writeMu.Lock()
			defer s.writeMu.Unlock()
			s.failed = fmt.Errorf("store: commit: WAL sync: %w", err)
			return s.failed
		}
		return nil
	}
}

// loc is where a user id's item is (or is not).
type loc struct {
	list    uint32
	id      uint64
	present bool
}

// resolver turns a batch's operations into Pebble writes and logged ops,
// reading the store through overlays of what the batch did so far.
type resolver struct {
	s      *Store
	coll   uint32
	pb     *pebble.Batch
	byUser map[string]loc   // user id → location, as of the ops so far
	byID   map[uint64]*Item // internal id → item (nil: absent), as of the ops so far
	ops    []Op
	// ids says which internal ids are free without a lookup; written
	// collects the ids the batch puts in the id index, for it.
	ids     *idSet
	written []uint64
	// users says which user ids are not in the directory; putUsers
	// collects the user ids the batch puts, for it.
	users    *userSet
	putUsers []string
	// Iterators over the collection's directory and id index: a SeekGE on
	// a reused iterator costs less than a Get, and writeMu keeps what they
	// see current (the batch's own writes are in the overlays).
	dirIt, idIt *pebble.Iterator
}

func (r *resolver) close() {
	if r.dirIt != nil {
		_ = r.dirIt.Close()
	}
	if r.idIt != nil {
		_ = r.idIt.Close()
	}
}

// seek returns a copy of the value at key through a lazily created
// iterator over the prefix typ|coll, or ErrNotFound.
func (r *resolver) seek(it **pebble.Iterator, typ byte, key []byte) ([]byte, error) {
	if *it == nil {
		p := collPrefix(typ, r.coll)
		i, err := r.s.db.NewIter(&pebble.IterOptions{LowerBound: p, UpperBound: prefixEnd(p)})
		if err != nil {
			return nil, err
		}
		*it = i
	}
	i := *it
	if !i.SeekGE(key) || !bytes.Equal(i.Key(), key) {
		if err := i.Error(); err != nil {
			return nil, err
		}
		return nil, ErrNotFound
	}
	v, err := i.ValueAndErr()
	if err != nil {
		return nil, err
	}
	return append([]byte(nil), v...), nil
}

func (r *resolver) user(userID string) (loc, error) {
	if l, ok := r.byUser[userID]; ok {
		return l, nil
	}
	// What the directory holds is the state as of the ops so far until an
	// op changes it, so the answer is kept: an upsert asks twice (for the
	// put, then for the delete of the old copy). A user id the filter has
	// never seen is not read.
	if r.users.absent(userID) {
		r.byUser[userID] = loc{}
		return loc{}, nil
	}
	v, err := r.seek(&r.dirIt, recDir, dirKey(r.coll, userID))
	if errors.Is(err, ErrNotFound) {
		r.byUser[userID] = loc{}
		return loc{}, nil
	}
	if err != nil {
		return loc{}, err
	}
	list, id, err := decodeLoc(v)
	if err != nil {
		return loc{}, fmt.Errorf("store: directory entry %q: %w", userID, err)
	}
	l := loc{list: list, id: id, present: true}
	r.byUser[userID] = l
	return l, nil
}

func (r *resolver) id(id uint64) (*Item, error) {
	if it, ok := r.byID[id]; ok {
		return it, nil
	}
	v, err := r.seek(&r.idIt, recID, idKey(r.coll, id))
	if errors.Is(err, ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	e, err := decodeIDEntry(v)
	if err != nil {
		return nil, fmt.Errorf("store: id entry %d: %w", id, err)
	}
	list := e.list
	it, err := r.s.item(r.coll, list, id)
	if errors.Is(err, ErrNotFound) {
		return nil, fmt.Errorf("%w: id index names item %d in list %d, which is absent", ErrCorrupt, id, list)
	}
	if err != nil {
		return nil, err
	}
	return &it, nil
}

// heldID is id, but answers nil without a read for an id that the idSet
// knows to be free and that the batch has not written.
func (r *resolver) heldID(id uint64) (*Item, error) {
	if _, ok := r.byID[id]; !ok && r.ids.free(id) {
		return nil, nil
	}
	return r.id(id)
}

// named returns the item that the directory entry l of userID names. It
// reads nothing unless the batch touched that internal id: the directory
// entry holds the list and the internal id, which is all that deleting
// the item and logging the delete take, so an upsert or delete by user id
// does not fetch the old vector.
func (r *resolver) named(userID string, l loc) (*Item, error) {
	if it, ok := r.byID[l.id]; ok {
		if it == nil {
			return nil, fmt.Errorf("%w: directory names internal id %d for %q, which is absent", ErrCorrupt, l.id, userID)
		}
		return it, nil
	}
	return &Item{UserID: userID, List: l.list, ID: l.id}, nil
}

// del removes a stored item, and its directory entry if that still names
// it, and its attachment unless the item is moving (a move keeps the
// internal id, under which the attachment stays).
func (r *resolver) del(it *Item, moving bool) error {
	r.ops = append(r.ops, Op{Kind: OpDelete, Item: Item{UserID: it.UserID, List: it.List, ID: it.ID}})
	_ = r.pb.Delete(itemKey(r.coll, it.List, it.ID), nil)
	_ = r.pb.Delete(idKey(r.coll, it.ID), nil)
	if !moving {
		_ = r.pb.Delete(attachKey(r.coll, it.ID), nil)
	}
	r.byID[it.ID] = nil
	u, err := r.user(it.UserID)
	if err != nil {
		return err
	}
	if u.present && u.id == it.ID {
		_ = r.pb.Delete(dirKey(r.coll, it.UserID), nil)
		r.byUser[it.UserID] = loc{}
	}
	return nil
}

func (r *resolver) put(it *Item) {
	r.ops = append(r.ops, Op{Kind: OpPut, Item: *it})
	_ = r.pb.Set(itemKey(r.coll, it.List, it.ID), encodeItem(it), nil)
	if len(it.Attachment) > 0 {
		_ = r.pb.Set(attachKey(r.coll, it.ID), it.Attachment, nil)
	}
	_ = r.pb.Set(idKey(r.coll, it.ID), encodeIDEntry(it), nil)
	r.written = append(r.written, it.ID)
	r.putUsers = append(r.putUsers, it.UserID)
	_ = r.pb.Set(dirKey(r.coll, it.UserID), encodeLoc(it.List, it.ID), nil)
	r.byUser[it.UserID] = loc{list: it.List, id: it.ID, present: true}
	r.byID[it.ID] = it
}

// op resolves operation i and reports whether its target existed (always
// true for puts).
func (r *resolver) op(i int, op *Op) (bool, error) {
	it := &op.Item
	switch op.Kind {
	case OpPut:
		prev, err := r.user(it.UserID)
		if err != nil {
			return false, err
		}
		if prev.present {
			old, err := r.named(it.UserID, prev)
			if err != nil {
				return false, err
			}
			if err := r.del(old, false); err != nil {
				return false, err
			}
		}
		held, err := r.heldID(it.ID)
		if err != nil {
			return false, err
		}
		if held != nil {
			return false, fmt.Errorf("%w: op %d: internal id %d is held by user id %q", ErrInvalid, i, it.ID, held.UserID)
		}
		r.put(it)
		return true, nil
	case OpDelete:
		var target *Item
		if it.UserID != "" {
			u, err := r.user(it.UserID)
			if err != nil || !u.present {
				return false, err
			}
			if target, err = r.named(it.UserID, u); err != nil {
				return false, err
			}
		} else {
			var err error
			if target, err = r.id(it.ID); err != nil || target == nil {
				return false, err
			}
		}
		return true, r.del(target, false)
	case opMove:
		cur, err := r.id(it.ID)
		if err != nil || cur == nil {
			return false, err
		}
		if cur.List == it.List {
			return true, nil
		}
		moved := *cur
		moved.List = it.List
		if err := r.del(cur, true); err != nil {
			return false, err
		}
		// The directory entry goes with the item when it named it.
		u, err := r.user(moved.UserID)
		if err != nil {
			return false, err
		}
		if u.present {
			// Another item took the user id earlier in this batch: move
			// the item without its directory entry.
			r.ops = append(r.ops, Op{Kind: OpPut, Item: moved})
			_ = r.pb.Set(itemKey(r.coll, moved.List, moved.ID), encodeItem(&moved), nil)
			_ = r.pb.Set(idKey(r.coll, moved.ID), encodeIDEntry(&moved), nil)
			r.written = append(r.written, moved.ID)
			r.byID[moved.ID] = &moved
			return true, nil
		}
		r.put(&moved)
		return true, nil
	}
	return false, fmt.Errorf("%w: op %d: unknown kind %d", ErrInvalid, i, op.Kind)
}
