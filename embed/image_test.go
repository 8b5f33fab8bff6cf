package embed

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"image"
	"image/color"
	"image/gif"
	"image/jpeg"
	"image/png"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"golang.org/x/image/bmp"

	"lookalike/internal/testenv"
)

// testConfig feeds v/255 unchanged, so tensor values read as colours.
func testConfig(layout Layout, size int) Config {
	return Config{Name: "t", File: "t.onnx", Input: "in", Output: "out", Layout: layout,
		Size: size, Std: [3]float32{1, 1, 1}, Dim: 4}
}

var (
	red         = color.NRGBA{255, 0, 0, 255}
	green       = color.NRGBA{0, 255, 0, 255}
	blue        = color.NRGBA{0, 0, 255, 255}
	black       = color.NRGBA{0, 0, 0, 255}
	white       = color.NRGBA{255, 255, 255, 255}
	transparent = color.NRGBA{}
)

// quadrants returns a w×h image: tl, tr / bl, br.
func quadrants(w, h int, tl, tr, bl, br color.Color) *image.NRGBA {
	m := image.NewNRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			c := [2][2]color.Color{{tl, tr}, {bl, br}}[btoi(y >= h/2)][btoi(x >= w/2)]
			m.Set(x, y, c)
		}
	}
	return m
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// pixel reads the (r, g, b) at x, y of a tensor written by testConfig.
func pixel(t []float32, c Config, x, y int) [3]float32 {
	s := c.Size
	if c.Layout == NCHW {
		i := y*s + x
		return [3]float32{t[i], t[s*s+i], t[2*s*s+i]}
	}
	i := 3 * (y*s + x)
	return [3]float32{t[i], t[i+1], t[i+2]}
}

func rgbOf(c color.NRGBA) [3]float32 {
	return [3]float32{float32(c.R) / 255, float32(c.G) / 255, float32(c.B) / 255}
}

// checkQuadrants checks the centres of a tensor's quadrants.
func checkQuadrants(t *testing.T, tensor []float32, c Config, want [4]color.NRGBA, tol float32) {
	t.Helper()
	q := c.Size / 4
	at := [4][2]int{{q, q}, {3 * q, q}, {q, 3 * q}, {3 * q, 3 * q}}
	names := [4]string{"top left", "top right", "bottom left", "bottom right"}
	for i, p := range at {
		got := pixel(tensor, c, p[0], p[1])
		w := rgbOf(want[i])
		for ch := range 3 {
			if d := got[ch] - w[ch]; d > tol || d < -tol {
				t.Errorf("%s: got %.3f, want %.3f", names[i], got, w)
				break
			}
		}
	}
}

func encodePNG(t testing.TB, m image.Image) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := png.Encode(&b, m); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func encodeJPEG(t testing.TB, m image.Image, q int) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := jpeg.Encode(&b, m, &jpeg.Options{Quality: q}); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func encodeGIF(t testing.TB, m image.Image) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := gif.Encode(&b, m, nil); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func encodeBMP(t testing.TB, m image.Image) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := bmp.Encode(&b, m); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// bmpV4 encodes m as a top-down 32-bit BMP with a BITMAPV4HEADER and
// an alpha mask, which x/image/bmp cannot write.
func bmpV4(m *image.NRGBA) []byte {
	w, h := m.Rect.Dx(), m.Rect.Dy()
	le := binary.LittleEndian
	b := []byte("BM")
	b = le.AppendUint32(b, uint32(14+108+4*w*h))
	b = le.AppendUint32(b, 0)
	b = le.AppendUint32(b, 14+108) // pixel offset
	b = le.AppendUint32(b, 108)    // header size
	b = le.AppendUint32(b, uint32(w))
	b = le.AppendUint32(b, uint32(-int32(h))) // negative: top-down
	b = le.AppendUint16(b, 1)                 // planes
	b = le.AppendUint16(b, 32)
	b = le.AppendUint32(b, 3) // BI_BITFIELDS
	b = le.AppendUint32(b, uint32(4*w*h))
	b = append(b, make([]byte, 16)...) // resolution, palette counts
	for _, mask := range []uint32{0xff0000, 0xff00, 0xff, 0xff000000} {
		b = le.AppendUint32(b, mask)
	}
	b = append(b, make([]byte, 108-56)...) // colour space
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			c := m.NRGBAAt(x, y)
			b = append(b, c.B, c.G, c.R, c.A)
		}
	}
	return b
}

