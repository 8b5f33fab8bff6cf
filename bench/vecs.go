package bench

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// TEXMEX vector files (.fvecs, .ivecs, .bvecs), the format of the SIFT1M,
// GIST1M and Deep1B sets: a sequence of records, one per vector, with no
// file header. Every record of a file has the same dim.
//
//	┌────────────────┬──────────────────────────────────────────────┐
//	│ dim  int32 LE  │ dim components: float32 LE (.fvecs),         │
//	│ (4 bytes)      │ int32 LE (.ivecs) or uint8 (.bvecs)          │
//	└────────────────┴──────────────────────────────────────────────┘
//	  record 0, then record 1, … until the end of the file

// MaxVecsDim is the largest record dimension the readers accept.
const MaxVecsDim = 1 << 16

// vecKind is the component type of a vecs file.
type vecKind uint8

const (
	fvecs vecKind = iota
	ivecs
	bvecs
)

func (k vecKind) String() string { return [...]string{"fvecs", "ivecs", "bvecs"}[k] }

func (k vecKind) size() int {
	if k == bvecs {
		return 1
	}
	return 4
}

// maxPrealloc bounds what a reader allocates ahead of the data when it does
// not know how many bytes are left; beyond it slices grow as records arrive.
const maxPrealloc = 1 << 20

// vecsDecoder reads records of one kind. Its error is sticky: the first
// failure stops all further reads and is what the read returns.
type vecsDecoder struct {
	r    io.Reader
	name string // for messages: a path, or the kind for a bare reader
	kind vecKind
	left int64 // bytes left in the input; -1 when unknown
	dim  int
	rec  int // records read so far
	hdr  [4]byte
	buf  []byte
	err  error
}

func (d *vecsDecoder) fail(format string, args ...any) {
	if d.err == nil {
		d.err = formatErr("bench: %s: record %d: %s", d.name, d.rec, fmt.Sprintf(format, args...))
	}
}

// header reads the next record's dim. It reports false at a clean end of
// input or after an error.
func (d *vecsDecoder) header() bool {
	if d.err != nil {
		return false
	}
	n, err := io.ReadFull(d.r, d.hdr[:])
	switch {
	case n == 0 && err == io.EOF:
		return false
	case err == io.ErrUnexpectedEOF:
		d.fail("truncated header: %d of 4 bytes", n)
		return false
	case err != nil:
		d.err = fmt.Errorf("bench: %s: record %d: %w", d.name, d.rec, err)
		return false
	}
	dim := int64(int32(binary.LittleEndian.Uint32(d.hdr[:])))
	if d.rec == 0 {
		if dim <= 0 || dim > MaxVecsDim {
			d.fail("dimension %d out of range 1..%d (not a %s file?)", dim, MaxVecsDim, d.kind)
			return false
		}
		d.dim = int(dim)
		d.buf = make([]byte, d.dim*d.kind.size())
	} else if dim != int64(d.dim) {
		d.fail("dimension %d, want %d like record 0", dim, d.dim)
		return false
	}
	return true
}

// body reads the components of the current record into d.buf.
func (d *vecsDecoder) body() bool {
	n, err := io.ReadFull(d.r, d.buf)
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		d.fail("truncated: %d of %d bytes", n, len(d.buf))
		return false
	}
	if err != nil {
		d.err = fmt.Errorf("bench: %s: record %d: %w", d.name, d.rec, err)
		return false
	}
	return true
}

// records is how many whole records the rest of the input holds once the
// first header has been read, or a modest guess when the size is unknown:
// the capacity to allocate, never more than the input can fill.
func (d *vecsDecoder) records() int {
	if d.left >= 0 {
		return int((d.left + 4) / int64(4+len(d.buf)))
	}
	return max(1, maxPrealloc/(4+len(d.buf)))
}

