package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
)

// Store is a node's Pebble database plus its directory of index files.
type Store struct {
	opts     Options
	dir      string
	indexDir string
	db       *pebble.DB
	cache    *pebble.Cache

	// closeMu guards db against use after Close: readers hold it shared.
	closeMu sync.RWMutex
	closed  bool

	// saveMu serialises SaveIndex and DropCollection's removal of index
	// files; it is taken before writeMu.
	saveMu sync.Mutex

	// writeMu serialises Apply, TruncateLog, DropCollection and the index
	// pointer, and guards shards.
	writeMu sync.Mutex
	shards  map[shardRef]*shardState
	// idSets holds, per collection, the internal ids Apply knows are free.
	idSets map[uint32]*idSet
	// userSets holds, per collection, the user ids Apply knows are not in
	// the directory (userset.go); bg counts their background scans.
	// closing (under writeMu) stops new scans once Close has begun, and
	// closingScans tells the running ones to give up.
	userSets     map[uint32]*userSet
	bg           sync.WaitGroup
	closing      bool
	closingScans atomic.Bool
	// views are the entry views open (entries.go), which Close closes;
	// viewMu guards them and each view's iterator.
	viewMu sync.Mutex
	views  map[*EntryView]bool
	// failed is set when a WAL sync fails: Pebble's state is then unknown,
	// and every later Apply fails with it.
	failed error
}

type shardRef struct{ coll, shard uint32 }

type shardState struct{ last, truncated uint64 }

// Open opens (creating if needed) the store in dir: Pebble in dir/pebble,
// persisted ivf indexes in dir/index. It copies opts. Index files that no
// pointer names (left by a crash inside SaveIndex) are removed.
func Open(dir string, opts Options) (*Store, error) {
	opts.EnsureDefaults()
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	s := &Store{opts: opts, dir: dir, indexDir: filepath.Join(dir, "index"), shards: map[shardRef]*shardState{}, idSets: map[uint32]*idSet{}, userSets: map[uint32]*userSet{}, views: map[*EntryView]bool{}}
	if err := os.MkdirAll(s.indexDir, 0o755); err != nil {
		return nil, fmt.Errorf("store: open: %w", err)
	}
	s.cache = pebble.NewCache(opts.CacheBytes)
	po := &pebble.Options{
		Cache:        s.cache,
		MemTableSize: opts.MemTableBytes,
		Logger:       opts.Logger,
	}
	// Bloom filters on every level: Apply looks up each put's user id and
	// internal id, and for new items both miss. No block compression: the
	// bulk of the data is float32 vectors, which snappy cannot shrink but
	// spends ingest CPU trying.
	po.ApplyCompressionSettings(func() pebble.DBCompressionSettings { return pebble.DBCompressionNone })
	for i := range po.Levels {
		po.Levels[i].FilterPolicy = bloom.FilterPolicy(10)
	}
	// Value separation: a flush writes values of 256 bytes and more (items
	// and log records, i.e. the vectors) to blob files once, and
	// compactions then move 17-byte keys and value handles instead of
	// rewriting the vectors at every level. Ingest spent half its CPU in
	// flushes and compactions without it. It needs format
	// FormatValueSeparation, to which Open ratchets older stores.
	po.FormatMajorVersion = pebble.FormatValueSeparation
	po.Experimental.ValueSeparationPolicy = func() pebble.ValueSeparationPolicy {
		return pebble.ValueSeparationPolicy{
			Enabled:               true,
			MinimumSize:           256,
			MaxBlobReferenceDepth: 10,
			RewriteMinimumAge:     5 * time.Minute,
			TargetGarbageRatio:    0.2,
		}
	}
	db, err := pebble.Open(filepath.Join(dir, "pebble"), po)
	if err != nil {
		s.cache.Unref()
		return nil, fmt.Errorf("store: open: %w", err)
	}
	s.db = db
	if err := s.removeOrphanIndexes(); err != nil {
		_ = s.Close()
		return nil, err
	}
	return s, nil
}

// Close closes the database. Calls after it fail with ErrClosed.
func (s *Store) Close() error {
	// No user-set scan starts after this; those under way end (they take
	// writeMu at their end, so Close waits for them without it).
	s.writeMu.Lock()
	s.closing = true
	s.writeMu.Unlock()
	s.closingScans.Store(true)
	s.bg.Wait()
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	s.closeMu.Lock()
	defer s.closeMu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	s.closeViews()
	err := s.db.Close()
	s.cache.Unref()
	if err != nil {
		return fmt.Errorf("store: close: %w", err)
	}
	return nil
}

