package proto

import (
	"encoding/binary"
	"fmt"
	"math"
	"unsafe"
)

// The internal RPC between nodes (docs/format/rpc.md): POST
// /v1/internal/shard/{op} on the callee's HTTP API, the request and the
// reply each one value of the types below in encoding/gob, with the header
// RPCHeader: RPCVersion. Vectors travel as little-endian float32 bytes
// (PackVector), which gob copies as one byte string. A failed call answers
// with a non-200 status and an RPCError. Fields may be added (gob ignores
// fields it does not know and zeroes those it does not get); a change that
// alters the meaning of a field bumps RPCVersion, and a callee refuses a
// call of another version.

// RPCVersion is the version of the internal RPC.
const RPCVersion = "1"

// RPCHeader carries RPCVersion on every call.
const RPCHeader = "Lookalike-Rpc"

// RPCContentType is the media type of gob bodies.
const RPCContentType = "application/x-lookalike-gob"

// RPCBinaryContentType is the media type of a body in a type's own binary
// layout (the search call and reply).
const RPCBinaryContentType = "application/x-lookalike-bin"

// Internal RPC operations: the last path element.
const (
	OpWrite     = "write"     // a gateway's write to the primary of the items' shards
	OpReplicate = "replicate" // a primary's ordered write to a backup
	OpSearch    = "search"    // scan some lists (and/or the buffer) of a collection
	OpGet       = "get"       // read one item by user id
	OpDelete    = "delete"    // delete user ids from every copy the callee holds
	OpTrain     = "train"     // start training on the buffer's primary
	OpCopy      = "copy"      // a primary's full copy of a shard to a joining replica
	OpCount     = "count"     // live items in some lists (and/or the buffer)
	OpVersion   = "version"   // the Raft leader's table version (a read barrier)
)

// RPCVersionReply is the leader's table version.
type RPCVersionReply struct {
	Version uint64
}

// RPCItem is one item of a write. ID 0 asks the primary to allocate one;
// a non-zero ID is kept (the buffer's move after training, replication).
// List is the ivf list the gateway assigned, or -1 for the flat buffer.
type RPCItem struct {
	UserID     string
	ID         uint64
	List       int32
	Vector     []byte // PackVector
	Meta       []byte
	Attachment []byte
}

// RPCWrite asks the primary of the items' shards to store them. Version
// is the caller's table version: the callee waits until its own table is
// at least as new before it checks that it is the primary.
type RPCWrite struct {
	Collection string
	Epoch      uint64
	Version    uint64
	Items      []RPCItem
	// Dir, on a collection's id directory, makes each item an operation
	// on the user id's entry (Meta, an entry: docs/format/rpc.md) that
	// the partition's primary resolves against the stored entry: DirAdd
	// or DirPrune. 0 for an ordinary write.
	Dir uint8
	// Deadline (Unix nanoseconds; 0 none) is when the gateway gives up:
	// a primary that would apply the write later refuses it instead.
	Deadline int64
}

// Directory operations (RPCWrite.Dir).
const (
	// DirAdd adds the lists of the item's entry to the stored entry,
	// stamped with the primary's clock; the reply's Prior gives the
	// entries as they were.
	DirAdd uint8 = 1
	// DirPrune removes the lists of the item's entry from the stored
	// entry, each only if it was added long enough ago that no write
	// naming it can still be in flight; an entry left empty is deleted.
	DirPrune uint8 = 2
)

// RPCWriteReply gives the internal id each item got, in order, and the
// nodes that applied the write: the primary and every backup (or joining
// replica) that acknowledged it. A backup taken out of the shard instead
// is not named.
type RPCWriteReply struct {
	IDs     []uint64
	Applied []string
	// Prior (DirAdd only): each item's entry before the call, nil where
	// there was none.
	Prior [][]byte
}

