package store

import (
	"encoding/binary"
	"fmt"
	"math"
)

// Values are little endian (keys are big endian so that they sort); the
// layouts are drawn in docs/format/keys.md.

const valueVersion = 1

// recordVersion is the version of the log records written now. Version
// 1 carried each put's item whole; 2 added its attachment; 3 carries a
// put by reference (kind, list, id, user id): the item is in the same
// synced batch under its own key, and ScanLog reads it from there, so a
// vector reaches the disk once, not twice. Versions 1 and 2 still read.
const recordVersion = 3

// Item is one stored vector with its identity.
type Item struct {
	// UserID is the caller's id: 1..MaxUserIDBytes bytes.
	UserID string
	// ID is the internal id, unique in the cluster (decision 10).
	ID uint64
	// List is the ivf list (or flat-buffer list, BufferList) that holds it.
	List uint32
	// Vector holds the floats, kept for exact refine and retraining.
	Vector []float32
	// Meta is the item's metadata, JSON; empty for none.
	Meta []byte
	// Attachment is an opaque blob kept with the item under its own key
	// (an image item's thumbnail and source), empty for none. It is
	// written and logged with a put, deleted with the item, kept when the
	// item moves to another list, and read only by Store.Attachment and
	// ScanLog: item reads leave it nil.
	Attachment []byte
}

// OpKind says what a logged operation did.
type OpKind uint8

// Operation kinds (explicit numbers, append-only).
const (
	OpPut    OpKind = 1 // Item is stored (fully described)
	OpDelete OpKind = 2 // the item (UserID, ID, List) is removed
)

// Op is one applied operation of a logged batch. Deletes carry UserID, ID
// and List only. An upsert that replaces an existing id appears as the
// delete of the old copy followed by the put of the new one.
type Op struct {
	Kind OpKind
	Item Item
	// Gone marks a put read from the log (ScanLog) whose item a later
	// operation has removed or replaced: the log names its items (record
	// version 3) instead of copying them, so its content is no longer
	// known; Item holds the list, id and user id only. Whoever applies
	// the log skips it: the later operation undoes it anyway.
	Gone bool
}

// Record is one applied batch of a shard's write log.
type Record struct {
	Seq uint64
	Ops []Op
	// byRef: the record's puts name their items (version 3); ScanLog
	// fills them in from the items' keys.
	byRef bool
}

// encoder appends to a byte slice.
type encoder struct{ b []byte }

func (e *encoder) u8(x uint8)        { e.b = append(e.b, x) }
func (e *encoder) u32(x uint32)      { e.b = binary.LittleEndian.AppendUint32(e.b, x) }
func (e *encoder) u64(x uint64)      { e.b = binary.LittleEndian.AppendUint64(e.b, x) }
func (e *encoder) uvarint(x uint64)  { e.b = binary.AppendUvarint(e.b, x) }
func (e *encoder) str(s string)      { e.uvarint(uint64(len(s))); e.b = append(e.b, s...) }
func (e *encoder) bytesLen(p []byte) { e.uvarint(uint64(len(p))); e.b = append(e.b, p...) }
func (e *encoder) f32s(v []float32) {
	e.uvarint(uint64(len(v)))
	for _, x := range v {
		e.b = binary.LittleEndian.AppendUint32(e.b, math.Float32bits(x))
	}
}

// itemBody is the part of an item that both the item record and a logged
// put carry.
func (e *encoder) itemBody(it *Item) {
	e.str(it.UserID)
	e.f32s(it.Vector)
	e.bytesLen(it.Meta)
}

func encodeItem(it *Item) []byte {
	e := encoder{b: make([]byte, 0, 16+len(it.UserID)+4*len(it.Vector)+len(it.Meta))}
	e.u8(valueVersion)
	e.itemBody(it)
	return e.b
}

