package proto

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"lookalike/internal/testenv"
)

func randomItems(rng *rand.Rand, n, dim int) []InsertItem {
	items := make([]InsertItem, n)
	for i := range items {
		v := make([]float32, dim)
		for j := range v {
			v[j] = rng.Float32()*2 - 1
		}
		items[i].Vector = v
		switch i % 3 {
		case 0:
			items[i].ID = fmt.Sprintf("img-%d.jpg", i)
			items[i].Meta = json.RawMessage(fmt.Sprintf(`{"n":%d,"s":"é"}`, i))
		case 1:
			items[i].ID = fmt.Sprintf("%03d", i%1000) + strings.Repeat("界", 84) // 255 bytes
		}
	}
	return items
}

func encodeBulk(t testing.TB, items []InsertItem, crc bool) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := EncodeBulk(&buf, items, crc); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestBulkRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, dim := range []int{1, 3, 128, 1792, 70000 / 2} {
		for _, n := range []int{1, 2, 50} {
			for _, crc := range []bool{false, true} {
				items := randomItems(rng, n, dim)
				body := encodeBulk(t, items, crc)
				// one byte at a time, as a slow network delivers it
				got, err := DecodeBulk(iotest.OneByteReader(bytes.NewReader(body)), Limits{})
				if err != nil {
					t.Fatalf("dim %d n %d crc %v: %v", dim, n, crc, err)
				}
				if !reflect.DeepEqual(got.Items, items) {
					t.Fatalf("dim %d n %d crc %v: items differ", dim, n, crc)
				}
				if err := got.ValidateVectors(dim, Cosine); err != nil {
					t.Fatal(err)
				}
				// the streaming decoder sees the same
				d := NewBulkDecoder(bytes.NewReader(body), Limits{})
				i := 0
				for d.Next() {
					it := d.Item()
					if it.ID != items[i].ID || !reflect.DeepEqual(it.Vector, items[i].Vector) || !bytes.Equal(it.Meta, items[i].Meta) {
						t.Fatalf("streaming item %d differs", i)
					}
					i++
				}
				if d.Err() != nil || i != n {
					t.Fatalf("streaming: %d items, %v", i, d.Err())
				}
			}
		}
	}
}

// header builds a bulk header by hand.
func header(version, flags uint16, dim, count uint32) []byte {
	b := []byte(BulkMagic)
	b = binary.LittleEndian.AppendUint16(b, version)
	b = binary.LittleEndian.AppendUint16(b, flags)
	b = binary.LittleEndian.AppendUint32(b, dim)
	return binary.LittleEndian.AppendUint32(b, count)
}

// item builds one item by hand.
func item(id string, vec []float32, meta string) []byte {
	b := binary.LittleEndian.AppendUint16(nil, uint16(len(id)))
	b = append(b, id...)
	for _, x := range vec {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(x))
	}
	b = binary.LittleEndian.AppendUint32(b, uint32(len(meta)))
	return append(b, meta...)
}

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