// RPCReplicate is a primary's write to one backup: the items as the
// primary stored them (ids and lists set). Seq orders the calls of one
// Stream (one primary process, collection and backup): the backup applies
// them in Seq order, starting at 1.
type RPCReplicate struct {
	Collection string
	Version    uint64
	From       string // the primary's node id
	Stream     uint64
	Seq        uint64
	Items      []RPCItem
}

// RPCSearch scans Lists (with Dists, each list's coarse distance, as
// ivf.Probe carries it) and, with Buffer, the flat buffer.
type RPCSearch struct {
	Collection string
	Epoch      uint64
	Vector     []byte // PackVector
	K          int
	Refine     int
	Lists      []int32
	Dists      []float32
	Buffer     bool
}

// RPCHit is one hit: internal id and distance, with the user id and
// metadata so the gateway needs no second round trip.
type RPCHit struct {
	ID     uint64
	Dist   float32
	UserID string
	Meta   []byte
}

// RPCSearchReply is the callee's top-K, best first.
type RPCSearchReply struct {
	Hits []RPCHit
}

// RPCGet reads one item.
type RPCGet struct {
	Collection     string
	Epoch          uint64
	UserID         string
	WithVector     bool
	WithAttachment bool
	// Version, when set, is the table version the caller read the shards
	// by: the callee answers by that table or a newer one, waiting up to
	// a second for it (the directory sweep; added 2026-11-28).
	Version uint64
}

// RPCGetReply is the item, if the callee holds it.
type RPCGetReply struct {
	Found bool
	Item  RPCItem
}

// RPCDelete deletes user ids from every copy the callee holds. With Keep
// (one internal id per user id) a copy whose internal id is the kept one
// stays: the eviction of old copies after an upsert placed the new copy
// on another shard.
//
// Applied (with Keep; nil or one flag per user id) marks the ids whose
// new copy the callee itself applied in the write this eviction follows:
// a node keeps one copy per user id, so it holds no old copy of those and
// need not look them up (unless a copy into it is in progress).
type RPCDelete struct {
	Collection string
	Epoch      uint64
	UserIDs    []string
	Keep       []uint64
	Applied    []bool
	// Version is the table version the gateway routed the delete by (0
	// from builds before 2026-11-27): a callee whose table shows a node
	// joining a shard of the collection since refuses it as stale.
	Version uint64
}

// RPCDeleteReply counts the copies removed.
type RPCDeleteReply struct {
	Removed int
}

// RPCTrain starts training (NList 0: the collection's).
type RPCTrain struct {
	Collection string
	NList      int
}

// RPCTrainReply is the epoch training will commit.
type RPCTrainReply struct {
	Epoch uint64
}

// RPCCopy is one step of a primary's copy of a shard to a joining node:
// Begin (note the internal ids the node holds of the shard's Lists, or of
// the buffer with Buffer, and start recording the user ids that
// replicated writes and deletes touch), then calls with Offer (internal
// ids the primary holds; the reply names those the joiner lacks) and
// calls with Items (applied unless their user id was touched or holds
// another internal id), then End (drop the held ids never offered).
type RPCCopy struct {
	Collection string
	Version    uint64
	From       string
	Begin, End bool
	Buffer     bool
	Lists      []int32
	Items      []RPCItem
	Offer      []uint64
	// Users are the user ids of Offer's ids, in order, when the shard is
	// an id directory partition (whose entries are found by user id).
	Users []string
}

// RPCCopyReply answers a copy call: Held (to Begin) is how many items of
// the shard the joiner holds already, Missing (to an Offer) the offered
// ids it lacks.
type RPCCopyReply struct {
	Held    int
	Missing []uint64
}

// RPCCount asks for the live items in Lists and, with Buffer, in the flat
// buffer.
type RPCCount struct {
	Collection string
	Lists      []int32
	Buffer     bool
}

// RPCCountReply is the count.
type RPCCountReply struct {
	Count int64
}