func encodeRecord(ops []Op) []byte {
	n := 8
	for i := range ops {
		n += 16 + binary.MaxVarintLen16 + len(ops[i].Item.UserID)
	}
	e := encoder{b: make([]byte, 0, n)}
	e.u8(recordVersion)
	e.uvarint(uint64(len(ops)))
	for i := range ops {
		op := &ops[i]
		e.u8(uint8(op.Kind))
		e.u32(op.Item.List)
		e.u64(op.Item.ID)
		e.str(op.Item.UserID) // a put's item is read from its key
	}
	return e.b
}

func encodeLoc(list uint32, id uint64) []byte {
	e := encoder{b: make([]byte, 0, 12)}
	e.u32(list)
	e.u64(id)
	return e.b
}

func encodeList(list uint32) []byte { return binary.LittleEndian.AppendUint32(nil, list) }

// idEntry is an id index value: the item's list and, in entries written
// since the format grew them, its user id and whether it has metadata, so
// that naming a search hit without metadata reads only this small value.
type idEntry struct {
	list    uint32
	userID  string
	hasMeta bool
	named   bool // userID and hasMeta are known (not a 4-byte entry)
}

// Flags of an id index entry.
const idFlagMeta = 0x01 // the item has metadata

func encodeIDEntry(it *Item) []byte {
	e := encoder{b: make([]byte, 0, 6+len(it.UserID)+binary.MaxVarintLen16)}
	e.u32(it.List)
	var flags uint8
	if len(it.Meta) > 0 {
		flags |= idFlagMeta
	}
	e.u8(flags)
	e.str(it.UserID)
	return e.b
}

// decodeIDEntry reads an id index value: 4 bytes (list only, as first
// written) or list, flags, user id.
func decodeIDEntry(b []byte) (idEntry, error) {
	d := decoder{b: b}
	var e idEntry
	e.list = d.u32()
	if d.err == nil && len(d.b) > 0 {
		flags := d.u8()
		if d.err == nil && flags&^idFlagMeta != 0 {
			d.fail("id entry flags %#x", flags)
		}
		e.hasMeta = flags&idFlagMeta != 0
		e.userID = d.str()
		e.named = true
	}
	return e, d.done()
}

func decodeList(b []byte) (uint32, error) {
	d := decoder{b: b}
	list := d.u32()
	return list, d.done()
}

func encodeShardState(last, truncated uint64) []byte {
	e := encoder{b: make([]byte, 0, 16)}
	e.u64(last)
	e.u64(truncated)
	return e.b
}

// indexPtr says which file holds a collection's persisted ivf index and
// which log sequences (per shard) it covers.
type indexPtr struct {
	File    string
	Covered Seqs
}

func encodeIndexPtr(p *indexPtr) []byte {
	e := encoder{}
	e.u8(valueVersion)
	e.str(p.File)
	e.uvarint(uint64(len(p.Covered)))
	for _, sh := range p.Covered.shards() {
		e.u32(sh)
		e.u64(p.Covered[sh])
	}
	return e.b
}

// decoder reads a value with a sticky error: after the first problem every
// read returns zeros, and err says what went wrong. It never panics and
// never allocates more than the input can fill.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: "+format, append([]any{ErrCorrupt}, args...)...)
	}
}

func (d *decoder) take(n int) []byte {
	if d.err != nil {
		return nil
	}
	if n < 0 || n > len(d.b) {
		d.fail("%d bytes wanted, %d left", n, len(d.b))
		return nil
	}
	p := d.b[:n:n]
	d.b = d.b[n:]
	return p
}

func (d *decoder) u8() uint8 {
	if p := d.take(1); p != nil {
		return p[0]
	}
	return 0
}

func (d *decoder) u32() uint32 {
	if p := d.take(4); p != nil {
		return binary.LittleEndian.Uint32(p)
	}
	return 0
}

func (d *decoder) u64() uint64 {
	if p := d.take(8); p != nil {
		return binary.LittleEndian.Uint64(p)
	}
	return 0
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	x, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail("bad varint")
		return 0
	}
	d.b = d.b[n:]
	return x
}

// length reads a count of units of size bytes each and checks that the
// rest of the input can hold them.
func (d *decoder) length(size int) int {
	n := d.uvarint()
	if d.err == nil && n > uint64(len(d.b)/size) {
		d.fail("length %d × %d exceeds the %d bytes left", n, size, len(d.b))
		return 0
	}
	return int(n)
}

