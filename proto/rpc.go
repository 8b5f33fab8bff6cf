package proto

import (
	"encoding/binary"
	"fmt"
	"math"
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
}

// RPCWriteReply gives the internal id each item got, in order.
type RPCWriteReply struct {
	IDs []uint64
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
type RPCDelete struct {
	Collection string
	Epoch      uint64
	UserIDs    []string
	Keep       []uint64
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
// Begin (drop whatever the node holds of the shard's Lists, or of the
// buffer with Buffer, and start recording the user ids that replicated
// writes and deletes touch), then calls with Items (applied unless their
// user id was touched or holds another internal id), then End.
type RPCCopy struct {
	Collection string
	Version    uint64
	From       string
	Begin, End bool
	Buffer     bool
	Lists      []int32
	Items      []RPCItem
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

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
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

func (r *binReader) bytes() []byte {
	n := r.uvarint()
	if n == 0 {
		return nil
	}
	return append([]byte{}, r.take(n-1)...)
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
