package node

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"lookalike/ivf"
	"lookalike/node/store"
)

// PebbleStorage is Storage over node/store (Pebble). A collection's store
// number is assigned by the store on its first write (CollectionNumber);
// reads look it up and find nothing when it has none (lookup). Every
// collection is one store shard, number 0, whose write log covers all its
// batches.
//
// A search names its hits with store.ItemByID (the id index, then the
// item): the node keeps nothing per item in memory beside the codes.
type PebbleStorage struct {
	s   *store.Store
	dir string

	saveMu sync.Mutex
	saved  map[uint32]uint64 // the checkpoint of the last save, per collection

	numMu sync.Mutex
	nums  map[string]uint32 // collection name → store number
}

// OpenPebble opens (creating if needed) the store in dir.
func OpenPebble(dir string, o store.Options) (*PebbleStorage, error) {
	s, err := store.Open(dir, o)
	if err != nil {
		return nil, err
	}
	// Builds before this one kept an id → user id map per collection in
	// DIR/users; nothing reads it now.
	if err := os.RemoveAll(filepath.Join(dir, "users")); err != nil {
		_ = s.Close()
		return nil, err
	}
	return &PebbleStorage{s: s, dir: dir, saved: map[uint32]uint64{}, nums: map[string]uint32{}}, nil
}

// Store returns the underlying store.
func (p *PebbleStorage) Store() *store.Store { return p.s }

// CollectionNumber is the store's number of a collection name
// (store.CollectionID: assigned on first use, persisted, never reused, so
// a collection dropped and created again starts from nothing).
func (p *PebbleStorage) CollectionNumber(name string) (uint32, error) {
	c, _, err := p.number(name, true)
	return c, err
}

// lookup is the store's number of a collection name when it has one;
// ok is false when nothing is stored under the name (never written, or
// dropped since). It assigns nothing: a read of an unknown or dropped
// name must not write a number for it.
func (p *PebbleStorage) lookup(name string) (c uint32, ok bool, err error) {
	return p.number(name, false)
}

// number is the store's number of a collection name, from the cache or
// the store; assign gives the name one when it has none
// (store.CollectionID), else ok is false then (store.LookupCollection).
func (p *PebbleStorage) number(name string, assign bool) (c uint32, ok bool, err error) {
	p.numMu.Lock()
	defer p.numMu.Unlock()
	if c, ok := p.nums[name]; ok {
		return c, true, nil
	}
	if assign {
		c, err = p.s.CollectionID(context.Background(), name)
		ok = err == nil
	} else {
		c, ok, err = p.s.LookupCollection(name)
	}
	if err != nil {
		return 0, false, storeErr(err)
	}
	if ok {
		p.nums[name] = c
	}
	return c, ok, nil
}

// errNoCollectionData is what a read of one item finds under a name the
// store holds nothing of.
func errNoCollectionData(coll string) error {
	return fmt.Errorf("%w: nothing stored for collection %q", ErrNoItem, coll)
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
	for _, id := range b.DeleteIDs {
		sb.DeleteID(id)
	}
	for _, m := range b.Moves {
		sb.Move(m.ID, toStoreList(m.List))
	}
	if sb.Len() == 0 {
		return nil, func() error { return nil }, nil
	}
	res, wait, err := p.s.ApplyAsync(context.Background(), sb)
	if err != nil {
		return nil, nil, storeErr(err)
	}
	var removed []Removed
	for _, op := range res.Ops {
		if op.Kind == store.OpDelete {
			removed = append(removed, Removed{ID: op.Item.ID, List: fromStoreList(op.Item.List)})
		}
	}
	return removed, func() error { return storeErr(wait()) }, nil
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
	c, ok, err := p.lookup(coll)
	if err != nil {
		return Item{}, err
	}
	if !ok {
		return Item{}, fmt.Errorf("%q: %w", userID, errNoCollectionData(coll))
	}
	it, err := p.s.GetByUserID(context.Background(), c, userID)
	if err != nil {
		return Item{}, fmt.Errorf("%q: %w", userID, storeErr(err))
	}
	return fromStoreItem(it), nil
}

