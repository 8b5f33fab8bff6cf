package proto

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"strconv"
	"sync"
	"unicode/utf8"
)

// The binary bulk insert format (Content-Type BulkContentType), described
// with byte diagrams in docs/format/bulk.md. All integers are little
// endian, floats IEEE-754 binary32:
//
//	header  magic "LKBLK\r\n\x1a" | version u16 | flags u16 | dim u32 | count u32
//	item    id_len u16 | id | dim × f32 | meta_len u32 | meta      (count times)
//	trailer crc32c u32 of every byte before it                     (flag BulkCRC)

// BulkMagic opens every bulk body.
const BulkMagic = "LKBLK\r\n\x1a"

// BulkVersion is the version this package writes and reads.
const BulkVersion = 1

// BulkHeaderSize is the size of the header in bytes.
const BulkHeaderSize = 20

// Bulk header flags.
const (
	BulkCRC uint16 = 1 << 0 // a CRC32C (Castagnoli) trailer follows the items

	bulkKnownFlags = BulkCRC
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// BulkHeader is the decoded header of a bulk body.
type BulkHeader struct {
	Version int
	Flags   uint16
	Dim     int
	Count   int
}

// BulkDecoder reads a bulk body item by item, checking as it goes. Its
// error is sticky: after the first problem Next returns false and Err
// reports it, as an *Error (bad_request, or too_large for limits). Every
// length is checked against Limits before anything is allocated for it, so
// a lying header fails at once. It is not safe for concurrent use.
type BulkDecoder struct {
	br    *bufio.Reader
	lim   Limits
	hdr   BulkHeader
	hdrOK bool
	check bool      // per-item checks of ids, floats and meta (off in DecodeBulk, which validates the batch after)
	batch *problems // without check: where non-finite floats are reported (their check is free while decoding)
	n     int       // items decoded
	read  int64
	crc   uint32
	err   error

	scratch []byte
	vec     []float32
	id      []byte
	meta    []byte
}

// bulkBufSize is the read buffer: items up to this size are decoded from
// it without another copy.
const bulkBufSize = 64 << 10

// NewBulkDecoder returns a decoder of the bulk body in r under limits
// (zero fields: defaults).
func NewBulkDecoder(r io.Reader, limits Limits) *BulkDecoder {
	d := &BulkDecoder{check: true}
	d.lim, d.err = limits.resolve()
	d.br = readers.Get().(*bufio.Reader)
	d.br.Reset(r)
	return d
}

// readers recycles the decoders' read buffers.
var readers = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, bulkBufSize) }}

// release gives the read buffer back once the decoder is done with the
// body: at the end, or at its first error.
func (d *BulkDecoder) release() {
	if d.err != nil && d.br != nil {
		d.br.Reset(nil)
		readers.Put(d.br)
		d.br = nil
	}
}

func (d *BulkDecoder) fail(code Code, format string, args ...any) {
	if d.err == nil {
		d.err = &Error{Code: code, Message: "bulk: " + fmt.Sprintf(format, args...)}
	}
}

// take returns the next n bytes, valid until the next call; it counts them
// against the body limit and into the CRC.
func (d *BulkDecoder) take(n int, what string) []byte {
	if d.err != nil {
		return nil
	}
	if d.read+int64(n) > d.lim.MaxBodyBytes {
		d.fail(TooLarge, "body over the limit of %d bytes (at %s)", d.lim.MaxBodyBytes, d.where(what))
		return nil
	}
	var b []byte
	var err error
	if n <= bulkBufSize {
		b, err = d.br.Peek(n)
		if err == nil {
			d.br.Discard(n)
		}
	} else {
		if cap(d.scratch) < n {
			d.scratch = make([]byte, n)
		}
		b = d.scratch[:n]
		_, err = io.ReadFull(d.br, b)
	}
	if err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, bufio.ErrBufferFull) {
			d.fail(BadRequest, "truncated at %s (byte %d)", d.where(what), d.read)
		} else if isMaxBytes(err) {
			d.fail(TooLarge, "body over the limit of %d bytes", d.lim.MaxBodyBytes)
		} else {
			d.err = Errorf(BadRequest, "bulk: read %s: %w", d.where(what), err)
		}
		return nil
	}
	d.read += int64(n)
	if d.hdr.Flags&BulkCRC != 0 {
		d.crc = crc32.Update(d.crc, castagnoli, b)
	}
	return b
}

