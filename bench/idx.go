package bench

import (
	"bufio"
	"compress/gzip"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"slices"
)

// IDX files, the format of MNIST and Fashion-MNIST: a big-endian magic
// 0x00000803 (unsigned bytes, 3 dimensions: count, rows, cols) or
// 0x00000801 (unsigned bytes, 1 dimension: count), the dimensions as
// big-endian uint32s, then the bytes in row-major order. The Debian packages
// ship them gzipped; the readers take either form.

const (
	idxImagesMagic = 0x00000803
	idxLabelsMagic = 0x00000801
)

// ReadIDXImages reads an IDX image file (gzipped or not) as rows of
// float32 pixel values 0..255, one row of dim = rows×cols per image.
func ReadIDXImages(path string) (data []float32, dim int, err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, fmt.Errorf("bench: %w", err)
	}
	defer f.Close()
	return decodeIDXImages(f, path)
}

// ReadIDXLabels reads an IDX label file (gzipped or not).
func ReadIDXLabels(path string) ([]uint8, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	defer f.Close()
	return decodeIDXLabels(f, path)
}

// DecodeIDXImages decodes an IDX image stream, gunzipping it first when it
// starts with the gzip magic. Images must be at most MaxVecsDim pixels; the
// stream must end right after the last image. Memory grows with the bytes
// actually read, never with what a corrupt header claims. Malformed input
// gives an error that wraps ErrFormat.
func DecodeIDXImages(r io.Reader) (data []float32, dim int, err error) {
	return decodeIDXImages(r, "idx")
}

// DecodeIDXLabels decodes an IDX label stream, gzipped or not.
func DecodeIDXLabels(r io.Reader) ([]uint8, error) {
	return decodeIDXLabels(r, "idx")
}

func decodeIDXImages(r io.Reader, name string) ([]float32, int, error) {
	d, err := newIDXDecoder(r, name, idxImagesMagic)
	if err != nil {
		return nil, 0, err
	}
	n, rows, cols := d.dims[0], d.dims[1], d.dims[2]
	if rows == 0 || cols == 0 || rows*cols > MaxVecsDim {
		return nil, 0, formatErr("bench: %s: image size %d×%d out of range 1..%d pixels", name, rows, cols, MaxVecsDim)
	}
	dim := int(rows * cols)
	pix, err := d.body(int64(n) * int64(dim))
	if err != nil {
		return nil, 0, err
	}
	data := make([]float32, len(pix))
	for i, p := range pix {
		data[i] = float32(p)
	}
	return data, dim, nil
}

func decodeIDXLabels(r io.Reader, name string) ([]uint8, error) {
	d, err := newIDXDecoder(r, name, idxLabelsMagic)
	if err != nil {
		return nil, err
	}
	return d.body(int64(d.dims[0]))
}

type idxDecoder struct {
	r    io.Reader
	name string
	dims []uint64
}

// readErr describes a failed read: a format error when the input ended
// early, else the I/O error itself.
func (d *idxDecoder) readErr(what string, err error) error {
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return formatErr("bench: %s: %s: truncated", d.name, what)
	}
	return fmt.Errorf("bench: %s: %s: %w", d.name, what, err)
}

func newIDXDecoder(r io.Reader, name string, magic uint32) (*idxDecoder, error) {
	br := bufio.NewReaderSize(r, 1<<16)
	d := &idxDecoder{r: br, name: name}
	if b, _ := br.Peek(2); len(b) == 2 && b[0] == 0x1f && b[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, d.readErr("gzip header", err)
		}
		d.r = bufio.NewReaderSize(zr, 1<<16)
	}
	var hdr [4]byte
	if _, err := io.ReadFull(d.r, hdr[:]); err != nil {
		return nil, d.readErr("header", err)
	}
	if got := binary.BigEndian.Uint32(hdr[:]); got != magic {
		return nil, formatErr("bench: %s: magic %#08x, want %#08x", name, got, magic)
	}
	d.dims = make([]uint64, magic&0xff)
	for i := range d.dims {
		if _, err := io.ReadFull(d.r, hdr[:]); err != nil {
			return nil, d.readErr(fmt.Sprintf("dimension %d", i), err)
		}
		d.dims[i] = uint64(binary.BigEndian.Uint32(hdr[:]))
	}
	if d.dims[0] == 0 {
		return nil, formatErr("bench: %s: no items", name)
	}
	return d, nil
}

// body reads exactly n bytes and checks that nothing follows them.
func (d *idxDecoder) body(n int64) ([]byte, error) {
	const chunk = 1 << 20
	out := make([]byte, 0, min(n, chunk))
	for int64(len(out)) < n {
		c := int(min(n-int64(len(out)), chunk))
		out = slices.Grow(out, c)
		k, err := io.ReadFull(d.r, out[len(out):len(out)+c])
		out = out[:len(out)+k]
		if err != nil {
			return nil, d.readErr(fmt.Sprintf("data: %d of %d bytes", len(out), n), err)
		}
	}
	var one [1]byte
	switch k, err := io.ReadFull(d.r, one[:]); {
	case k > 0:
		return nil, formatErr("bench: %s: trailing data after %d bytes", d.name, n)
	case err != io.EOF:
		return nil, d.readErr("end", err)
	}
	return out, nil
}
