package ivf

import (
	"errors"
	"fmt"
	"runtime"
)

// Options configure an Index. The zero value of each field means its
// default, as documented on the field.
type Options struct {
	// Dim is the vector dimension. Required, 1..65536.
	Dim int
	// Metric is the similarity measure. Default L2.
	Metric Metric
	// NList is the number of inverted lists (k-means centroids). Required.
	// Training adapts it down when there are fewer than
	// MinPointsPerCentroid points per list (see TrainReport).
	NList int
	// Seed drives every random choice (training sample, k-means init,
	// empty-cluster splits). Default 1.
	Seed int64
	// Iterations of k-means. Default 10, as FAISS's IVF training.
	Iterations int
	// MaxPointsPerCentroid caps the training sample at this many points per
	// list; larger inputs are subsampled. Default 256, as FAISS.
	MaxPointsPerCentroid int
	// MinPointsPerCentroid is the fewest training points per list that
	// k-means is given; with fewer, NList is lowered to n/MinPointsPerCentroid
	// (knowhere clamps the same way; FAISS only warns). Default 39.
	MinPointsPerCentroid int
	// KMeansPlusPlus seeds k-means with k-means++ instead of FAISS's random
	// sample of points. Slower to start, sometimes better on skewed data.
	KMeansPlusPlus bool
	// Threads used by training, Add and SearchBatch. Default GOMAXPROCS.
	// Search of one query always runs on the calling goroutine.
	Threads int
	// Scanner scans probed lists. Default the CPU scanner of this package;
	// the cuda package provides a GPU one.
	Scanner Scanner
}

// EnsureDefaults fills zero fields with their defaults.
func (o *Options) EnsureDefaults() {
	if o.Metric == 0 {
		o.Metric = L2
	}
	if o.Seed == 0 {
		o.Seed = 1
	}
	if o.Iterations == 0 {
		o.Iterations = 10
	}
	if o.MaxPointsPerCentroid == 0 {
		o.MaxPointsPerCentroid = 256
	}
	if o.MinPointsPerCentroid == 0 {
		o.MinPointsPerCentroid = 39
	}
	if o.Threads <= 0 {
		o.Threads = runtime.GOMAXPROCS(0)
	}
	if o.Scanner == nil {
		o.Scanner = CPUScanner{}
	}
}

// MaxDim is the largest dimension an index accepts.
const MaxDim = 1 << 16

// MaxNList is the largest number of lists an index accepts.
const MaxNList = 1 << 20

// Validate reports every problem with o at once.
func (o *Options) Validate() error {
	var errs []error
	if o.Dim < 1 || o.Dim > MaxDim {
		errs = append(errs, fmt.Errorf("dim %d outside 1..%d", o.Dim, MaxDim))
	}
	if !o.Metric.valid() {
		errs = append(errs, fmt.Errorf("%w: %v", ErrUnknownMetric, o.Metric))
	}
	if o.NList < 1 || o.NList > MaxNList {
		errs = append(errs, fmt.Errorf("nlist %d outside 1..%d", o.NList, MaxNList))
	}
	if o.Iterations < 1 || o.Iterations > 1000 {
		errs = append(errs, fmt.Errorf("iterations %d outside 1..1000", o.Iterations))
	}
	if o.MinPointsPerCentroid < 1 || o.MaxPointsPerCentroid < o.MinPointsPerCentroid {
		errs = append(errs, fmt.Errorf("points per centroid: min %d, max %d: want 1 ≤ min ≤ max", o.MinPointsPerCentroid, o.MaxPointsPerCentroid))
	}
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %w", ErrBadOptions, errors.Join(errs...))
}
