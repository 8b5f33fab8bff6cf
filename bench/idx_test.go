package bench

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// idxBytes builds an IDX stream: magic, big-endian dims, then data.
func idxBytes(magic uint32, dims []uint32, data []byte) []byte {
	b := binary.BigEndian.AppendUint32(nil, magic)
	for _, d := range dims {
		b = binary.BigEndian.AppendUint32(b, d)
	}
	return append(b, data...)
}

func gzipBytes(t testing.TB, b []byte) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestDecodeIDXImages(t *testing.T) {
	pix := []byte{0, 1, 2, 3, 4, 5, 250, 251, 252, 253, 254, 255}
	raw := idxBytes(idxImagesMagic, []uint32{2, 2, 3}, pix)
	want := make([]float32, len(pix))
	for i, p := range pix {
		want[i] = float32(p)
	}
	for name, in := range map[string][]byte{"raw": raw, "gzip": gzipBytes(t, raw)} {
		data, dim, err := DecodeIDXImages(bytes.NewReader(in))
		if err != nil || dim != 6 || !slices.Equal(data, want) {
			t.Errorf("%s: got %v dim %d err %v", name, data, dim, err)
		}
	}
}

func TestDecodeIDXLabels(t *testing.T) {
	raw := idxBytes(idxLabelsMagic, []uint32{4}, []byte{9, 0, 3, 3})
	for name, in := range map[string][]byte{"raw": raw, "gzip": gzipBytes(t, raw)} {
		got, err := DecodeIDXLabels(bytes.NewReader(in))
		if err != nil || !slices.Equal(got, []byte{9, 0, 3, 3}) {
			t.Errorf("%s: got %v err %v", name, got, err)
		}
	}
}

func TestDecodeIDXErrors(t *testing.T) {
	good := idxBytes(idxImagesMagic, []uint32{2, 1, 2}, []byte{1, 2, 3, 4})
	corruptGzip := gzipBytes(t, good)
	corruptGzip[len(corruptGzip)-6] ^= 0xff // CRC-32
	for _, tc := range []struct {
		name, want string
		in         []byte
	}{
		{"empty", "header: truncated", nil},
		{"labels as images", "magic 0x00000801, want 0x00000803", idxBytes(idxLabelsMagic, []uint32{1}, []byte{1})},
		{"truncated dims", "dimension 1: truncated", good[:10]},
		{"no items", "no items", idxBytes(idxImagesMagic, []uint32{0, 28, 28}, nil)},
		{"zero size", "image size 0×28", idxBytes(idxImagesMagic, []uint32{1, 0, 28}, nil)},
		{"huge images", "out of range", idxBytes(idxImagesMagic, []uint32{1, 1 << 16, 1 << 16}, nil)},
		{"huge count", "data: 4 of 17179869180 bytes: truncated", idxBytes(idxImagesMagic, []uint32{1<<32 - 1, 2, 2}, []byte{1, 2, 3, 4})},
		{"truncated data", "data: 3 of 4 bytes: truncated", good[:len(good)-1]},
		{"trailing data", "trailing data", append(slices.Clone(good), 0)},
		{"truncated gzip", "truncated", gzipBytes(t, good)[:20]},
		{"bad checksum", "checksum", corruptGzip},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := DecodeIDXImages(bytes.NewReader(tc.in))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
			if strings.Contains(tc.want, "truncated") || tc.name == "huge images" {
				if !errors.Is(err, ErrFormat) {
					t.Fatalf("%v does not wrap ErrFormat", err)
				}
			}
		})
	}
}

func TestReadIDXFiles(t *testing.T) {
	dir := t.TempDir()
	img := filepath.Join(dir, "img-idx3-ubyte.gz")
	if err := os.WriteFile(img, gzipBytes(t, idxBytes(idxImagesMagic, []uint32{1, 2, 2}, []byte{1, 2, 3, 4})), 0o644); err != nil {
		t.Fatal(err)
	}
	if data, dim, err := ReadIDXImages(img); err != nil || dim != 4 || len(data) != 4 {
		t.Fatalf("images: %v dim %d err %v", data, dim, err)
	}
	if _, err := ReadIDXLabels(img); err == nil || !strings.HasPrefix(err.Error(), "bench: "+img+": magic") {
		t.Fatalf("labels from an image file: got %v", err)
	}
}

func TestReadIDXFashionMNIST(t *testing.T) {
	requireFMNIST(t)
	data, dim, err := ReadIDXImages(filepath.Join(DefaultFMNISTDir, "t10k-images-idx3-ubyte.gz"))
	if err != nil {
		t.Fatal(err)
	}
	if dim != 784 || len(data) != 10000*784 {
		t.Fatalf("dim %d, %d values; want 784 and 10000 rows", dim, len(data))
	}
	if m := slices.Max(data); m != 255 {
		t.Errorf("max pixel %v, want 255", m)
	}
	labels, err := ReadIDXLabels(filepath.Join(DefaultFMNISTDir, "t10k-labels-idx1-ubyte.gz"))
	if err != nil {
		t.Fatal(err)
	}
	var count [10]int
	for _, l := range labels {
		if l > 9 {
			t.Fatalf("label %d", l)
		}
		count[l]++
	}
	for c, n := range count {
		if n != 1000 { // the test set is balanced
			t.Errorf("class %d has %d labels, want 1000", c, n)
		}
	}
}

func FuzzDecodeIDX(f *testing.F) {
	f.Add(idxBytes(idxImagesMagic, []uint32{2, 1, 2}, []byte{1, 2, 3, 4}))
	f.Add(idxBytes(idxLabelsMagic, []uint32{3}, []byte{1, 2, 3}))
	f.Add(gzipBytes(f, idxBytes(idxImagesMagic, []uint32{1, 2, 1}, []byte{7, 8})))
	f.Add(idxBytes(idxImagesMagic, []uint32{1 << 31, 1 << 8, 1 << 8}, nil))
	f.Add([]byte{0x1f, 0x8b})
	f.Fuzz(func(t *testing.T, in []byte) {
		data, dim, err := DecodeIDXImages(bytes.NewReader(in))
		if err == nil && (dim < 1 || dim > MaxVecsDim || len(data) == 0 || len(data)%dim != 0) {
			t.Fatalf("dim %d with %d values", dim, len(data))
		}
		labels, err := DecodeIDXLabels(bytes.NewReader(in))
		if err == nil && len(labels) == 0 {
			t.Fatal("no labels and no error")
		}
	})
}
