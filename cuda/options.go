package cuda

import (
	"errors"
	"fmt"
	"time"
)

// Options configure a Scanner. The zero value of each field means its
// default, as documented on the field.
type Options struct {
	// Device is the CUDA device ordinal. Default 0.
	Device int
	// MemoryBudget is the device memory, in bytes, that resident lists
	// (codes, ids, deleted bitmaps) and index constants (centroids, SQ8
	// ranges) may occupy. Lists that do not fit are scanned on the CPU
	// (Stats.CPUListScans counts them). The per-batch scratch memory comes
	// on top (Stats.ScratchBytes; it grows with MaxBatch and k). Default:
	// 80% of the device memory free at start, less 256 MiB.
	MemoryBudget int64
	// MaxBatch is the most queries one launch scans. Concurrent Scan calls
	// are gathered into batches up to this size; a larger call is split.
	// Default 1024.
	MaxBatch int
	// MaxWait is how long the first request of a batch waits for more
	// before the batch is launched. Default 0, no wait: a batch is what
	// queued while the previous one ran (continuous batching), so a lone
	// query goes at once and a loaded scanner still forms large batches.
	// A positive wait costs a lone query about 1 ms however short it is:
	// Go's timers sleep at least a millisecond when the process is
	// otherwise idle (docs/cuda.md, "Figures"). Negative: no wait.
	MaxWait time.Duration
	// MaxTail is the most entries appended to a resident list since its
	// last upload that a search scans on the CPU instead of uploading them
	// first; a longer tail is uploaded before the launch. Default 4096.
	// Negative: always upload first (no CPU tail).
	MaxTail int
	// RefreshInterval is how often an idle scanner brings resident lists
	// up to date (uploads tails and deleted bitmaps) so that searches find
	// little to do. Default 100ms. Negative: never (searches still sync what
	// they probe).
	RefreshInterval time.Duration
	// BlocksPerSM is the number of thread blocks per multiprocessor the
	// planner aims for when it splits a batch's work. Default 4.
	BlocksPerSM int
	// MinBlockRows is the fewest code rows one block is given (the planner
	// raises it to 2·k). Default 64 (docs/cuda.md, "Figures": fewer rows
	// per block spread a single query over more multiprocessors).
	MinBlockRows int
}

// EnsureDefaults fills zero fields with their defaults. MemoryBudget is
// resolved against the device when the scanner opens it.
func (o *Options) EnsureDefaults() {
	if o.MaxBatch == 0 {
		o.MaxBatch = 1024
	}
	if o.MaxTail == 0 {
		o.MaxTail = 4096
	}
	if o.RefreshInterval == 0 {
		o.RefreshInterval = 100 * time.Millisecond
	}
	if o.BlocksPerSM == 0 {
		o.BlocksPerSM = 4
	}
	if o.MinBlockRows == 0 {
		o.MinBlockRows = 64
	}
}

// Validate reports every problem with o at once.
func (o *Options) Validate() error {
	var errs []error
	if o.Device < 0 {
		errs = append(errs, fmt.Errorf("device %d is negative", o.Device))
	}
	if o.MemoryBudget < 0 {
		errs = append(errs, fmt.Errorf("memory budget %d is negative", o.MemoryBudget))
	}
	if o.MaxBatch < 1 || o.MaxBatch > 1<<16 {
		errs = append(errs, fmt.Errorf("max batch %d outside 1..65536", o.MaxBatch))
	}
	if o.MaxWait > time.Second {
		errs = append(errs, fmt.Errorf("max wait %v over 1s", o.MaxWait))
	}
	if o.BlocksPerSM < 1 || o.BlocksPerSM > 64 {
		errs = append(errs, fmt.Errorf("blocks per SM %d outside 1..64", o.BlocksPerSM))
	}
	if o.MinBlockRows < 1 {
		errs = append(errs, fmt.Errorf("min block rows %d below 1", o.MinBlockRows))
	}
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %w", ErrBadOptions, errors.Join(errs...))
}

// budgetFor resolves the default memory budget against a device.
func budgetFor(o Options, info deviceInfo) int64 {
	if o.MemoryBudget > 0 {
		return o.MemoryBudget
	}
	return max(0, info.FreeMem*8/10-256<<20)
}