// read runs f with the database open.
func (s *Store) read(f func() error) error {
	s.closeMu.RLock()
	defer s.closeMu.RUnlock()
	if s.closed {
		return ErrClosed
	}
	return f()
}

// get returns a copy of the value at key, or ErrNotFound.
func (s *Store) get(key []byte) ([]byte, error) { return getCopy(s.db, key) }

// getCopy returns a copy of the value at key in r (the database or a
// snapshot), or ErrNotFound. Pebble's value is valid only until its closer
// is closed; the copy outlives it.
func getCopy(r pebble.Reader, key []byte) ([]byte, error) {
	v, c, err := r.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	out := append([]byte(nil), v...)
	return out, c.Close()
}

// shardState returns the cached state of a shard's log, loading it first.
// The caller holds writeMu and the read side of closeMu.
func (s *Store) shardState(coll, shard uint32) (*shardState, error) {
	ref := shardRef{coll, shard}
	if st, ok := s.shards[ref]; ok {
		return st, nil
	}
	st := &shardState{}
	v, err := s.get(shardKey(coll, shard))
	switch {
	case err == nil:
		if st.last, st.truncated, err = decodeShardState(v); err != nil {
			return nil, fmt.Errorf("store: shard %d/%d state: %w", coll, shard, err)
		}
	case !errors.Is(err, ErrNotFound):
		return nil, err
	}
	s.shards[ref] = st
	return st, nil
}

// Locate returns the list and internal id of the live item with this
// user id, or ErrNotFound: the directory entry alone, no item read.
func (s *Store) Locate(ctx context.Context, coll uint32, userID string) (list uint32, id uint64, err error) {
	err = s.read(func() error {
		if err := ctx.Err(); err != nil {
			return err
		}
		list, id, err = s.dirEntry(coll, userID)
		return err
	})
	return list, id, err
}

// dirEntry reads and decodes a user id's directory entry; the caller
// holds the read side.
func (s *Store) dirEntry(coll uint32, userID string) (list uint32, id uint64, err error) {
	v, err := s.get(dirKey(coll, userID))
	if err != nil {
		return 0, 0, err
	}
	if list, id, err = decodeLoc(v); err != nil {
		return 0, 0, fmt.Errorf("store: directory entry %q: %w", userID, err)
	}
	return list, id, nil
}

// GetByUserID returns the live item with this user id, or ErrNotFound.
func (s *Store) GetByUserID(ctx context.Context, coll uint32, userID string) (Item, error) {
	var it Item
	err := s.read(func() error {
		if err := ctx.Err(); err != nil {
			return err
		}
		list, id, err := s.dirEntry(coll, userID)
		if err != nil {
			return err
		}
		if it, err = s.item(coll, list, id); errors.Is(err, ErrNotFound) {
			return fmt.Errorf("%w: directory names item %d in list %d, which is absent", ErrCorrupt, id, list)
		}
		return err
	})
	return it, err
}

// Attachment returns the attachment of the live item with this internal
// id: nil when it has none, ErrNotFound when there is no such item. The
// two reads come from one snapshot.
func (s *Store) Attachment(ctx context.Context, coll uint32, id uint64) ([]byte, error) {
	var out []byte
	err := s.read(func() error {
		if err := ctx.Err(); err != nil {
			return err
		}
		snap := s.db.NewSnapshot()
		defer snap.Close()
		if _, err := getCopy(snap, idKey(coll, id)); err != nil {
			return err
		}
		v, err := getCopy(snap, attachKey(coll, id))
		if errors.Is(err, ErrNotFound) {
			return nil
		}
		out = v
		return err
	})
	return out, err
}

// ItemByID returns the live item with this internal id, or ErrNotFound:
// the id index gives its list, and the item follows. Without withVector
// the vector is left nil (naming a search's hits needs the user id and
// the metadata only), and an item without metadata is named from its id
// index entry alone, one small read. An item that moves or goes between the two reads is
// looked up again once.
func (s *Store) ItemByID(ctx context.Context, coll uint32, id uint64, withVector bool) (Item, error) {
	var it Item
	err := s.read(func() error {
		if err := ctx.Err(); err != nil {
			return err
		}
		var err error
		it, err = s.itemByID(coll, id, withVector)
		return err
	})
	return it, err
}

