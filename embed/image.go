package embed

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	stddraw "image/draw"
	"image/gif"
	"image/jpeg"
	"image/png"
	"io"

	"golang.org/x/image/bmp"
	xdraw "golang.org/x/image/draw"
	"golang.org/x/image/webp"
)

// Limits bound what Prepare accepts. The zero value of a field means its
// default (DefaultLimits).
type Limits struct {
	MaxBytes  int64 // largest encoded image, bytes; default 32 MiB
	MaxPixels int64 // largest width × height, from the header; default 64 Mi pixels
	MaxSide   int   // largest width or height, pixels; default 20000
	ThumbSide int   // the thumbnail's longest side, pixels; default 256; negative: no thumbnail
}

// DefaultLimits returns the limits a node uses unless told otherwise. A
// 64 Mi pixel image needs about 256 MiB while it is decoded.
func DefaultLimits() Limits {
	return Limits{MaxBytes: 32 << 20, MaxPixels: 64 << 20, MaxSide: 20000, ThumbSide: 256}
}

// EnsureDefaults sets every zero field to its default.
func (l *Limits) EnsureDefaults() {
	d := DefaultLimits()
	if l.MaxBytes == 0 {
		l.MaxBytes = d.MaxBytes
	}
	if l.MaxPixels == 0 {
		l.MaxPixels = d.MaxPixels
	}
	if l.MaxSide == 0 {
		l.MaxSide = d.MaxSide
	}
	if l.ThumbSide == 0 {
		l.ThumbSide = d.ThumbSide
	}
}

// Validate reports every problem with l at once. Zero fields are
// allowed (they mean the default).
func (l Limits) Validate() error {
	var probs []string
	if l.MaxBytes < 0 {
		probs = append(probs, fmt.Sprintf("max bytes %d, want > 0", l.MaxBytes))
	}
	if l.MaxPixels < 0 {
		probs = append(probs, fmt.Sprintf("max pixels %d, want > 0", l.MaxPixels))
	}
	if l.MaxSide < 0 {
		probs = append(probs, fmt.Sprintf("max side %d, want > 0", l.MaxSide))
	}
	if l.ThumbSide > 4096 {
		probs = append(probs, fmt.Sprintf("thumb side %d, want at most 4096", l.ThumbSide))
	}
	if len(probs) == 0 {
		return nil
	}
	return fmt.Errorf("embed: invalid limits: %v", probs)
}

// Formats Prepare decodes, as Prepared.Format names them.
const (
	formatJPEG = "jpeg"
	formatPNG  = "png"
	formatGIF  = "gif"
	formatWebP = "webp"
	formatBMP  = "bmp"
)

// thumbQuality is the JPEG quality of thumbnails.
const thumbQuality = 82