func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func toPaletted(m image.Image) *image.Paletted {
	p := image.NewPaletted(m.Bounds(), color.Palette{red, green, blue, black, white, transparent})
	for y := m.Bounds().Min.Y; y < m.Bounds().Max.Y; y++ {
		for x := m.Bounds().Min.X; x < m.Bounds().Max.X; x++ {
			p.Set(x, y, m.At(x, y))
		}
	}
	return p
}

func toRGBA(m image.Image) *image.RGBA {
	r := image.NewRGBA(m.Bounds())
	for y := m.Bounds().Min.Y; y < m.Bounds().Max.Y; y++ {
		for x := m.Bounds().Min.X; x < m.Bounds().Max.X; x++ {
			r.Set(x, y, m.At(x, y))
		}
	}
	return r
}

func TestPrepareFormats(t *testing.T) {
	q := quadrants(48, 32, red, green, blue, black)
	alpha := quadrants(48, 32, red, green, blue, transparent)
	gray := image.NewGray(image.Rect(0, 0, 40, 20))
	for i := range gray.Pix {
		gray.Pix[i] = 128
	}
	g128 := color.NRGBA{128, 128, 128, 255}
	all := [4]color.NRGBA{red, green, blue, black}
	overWhite := [4]color.NRGBA{red, green, blue, white}
	tests := []struct {
		name   string
		data   []byte
		format string
		w, h   int
		want   [4]color.NRGBA
		tol    float32
	}{
		{"png nrgba", encodePNG(t, q), "png", 48, 32, all, 0.01},
		{"png rgba", encodePNG(t, toRGBA(q)), "png", 48, 32, all, 0.01},
		{"png paletted", encodePNG(t, toPaletted(q)), "png", 48, 32, all, 0.01},
		{"png gray", encodePNG(t, gray), "png", 40, 20, [4]color.NRGBA{g128, g128, g128, g128}, 0.01},
		{"png alpha", encodePNG(t, alpha), "png", 48, 32, overWhite, 0.01},
		{"png paletted alpha", encodePNG(t, toPaletted(alpha)), "png", 48, 32, overWhite, 0.01},
		{"jpeg", encodeJPEG(t, q, 95), "jpeg", 48, 32, all, 0.12},
		{"jpeg gray", encodeJPEG(t, gray, 95), "jpeg", 40, 20, [4]color.NRGBA{g128, g128, g128, g128}, 0.02},
		{"gif", encodeGIF(t, toPaletted(q)), "gif", 48, 32, all, 0.01},
		{"gif transparent", encodeGIF(t, toPaletted(alpha)), "gif", 48, 32, overWhite, 0.01},
		{"bmp 24-bit", encodeBMP(t, toRGBA(q)), "bmp", 48, 32, all, 0.01},
		// A 32-bit BMP with a version 3 header has no alpha: Windows and
		// x/image/bmp ignore the fourth byte.
		{"bmp 32-bit v3", encodeBMP(t, alpha), "bmp", 48, 32, all, 0.01},
		{"bmp 32-bit v4 alpha top-down", bmpV4(alpha), "bmp", 48, 32, overWhite, 0.01},
		{"bmp paletted", encodeBMP(t, toPaletted(q)), "bmp", 48, 32, all, 0.01},
		{"webp lossy", readTestdata(t, "quadrants.webp"), "webp", 32, 24, all, 0.12},
		{"webp lossless alpha", readTestdata(t, "alpha-lossless.webp"), "webp", 32, 24, overWhite, 0.01},
		{"webp lossy alpha", readTestdata(t, "alpha-lossy.webp"), "webp", 32, 24, overWhite, 0.12},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, layout := range []Layout{NHWC, NCHW} {
				c := testConfig(layout, 16)
				p, err := Prepare(tt.data, c, Limits{})
				if err != nil {
					t.Fatal(err)
				}
				if p.Format != tt.format || p.Width != tt.w || p.Height != tt.h {
					t.Errorf("got %s %d×%d, want %s %d×%d", p.Format, p.Width, p.Height, tt.format, tt.w, tt.h)
				}
				if len(p.Tensor) != 3*16*16 {
					t.Fatalf("tensor of %d floats", len(p.Tensor))
				}
				checkQuadrants(t, p.Tensor, c, tt.want, tt.tol)
				th, err := jpeg.Decode(bytes.NewReader(p.Thumb))
				if err != nil {
					t.Fatalf("thumbnail: %v", err)
				}
				if b := th.Bounds(); b.Dx() != tt.w || b.Dy() != tt.h {
					t.Errorf("thumbnail %v, want %d×%d (never enlarged)", b, tt.w, tt.h)
				}
			}
		})
	}
}

