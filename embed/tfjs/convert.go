package tfjs

import (
	"fmt"
	"slices"
	"strings"

	"lookalike/embed/onnx"
)

// Options says what Convert builds.
type Options struct {
	// Output is the TF node whose value the ONNX model outputs (for
	// nsfwjs's MobileNetV2: ".../feature_vector/SpatialSqueeze", the
	// pooled descriptor). Required.
	Output string
	// InputName and OutputName name the ONNX model's input and output
	// tensors; defaults "input" and "features".
	InputName, OutputName string
	// NCHW makes the input [N, C, H, W] instead of the graph's
	// [N, H, W, C]; the first convolution then needs no transpose.
	NCHW bool
	// Normalized, with Mean and Std, says the input is fed normalised per
	// channel, (x − Mean[c]) / Std[c], where the graph expects x: the model
	// first computes x·Std + Mean.
	Normalized bool
	Mean, Std  [3]float32
	// Opset is the ONNX operator set version; 0 means 13.
	Opset int64
	// DocString is written into the model.
	DocString string
	// Metadata is written into the model's metadata_props, in order.
	Metadata []onnx.Entry
}

// Ops lists the TF ops Convert supports.
var Ops = []string{
	"Placeholder", "Const", "Identity",
	"Mul", "Sub", "Add", "AddV2",
	"Conv2D", "_FusedConv2D", "DepthwiseConv2dNative", "FusedDepthwiseConv2dNative",
	"BiasAdd", "Relu", "Relu6",
	"AvgPool", "MaxPool", "Squeeze",
	"_FusedMatMul", "Softmax",
}

// layout is the physical order of a 4-D activation.
type layout int

const (
	flat layout = iota // rank ≤ 2, or a constant: no order to track
	nhwc
	nchw
)

// value is a TF node's output in the ONNX graph under construction.
type value struct {
	name   string  // ONNX tensor name
	lay    layout  // physical order, for rank 4
	shape  []int64 // logical TF shape (NHWC for rank 4), -1 for the batch
	weight *Weight // set for Const: emitted by the op that uses it
	nchw   string  // the name of an NCHW transpose made of an NHWC value
}

type converter struct {
	g      *Graph
	o      Options
	nodes  []onnx.Node
	inits  []onnx.Tensor
	inited map[string]bool
	vals   map[string]*value
	busy   map[string]bool // on the DFS stack: a cycle check
	input  *onnx.ValueInfo
}

// Convert translates the part of g that computes o.Output into an ONNX
// model with one input (the graph's Placeholder, batch dimension "N") and
// one output. Activations run in NCHW (ONNX's convolution order); the
// NHWC input is transposed once, right before the first op that needs
// NCHW. TF's SAME padding becomes explicit pads computed from the static
// spatial sizes, so the placeholder's height and width must be known.
// Convert is deterministic: the same graph and options give the same
// model, node for node and byte for byte.
func Convert(g *Graph, o Options) (*onnx.Model, error) {
	if o.Output == "" || g.Node(o.Output) == nil {
		return nil, fmt.Errorf("tfjs: output node %q not in the graph", o.Output)
	}
	if o.InputName == "" {
		o.InputName = "input"
	}
	if o.OutputName == "" {
		o.OutputName = "features"
	}
	if o.Opset == 0 {
		o.Opset = 13
	}
	c := &converter{g: g, o: o, inited: map[string]bool{}, vals: map[string]*value{}, busy: map[string]bool{}}
	v, err := c.eval(o.Output)
	if err != nil {
		return nil, err
	}
	if c.input == nil {
		return nil, fmt.Errorf("tfjs: output %q does not depend on the input", o.Output)
	}
	if v.weight != nil {
		return nil, fmt.Errorf("tfjs: output %q is a constant", o.Output)
	}
	if len(v.shape) == 4 && v.lay == nchw {
		v = c.transpose(v, nhwc) // the output keeps the graph's NHWC order
	}
	out := onnx.ValueInfo{Name: o.OutputName, Type: onnx.Float, Dims: dims(v.shape)}
	c.rename(v.name, o.OutputName)
	return &onnx.Model{
		Opset:           o.Opset,
		ProducerName:    "lookalike",
		ProducerVersion: "tfjs converter 1",
		DocString:       o.DocString,
		Metadata:        o.Metadata,
		Graph: onnx.Graph{
			Name:         "main",
			Nodes:        c.nodes,
			Initializers: c.inits,
			Inputs:       []onnx.ValueInfo{*c.input},
			Outputs:      []onnx.ValueInfo{out},
		},
	}, nil
}