// where names the part being read, for messages.
func (d *BulkDecoder) where(what string) string {
	if d.hdrOK && d.n < d.hdr.Count {
		return "items[" + strconv.Itoa(d.n) + "]." + what
	}
	return what
}

// Header reads and checks the header, once; later calls return it again.
func (d *BulkDecoder) Header() (BulkHeader, error) {
	defer d.release()
	if d.hdrOK || d.err != nil {
		return d.hdr, d.err
	}
	b := d.take(BulkHeaderSize, "header")
	if b == nil {
		return d.hdr, d.err
	}
	if string(b[:8]) != BulkMagic {
		d.fail(BadRequest, "bad magic %q, want %q", b[:8], BulkMagic)
		return d.hdr, d.err
	}
	h := BulkHeader{
		Version: int(binary.LittleEndian.Uint16(b[8:])),
		Flags:   binary.LittleEndian.Uint16(b[10:]),
		Dim:     int(binary.LittleEndian.Uint32(b[12:])),
		Count:   int(binary.LittleEndian.Uint32(b[16:])),
	}
	switch {
	case h.Version != BulkVersion:
		d.fail(BadRequest, "version %d, want %d", h.Version, BulkVersion)
	case h.Flags&^bulkKnownFlags != 0:
		d.fail(BadRequest, "unknown flags %#04x", h.Flags&^bulkKnownFlags)
	case h.Dim < 1:
		d.fail(BadRequest, "dim 0")
	case h.Dim > MaxDim:
		d.fail(TooLarge, "dim %d, limit is %d", h.Dim, MaxDim)
	case h.Count < 1:
		d.fail(BadRequest, "empty batch (count 0)")
	case h.Count > d.lim.MaxItems:
		d.fail(TooLarge, "%d items, limit is %d", h.Count, d.lim.MaxItems)
	}
	if d.err != nil {
		return d.hdr, d.err
	}
	if need := bulkMinSize(h); need > d.lim.MaxBodyBytes {
		d.fail(TooLarge, "%d items of dim %d take at least %d bytes, limit is %d", h.Count, h.Dim, need, d.lim.MaxBodyBytes)
		return d.hdr, d.err
	}
	if h.Flags&BulkCRC != 0 {
		d.crc = crc32.Update(0, castagnoli, b)
	}
	d.hdr, d.hdrOK = h, true
	return h, nil
}

// bulkMinSize is the smallest body the header h allows: empty ids and
// meta.
func bulkMinSize(h BulkHeader) int64 {
	n := int64(BulkHeaderSize) + int64(h.Count)*(2+4*int64(h.Dim)+4)
	if h.Flags&BulkCRC != 0 {
		n += 4
	}
	return n
}

// Next decodes the next item and reports whether there is one. After the
// last item it checks the trailer and that nothing follows; then, and
// after an error, it returns false.
func (d *BulkDecoder) Next() bool {
	if _, err := d.Header(); err != nil {
		return false
	}
	if cap(d.vec) < d.hdr.Dim {
		d.vec = make([]float32, d.hdr.Dim)
	}
	d.vec = d.vec[:d.hdr.Dim]
	return d.next(d.vec)
}