// RPCError is a failed call's body. Code names the node error it wraps
// (docs/format/rpc.md lists them).
type RPCError struct {
	Code    string
	Message string
}

func (e *RPCError) Error() string { return e.Message }

// PackVector encodes v as little-endian float32 bytes.
func PackVector(v []float32) []byte {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
	}
	return b
}

// littleEndian: this machine lays out a float32 in memory as PackVector
// does, so a vector's memory is its packed form.
var littleEndian = binary.NativeEndian.Uint16([]byte{1, 0}) == 1

// VectorView is PackVector without the copy where the machine allows it
// (little endian): the bytes alias v, for a call encoded before v can
// change. The write path packs every vector once at the gateway and once
// per backup at the primary.
func VectorView(v []float32) []byte {
	if !littleEndian || len(v) == 0 {
		return PackVector(v)
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(v))), 4*len(v))
}

// UnpackVectors decodes PackVector's bytes of several vectors into one
// allocation: vector i of the result is bs[i], capped at its length.
func UnpackVectors(bs [][]byte) ([][]float32, error) {
	total := 0
	for i, b := range bs {
		if len(b)%4 != 0 {
			return nil, fmt.Errorf("vector %d: %d bytes is not float32s", i, len(b))
		}
		total += len(b) / 4
	}
	all := make([]float32, total)
	out := make([][]float32, len(bs))
	at := 0
	for i, b := range bs {
		n := len(b) / 4
		v := all[at : at+n : at+n]
		at += n
		if littleEndian && n > 0 {
			copy(unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(v))), 4*n), b)
		} else {
			for j := range v {
				v[j] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*j:]))
			}
		}
		out[i] = v
	}
	return out, nil
}

// UnpackVector decodes PackVector's bytes.
func UnpackVector(b []byte) ([]float32, error) {
	if len(b)%4 != 0 {
		return nil, fmt.Errorf("vector of %d bytes is not float32s", len(b))
	}
	v := make([]float32, len(b)/4)
	for i := range v {
		v[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return v, nil
}

// The search call and its reply, the hot path of every query, are not
// gob: gob describes its types at the start of every stream, and one
// call is one stream, so a decoder compiled its types on every call. They
// implement encoding.BinaryMarshaler with the layout of
// docs/format/rpc.md ("Search"), which the RPC layer sends as is.

// MarshalBinary implements encoding.BinaryMarshaler.
func (s *RPCSearch) MarshalBinary() ([]byte, error) {
	b := make([]byte, 0, 64+len(s.Collection)+len(s.Vector)+8*len(s.Lists))
	b = appendString(b, s.Collection)
	b = binary.AppendUvarint(b, s.Epoch)
	b = appendBytes(b, s.Vector)
	b = binary.AppendUvarint(b, uint64(s.K))
	b = binary.AppendUvarint(b, uint64(s.Refine))
	flag := byte(0)
	if s.Buffer {
		flag = 1
	}
	b = append(b, flag)
	if len(s.Dists) != len(s.Lists) {
		return nil, fmt.Errorf("search call: %d lists, %d distances", len(s.Lists), len(s.Dists))
	}
	b = binary.AppendUvarint(b, uint64(len(s.Lists)))
	for i, l := range s.Lists {
		b = binary.LittleEndian.AppendUint32(b, uint32(l))
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(s.Dists[i]))
	}
	return b, nil
}

// UnmarshalBinary implements encoding.BinaryUnmarshaler.
func (s *RPCSearch) UnmarshalBinary(b []byte) error {
	r := binReader{b: b}
	s.Collection = r.string()
	s.Epoch = r.uvarint()
	s.Vector = r.bytes()
	s.K = int(r.small())
	s.Refine = int(r.small())
	s.Buffer = r.byte() == 1
	n := r.count(8)
	s.Lists, s.Dists = make([]int32, n), make([]float32, n)
	for i := range n {
		s.Lists[i] = int32(r.u32())
		s.Dists[i] = math.Float32frombits(r.u32())
	}
	return r.done("search call")
}

// MarshalBinary implements encoding.BinaryMarshaler.
func (s *RPCSearchReply) MarshalBinary() ([]byte, error) {
	b := binary.AppendUvarint(nil, uint64(len(s.Hits)))
	for _, h := range s.Hits {
		b = binary.LittleEndian.AppendUint64(b, h.ID)
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(h.Dist))
		b = appendString(b, h.UserID)
		b = appendBytes(b, h.Meta)
	}
	return b, nil
}