// Prepare decodes one encoded image (JPEG, PNG, GIF's first frame, WebP,
// BMP) and makes it ready for a model with config c:
//
//  1. the format is sniffed from the leading bytes; the header alone is
//     read and sizes beyond lim are refused (ErrTooLarge) before any
//     pixel is decoded, so a decompression bomb costs microseconds;
//  2. the image is decoded and, for JPEG, turned upright by its EXIF
//     orientation (all 8 values);
//  3. transparent pixels are composited over white (line art on a
//     transparent background would vanish over black);
//  4. the whole image is resized to c.Size × c.Size, aspect ratio not
//     kept (as TF.js nsfwjs feeds its model), with a box prefilter for
//     large reductions and then Catmull-Rom;
//  5. each channel value v is written as (v/255 − Mean)/Std in c.Layout;
//  6. a JPEG thumbnail, longest side lim.ThumbSide, is made from the
//     same decoded pixels.
//
// Errors wrap ErrNotImage, ErrUnsupported, ErrTooLarge or ErrTruncated,
// or describe a config that cannot be fed. Prepare is safe for
// concurrent use and keeps no reference to data.
func Prepare(data []byte, c Config, lim Limits) (*Prepared, error) {
	if err := checkInput(c); err != nil {
		return nil, err
	}
	lim.EnsureDefaults()
	if len(data) == 0 {
		return nil, fmt.Errorf("%w: empty input", ErrNotImage)
	}
	if int64(len(data)) > lim.MaxBytes {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(data), lim.MaxBytes)
	}
	format, err := sniff(data)
	if err != nil {
		return nil, err
	}
	cfg, err := decodeConfig(format, data)
	if err != nil {
		return nil, classify(format, err)
	}
	w, h := cfg.Width, cfg.Height
	if w <= 0 || h <= 0 {
		return nil, fmt.Errorf("%w: %s header says %d×%d", ErrTruncated, format, w, h)
	}
	if w > lim.MaxSide || h > lim.MaxSide || int64(w)*int64(h) > lim.MaxPixels {
		return nil, fmt.Errorf("%w: %s of %d×%d pixels, limits %d per side and %d in all",
			ErrTooLarge, format, w, h, lim.MaxSide, lim.MaxPixels)
	}
	img, err := decode(format, data)
	if err != nil {
		return nil, classify(format, err)
	}
	// The header was checked; the decoded image must lie within it.
	if b := img.Bounds(); !b.In(image.Rect(0, 0, w, h)) {
		return nil, fmt.Errorf("%w: %s frame %v outside its %d×%d canvas", ErrTruncated, format, b, w, h)
	}
	orient := 1
	if format == formatJPEG {
		orient = exifOrientation(data)
	}
	p := &Prepared{Format: format, Width: w, Height: h}
	if orient >= 5 {
		p.Width, p.Height = h, w
	}

	// The tensor depends on the image and c alone: its box reduction
	// keeps at least twice c.Size each way. The thumbnail reuses that
	// reduction when it is at least 1.5 times the thumbnail's size (with
	// the defaults, always), and reduces the original again otherwise.
	full := image.Rect(0, 0, w, h)
	work := reduce(img, full, max(w/(2*c.Size), 1), max(h/(2*c.Size), 1))
	p.Tensor = writeTensor(make([]float32, 3*c.Size*c.Size), resize(work, c.Size, c.Size), orient, c)
	if lim.ThumbSide > 0 {
		tw, th := thumbSize(p.Width, p.Height, lim.ThumbSide)
		if orient >= 5 { // to the stored orientation
			tw, th = th, tw
		}
		if (2*work.Rect.Dx() < 3*tw || 2*work.Rect.Dy() < 3*th) && work.Rect != full {
			work = reduce(img, full, max(w/(2*tw), 1), max(h/(2*th), 1))
		}
		p.Thumb, err = encodeThumb(resize(work, tw, th), orient)
		if err != nil {
			return nil, fmt.Errorf("embed: thumbnail: %w", err)
		}
	}
	return p, nil
}

// Preprocess is Prepare's pixel path without decoding, orientation or
// thumbnail: img composited over white, resized to c.Size × c.Size and
// normalised into c.Layout. It writes into dst when cap(dst) suffices
// and returns the tensor (nil when c cannot be fed; see Prepare).
func Preprocess(img image.Image, c Config, dst []float32) []float32 {
	if checkInput(c) != nil {
		return nil
	}
	n := 3 * c.Size * c.Size
	if cap(dst) < n {
		dst = make([]float32, n)
	}
	dst = dst[:n]
	b := img.Bounds()
	if b.Empty() {
		return writeTensor(dst, image.NewRGBA(image.Rect(0, 0, c.Size, c.Size)), 1, c)
	}
	work := reduce(img, b, max(b.Dx()/(2*c.Size), 1), max(b.Dy()/(2*c.Size), 1))
	return writeTensor(dst, resize(work, c.Size, c.Size), 1, c)
}

// checkInput reports a config whose input Prepare cannot write.
func checkInput(c Config) error {
	if c.Size < 1 || c.Size > 4096 {
		return fmt.Errorf("embed: input size %d, want 1..4096", c.Size)
	}
	if c.Layout != NHWC && c.Layout != NCHW {
		return fmt.Errorf("embed: layout %q, want NHWC or NCHW", c.Layout)
	}
	for i, s := range c.Std {
		if !(s > 0) {
			return fmt.Errorf("embed: std[%d] = %v, want > 0", i, s)
		}
	}
	return nil
}

// thumbSize returns the thumbnail size of a w×h image: longest side
// side, never enlarged, at least 1 pixel each way.
func thumbSize(w, h, side int) (int, int) {
	if w <= side && h <= side {
		return w, h
	}
	if w >= h {
		return side, max(1, (h*side+w/2)/w)
	}
	return max(1, (w*side+h/2)/h), side
}

