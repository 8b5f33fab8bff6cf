// Package embedtest holds a fake embed.Embedder for tests of code that
// embeds images (the node's image API) without ONNX Runtime or a model.
package embedtest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"image"
	_ "image/gif" // registered for image.Decode
	"image/jpeg"
	_ "image/png"
	"math"
	"sync"

	"lookalike/embed"
)

// Embedder is a deterministic fake of embed.Embedder. Prepare decodes
// PNG, JPEG and GIF with the standard library and fails as the real one
// does (ErrNotImage, ErrUnsupported for a few known other formats,
// ErrTooLarge beyond MaxPixels from the header, ErrTruncated when
// decoding fails); its thumbnail is a real JPEG. A vector is a function
// of the file's bytes only (SHA-256 stretched to Dim, normalised): the
// same file always gets the same vector, different files unrelated ones.
type Embedder struct {
	Name string
	Hash string // 64 hex digits; default: SHA-256 of Name
	D    int
	// MaxPixels bounds width × height from the header. Default 64 Mi.
	MaxPixels int64

	mu    sync.Mutex
	lanes []embed.Lane // one per Embed call
	n     int          // images embedded
	// Err, when set, is returned by Embed.
	Err error
}

// New returns a fake model called name with vectors of dim.
func New(name string, dim int) *Embedder {
	h := sha256.Sum256([]byte(name))
	return &Embedder{Name: name, Hash: hex.EncodeToString(h[:]), D: dim}
}

func (e *Embedder) ModelName() string { return e.Name }
func (e *Embedder) ModelHash() string { return e.Hash }
func (e *Embedder) Dim() int          { return e.D }

// Lanes returns the lane of every Embed call so far, and how many images
// were embedded.
func (e *Embedder) Lanes() ([]embed.Lane, int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]embed.Lane(nil), e.lanes...), e.n
}

// unsupported are leading bytes of formats the fake refuses as
// unsupported rather than not an image.
var unsupported = []string{"II*\x00", "MM\x00*", "RIFF", "BM", "\x00\x00\x00\x0cjP"}

// Prepare implements embed.Embedder.
func (e *Embedder) Prepare(data []byte) (*embed.Prepared, error) {
	if len(data) == 0 {
		return nil, fmt.Errorf("%w: empty file", embed.ErrNotImage)
	}
	cfg, format, err := image.DecodeConfig(bytes.NewReader(data))
	if err != nil {
		for _, m := range unsupported {
			if bytes.HasPrefix(data, []byte(m)) {
				return nil, fmt.Errorf("%w: %q", embed.ErrUnsupported, m)
			}
		}
		if err == image.ErrFormat {
			return nil, fmt.Errorf("%w: unrecognised leading bytes", embed.ErrNotImage)
		}
		return nil, fmt.Errorf("%w: header: %v", embed.ErrTruncated, err)
	}
	max := e.MaxPixels
	if max == 0 {
		max = 64 << 20
	}
	if int64(cfg.Width)*int64(cfg.Height) > max {
		return nil, fmt.Errorf("%w: %d×%d pixels, limit %d", embed.ErrTooLarge, cfg.Width, cfg.Height, max)
	}
	img, _, err := image.Decode(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", embed.ErrTruncated, err)
	}
	thumb, err := thumbnail(img, 32)
	if err != nil {
		return nil, err
	}
	return &embed.Prepared{Tensor: e.vector(data), Thumb: thumb, Format: format, Width: cfg.Width, Height: cfg.Height}, nil
}

// Embed implements embed.Embedder: the vectors Prepare computed.
func (e *Embedder) Embed(ctx context.Context, lane embed.Lane, imgs []*embed.Prepared) ([][]float32, error) {
	e.mu.Lock()
	e.lanes = append(e.lanes, lane)
	e.n += len(imgs)
	err := e.Err
	e.mu.Unlock()
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	out := make([][]float32, len(imgs))
	for i, p := range imgs {
		out[i] = append([]float32(nil), p.Tensor...)
	}
	return out, nil
}

// vector stretches SHA-256 of data to D components in [-1, 1) and
// normalises them.
func (e *Embedder) vector(data []byte) []float32 {
	v := make([]float32, e.D)
	seed := sha256.Sum256(data)
	var norm float64
	for i := 0; i < e.D; i += 8 {
		var ctr [4]byte
		binary.LittleEndian.PutUint32(ctr[:], uint32(i))
		h := sha256.Sum256(append(seed[:], ctr[:]...))
		for j := 0; j < 8 && i+j < e.D; j++ {
			x := float32(binary.LittleEndian.Uint32(h[4*j:]))/(1<<31) - 1
			v[i+j] = x
			norm += float64(x) * float64(x)
		}
	}
	inv := float32(1 / math.Sqrt(norm))
	for i := range v {
		v[i] *= inv
	}
	return v
}

// thumbnail scales img (nearest neighbour) to a longest side of side and
// encodes it as JPEG.
func thumbnail(img image.Image, side int) ([]byte, error) {
	b := img.Bounds()
	w, h := b.Dx(), b.Dy()
	tw, th := side, side
	if w > h {
		th = max(1, h*side/w)
	} else {
		tw = max(1, w*side/h)
	}
	dst := image.NewRGBA(image.Rect(0, 0, tw, th))
	for y := range th {
		for x := range tw {
			dst.Set(x, y, img.At(b.Min.X+x*w/tw, b.Min.Y+y*h/th))
		}
	}
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, dst, &jpeg.Options{Quality: 80}); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

var _ embed.Embedder = (*Embedder)(nil)