// rename makes the tensor from be called to, or adds an Identity when
// from is the graph input itself.
func (c *converter) rename(from, to string) {
	if from == c.input.Name {
		c.add(onnx.Node{Name: "output", OpType: "Identity", Inputs: []string{from}, Outputs: []string{to}})
		return
	}
	for i := range c.nodes {
		for j, s := range c.nodes[i].Outputs {
			if s == from {
				c.nodes[i].Outputs[j] = to
			}
		}
		for j, s := range c.nodes[i].Inputs {
			if s == from {
				c.nodes[i].Inputs[j] = to
			}
		}
	}
}

func dims(shape []int64) []onnx.Dim {
	d := make([]onnx.Dim, len(shape))
	for i, s := range shape {
		if s < 0 {
			d[i] = onnx.Dim{Param: "N"}
		} else {
			d[i] = onnx.Dim{Value: s}
		}
	}
	return d
}

func (c *converter) add(n onnx.Node) { c.nodes = append(c.nodes, n) }

// init adds an initializer once; later calls with the same name reuse it
// (the same name always means the same data here).
func (c *converter) init(t onnx.Tensor) string {
	if !c.inited[t.Name] {
		c.inited[t.Name] = true
		c.inits = append(c.inits, t)
	}
	return t.Name
}

func (c *converter) scalar(name string, v float32) string {
	return c.init(onnx.FloatTensor(name, nil, []float32{v}))
}

// eval converts the node called name and everything it depends on, inputs
// first (a depth-first walk in input order: deterministic).
func (c *converter) eval(name string) (*value, error) {
	if v := c.vals[name]; v != nil {
		return v, nil
	}
	n := c.g.Node(name)
	if n == nil {
		return nil, fmt.Errorf("tfjs: node %q not in the graph", name)
	}
	if c.busy[name] {
		return nil, fmt.Errorf("tfjs: the graph has a cycle through %q: %w", name, ErrFormat)
	}
	c.busy[name] = true
	defer delete(c.busy, name)
	var in []*value
	for _, i := range n.Inputs {
		v, err := c.eval(i)
		if err != nil {
			return nil, err
		}
		in = append(in, v)
	}
	v, err := c.op(n, in)
	if err != nil {
		return nil, fmt.Errorf("tfjs: node %q (%s): %w", n.Name, n.Op, err)
	}
	c.vals[name] = v
	return v, nil
}

func nargs(in []*value, want int) error {
	if len(in) != want {
		return fmt.Errorf("%d inputs, want %d", len(in), want)
	}
	return nil
}