// Magic numbers. Formats we decode, then formats we recognise but do
// not decode (so the caller hears "unsupported", not "not an image").
var (
	magicJPEG = []byte{0xFF, 0xD8, 0xFF}
	magicPNG  = []byte("\x89PNG\r\n\x1a\n")

	unsupportedMagic = []struct {
		prefix, name string
	}{
		{"II*\x00", "TIFF"},
		{"MM\x00*", "TIFF"},
		{"8BPS", "PSD"},
		{"\x00\x00\x01\x00", "ICO"},
		{"\x00\x00\x02\x00", "CUR"},
		{"\x00\x00\x00\x0cjP  \r\n\x87\n", "JPEG 2000"},
		{"\xff\x4f\xff\x51", "JPEG 2000"},
		{"\x00\x00\x00\x0cJXL \r\n\x87\n", "JPEG XL"},
		{"\xff\x0a", "JPEG XL"},
		{"qoif", "QOI"},
		{"gimp xcf", "XCF"},
		{"\x76\x2f\x31\x01", "OpenEXR"},
		{"#?RADIANCE", "Radiance HDR"},
	}
	// ISO base media brands of still images (HEIF, AVIF).
	heifBrands = map[string]string{
		"heic": "HEIC", "heix": "HEIC", "heim": "HEIC", "heis": "HEIC",
		"hevc": "HEIC", "hevx": "HEIC", "mif1": "HEIF", "msf1": "HEIF",
		"avif": "AVIF", "avis": "AVIF",
	}
)

// sniff names data's format, or returns an error wrapping ErrNotImage,
// ErrUnsupported or ErrTruncated.
func sniff(data []byte) (string, error) {
	switch {
	case bytes.HasPrefix(data, magicJPEG):
		return formatJPEG, nil
	case bytes.HasPrefix(data, magicPNG):
		return formatPNG, nil
	case bytes.HasPrefix(data, []byte("GIF87a")), bytes.HasPrefix(data, []byte("GIF89a")):
		return formatGIF, nil
	case len(data) >= 12 && string(data[:4]) == "RIFF" && string(data[8:12]) == "WEBP":
		// VP8X flags: bit 1 is animation, which x/image/webp cannot decode.
		if len(data) >= 21 && string(data[12:16]) == "VP8X" && data[20]&2 != 0 {
			return "", fmt.Errorf("%w: animated WebP", ErrUnsupported)
		}
		return formatWebP, nil
	case bytes.HasPrefix(data, []byte("BM")):
		// The DIB header's size tells a BMP from text that starts "BM".
		if len(data) < 18 {
			return "", fmt.Errorf("%w: %d bytes of BMP", ErrTruncated, len(data))
		}
		switch le32(data[14:]) {
		case 12, 16, 40, 52, 56, 64, 108, 124:
			return formatBMP, nil
		}
	case len(data) < len(magicPNG) && (bytes.HasPrefix(magicJPEG, data) || bytes.HasPrefix(magicPNG, data)):
		return "", fmt.Errorf("%w: %d bytes, the start of a JPEG or PNG signature", ErrTruncated, len(data))
	}
	for _, m := range unsupportedMagic {
		if bytes.HasPrefix(data, []byte(m.prefix)) {
			return "", fmt.Errorf("%w: %s", ErrUnsupported, m.name)
		}
	}
	if len(data) >= 12 && string(data[4:8]) == "ftyp" {
		if name, ok := heifBrands[string(data[8:12])]; ok {
			return "", fmt.Errorf("%w: %s", ErrUnsupported, name)
		}
	}
	if isSVG(data) {
		return "", fmt.Errorf("%w: SVG (a vector image; rasterise it first)", ErrUnsupported)
	}
	return "", fmt.Errorf("%w: unrecognised leading bytes %q", ErrNotImage, head(data, 8))
}

// isSVG reports whether data looks like an SVG document: after a byte
// order mark and white space, an XML declaration, comment or doctype,
// and an <svg element within the first KiB.
func isSVG(data []byte) bool {
	d := bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	d = bytes.TrimLeft(d, " \t\r\n")
	if !bytes.HasPrefix(d, []byte("<")) {
		return false
	}
	return bytes.Contains(head(d, 1024), []byte("<svg"))
}

func head(b []byte, n int) []byte { return b[:min(len(b), n)] }

func le32(b []byte) uint32 {
	return uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24
}

func decodeConfig(format string, data []byte) (image.Config, error) {
	r := bytes.NewReader(data)
	switch format {
	case formatJPEG:
		return jpeg.DecodeConfig(r)
	case formatPNG:
		return png.DecodeConfig(r)
	case formatGIF:
		return gif.DecodeConfig(r)
	case formatWebP:
		return webp.DecodeConfig(r)
	case formatBMP:
		return bmp.DecodeConfig(r)
	}
	return image.Config{}, fmt.Errorf("no decoder for %s", format)
}