func TestBulkBad(t *testing.T) {
	v2 := []float32{1, 2}
	good := cat(header(1, 0, 2, 2), item("a", v2, `{"x":1}`), item("", v2, ""))
	if _, err := DecodeBulk(bytes.NewReader(good), Limits{}); err != nil {
		t.Fatal(err)
	}
	withCRC := cat(header(1, BulkCRC, 2, 1), item("a", v2, ""))
	withCRC = binary.LittleEndian.AppendUint32(withCRC, crc32.Checksum(withCRC, castagnoli))
	if _, err := DecodeBulk(bytes.NewReader(withCRC), Limits{}); err != nil {
		t.Fatal(err)
	}
	flipped := bytes.Clone(withCRC)
	flipped[BulkHeaderSize+3] ^= 1 // a bit of the first float
	nan := float32(math.NaN())
	bad := []struct {
		name  string
		body  []byte
		lim   Limits
		code  Code
		parts []string
	}{
		{"empty", nil, Limits{}, BadRequest, []string{"truncated at header"}},
		{"json", []byte(`{"items":[]}` + strings.Repeat(" ", 20)), Limits{}, BadRequest, []string{"bad magic"}},
		{"version", cat(header(2, 0, 2, 1), item("", v2, "")), Limits{}, BadRequest, []string{"version 2"}},
		{"flags", cat(header(1, 6, 2, 1), item("", v2, "")), Limits{}, BadRequest, []string{"unknown flags 0x0006"}},
		{"dim 0", header(1, 0, 0, 1), Limits{}, BadRequest, []string{"dim 0"}},
		{"dim 1e9", header(1, 0, 1e9, 1), Limits{}, TooLarge, []string{"dim 1000000000"}},
		{"count 0", header(1, 0, 2, 0), Limits{}, BadRequest, []string{"empty batch"}},
		{"count 2^31", header(1, 0, 2, 1<<31), Limits{}, TooLarge, []string{"2147483648 items, limit is 10000"}},
		{"count over body", header(1, 0, 65536, 10000), Limits{}, TooLarge, []string{"take at least", "limit is 67108864"}},
		{"truncated item", good[:len(good)-3], Limits{}, BadRequest, []string{"truncated at items[1].meta length"}},
		{"truncated meta", good[:BulkHeaderSize+2+1+8+4+3], Limits{}, BadRequest, []string{"truncated at items[0].meta"}},
		{"trailing", cat(good, []byte{0}), Limits{}, BadRequest, []string{"trailing bytes after 2 items"}},
		{"crc missing", withCRC[:len(withCRC)-4], Limits{}, BadRequest, []string{"truncated at crc32c trailer"}},
		{"crc wrong", flipped, Limits{}, BadRequest, []string{"crc32c mismatch"}},
		{"nan", cat(header(1, 0, 2, 2), item("a", v2, ""), item("b", []float32{1, nan}, "")), Limits{}, BadRequest, []string{"items[1].vector[1]", "not finite"}},
		{"inf", cat(header(1, 0, 2, 1), item("a", []float32{float32(math.Inf(-1)), 0}, "")), Limits{}, BadRequest, []string{"items[0].vector[0]"}},
		{"bad utf8 id", cat(header(1, 0, 2, 1), item("a\xffb", v2, "")), Limits{}, BadRequest, []string{"items[0].id", "UTF-8"}},
		{"long id", cat(header(1, 0, 2, 1), item(strings.Repeat("a", 257), v2, "")), Limits{}, BadRequest, []string{"items[0].id: 257 bytes, limit is 256"}},
		{"dup id", cat(header(1, 0, 2, 2), item("a", v2, ""), item("a", v2, "")), Limits{}, BadRequest, []string{`items[1].id: "a" repeats items[0]`}},
		{"meta array", cat(header(1, 0, 2, 1), item("", v2, "[1]")), Limits{}, BadRequest, []string{"items[0].meta: got an array"}},
		{"meta broken", cat(header(1, 0, 2, 1), item("", v2, `{"a":`)), Limits{}, BadRequest, []string{"items[0].meta: not a well-formed JSON object"}},
		{"meta big", cat(header(1, 0, 2, 1), item("", v2, `{"a":"`+strings.Repeat("x", 100)+`"}`)), Limits{MaxMetaBytes: 50}, TooLarge, []string{"items[0].meta: 108 bytes, limit is 50"}},
		{"items over limit", cat(header(1, 0, 2, 3)), Limits{MaxItems: 2}, TooLarge, []string{"3 items, limit is 2"}},
		{"body over limit", cat(header(1, 0, 2, 1), item(strings.Repeat("a", 200), v2, "")), Limits{MaxBodyBytes: 100}, TooLarge, []string{"over the limit of 100 bytes"}},
		{"several", cat(header(1, 0, 2, 3), item("a\xff", v2, ""), item("", []float32{nan, 0}, ""), item("", v2, "7")), Limits{}, BadRequest, []string{"items[0].id", "items[1].vector[0]", "items[2].meta"}},
	}
	for _, b := range bad {
		t.Run(b.name, func(t *testing.T) {
			_, err := DecodeBulk(bytes.NewReader(b.body), b.lim)
			wantErr(t, err, b.code, b.parts...)
			// The streaming decoder refuses it too (it stops at the first problem).
			d := NewBulkDecoder(bytes.NewReader(b.body), b.lim)
			for d.Next() {
			}
			if d.Err() == nil && b.name != "dup id" { // duplicates are a batch property
				t.Errorf("streaming decoder accepted it")
			}
		})
	}
}