func (d *decoder) str() string { return string(d.take(d.length(1))) }

func (d *decoder) bytesCopy() []byte {
	p := d.take(d.length(1))
	if len(p) == 0 {
		return nil
	}
	return append([]byte(nil), p...)
}

func (d *decoder) f32s() []float32 {
	n := d.length(4)
	p := d.take(4 * n)
	if p == nil {
		return nil
	}
	v := make([]float32, n)
	for i := range v {
		v[i] = math.Float32frombits(binary.LittleEndian.Uint32(p[4*i:]))
	}
	return v
}

func (d *decoder) version() {
	if v := d.u8(); d.err == nil && v != valueVersion {
		d.fail("value version %d, this build reads %d", v, valueVersion)
	}
}

// done fails if input is left over and returns the sticky error.
func (d *decoder) done() error {
	if d.err == nil && len(d.b) != 0 {
		d.fail("%d trailing bytes", len(d.b))
	}
	return d.err
}

func (d *decoder) itemBody(it *Item) {
	it.UserID = d.str()
	it.Vector = d.f32s()
	it.Meta = d.bytesCopy()
}

// decodeItem decodes an item value; list and id come from the key.
func decodeItem(b []byte, list uint32, id uint64) (Item, error) {
	return decodeItemOpt(b, list, id, true)
}

// decodeItemOpt is decodeItem, checking but not copying the vector
// unless withVector.
func decodeItemOpt(b []byte, list uint32, id uint64, withVector bool) (Item, error) {
	d := decoder{b: b}
	d.version()
	it := Item{List: list, ID: id}
	if withVector {
		d.itemBody(&it)
	} else {
		it.UserID = d.str()
		d.take(4 * d.length(4))
		it.Meta = d.bytesCopy()
	}
	return it, d.done()
}

// decodeRecord decodes a log record value.
func decodeRecord(b []byte, seq uint64) (Record, error) {
	d := decoder{b: b}
	v := d.u8()
	if d.err == nil && v != 1 && v != recordVersion {
		d.fail("log record version %d, this build reads 1 and %d", v, recordVersion)
	}
	n := d.length(13) // every op takes at least 13 bytes
	r := Record{Seq: seq, Ops: make([]Op, n)}
	for i := range r.Ops {
		op := &r.Ops[i]
		op.Kind = OpKind(d.u8())
		op.Item.List = d.u32()
		op.Item.ID = d.u64()
		switch op.Kind {
		case OpPut:
			if v >= 3 {
				op.Item.UserID = d.str()
				r.byRef = true
				break
			}
			d.itemBody(&op.Item)
			if v >= 2 {
				op.Item.Attachment = d.bytesCopy()
			}
		case OpDelete:
			op.Item.UserID = d.str()
		default:
			d.fail("op %d: unknown kind %d", i, op.Kind)
		}
		if d.err != nil {
			break
		}
	}
	if err := d.done(); err != nil {
		return Record{}, err
	}
	return r, nil
}

func decodeLoc(b []byte) (list uint32, id uint64, err error) {
	d := decoder{b: b}
	list, id = d.u32(), d.u64()
	return list, id, d.done()
}

func decodeShardState(b []byte) (last, truncated uint64, err error) {
	d := decoder{b: b}
	last, truncated = d.u64(), d.u64()
	if d.err == nil && truncated > last {
		d.fail("truncated through %d beyond last sequence %d", truncated, last)
	}
	return last, truncated, d.done()
}

func decodeIndexPtr(b []byte) (indexPtr, error) {
	d := decoder{b: b}
	d.version()
	p := indexPtr{File: d.str()}
	n := d.length(12)
	p.Covered = make(Seqs, n)
	for i := 0; i < n && d.err == nil; i++ {
		sh := d.u32()
		p.Covered[sh] = d.u64()
	}
	if d.err == nil && !validFileName(p.File) {
		d.fail("index file name %q", p.File)
	}
	return p, d.done()
}