func (c *converter) op(n *Node, in []*value) (*value, error) {
	switch n.Op {
	case "Placeholder":
		return c.placeholder(n)
	case "Const":
		w := c.g.Weights[n.Name]
		if w == nil {
			return nil, fmt.Errorf("no weights for the constant")
		}
		if w.Float == nil {
			return nil, fmt.Errorf("a non-float constant")
		}
		sh := make([]int64, len(w.Shape))
		for i, d := range w.Shape {
			sh[i] = int64(d)
		}
		return &value{name: n.Name, weight: w, shape: sh}, nil
	case "Identity":
		if err := nargs(in, 1); err != nil {
			return nil, err
		}
		return in[0], nil
	case "Mul", "Sub", "Add", "AddV2":
		if err := nargs(in, 2); err != nil {
			return nil, err
		}
		return c.binary(n, in[0], in[1])
	case "Conv2D", "_FusedConv2D", "DepthwiseConv2dNative", "FusedDepthwiseConv2dNative":
		return c.conv(n, in)
	case "BiasAdd":
		if err := nargs(in, 2); err != nil {
			return nil, err
		}
		return c.biasAdd(n.Name, n.Name, in[0], in[1])
	case "Relu", "Relu6":
		if err := nargs(in, 1); err != nil {
			return nil, err
		}
		if in[0].weight != nil {
			return nil, fmt.Errorf("a constant input")
		}
		return c.activation(n.Name, n.Name, n.Op, in[0])
	case "AvgPool", "MaxPool":
		if err := nargs(in, 1); err != nil {
			return nil, err
		}
		return c.pool(n, in[0])
	case "Squeeze":
		if err := nargs(in, 1); err != nil {
			return nil, err
		}
		return c.squeeze(n, in[0])
	case "_FusedMatMul":
		return c.matmul(n, in)
	case "Softmax":
		if err := nargs(in, 1); err != nil {
			return nil, err
		}
		x := in[0]
		if len(x.shape) != 2 || x.weight != nil {
			return nil, fmt.Errorf("softmax of shape %v; only [N, K] activations are supported", x.shape)
		}
		c.add(onnx.Node{Name: n.Name, OpType: "Softmax", Inputs: []string{x.name}, Outputs: []string{n.Name},
			Attrs: []onnx.Attr{onnx.AttrI("axis", -1)}})
		return &value{name: n.Name, shape: x.shape}, nil
	}
	return nil, fmt.Errorf("op %s not supported (supported: %s)", n.Op, strings.Join(Ops, ", "))
}

func (c *converter) placeholder(n *Node) (*value, error) {
	if c.input != nil {
		return nil, fmt.Errorf("a second input; only one is supported")
	}
	sh := slices.Clone(n.Attrs["shape"].Shape)
	if len(sh) != 4 {
		return nil, fmt.Errorf("input shape %v, want [N, H, W, C]", sh)
	}
	for i, d := range sh[1:] {
		if d <= 0 {
			return nil, fmt.Errorf("input dimension %d is %d; height, width and channels must be known", i+1, d)
		}
	}
	sh[0] = -1
	v := &value{name: c.o.InputName, lay: nhwc, shape: sh}
	phys := sh
	if c.o.NCHW {
		v.lay = nchw
		phys = []int64{-1, sh[3], sh[1], sh[2]}
	}
	c.input = &onnx.ValueInfo{Name: c.o.InputName, Type: onnx.Float, Dims: dims(phys)}
	if !c.o.Normalized {
		return v, nil
	}
	if sh[3] != 3 {
		return nil, fmt.Errorf("normalisation needs 3 channels, the input has %d", sh[3])
	}
	cdims := []int64{3} // broadcast over the last axis: NHWC
	if v.lay == nchw {
		cdims = []int64{3, 1, 1}
	}
	std := c.init(onnx.FloatTensor("denormalize/std", cdims, c.o.Std[:]))
	mean := c.init(onnx.FloatTensor("denormalize/mean", cdims, c.o.Mean[:]))
	c.add(onnx.Node{Name: "denormalize/mul", OpType: "Mul", Inputs: []string{v.name, std}, Outputs: []string{"denormalize/mul"}})
	c.add(onnx.Node{Name: "denormalize/add", OpType: "Add", Inputs: []string{"denormalize/mul", mean}, Outputs: []string{"denormalize"}})
	return &value{name: "denormalize", lay: v.lay, shape: sh}, nil
}

// transpose returns v in layout to (rank 4 only), reusing an earlier
// NHWC→NCHW transpose of the same tensor.
func (c *converter) transpose(v *value, to layout) *value {
	if v.lay == to {
		return v
	}
	if to == nchw && v.nchw != "" {
		return &value{name: v.nchw, lay: nchw, shape: v.shape}
	}
	perm := []int64{0, 3, 1, 2} // NHWC → NCHW
	suffix := "/nchw"
	if to == nhwc {
		perm = []int64{0, 2, 3, 1}
		suffix = "/nhwc"
	}
	name := v.name + suffix
	c.add(onnx.Node{Name: name, OpType: "Transpose", Inputs: []string{v.name}, Outputs: []string{name},
		Attrs: []onnx.Attr{onnx.AttrIs("perm", perm...)}})
	if to == nchw {
		v.nchw = name
	}
	return &value{name: name, lay: to, shape: v.shape}
}