// readFloats decodes fvecs or bvecs input into rows of float32.
func (d *vecsDecoder) readFloats() ([]float32, int, error) {
	var out []float32
	for d.header() {
		if d.rec == 0 {
			out = make([]float32, 0, d.records()*d.dim)
		}
		if !d.body() {
			break
		}
		out = slices.Grow(out, d.dim)
		row := out[len(out) : len(out)+d.dim]
		if d.kind == bvecs {
			for j, b := range d.buf[:len(row)] {
				row[j] = float32(b)
			}
		} else {
			buf := d.buf[:4*len(row)]
			for j := range row {
				bits := binary.LittleEndian.Uint32(buf[4*j:])
				if bits&0x7f800000 == 0x7f800000 { // exponent all ones: NaN or ±Inf
					d.fail("component %d is %v", j, math.Float32frombits(bits))
					break
				}
				row[j] = math.Float32frombits(bits)
			}
		}
		if d.err != nil {
			break
		}
		out = out[:len(out)+d.dim]
		d.rec++
	}
	return finish(d, out)
}

// readInts decodes ivecs input into rows of int32.
func (d *vecsDecoder) readInts() ([]int32, int, error) {
	var out []int32
	for d.header() {
		if d.rec == 0 {
			out = make([]int32, 0, d.records()*d.dim)
		}
		if !d.body() {
			break
		}
		for j := range d.dim {
			out = append(out, int32(binary.LittleEndian.Uint32(d.buf[4*j:])))
		}
		d.rec++
	}
	return finish(d, out)
}

func finish[T any](d *vecsDecoder, out []T) ([]T, int, error) {
	if d.err != nil {
		return nil, 0, d.err
	}
	if d.rec == 0 {
		return nil, 0, formatErr("bench: %s: no records", d.name)
	}
	return out, d.dim, nil
}

// newVecsDecoder wraps r, learning how many bytes are left in it when r is
// an in-memory reader or a regular file.
func newVecsDecoder(r io.Reader, name string, kind vecKind) *vecsDecoder {
	d := &vecsDecoder{r: r, name: name, kind: kind, left: -1}
	switch v := r.(type) {
	case interface{ Len() int }: // bytes.Reader, bytes.Buffer, strings.Reader
		d.left = int64(v.Len())
	case *os.File:
		if st, err := v.Stat(); err == nil && st.Mode().IsRegular() {
			if off, err := v.Seek(0, io.SeekCurrent); err == nil {
				d.left = st.Size() - off
			}
		}
		d.r = bufio.NewReaderSize(v, 1<<20)
	default:
		d.r = bufio.NewReaderSize(r, 1<<16)
	}
	if d.left >= 0 {
		d.left -= 4 // counted from after the first header
	}
	return d
}

// ReadFvecs reads an .fvecs stream: rows of dim float32s, row-major. It
// rejects an empty input, a dimension outside 1..MaxVecsDim, records of
// differing dimension, truncated records and NaN or Inf components; errors
// wrap ErrFormat and name the record (counted from 0, the row number).
func ReadFvecs(r io.Reader) (data []float32, dim int, err error) {
	return newVecsDecoder(r, "fvecs", fvecs).readFloats()
}

// ReadBvecs reads a .bvecs stream (uint8 components) as float32 rows.
func ReadBvecs(r io.Reader) (data []float32, dim int, err error) {
	return newVecsDecoder(r, "bvecs", bvecs).readFloats()
}

// ReadIvecs reads an .ivecs stream (int32 components, e.g. ground-truth
// ids): rows of dim int32s, row-major.
func ReadIvecs(r io.Reader) (data []int32, dim int, err error) {
	return newVecsDecoder(r, "ivecs", ivecs).readInts()
}

// ReadFvecsFile reads the .fvecs file at path; errors name the path.
func ReadFvecsFile(path string) ([]float32, int, error) {
	return readVecsFile(path, fvecs, (*vecsDecoder).readFloats)
}

// ReadBvecsFile reads the .bvecs file at path as float32 rows.
func ReadBvecsFile(path string) ([]float32, int, error) {
	return readVecsFile(path, bvecs, (*vecsDecoder).readFloats)
}

// ReadIvecsFile reads the .ivecs file at path.
func ReadIvecsFile(path string) ([]int32, int, error) {
	return readVecsFile(path, ivecs, (*vecsDecoder).readInts)
}

