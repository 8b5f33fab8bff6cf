package ivf

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"math"
	"slices"
)

// The index file format; docs/format/ivf.md draws it.
//
//	file    = magic(8) version(u32) section* end
//	section = kind(u8) length(u64) payload(length) crc32c(u32)
//
// The CRC covers kind, length and payload. All integers are little endian.
const (
	fileMagic   = "LKIVF\r\n\x1a"
	fileVersion = 1

	secMeta      = 1
	secCentroids = 2
	secSQ8       = 3
	secList      = 4
	secEnd       = 0xff

	metaSize = 4 + 1 + 4 + 4 + 8 + 4 + 4 + 4
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// WriteTo writes the trained index to w in the file format, dropping
// deleted entries. Concurrent Adds may or may not be included; each list is
// written as one consistent view.
func (ix *Index) WriteTo(w io.Writer) (int64, error) {
	m := ix.model.Load()
	if m == nil {
		return 0, ErrNotTrained
	}
	cw := &countWriter{w: w}
	bw := bufio.NewWriterSize(cw, 1<<20)
	e := &encoder{w: bw, crc: crc32.New(castagnoli)}
	e.raw([]byte(fileMagic))
	e.u32raw(fileVersion)
	d := ix.opts.Dim

	e.begin(secMeta, metaSize)
	e.u32(uint32(d))
	e.u8(uint8(ix.opts.Metric))
	e.u32(uint32(m.nlist))
	e.u32(uint32(ix.opts.NList))
	e.u64(uint64(ix.opts.Seed))
	e.u32(uint32(ix.opts.Iterations))
	e.u32(uint32(ix.opts.MaxPointsPerCentroid))
	e.u32(uint32(ix.opts.MinPointsPerCentroid))
	e.end()

	e.begin(secCentroids, uint64(len(m.centroids))*4)
	e.f32s(m.centroids)
	e.end()

	e.begin(secSQ8, uint64(2*d)*4)
	e.f32s(m.sq.Min)
	e.f32s(m.sq.Step)
	e.end()

	sections := uint32(3)
	for li, l := range ix.lists {
		v := l.View()
		keep := make([]int, 0, v.N) // one pass, so concurrent deletes cannot change the count
		for i := 0; i < v.N; i++ {
			if !v.Deleted(i) {
				keep = append(keep, i)
			}
		}
		if len(keep) == 0 {
			continue
		}
		e.begin(secList, 4+8+uint64(len(keep))*uint64(8+d))
		e.u32(uint32(li))
		e.u64(uint64(len(keep)))
		ids, codes := v.IDs(), v.Codes()
		for _, i := range keep {
			e.u64(ids[i])
		}
		for _, i := range keep {
			e.bytes(codes[i*d : (i+1)*d])
		}
		e.end()
		sections++
	}
	e.begin(secEnd, 4)
	e.u32(sections)
	e.end()
	if e.err == nil {
		e.err = bw.Flush()
	}
	return cw.n, e.err
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// encoder writes sections with a sticky error.
type encoder struct {
	w    *bufio.Writer
	crc  hash.Hash32
	err  error
	left uint64 // payload bytes the open section still expects
	buf  [8]byte
}

func (e *encoder) raw(p []byte) {
	if e.err == nil {
		_, e.err = e.w.Write(p)
	}
}

func (e *encoder) u32raw(x uint32) {
	binary.LittleEndian.PutUint32(e.buf[:4], x)
	e.raw(e.buf[:4])
}

func (e *encoder) begin(kind uint8, length uint64) {
	e.crc.Reset()
	e.left = length
	var h [9]byte
	h[0] = kind
	binary.LittleEndian.PutUint64(h[1:], length)
	e.crc.Write(h[:])
	e.raw(h[:])
}

func (e *encoder) bytes(p []byte) {
	if e.err != nil {
		return
	}
	if uint64(len(p)) > e.left {
		e.err = errors.New("ivf: section payload longer than declared")
		return
	}
	e.left -= uint64(len(p))
	e.crc.Write(p)
	_, e.err = e.w.Write(p)
}

func (e *encoder) u8(x uint8) { e.bytes([]byte{x}) }
func (e *encoder) u32(x uint32) {
	var b [4]byte
	binary.LittleEndian.PutUint32(b[:], x)
	e.bytes(b[:])
}
func (e *encoder) u64(x uint64) {
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], x)
	e.bytes(b[:])
}

func (e *encoder) f32s(v []float32) {
	var b [4096]byte
	for len(v) > 0 && e.err == nil {
		n := min(len(v), len(b)/4)
		for i, x := range v[:n] {
			binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
		}
		e.bytes(b[:4*n])
		v = v[n:]
	}
}