var binaryOps = map[string]string{"Mul": "Mul", "Sub": "Sub", "Add": "Add", "AddV2": "Add"}

// binary converts an elementwise op. A constant operand must be a scalar,
// or a vector over the channels of a 4-D activation.
func (c *converter) binary(n *Node, a, b *value) (*value, error) {
	op := binaryOps[n.Op]
	switch {
	case a.weight != nil && b.weight != nil:
		return nil, fmt.Errorf("two constant inputs (fold them first)")
	case a.weight != nil || b.weight != nil:
		x, k := a, b
		if a.weight != nil {
			x, k = b, a
		}
		kname, err := c.constOperand(k, x)
		if err != nil {
			return nil, err
		}
		ins := []string{x.name, kname}
		if a.weight != nil {
			ins = []string{kname, x.name}
		}
		c.add(onnx.Node{Name: n.Name, OpType: op, Inputs: ins, Outputs: []string{n.Name}})
		return &value{name: n.Name, lay: x.lay, shape: x.shape}, nil
	default:
		if !slices.Equal(a.shape, b.shape) {
			return nil, fmt.Errorf("shapes %v and %v; only equal shapes are supported", a.shape, b.shape)
		}
		if a.lay != b.lay {
			a, b = c.transpose(a, nchw), c.transpose(b, nchw)
		}
		c.add(onnx.Node{Name: n.Name, OpType: op, Inputs: []string{a.name, b.name}, Outputs: []string{n.Name}})
		return &value{name: n.Name, lay: a.lay, shape: a.shape}, nil
	}
}

// constOperand adds constant k as an initializer broadcastable against x.
func (c *converter) constOperand(k, x *value) (string, error) {
	w := k.weight
	switch {
	case w.Len() == 1:
		return c.scalar(k.name, w.Float[0]), nil
	case len(w.Shape) == 1 && len(x.shape) > 0 && int64(w.Shape[0]) == x.shape[len(x.shape)-1]:
		if x.lay == nchw {
			return c.init(onnx.FloatTensor(k.name+"/c11", []int64{int64(w.Shape[0]), 1, 1}, w.Float)), nil
		}
		return c.init(onnx.FloatTensor(k.name, []int64{int64(w.Shape[0])}, w.Float)), nil
	}
	return "", fmt.Errorf("constant of shape %v against %v; only scalars and per-channel vectors are supported", w.Shape, x.shape)
}

func (c *converter) biasAdd(node, out string, x, b *value) (*value, error) {
	if x.weight != nil || b.weight == nil || len(b.weight.Shape) != 1 {
		return nil, fmt.Errorf("bias must be a constant vector")
	}
	bn, err := c.constOperand(b, x)
	if err != nil {
		return nil, err
	}
	c.add(onnx.Node{Name: node, OpType: "Add", Inputs: []string{x.name, bn}, Outputs: []string{out}})
	return &value{name: out, lay: x.lay, shape: x.shape}, nil
}

// activation applies Relu or Relu6 (Clip to [0, 6]).
func (c *converter) activation(node, out, kind string, x *value) (*value, error) {
	switch kind {
	case "Relu":
		c.add(onnx.Node{Name: node, OpType: "Relu", Inputs: []string{x.name}, Outputs: []string{out}})
	case "Relu6":
		lo, hi := c.scalar("const/zero", 0), c.scalar("const/six", 6)
		c.add(onnx.Node{Name: node, OpType: "Clip", Inputs: []string{x.name, lo, hi}, Outputs: []string{out}})
	default:
		return nil, fmt.Errorf("fused activation %s not supported (Relu and Relu6 are)", kind)
	}
	return &value{name: out, lay: x.lay, shape: x.shape}, nil
}