// A header that claims a huge batch fails before anything big is
// allocated, and a lying count on a short body allocates about what the
// body holds.
func TestBulkLyingHeaderAllocatesLittle(t *testing.T) {
	for _, body := range [][]byte{
		header(1, 0, 1e9, 1<<31),
		header(1, 0, 1600, 10000), // 64 MB claimed, nothing follows
		cat(header(1, 0, 1600, 10000), item("", make([]float32, 1600), "")),
	} {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		const runs = 10
		for range runs {
			if _, err := DecodeBulk(bytes.NewReader(body), Limits{}); err == nil {
				t.Fatal("lying header accepted")
			}
		}
		runtime.ReadMemStats(&after)
		if per := (after.TotalAlloc - before.TotalAlloc) / runs; per > 2<<20 {
			t.Errorf("header %x: %d bytes allocated per decode", body[8:20], per)
		}
	}
}

// http.MaxBytesReader's error is reported as too_large.
func TestBulkMaxBytesReader(t *testing.T) {
	body := encodeBulk(t, randomItems(rand.New(rand.NewPCG(1, 1)), 10, 16), false)
	rec := httptest.NewRecorder()
	r := http.MaxBytesReader(rec, io.NopCloser(bytes.NewReader(body)), 100)
	_, err := DecodeBulk(r, Limits{})
	wantErr(t, err, TooLarge)
	r = http.MaxBytesReader(rec, io.NopCloser(strings.NewReader(`{"items":[{"vector":[1,2,3,4,5,6,7,8,9]}]}`)), 10)
	_, err = DecodeInsert(r, Limits{})
	wantErr(t, err, TooLarge)
}

func TestBulkEncoderChecks(t *testing.T) {
	if _, err := NewBulkEncoder(io.Discard, 0, 1, false); err == nil {
		t.Error("dim 0 accepted")
	}
	if _, err := NewBulkEncoder(io.Discard, 2, 0, false); err == nil {
		t.Error("count 0 accepted")
	}
	e, _ := NewBulkEncoder(io.Discard, 2, 1, false)
	if err := e.Encode(strings.Repeat("a", 257), []float32{1, 2}, nil); err == nil {
		t.Error("long id accepted")
	}
	if err := e.Encode("", []float32{1}, nil); err == nil {
		t.Error("wrong dim accepted")
	}
	if err := e.Close(); err == nil {
		t.Error("short body closed")
	}
	if err := EncodeBulk(io.Discard, nil, false); err == nil {
		t.Error("no items encoded")
	}
}

func BenchmarkDecodeBulk(b *testing.B) {
	for _, dim := range []int{128, 960} {
		for _, crc := range []bool{false, true} {
			items := randomItems(rand.New(rand.NewPCG(1, 2)), 1000, dim)
			for i := range items { // ids as a client sends them, no meta
				items[i].ID = fmt.Sprintf("item-%08d", i)
				items[i].Meta = nil
			}
			body := encodeBulk(b, items, crc)
			b.Run(fmt.Sprintf("dim=%d/n=1000/crc=%v", dim, crc), func(b *testing.B) {
				b.SetBytes(int64(len(body)))
				b.ReportAllocs()
				cpu := testenv.CPUTime()
				for range b.N {
					if _, err := DecodeBulk(bytes.NewReader(body), Limits{}); err != nil {
						b.Fatal(err)
					}
				}
				reportCPU(b, cpu, len(body), 1000)
			})
		}
	}
}

func BenchmarkDecodeInsertJSON(b *testing.B) {
	items := randomItems(rand.New(rand.NewPCG(1, 2)), 1000, 128)
	for i := range items {
		items[i].ID = fmt.Sprintf("item-%08d", i)
		items[i].Meta = nil
	}
	body, _ := json.Marshal(Insert{Items: items})
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	cpu := testenv.CPUTime()
	for range b.N {
		if _, err := DecodeInsert(bytes.NewReader(body), Limits{}); err != nil {
			b.Fatal(err)
		}
	}
	reportCPU(b, cpu, len(body), 1000)
}