// UnmarshalBinary implements encoding.BinaryUnmarshaler.
func (s *RPCSearchReply) UnmarshalBinary(b []byte) error {
	r := binReader{b: b}
	n := r.count(14)
	s.Hits = make([]RPCHit, n)
	for i := range n {
		h := &s.Hits[i]
		h.ID = r.u64()
		h.Dist = math.Float32frombits(r.u32())
		h.UserID = r.string()
		h.Meta = r.bytes()
	}
	return r.done("search reply")
}

// The write path's calls (write, its reply, replicate, and the delete
// that evicts after an upsert) have binary layouts too (docs/format/rpc.md,
// "Binary layouts"): gob's encoder grew its buffer by doubling and its
// decoder built every item field by reflection, 8 % of a cluster's CPU
// during ingest. A caller sends them as RPCBinaryContentType; the callee
// answers in the format it was called with.

// appendItems appends a varint count and the items.
func appendItems(b []byte, items []RPCItem) []byte {
	b = binary.AppendUvarint(b, uint64(len(items)))
	for i := range items {
		it := &items[i]
		b = appendString(b, it.UserID)
		b = binary.AppendUvarint(b, it.ID)
		b = binary.LittleEndian.AppendUint32(b, uint32(it.List))
		b = appendBytes(b, it.Vector)
		b = appendBytes(b, it.Meta)
		b = appendBytes(b, it.Attachment)
	}
	return b
}

// itemsSize is an upper bound of appendItems' bytes.
func itemsSize(items []RPCItem) int {
	n := binary.MaxVarintLen64
	for i := range items {
		it := &items[i]
		n += 5*binary.MaxVarintLen64 + 4 + len(it.UserID) + len(it.Vector) + len(it.Meta) + len(it.Attachment)
	}
	return n
}

// items reads appendItems' layout. The byte fields alias the body, which
// the callee reads into a buffer of its own for each call.
func (r *binReader) items() []RPCItem {
	n := r.count(8) // at least: user id, id, list, three nil byte fields
	items := make([]RPCItem, n)
	for i := range items {
		it := &items[i]
		it.UserID = r.string()
		it.ID = r.uvarint()
		it.List = int32(r.u32())
		it.Vector = r.view()
		it.Meta = r.view()
		it.Attachment = r.view()
	}
	return items
}

// MarshalBinary implements encoding.BinaryMarshaler.
func (w *RPCWrite) MarshalBinary() ([]byte, error) {
	b := make([]byte, 0, 4*binary.MaxVarintLen64+1+len(w.Collection)+itemsSize(w.Items))
	b = appendString(b, w.Collection)
	b = binary.AppendUvarint(b, w.Epoch)
	b = binary.AppendUvarint(b, w.Version)
	b = appendItems(b, w.Items)
	if w.Deadline < 0 {
		return nil, fmt.Errorf("write call: deadline %d", w.Deadline)
	}
	b = append(b, w.Dir)
	return binary.AppendUvarint(b, uint64(w.Deadline)), nil
}

// UnmarshalBinary implements encoding.BinaryUnmarshaler.
func (w *RPCWrite) UnmarshalBinary(b []byte) error {
	r := binReader{b: b}
	w.Collection = r.string()
	w.Epoch = r.uvarint()
	w.Version = r.uvarint()
	w.Items = r.items()
	w.Dir = r.byte()
	w.Deadline = int64(r.uvarint() & math.MaxInt64)
	return r.done("write call")
}