// storedFor returns the image a camera stores for display image d under
// EXIF orientation o. It follows the TIFF 6.0 wording ("the 0th row
// represents the visual right-hand side, the 0th column the visual
// top") rather than the rotations Prepare applies, so the two are
// independent.
func storedFor(d *image.NRGBA, o int) *image.NRGBA {
	edges := map[int][2]byte{ // 0th row, 0th column: Top, Bottom, Left, Right
		1: {'T', 'L'}, 2: {'T', 'R'}, 3: {'B', 'R'}, 4: {'B', 'L'},
		5: {'L', 'T'}, 6: {'R', 'T'}, 7: {'R', 'B'}, 8: {'L', 'B'},
	}[o]
	dw, dh := d.Rect.Dx(), d.Rect.Dy()
	sw, sh := dw, dh
	if edges[0] == 'L' || edges[0] == 'R' {
		sw, sh = dh, dw
	}
	s := image.NewNRGBA(image.Rect(0, 0, sw, sh))
	for sy := 0; sy < sh; sy++ {
		for sx := 0; sx < sw; sx++ {
			var dx, dy int
			switch edges[0] { // stored rows run from this visual edge
			case 'T':
				dy = sy
			case 'B':
				dy = dh - 1 - sy
			case 'L':
				dx = sy
			case 'R':
				dx = dw - 1 - sy
			}
			switch edges[1] { // stored columns from this one
			case 'L':
				dx = sx
			case 'R':
				dx = dw - 1 - sx
			case 'T':
				dy = sx
			case 'B':
				dy = dh - 1 - sx
			}
			s.Set(sx, sy, d.At(dx, dy))
		}
	}
	return s
}

// withEXIF inserts, after SOI, a JFIF APP0 segment and an APP1 EXIF
// segment whose IFD0 holds a Make tag and then the Orientation tag, in
// the given byte order ("II" or "MM").
func withEXIF(jpg []byte, orientation int, order string) []byte {
	var bo binary.AppendByteOrder = binary.LittleEndian
	if order == "MM" {
		bo = binary.BigEndian
	}
	t := []byte(order)
	t = bo.AppendUint16(t, 42)
	t = bo.AppendUint32(t, 8) // IFD0 offset
	t = bo.AppendUint16(t, 2) // entries
	// Make, ASCII, 6 bytes at offset 38 (after the IFD).
	t = bo.AppendUint16(t, 0x010F)
	t = bo.AppendUint16(t, 2)
	t = bo.AppendUint32(t, 6)
	t = bo.AppendUint32(t, 38)
	// Orientation, SHORT, 1 value, left-justified in the 4-byte field.
	t = bo.AppendUint16(t, 0x0112)
	t = bo.AppendUint16(t, 3)
	t = bo.AppendUint32(t, 1)
	t = bo.AppendUint16(t, uint16(orientation))
	t = bo.AppendUint16(t, 0)
	t = bo.AppendUint32(t, 0) // no next IFD
	t = append(t, "Go\x00\x00\x00\x00"...)
	seg := append([]byte("Exif\x00\x00"), t...)

	out := []byte{0xFF, 0xD8}
	jfif := []byte("JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00")
	out = append(out, 0xFF, 0xE0, byte((len(jfif)+2)>>8), byte(len(jfif)+2))
	out = append(out, jfif...)
	out = append(out, 0xFF, 0xE1, byte((len(seg)+2)>>8), byte(len(seg)+2))
	out = append(out, seg...)
	return append(out, jpg[2:]...)
}

