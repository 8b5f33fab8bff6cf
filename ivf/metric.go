package ivf

import (
	"fmt"
	"math"
	"strings"
)

// Metric is a similarity measure.
type Metric uint8

// Metrics. The numbers are part of the file format: append only.
const (
	L2     Metric = 1 // squared Euclidean distance; smaller is closer
	IP     Metric = 2 // inner product; larger is closer
	Cosine Metric = 3 // cosine similarity: vectors are L2-normalised at insert and query; larger is closer
)

func (m Metric) String() string {
	switch m {
	case L2:
		return "l2"
	case IP:
		return "ip"
	case Cosine:
		return "cosine"
	}
	return fmt.Sprintf("metric(%d)", uint8(m))
}

// ParseMetric parses "l2", "ip" or "cosine".
func ParseMetric(s string) (Metric, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "l2", "euclidean":
		return L2, nil
	case "ip", "dot", "inner_product":
		return IP, nil
	case "cosine", "angular":
		return Cosine, nil
	}
	return 0, fmt.Errorf("%w: %q (want l2, ip or cosine)", ErrUnknownMetric, s)
}

func (m Metric) valid() bool { return m == L2 || m == IP || m == Cosine }

// Score converts an internal distance (smaller is closer, see Hit) into the
// metric's own value: the squared L2 distance, or the inner product / cosine
// similarity.
func (m Metric) Score(dist float32) float32 {
	if m == L2 {
		return dist
	}
	return -dist
}

// Distance is the exact internal distance between x and y under m (smaller
// is closer): squared L2, or the negated inner product. For Cosine both
// vectors must already be normalised.
func (m Metric) Distance(x, y []float32) float32 {
	if m == L2 {
		return l2F32(x, y)
	}
	return -dotF32(x, y)
}

// Normalize scales v to unit L2 norm in place. A zero vector is left as is
// and reported with false.
func Normalize(v []float32) bool {
	n := dotF32(v, v)
	if n == 0 {
		return false
	}
	inv := float32(1 / math.Sqrt(float64(n)))
	for i := range v {
		v[i] *= inv
	}
	return true
}

// checkVector reports a vector of the wrong length or with a NaN or Inf.
func checkVector(v []float32, dim int) error {
	if len(v) != dim {
		return fmt.Errorf("%w: got %d components, want %d", ErrDimension, len(v), dim)
	}
	if i := FirstNotFinite(v); i >= 0 {
		return fmt.Errorf("%w: component %d is %v", ErrNotFinite, i, v[i])
	}
	return nil
}

// FirstNotFinite returns the index of the first NaN or ±Inf in v, or -1.
// Every write checks every vector (the gateway, the assignment, the
// primary and each backup), so the common all-finite case is one pass
// without branches: x - x is 0 for a finite x and NaN otherwise, and the
// NaN survives the sums.
func FirstNotFinite(v []float32) int {
	var s0, s1, s2, s3 float32
	i := 0
	for ; i+4 <= len(v); i += 4 {
		s0 += v[i] - v[i]
		s1 += v[i+1] - v[i+1]
		s2 += v[i+2] - v[i+2]
		s3 += v[i+3] - v[i+3]
	}
	for ; i < len(v); i++ {
		s0 += v[i] - v[i]
	}
	if s0+s1+s2+s3 == 0 {
		return -1
	}
	for i, x := range v {
		if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
			return i
		}
	}
	return -1
}
