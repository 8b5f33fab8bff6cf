package ivf

import "fmt"

// Rows is a VectorSource over an in-memory row-major matrix: id i is row i.
// A benchmark refines from its data set this way; a node reads Pebble.
type Rows struct {
	Dim  int
	Data []float32
}

// Vectors implements VectorSource.
func (s Rows) Vectors(ids []uint64, dst []float32) error {
	n := uint64(len(s.Data) / s.Dim)
	for i, id := range ids {
		if id >= n {
			return fmt.Errorf("ivf: no row %d (have %d)", id, n)
		}
		copy(dst[i*s.Dim:(i+1)*s.Dim], s.Data[id*uint64(s.Dim):(id+1)*uint64(s.Dim)])
	}
	return nil
}