func TestPrepareOrientation(t *testing.T) {
	display := quadrants(48, 32, red, green, blue, black)
	want := [4]color.NRGBA{red, green, blue, black}
	for o := 1; o <= 8; o++ {
		for _, order := range []string{"II", "MM"} {
			data := withEXIF(encodeJPEG(t, storedFor(display, o), 95), o, order)
			if got := exifOrientation(data); got != o {
				t.Fatalf("orientation %d %s: read %d", o, order, got)
			}
			for _, layout := range []Layout{NHWC, NCHW} {
				c := testConfig(layout, 16)
				p, err := Prepare(data, c, Limits{ThumbSide: 24})
				if err != nil {
					t.Fatal(err)
				}
				if p.Width != 48 || p.Height != 32 {
					t.Errorf("orientation %d: %d×%d, want 48×32", o, p.Width, p.Height)
				}
				checkQuadrants(t, p.Tensor, c, want, 0.12)
				th, err := jpeg.Decode(bytes.NewReader(p.Thumb))
				if err != nil {
					t.Fatal(err)
				}
				if b := th.Bounds(); b.Dx() != 24 || b.Dy() != 16 {
					t.Errorf("orientation %d: thumbnail %v, want 24×16", o, b)
				}
				// The thumbnail is upright too: its top left is red.
				if r, g, b, _ := th.At(3, 3).RGBA(); r>>8 < 200 || g>>8 > 60 || b>>8 > 60 {
					t.Errorf("orientation %d: thumbnail top left %d,%d,%d, want red", o, r>>8, g>>8, b>>8)
				}
			}
		}
	}
}

