package node

import (
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"time"

	"lookalike/embed"
	"lookalike/ivf"
)

// Options configure a Node. The zero value of each field means its
// default, as documented on the field.
type Options struct {
	// NodeID names this node in the cluster. Required.
	NodeID string
	// DefaultNProbe is the nprobe of a search that gives none, capped at
	// the collection's nlist. Default 16.
	DefaultNProbe int
	// AutoTrainAt is the count at which a collection with nlist "auto"
	// starts training by itself. A collection with a fixed nlist trains at
	// 39 × nlist. Default 9,984 (39 × 256); negative: no collection trains
	// by itself.
	AutoTrainAt int
	// Seed drives training's sample and k-means. Default 1.
	Seed int64
	// Threads used by training and batch assignment. Default GOMAXPROCS.
	Threads int
	// IDBlock is how many internal ids the node reserves from the
	// coordinator at a time. Default 65,536.
	IDBlock uint64
	// MoveChunk is how many buffered vectors the move step re-lists per
	// locked step, bounding how long a write waits behind it. Default 4,096.
	MoveChunk int
	// CallTimeout bounds one gateway → shard call. Default 30 s.
	CallTimeout time.Duration
	// MaxScans is how many scans (the CPU-heavy part of a search) run at
	// once on this node; more wait in order. Default 2 × GOMAXPROCS.
	MaxScans int
	// ScanWait is how long a scan may wait for a slot before it is
	// refused as overloaded (HTTP 429, or to a gateway, a reason to try
	// another replica within its budget). Default 1 s.
	ScanWait time.Duration
	// ShedAbove is the length of Go's run queue, in goroutines waiting per
	// processor (a moving average over ~40 ms), above which the API
	// refuses new searches with 429 until it falls below half of it: the
	// goroutines that keep Raft's leases and gossip's probes wait in the
	// same queue (sched.go). Default 32; negative: never shed.
	ShedAbove float64
	// SaveEvery is how many writes (items put or deleted) to a trained
	// collection trigger a save of its index in the background, bounding
	// the log a restart after a crash replays. Default 100,000; negative:
	// only after training and at shutdown.
	SaveEvery int
	// Scanner scans the probed lists of every trained collection. Default
	// (nil): ivf's CPU kernels. `lookalike serve --gpu` passes package
	// cuda's GPU scanner here.
	Scanner ivf.Scanner
	// Embedders embed images for image collections, by model name (the
	// "model" of a collection). Default none: creating an image
	// collection is refused. A collection whose recorded model hash
	// differs from its embedder's is refused too (ErrModelMismatch).
	Embedders map[string]embed.Embedder
	// Logger receives the node's messages. Default slog.Default().
	Logger *slog.Logger

	// peers makes the node one of a cluster (Run sets it): every
	// collection then takes the data plane (dist.go) from the start.
	peers *peers
}

// EnsureDefaults fills zero fields with their defaults.
func (o *Options) EnsureDefaults() {
	if o.DefaultNProbe == 0 {
		o.DefaultNProbe = 16
	}
	if o.AutoTrainAt == 0 {
		o.AutoTrainAt = 39 * 256
	}
	if o.Seed == 0 {
		o.Seed = 1
	}
	if o.Threads <= 0 {
		o.Threads = runtime.GOMAXPROCS(0)
	}
	if o.IDBlock == 0 {
		o.IDBlock = 1 << 16
	}
	if o.MoveChunk == 0 {
		o.MoveChunk = 4096
	}
	if o.CallTimeout == 0 {
		o.CallTimeout = 30 * time.Second
	}
	if o.MaxScans <= 0 {
		o.MaxScans = 2 * runtime.GOMAXPROCS(0)
	}
	if o.ScanWait <= 0 {
		o.ScanWait = time.Second
	}
	if o.ShedAbove == 0 {
		o.ShedAbove = 32
	}
	if o.SaveEvery == 0 {
		o.SaveEvery = 100_000
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
}

// Validate reports every problem with o at once.
func (o *Options) Validate() error {
	var errs []error
	if o.NodeID == "" {
		errs = append(errs, errors.New("node id is required"))
	}
	if o.DefaultNProbe < 1 {
		errs = append(errs, fmt.Errorf("default nprobe %d, want ≥ 1", o.DefaultNProbe))
	}
	if o.MoveChunk < 1 {
		errs = append(errs, fmt.Errorf("move chunk %d, want ≥ 1", o.MoveChunk))
	}
	if o.CallTimeout < 0 {
		errs = append(errs, fmt.Errorf("call timeout %v, want ≥ 0", o.CallTimeout))
	}
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("node: invalid options: %w", errors.Join(errs...))
}