// spatial reads the strides, dilations and padding of a conv or pool and
// returns the output size and ONNX pads [top, left, bottom, right].
func spatial(n *Node, h, w, kh, kw int64) (oh, ow int64, strides, dil, pads []int64, err error) {
	s := n.Attrs["strides"].Ints
	if len(s) == 0 {
		s = []int64{1, 1, 1, 1}
	}
	d := n.Attrs["dilations"].Ints
	if len(d) == 0 {
		d = []int64{1, 1, 1, 1}
	}
	if df := n.Attrs["data_format"].S; df != "" && df != "NHWC" {
		return 0, 0, nil, nil, nil, fmt.Errorf("data_format %s not supported (NHWC is)", df)
	}
	if len(s) != 4 || len(d) != 4 || s[0] != 1 || s[3] != 1 || d[0] != 1 || d[3] != 1 {
		return 0, 0, nil, nil, nil, fmt.Errorf("strides %v, dilations %v: want [1, h, w, 1]", s, d)
	}
	if s[1] < 1 || s[2] < 1 || d[1] < 1 || d[2] < 1 {
		return 0, 0, nil, nil, nil, fmt.Errorf("strides %v, dilations %v: want ≥ 1", s, d)
	}
	var ph, pw [2]int64
	switch p := n.Attrs["padding"].S; p {
	case "SAME":
		oh, ph = samePad(h, kh, s[1], d[1])
		ow, pw = samePad(w, kw, s[2], d[2])
	case "VALID":
		oh = (h-(kh-1)*d[1]-1)/s[1] + 1
		ow = (w-(kw-1)*d[2]-1)/s[2] + 1
	default:
		return 0, 0, nil, nil, nil, fmt.Errorf("padding %q not supported (SAME and VALID are)", p)
	}
	if oh < 1 || ow < 1 {
		return 0, 0, nil, nil, nil, fmt.Errorf("window %dx%d does not fit input %dx%d", kh, kw, h, w)
	}
	return oh, ow, []int64{s[1], s[2]}, []int64{d[1], d[2]}, []int64{ph[0], pw[0], ph[1], pw[1]}, nil
}

// samePad is TensorFlow's SAME padding along one axis: the output size
// ceil(in/stride) and the padding before and after, the odd pixel after.
func samePad(in, k, stride, dil int64) (out int64, pad [2]int64) {
	out = (in + stride - 1) / stride
	eff := (k-1)*dil + 1
	total := max((out-1)*stride+eff-in, 0)
	return out, [2]int64{total / 2, total - total/2}
}