func TestPrepareAlphaOverWhite(t *testing.T) {
	m := image.NewNRGBA(image.Rect(0, 0, 20, 20))
	for i := 0; i < len(m.Pix); i += 4 {
		copy(m.Pix[i:], []byte{255, 0, 0, 128}) // half-transparent red
	}
	c := testConfig(NHWC, 8)
	p, err := Prepare(encodePNG(t, m), c, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	got := pixel(p.Tensor, c, 4, 4)
	want := [3]float32{1, 127.0 / 255, 127.0 / 255}
	for ch := range 3 {
		if math.Abs(float64(got[ch]-want[ch])) > 1.5/255 {
			t.Fatalf("got %v, want %v (red at half alpha over white)", got, want)
		}
	}
}

func TestPrepareNormalise(t *testing.T) {
	m := image.NewNRGBA(image.Rect(0, 0, 8, 8))
	for i := 0; i < len(m.Pix); i += 4 {
		copy(m.Pix[i:], []byte{0, 51, 255, 255})
	}
	c := testConfig(NCHW, 8)
	c.Mean = [3]float32{0.5, 0.2, 0.4}
	c.Std = [3]float32{0.5, 0.1, 0.2}
	p, err := Prepare(encodePNG(t, m), c, Limits{ThumbSide: -1})
	if err != nil {
		t.Fatal(err)
	}
	if p.Thumb != nil {
		t.Errorf("thumbnail made with ThumbSide -1")
	}
	want := [3]float32{(0 - 0.5) / 0.5, (0.2 - 0.2) / 0.1, (1 - 0.4) / 0.2}
	for i, v := range p.Tensor {
		if w := want[i/64]; math.Abs(float64(v-w)) > 1e-5 {
			t.Fatalf("tensor[%d] = %v, want %v", i, v, w)
		}
	}
}

// TestPrepareIdentity: an image already at the model's size reaches the
// model unresampled.
func TestPrepareIdentity(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	m := image.NewNRGBA(image.Rect(0, 0, 16, 16))
	for i := range m.Pix {
		m.Pix[i] = uint8(r.IntN(256))
		if i%4 == 3 {
			m.Pix[i] = 255
		}
	}
	c := testConfig(NHWC, 16)
	p, err := Prepare(encodePNG(t, m), c, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range p.Tensor {
		if w := float32(m.Pix[4*(i/3)+i%3]) / 255; v != w {
			t.Fatalf("tensor[%d] = %v, want %v", i, v, w)
		}
	}
}

// TestPrepareAntialias: a large image of one-pixel stripes must shrink to
// its mean grey, not to whatever stripes a point sampler happens to hit.
func TestPrepareAntialias(t *testing.T) {
	for _, size := range [][2]int{{2000, 1000}, {1001, 3001}, {300, 300}} {
		m := image.NewGray(image.Rect(0, 0, size[0], size[1]))
		for y := 0; y < size[1]; y++ {
			for x := 0; x < size[0]; x++ {
				if (x+y)%2 == 0 {
					m.Pix[y*m.Stride+x] = 255
				}
			}
		}
		c := testConfig(NHWC, 32)
		p, err := Prepare(encodePNG(t, m), c, Limits{})
		if err != nil {
			t.Fatal(err)
		}
		lo, hi := float32(1), float32(0)
		for _, v := range p.Tensor {
			lo, hi = min(lo, v), max(hi, v)
		}
		if lo < 0.45 || hi > 0.55 {
			t.Errorf("%v: tensor spans %.3f..%.3f, want about 0.5 everywhere", size, lo, hi)
		}
	}
}

// pngHeader is a PNG signature and IHDR chunk for a w×h RGBA image,
// with no pixel data.
func pngHeader(w, h uint32) []byte {
	b := []byte("\x89PNG\r\n\x1a\n")
	ihdr := binary.BigEndian.AppendUint32([]byte("IHDR"), w)
	ihdr = binary.BigEndian.AppendUint32(ihdr, h)
	ihdr = append(ihdr, 8, 6, 0, 0, 0) // 8-bit RGBA
	b = binary.BigEndian.AppendUint32(b, 13)
	b = append(b, ihdr...)
	b = binary.BigEndian.AppendUint32(b, crc32.ChecksumIEEE(ihdr))
	idat := []byte("IDAT\x78\x9c\x63\x00\x00\x00\x01\x00\x01") // a few compressed zero bytes
	b = binary.BigEndian.AppendUint32(b, uint32(len(idat)-4))
	b = append(b, idat...)
	return binary.BigEndian.AppendUint32(b, crc32.ChecksumIEEE(idat))
}

func TestPrepareRefusesBombs(t *testing.T) {
	gifHeader := func(w, h uint16) []byte {
		b := []byte("GIF89a")
		b = binary.LittleEndian.AppendUint16(b, w)
		b = binary.LittleEndian.AppendUint16(b, h)
		return append(b, 0, 0, 0, ';')
	}
	tests := []struct {
		name string
		data []byte
		lim  Limits
	}{
		{"png 30000×30000", pngHeader(30000, 30000), Limits{}},
		{"png 16000×16000 (sides allowed, pixels not)", pngHeader(16000, 16000), Limits{}},
		{"png 1×100000", pngHeader(1, 100000), Limits{}},
		{"gif 65535×65535", gifHeader(65535, 65535), Limits{}},
		{"png under a small limit", pngHeader(100, 100), Limits{MaxPixels: 9999}},
		{"too many bytes", encodePNG(t, image.NewGray(image.Rect(0, 0, 64, 64))), Limits{MaxBytes: 50}},
	}
	c := testConfig(NHWC, 224)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			start := time.Now()
			_, err := Prepare(tt.data, c, tt.lim)
			took := time.Since(start)
			runtime.ReadMemStats(&after)
			if !errors.Is(err, ErrTooLarge) {
				t.Fatalf("got %v, want ErrTooLarge", err)
			}
			if took > 50*time.Millisecond {
				t.Errorf("refusal took %v", took)
			}
			if d := after.TotalAlloc - before.TotalAlloc; d > 1<<20 {
				t.Errorf("refusal allocated %d bytes", d)
			}
			t.Log(err)
		})
	}
}