func (e *encoder) end() {
	if e.err == nil && e.left != 0 {
		e.err = fmt.Errorf("ivf: section payload %d bytes shorter than declared", e.left)
	}
	e.u32raw(e.crc.Sum32())
}

// Load reads an index written by WriteTo. The file decides Dim, Metric,
// NList and the training options; opts supplies the run-time ones (Threads,
// Scanner). A non-zero opts.Dim or opts.Metric that disagrees with the file
// is an error. Corrupt or truncated input gives an error wrapping
// ErrCorrupt, never a panic.
func Load(r io.Reader, opts Options) (*Index, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	var hdr [12]byte
	if _, err := io.ReadFull(br, hdr[:]); err != nil {
		return nil, fmt.Errorf("%w: header: %v", ErrCorrupt, err)
	}
	if string(hdr[:8]) != fileMagic {
		return nil, fmt.Errorf("%w: not an ivf index file (bad magic)", ErrCorrupt)
	}
	if v := binary.LittleEndian.Uint32(hdr[8:]); v != fileVersion {
		return nil, fmt.Errorf("%w: version %d, this build reads %d", ErrCorrupt, v, fileVersion)
	}
	var (
		ix       *Index
		m        *model
		d        int
		sections uint32
		seen     = map[int32]bool{}
	)
	for {
		kind, p, err := readSection(br)
		if err != nil {
			return nil, err
		}
		dec := &decoder{b: p}
		switch {
		case kind == secMeta:
			if ix != nil {
				return nil, fmt.Errorf("%w: second meta section", ErrCorrupt)
			}
			if len(p) != metaSize {
				return nil, fmt.Errorf("%w: meta section of %d bytes", ErrCorrupt, len(p))
			}
			o := opts
			d = int(dec.u32())
			metric := Metric(dec.u8())
			nlist := int(dec.u32())
			o.NList = int(dec.u32())
			o.Seed = int64(dec.u64())
			o.Iterations = int(dec.u32())
			o.MaxPointsPerCentroid = int(dec.u32())
			o.MinPointsPerCentroid = int(dec.u32())
			if opts.Dim != 0 && opts.Dim != d {
				return nil, fmt.Errorf("%w: file has dim %d, want %d", ErrDimension, d, opts.Dim)
			}
			if opts.Metric != 0 && opts.Metric != metric {
				return nil, fmt.Errorf("ivf: file has metric %v, want %v", metric, opts.Metric)
			}
			o.Dim, o.Metric = d, metric
			if nlist < 1 || nlist > MaxNList {
				return nil, fmt.Errorf("%w: nlist %d", ErrCorrupt, nlist)
			}
			if ix, err = New(o); err != nil {
				return nil, fmt.Errorf("%w: %w", ErrCorrupt, err)
			}
			m = &model{nlist: nlist}
		case ix == nil:
			return nil, fmt.Errorf("%w: section %d before meta", ErrCorrupt, kind)
		case kind == secCentroids:
			if m.centroids != nil || len(p) != m.nlist*d*4 {
				return nil, fmt.Errorf("%w: centroid section of %d bytes for %d×%d", ErrCorrupt, len(p), m.nlist, d)
			}
			m.centroids = dec.f32s(m.nlist * d)
		case kind == secSQ8:
			if m.sq.Min != nil || len(p) != 2*d*4 {
				return nil, fmt.Errorf("%w: sq8 section of %d bytes for dim %d", ErrCorrupt, len(p), d)
			}
			m.sq = SQ8{Min: dec.f32s(d), Step: dec.f32s(d)}
		case kind == secList:
			if m.centroids == nil || m.sq.Min == nil {
				return nil, fmt.Errorf("%w: list before centroids and quantizer", ErrCorrupt)
			}
			if ix.lists == nil {
				if err := checkModel(m, d); err != nil {
					return nil, err
				}
				ix.publish(m)
			}
			li := int32(dec.u32())
			n := dec.u64()
			if li < 0 || int(li) >= m.nlist || seen[li] {
				return nil, fmt.Errorf("%w: list %d (nlist %d) missing or repeated", ErrCorrupt, li, m.nlist)
			}
			seen[li] = true
			if n == 0 || n > uint64(len(p)) || uint64(len(p)) != 12+n*uint64(8+d) {
				return nil, fmt.Errorf("%w: list %d: %d entries in %d bytes", ErrCorrupt, li, n, len(p))
			}
			ids := make([]uint64, n)
			for i := range ids {
				ids[i] = dec.u64()
			}
			ix.lists[li].append(ids, dec.bytes(int(n)*d))
		case kind == secEnd:
			if len(p) != 4 {
				return nil, fmt.Errorf("%w: end section of %d bytes", ErrCorrupt, len(p))
			}
			if got := dec.u32(); got != sections {
				return nil, fmt.Errorf("%w: end says %d sections, read %d", ErrCorrupt, got, sections)
			}
			if m.centroids == nil || m.sq.Min == nil {
				return nil, fmt.Errorf("%w: no centroids or quantizer", ErrCorrupt)
			}
			if ix.lists == nil {
				if err := checkModel(m, d); err != nil {
					return nil, err
				}
				ix.publish(m)
			}
			return ix, nil
		default:
			return nil, fmt.Errorf("%w: unknown section kind %d", ErrCorrupt, kind)
		}
		if dec.err != nil {
			return nil, fmt.Errorf("%w: %v", ErrCorrupt, dec.err)
		}
		sections++
	}
}