// ApplyEntries implements Storage.
func (p *PebbleStorage) ApplyEntries(coll string, puts []Entry, dels []EntryDelete) (int, int, func() error, error) {
	c, err := p.CollectionNumber(coll)
	if err != nil {
		return 0, 0, nil, err
	}
	sp := make([]store.Entry, len(puts))
	for i, e := range puts {
		sp[i] = store.Entry(e)
	}
	sd := make([]store.EntryDelete, len(dels))
	for i, d := range dels {
		sd[i] = store.EntryDelete(d)
	}
	res, wait, err := p.s.ApplyEntries(context.Background(), c, sp, sd)
	if err != nil {
		return 0, 0, nil, storeErr(err)
	}
	return res.Added, res.Removed, func() error { return storeErr(wait()) }, nil
}

// Entry implements Storage.
func (p *PebbleStorage) Entry(coll, userID string) (Entry, error) {
	c, ok, err := p.lookup(coll)
	if err != nil {
		return Entry{}, err
	}
	if !ok {
		return Entry{}, fmt.Errorf("%q: %w", userID, errNoCollectionData(coll))
	}
	e, err := p.s.GetEntry(context.Background(), c, userID)
	if err != nil {
		return Entry{}, fmt.Errorf("%q: %w", userID, storeErr(err))
	}
	return Entry(e), nil
}

// OpenEntries implements Storage.
func (p *PebbleStorage) OpenEntries(coll string) (EntryView, error) {
	c, ok, err := p.lookup(coll)
	if err != nil {
		return nil, err
	}
	if !ok {
		return noEntries{}, nil // nothing stored under the name
	}
	v, err := p.s.OpenEntries(c)
	if err != nil {
		return nil, storeErr(err)
	}
	return pebbleEntries{v}, nil
}

type pebbleEntries struct{ v *store.EntryView }

func (e pebbleEntries) Next(n int) ([]Entry, error) {
	part, err := e.v.Next(n)
	if err != nil {
		return nil, storeErr(err)
	}
	out := make([]Entry, len(part))
	for i, se := range part {
		out[i] = Entry(se)
	}
	return out, nil
}

func (e pebbleEntries) Close() { e.v.Close() }

// noEntries is the view of a name with nothing stored.
type noEntries struct{}

func (noEntries) Next(int) ([]Entry, error) { return nil, nil }
func (noEntries) Close()                    {}

// MayHoldUsers reports, per user id, whether the collection may hold it
// here (false is certain), from the store's filter of its directory; ok
// is false until that filter is built (store.MayHoldUsers).
func (p *PebbleStorage) MayHoldUsers(coll string, users []string) ([]bool, bool) {
	c, ok, err := p.lookup(coll)
	if err != nil {
		return nil, false
	}
	if !ok { // nothing stored under the name: certainly none of them
		return make([]bool, len(users)), true
	}
	return p.s.MayHoldUsers(c, users)
}

// Locate returns the internal id and list of a user id's live item
// (the directory entry only), or an error wrapping ErrNoItem.
func (p *PebbleStorage) Locate(coll, userID string) (uint64, int32, error) {
	c, ok, err := p.lookup(coll)
	if err != nil {
		return 0, 0, err
	}
	if !ok {
		return 0, 0, fmt.Errorf("%q: %w", userID, errNoCollectionData(coll))
	}
	list, id, err := p.s.Locate(context.Background(), c, userID)
	if err != nil {
		return 0, 0, fmt.Errorf("%q: %w", userID, storeErr(err))
	}
	return id, fromStoreList(list), nil
}

