package node

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"

	"lookalike/ivf"
	"lookalike/node/store"
)

// PebbleStorage is Storage over node/store (Pebble). A collection's store
// number is the FNV-32a hash of its name; on one node every collection is
// one shard, number 0, whose write log covers all its batches.
//
// node/store has no read by internal id, which a search needs to name its
// hits; until it grows one, PebbleStorage keeps each collection's internal
// id → user id map in memory (with a bit saying whether the item has
// metadata, so hits without metadata need no read), built by a scan when
// the collection is first read and kept up to date by Apply.
type PebbleStorage struct {
	s   *store.Store
	dir string

	mu    sync.Mutex
	users map[uint32]map[uint64]userRef // nil entry: not loaded yet

	saveMu sync.Mutex
	saved  map[uint32]uint64 // the checkpoint of the last save, per collection

	numMu sync.Mutex
	nums  map[string]uint32 // collection name → store number
}

// userRef is what PebbleStorage keeps in memory of an item: its user id,
// and whether it has metadata (if not, naming a hit reads nothing).
type userRef struct {
	id      string
	hasMeta bool
}

// OpenPebble opens (creating if needed) the store in dir.
func OpenPebble(dir string, o store.Options) (*PebbleStorage, error) {
	s, err := store.Open(dir, o)
	if err != nil {
		return nil, err
	}
	return &PebbleStorage{s: s, dir: dir, users: map[uint32]map[uint64]userRef{}, saved: map[uint32]uint64{}, nums: map[string]uint32{}}, nil
}

// Store returns the underlying store.
func (p *PebbleStorage) Store() *store.Store { return p.s }

// CollectionNumber is the store's number of a collection name
// (store.CollectionID: assigned on first use, persisted, never reused, so
// a collection dropped and created again starts from nothing).
func (p *PebbleStorage) CollectionNumber(name string) (uint32, error) {
	p.numMu.Lock()
	defer p.numMu.Unlock()
	if c, ok := p.nums[name]; ok {
		return c, nil
	}
	c, err := p.s.CollectionID(context.Background(), name)
	if err != nil {
		return 0, storeErr(err)
	}
	p.nums[name] = c
	return c, nil
}

func toStoreList(l int32) uint32 {
	if l == BufferList {
		return store.BufferList(0)
	}
	return uint32(l)
}

func fromStoreList(l uint32) int32 {
	if store.IsBufferList(l) {
		return BufferList
	}
	return int32(l)
}

func fromStoreItem(it store.Item) Item {
	return Item{ID: it.ID, UserID: it.UserID, List: fromStoreList(it.List), Vector: it.Vector, Meta: it.Meta}
}

func storeErr(err error) error {
	switch {
	case errors.Is(err, store.ErrNotFound):
		return fmt.Errorf("%w: %v", ErrNoItem, err)
	case errors.Is(err, store.ErrInvalid):
		return fmt.Errorf("%w: %v", ErrInvalid, err)
	case errors.Is(err, store.ErrClosed):
		return fmt.Errorf("%w: %v", ErrClosed, err)
	}
	return err
}

// Apply implements Storage.
func (p *PebbleStorage) Apply(b *Batch) ([]Removed, error) {
	removed, wait, err := p.ApplyAsync(b)
	if err != nil {
		return nil, err
	}
	if err := wait(); err != nil {
		return nil, err
	}
	return removed, nil
}