// conv converts Conv2D and DepthwiseConv2dNative, fused (with BiasAdd and
// an activation) or not. TF keeps conv filters as [kh, kw, in, out] and
// depthwise filters as [kh, kw, C, mult]; ONNX wants [out, in/group, kh,
// kw], depthwise being a grouped conv with group = C and output channel
// c·mult + m.
func (c *converter) conv(n *Node, in []*value) (*value, error) {
	fused := strings.HasPrefix(n.Op, "_Fused") || strings.HasPrefix(n.Op, "Fused")
	depthwise := strings.Contains(n.Op, "Depthwise")
	var ops []string
	if fused {
		ops = n.Attrs["fused_ops"].Strings
		if len(ops) == 0 || ops[0] != "BiasAdd" || len(ops) > 2 {
			return nil, fmt.Errorf("fused ops %v not supported (BiasAdd, then optionally Relu or Relu6)", ops)
		}
		if a, ok := n.Attrs["num_args"]; ok && a.I != 1 {
			return nil, fmt.Errorf("num_args %d, want 1 (a bias)", a.I)
		}
		if err := nargs(in, 3); err != nil {
			return nil, err
		}
	} else if err := nargs(in, 2); err != nil {
		return nil, err
	}
	x, f := in[0], in[1]
	if x.weight != nil || f.weight == nil || len(f.weight.Shape) != 4 || len(x.shape) != 4 {
		return nil, fmt.Errorf("want a 4-D activation and a constant 4-D filter")
	}
	fs := f.weight.Shape
	kh, kw, ci, co := int64(fs[0]), int64(fs[1]), int64(fs[2]), int64(fs[3])
	if ci != x.shape[3] {
		return nil, fmt.Errorf("filter %v for %d input channels", fs, x.shape[3])
	}
	oh, ow, strides, dil, pads, err := spatial(n, x.shape[1], x.shape[2], kh, kw)
	if err != nil {
		return nil, err
	}
	group := int64(1)
	var wname string
	outC := co
	if depthwise {
		group, outC = ci, ci*co
		wname = c.init(onnx.FloatTensor(f.name+"/depthwise_oihw", []int64{outC, 1, kh, kw}, depthwiseToOIHW(f.weight.Float, fs)))
	} else {
		wname = c.init(onnx.FloatTensor(f.name+"/oihw", []int64{co, ci, kh, kw}, hwioToOIHW(f.weight.Float, fs)))
	}
	x = c.transpose(x, nchw)
	inputs := []string{x.name, wname}
	if fused {
		b := in[2]
		if b.weight == nil || len(b.weight.Shape) != 1 || int64(b.weight.Shape[0]) != outC {
			return nil, fmt.Errorf("bias of shape %v for %d channels", b.shape, outC)
		}
		inputs = append(inputs, c.init(onnx.FloatTensor(b.name, []int64{outC}, b.weight.Float)))
	}
	out := n.Name
	if len(ops) == 2 {
		out = n.Name + "/conv"
	}
	c.add(onnx.Node{Name: n.Name, OpType: "Conv", Inputs: inputs, Outputs: []string{out}, Attrs: []onnx.Attr{
		onnx.AttrIs("dilations", dil...),
		onnx.AttrI("group", group),
		onnx.AttrIs("kernel_shape", kh, kw),
		onnx.AttrIs("pads", pads...),
		onnx.AttrIs("strides", strides...),
	}})
	v := &value{name: out, lay: nchw, shape: []int64{-1, oh, ow, outC}}
	if len(ops) == 2 {
		return c.activation(n.Name+"/"+strings.ToLower(ops[1]), n.Name, ops[1], v)
	}
	return v, nil
}

// hwioToOIHW reorders a TF conv filter [kh, kw, in, out] for ONNX.
func hwioToOIHW(w []float32, s []int) []float32 {
	kh, kw, ci, co := s[0], s[1], s[2], s[3]
	out := make([]float32, len(w))
	for y := range kh {
		for x := range kw {
			for i := range ci {
				for o := range co {
					out[((o*ci+i)*kh+y)*kw+x] = w[((y*kw+x)*ci+i)*co+o]
				}
			}
		}
	}
	return out
}

// depthwiseToOIHW reorders a TF depthwise filter [kh, kw, C, mult] into
// ONNX's [C·mult, 1, kh, kw].
func depthwiseToOIHW(w []float32, s []int) []float32 {
	kh, kw, ch, mult := s[0], s[1], s[2], s[3]
	out := make([]float32, len(w))
	for y := range kh {
		for x := range kw {
			for c := range ch {
				for m := range mult {
					out[((c*mult+m)*kh+y)*kw+x] = w[((y*kw+x)*ch+c)*mult+m]
				}
			}
		}
	}
	return out
}

func (c *converter) pool(n *Node, x *value) (*value, error) {
	k := n.Attrs["ksize"].Ints
	if x.weight != nil || len(x.shape) != 4 || len(k) != 4 || k[0] != 1 || k[3] != 1 {
		return nil, fmt.Errorf("ksize %v on %v: want [1, h, w, 1] on a 4-D activation", k, x.shape)
	}
	oh, ow, strides, dil, pads, err := spatial(n, x.shape[1], x.shape[2], k[1], k[2])
	if err != nil {
		return nil, err
	}
	if dil[0] != 1 || dil[1] != 1 {
		return nil, fmt.Errorf("dilated pooling not supported")
	}
	op := "AveragePool" // TF excludes padding from the average, as ONNX's count_include_pad = 0
	if n.Op == "MaxPool" {
		op = "MaxPool"
	}
	x = c.transpose(x, nchw)
	c.add(onnx.Node{Name: n.Name, OpType: op, Inputs: []string{x.name}, Outputs: []string{n.Name}, Attrs: []onnx.Attr{
		onnx.AttrIs("kernel_shape", k[1], k[2]),
		onnx.AttrIs("pads", pads...),
		onnx.AttrIs("strides", strides...),
	}})
	return &value{name: n.Name, lay: nchw, shape: []int64{-1, oh, ow, x.shape[3]}}, nil
}