func TestPrepareBadInput(t *testing.T) {
	q := quadrants(64, 48, red, green, blue, black)
	half := func(b []byte) []byte { return b[:len(b)/2] }
	svg := []byte("\xef\xbb\xbf<?xml version=\"1.0\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\"/>")
	heic := append([]byte("\x00\x00\x00\x18ftypheic"), make([]byte, 16)...)
	tests := []struct {
		name string
		data []byte
		want error
	}{
		{"empty", nil, ErrNotImage},
		{"text", []byte("hello, world\n"), ErrNotImage},
		{"html", []byte("<!doctype html><html><body>hi</body></html>"), ErrNotImage},
		{"text starting BM", []byte("BMW and Audi, a comparison of the two makers"), ErrNotImage},
		{"mp4", append([]byte("\x00\x00\x00\x18ftypisom"), make([]byte, 16)...), ErrNotImage},
		{"svg", svg, ErrUnsupported},
		{"tiff", []byte("II*\x00\x08\x00\x00\x00"), ErrUnsupported},
		{"heic", heic, ErrUnsupported},
		{"animated webp", readTestdata(t, "animated.webp"), ErrUnsupported},
		{"arithmetic jpeg", []byte("\xff\xd8\xff\xc9\x00\x0b\x08\x00\x10\x00\x10\x01\x01\x11\x00"), ErrUnsupported},
		{"png prefix", []byte("\x89PN"), ErrTruncated},
		{"jpeg prefix", []byte("\xff\xd8"), ErrTruncated},
		{"png header only", pngHeader(64, 48)[:33], ErrTruncated},
		{"png half", half(encodePNG(t, q)), ErrTruncated},
		{"jpeg half", half(encodeJPEG(t, q, 90)), ErrTruncated},
		{"gif half", half(encodeGIF(t, toPaletted(q))), ErrTruncated},
		{"bmp half", half(encodeBMP(t, q)), ErrTruncated},
		{"webp half", half(readTestdata(t, "quadrants.webp")), ErrTruncated},
		{"webp lossless half", half(readTestdata(t, "alpha-lossless.webp")), ErrTruncated},
		{"png zero width", pngHeader(0, 10), ErrTruncated},
		{"png corrupt pixels", pngHeader(64, 48), ErrTruncated},
	}
	c := testConfig(NHWC, 16)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Prepare(tt.data, c, Limits{})
			if !errors.Is(err, tt.want) {
				t.Fatalf("got %v, %v; want %v", p, err, tt.want)
			}
			t.Log(err)
		})
	}
}

func TestPrepareBadConfig(t *testing.T) {
	data := encodePNG(t, image.NewGray(image.Rect(0, 0, 4, 4)))
	for _, c := range []Config{
		{Layout: NHWC, Size: 0, Std: [3]float32{1, 1, 1}},
		{Layout: "HWC", Size: 8, Std: [3]float32{1, 1, 1}},
		{Layout: NHWC, Size: 8, Std: [3]float32{1, 0, 1}},
	} {
		if _, err := Prepare(data, c, Limits{}); err == nil {
			t.Errorf("%+v: no error", c)
		}
		if got := Preprocess(image.NewGray(image.Rect(0, 0, 4, 4)), c, nil); got != nil {
			t.Errorf("%+v: Preprocess returned a tensor", c)
		}
	}
}

func TestLimits(t *testing.T) {
	var l Limits
	l.EnsureDefaults()
	if l != DefaultLimits() {
		t.Errorf("EnsureDefaults: %+v, want %+v", l, DefaultLimits())
	}
	if err := (Limits{MaxBytes: -1, MaxPixels: -1, MaxSide: -1, ThumbSide: 5000}).Validate(); err == nil {
		t.Error("Validate accepted negative limits")
	} else {
		t.Log(err)
	}
}

// TestPreprocess: Preprocess matches Prepare on an upright image, reuses
// dst, and handles images whose bounds do not start at the origin.
func TestPreprocess(t *testing.T) {
	m := quadrants(300, 200, red, green, blue, color.NRGBA{0, 0, 0, 0})
	c := testConfig(NCHW, 32)
	p, err := Prepare(encodePNG(t, m), c, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	dst := make([]float32, 0, 3*32*32)
	got := Preprocess(m, c, dst)
	if &got[0] != &dst[:1][0] {
		t.Error("Preprocess did not write into dst")
	}
	for i := range got {
		if got[i] != p.Tensor[i] {
			t.Fatalf("tensor[%d]: Preprocess %v, Prepare %v", i, got[i], p.Tensor[i])
		}
	}
	sub := quadrants(400, 400, black, black, black, black)
	for y := 100; y < 300; y++ {
		for x := 50; x < 350; x++ {
			sub.Set(x, y, m.At(x-50, y-100))
		}
	}
	got = Preprocess(sub.SubImage(image.Rect(50, 100, 350, 300)), c, nil)
	for i := range got {
		if got[i] != p.Tensor[i] {
			t.Fatalf("sub-image tensor[%d]: %v, want %v", i, got[i], p.Tensor[i])
		}
	}
}

// photo returns a w×h image with smooth gradients and some noise, so
// that it compresses like a photograph rather than a test card.
func photo(w, h int) *image.RGBA {
	r := rand.New(rand.NewPCG(3, 4))
	m := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			n := r.IntN(24)
			i := m.PixOffset(x, y)
			m.Pix[i] = uint8((x*255/w + n) & 255)
			m.Pix[i+1] = uint8((y*255/h + n) & 255)
			m.Pix[i+2] = uint8(((x+y)*128/(w+h) + 64 + n) & 255)
			m.Pix[i+3] = 255
		}
	}
	return m
}

