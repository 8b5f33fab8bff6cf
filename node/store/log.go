package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"

	"lookalike/ivf"
)

// LastSeq returns the sequence number of the shard's last logged batch (0
// when none) and the sequence through which the log was truncated.
func (s *Store) LastSeq(coll, shard uint32) (last, truncated uint64, err error) {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	err = s.read(func() error {
		st, err := s.shardState(coll, shard)
		if err == nil {
			last, truncated = st.last, st.truncated
		}
		return err
	})
	return last, truncated, err
}

// ScanLog calls fn for every logged batch of a shard with sequence number
// from or later, in order, from one consistent snapshot. Sequence numbers
// are contiguous from 1. If the log was truncated at or past from (and from
// is not past the end) it fails with ErrLogTruncated: the caller must copy
// the lists instead. An error from fn stops the scan and is returned.
func (s *Store) ScanLog(ctx context.Context, coll, shard uint32, from uint64, fn func(Record) error) error {
	from = max(from, 1)
	last, truncated, err := s.LastSeq(coll, shard)
	if err != nil {
		return err
	}
	if from <= truncated && from <= last {
		return fmt.Errorf("%w: shard %d/%d from %d, truncated through %d", ErrLogTruncated, coll, shard, from, truncated)
	}
	return s.read(func() error {
		// One snapshot for the log and the items its puts name.
		snap := s.db.NewSnapshot()
		defer snap.Close()
		it, err := snap.NewIter(&pebble.IterOptions{
			LowerBound: logKey(coll, shard, from),
			UpperBound: prefixEnd(logPrefix(coll, shard)),
		})
		if err != nil {
			return err
		}
		defer it.Close()
		want := from
		for ok := it.First(); ok; ok = it.Next() {
			if err := ctx.Err(); err != nil {
				return err
			}
			seq, ok := parseLogKey(it.Key())
			if !ok {
				return fmt.Errorf("%w: log key %x", ErrCorrupt, it.Key())
			}
			if seq != want {
				// A truncation raced with this scan, or the log has a hole.
				return fmt.Errorf("%w: shard %d/%d log jumps from %d to %d", ErrLogTruncated, coll, shard, want, seq)
			}
			want++
			v, err := it.ValueAndErr()
			if err != nil {
				return err
			}
			r, err := decodeRecord(v, seq)
			if err == nil && r.byRef {
				err = fillPuts(snap, coll, &r)
			}
			if err != nil {
				return fmt.Errorf("store: log %d/%d seq %d: %w", coll, shard, seq, err)
			}
			if err := fn(r); err != nil {
				return err
			}
		}
		return it.Error()
	})
}

// fillPuts reads the items that a by-reference record's puts name (and
// their attachments) from snap. A put whose item is gone was undone by a
// later record — a delete, an upsert or a move, each logged after it —
// and is marked Gone: its content is no longer known, and applying the
// rest of the log without it ends in the same state.
func fillPuts(snap *pebble.Snapshot, coll uint32, r *Record) error {
	for i := range r.Ops {
		op := &r.Ops[i]
		if op.Kind == OpPut {
			v, err := getCopy(snap, itemKey(coll, op.Item.List, op.Item.ID))
			if errors.Is(err, ErrNotFound) {
				op.Gone = true
				continue
			}
			if err != nil {
				return err
			}
			it, err := decodeItem(v, op.Item.List, op.Item.ID)
			if err != nil {
				return fmt.Errorf("item %d in list %d: %w", op.Item.ID, op.Item.List, err)
			}
			if it.UserID != op.Item.UserID {
				op.Gone = true // the internal id was put again under another user id later
				continue
			}
			a, err := getCopy(snap, attachKey(coll, op.Item.ID))
			if err != nil && !errors.Is(err, ErrNotFound) {
				return err
			}
			it.Attachment = a
			op.Item = it
		}
	}
	return nil
}

// TruncateLog deletes a shard's log records through sequence number
// through (at most the last one), in a synced batch. Once every replica
// has applied them and the persisted index covers them, they are not
// needed; a later ScanLog from at or below through fails.
func (s *Store) TruncateLog(ctx context.Context, coll, shard uint32, through uint64) error {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	return s.read(func() error {
		if err := ctx.Err(); err != nil {
			return err
		}
		st, err := s.shardState(coll, shard)
		if err != nil {
			return err
		}
		if through > st.last {
			return fmt.Errorf("%w: truncate shard %d/%d through %d beyond last sequence %d", ErrInvalid, coll, shard, through, st.last)
		}
		if through <= st.truncated {
			return nil
		}
		pb := s.db.NewBatch()
		defer pb.Close()
		_ = pb.DeleteRange(logKey(coll, shard, 0), logKey(coll, shard, through+1), nil)
		_ = pb.Set(shardKey(coll, shard), encodeShardState(st.last, through), nil)
		if err := pb.Commit(pebble.Sync); err != nil {
			return fmt.Errorf("store: truncate log: %w", err)
		}
		st.truncated = through
		return nil
	})
}

// Replay applies logged operations to an in-memory ivf index. It is
// idempotent: a put first tombstones any copy of its internal id in its
// list, so replaying a batch that the index already holds (an index saved
// while writes went on) leaves one copy. Puts to flat-buffer lists are an
// error (an untrained collection has no ivf index), as is a put whose
// logged list is not the one the index assigns the vector to.
func Replay(ix *ivf.Index, ops []Op) error {
	for i := range ops {
		it := &ops[i].Item
		switch ops[i].Kind {
		case OpDelete:
			if !IsBufferList(it.List) {
				ix.DeleteFromList(int(it.List), it.ID)
			}
		case OpPut:
			if ops[i].Gone {
				continue // undone by a later op of the log
			}
			if IsBufferList(it.List) {
				return fmt.Errorf("store: replay: item %d is in flat-buffer list %d", it.ID, it.List&^BufferBase)
			}
			lists, err := ix.Assign(it.Vector)
			if err != nil {
				return fmt.Errorf("store: replay item %d: %w", it.ID, err)
			}
			if uint32(lists[0]) != it.List {
				return fmt.Errorf("store: replay item %d: logged in list %d, the index assigns list %d", it.ID, it.List, lists[0])
			}
			ix.DeleteFromList(int(it.List), it.ID)
			if err := ix.Add([]uint64{it.ID}, it.Vector); err != nil {
				return fmt.Errorf("store: replay item %d: %w", it.ID, err)
			}
		default:
			return fmt.Errorf("store: replay: unknown op kind %d", ops[i].Kind)
		}
	}
	return nil
}
