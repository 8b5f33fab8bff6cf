package bench

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// vecsBytes encodes records by hand: each is a dim header then raw bytes.
func vecsRecord(dim int32, payload []byte) []byte {
	b := binary.LittleEndian.AppendUint32(nil, uint32(dim))
	return append(b, payload...)
}

func f32Bytes(v ...float32) []byte {
	var b []byte
	for _, x := range v {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(x))
	}
	return b
}

func TestFvecsRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name string
		dim  int
		rows int
	}{{"one value", 1, 1}, {"one row", 7, 1}, {"many rows", 3, 1000}, {"wide", 4096, 3}} {
		t.Run(tc.name, func(t *testing.T) {
			data := GaussianMixture(tc.rows, tc.dim, 2, 1)
			var buf bytes.Buffer
			if err := WriteFvecs(&buf, data, tc.dim); err != nil {
				t.Fatal(err)
			}
			if got, want := buf.Len(), tc.rows*(4+4*tc.dim); got != want {
				t.Fatalf("wrote %d bytes, want %d", got, want)
			}
			// A bare io.Reader (size unknown) and a bytes.Reader (size known).
			for _, r := range []struct {
				name string
				r    interface{ Read([]byte) (int, error) }
			}{{"stream", onlyReader{bytes.NewReader(buf.Bytes())}}, {"sized", bytes.NewReader(buf.Bytes())}} {
				got, dim, err := ReadFvecs(r.r)
				if err != nil {
					t.Fatalf("%s: %v", r.name, err)
				}
				if dim != tc.dim || !slices.Equal(got, data) {
					t.Fatalf("%s: got dim %d, %d values; want dim %d, %d values, equal", r.name, dim, len(got), tc.dim, len(data))
				}
			}
		})
	}
}

// onlyReader hides every method but Read.
type onlyReader struct{ r *bytes.Reader }

func (o onlyReader) Read(p []byte) (int, error) { return o.r.Read(p) }

func TestIvecsRoundTrip(t *testing.T) {
	data := []int32{0, -1, math.MaxInt32, math.MinInt32, 42, 7}
	for _, dim := range []int{1, 2, 3, 6} {
		var buf bytes.Buffer
		if err := WriteIvecs(&buf, data, dim); err != nil {
			t.Fatal(err)
		}
		got, d, err := ReadIvecs(&buf)
		if err != nil || d != dim || !slices.Equal(got, data) {
			t.Fatalf("dim %d: got %v dim %d err %v", dim, got, d, err)
		}
	}
}

func TestBvecs(t *testing.T) {
	in := slices.Concat(vecsRecord(3, []byte{0, 128, 255}), vecsRecord(3, []byte{1, 2, 3}))
	got, dim, err := ReadBvecs(bytes.NewReader(in))
	if err != nil || dim != 3 || !slices.Equal(got, []float32{0, 128, 255, 1, 2, 3}) {
		t.Fatalf("got %v dim %d err %v", got, dim, err)
	}
}

func TestReadVecsErrors(t *testing.T) {
	good := vecsRecord(2, f32Bytes(1, 2))
	for _, tc := range []struct {
		name string
		in   []byte
		want string // in the message
	}{
		{"empty", nil, "no records"},
		{"short header", []byte{2, 0}, "record 0: truncated header"},
		{"zero dim", vecsRecord(0, nil), "dimension 0 out of range"},
		{"negative dim", vecsRecord(-5, nil), "dimension -5 out of range"},
		{"huge dim", vecsRecord(1<<30, nil), "dimension 1073741824 out of range"},
		{"truncated body", vecsRecord(2, f32Bytes(1)), "record 0: "},
		{"truncated second", slices.Concat(good, vecsRecord(2, f32Bytes(1))), "record 1"},
		{"trailing header bytes", slices.Concat(good, []byte{2, 0, 0}), "record 1"},
		{"inconsistent dims", slices.Concat(good, good, vecsRecord(3, f32Bytes(1, 2, 3))), "record 2: dimension 3, want 2"},
		{"nan", slices.Concat(good, vecsRecord(2, f32Bytes(1, float32(math.NaN())))), "record 1: component 1 is NaN"},
		{"inf", vecsRecord(2, f32Bytes(float32(math.Inf(-1)), 0)), "component 0 is -Inf"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, sized := range []bool{false, true} {
				var err error
				if sized {
					_, _, err = ReadFvecs(bytes.NewReader(tc.in))
				} else {
					_, _, err = ReadFvecs(onlyReader{bytes.NewReader(tc.in)})
				}
				if err == nil || !errors.Is(err, ErrFormat) || !strings.Contains(err.Error(), tc.want) {
					t.Errorf("sized=%v: got %v, want an ErrFormat containing %q", sized, err, tc.want)
				}
			}
		})
	}
}