// ReadVectorsFile reads float rows from an .fvecs or .bvecs file, chosen by
// the file's extension.
func ReadVectorsFile(path string) ([]float32, int, error) {
	switch strings.ToLower(filepath.Ext(path)) {
	case ".fvecs":
		return ReadFvecsFile(path)
	case ".bvecs":
		return ReadBvecsFile(path)
	}
	return nil, 0, formatErr("bench: %s: unknown vector file type (want .fvecs or .bvecs)", path)
}

func readVecsFile[T any](path string, kind vecKind, read func(*vecsDecoder) ([]T, int, error)) ([]T, int, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, fmt.Errorf("bench: %w", err)
	}
	defer f.Close()
	return read(newVecsDecoder(f, path, kind))
}

// WriteFvecs writes data, rows of dim float32s, as .fvecs records. It
// refuses a dim outside 1..MaxVecsDim, a length that is not whole rows and
// NaN or Inf components (the readers would refuse them).
func WriteFvecs(w io.Writer, data []float32, dim int) error {
	if err := checkRows(len(data), dim); err != nil {
		return err
	}
	for i, x := range data {
		if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
			return fmt.Errorf("bench: write fvecs: row %d component %d is %v", i/dim, i%dim, x)
		}
	}
	return writeVecs(w, len(data)/dim, dim, func(b []byte, row int) []byte {
		for _, x := range data[row*dim : row*dim+dim] {
			b = binary.LittleEndian.AppendUint32(b, math.Float32bits(x))
		}
		return b
	})
}

// WriteIvecs writes data, rows of dim int32s, as .ivecs records.
func WriteIvecs(w io.Writer, data []int32, dim int) error {
	if err := checkRows(len(data), dim); err != nil {
		return err
	}
	return writeVecs(w, len(data)/dim, dim, func(b []byte, row int) []byte {
		for _, x := range data[row*dim : row*dim+dim] {
			b = binary.LittleEndian.AppendUint32(b, uint32(x))
		}
		return b
	})
}

func checkRows(n, dim int) error {
	if dim <= 0 || dim > MaxVecsDim {
		return fmt.Errorf("bench: write vecs: dimension %d out of range 1..%d", dim, MaxVecsDim)
	}
	if n%dim != 0 {
		return fmt.Errorf("bench: write vecs: %d values are not rows of %d", n, dim)
	}
	return nil
}

// writeVecs encodes rows into a buffer of about 1 MiB at a time, so a
// caller's writer needs no buffering of its own.
func writeVecs(w io.Writer, rows, dim int, appendRow func(b []byte, row int) []byte) error {
	buf := make([]byte, 0, 1<<20)
	for i := range rows {
		buf = binary.LittleEndian.AppendUint32(buf, uint32(dim))
		buf = appendRow(buf, i)
		if len(buf) >= 1<<20 || i == rows-1 {
			if _, err := w.Write(buf); err != nil {
				return fmt.Errorf("bench: write vecs: %w", err)
			}
			buf = buf[:0]
		}
	}
	return nil
}

// WriteFvecsFile writes data to path as .fvecs, atomically: readers see the
// old file or the whole new one.
func WriteFvecsFile(path string, data []float32, dim int) error {
	return writeFileAtomic(path, func(w io.Writer) error { return WriteFvecs(w, data, dim) })
}

// WriteIvecsFile writes data to path as .ivecs, atomically.
func WriteIvecsFile(path string, data []int32, dim int) error {
	return writeFileAtomic(path, func(w io.Writer) error { return WriteIvecs(w, data, dim) })
}

// writeFileAtomic writes a temporary file beside path, syncs it and renames
// it over path; on any error the temporary file is removed.
func writeFileAtomic(path string, write func(w io.Writer) error) (err error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	bw := bufio.NewWriterSize(f, 1<<20)
	if err = write(bw); err != nil {
		return err
	}
	if err = bw.Flush(); err != nil {
		return fmt.Errorf("bench: write %s: %w", path, err)
	}
	if err = f.Sync(); err != nil {
		return fmt.Errorf("bench: write %s: %w", path, err)
	}
	if err = f.Chmod(0o644); err != nil { // CreateTemp makes 0600; results are for sharing
		return fmt.Errorf("bench: write %s: %w", path, err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("bench: write %s: %w", path, err)
	}
	if err = os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	return nil
}