// next decodes the next item's vector into vec (len dim).
func (d *BulkDecoder) next(vec []float32) bool {
	defer d.release()
	if d.err != nil {
		return false
	}
	if d.n == d.hdr.Count {
		d.finish()
		return false
	}
	i := d.n
	b := d.take(2, "id length")
	if b == nil {
		return false
	}
	idLen := int(binary.LittleEndian.Uint16(b))
	if idLen > MaxIDBytes {
		d.fail(BadRequest, "items[%d].id: %d bytes, limit is %d", i, idLen, MaxIDBytes)
		return false
	}
	d.id = d.id[:0]
	if idLen > 0 {
		if b = d.take(idLen, "id"); b == nil {
			return false
		}
		d.id = append(d.id, b...)
		if d.check && !utf8.Valid(d.id) {
			d.fail(BadRequest, "items[%d].id: not valid UTF-8", i)
			return false
		}
	}
	if b = d.take(4*len(vec), "vector"); b == nil {
		return false
	}
	if bad := decodeFloats(vec, b); bad >= 0 {
		if d.check {
			d.fail(BadRequest, "items[%d].vector[%d]: %v is not finite", i, bad, vec[bad])
			return false
		}
		d.batch.add(BadRequest, fmt.Sprintf("items[%d].vector[%d]", i, bad), "%v is not finite", vec[bad])
	}
	if b = d.take(4, "meta length"); b == nil {
		return false
	}
	metaLen := binary.LittleEndian.Uint32(b)
	if int64(metaLen) > int64(d.lim.MaxMetaBytes) {
		d.fail(TooLarge, "items[%d].meta: %d bytes, limit is %d", i, metaLen, d.lim.MaxMetaBytes)
		return false
	}
	d.meta = d.meta[:0]
	if metaLen > 0 {
		if b = d.take(int(metaLen), "meta"); b == nil {
			return false
		}
		d.meta = append(d.meta, b...)
		if d.check {
			if code, msg := metaProblem(d.meta, d.lim.MaxMetaBytes, false); code != "" {
				d.fail(code, "items[%d].meta: %s", i, msg)
				return false
			}
		}
	}
	d.n++
	return true
}

// finish checks the trailer and the end of the body.
func (d *BulkDecoder) finish() {
	if d.hdr.Flags&BulkCRC != 0 {
		want := d.crc
		b := d.take(4, "crc32c trailer")
		if b == nil {
			return
		}
		if got := binary.LittleEndian.Uint32(b); got != want {
			d.fail(BadRequest, "crc32c mismatch: trailer says %#08x, body hashes to %#08x", got, want)
			return
		}
	}
	if _, err := d.br.ReadByte(); err == nil {
		d.fail(BadRequest, "trailing bytes after %d items (byte %d)", d.hdr.Count, d.read)
	} else if !errors.Is(err, io.EOF) {
		d.fail(BadRequest, "read after the last item: %s", err.Error())
	}
	if d.err == nil {
		d.err = errDone
	}
}

// errDone marks a body read to its end without a problem.
var errDone = errors.New("bulk: done")

// Item returns the current item. Its Vector and Meta are the decoder's
// buffers, valid until the next call of Next: copy what you keep.
func (d *BulkDecoder) Item() InsertItem {
	it := InsertItem{ID: string(d.id), Vector: d.vec}
	if len(d.meta) > 0 {
		it.Meta = d.meta
	}
	return it
}

// Err is nil when every item, the trailer and the end of the body were
// read without a problem, the problem otherwise (an *Error). Before Next
// returned false it is nil unless a problem was already found.
func (d *BulkDecoder) Err() error {
	if d.err == errDone {
		return nil
	}
	return d.err
}

