package node

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"

	"lookalike/internal/fsutil"
)

// The users file: PebbleStorage's internal id → user id map of one
// collection as of a write-log sequence number, saved beside each index
// save so that a restart reads it instead of scanning every item. All
// integers little endian:
//
//	magic "LKUSR\r\n\x1a" | version u32 | seq u64 | count u64
//	entry × count: id u64 | flags u8 (bit 0: has metadata) | len u16 | user id
//	crc32c u32 of every byte before it
//
// It is only used when its seq equals the sequence the loaded index
// covers; otherwise the collection is scanned as before.
const (
	usersMagic   = "LKUSR\r\n\x1a"
	usersVersion = 1
)

var usersCRC = crc32.MakeTable(crc32.Castagnoli)

func usersPath(dir string, coll uint32) string {
	return filepath.Join(dir, "users", fmt.Sprintf("c%08x.users", coll))
}

// writeUsers writes m as of seq atomically (temporary file, sync, rename,
// directory sync).
func writeUsers(dir string, coll uint32, seq uint64, m map[uint64]userRef) (err error) {
	d := filepath.Join(dir, "users")
	if err := os.MkdirAll(d, 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(d, ".tmp-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	h := crc32.New(usersCRC)
	w := bufio.NewWriterSize(io.MultiWriter(f, h), 1<<20)
	var b [19]byte
	w.WriteString(usersMagic)
	binary.LittleEndian.PutUint32(b[:4], usersVersion)
	w.Write(b[:4])
	binary.LittleEndian.PutUint64(b[:8], seq)
	w.Write(b[:8])
	binary.LittleEndian.PutUint64(b[:8], uint64(len(m)))
	w.Write(b[:8])
	for id, u := range m {
		binary.LittleEndian.PutUint64(b[:8], id)
		b[8] = 0
		if u.hasMeta {
			b[8] = 1
		}
		binary.LittleEndian.PutUint16(b[9:11], uint16(len(u.id)))
		w.Write(b[:11])
		w.WriteString(u.id)
	}
	if err = w.Flush(); err != nil {
		return err
	}
	binary.LittleEndian.PutUint32(b[:4], h.Sum32())
	if _, err = f.Write(b[:4]); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	if err = os.Rename(f.Name(), usersPath(dir, coll)); err != nil {
		return err
	}
	return fsutil.SyncDir(d)
}

var errUsersFile = errors.New("node: unusable users file")

// readUsers reads the map saved by writeUsers and its seq.
func readUsers(dir string, coll uint32) (uint64, map[uint64]userRef, error) {
	data, err := os.ReadFile(usersPath(dir, coll))
	if err != nil {
		return 0, nil, err
	}
	return decodeUsers(data)
}

// decodeUsers decodes a users file; corrupt input gives an error wrapping
// errUsersFile, never a panic.
func decodeUsers(data []byte) (uint64, map[uint64]userRef, error) {
	if len(data) < len(usersMagic)+4+8+8+4 || string(data[:len(usersMagic)]) != usersMagic {
		return 0, nil, fmt.Errorf("%w: bad header", errUsersFile)
	}
	body, sum := data[:len(data)-4], binary.LittleEndian.Uint32(data[len(data)-4:])
	if crc32.Checksum(body, usersCRC) != sum {
		return 0, nil, fmt.Errorf("%w: checksum", errUsersFile)
	}
	p := body[len(usersMagic):]
	if binary.LittleEndian.Uint32(p) != usersVersion {
		return 0, nil, fmt.Errorf("%w: version", errUsersFile)
	}
	seq, n := binary.LittleEndian.Uint64(p[4:]), binary.LittleEndian.Uint64(p[12:])
	p = p[20:]
	if n > uint64(len(p))/11 {
		return 0, nil, fmt.Errorf("%w: %d entries in %d bytes", errUsersFile, n, len(p))
	}
	m := make(map[uint64]userRef, n)
	for i := uint64(0); i < n; i++ {
		if len(p) < 11 {
			return 0, nil, fmt.Errorf("%w: truncated", errUsersFile)
		}
		id, flags, l := binary.LittleEndian.Uint64(p), p[8], int(binary.LittleEndian.Uint16(p[9:]))
		if len(p) < 11+l {
			return 0, nil, fmt.Errorf("%w: truncated", errUsersFile)
		}
		m[id] = userRef{id: string(p[11 : 11+l]), hasMeta: flags&1 != 0}
		p = p[11+l:]
	}
	if len(p) != 0 {
		return 0, nil, fmt.Errorf("%w: trailing bytes", errUsersFile)
	}
	return seq, m, nil
}

// applyOps updates m with logged operations.
func applyUserOps(m map[uint64]userRef, ops []storeOp) {
	for _, op := range ops {
		if op.put {
			m[op.id] = userRef{op.user, op.hasMeta}
		} else {
			delete(m, op.id)
		}
	}
}

// storeOp is the part of a logged operation the users map needs.
type storeOp struct {
	put     bool
	id      uint64
	user    string
	hasMeta bool
}
