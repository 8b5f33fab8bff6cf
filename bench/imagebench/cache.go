package imagebench

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"sync"
)

// VectorCache keeps vectors by the SHA-256 of the file they were computed
// from, for one method (a model hash, or the pixel baseline): a rerun of
// `bench quality` reads them instead of embedding again, and a run over
// more files embeds only the new ones.
//
// Its file, DIR/vectors-KEY.bin, is an 16-byte header (the magic
// "lkvec\x00v1", a little-endian uint32 dimension, four zero bytes) and
// then records of a 32-byte SHA-256 and dim little-endian float32s,
// appended as vectors are computed. A partial record at the end (a run
// that was killed) is cut off when the file is opened; a header that does
// not match starts the file over.
type VectorCache struct {
	dim  int
	path string

	mu sync.Mutex
	m  map[[32]byte][]float32
	f  *os.File
	w  *bufio.Writer
}

const cacheMagic = "lkvec\x00v1"

// CacheKey names a cache: the first 16 hex digits of a SHA-256 of what the
// vectors depend on (a model's hash and a preprocessing fingerprint).
func CacheKey(parts ...string) string {
	h := sha256.New()
	io.WriteString(h, "lookalike image vectors v1")
	for _, p := range parts {
		h.Write([]byte{0})
		io.WriteString(h, p)
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// OpenVectorCache opens (or creates) dir/vectors-key.bin for vectors of
// dim floats. An empty dir gives a cache in memory only.
func OpenVectorCache(dir, key string, dim int) (*VectorCache, error) {
	if dim < 1 {
		return nil, fmt.Errorf("imagebench: vector cache: dim %d", dim)
	}
	c := &VectorCache{dim: dim, m: map[[32]byte][]float32{}}
	if dir == "" {
		return c, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("imagebench: vector cache: %w", err)
	}
	c.path = filepath.Join(dir, "vectors-"+key+".bin")
	hdr := make([]byte, 16)
	copy(hdr, cacheMagic)
	binary.LittleEndian.PutUint32(hdr[8:], uint32(dim))

	b, err := os.ReadFile(c.path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("imagebench: vector cache: %w", err)
	}
	rec := 32 + 4*dim
	keep := 0
	if len(b) >= len(hdr) && bytes.Equal(b[:len(hdr)], hdr) {
		keep = len(hdr)
		for ; keep+rec <= len(b); keep += rec {
			var sum [32]byte
			copy(sum[:], b[keep:])
			v := make([]float32, dim)
			for i := range v {
				v[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[keep+32+4*i:]))
			}
			c.m[sum] = v
		}
	}
	f, err := os.OpenFile(c.path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("imagebench: vector cache: %w", err)
	}
	if keep == 0 {
		err = f.Truncate(0)
		if err == nil {
			_, err = f.WriteAt(hdr, 0)
		}
		keep = len(hdr)
	} else if keep != len(b) {
		err = f.Truncate(int64(keep))
	}
	if err == nil {
		_, err = f.Seek(int64(keep), io.SeekStart)
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("imagebench: vector cache: %w", err)
	}
	c.f, c.w = f, bufio.NewWriterSize(f, 1<<20)
	return c, nil
}

// Len is the number of vectors held.
func (c *VectorCache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.m)
}

// Get returns the vector of the file with SHA-256 sum. The caller must
// not modify it.
func (c *VectorCache) Get(sum [32]byte) ([]float32, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	v, ok := c.m[sum]
	return v, ok
}

// Put records v (dim floats, kept by the cache) for sum.
func (c *VectorCache) Put(sum [32]byte, v []float32) error {
	if len(v) != c.dim {
		return fmt.Errorf("imagebench: vector cache: %d floats, want %d", len(v), c.dim)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.m[sum]; ok {
		return nil
	}
	c.m[sum] = v
	if c.w == nil {
		return nil
	}
	buf := make([]byte, 32+4*len(v))
	copy(buf, sum[:])
	for i, x := range v {
		binary.LittleEndian.PutUint32(buf[32+4*i:], math.Float32bits(x))
	}
	_, err := c.w.Write(buf)
	return err
}

// Flush writes buffered records to the file.
func (c *VectorCache) Flush() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.w == nil {
		return nil
	}
	return c.w.Flush()
}

// Close flushes and closes the file.
func (c *VectorCache) Close() error {
	if c.f == nil {
		return nil
	}
	err := c.Flush()
	return errors.Join(err, c.f.Close())
}
