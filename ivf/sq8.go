package ivf

import "math"

// SQ8 is a scalar quantizer with one byte per dimension and a per-dimension
// range (FAISS QT_8bit, trained with min/max). A component x in dimension i
// is stored as code = round(255·(x−Min[i])/(Max[i]−Min[i])) clamped to
// 0..255, and reconstructed as Min[i] + code·Step[i], Step[i] =
// (Max[i]−Min[i])/255, so its error is at most Step[i]/2. The index
// quantizes residuals (vector − its list's centroid), as FAISS does by
// default, which makes the ranges, and so the error, smaller.
type SQ8 struct {
	Min  []float32
	Step []float32
}

// trainSQ8 learns the per-dimension ranges of rows of data.
func trainSQ8(data []float32, d int) SQ8 {
	lo := make([]float32, d)
	hi := make([]float32, d)
	for i := range lo {
		lo[i] = math.MaxFloat32
		hi[i] = -math.MaxFloat32
	}
	for r := 0; r+d <= len(data); r += d {
		for i, x := range data[r : r+d] {
			lo[i] = min(lo[i], x)
			hi[i] = max(hi[i], x)
		}
	}
	step := make([]float32, d)
	for i := range lo {
		if lo[i] > hi[i] { // no data
			lo[i], hi[i] = 0, 0
		}
		step[i] = (hi[i] - lo[i]) / 255
	}
	return SQ8{Min: lo, Step: step}
}

// encode writes the codes of x (already a residual) into dst.
func (q *SQ8) encode(x []float32, dst []byte) {
	for i, v := range x {
		if q.Step[i] == 0 {
			dst[i] = 0
			continue
		}
		t := (v - q.Min[i]) / q.Step[i]
		switch {
		case !(t > 0): // also NaN
			dst[i] = 0
		case t >= 255:
			dst[i] = 255
		default:
			dst[i] = byte(t + 0.5)
		}
	}
}

// decode reconstructs codes into dst.
func (q *SQ8) decode(codes []byte, dst []float32) {
	for i, c := range codes {
		dst[i] = q.Min[i] + float32(c)*q.Step[i]
	}
}
