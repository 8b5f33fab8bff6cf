package store

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
)

// Entries: the compact records of an entry collection, one Pebble key per
// user id (record 0x0b, docs/format/keys.md). A node keeps its id
// directory's partitions this way (node/directory.go): an entry is a
// few bytes under a user id, and an item's machinery (the item, its
// directory and id-index keys, the log record naming it, the resolver)
// cost the cluster about a quarter of its ingest CPU for nothing. An
// entry collection has no lists, no vectors, no write log and no index
// file; a collection number holds items or entries, never both (the
// caller's choice, which the store does not check).

// Entry is one record of an entry collection: a small value under a user
// id, with the internal id the caller wrote it under (which names this
// version of the entry: the catch-up of a replica compares them).
type Entry struct {
	UserID string
	ID     uint64
	Value  []byte
}

// EntryDelete deletes a user id's entry; with ID set, only when the stored
// entry has that internal id (a newer version stays).
type EntryDelete struct {
	UserID string
	ID     uint64
}

// EntriesResult says what ApplyEntries changed: the user ids that had no
// entry before the batch and have one after it, and those that had one
// and have none.
type EntriesResult struct {
	Added, Removed int
}

func encodeEntryValue(id uint64, v []byte) []byte {
	b := make([]byte, 0, binary.MaxVarintLen64+len(v))
	return append(binary.AppendUvarint(b, id), v...)
}

func decodeEntryValue(b []byte) (uint64, []byte, error) {
	id, n := binary.Uvarint(b)
	if n <= 0 || id == 0 {
		return 0, nil, fmt.Errorf("%w: entry value: bad internal id", ErrCorrupt)
	}
	return id, b[n:], nil
}