// Item implements Storage.
func (p *PebbleStorage) Item(coll string, id uint64) (Item, error) {
	c, ok, err := p.lookup(coll)
	if err != nil {
		return Item{}, err
	}
	if !ok {
		return Item{}, fmt.Errorf("internal id %d: %w", id, errNoCollectionData(coll))
	}
	it, err := p.s.ItemByID(context.Background(), c, id, false)
	if err != nil {
		return Item{}, fmt.Errorf("internal id %d: %w", id, storeErr(err))
	}
	return fromStoreItem(it), nil
}

// ListIDs returns the internal ids of the items stored in a list (or the
// flat buffer), in order, from the keys alone.
func (p *PebbleStorage) ListIDs(coll string, list int32) ([]uint64, error) {
	c, ok, err := p.lookup(coll)
	if err != nil || !ok {
		return nil, err
	}
	ids, err := p.s.ListIDs(context.Background(), c, toStoreList(list))
	return ids, storeErr(err)
}

// Vectors implements Storage.
func (p *PebbleStorage) Vectors(coll string, ids []uint64, dst []float32) error {
	c, ok, err := p.lookup(coll)
	if err != nil {
		return err
	}
	if !ok {
		if len(ids) == 0 {
			return nil
		}
		return fmt.Errorf("internal id %d: %w", ids[0], errNoCollectionData(coll))
	}
	return storeErr(p.s.Source(c).Vectors(ids, dst))
}

// Scan implements Storage.
func (p *PebbleStorage) Scan(coll string, fn func(Item) error) error {
	c, ok, err := p.lookup(coll)
	if err != nil || !ok {
		return err
	}
	return p.scan(c, func(it store.Item) error { return fn(fromStoreItem(it)) })
}

// Drop implements Storage.
func (p *PebbleStorage) Drop(coll string) error {
	c, ok, err := p.lookup(coll)
	if err != nil || !ok {
		return err // nothing stored under the name: nothing to delete
	}
	p.saveMu.Lock()
	delete(p.saved, c)
	p.saveMu.Unlock()
	if err := p.s.DropCollection(context.Background(), c); err != nil {
		return err
	}
	p.numMu.Lock()
	delete(p.nums, coll) // the store forgot the name: the next use gets a new number
	p.numMu.Unlock()
	return nil
}

// Incarnation implements Storage.
func (p *PebbleStorage) Incarnation(coll string) (uint64, error) {
	c, ok, err := p.lookup(coll)
	if err != nil || !ok {
		return 0, err
	}
	v, err := p.s.Incarnation(c)
	return v, storeErr(err)
}

// Incarnations implements Storage.
func (p *PebbleStorage) Incarnations() (map[string]uint64, error) {
	m, err := p.s.Incarnations()
	return m, storeErr(err)
}

// SetIncarnation implements Storage.
func (p *PebbleStorage) SetIncarnation(coll string, created uint64) error {
	c, err := p.CollectionNumber(coll)
	if err != nil {
		return err
	}
	return storeErr(p.s.SetIncarnation(c, created))
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
	c, ok, err := p.lookup(coll)
	if err != nil || !ok {
		return 0, err
	}
	last, _, err := p.s.LastSeq(c, 0)
	return last, err
}

// DropLog deletes a collection's whole write log (logDropper).
func (p *PebbleStorage) DropLog(coll string) error {
	c, ok, err := p.lookup(coll)
	if err != nil || !ok {
		return err
	}
	last, truncated, err := p.s.LastSeq(c, 0)
	if err != nil || last <= truncated {
		return err
	}
	return p.s.TruncateLog(context.Background(), c, 0, last)
}

// SaveIndexAt implements Storage: the index as of cp, then the log
// through cp is truncated.
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
	c, ok, err := p.lookup(coll)
	if err != nil || !ok {
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
	err = p.s.ScanLog(ctx, c, 0, covered[0]+1, func(r store.Record) error {
		return store.Replay(ix, r.Ops)
	})
	if err != nil {
		return nil, fmt.Errorf("replay the log after the saved index: %w", err)
	}
	return ix, nil
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