func decode(format string, data []byte) (image.Image, error) {
	r := bytes.NewReader(data)
	switch format {
	case formatJPEG:
		return jpeg.Decode(r)
	case formatPNG:
		return png.Decode(r)
	case formatGIF:
		return gif.Decode(r) // the first frame
	case formatWebP:
		return webp.Decode(r)
	case formatBMP:
		return bmp.Decode(r)
	}
	return nil, fmt.Errorf("no decoder for %s", format)
}

// classify wraps a decoder's error in the sentinel a caller acts on.
func classify(format string, err error) error {
	var (
		jpegU jpeg.UnsupportedError
		pngU  png.UnsupportedError
	)
	switch {
	case errors.As(err, &jpegU), errors.As(err, &pngU), errors.Is(err, bmp.ErrUnsupported):
		return fmt.Errorf("%w: decode %s: %v", ErrUnsupported, format, err)
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return fmt.Errorf("%w: decode %s: unexpected end of data", ErrTruncated, format)
	}
	return fmt.Errorf("%w: decode %s: %v", ErrTruncated, format, err)
}

// reduce converts the canvas rectangle r of img (pixels outside img's
// bounds are transparent) to premultiplied RGBA with its origin at 0,0,
// averaging each kx × ky block into one pixel. Reducing by whole factors
// first (as Pillow's reducing_gap does) touches each source pixel once,
// so the Catmull-Rom pass that follows runs on a small image; keeping at
// least twice the target size leaves its quality intact.
func reduce(img image.Image, r image.Rectangle, kx, ky int) *image.RGBA {
	w, h := r.Dx(), r.Dy()
	ow, oh := (w+kx-1)/kx, (h+ky-1)/ky
	if kx == 1 && ky == 1 {
		out := image.NewRGBA(r)
		convert(out, img)
		out.Rect = image.Rect(0, 0, w, h)
		return out
	}
	out := image.NewRGBA(image.Rect(0, 0, ow, oh))
	band := &image.RGBA{Pix: make([]byte, 4*w*ky), Stride: 4 * w}
	acc := make([]uint32, 4*ow)
	for oy := 0; oy < oh; oy++ {
		y0, y1 := oy*ky, min(oy*ky+ky, h)
		band.Rect = image.Rect(r.Min.X, r.Min.Y+y0, r.Max.X, r.Min.Y+y1)
		convert(band, img)
		clear(acc)
		for y := 0; y < y1-y0; y++ {
			row := band.Pix[y*band.Stride : y*band.Stride+4*w]
			for ox := 0; ox < ow; ox++ {
				s := row[4*ox*kx : 4*min(ox*kx+kx, w)]
				var r, g, b, a uint32
				for i := 0; i+3 < len(s); i += 4 {
					r += uint32(s[i])
					g += uint32(s[i+1])
					b += uint32(s[i+2])
					a += uint32(s[i+3])
				}
				acc[4*ox] += r
				acc[4*ox+1] += g
				acc[4*ox+2] += b
				acc[4*ox+3] += a
			}
		}
		dst := out.Pix[oy*out.Stride : oy*out.Stride+4*ow]
		for ox := 0; ox < ow; ox++ {
			n := uint32((min(ox*kx+kx, w) - ox*kx) * (y1 - y0))
			for c := 0; c < 4; c++ {
				dst[4*ox+c] = uint8((acc[4*ox+c] + n/2) / n)
			}
		}
	}
	return out
}

// convert writes img's pixels over dst.Rect as premultiplied RGBA;
// pixels of dst.Rect outside img are transparent.
func convert(dst *image.RGBA, img image.Image) {
	r := dst.Rect
	if !r.In(img.Bounds()) {
		clear(dst.Pix[:min(len(dst.Pix), r.Dy()*dst.Stride)])
	}
	if p, ok := img.(*image.Paletted); ok {
		convertPaletted(dst, p)
		return
	}
	stddraw.Draw(dst, r, img, r.Min, stddraw.Src)
}

