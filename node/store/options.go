package store

import (
	"errors"
	"fmt"
	"log"

	"github.com/cockroachdb/pebble/v2"
)

// Options configure a Store. The zero value of each field means its
// default, as documented on the field.
type Options struct {
	// MaxMetaBytes bounds an item's metadata JSON. Default 64 KiB.
	MaxMetaBytes int
	// MaxBatchItems bounds the operations in one Batch. Default 100,000.
	MaxBatchItems int
	// CacheBytes is Pebble's block cache. Default 256 MiB: a search names
	// its hits by internal id (ItemByID), one point read each in the id
	// index; at 1M items the index and filter blocks it walks outgrew a
	// 64 MiB cache and every read went to the disk (pread). The cache
	// fills as blocks are read; it is not allocated up front.
	CacheBytes int64
	// MemTableBytes is Pebble's memtable size. Default 32 MiB.
	MemTableBytes uint64
	// Logger receives Pebble's messages. Default: errors go to the standard
	// log, informational messages are dropped.
	Logger pebble.Logger
}

// EnsureDefaults fills zero fields with their defaults.
func (o *Options) EnsureDefaults() {
	if o.MaxMetaBytes == 0 {
		o.MaxMetaBytes = 64 << 10
	}
	if o.MaxBatchItems == 0 {
		o.MaxBatchItems = 100_000
	}
	if o.CacheBytes == 0 {
		o.CacheBytes = 256 << 20
	}
	if o.MemTableBytes == 0 {
		o.MemTableBytes = 32 << 20
	}
	if o.Logger == nil {
		o.Logger = quietLogger{}
	}
}

// MaxUserIDBytes is the longest user id (decision 8).
const MaxUserIDBytes = 256

// Validate reports every problem with o at once.
func (o *Options) Validate() error {
	var errs []error
	if o.MaxMetaBytes < 0 || o.MaxMetaBytes > 16<<20 {
		errs = append(errs, fmt.Errorf("max meta bytes %d outside 0..16 MiB", o.MaxMetaBytes))
	}
	if o.MaxBatchItems < 1 || o.MaxBatchItems > 10_000_000 {
		errs = append(errs, fmt.Errorf("max batch items %d outside 1..10,000,000", o.MaxBatchItems))
	}
	if o.CacheBytes < 1<<20 {
		errs = append(errs, fmt.Errorf("cache bytes %d below 1 MiB", o.CacheBytes))
	}
	if o.MemTableBytes < 1<<20 || o.MemTableBytes > 4<<30 {
		errs = append(errs, fmt.Errorf("memtable bytes %d outside 1 MiB..4 GiB", o.MemTableBytes))
	}
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %w", ErrBadOptions, errors.Join(errs...))
}

// quietLogger drops Pebble's informational messages.
type quietLogger struct{}

func (quietLogger) Infof(string, ...any) {}
func (quietLogger) Errorf(format string, args ...any) {
	log.Printf("pebble: "+format, args...)
}
func (quietLogger) Fatalf(format string, args ...any) {
	log.Fatalf("pebble: "+format, args...)
}