// MarshalBinary implements encoding.BinaryMarshaler.
func (w *RPCWriteReply) MarshalBinary() ([]byte, error) {
	n := binary.MaxVarintLen64*(2+len(w.Prior)) + 8*len(w.IDs) + stringsSize(w.Applied)
	for _, p := range w.Prior {
		n += len(p)
	}
	b := make([]byte, 0, n)
	b = binary.AppendUvarint(b, uint64(len(w.IDs)))
	for _, id := range w.IDs {
		b = binary.LittleEndian.AppendUint64(b, id)
	}
	b = appendStrings(b, w.Applied)
	b = binary.AppendUvarint(b, uint64(len(w.Prior)))
	for _, p := range w.Prior {
		b = appendBytes(b, p)
	}
	return b, nil
}

// UnmarshalBinary implements encoding.BinaryUnmarshaler.
func (w *RPCWriteReply) UnmarshalBinary(b []byte) error {
	r := binReader{b: b}
	n := r.count(8)
	w.IDs = make([]uint64, n)
	for i := range w.IDs {
		w.IDs[i] = r.u64()
	}
	w.Applied = r.strings()
	if n := r.count(1); n > 0 {
		w.Prior = make([][]byte, n)
		for i := range w.Prior {
			w.Prior[i] = r.bytes()
		}
	}
	return r.done("write reply")
}

// MarshalBinary implements encoding.BinaryMarshaler.
func (c *RPCReplicate) MarshalBinary() ([]byte, error) {
	b := make([]byte, 0, 4*binary.MaxVarintLen64+len(c.Collection)+len(c.From)+itemsSize(c.Items))
	b = appendString(b, c.Collection)
	b = binary.AppendUvarint(b, c.Version)
	b = appendString(b, c.From)
	b = binary.AppendUvarint(b, c.Stream)
	b = binary.AppendUvarint(b, c.Seq)
	return appendItems(b, c.Items), nil
}

// UnmarshalBinary implements encoding.BinaryUnmarshaler.
func (c *RPCReplicate) UnmarshalBinary(b []byte) error {
	r := binReader{b: b}
	c.Collection = r.string()
	c.Version = r.uvarint()
	c.From = r.string()
	c.Stream = r.uvarint()
	c.Seq = r.uvarint()
	c.Items = r.items()
	return r.done("replicate call")
}

// MarshalBinary implements encoding.BinaryMarshaler.
func (d *RPCDelete) MarshalBinary() ([]byte, error) {
	if d.Keep != nil && len(d.Keep) != len(d.UserIDs) {
		return nil, fmt.Errorf("delete call: %d user ids, %d kept ids", len(d.UserIDs), len(d.Keep))
	}
	if d.Applied != nil && len(d.Applied) != len(d.UserIDs) {
		return nil, fmt.Errorf("delete call: %d user ids, %d applied flags", len(d.UserIDs), len(d.Applied))
	}
	b := make([]byte, 0, 3*binary.MaxVarintLen64+len(d.Collection)+stringsSize(d.UserIDs)+8*len(d.Keep)+len(d.Applied)/8+1)
	b = appendString(b, d.Collection)
	b = binary.AppendUvarint(b, d.Epoch)
	b = appendStrings(b, d.UserIDs)
	flags := byte(0)
	if d.Keep != nil {
		flags |= 1
	}
	if d.Applied != nil {
		flags |= 2
	}
	if d.Version != 0 {
		flags |= 4
	}
	b = append(b, flags)
	for _, id := range d.Keep {
		b = binary.LittleEndian.AppendUint64(b, id)
	}
	if d.Applied != nil {
		bits := make([]byte, (len(d.Applied)+7)/8)
		for i, a := range d.Applied {
			if a {
				bits[i/8] |= 1 << (i % 8)
			}
		}
		b = append(b, bits...)
	}
	if d.Version != 0 {
		b = binary.AppendUvarint(b, d.Version)
	}
	return b, nil
}