// convertPaletted is image/draw's missing fast path: one premultiplied
// lookup per pixel instead of an interface call.
func convertPaletted(dst *image.RGBA, p *image.Paletted) {
	var lut [256][4]uint8
	for i, c := range p.Palette {
		if i == 256 {
			break
		}
		r, g, b, a := c.RGBA()
		lut[i] = [4]uint8{uint8(r >> 8), uint8(g >> 8), uint8(b >> 8), uint8(a >> 8)}
	}
	r := dst.Rect.Intersect(p.Rect)
	for y := r.Min.Y; y < r.Max.Y; y++ {
		src := p.Pix[p.PixOffset(r.Min.X, y):][:r.Dx()]
		d := dst.Pix[dst.PixOffset(r.Min.X, y):][:4*r.Dx()]
		for i, ci := range src {
			e := lut[ci]
			d[4*i], d[4*i+1], d[4*i+2], d[4*i+3] = e[0], e[1], e[2], e[3]
		}
	}
}

// resize scales src to w×h with Catmull-Rom (a copy when the size is
// already right).
func resize(src *image.RGBA, w, h int) *image.RGBA {
	dst := image.NewRGBA(image.Rect(0, 0, w, h))
	if src.Rect.Dx() == w && src.Rect.Dy() == h {
		copy(dst.Pix, src.Pix)
		return dst
	}
	xdraw.CatmullRom.Scale(dst, dst.Rect, src, src.Rect, xdraw.Src, nil)
	return dst
}

// storedAt maps a displayed pixel (dx, dy) of an image stored w×h with
// EXIF orientation o to its stored pixel.
func storedAt(o, dx, dy, w, h int) (int, int) {
	switch o {
	case 2: // mirrored left–right
		return w - 1 - dx, dy
	case 3: // rotated 180°
		return w - 1 - dx, h - 1 - dy
	case 4: // mirrored top–bottom
		return dx, h - 1 - dy
	case 5: // transposed
		return dy, dx
	case 6: // stored rotated 90° counter-clockwise; shown turned clockwise
		return dy, h - 1 - dx
	case 7: // transversed
		return w - 1 - dy, h - 1 - dx
	case 8: // stored rotated 90° clockwise
		return w - 1 - dy, dx
	}
	return dx, dy
}

// overWhite composites a premultiplied RGBA value over white.
func overWhite(c, a uint8) uint8 {
	v := int(c) + 255 - int(a)
	if v > 255 {
		return 255
	}
	return uint8(v)
}

// writeTensor writes the small image src (stored orientation o) into
// dst, composited over white and normalised, in c.Layout.
func writeTensor(dst []float32, src *image.RGBA, o int, c Config) []float32 {
	s := c.Size
	var lut [3][256]float32
	for ch := 0; ch < 3; ch++ {
		for v := range lut[ch] {
			lut[ch][v] = (float32(v)/255 - c.Mean[ch]) / c.Std[ch]
		}
	}
	sw, sh := src.Rect.Dx(), src.Rect.Dy()
	plane := s * s
	for dy := 0; dy < s; dy++ {
		for dx := 0; dx < s; dx++ {
			x, y := dx, dy
			if o != 1 {
				x, y = storedAt(o, dx, dy, sw, sh)
			}
			px := src.Pix[y*src.Stride+4*x:][:4]
			a := px[3]
			r, g, b := lut[0][overWhite(px[0], a)], lut[1][overWhite(px[1], a)], lut[2][overWhite(px[2], a)]
			if c.Layout == NCHW {
				i := dy*s + dx
				dst[i], dst[plane+i], dst[2*plane+i] = r, g, b
			} else {
				i := 3 * (dy*s + dx)
				dst[i], dst[i+1], dst[i+2] = r, g, b
			}
		}
	}
	return dst
}

// encodeThumb turns src (stored orientation o) upright, composites it
// over white and encodes it as JPEG.
func encodeThumb(src *image.RGBA, o int) ([]byte, error) {
	sw, sh := src.Rect.Dx(), src.Rect.Dy()
	w, h := sw, sh
	if o >= 5 {
		w, h = sh, sw
	}
	out := image.NewRGBA(image.Rect(0, 0, w, h))
	for dy := 0; dy < h; dy++ {
		d := out.Pix[dy*out.Stride:][:4*w]
		for dx := 0; dx < w; dx++ {
			x, y := storedAt(o, dx, dy, sw, sh)
			px := src.Pix[y*src.Stride+4*x:][:4]
			d[4*dx] = overWhite(px[0], px[3])
			d[4*dx+1] = overWhite(px[1], px[3])
			d[4*dx+2] = overWhite(px[2], px[3])
			d[4*dx+3] = 255
		}
	}
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, out, &jpeg.Options{Quality: thumbQuality}); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