// itemByID is ItemByID for a caller inside s.read.
func (s *Store) itemByID(coll uint32, id uint64, withVector bool) (Item, error) {
	var prev uint32
	for try := 0; ; try++ {
		v, err := s.get(idKey(coll, id))
		if err != nil {
			return Item{}, err
		}
		e, err := decodeIDEntry(v)
		if err != nil {
			return Item{}, fmt.Errorf("store: id entry %d: %w", id, err)
		}
		list := e.list
		if e.named && !e.hasMeta && !withVector {
			return Item{UserID: e.userID, ID: id, List: list}, nil // all there is to know, from the small entry
		}
		v, err = s.get(itemKey(coll, list, id))
		if errors.Is(err, ErrNotFound) && (try == 0 || list != prev) {
			prev = list
			continue // moved or deleted meanwhile: ask the id index again
		}
		if err != nil {
			return Item{}, err
		}
		it, err := decodeItemOpt(v, list, id, withVector)
		if err != nil {
			return Item{}, fmt.Errorf("store: item %d in list %d: %w", id, list, err)
		}
		return it, nil
	}
}

func (s *Store) item(coll, list uint32, id uint64) (Item, error) {
	v, err := s.get(itemKey(coll, list, id))
	if err != nil {
		return Item{}, err
	}
	it, err := decodeItem(v, list, id)
	if err != nil {
		return Item{}, fmt.Errorf("store: item %d in list %d: %w", id, list, err)
	}
	return it, nil
}

// ListIDs returns the internal ids of a list's items, in order, reading
// keys only (no item is decoded).
func (s *Store) ListIDs(ctx context.Context, coll, list uint32) ([]uint64, error) {
	var ids []uint64
	err := s.eachListKey(ctx, coll, list, func(_ *pebble.Iterator, id uint64) error {
		ids = append(ids, id)
		return nil
	})
	return ids, err
}

// ScanList calls fn for every live item of a list, in internal id order,
// from one consistent snapshot; for rebuilding a list, or copying it to
// another node. An error from fn stops the scan and is returned.
func (s *Store) ScanList(ctx context.Context, coll, list uint32, fn func(Item) error) error {
	return s.eachListKey(ctx, coll, list, func(it *pebble.Iterator, id uint64) error {
		v, err := it.ValueAndErr()
		if err != nil {
			return err
		}
		item, err := decodeItem(v, list, id)
		if err != nil {
			return fmt.Errorf("store: item %d in list %d: %w", id, list, err)
		}
		return fn(item)
	})
}

// eachListKey calls fn with an iterator at each item key of a list, in
// internal id order, and the key's id; fn reads the value if it needs
// it. The context is checked every 1,024 keys.
func (s *Store) eachListKey(ctx context.Context, coll, list uint32, fn func(it *pebble.Iterator, id uint64) error) error {
	return s.read(func() error {
		p := listPrefix(coll, list)
		it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: p, UpperBound: prefixEnd(p)})
		if err != nil {
			return err
		}
		defer it.Close()
		n := 0
		for ok := it.First(); ok; ok = it.Next() {
			if n++; n%1024 == 0 {
				if err := ctx.Err(); err != nil {
					return err
				}
			}
			l, id, ok := parseItemKey(it.Key())
			if !ok || l != list {
				return fmt.Errorf("%w: item key %x", ErrCorrupt, it.Key())
			}
			if err := fn(it, id); err != nil {
				return err
			}
		}
		return it.Error()
	})
}

// Lists returns the lists of a collection that hold items, ascending
// (flat-buffer lists last).
func (s *Store) Lists(ctx context.Context, coll uint32) ([]uint32, error) {
	var out []uint32
	err := s.read(func() error {
		p := collPrefix(recItem, coll)
		it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: p, UpperBound: prefixEnd(p)})
		if err != nil {
			return err
		}
		defer it.Close()
		for ok := it.First(); ok; {
			if err := ctx.Err(); err != nil {
				return err
			}
			l, _, good := parseItemKey(it.Key())
			if !good {
				return fmt.Errorf("%w: item key %x", ErrCorrupt, it.Key())
			}
			out = append(out, l)
			if l == ^uint32(0) {
				break
			}
			ok = it.SeekGE(listPrefix(coll, l+1))
		}
		return it.Error()
	})
	return out, err
}

