package meta

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
)

// tableMagic opens an encoded table (a Raft snapshot).
const tableMagic = "LKMETA\x00\x01"

// TableFormat is the version of the table encoding written by Encode.
const TableFormat = 1

// Record types of the table encoding. Append only.
const (
	recHeader    = 1 // JSON tableHeader; first
	recNode      = 2 // JSON Node
	recColl      = 3 // JSON Collection
	recBlob      = 4 // JSON blobHeader
	recBlobChunk = 5 // binary: hash(32) index(u32 LE) data
	recEnd       = 6 // u32 LE CRC-32C of every byte before this record; last
)

// maxRecord bounds one record's body when decoding.
const maxRecord = 64 << 20

type tableHeader struct {
	Version uint64 `json:"version"`
	NextID  uint64 `json:"next_id"`
}

type blobHeader struct {
	Hash   Hash   `json:"hash"`
	Size   uint64 `json:"size"`
	Chunks uint32 `json:"chunks"`
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Encode writes the table: magic and format version, then typed records
// (header, nodes by id, collections by name, blobs by hash each followed by
// its received chunks by index), then an end record with a CRC-32C. Equal
// tables encode to identical bytes. See docs/format/raft.md.
func (t *Table) Encode(w io.Writer) error {
	bw := bufio.NewWriter(w)
	crc := crc32.New(castagnoli)
	out := io.MultiWriter(bw, crc)
	var err error
	put := func(typ byte, body []byte) {
		if err != nil {
			return
		}
		var hdr [1 + binary.MaxVarintLen64]byte
		hdr[0] = typ
		n := binary.PutUvarint(hdr[1:], uint64(len(body)))
		if _, err = out.Write(hdr[:1+n]); err == nil {
			_, err = out.Write(body)
		}
	}
	putJSON := func(typ byte, v any) {
		b, e := json.Marshal(v)
		if e != nil && err == nil {
			err = e
		}
		put(typ, b)
	}
	var head [10]byte
	copy(head[:], tableMagic)
	binary.LittleEndian.PutUint16(head[8:], TableFormat)
	if _, err = out.Write(head[:]); err != nil {
		return err
	}
	putJSON(recHeader, tableHeader{Version: t.version, NextID: t.nextID})
	for _, n := range t.Nodes() {
		putJSON(recNode, n)
	}
	for _, c := range t.Collections() {
		putJSON(recColl, c)
	}
	for _, b := range t.Blobs() {
		putJSON(recBlob, blobHeader{Hash: b.Hash, Size: b.Size, Chunks: b.Chunks})
		for i, d := range b.data {
			if d == nil {
				continue
			}
			body := make([]byte, 36, 36+len(d))
			copy(body, b.Hash[:])
			binary.LittleEndian.PutUint32(body[32:], uint32(i))
			put(recBlobChunk, append(body, d...))
		}
	}
	if err != nil {
		return err
	}
	var sum [4]byte
	binary.LittleEndian.PutUint32(sum[:], crc.Sum32())
	put(recEnd, sum[:])
	if err != nil {
		return err
	}
	return bw.Flush()
}

// MarshalBinary returns Encode's bytes.
func (t *Table) MarshalBinary() ([]byte, error) {
	var buf bytes.Buffer
	err := t.Encode(&buf)
	return buf.Bytes(), err
}

// DecodeTable reads a table written by Encode. It checks the structure
// (record order, chunk sizes, blob hashes, the CRC) and returns an error
// wrapping ErrCorruptTable on any mismatch.
func DecodeTable(r io.Reader) (*Table, error) {
	crc := crc32.New(castagnoli)
	br := bufio.NewReader(r)
	tr := io.TeeReader(br, crc)
	corrupt := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrCorruptTable, fmt.Sprintf(format, args...))
	}
	var head [10]byte
	if _, err := io.ReadFull(tr, head[:]); err != nil {
		return nil, corrupt("header: %v", err)
	}
	if string(head[:8]) != tableMagic {
		return nil, corrupt("bad magic")
	}
	if v := binary.LittleEndian.Uint16(head[8:]); v != TableFormat {
		return nil, corrupt("format version %d, want %d", v, TableFormat)
	}
	t := New()
	var cur *Blob // blob whose chunks follow
	seenHeader := false
	var lastNode, lastColl string
	for rec := 0; ; rec++ {
		sum := crc.Sum32() // CRC of everything before this record
		typ, err := readByte(tr)
		if err != nil {
			return nil, corrupt("record %d: %v", rec, err)
		}
		n, err := binary.ReadUvarint(byteReader{tr})
		if err != nil || n > maxRecord {
			return nil, corrupt("record %d: length %d: %v", rec, n, err)
		}
		body := make([]byte, 0, min(n, 1<<20))
		body, err = readN(tr, body, int(n))
		if err != nil {
			return nil, corrupt("record %d: %v", rec, err)
		}
		if rec == 0 && typ != recHeader || rec > 0 && typ == recHeader {
			return nil, corrupt("record %d: type %d out of order", rec, typ)
		}
		if cur != nil && typ != recBlobChunk {
			if err := finishBlob(cur); err != nil {
				return nil, err
			}
			cur = nil
		}
		switch typ {
		case recHeader:
			var h tableHeader
			if err := strictJSON(body, &h); err != nil {
				return nil, corrupt("header: %v", err)
			}
			t.version, t.nextID = h.Version, h.NextID
			seenHeader = true
		case recNode:
			var nd Node
			if err := strictJSON(body, &nd); err != nil || nd.ID == "" || nd.ID <= lastNode {
				return nil, corrupt("node record %d: %v", rec, err)
			}
			lastNode = nd.ID
			t.nodes[nd.ID] = &nd
		case recColl:
			var c Collection
			if err := strictJSON(body, &c); err != nil || c.Name == "" || c.Name <= lastColl {
				return nil, corrupt("collection record %d: %v", rec, err)
			}
			lastColl = c.Name
			t.colls[c.Name] = &c
		case recBlob:
			var h blobHeader
			if err := strictJSON(body, &h); err != nil {
				return nil, corrupt("blob record %d: %v", rec, err)
			}
			if h.Size == 0 || (h.Size+MaxChunkSize-1)/MaxChunkSize != uint64(h.Chunks) || t.blobs[h.Hash] != nil {
				return nil, corrupt("blob %s: size %d chunks %d", h.Hash, h.Size, h.Chunks)
			}
			cur = &Blob{Hash: h.Hash, Size: h.Size, Chunks: h.Chunks, data: make([][]byte, h.Chunks)}
			t.blobs[h.Hash] = cur
		case recBlobChunk:
			if cur == nil || len(body) < 36 || Hash(body[:32]) != cur.Hash {
				return nil, corrupt("chunk record %d outside its blob", rec)
			}
			i := binary.LittleEndian.Uint32(body[32:])
			d := body[36:]
			want := uint64(MaxChunkSize)
			if i == cur.Chunks-1 {
				want = cur.Size - uint64(cur.Chunks-1)*MaxChunkSize
			}
			if i >= cur.Chunks || cur.data[i] != nil || uint64(len(d)) != want {
				return nil, corrupt("blob %s chunk %d of %d bytes", cur.Hash, i, len(d))
			}
			cur.data[i] = d
			cur.have++
		case recEnd:
			if len(body) != 4 || binary.LittleEndian.Uint32(body) != sum || !seenHeader {
				return nil, corrupt("checksum mismatch")
			}
			return t, nil
		default:
			return nil, corrupt("record %d: unknown type %d", rec, typ)
		}
	}
}

func finishBlob(b *Blob) error {
	if b.Complete() && HashOf(b.Bytes()) != b.Hash {
		return fmt.Errorf("%w: blob %s content does not match its hash", ErrCorruptTable, b.Hash)
	}
	return nil
}

func strictJSON(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("trailing data")
	}
	return nil
}

type byteReader struct{ r io.Reader }

func (b byteReader) ReadByte() (byte, error) { return readByte(b.r) }

func readByte(r io.Reader) (byte, error) {
	var b [1]byte
	_, err := io.ReadFull(r, b[:])
	return b[0], err
}

// readN reads n bytes, growing buf as data arrives so that a lying length
// cannot force a large allocation.
func readN(r io.Reader, buf []byte, n int) ([]byte, error) {
	for len(buf) < n {
		step := min(n-len(buf), max(cap(buf)-len(buf), 1<<16))
		start := len(buf)
		buf = append(buf, make([]byte, step)...)
		if _, err := io.ReadFull(r, buf[start:]); err != nil {
			return nil, err
		}
	}
	return buf, nil
}