// decodeFloats decodes len(dst) little-endian float32s from b and returns
// the index of the first NaN or Inf, or -1. (A copy through unsafe on
// little-endian machines measured no faster than this loop.)
func decodeFloats(dst []float32, b []byte) int {
	b = b[:4*len(dst)]
	// acc gets bit 31 from any value whose exponent is all ones (NaN or
	// Inf): adding 1 to that exponent carries into the sign bit.
	var acc uint32
	d := dst
	for len(d) >= 4 && len(b) >= 16 {
		u0 := binary.LittleEndian.Uint32(b[0:4])
		u1 := binary.LittleEndian.Uint32(b[4:8])
		u2 := binary.LittleEndian.Uint32(b[8:12])
		u3 := binary.LittleEndian.Uint32(b[12:16])
		d[0] = math.Float32frombits(u0)
		d[1] = math.Float32frombits(u1)
		d[2] = math.Float32frombits(u2)
		d[3] = math.Float32frombits(u3)
		acc |= (u0&0x7f800000 + 0x00800000) | (u1&0x7f800000 + 0x00800000) |
			(u2&0x7f800000 + 0x00800000) | (u3&0x7f800000 + 0x00800000)
		d, b = d[4:], b[16:]
	}
	for i := range d {
		u := binary.LittleEndian.Uint32(b[4*i:])
		d[i] = math.Float32frombits(u)
		acc |= u&0x7f800000 + 0x00800000
	}
	if acc&0x80000000 == 0 {
		return -1
	}
	return firstNonFinite(dst)
}

// DecodeBulk reads a whole bulk body into an Insert and validates it as
// DecodeInsert does (every problem of the batch at once). Vectors share one
// allocation, ids another. The collection's dim is checked by
// Insert.ValidateVectors (every item has the header's dim).
func DecodeBulk(r io.Reader, limits Limits) (Insert, error) {
	d := NewBulkDecoder(r, limits)
	var p problems
	d.check, d.batch = false, &p
	h, err := d.Header()
	if err != nil {
		return Insert{}, err
	}
	type span struct{ idEnd, metaStart, metaEnd int }
	// Vectors go into chunks that grow with what has arrived (each at
	// least 1 MiB, at most what the header still promises), so a lying
	// header makes us allocate about what the body holds, never more than
	// twice that plus a chunk, and nothing is copied to grow.
	var chunk []float32
	items := make([]InsertItem, 0, min(h.Count, 1024))
	ids := make([]byte, 0, min(h.Count*16, 64<<10))
	var metas []byte
	spans := make([]span, 0, min(h.Count, 1024))
	for d.n < h.Count {
		if cap(chunk)-len(chunk) < h.Dim {
			size := min((h.Count-d.n)*h.Dim, max(d.n*h.Dim, 1<<18))
			chunk = make([]float32, 0, max(size, h.Dim))
		}
		at := len(chunk)
		v := chunk[at : at+h.Dim : at+h.Dim]
		if !d.next(v) {
			break
		}
		chunk = chunk[:at+h.Dim]
		ids = append(ids, d.id...)
		ms := len(metas)
		metas = append(metas, d.meta...)
		items = append(items, InsertItem{Vector: v})
		spans = append(spans, span{len(ids), ms, len(metas)})
	}
	d.next(nil) // the trailer and the end of the body
	if err := d.Err(); err != nil {
		return Insert{}, err
	}
	idArena := string(ids)
	idStart := 0
	for i, s := range spans {
		it := &items[i]
		it.ID = idArena[idStart:s.idEnd]
		idStart = s.idEnd
		if s.metaEnd > s.metaStart {
			it.Meta = metas[s.metaStart:s.metaEnd:s.metaEnd]
		}
	}
	req := Insert{Items: items}
	req.validateItems(&p, d.lim, false, true, nil)
	if err := p.err(); err != nil {
		return Insert{}, err
	}
	return req, nil
}

// BulkEncoder writes a bulk body: the header at creation, then one item
// per Encode, then the trailer at Close. It checks what the format cannot
// hold (id length, dimension, count); the server checks the rest.
type BulkEncoder struct {
	w     *bufio.Writer
	hdr   BulkHeader
	n     int
	crc   uint32
	buf   []byte
	err   error
	close bool
}

