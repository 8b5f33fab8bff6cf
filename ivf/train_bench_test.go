package ivf_test

import (
	"testing"

	"lookalike/ivf"
	"lookalike/ivf/ivftest"
)

// BenchmarkTrain: k-means and SQ8 training, 20,000 rows of 128-d, 256
// lists, 10 iterations, on every core.
func BenchmarkTrain(b *testing.B) {
	data := ivftest.Clustered(20_000, 128, 64, 9)
	for b.Loop() {
		ix, err := ivf.New(ivf.Options{Dim: 128, NList: 256, Seed: 1})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := ix.Train(data); err != nil {
			b.Fatal(err)
		}
	}
}
