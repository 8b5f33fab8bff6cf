package store

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"lookalike/internal/fsutil"
	"lookalike/ivf"
)

// Seqs maps a shard to a log sequence number: for a persisted index, the
// last batch of each shard that the index is known to hold.
type Seqs map[uint32]uint64

func (q Seqs) shards() []uint32 {
	out := make([]uint32, 0, len(q))
	for sh := range q {
		out = append(out, sh)
	}
	slices.Sort(out)
	return out
}

// indexFileRE matches the names SaveIndex gives index files:
// c<collection hex>-<nanoseconds hex>.ivf.
var indexFileRE = regexp.MustCompile(`^c([0-9a-f]{8})-[0-9a-f]{16}\.ivf$`)

func validFileName(name string) bool { return indexFileRE.MatchString(name) }

// SaveIndex persists a collection's trained in-memory index in the ivf
// file format, in dir/index, and records (in a synced Pebble write) that
// it covers the batches covered[shard] and before of each shard.
//
// covered must only name batches that ix held when SaveIndex was called:
// the node reads its applied sequence numbers first, then calls SaveIndex.
// Batches applied to ix while it is written may or may not be in the file;
// Replay is idempotent, so replaying them after LoadIndex is harmless. The
// file is written to a temporary name, synced, renamed and its directory
// synced, so a crash leaves the previous index in force; the previous file
// is removed once the new pointer is durable.
func (s *Store) SaveIndex(ctx context.Context, coll uint32, ix *ivf.Index, covered Seqs) error {
	if !ix.Trained() {
		return fmt.Errorf("store: save index: %w", ivf.ErrNotTrained)
	}
	s.saveMu.Lock()
	defer s.saveMu.Unlock()
	name := fmt.Sprintf("c%08x-%016x.ivf", coll, uint64(time.Now().UnixNano()))
	if err := s.read(func() error { return writeFileAtomic(ctx, s.indexDir, name, ix) }); err != nil {
		return fmt.Errorf("store: save index of collection %d: %w", coll, err)
	}
	s.writeMu.Lock()
	err := s.read(func() error {
		p := indexPtr{File: name, Covered: covered}
		return s.db.Set(indexPtrKey(coll), encodeIndexPtr(&p), pebble.Sync)
	})
	s.writeMu.Unlock()
	if err != nil {
		_ = os.Remove(filepath.Join(s.indexDir, name))
		return fmt.Errorf("store: save index of collection %d: %w", coll, err)
	}
	return s.removeIndexFiles(coll, name)
}

// writeFileAtomic writes ix to dir/name through a synced temporary file
// and a rename, then syncs dir.
func writeFileAtomic(ctx context.Context, dir, name string, ix *ivf.Index) (err error) {
	f, err := os.CreateTemp(dir, ".tmp-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(f.Name())
		}
	}()
	bw := bufio.NewWriterSize(f, 1<<20)
	if _, err = ix.WriteTo(bw); err != nil {
		return err
	}
	if err = bw.Flush(); err != nil {
		return err
	}
	if err = ctx.Err(); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	if err = os.Rename(f.Name(), filepath.Join(dir, name)); err != nil {
		return err
	}
	return fsutil.SyncDir(dir)
}

// LoadIndex loads a collection's persisted index and the sequence numbers
// it covers; the node then replays each shard's log after them (ScanLog
// from covered[shard]+1, Replay). opts supplies the run-time ivf options
// (Threads, Scanner) as for ivf.Load. Without a saved index it fails with
// ErrNoIndex.
func (s *Store) LoadIndex(ctx context.Context, coll uint32, opts ivf.Options) (*ivf.Index, Seqs, error) {
	var p indexPtr
	err := s.read(func() error {
		v, err := s.get(indexPtrKey(coll))
		if errors.Is(err, ErrNotFound) {
			return ErrNoIndex
		}
		if err != nil {
			return err
		}
		p, err = decodeIndexPtr(v)
		return err
	})
	if err != nil {
		return nil, nil, fmt.Errorf("store: load index of collection %d: %w", coll, err)
	}
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	f, err := os.Open(filepath.Join(s.indexDir, p.File))
	if err != nil {
		return nil, nil, fmt.Errorf("store: load index of collection %d: %w", coll, err)
	}
	defer f.Close()
	ix, err := ivf.Load(f, opts)
	if err != nil {
		return nil, nil, fmt.Errorf("store: load index of collection %d from %s: %w", coll, p.File, err)
	}
	return ix, p.Covered, nil
}

// removeIndexFiles removes the collection's index files other than keep.
func (s *Store) removeIndexFiles(coll uint32, keep string) error {
	ents, err := os.ReadDir(s.indexDir)
	if err != nil {
		return fmt.Errorf("store: index files: %w", err)
	}
	prefix := fmt.Sprintf("c%08x-", coll)
	for _, e := range ents {
		if n := e.Name(); n != keep && strings.HasPrefix(n, prefix) && validFileName(n) {
			if err := os.Remove(filepath.Join(s.indexDir, n)); err != nil {
				return fmt.Errorf("store: index files: %w", err)
			}
		}
	}
	return nil
}

// removeOrphanIndexes removes temporary files and index files that no
// pointer names: a crash inside SaveIndex or DropCollection leaves them.
func (s *Store) removeOrphanIndexes() error {
	live := map[string]bool{}
	err := s.read(func() error {
		it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte{recIndexPtr}, UpperBound: []byte{recIndexPtr + 1}})
		if err != nil {
			return err
		}
		defer it.Close()
		for ok := it.First(); ok; ok = it.Next() {
			v, err := it.ValueAndErr()
			if err != nil {
				return err
			}
			p, err := decodeIndexPtr(v)
			if err != nil {
				return fmt.Errorf("store: index pointer %x: %w", it.Key(), err)
			}
			live[p.File] = true
		}
		return it.Error()
	})
	if err != nil {
		return err
	}
	ents, err := os.ReadDir(s.indexDir)
	if err != nil {
		return fmt.Errorf("store: index files: %w", err)
	}
	for _, e := range ents {
		n := e.Name()
		if strings.HasPrefix(n, ".tmp-") || (validFileName(n) && !live[n]) {
			if err := os.Remove(filepath.Join(s.indexDir, n)); err != nil {
				return fmt.Errorf("store: index files: %w", err)
			}
		}
	}
	return nil
}
