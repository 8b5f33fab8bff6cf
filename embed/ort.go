package embed

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sync"

	ort "github.com/yalue/onnxruntime_go"
)

// ONNX Runtime has one environment per process, bound to the shared
// library it was loaded from. initRuntime creates it on the first Open
// and keeps it for the life of the process (it is never destroyed: models
// come and go, the library stays mapped). A failed load (no library yet)
// is not remembered, so a later Open can succeed once
// scripts/fetch-ort.sh has run; a successful one is, and an Open naming a
// different library then fails.
var ortEnv struct {
	mu      sync.Mutex
	library string // loaded from; "" until loaded
}

func initRuntime(lib string) error {
	if _, err := os.Stat(lib); errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%w: %s does not exist (run scripts/fetch-ort.sh, or set LOOKALIKE_ORT_LIB to a libonnxruntime.so of version 1.24 or later)", ErrNoRuntime, lib)
	}
	ortEnv.mu.Lock()
	defer ortEnv.mu.Unlock()
	if ortEnv.library != "" {
		if lib != ortEnv.library {
			return fmt.Errorf("embed: ONNX Runtime is already loaded from %s in this process; cannot also load %s", ortEnv.library, lib)
		}
		return nil
	}
	ort.SetSharedLibraryPath(lib)
	if err := ort.InitializeEnvironment(ort.WithLogLevelError()); err != nil {
		return fmt.Errorf("%w: loading %s: %v (run scripts/fetch-ort.sh for ONNX Runtime 1.30)", ErrNoRuntime, lib, err)
	}
	ortEnv.library = lib
	return nil
}

// RuntimeVersion is the version of the loaded ONNX Runtime library, or ""
// before the first successful Open.
func RuntimeVersion() string {
	ortEnv.mu.Lock()
	defer ortEnv.mu.Unlock()
	if ortEnv.library == "" {
		return ""
	}
	return ort.GetVersion()
}

// checkModel asks ONNX Runtime for the model's inputs and outputs and
// checks them against c. It returns the model's fixed batch size: 0 when
// the batch dimension is dynamic, 1 when it is fixed at 1 (other fixed
// sizes are refused).
func checkModel(data []byte, c Config) (int, error) {
	ins, outs, err := ort.GetInputOutputInfoWithONNXData(data)
	if err != nil {
		return 0, fmt.Errorf("ONNX Runtime cannot load it: %v", err)
	}
	in := find(ins, c.Input)
	if in == nil {
		return 0, fmt.Errorf("no input %q (the model's inputs: %s)", c.Input, names(ins))
	}
	if len(ins) != 1 {
		return 0, fmt.Errorf("%d inputs (%s); an image model has one", len(ins), names(ins))
	}
	s := int64(c.Size)
	want := []int64{s, s, 3} // NHWC, after the batch
	if c.Layout == NCHW {
		want = []int64{3, s, s}
	}
	d := in.Dimensions
	if in.OrtValueType != ort.ONNXTypeTensor || in.DataType != ort.TensorElementDataTypeFloat || len(d) != 4 ||
		d[1] != want[0] || d[2] != want[1] || d[3] != want[2] {
		return 0, fmt.Errorf("input %s; model.json (layout %s, size %d) wants float32 [N %d %d %d]",
			in.String(), c.Layout, c.Size, want[0], want[1], want[2])
	}
	batch := 0
	switch {
	case d[0] == 1:
		batch = 1
	case d[0] > 1:
		return 0, fmt.Errorf("input %s has a fixed batch of %d; want a dynamic batch (or 1)", in.String(), d[0])
	}
	out := find(outs, c.Output)
	if out == nil {
		return 0, fmt.Errorf("no output %q (the model's outputs: %s)", c.Output, names(outs))
	}
	// The descriptor may come as [N, Dim] or as [N, Dim, 1, 1] (a pooled
	// feature map): every dimension after the batch must be known and
	// their product must be Dim.
	od := out.Dimensions
	n := int64(1)
	for _, x := range od[min(1, len(od)):] {
		if x < 0 {
			n = -1
			break
		}
		n *= x
	}
	if out.OrtValueType != ort.ONNXTypeTensor || out.DataType != ort.TensorElementDataTypeFloat || len(od) < 2 || n != int64(c.Dim) {
		return 0, fmt.Errorf("output %s; model.json wants float32 [N %d]", out.String(), c.Dim)
	}
	return batch, nil
}

func find(infos []ort.InputOutputInfo, name string) *ort.InputOutputInfo {
	for i := range infos {
		if infos[i].Name == name {
			return &infos[i]
		}
	}
	return nil
}

func names(infos []ort.InputOutputInfo) string {
	s := ""
	for i := range infos {
		if i > 0 {
			s += ", "
		}
		s += infos[i].String()
	}
	return s
}

// session is one ONNX Runtime session of a model. A session runs one
// batch at a time here (the pool hands it to one Run at a time).
type session struct {
	s      *ort.DynamicAdvancedSession
	cfg    Config
	inDims func(n int) ort.Shape
}

func newSession(data []byte, c Config, threads int) (*session, error) {
	so, err := ort.NewSessionOptions()
	if err != nil {
		return nil, err
	}
	defer so.Destroy()
	if threads > 0 {
		if err := so.SetIntraOpNumThreads(threads); err != nil {
			return nil, err
		}
		// Threads beyond the pool's own add nothing to one run.
		if err := so.SetInterOpNumThreads(1); err != nil {
			return nil, err
		}
	}
	s, err := ort.NewDynamicAdvancedSessionWithONNXData(data, []string{c.Input}, []string{c.Output}, so)
	if err != nil {
		return nil, err
	}
	size := int64(c.Size)
	inDims := func(n int) ort.Shape { return ort.NewShape(int64(n), size, size, 3) }
	if c.Layout == NCHW {
		inDims = func(n int) ort.Shape { return ort.NewShape(int64(n), 3, size, size) }
	}
	return &session{s: s, cfg: c, inDims: inDims}, nil
}

func (s *session) run(batch []float32, n int) ([]float32, error) {
	in, err := ort.NewTensor(s.inDims(n), batch)
	if err != nil {
		return nil, fmt.Errorf("embed: run: %w", err)
	}
	defer in.Destroy()
	outs := []ort.Value{nil} // ONNX Runtime allocates the output
	if err := s.s.Run([]ort.Value{in}, outs); err != nil {
		return nil, fmt.Errorf("embed: run: %w", err)
	}
	defer outs[0].Destroy()
	t, ok := outs[0].(*ort.Tensor[float32])
	if !ok {
		return nil, fmt.Errorf("embed: run: output is a %T, want float32 tensor", outs[0])
	}
	data := t.GetData()
	if len(data) != n*s.cfg.Dim {
		return nil, fmt.Errorf("embed: run: %d output floats for %d images of %d", len(data), n, s.cfg.Dim)
	}
	return append([]float32(nil), data...), nil
}

func (s *session) destroy() { s.s.Destroy() }