func TestReadVecsFileErrorsNamePath(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "base.fvecs")
	recs := slices.Concat(vecsRecord(2, f32Bytes(1, 2)), vecsRecord(2, f32Bytes(3, 4)))
	if err := os.WriteFile(path, slices.Concat(recs, vecsRecord(2, f32Bytes(1, float32(math.NaN())))), 0o644); err != nil {
		t.Fatal(err)
	}
	_, _, err := ReadFvecsFile(path)
	if want := "bench: " + path + ": record 2: component 1 is NaN"; err == nil || err.Error() != want {
		t.Fatalf("got %v, want %q", err, want)
	}
	if err := os.WriteFile(path, slices.Concat(recs, []byte{2, 0, 0, 0, 1}), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := ReadFvecsFile(path); err == nil || !strings.Contains(err.Error(), "record 2: truncated: 1 of 8 bytes") {
		t.Fatalf("got %v, want a truncation error", err)
	}
	if _, _, err := ReadFvecsFile(filepath.Join(dir, "missing.fvecs")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing file: got %v", err)
	}
	if _, _, err := ReadVectorsFile(filepath.Join(dir, "x.txt")); !errors.Is(err, ErrFormat) {
		t.Fatalf("unknown extension: got %v", err)
	}
}

func TestVecsFileRoundTrip(t *testing.T) {
	dir := t.TempDir()
	data := GaussianMixture(100, 5, 3, 9)
	fp := filepath.Join(dir, "a.fvecs")
	if err := WriteFvecsFile(fp, data, 5); err != nil {
		t.Fatal(err)
	}
	got, dim, err := ReadVectorsFile(fp)
	if err != nil || dim != 5 || !slices.Equal(got, data) {
		t.Fatalf("fvecs: dim %d err %v", dim, err)
	}
	ids := []int32{1, 2, 3, 4, 5, 6}
	ip := filepath.Join(dir, "a.ivecs")
	if err := WriteIvecsFile(ip, ids, 3); err != nil {
		t.Fatal(err)
	}
	gotIDs, dim, err := ReadIvecsFile(ip)
	if err != nil || dim != 3 || !slices.Equal(gotIDs, ids) {
		t.Fatalf("ivecs: %v dim %d err %v", gotIDs, dim, err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 2 {
		t.Fatalf("temporary files left behind: %v", entries)
	}
}

func TestWriteVecsErrors(t *testing.T) {
	var buf bytes.Buffer
	for _, tc := range []struct {
		name string
		data []float32
		dim  int
	}{
		{"zero dim", []float32{1}, 0},
		{"huge dim", make([]float32, MaxVecsDim+1), MaxVecsDim + 1},
		{"ragged", []float32{1, 2, 3}, 2},
		{"nan", []float32{1, float32(math.NaN())}, 2},
	} {
		if err := WriteFvecs(&buf, tc.data, tc.dim); err == nil {
			t.Errorf("%s: no error", tc.name)
		}
	}
	if err := WriteIvecs(&buf, []int32{1, 2, 3}, 2); err == nil {
		t.Error("ragged ivecs: no error")
	}
}

func FuzzReadFvecs(f *testing.F) {
	f.Add(vecsRecord(2, f32Bytes(1, 2)))
	f.Add(slices.Concat(vecsRecord(1, f32Bytes(1)), vecsRecord(1, f32Bytes(-3))))
	f.Add(vecsRecord(3, f32Bytes(1, 2)))
	f.Add(vecsRecord(1<<16, nil))
	f.Add(vecsRecord(-1, nil))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, in []byte) {
		for _, r := range []interface{ Read([]byte) (int, error) }{bytes.NewReader(in), onlyReader{bytes.NewReader(in)}} {
			data, dim, err := ReadFvecs(r)
			if err != nil {
				if !errors.Is(err, ErrFormat) {
					t.Fatalf("error does not wrap ErrFormat: %v", err)
				}
				continue
			}
			if dim < 1 || dim > MaxVecsDim || len(data) == 0 || len(data)%dim != 0 || len(in) != len(data)/dim*(4+4*dim) {
				t.Fatalf("dim %d, %d values from %d bytes", dim, len(data), len(in))
			}
			var buf bytes.Buffer
			if err := WriteFvecs(&buf, data, dim); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(buf.Bytes(), in) {
				t.Fatal("write(read(x)) != x")
			}
		}
	})
}

func FuzzReadIvecs(f *testing.F) {
	f.Add(vecsRecord(2, f32Bytes(1, 2)))
	f.Add(slices.Concat(vecsRecord(1, []byte{1, 0, 0, 0}), vecsRecord(1, []byte{255, 255, 255, 255})))
	f.Add(slices.Concat(vecsRecord(1, []byte{1, 0, 0, 0}), vecsRecord(2, []byte{1, 0, 0, 0})))
	f.Add([]byte{1, 0, 0})
	f.Fuzz(func(t *testing.T, in []byte) {
		data, dim, err := ReadIvecs(onlyReader{bytes.NewReader(in)})
		if err != nil {
			if !errors.Is(err, ErrFormat) {
				t.Fatalf("error does not wrap ErrFormat: %v", err)
			}
			return
		}
		var buf bytes.Buffer
		if err := WriteIvecs(&buf, data, dim); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(buf.Bytes(), in) {
			t.Fatal("write(read(x)) != x")
		}
	})
}
