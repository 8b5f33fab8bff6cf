package proto

import (
	"errors"
	"fmt"
)

// Fixed limits of API v1. They match package ivf's (MaxDim, MaxNList, MaxK,
// refine 0..64), which proto may not import.
const (
	MaxDim      = 1 << 16 // largest vector dimension
	MaxNList    = 1 << 20 // largest number of IVF lists
	MaxK        = 1024    // largest k of a search
	DefaultK    = 10      // k of a search that gives none
	MaxRefine   = 64      // largest refine factor
	MaxReplicas = 16      // largest replication factor
	MaxIDBytes  = 256     // longest item id, in bytes of UTF-8
	MaxNameLen  = 64      // longest collection name, in bytes
	MaxModelLen = 128     // longest model name, in bytes
)

// Limits bound what a decoder accepts. The zero value of each field means
// its default, as documented on the field; the server sets them from flags.
type Limits struct {
	// MaxBodyBytes is the largest request body, JSON or bulk. Default
	// 64 MiB. A larger body is refused with too_large.
	MaxBodyBytes int64
	// MaxItems is the most items in one insert batch. Default 10,000. More
	// is refused with too_large.
	MaxItems int
	// MaxMetaBytes is the largest meta object of one item, in bytes of
	// JSON as sent. Default 64 KiB. Larger is refused with too_large.
	MaxMetaBytes int
	// MaxImageBytes is the largest image file of an upload or a search by
	// image. Default 32 MiB. Larger is refused with too_large.
	MaxImageBytes int
	// MaxImages is the most files in one image upload. Default 64 (each
	// decoded image is held until the batch is embedded). More is refused
	// with too_large.
	MaxImages int
}

// Defaults of Limits.
const (
	DefaultMaxBodyBytes  = 64 << 20
	DefaultMaxItems      = 10_000
	DefaultMaxMetaBytes  = 64 << 10
	DefaultMaxImageBytes = 32 << 20
	DefaultMaxImages     = 64
)

// EnsureDefaults fills zero fields with their defaults.
func (l *Limits) EnsureDefaults() {
	if l.MaxBodyBytes == 0 {
		l.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if l.MaxItems == 0 {
		l.MaxItems = DefaultMaxItems
	}
	if l.MaxMetaBytes == 0 {
		l.MaxMetaBytes = DefaultMaxMetaBytes
	}
	if l.MaxImageBytes == 0 {
		l.MaxImageBytes = DefaultMaxImageBytes
	}
	if l.MaxImages == 0 {
		l.MaxImages = DefaultMaxImages
	}
}

// Validate reports every problem with l at once.
func (l *Limits) Validate() error {
	var errs []error
	if l.MaxBodyBytes < 1 {
		errs = append(errs, fmt.Errorf("proto: limits: max body bytes %d, want ≥ 1", l.MaxBodyBytes))
	}
	if l.MaxItems < 1 {
		errs = append(errs, fmt.Errorf("proto: limits: max items %d, want ≥ 1", l.MaxItems))
	}
	if l.MaxMetaBytes < 2 {
		errs = append(errs, fmt.Errorf("proto: limits: max meta bytes %d, want ≥ 2", l.MaxMetaBytes))
	}
	if l.MaxImageBytes < 1 {
		errs = append(errs, fmt.Errorf("proto: limits: max image bytes %d, want ≥ 1", l.MaxImageBytes))
	}
	if l.MaxImages < 1 {
		errs = append(errs, fmt.Errorf("proto: limits: max images %d, want ≥ 1", l.MaxImages))
	}
	return errors.Join(errs...)
}

// resolve returns l with defaults, or an internal *Error when it is invalid
// (a server configuration bug, not the client's).
func (l Limits) resolve() (Limits, error) {
	l.EnsureDefaults()
	if err := l.Validate(); err != nil {
		return l, Wrap(Internal, err)
	}
	return l, nil
}