// UnmarshalBinary implements encoding.BinaryUnmarshaler.
func (d *RPCDelete) UnmarshalBinary(b []byte) error {
	r := binReader{b: b}
	d.Collection = r.string()
	d.Epoch = r.uvarint()
	d.UserIDs = r.strings()
	n := len(d.UserIDs)
	flags := r.byte()
	if flags > 7 {
		r.fail("delete flags")
	}
	d.Keep, d.Applied, d.Version = nil, nil, 0
	if flags&1 != 0 {
		if uint64(len(r.b)) < 8*uint64(n) {
			r.fail("kept ids")
		}
		d.Keep = make([]uint64, n)
		for i := range d.Keep {
			d.Keep[i] = r.u64()
		}
	}
	if flags&2 != 0 {
		bits := r.take(uint64(n+7) / 8)
		if len(bits) == (n+7)/8 {
			d.Applied = make([]bool, n)
			for i := range d.Applied {
				d.Applied[i] = bits[i/8]&(1<<(i%8)) != 0
			}
			if n%8 != 0 && bits[len(bits)-1]>>(n%8) != 0 {
				r.fail("applied flags") // padding bits must be zero: one encoding per value
			}
		}
	}
	if flags&4 != 0 {
		if d.Version = r.uvarint(); d.Version == 0 {
			r.fail("delete version") // 0 is sent as no version: one encoding per value
		}
	}
	return r.done("delete call")
}

// MarshalBinary implements encoding.BinaryMarshaler.
func (d *RPCDeleteReply) MarshalBinary() ([]byte, error) {
	if d.Removed < 0 {
		return nil, fmt.Errorf("delete reply: %d removed", d.Removed)
	}
	return binary.AppendUvarint(nil, uint64(d.Removed)), nil
}

// UnmarshalBinary implements encoding.BinaryUnmarshaler.
func (d *RPCDeleteReply) UnmarshalBinary(b []byte) error {
	r := binReader{b: b}
	d.Removed = int(r.small())
	return r.done("delete reply")
}

// The get call and its reply (a read by id: the directory entry, then
// the copy) have binary layouts too (since 2026-11-28): as gob, each
// side of every call compiled its types afresh.

// MarshalBinary implements encoding.BinaryMarshaler.
func (g *RPCGet) MarshalBinary() ([]byte, error) {
	b := make([]byte, 0, 3*binary.MaxVarintLen64+1+len(g.Collection)+len(g.UserID))
	b = appendString(b, g.Collection)
	b = binary.AppendUvarint(b, g.Epoch)
	b = appendString(b, g.UserID)
	flags := byte(0)
	if g.WithVector {
		flags |= 1
	}
	if g.WithAttachment {
		flags |= 2
	}
	b = append(b, flags)
	return binary.AppendUvarint(b, g.Version), nil
}

// UnmarshalBinary implements encoding.BinaryUnmarshaler.
func (g *RPCGet) UnmarshalBinary(b []byte) error {
	r := binReader{b: b}
	g.Collection = r.string()
	g.Epoch = r.uvarint()
	g.UserID = r.string()
	flags := r.byte()
	if flags > 3 {
		r.fail("get flags")
	}
	g.WithVector, g.WithAttachment = flags&1 != 0, flags&2 != 0
	g.Version = r.uvarint()
	return r.done("get call")
}

// MarshalBinary implements encoding.BinaryMarshaler. A reply that found
// nothing carries no item.
func (g *RPCGetReply) MarshalBinary() ([]byte, error) {
	if !g.Found {
		it := &g.Item
		if it.UserID != "" || it.ID != 0 || it.List != 0 || it.Vector != nil || it.Meta != nil || it.Attachment != nil {
			return nil, fmt.Errorf("get reply: an item with found false")
		}
		return []byte{0}, nil
	}
	items := []RPCItem{g.Item}
	return appendItems(append(make([]byte, 0, 1+itemsSize(items)), 1), items), nil
}