// reportCPU reports vectors per wall second, and MB and vectors per CPU
// second of the whole process (GC included) since cpu.
func reportCPU(b *testing.B, cpu time.Duration, bodyBytes, vectors int) {
	b.ReportMetric(float64(b.N*vectors)/b.Elapsed().Seconds(), "vectors/s")
	if used := (testenv.CPUTime() - cpu).Seconds(); used > 0 {
		b.ReportMetric(float64(b.N*bodyBytes)/used/1e6, "MB/cpu-s")
		b.ReportMetric(float64(b.N*vectors)/used, "vectors/cpu-s")
	}
}

// decodeFloats agrees with a plain loop and finds the first NaN or Inf at
// every position of awkward lengths.
func TestDecodeFloats(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	specials := []float32{float32(math.NaN()), float32(math.Inf(1)), float32(math.Inf(-1)), math.Float32frombits(0x7f800001), math.Float32frombits(0xffffffff)}
	for n := 0; n <= 19; n++ {
		v := make([]float32, n)
		for i := range v {
			v[i] = math.Float32frombits(rng.Uint32() &^ 0x40000000) // exponent never all ones
		}
		if n > 0 {
			v[0] = math.MaxFloat32
		}
		b := make([]byte, 0, 4*n)
		for _, x := range v {
			b = binary.LittleEndian.AppendUint32(b, math.Float32bits(x))
		}
		got := make([]float32, n)
		if i := decodeFloats(got, b); i != -1 {
			t.Fatalf("n %d: finite input reported at %d", n, i)
		}
		for i := range v {
			if math.Float32bits(got[i]) != math.Float32bits(v[i]) {
				t.Fatalf("n %d: component %d: %v, want %v", n, i, got[i], v[i])
			}
		}
		for pos := range n {
			for _, s := range specials {
				bb := bytes.Clone(b)
				binary.LittleEndian.PutUint32(bb[4*pos:], math.Float32bits(s))
				if i := decodeFloats(got, bb); i != pos {
					t.Fatalf("n %d: %v at %d reported at %d", n, s, pos, i)
				}
			}
		}
	}
}

func BenchmarkDecodeFloats(b *testing.B) {
	dst := make([]float32, 128)
	buf := make([]byte, 4*128)
	b.SetBytes(int64(len(buf)))
	for range b.N {
		decodeFloats(dst, buf)
	}
}

// The worked example of docs/format/bulk.md.
func TestBulkDocExample(t *testing.T) {
	body := encodeBulk(t, []InsertItem{{ID: "a", Vector: []float32{1, -2}, Meta: json.RawMessage(`{}`)}}, true)
	want := []byte{
		0x4c, 0x4b, 0x42, 0x4c, 0x4b, 0x0d, 0x0a, 0x1a,
		0x01, 0x00, 0x01, 0x00, 0x02, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00,
		0x01, 0x00, 0x61,
		0x00, 0x00, 0x80, 0x3f, 0x00, 0x00, 0x00, 0xc0,
		0x02, 0x00, 0x00, 0x00, 0x7b, 0x7d,
	}
	if len(want) != 37 || !bytes.Equal(body[:len(body)-4], want) {
		t.Fatalf("body % x\nwant % x", body, want)
	}
	if got := binary.LittleEndian.Uint32(body[len(body)-4:]); got != crc32.Checksum(want, castagnoli) {
		t.Fatalf("crc %#x", got)
	}
}

// The streaming decoder reuses its buffers: this is the decoding alone,
// without building the batch.
func BenchmarkBulkDecoderNext(b *testing.B) {
	items := randomItems(rand.New(rand.NewPCG(1, 2)), 1000, 128)
	for i := range items {
		items[i].ID = fmt.Sprintf("item-%08d", i)
		items[i].Meta = nil
	}
	body := encodeBulk(b, items, false)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	cpu := testenv.CPUTime()
	r := bytes.NewReader(body)
	for range b.N {
		r.Reset(body)
		d := NewBulkDecoder(r, Limits{})
		for d.Next() {
		}
		if d.Err() != nil {
			b.Fatal(d.Err())
		}
	}
	reportCPU(b, cpu, len(body), 1000)
}
