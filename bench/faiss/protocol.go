//go:build faiss

package faiss

// The faiss-serve protocol between a Remote (the parent) and ServeEngine
// (the child), over the child's stdin and stdout. All integers and floats
// are little-endian; one request is answered by one response, in order.
//
//	hello    (child → parent, once, before any request)
//	         "LKFS" | u16 version (1) | u16 len | name
//	request  u8 op | body
//	  'c' config  u32 dim | u32 nlist | u8 metric (ivf.Metric) | i64 seed | u32 refine
//	  'b' build   u64 n | n × f32 train | u64 m | m × f32 base
//	  's' search  u32 k | u32 nprobe | u32 n | n × f32 query
//	  'm' memory
//	  'q' quit    (the child answers, closes its engine and returns)
//	response u8 status | body
//	  status 1 (error): u32 len | message
//	  status 0 (ok):    config, quit: empty
//	                    build: i64 train ns | i64 add ns
//	                    search: i64 nanoseconds | u32 n | n × i64 id
//	                    memory: i64 bytes
//
// A search's nanoseconds are measured by the child around its engine's
// Search call, so they leave out the pipe; Remote.LastSearchNanos hands
// them to the harness.

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"math"
)

const (
	protoMagic   = "LKFS"
	protoVersion = 1

	opConfig = 'c'
	opBuild  = 'b'
	opSearch = 's'
	opMemory = 'm'
	opQuit   = 'q'

	statusOK  = 0
	statusErr = 1

	// maxMessage bounds an error message or a name.
	maxMessage = 1 << 16
	// floatChunk is how many floats are read before growing a slice, so a
	// garbage length fails at EOF instead of allocating it up front.
	floatChunk = 1 << 20
)

// wire reads and writes protocol values with a sticky error: after the
// first failure every call is a no-op and err says what went wrong.
type wire struct {
	r   *bufio.Reader
	w   *bufio.Writer
	buf [8]byte
	err error
}

func newWire(r io.Reader, w io.Writer) *wire {
	return &wire{r: bufio.NewReaderSize(r, 64<<10), w: bufio.NewWriterSize(w, 64<<10)}
}

func (c *wire) read(n int) []byte {
	if c.err != nil {
		return c.buf[:n]
	}
	_, c.err = io.ReadFull(c.r, c.buf[:n])
	return c.buf[:n]
}

func (c *wire) u8() byte    { return c.read(1)[0] }
func (c *wire) u16() uint16 { return binary.LittleEndian.Uint16(c.read(2)) }
func (c *wire) u32() uint32 { return binary.LittleEndian.Uint32(c.read(4)) }
func (c *wire) u64() uint64 { return binary.LittleEndian.Uint64(c.read(8)) }
func (c *wire) i64() int64  { return int64(c.u64()) }

func (c *wire) put(b []byte) {
	if c.err == nil {
		_, c.err = c.w.Write(b)
	}
}

func (c *wire) putU8(v byte)    { c.put(append(c.buf[:0], v)) }
func (c *wire) putU16(v uint16) { c.put(binary.LittleEndian.AppendUint16(c.buf[:0], v)) }
func (c *wire) putU32(v uint32) { c.put(binary.LittleEndian.AppendUint32(c.buf[:0], v)) }
func (c *wire) putU64(v uint64) { c.put(binary.LittleEndian.AppendUint64(c.buf[:0], v)) }
func (c *wire) putI64(v int64)  { c.putU64(uint64(v)) }

func (c *wire) bytes(n int) []byte {
	if c.err != nil {
		return nil
	}
	b := make([]byte, n)
	_, c.err = io.ReadFull(c.r, b)
	return b
}

// str reads a u32- or u16-length-prefixed string (wide selects u32).
func (c *wire) str(wide bool) string {
	var n int
	if wide {
		n = int(c.u32())
	} else {
		n = int(c.u16())
	}
	if c.err == nil && n > maxMessage {
		c.err = fmt.Errorf("%w: string of %d bytes", ErrProtocol, n)
	}
	return string(c.bytes(n))
}

// floats reads n float32s into dst[:0], growing it chunk by chunk.
func (c *wire) floats(dst []float32, n uint64) []float32 {
	dst = dst[:0]
	var b [4 * 1024]byte
	for c.err == nil && uint64(len(dst)) < n {
		if len(dst) == cap(dst) {
			grown := make([]float32, len(dst), min(n, uint64(max(2*cap(dst), floatChunk))))
			dst = grown[:copy(grown, dst)]
		}
		m := min(int(n-uint64(len(dst))), len(b)/4, cap(dst)-len(dst))
		if _, c.err = io.ReadFull(c.r, b[:4*m]); c.err != nil {
			break
		}
		for i := range m {
			dst = append(dst, math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:])))
		}
	}
	return dst
}

func (c *wire) putFloats(x []float32) {
	var b [4 * 1024]byte
	for len(x) > 0 && c.err == nil {
		m := min(len(x), len(b)/4)
		for i, v := range x[:m] {
			binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(v))
		}
		c.put(b[:4*m])
		x = x[m:]
	}
}

func (c *wire) flush() error {
	if c.err == nil {
		c.err = c.w.Flush()
	}
	return c.err
}