// ApplyEntries puts and deletes entries of coll in one synced Pebble batch
// (puts first, then deletes; a later operation on a user id wins). As
// ApplyAsync, it returns once the batch is visible to readers; wait blocks
// until it is durable, must be called exactly once, and an error from it
// poisons the store. A put of an id the collection never held costs no
// read (the user-id filter, userset.go); others cost one. On any error
// nothing is stored.
func (s *Store) ApplyEntries(ctx context.Context, coll uint32, puts []Entry, dels []EntryDelete) (EntriesResult, func() error, error) {
	none := func() error { return nil }
	if n := len(puts) + len(dels); n == 0 {
		return EntriesResult{}, none, nil
	} else if n > s.opts.MaxBatchItems {
		return EntriesResult{}, nil, fmt.Errorf("%w: %d operations, at most %d", ErrInvalid, n, s.opts.MaxBatchItems)
	}
	size := 32
	for i, e := range puts {
		if err := checkUserID(e.UserID); err != "" {
			return EntriesResult{}, nil, fmt.Errorf("%w: entry %d: %s", ErrInvalid, i, err)
		}
		if e.ID == 0 {
			return EntriesResult{}, nil, fmt.Errorf("%w: entry %d: internal id 0 is reserved", ErrInvalid, i)
		}
		if len(e.Value) == 0 || len(e.Value) > s.opts.MaxMetaBytes {
			return EntriesResult{}, nil, fmt.Errorf("%w: entry %d: value of %d bytes, want 1..%d (MaxMetaBytes)", ErrInvalid, i, len(e.Value), s.opts.MaxMetaBytes)
		}
		size += 2*len(e.UserID) + len(e.Value) + 32
	}
	for i, d := range dels {
		if err := checkUserID(d.UserID); err != "" {
			return EntriesResult{}, nil, fmt.Errorf("%w: entry delete %d: %s", ErrInvalid, i, err)
		}
		size += len(d.UserID) + 16
	}
	var res EntriesResult
	var pb *pebble.Batch
	s.writeMu.Lock()
	err := s.read(func() error {
		if s.failed != nil {
			return s.failed
		}
		users := s.userSetLocked(coll)
		// held: whether a user id has an entry, as of the operations so
		// far (the store's, then the batch's own).
		held := make(map[string]uint64, len(puts)+len(dels))
		stored := func(u string) (uint64, error) {
			if id, ok := held[u]; ok {
				return id, nil
			}
			if users.absent(u) {
				return 0, nil
			}
			v, err := s.get(entryKey(coll, u))
			if errors.Is(err, ErrNotFound) {
				return 0, nil
			}
			if err != nil {
				return 0, err
			}
			id, _, err := decodeEntryValue(v)
			return id, err
		}
		pb = s.db.NewBatchWithSize(size)
		putUsers := make([]string, 0, len(puts))
		for _, e := range puts {
			was, err := stored(e.UserID)
			if err != nil {
				return err
			}
			if was == 0 {
				res.Added++
			}
			held[e.UserID] = e.ID
			_ = pb.Set(entryKey(coll, e.UserID), encodeEntryValue(e.ID, e.Value), nil)
			putUsers = append(putUsers, e.UserID)
		}
		for _, d := range dels {
			was, err := stored(d.UserID)
			if err != nil {
				return err
			}
			if was == 0 || (d.ID != 0 && d.ID != was) {
				continue
			}
			res.Removed++
			held[d.UserID] = 0
			_ = pb.Delete(entryKey(coll, d.UserID), nil)
		}
		if pb.Empty() {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := s.db.ApplyNoSyncWait(pb, pebble.Sync); err != nil {
			s.failed = fmt.Errorf("store: commit: %w", err)
			return s.failed
		}
		users.addedLocked(putUsers)
		return nil
	})
	s.writeMu.Unlock()
	if err != nil {
		if pb != nil {
			_ = pb.Close()
		}
		return EntriesResult{}, nil, err
	}
	if pb.Empty() {
		_ = pb.Close()
		return res, none, nil
	}
	return res, s.syncWait(pb), nil
}

// GetEntry returns a user id's entry, or ErrNotFound.
func (s *Store) GetEntry(ctx context.Context, coll uint32, userID string) (Entry, error) {
	var e Entry
	err := s.read(func() error {
		if err := ctx.Err(); err != nil {
			return err
		}
		v, err := s.get(entryKey(coll, userID))
		if err != nil {
			return err
		}
		id, val, err := decodeEntryValue(v)
		if err != nil {
			return fmt.Errorf("store: entry %q: %w", userID, err)
		}
		e = Entry{UserID: userID, ID: id, Value: val}
		return nil
	})
	return e, err
}

// EntryView is a view of a collection's entries fixed when OpenEntries
// returned it: writes committed later are not in it. It holds a Pebble
// snapshot until Close, and an iterator only while Next reads: an open
// iterator keeps every memtable it reads in memory, flushed or not, and a
// copy of a large partition keeps its view open for the whole copy, while
// the node goes on writing. (A snapshot keeps only the versions it sees
// through compactions.) The store closes the views still open when it
// closes. Not safe for concurrent use.
type EntryView struct {
	s      *Store
	snap   *pebble.Snapshot // nil once closed
	prefix []byte
	after  []byte // the user-id key of the last entry returned; nil before the first
	done   bool   // every entry was returned
}

// OpenEntries opens a view of coll's entries as of now. A caller that
// orders its writes under a lock of its own opens the view under that
// lock and reads it after releasing it (node/copy.go: a copy's snapshot
// must not hold the partition's writes up for a whole scan).
func (s *Store) OpenEntries(coll uint32) (*EntryView, error) {
	var v *EntryView
	err := s.read(func() error {
		v = &EntryView{s: s, snap: s.db.NewSnapshot(), prefix: collPrefix(recEntry, coll)}
		s.viewMu.Lock()
		s.views[v] = true
		s.viewMu.Unlock()
		return nil
	})
	return v, err
}

// Next returns the view's next entries in user-id order, at most n
// (at least 1), and none once it has returned them all; the entries'
// fields are copies. Each call holds the store open only while it reads,
// so a caller may work between calls (a copy sends each part to another
// node) without holding up Close, which ends the view: a later call
// returns ErrClosed.
func (v *EntryView) Next(n int) ([]Entry, error) {
	n = max(n, 1)
	var out []Entry
	err := v.s.read(func() error {
		v.s.viewMu.Lock()
		snap := v.snap
		v.s.viewMu.Unlock()
		if snap == nil {
			return ErrClosed
		}
		if v.done {
			return nil
		}
		lower := v.prefix
		if v.after != nil {
			lower = append(append([]byte(nil), v.after...), 0) // the key just after the last returned
		}
		it, err := snap.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: prefixEnd(v.prefix)})
		if err != nil {
			return err
		}
		plen := len(v.prefix)
		for ok := it.First(); ok; ok = it.Next() {
			val, err := it.ValueAndErr()
			if err != nil {
				_ = it.Close()
				return err
			}
			id, rest, err := decodeEntryValue(val)
			if err != nil {
				_ = it.Close()
				return fmt.Errorf("store: entry %q: %w", it.Key()[plen:], err)
			}
			out = append(out, Entry{UserID: string(it.Key()[plen:]), ID: id, Value: append([]byte(nil), rest...)})
			if len(out) >= n {
				v.after = append(v.after[:0], it.Key()...)
				return it.Close()
			}
		}
		v.done = true
		return errors.Join(it.Error(), it.Close())
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Close releases the view.
func (v *EntryView) Close() {
	v.s.viewMu.Lock()
	defer v.s.viewMu.Unlock()
	if v.snap != nil {
		_ = v.snap.Close()
		v.snap = nil
		delete(v.s.views, v)
	}
}

// closeViews closes the entry views still open; closeMu is held
// exclusively, so no Scan runs.
func (s *Store) closeViews() {
	s.viewMu.Lock()
	defer s.viewMu.Unlock()
	for v := range s.views {
		_ = v.snap.Close()
		v.snap = nil
	}
	clear(s.views)
}
