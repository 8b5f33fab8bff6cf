package store

import "encoding/binary"

// Record types: the first byte of every key. Explicit numbers, append-only,
// never reused (docs/format/keys.md).
const (
	recItem     byte = 0x01 // coll, list, id → item
	recDir      byte = 0x02 // coll, user id → list, id
	recID       byte = 0x03 // coll, id → list
	recLog      byte = 0x04 // coll, shard, seq → log record
	recShard    byte = 0x05 // coll, shard → last seq, truncated through
	recIndexPtr byte = 0x06 // coll → persisted index file and the sequences it covers
	recName     byte = 0x07 // collection name → coll (not scoped by collection)
	recNextColl byte = 0x08 // (no suffix) → the next collection number
	recAttach   byte = 0x09 // coll, id → the item's attachment
	recCreated  byte = 0x0a // coll → the incarnation of the collection its data belongs to
	recEntry    byte = 0x0b // coll, user id → internal id, entry (an entry collection: entries.go)
)

// recordTypes lists every record type that is scoped by collection, for
// DropCollection.
var recordTypes = []byte{recItem, recDir, recID, recLog, recShard, recIndexPtr, recAttach, recCreated, recEntry}

// BufferBase is the first flat-buffer list number: an untrained
// collection's flat-buffer shard n keeps its items in list BufferBase+n
// (see BufferList), so they never collide with trained lists (ivf allows
// at most 2²⁰) and sort after them.
const BufferBase uint32 = 1 << 31

// BufferList is the list number of flat-buffer shard n (decision 5).
func BufferList(n uint32) uint32 { return BufferBase | n }

// IsBufferList reports whether list is a flat-buffer shard.
func IsBufferList(list uint32) bool { return list&BufferBase != 0 }

func collPrefix(typ byte, coll uint32) []byte {
	k := make([]byte, 5, 24)
	k[0] = typ
	binary.BigEndian.PutUint32(k[1:], coll)
	return k
}

func itemKey(coll, list uint32, id uint64) []byte {
	k := binary.BigEndian.AppendUint32(collPrefix(recItem, coll), list)
	return binary.BigEndian.AppendUint64(k, id)
}

func listPrefix(coll, list uint32) []byte {
	return binary.BigEndian.AppendUint32(collPrefix(recItem, coll), list)
}

func dirKey(coll uint32, userID string) []byte {
	return append(collPrefix(recDir, coll), userID...)
}

func entryKey(coll uint32, userID string) []byte {
	return append(collPrefix(recEntry, coll), userID...)
}

func idKey(coll uint32, id uint64) []byte {
	return binary.BigEndian.AppendUint64(collPrefix(recID, coll), id)
}

func attachKey(coll uint32, id uint64) []byte {
	return binary.BigEndian.AppendUint64(collPrefix(recAttach, coll), id)
}

func logPrefix(coll, shard uint32) []byte {
	return binary.BigEndian.AppendUint32(collPrefix(recLog, coll), shard)
}

func logKey(coll, shard uint32, seq uint64) []byte {
	return binary.BigEndian.AppendUint64(logPrefix(coll, shard), seq)
}

func shardKey(coll, shard uint32) []byte {
	return binary.BigEndian.AppendUint32(collPrefix(recShard, coll), shard)
}

func indexPtrKey(coll uint32) []byte { return collPrefix(recIndexPtr, coll) }

func nameKey(name string) []byte { return append([]byte{recName}, name...) }

// prefixEnd is the smallest key greater than every key that starts with p
// (nil when p is all 0xff, which no key here is).
func prefixEnd(p []byte) []byte {
	e := append([]byte(nil), p...)
	for i := len(e) - 1; i >= 0; i-- {
		if e[i] != 0xff {
			e[i]++
			return e[:i+1]
		}
	}
	return nil
}

// parseItemKey returns the list and id of an item key.
func parseItemKey(k []byte) (list uint32, id uint64, ok bool) {
	if len(k) != 17 || k[0] != recItem {
		return 0, 0, false
	}
	return binary.BigEndian.Uint32(k[5:]), binary.BigEndian.Uint64(k[9:]), true
}

// parseLogKey returns the sequence number of a log key.
func parseLogKey(k []byte) (uint64, bool) {
	if len(k) != 17 || k[0] != recLog {
		return 0, false
	}
	return binary.BigEndian.Uint64(k[9:]), true
}
