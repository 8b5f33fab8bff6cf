package embed_test

import (
	"fmt"
	"testing"
	"time"

	"lookalike/embed"
)

// BenchmarkModelRun times the default model in ONNX Runtime by batch size
// (inference only: the input is already a tensor), reporting ms/image.
func BenchmarkModelRun(b *testing.B) {
	lib := ortLibrary(b)
	m, err := embed.Open(cachedModel(b, embed.DefaultModel), embed.ModelOptions{Library: lib})
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	c := m.Config()
	img := tensorOf(referenceInput(b, "apple"), c)
	for _, n := range []int{1, 4, 8, 16, 32} {
		batch := make([]float32, 0, n*len(img))
		for range n {
			batch = append(batch, img...)
		}
		b.Run(fmt.Sprintf("batch=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(4 * len(batch)))
			start := time.Now()
			for b.Loop() {
				if _, err := m.Run(batch, n); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(time.Since(start).Microseconds())/1000/float64(b.N*n), "ms/image")
		})
	}
}
