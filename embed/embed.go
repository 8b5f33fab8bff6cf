package embed

import (
	"context"
	"fmt"
	"runtime"
	"sync"
)

// Layout is the memory order of a model's input tensor.
type Layout string

const (
	NHWC Layout = "NHWC" // batch, height, width, channel (TF, the default model)
	NCHW Layout = "NCHW" // batch, channel, height, width (PyTorch exports, the ONNX zoo)
)

// Config describes an ONNX image model; model.json in a model directory
// holds it. A pixel's channel value v in 0..255 (RGB) is fed as
// (v/255 − Mean[c]) / Std[c].
type Config struct {
	Name   string     `json:"name"`   // the model's name, as collections give it ("mobilenet_v2_mid")
	File   string     `json:"file"`   // the ONNX file, relative to the directory of model.json
	Input  string     `json:"input"`  // input tensor name
	Output string     `json:"output"` // output tensor name: the descriptor, shape [N, Dim]
	Layout Layout     `json:"layout"` // NHWC or NCHW
	Size   int        `json:"size"`   // square input side, pixels
	Mean   [3]float32 `json:"mean"`
	Std    [3]float32 `json:"std"`
	Dim    int        `json:"dim"` // descriptor length
}

// Validate reports every problem with c at once.
func (c Config) Validate() error {
	var probs []string
	if c.Name == "" {
		probs = append(probs, "name is empty")
	}
	if c.File == "" {
		probs = append(probs, "file is empty")
	}
	if c.Input == "" || c.Output == "" {
		probs = append(probs, "input and output tensor names are required")
	}
	if c.Layout != NHWC && c.Layout != NCHW {
		probs = append(probs, fmt.Sprintf("layout %q, want NHWC or NCHW", c.Layout))
	}
	if c.Size < 8 || c.Size > 4096 {
		probs = append(probs, fmt.Sprintf("size %d, want 8..4096", c.Size))
	}
	for i, s := range c.Std {
		if !(s > 0) {
			probs = append(probs, fmt.Sprintf("std[%d] = %v, want > 0", i, s))
		}
	}
	if c.Dim < 1 || c.Dim > 65536 {
		probs = append(probs, fmt.Sprintf("dim %d, want 1..65536", c.Dim))
	}
	if len(probs) == 0 {
		return nil
	}
	return fmt.Errorf("embed: invalid model config: %v", probs)
}

// Runner runs a model on a batch. Safe for concurrent use.
type Runner interface {
	// Run takes n images of Config().Size² × 3 float32 each, laid out
	// in Config().Layout, and returns n × Config().Dim float32.
	Run(batch []float32, n int) ([]float32, error)
	Config() Config
}

// Lane says who waits for an embedding.
type Lane int

const (
	Query Lane = iota // a visitor waits: served first, small batches
	Bulk              // an import: large batches, yields to Query
)

// Embedder is what a node needs of embedding: prepare an upload, embed
// prepared images, and the identity of the model. *Pipeline implements
// it; node tests may use a fake.
type Embedder interface {
	// Prepare decodes and preprocesses one encoded image. Errors wrap
	// ErrNotImage, ErrUnsupported, ErrTooLarge or ErrTruncated.
	Prepare(data []byte) (*Prepared, error)
	// Embed returns one L2-normalised vector per prepared image, in order.
	Embed(ctx context.Context, lane Lane, imgs []*Prepared) ([][]float32, error)
	// ModelName, ModelHash and Dim identify the model.
	ModelName() string
	ModelHash() string
	Dim() int
}

// Prepared is a decoded image ready for the model.
type Prepared struct {
	Tensor []float32 // Size² × 3, in the model's layout, normalised
	Thumb  []byte    // JPEG thumbnail, longest side ThumbSide
	Format string    // "jpeg", "png", "gif", "webp", "bmp"
	Width  int       // of the original, after EXIF orientation
	Height int
}

// PrepareAll prepares every image with e on all cores (GOMAXPROCS
// workers) and returns each result and each error in the order of data.
func PrepareAll(e Embedder, data [][]byte) ([]*Prepared, []error) {
	out := make([]*Prepared, len(data))
	errs := make([]error, len(data))
	var wg sync.WaitGroup
	next := make(chan int)
	for range min(runtime.GOMAXPROCS(0), len(data)) {
		wg.Go(func() {
			for i := range next {
				out[i], errs[i] = e.Prepare(data[i])
			}
		})
	}
	for i := range data {
		next <- i
	}
	close(next)
	wg.Wait()
	return out, errs
}