// ApplyAsync implements AsyncStorage: the batch's place in the log is
// fixed and it is visible when it returns; wait says when it is durable.
func (p *PebbleStorage) ApplyAsync(b *Batch) ([]Removed, func() error, error) {
	coll, err := p.CollectionNumber(b.Collection)
	if err != nil {
		return nil, nil, err
	}
	sb := store.NewBatch(coll, 0, b.Dim)
	for _, it := range b.Puts {
		sb.Put(store.Item{UserID: it.UserID, ID: it.ID, List: toStoreList(it.List), Vector: it.Vector, Meta: it.Meta, Attachment: it.Attachment})
	}
	for _, u := range b.Deletes {
		sb.Delete(u)
	}
	for _, m := range b.Moves {
		sb.Move(m.ID, toStoreList(m.List))
	}
	if sb.Len() == 0 {
		return nil, func() error { return nil }, nil
	}
	if err := p.loadUsers(coll); err != nil {
		return nil, nil, err
	}
	res, wait, err := p.s.ApplyAsync(context.Background(), sb)
	if err != nil {
		return nil, nil, storeErr(err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	users := p.users[coll]
	var removed []Removed
	for _, op := range res.Ops {
		switch op.Kind {
		case store.OpDelete:
			removed = append(removed, Removed{ID: op.Item.ID, List: fromStoreList(op.Item.List)})
			delete(users, op.Item.ID)
		case store.OpPut:
			users[op.Item.ID] = userRef{op.Item.UserID, len(op.Item.Meta) > 0}
		}
	}
	return removed, func() error { return storeErr(wait()) }, nil
}

// loadUsers builds the id → user id map of coll once.
func (p *PebbleStorage) loadUsers(coll uint32) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.users[coll] != nil {
		return nil
	}
	m := map[uint64]userRef{}
	err := p.scan(coll, func(it store.Item) error {
		m[it.ID] = userRef{it.UserID, len(it.Meta) > 0}
		return nil
	})
	if err != nil {
		return err
	}
	p.users[coll] = m
	return nil
}

func (p *PebbleStorage) scan(coll uint32, fn func(store.Item) error) error {
	ctx := context.Background()
	lists, err := p.s.Lists(ctx, coll)
	if err != nil {
		return err
	}
	for _, l := range lists {
		if err := p.s.ScanList(ctx, coll, l, fn); err != nil {
			return err
		}
	}
	return nil
}

// Get implements Storage.
func (p *PebbleStorage) Get(coll, userID string) (Item, error) {
	c, err := p.CollectionNumber(coll)
	if err != nil {
		return Item{}, err
	}
	it, err := p.s.GetByUserID(context.Background(), c, userID)
	if err != nil {
		return Item{}, fmt.Errorf("%q: %w", userID, storeErr(err))
	}
	return fromStoreItem(it), nil
}

// Item implements Storage.
func (p *PebbleStorage) Item(coll string, id uint64) (Item, error) {
	c, err := p.CollectionNumber(coll)
	if err != nil {
		return Item{}, err
	}
	if err := p.loadUsers(c); err != nil {
		return Item{}, err
	}
	p.mu.Lock()
	u, ok := p.users[c][id]
	p.mu.Unlock()
	if !ok {
		return Item{}, fmt.Errorf("%w: internal id %d", ErrNoItem, id)
	}
	if !u.hasMeta {
		return Item{ID: id, UserID: u.id, List: BufferList}, nil // List unknown here; callers of Item use the id and metadata
	}
	it, err := p.Get(coll, u.id)
	if err != nil {
		return Item{}, err
	}
	if it.ID != id {
		return Item{}, fmt.Errorf("%w: internal id %d was replaced", ErrNoItem, id)
	}
	return it, nil
}

// Vectors implements Storage.
func (p *PebbleStorage) Vectors(coll string, ids []uint64, dst []float32) error {
	c, err := p.CollectionNumber(coll)
	if err != nil {
		return err
	}
	return storeErr(p.s.Source(c).Vectors(ids, dst))
}

// Scan implements Storage.
func (p *PebbleStorage) Scan(coll string, fn func(Item) error) error {
	c, err := p.CollectionNumber(coll)
	if err != nil {
		return err
	}
	m := map[uint64]userRef{}
	err = p.scan(c, func(it store.Item) error {
		m[it.ID] = userRef{it.UserID, len(it.Meta) > 0}
		return fn(fromStoreItem(it))
	})
	if err != nil {
		return err
	}
	p.mu.Lock()
	if p.users[c] == nil {
		p.users[c] = m
	}
	p.mu.Unlock()
	return nil
}

// Drop implements Storage.
func (p *PebbleStorage) Drop(coll string) error {
	c, err := p.CollectionNumber(coll)
	if err != nil {
		return err
	}
	p.mu.Lock()
	delete(p.users, c)
	p.mu.Unlock()
	p.saveMu.Lock()
	delete(p.saved, c)
	p.saveMu.Unlock()
	if err := os.Remove(usersPath(p.dir, c)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if err := p.s.DropCollection(context.Background(), c); err != nil {
		return err
	}
	p.numMu.Lock()
	delete(p.nums, coll) // the store forgot the name: the next use gets a new number
	p.numMu.Unlock()
	return nil
}

// SaveIndex implements Storage.
func (p *PebbleStorage) SaveIndex(coll string, ix *ivf.Index) error {
	cp, err := p.Checkpoint(coll)
	if err != nil {
		return err
	}
	return p.SaveIndexAt(coll, ix, cp)
}

// Checkpoint implements Storage: the shard's last log sequence.
func (p *PebbleStorage) Checkpoint(coll string) (uint64, error) {
	c, err := p.CollectionNumber(coll)
	if err != nil {
		return 0, err
	}
	last, _, err := p.s.LastSeq(c, 0)
	return last, err
}

// SaveIndexAt implements Storage: the users file and the index, both as
// of cp, then the log through cp is truncated.
func (p *PebbleStorage) SaveIndexAt(coll string, ix *ivf.Index, cp uint64) error {
	c, err := p.CollectionNumber(coll)
	if err != nil {
		return err
	}
	p.saveMu.Lock()
	defer p.saveMu.Unlock()
	if done, ok := p.saved[c]; ok && cp <= done {
		return nil // a newer save is in force
	}
	if err := p.loadUsers(c); err != nil {
		return err
	}
	// The map may be newer than cp: replaying the log after cp onto it
	// ends in the same state (puts and deletes replay in order).
	p.mu.Lock()
	err = writeUsers(p.dir, c, cp, p.users[c])
	p.mu.Unlock()
	if err != nil {
		return fmt.Errorf("node: save users of %q: %w", coll, err)
	}
	ctx := context.Background()
	if err := p.s.SaveIndex(ctx, c, ix, store.Seqs{0: cp}); err != nil {
		return err
	}
	p.saved[c] = cp
	// The saved index holds every batch through cp: a restart replays
	// only what follows, so the log before it can go. (With replicas, the
	// cluster issue keeps what lagging backups still need.)
	return p.s.TruncateLog(ctx, c, 0, cp)
}

// LoadIndex implements Storage: the saved index, then the log after it.
func (p *PebbleStorage) LoadIndex(coll string, opts ivf.Options) (*ivf.Index, error) {
	c, err := p.CollectionNumber(coll)
	if err != nil {
		return nil, err
	}
	ctx := context.Background()
	ix, covered, err := p.s.LoadIndex(ctx, c, opts)
	if errors.Is(err, store.ErrNoIndex) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	// The users file saved with this index, if it matches, spares a scan.
	var users map[uint64]userRef
	if seq, m, err := readUsers(p.dir, c); err == nil && seq == covered[0] {
		users = m
	}
	err = p.s.ScanLog(ctx, c, 0, covered[0]+1, func(r store.Record) error {
		if users != nil {
			ops := make([]storeOp, len(r.Ops))
			for i, op := range r.Ops {
				ops[i] = storeOp{put: op.Kind == store.OpPut, id: op.Item.ID, user: op.Item.UserID, hasMeta: len(op.Item.Meta) > 0}
			}
			applyUserOps(users, ops)
		}
		return store.Replay(ix, r.Ops)
	})
	if err != nil {
		return nil, fmt.Errorf("replay the log after the saved index: %w", err)
	}
	if users != nil {
		p.mu.Lock()
		p.users[c] = users
		p.mu.Unlock()
		return ix, nil
	}
	return ix, p.loadUsers(c)
}

// Close implements Storage.
func (p *PebbleStorage) Close() error { return p.s.Close() }

// Stats implements StorageStats with Pebble's figures.
func (p *PebbleStorage) Stats() map[string]float64 {
	m, err := p.s.Metrics()
	if err != nil {
		return nil
	}
	return map[string]float64{
		"disk_bytes": float64(m.DiskBytes), "wal_bytes": float64(m.WALBytes), "memtable_bytes": float64(m.MemTableBytes),
		"tables": float64(m.Tables), "l0_tables": float64(m.L0Tables), "read_amp": float64(m.ReadAmp),
		"compactions_total": float64(m.Compactions), "flushes_total": float64(m.Flushes),
		"cache_hits_total": float64(m.CacheHits), "cache_misses_total": float64(m.CacheMisses),
	}
}