// UnmarshalBinary implements encoding.BinaryUnmarshaler.
func (g *RPCGetReply) UnmarshalBinary(b []byte) error {
	r := binReader{b: b}
	*g = RPCGetReply{}
	switch r.byte() {
	case 0:
	case 1:
		if items := r.items(); len(items) == 1 {
			g.Found, g.Item = true, items[0]
		} else {
			r.fail("get reply items")
		}
	default:
		r.fail("get reply found")
	}
	return r.done("get reply")
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// appendStrings appends a varint count and the strings.
func appendStrings(b []byte, ss []string) []byte {
	b = binary.AppendUvarint(b, uint64(len(ss)))
	for _, s := range ss {
		b = appendString(b, s)
	}
	return b
}

// stringsSize is an upper bound of appendStrings' bytes.
func stringsSize(ss []string) int {
	n := binary.MaxVarintLen64
	for _, s := range ss {
		n += binary.MaxVarintLen64 + len(s)
	}
	return n
}

func appendBytes(b, p []byte) []byte {
	if p == nil {
		return binary.AppendUvarint(b, 0)
	}
	b = binary.AppendUvarint(b, uint64(len(p))+1) // 0 is nil, n+1 is n bytes
	return append(b, p...)
}

// binReader reads the binary layouts; the first error sticks.
type binReader struct {
	b   []byte
	err error
}

func (r *binReader) fail(what string) {
	if r.err == nil {
		r.err = fmt.Errorf("truncated or corrupt %s", what)
	}
	r.b = nil
}

func (r *binReader) uvarint() uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail("varint")
		return 0
	}
	r.b = r.b[n:]
	return v
}

// small is a varint that must fit an int32 (k, refine).
func (r *binReader) small() uint64 {
	v := r.uvarint()
	if v > math.MaxInt32 {
		r.fail("count")
		return 0
	}
	return v
}

// count is a length of elements of at least min bytes each, checked
// against what is left.
func (r *binReader) count(min int) int {
	v := r.uvarint()
	if v > uint64(len(r.b)/min) {
		r.fail("length")
		return 0
	}
	return int(v)
}

func (r *binReader) take(n uint64) []byte {
	if n > uint64(len(r.b)) {
		r.fail("field")
		return nil
	}
	p := r.b[:n:n]
	r.b = r.b[n:]
	return p
}

func (r *binReader) string() string { return string(r.take(r.uvarint())) }

// strings reads appendStrings' layout.
func (r *binReader) strings() []string {
	ss := make([]string, r.count(1))
	for i := range ss {
		ss[i] = r.string()
	}
	return ss
}

func (r *binReader) bytes() []byte {
	n := r.uvarint()
	if n == 0 {
		return nil
	}
	return append([]byte{}, r.take(n-1)...)
}

// view is bytes without the copy: the slice aliases the body.
func (r *binReader) view() []byte {
	n := r.uvarint()
	if n == 0 {
		return nil
	}
	return r.take(n - 1)
}

func (r *binReader) byte() byte {
	p := r.take(1)
	if len(p) == 0 {
		return 0
	}
	return p[0]
}

func (r *binReader) u32() uint32 {
	p := r.take(4)
	if len(p) < 4 {
		return 0
	}
	return binary.LittleEndian.Uint32(p)
}

func (r *binReader) u64() uint64 {
	p := r.take(8)
	if len(p) < 8 {
		return 0
	}
	return binary.LittleEndian.Uint64(p)
}

func (r *binReader) done(what string) error {
	if r.err != nil {
		return fmt.Errorf("%s: %w", what, r.err)
	}
	if len(r.b) != 0 {
		return fmt.Errorf("%s: %d trailing bytes", what, len(r.b))
	}
	return nil
}
