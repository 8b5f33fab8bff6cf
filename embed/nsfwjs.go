package embed

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"

	"lookalike/embed/onnx"
	"lookalike/embed/tfjs"
)

// The default model comes from the npm package nsfwjs (MIT): its
// mobilenet_v2_mid graph is TF-Hub's MobileNetV2 (width 1.4, 224 px)
// feature-vector backbone plus a 5-class head, as a TF.js graph model.
// ConvertNSFWJS turns the backbone, up to its 1792-d pooled layer, into
// ONNX.
const (
	DefaultModel   = "mobilenet_v2_mid" // the name collections use for it
	NSFWJSPackage  = "nsfwjs@4.4.0"     // what `npm pack` fetches
	NSFWJSTarball  = "nsfwjs-4.4.0.tgz" // the file npm pack writes
	NSFWJSSHA256   = "585cd178f3b994337c4d10a87b080d342fc52f8b9bf0085c4d1f345a3a1c5382"
	nsfwjsModelDir = "package/dist/models/mobilenet_v2_mid/"
	// nsfwjsFeatures is the graph node holding the pooled descriptor.
	nsfwjsFeatures = "StatefulPartitionedCall/sequential/keras_layer/StatefulPartitionedCall/StatefulPartitionedCall/StatefulPartitionedCall/predict/feature_vector/SpatialSqueeze"
)

// ImageNet's per-channel mean and standard deviation, the normalisation of
// most PyTorch and ONNX-zoo image models.
var (
	ImageNetMean = [3]float32{0.485, 0.456, 0.406}
	ImageNetStd  = [3]float32{0.229, 0.224, 0.225}
)

// ConvertedModel is one model that ConvertNSFWJS can build, with the
// SHA-256 its ONNX bytes must have (the converter is deterministic; a
// change to it that changes a model must change the hash here, and it
// changes the model's identity for the collections that use it).
type ConvertedModel struct {
	Config Config
	Hash   string
}

// NSFWJSModels are the models converted from nsfwjs: the default
// (NHWC input in [0, 1], as the TF graph takes it) and the same network
// taking NCHW input normalised with ImageNet's mean and std, as a PyTorch
// export would; it proves the config path and gives the same features.
var NSFWJSModels = []ConvertedModel{
	{
		Config: Config{Name: DefaultModel, File: "model.onnx", Input: "input", Output: "features",
			Layout: NHWC, Size: 224, Mean: [3]float32{0, 0, 0}, Std: [3]float32{1, 1, 1}, Dim: 1792},
		Hash: "e8eeaeb5bd0238d957cbd67e893555ae70578fb4d0efd2f6b8dd869390a40c9f",
	},
	{
		Config: Config{Name: DefaultModel + "_nchw", File: "model.onnx", Input: "input", Output: "features",
			Layout: NCHW, Size: 224, Mean: ImageNetMean, Std: ImageNetStd, Dim: 1792},
		Hash: "b813b3c15e192391783ada37603da96de373373febfe24e8ff81ed5bbd188fb8",
	},
}

// NSFWJSModel returns the entry of NSFWJSModels called name.
func NSFWJSModel(name string) (ConvertedModel, bool) {
	for _, m := range NSFWJSModels {
		if m.Config.Name == name {
			return m, true
		}
	}
	return ConvertedModel{}, false
}

// NSFWJSGraph reads the mobilenet_v2_mid graph out of the nsfwjs npm
// tarball, after checking the tarball's SHA-256 against NSFWJSSHA256.
func NSFWJSGraph(tarball []byte) (*tfjs.Graph, error) {
	sum := sha256.Sum256(tarball)
	if got := hex.EncodeToString(sum[:]); got != NSFWJSSHA256 {
		return nil, fmt.Errorf("embed: %s has SHA-256 %s, want %s (%s)", NSFWJSTarball, got, NSFWJSSHA256, NSFWJSPackage)
	}
	files, err := untar(tarball, nsfwjsModelDir)
	if err != nil {
		return nil, err
	}
	model, ok := files["model.min.js"]
	if !ok {
		return nil, fmt.Errorf("embed: %s lacks %smodel.min.js", NSFWJSTarball, nsfwjsModelDir)
	}
	return tfjs.Load(model, func(path string) ([]byte, error) {
		src, ok := files[path+".min.js"]
		if !ok {
			return nil, fmt.Errorf("%s lacks %s%s.min.js", NSFWJSTarball, nsfwjsModelDir, path)
		}
		return tfjs.ShardFromJS(src)
	})
}

// ConvertNSFWJS converts g (from NSFWJSGraph) into model m, returning the
// ONNX bytes. It does not check m.Hash; callers compare.
func ConvertNSFWJS(g *tfjs.Graph, m ConvertedModel) ([]byte, error) {
	c := m.Config
	o := tfjs.Options{
		Output:     nsfwjsFeatures,
		InputName:  c.Input,
		OutputName: c.Output,
		NCHW:       c.Layout == NCHW,
		Normalized: c.Mean != [3]float32{} || c.Std != [3]float32{1, 1, 1},
		Mean:       c.Mean,
		Std:        c.Std,
		DocString: fmt.Sprintf("MobileNetV2 (width 1.4, 224 px) feature vector from npm %s (MIT), %s: "+
			"the 1792-d pooled descriptor; input %s RGB, (v/255 - mean)/std with mean %v, std %v; converted by lookalike",
			NSFWJSPackage, nsfwjsModelDir, c.Layout, c.Mean, c.Std),
		Metadata: []onnx.Entry{{Key: "source", Value: "npm " + NSFWJSPackage + " " + nsfwjsModelDir}, {Key: "license", Value: "MIT"}},
	}
	om, err := tfjs.Convert(g, o)
	if err != nil {
		return nil, err
	}
	return om.Marshal()
}

// untar returns the regular files under dir in a gzipped tarball, by
// their names relative to dir.
func untar(tgz []byte, dir string) (map[string][]byte, error) {
	zr, err := gzip.NewReader(bytes.NewReader(tgz))
	if err != nil {
		return nil, fmt.Errorf("embed: %s: %w", NSFWJSTarball, err)
	}
	tr := tar.NewReader(zr)
	files := map[string][]byte{}
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return files, nil
		}
		if err != nil {
			return nil, fmt.Errorf("embed: %s: %w", NSFWJSTarball, err)
		}
		name, ok := strings.CutPrefix(h.Name, dir)
		if !ok || h.Typeflag != tar.TypeReg || strings.Contains(name, "/") {
			continue
		}
		b, err := io.ReadAll(io.LimitReader(tr, 64<<20))
		if err != nil {
			return nil, fmt.Errorf("embed: %s: %s: %w", NSFWJSTarball, h.Name, err)
		}
		files[name] = b
	}
}