// checkModel rejects non-finite centroids or quantizer ranges.
func checkModel(m *model, d int) error {
	if err := checkRows(m.centroids, d); err != nil {
		return fmt.Errorf("%w: centroids: %v", ErrCorrupt, err)
	}
	if err := checkVector(m.sq.Min, d); err != nil {
		return fmt.Errorf("%w: quantizer: %v", ErrCorrupt, err)
	}
	if err := checkVector(m.sq.Step, d); err != nil {
		return fmt.Errorf("%w: quantizer: %v", ErrCorrupt, err)
	}
	for i, s := range m.sq.Step {
		if s < 0 {
			return fmt.Errorf("%w: quantizer step %d is negative", ErrCorrupt, i)
		}
	}
	return nil
}

// maxSection bounds one section (a list of 2³² codes of 64 KiB would not
// fit memory anyway).
const maxSection = 1 << 40

// readSection reads one section and checks its CRC. The payload buffer
// grows as bytes arrive, so a corrupt length cannot make it allocate more
// than about twice what the input holds.
func readSection(r io.Reader) (uint8, []byte, error) {
	var h [9]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return 0, nil, fmt.Errorf("%w: section header: %v", ErrCorrupt, noEOF(err))
	}
	kind, length := h[0], binary.LittleEndian.Uint64(h[1:])
	if length > maxSection {
		return 0, nil, fmt.Errorf("%w: section of %d bytes", ErrCorrupt, length)
	}
	// Read in chunks that double from 64 KiB, so a lying length costs at
	// most about twice the bytes actually there.
	var p []byte
	for chunk := uint64(64 << 10); uint64(len(p)) < length; chunk = min(2*chunk, 16<<20) {
		n := int(min(length-uint64(len(p)), chunk))
		p = slices.Grow(p, n)[:len(p)+n]
		if _, err := io.ReadFull(r, p[len(p)-n:]); err != nil {
			return 0, nil, fmt.Errorf("%w: section %d payload: %v", ErrCorrupt, kind, noEOF(err))
		}
	}
	var c [4]byte
	if _, err := io.ReadFull(r, c[:]); err != nil {
		return 0, nil, fmt.Errorf("%w: section %d checksum: %v", ErrCorrupt, kind, noEOF(err))
	}
	crc := crc32.Update(crc32.Update(0, castagnoli, h[:]), castagnoli, p)
	if crc != binary.LittleEndian.Uint32(c[:]) {
		return 0, nil, fmt.Errorf("%w: section %d checksum mismatch", ErrCorrupt, kind)
	}
	return kind, p, nil
}

func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// decoder reads a section payload with a sticky error.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) bytes(n int) []byte {
	if d.err != nil || n < 0 || n > len(d.b) {
		if d.err == nil {
			d.err = io.ErrUnexpectedEOF
		}
		return make([]byte, max(n, 0))
	}
	p := d.b[:n:n]
	d.b = d.b[n:]
	return p
}

func (d *decoder) u8() uint8   { return d.bytes(1)[0] }
func (d *decoder) u32() uint32 { return binary.LittleEndian.Uint32(d.bytes(4)) }
func (d *decoder) u64() uint64 { return binary.LittleEndian.Uint64(d.bytes(8)) }

func (d *decoder) f32s(n int) []float32 {
	p := d.bytes(4 * n)
	v := make([]float32, n)
	for i := range v {
		v[i] = math.Float32frombits(binary.LittleEndian.Uint32(p[4*i:]))
	}
	return v
}