// BenchmarkPrepare measures Prepare, thumbnail included, on images of a
// typical upload size, for the default model's 224×224 NHWC input. Run it
// with -cpu 1 for cpu-ms/op to mean one image's work.
func BenchmarkPrepare(b *testing.B) {
	c := testConfig(NHWC, 224)
	for _, sz := range [][2]int{{1600, 1200}, {4000, 3000}} {
		m := photo(sz[0], sz[1])
		mp := float64(sz[0]*sz[1]) / 1e6
		alpha := image.NewNRGBA(m.Rect)
		copy(alpha.Pix, m.Pix)
		for i := 3; i < len(alpha.Pix); i += 4 {
			alpha.Pix[i] = uint8(i)
		}
		for _, f := range []struct {
			name string
			data []byte
		}{
			{"jpeg", encodeJPEG(b, m, 90)},
			{"png", encodePNG(b, m)},
			{"png-alpha", encodePNG(b, alpha)},
		} {
			b.Run(fmt.Sprintf("%s-%.0fMP", f.name, mp), func(b *testing.B) {
				b.SetBytes(int64(len(f.data)))
				b.ReportAllocs()
				cpu0 := testenv.CPUTime()
				for b.Loop() {
					if _, err := Prepare(f.data, c, Limits{}); err != nil {
						b.Fatal(err)
					}
				}
				// CPU time, GC included: wall time on a shared machine
				// says more about the neighbours.
				b.ReportMetric(float64(testenv.CPUTime()-cpu0)/float64(time.Millisecond)/float64(b.N), "cpu-ms/op")
			})
		}
	}
}

// FuzzPrepare: Prepare never panics, and every error wraps one of the
// four input sentinels.
func FuzzPrepare(f *testing.F) {
	q := quadrants(20, 12, red, green, blue, transparent)
	f.Add(encodePNG(f, q))
	f.Add(encodePNG(f, toPaletted(q)))
	f.Add(encodeJPEG(f, q, 80))
	f.Add(withEXIF(encodeJPEG(f, q, 80), 6, "MM"))
	f.Add(encodeGIF(f, toPaletted(q)))
	f.Add(encodeBMP(f, q))
	for _, name := range []string{"quadrants.webp", "alpha-lossless.webp", "alpha-lossy.webp", "animated.webp"} {
		f.Add(readTestdata(f, name))
	}
	f.Add(pngHeader(30000, 30000))
	f.Add([]byte("<svg/>"))
	c := testConfig(NHWC, 8)
	lim := Limits{MaxPixels: 1 << 16, MaxSide: 1024, ThumbSide: 16}
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := Prepare(data, c, lim)
		if err != nil {
			if !errors.Is(err, ErrNotImage) && !errors.Is(err, ErrUnsupported) &&
				!errors.Is(err, ErrTooLarge) && !errors.Is(err, ErrTruncated) {
				t.Fatalf("error wraps no sentinel: %v", err)
			}
			return
		}
		if len(p.Tensor) != 3*8*8 || len(p.Thumb) == 0 || p.Width < 1 || p.Height < 1 {
			t.Fatalf("bad result: %d floats, %d thumbnail bytes, %d×%d", len(p.Tensor), len(p.Thumb), p.Width, p.Height)
		}
		for _, v := range p.Tensor {
			if v < 0 || v > 1 {
				t.Fatalf("tensor value %v outside 0..1", v)
			}
		}
	})
}