// squeeze removes TF axes of size 1. Squeezing both spatial axes of an
// NCHW activation gives [N, C] in either order; anything else is done in
// NHWC.
func (c *converter) squeeze(n *Node, x *value) (*value, error) {
	axes := slices.Clone(n.Attrs["squeeze_dims"].Ints)
	if x.weight != nil || len(axes) == 0 {
		return nil, fmt.Errorf("only a squeeze of an activation on given axes is supported")
	}
	r := int64(len(x.shape))
	for i, a := range axes {
		if a < 0 {
			a += r
		}
		if a <= 0 || a >= r || x.shape[a] != 1 {
			return nil, fmt.Errorf("squeeze axis %d of shape %v", axes[i], x.shape)
		}
		axes[i] = a
	}
	slices.Sort(axes)
	axes = slices.Compact(axes)
	phys := axes
	if x.lay == nchw {
		if slices.Equal(axes, []int64{1, 2}) {
			phys = []int64{2, 3}
		} else {
			x = c.transpose(x, nhwc)
		}
	}
	an := c.init(onnx.Int64Tensor(n.Name+"/axes", []int64{int64(len(phys))}, phys))
	c.add(onnx.Node{Name: n.Name, OpType: "Squeeze", Inputs: []string{x.name, an}, Outputs: []string{n.Name}})
	var sh []int64
	for i, d := range x.shape {
		if !slices.Contains(axes, int64(i)) {
			sh = append(sh, d)
		}
	}
	lay := x.lay
	if len(sh) != 4 {
		lay = flat
	}
	return &value{name: n.Name, lay: lay, shape: sh}, nil
}

// matmul converts _FusedMatMul (MatMul + BiasAdd) of an [N, K] activation
// and a constant into Gemm.
func (c *converter) matmul(n *Node, in []*value) (*value, error) {
	if ops := n.Attrs["fused_ops"].Strings; !slices.Equal(ops, []string{"BiasAdd"}) {
		return nil, fmt.Errorf("fused ops %v not supported (BiasAdd is)", ops)
	}
	if err := nargs(in, 3); err != nil {
		return nil, err
	}
	a, b, bias := in[0], in[1], in[2]
	if a.weight != nil || len(a.shape) != 2 || b.weight == nil || len(b.weight.Shape) != 2 || n.Attrs["transpose_a"].B {
		return nil, fmt.Errorf("want an [N, K] activation times a constant matrix")
	}
	k, m := int64(b.weight.Shape[0]), int64(b.weight.Shape[1])
	transB := int64(0)
	if n.Attrs["transpose_b"].B {
		k, m, transB = m, k, 1
	}
	if k != a.shape[1] || bias.weight == nil || bias.weight.Len() != int(m) {
		return nil, fmt.Errorf("shapes %v × %v + %v do not match", a.shape, b.weight.Shape, bias.shape)
	}
	bn := c.init(onnx.FloatTensor(b.name, []int64{int64(b.weight.Shape[0]), int64(b.weight.Shape[1])}, b.weight.Float))
	cn := c.init(onnx.FloatTensor(bias.name, []int64{m}, bias.weight.Float))
	c.add(onnx.Node{Name: n.Name, OpType: "Gemm", Inputs: []string{a.name, bn, cn}, Outputs: []string{n.Name},
		Attrs: []onnx.Attr{onnx.AttrI("transB", transB)}})
	return &value{name: n.Name, shape: []int64{a.shape[0], m}}, nil
}