// Source returns the collection's floats as an ivf.VectorSource, for
// refine. A vector deleted between a scan and its refine makes Vectors
// fail with an error wrapping ErrNotFound.
func (s *Store) Source(coll uint32) *Source { return &Source{s: s, coll: coll} }

// Source reads a collection's vectors by internal id. It implements
// ivf.VectorSource and is safe for concurrent use.
type Source struct {
	s    *Store
	coll uint32
}

// Vectors writes the vectors of ids, in order, into dst (len(ids)×dim).
func (v *Source) Vectors(ids []uint64, dst []float32) error {
	if len(ids) == 0 {
		return nil
	}
	if len(dst)%len(ids) != 0 {
		return fmt.Errorf("store: vectors: %d floats for %d ids", len(dst), len(ids))
	}
	d := len(dst) / len(ids)
	return v.s.read(func() error {
		for i, id := range ids {
			it, err := v.s.itemByID(v.coll, id, true)
			if err != nil {
				return fmt.Errorf("store: vector %d: %w", id, err)
			}
			if len(it.Vector) != d {
				return fmt.Errorf("store: vector %d has %d floats, want %d", id, len(it.Vector), d)
			}
			copy(dst[i*d:(i+1)*d], it.Vector)
		}
		return nil
	})
}

// DropCollection removes every record of a collection (items, directory,
// logs, index pointer, the names CollectionID gave it) in one synced
// batch, and its index files. Pebble's
// range tombstones hide the records at once; compaction reclaims the space.
func (s *Store) DropCollection(ctx context.Context, coll uint32) error {
	s.saveMu.Lock()
	defer s.saveMu.Unlock()
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	err := s.read(func() error {
		if err := ctx.Err(); err != nil {
			return err
		}
		pb := s.db.NewBatch()
		defer pb.Close()
		for _, t := range recordTypes {
			p := collPrefix(t, coll)
			_ = pb.DeleteRange(p, prefixEnd(p), nil)
		}
		if err := s.forgetNames(pb, coll); err != nil {
			return err
		}
		if err := pb.Commit(pebble.Sync); err != nil {
			return fmt.Errorf("store: drop collection %d: %w", coll, err)
		}
		delete(s.idSets, coll)
		delete(s.userSets, coll)
		for ref := range s.shards {
			if ref.coll == coll {
				delete(s.shards, ref)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	return s.removeIndexFiles(coll, "")
}

// Compact compacts the whole key space, so that deleted items and dropped
// collections give their space back now rather than when Pebble gets to
// them.
func (s *Store) Compact(ctx context.Context) error {
	return s.read(func() error {
		return s.db.Compact(ctx, []byte{0}, []byte{0xff}, true)
	})
}

// Metrics are the store's figures for /metrics.
type Metrics struct {
	DiskBytes     uint64 // everything Pebble holds on disk
	WALBytes      uint64 // live write-ahead log
	MemTableBytes uint64
	Tables        int64 // sstables, all levels
	L0Tables      int64
	ReadAmp       int
	Compactions   int64
	Flushes       int64
	CacheHits     int64
	CacheMisses   int64
	// Pebble is the full set, for whatever the above leaves out.
	Pebble *pebble.Metrics
}

// Metrics reports Pebble's statistics.
func (s *Store) Metrics() (Metrics, error) {
	var m Metrics
	err := s.read(func() error {
		pm := s.db.Metrics()
		m = Metrics{
			DiskBytes: pm.DiskSpaceUsage(), WALBytes: pm.WAL.Size, MemTableBytes: pm.MemTable.Size,
			L0Tables: pm.Levels[0].TablesCount, ReadAmp: pm.ReadAmp(),
			Compactions: pm.Compact.Count, Flushes: pm.Flush.Count,
			CacheHits: pm.BlockCache.Hits, CacheMisses: pm.BlockCache.Misses, Pebble: pm,
		}
		for _, l := range pm.Levels {
			m.Tables += l.TablesCount
		}
		return nil
	})
	return m, err
}
