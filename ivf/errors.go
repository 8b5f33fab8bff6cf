package ivf

import "errors"

// Sentinel errors. Callers test them with errors.Is; messages wrap them with
// the details.
var (
	ErrDimension     = errors.New("ivf: wrong dimension")
	ErrNotFinite     = errors.New("ivf: vector has a NaN or Inf component")
	ErrUnknownMetric = errors.New("ivf: unknown metric")
	ErrNotTrained    = errors.New("ivf: index is not trained")
	ErrTrained       = errors.New("ivf: index is already trained")
	ErrTooFewPoints  = errors.New("ivf: too few training points")
	ErrBadK          = errors.New("ivf: k must be between 1 and 1024")
	ErrBadNProbe     = errors.New("ivf: nprobe must be between 1 and nlist")
	ErrBadOptions    = errors.New("ivf: invalid options")
	ErrCorrupt       = errors.New("ivf: corrupt index file")
	ErrNoSource      = errors.New("ivf: refine needs a vector source")
	ErrZeroVector    = errors.New("ivf: zero vector")
)

// MaxK is the largest k a search accepts.
const MaxK = 1024
