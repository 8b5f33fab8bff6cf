package store

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
)

// MaxCollectionNameBytes bounds a collection name in CollectionID.
const MaxCollectionNameBytes = 1024

// CollectionID returns the number under which this store keeps the named
// collection, assigning the next unused one (persisted with a synced
// write) on first use. Numbers are never reused, so a collection dropped
// and created again under the same name starts from nothing, even before
// compaction has removed the old data.
func (s *Store) CollectionID(ctx context.Context, name string) (uint32, error) {
	if err := checkCollectionName(name); err != nil {
		return 0, err
	}
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	var coll uint32
	err := s.read(func() error {
		var ok bool
		var err error
		if coll, ok, err = s.collectionNumber(name); ok || err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		next := uint32(1)
		if v, err := s.get([]byte{recNextColl}); err == nil {
			if next, err = decodeList(v); err != nil {
				return err
			}
		} else if !errors.Is(err, ErrNotFound) {
			return err
		}
		if next == 0 {
			return fmt.Errorf("%w: collection numbers exhausted", ErrInvalid)
		}
		pb := s.db.NewBatch()
		defer pb.Close()
		_ = pb.Set(nameKey(name), encodeList(next), nil)
		_ = pb.Set([]byte{recNextColl}, encodeList(next+1), nil)
		if err := pb.Commit(pebble.Sync); err != nil {
			return fmt.Errorf("store: collection id: %w", err)
		}
		coll = next
		return nil
	})
	return coll, err
}

// LookupCollection returns the number this store keeps the named
// collection under, and false when it has none (nothing stored under the
// name since it was last dropped). Unlike CollectionID it never assigns
// one, so reads of a name the store does not know write nothing.
func (s *Store) LookupCollection(name string) (uint32, bool, error) {
	if err := checkCollectionName(name); err != nil {
		return 0, false, err
	}
	var coll uint32
	var ok bool
	err := s.read(func() error {
		var err error
		coll, ok, err = s.collectionNumber(name)
		return err
	})
	return coll, ok, err
}

// checkCollectionName bounds a collection name (MaxCollectionNameBytes).
func checkCollectionName(name string) error {
	if name == "" || len(name) > MaxCollectionNameBytes {
		return fmt.Errorf("%w: collection name of %d bytes", ErrInvalid, len(name))
	}
	return nil
}

// collectionNumber is LookupCollection for a caller inside s.read.
func (s *Store) collectionNumber(name string) (uint32, bool, error) {
	v, err := s.get(nameKey(name))
	if errors.Is(err, ErrNotFound) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, err
	}
	coll, err := decodeList(v)
	return coll, err == nil, err
}

// Incarnation returns what SetIncarnation recorded for coll, 0 if
// nothing.
func (s *Store) Incarnation(coll uint32) (uint64, error) {
	var v uint64
	err := s.read(func() error {
		var err error
		v, err = s.incarnation(coll)
		return err
	})
	return v, err
}

// incarnation is Incarnation for a caller inside s.read.
func (s *Store) incarnation(coll uint32) (uint64, error) {
	b, err := s.get(collPrefix(recCreated, coll))
	switch {
	case errors.Is(err, ErrNotFound):
		return 0, nil
	case err != nil:
		return 0, err
	case len(b) != 8:
		return 0, fmt.Errorf("%w: incarnation of collection %d: %d bytes", ErrCorrupt, coll, len(b))
	}
	return binary.LittleEndian.Uint64(b), nil
}

// Incarnations returns what SetIncarnation recorded for each collection
// name this store keeps, leaving out the names with nothing recorded.
func (s *Store) Incarnations() (map[string]uint64, error) {
	out := map[string]uint64{}
	err := s.read(func() error {
		return s.eachName(func(key, v []byte) error {
			coll, err := decodeList(v)
			if err != nil {
				return fmt.Errorf("store: collection number of %q: %w", key[1:], err)
			}
			created, err := s.incarnation(coll)
			if err == nil && created != 0 {
				out[string(key[1:])] = created
			}
			return err
		})
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// SetIncarnation records, synced, which incarnation of its collection
// coll's data belongs to (the node's CollectionMeta.Created: a collection
// dropped and created again under its name is a new incarnation).
// DropCollection removes it with the rest.
func (s *Store) SetIncarnation(coll uint32, v uint64) error {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	return s.read(func() error {
		if err := s.db.Set(collPrefix(recCreated, coll), binary.LittleEndian.AppendUint64(nil, v), pebble.Sync); err != nil {
			return fmt.Errorf("store: set incarnation: %w", err)
		}
		return nil
	})
}

// forgetNames deletes, in pb, the names that map to coll. The caller
// holds writeMu and the read side of closeMu.
func (s *Store) forgetNames(pb *pebble.Batch, coll uint32) error {
	return s.eachName(func(key, v []byte) error {
		if c, err := decodeList(v); err == nil && c == coll {
			_ = pb.Delete(append([]byte(nil), key...), nil)
		}
		return nil
	})
}

// eachName calls fn with the key (recName, name) and value (the
// collection number) of every collection name, in name order; both are
// valid only during the call. The caller holds the read side of closeMu.
func (s *Store) eachName(fn func(key, v []byte) error) error {
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte{recName}, UpperBound: []byte{recName + 1}})
	if err != nil {
		return err
	}
	defer it.Close()
	for ok := it.First(); ok; ok = it.Next() {
		v, err := it.ValueAndErr()
		if err != nil {
			return err
		}
		if err := fn(it.Key(), v); err != nil {
			return err
		}
	}
	return it.Error()
}

// ScanCollection calls fn for every live item of a collection in internal
// id order, from one consistent snapshot. It costs a point read per item
// (through the id index); ScanList is cheaper for whole lists.
func (s *Store) ScanCollection(ctx context.Context, coll uint32, fn func(Item) error) error {
	return s.read(func() error {
		snap := s.db.NewSnapshot()
		defer snap.Close()
		p := collPrefix(recID, coll)
		it, err := snap.NewIter(&pebble.IterOptions{LowerBound: p, UpperBound: prefixEnd(p)})
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
			k := it.Key()
			if len(k) != 13 {
				return fmt.Errorf("%w: id key %x", ErrCorrupt, k)
			}
			id := uint64(0)
			for _, c := range k[5:] {
				id = id<<8 | uint64(c)
			}
			v, err := it.ValueAndErr()
			if err != nil {
				return err
			}
			e, err := decodeIDEntry(v)
			if err != nil {
				return fmt.Errorf("store: id entry %d: %w", id, err)
			}
			list := e.list
			iv, c, err := snap.Get(itemKey(coll, list, id))
			if errors.Is(err, pebble.ErrNotFound) {
				return fmt.Errorf("%w: id index names item %d in list %d, which is absent", ErrCorrupt, id, list)
			}
			if err != nil {
				return err
			}
			item, err := decodeItem(iv, list, id)
			_ = c.Close()
			if err != nil {
				return fmt.Errorf("store: item %d in list %d: %w", id, list, err)
			}
			if err := fn(item); err != nil {
				return err
			}
		}
		return it.Error()
	})
}
