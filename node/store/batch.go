package store

import (
	"encoding/json"
	"fmt"
	"math"
	"unicode/utf8"
)

// Batch is a group of writes to one shard of one collection that Apply
// validates whole and commits atomically. Build it with NewBatch, Put and
// Delete; it is not safe for concurrent use, and the caller must not modify
// the vectors or metadata it holds until Apply returns.
type Batch struct {
	coll, shard uint32
	dim         int
	ops         []Op
}

// NewBatch starts a batch for a shard of a collection whose vectors have
// dim floats. The shard names the write log the batch is appended to.
func NewBatch(coll, shard uint32, dim int) *Batch {
	return &Batch{coll: coll, shard: shard, dim: dim}
}

// Put stores it under its user id, replacing (upserting) any item that
// holds that user id now, wherever it is, or earlier in this batch.
func (b *Batch) Put(it Item) { b.ops = append(b.ops, Op{Kind: OpPut, Item: it}) }

// Delete removes the item with this user id, if there is one.
func (b *Batch) Delete(userID string) {
	b.ops = append(b.ops, Op{Kind: OpDelete, Item: Item{UserID: userID}})
}

// DeleteID removes the item with this internal id, if there is one, and
// its directory entry if that still names it.
func (b *Batch) DeleteID(id uint64) {
	b.ops = append(b.ops, Op{Kind: OpDelete, Item: Item{ID: id}})
}

// Move re-lists the item with this internal id into list (training's and
// resharding's move step), keeping its ids, vector and metadata. Moving an
// absent id does nothing; it is reported in Result.NotFound.
func (b *Batch) Move(id uint64, list uint32) {
	b.ops = append(b.ops, Op{Kind: opMove, Item: Item{ID: id, List: list}})
}

// opMove is a batch operation only: the log records a move as a delete and
// a put.
const opMove OpKind = 0xff

// sizeHint estimates the bytes of the Pebble batch that applies b: each
// put's item (vector, user id, metadata, attachment) once, its user id
// again in the directory entry and in the log record (version 3 logs a
// put by reference, docs/format/keys.md), plus keys, the id index entry
// and the log op.
func (b *Batch) sizeHint() int {
	n := 64
	for i := range b.ops {
		it := &b.ops[i].Item
		n += 4*len(it.Vector) + len(it.Meta) + len(it.Attachment) + 3*len(it.UserID) + 160
	}
	return n
}

// Len is the number of operations in the batch.
func (b *Batch) Len() int { return len(b.ops) }

// validate checks everything that needs no reads: the whole batch, every
// problem at once (up to a few), each naming its operation.
func (b *Batch) validate(o *Options) error {
	var errs []string
	bad := func(i int, format string, args ...any) {
		if len(errs) < 8 {
			errs = append(errs, fmt.Sprintf("op %d: ", i)+fmt.Sprintf(format, args...))
		}
	}
	if len(b.ops) == 0 {
		return fmt.Errorf("%w: empty batch", ErrInvalid)
	}
	if len(b.ops) > o.MaxBatchItems {
		return fmt.Errorf("%w: %d operations, at most %d", ErrInvalid, len(b.ops), o.MaxBatchItems)
	}
	if b.dim < 1 || b.dim > 1<<16 {
		return fmt.Errorf("%w: dim %d outside 1..65536", ErrInvalid, b.dim)
	}
	ids := make(map[uint64]string)
	for i := range b.ops {
		it := &b.ops[i].Item
		switch b.ops[i].Kind {
		case OpDelete:
			if it.UserID == "" && it.ID != 0 {
				continue // by internal id
			}
			if err := checkUserID(it.UserID); err != "" {
				bad(i, "%s", err)
			}
			continue
		case opMove:
			if it.ID == 0 {
				bad(i, "move of internal id 0")
			}
			continue
		}
		if err := checkUserID(it.UserID); err != "" {
			bad(i, "%s", err)
		}
		if it.ID == 0 {
			bad(i, "internal id 0 is reserved")
		}
		if u, ok := ids[it.ID]; ok && u != it.UserID {
			bad(i, "internal id %d given to user ids %q and %q", it.ID, u, it.UserID)
		}
		ids[it.ID] = it.UserID
		if len(it.Vector) != b.dim {
			bad(i, "vector has %d floats, want %d", len(it.Vector), b.dim)
		}
		for j, x := range it.Vector {
			if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
				bad(i, "vector component %d is %v", j, x)
				break
			}
		}
		if len(it.Meta) > o.MaxMetaBytes {
			bad(i, "metadata of %d bytes, at most %d", len(it.Meta), o.MaxMetaBytes)
		} else if len(it.Meta) > 0 && !json.Valid(it.Meta) {
			bad(i, "metadata is not valid JSON")
		}
	}
	if len(errs) == 0 {
		return nil
	}
	msg := errs[0]
	for _, e := range errs[1:] {
		msg += "; " + e
	}
	return fmt.Errorf("%w: %s", ErrInvalid, msg)
}

// checkUserID returns what is wrong with a user id, or "".
func checkUserID(id string) string {
	switch {
	case id == "":
		return "empty user id"
	case len(id) > MaxUserIDBytes:
		return fmt.Sprintf("user id of %d bytes, at most %d", len(id), MaxUserIDBytes)
	case !utf8.ValidString(id):
		return "user id is not valid UTF-8"
	}
	return ""
}