// NewBulkEncoder writes the header of a body of count items of dim
// floats, with a CRC32C trailer when crc.
func NewBulkEncoder(w io.Writer, dim, count int, crc bool) (*BulkEncoder, error) {
	if dim < 1 || dim > MaxDim {
		return nil, fmt.Errorf("proto: bulk: dim %d outside 1..%d", dim, MaxDim)
	}
	if count < 1 || count > math.MaxUint32 {
		return nil, fmt.Errorf("proto: bulk: count %d outside 1..%d", count, uint32(math.MaxUint32))
	}
	e := &BulkEncoder{w: bufio.NewWriterSize(w, 64<<10), hdr: BulkHeader{Version: BulkVersion, Dim: dim, Count: count}}
	if crc {
		e.hdr.Flags |= BulkCRC
	}
	b := append(make([]byte, 0, BulkHeaderSize), BulkMagic...)
	b = binary.LittleEndian.AppendUint16(b, BulkVersion)
	b = binary.LittleEndian.AppendUint16(b, e.hdr.Flags)
	b = binary.LittleEndian.AppendUint32(b, uint32(dim))
	b = binary.LittleEndian.AppendUint32(b, uint32(count))
	e.write(b)
	return e, e.err
}

func (e *BulkEncoder) write(b []byte) {
	if e.err != nil {
		return
	}
	if e.hdr.Flags&BulkCRC != 0 {
		e.crc = crc32.Update(e.crc, castagnoli, b)
	}
	_, e.err = e.w.Write(b)
}

// Encode writes one item. id may be empty (the server generates one),
// meta nil.
func (e *BulkEncoder) Encode(id string, vec []float32, meta []byte) error {
	switch {
	case e.err != nil:
		return e.err
	case e.n == e.hdr.Count:
		return fmt.Errorf("proto: bulk: more than the %d items of the header", e.hdr.Count)
	case len(id) > MaxIDBytes:
		return fmt.Errorf("proto: bulk: id of %d bytes, limit is %d", len(id), MaxIDBytes)
	case len(vec) != e.hdr.Dim:
		return fmt.Errorf("proto: bulk: vector of %d components, dim is %d", len(vec), e.hdr.Dim)
	case int64(len(meta)) > math.MaxUint32:
		return fmt.Errorf("proto: bulk: meta of %d bytes", len(meta))
	}
	b := e.buf[:0]
	b = binary.LittleEndian.AppendUint16(b, uint16(len(id)))
	b = append(b, id...)
	for _, x := range vec {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(x))
	}
	b = binary.LittleEndian.AppendUint32(b, uint32(len(meta)))
	b = append(b, meta...)
	e.buf = b
	e.write(b)
	e.n++
	return e.err
}

// Close writes the trailer and flushes. It fails when fewer items than
// the header's count were encoded. It does not close the writer.
func (e *BulkEncoder) Close() error {
	if e.close {
		return e.err
	}
	e.close = true
	if e.err == nil && e.n != e.hdr.Count {
		e.err = fmt.Errorf("proto: bulk: %d items encoded, header says %d", e.n, e.hdr.Count)
	}
	if e.hdr.Flags&BulkCRC != 0 && e.err == nil {
		_, e.err = e.w.Write(binary.LittleEndian.AppendUint32(nil, e.crc))
	}
	if e.err == nil {
		e.err = e.w.Flush()
	}
	return e.err
}

// EncodeBulk writes items as one bulk body; every vector must have the
// first one's length.
func EncodeBulk(w io.Writer, items []InsertItem, crc bool) error {
	if len(items) == 0 {
		return errors.New("proto: bulk: no items")
	}
	e, err := NewBulkEncoder(w, len(items[0].Vector), len(items), crc)
	if err != nil {
		return err
	}
	for _, it := range items {
		if err := e.Encode(it.ID, it.Vector, it.Meta); err != nil {
			return err
		}
	}
	return e.Close()
}
