package tfjs

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"

	"lookalike/embed/onnx"
)

func TestLiteral(t *testing.T) {
	src := `!function(t){}({1:[function(t,e,a){e.exports={a:1,b:.5,c:-.25,"d":"x\"y\u0041",e:[1,2,],f:!0,g:!1,h:null,i:1e-3,'j':'k',n:{m:[]}}},{}]})`
	v, err := exportedLiteral([]byte(src), "test")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"a": 1.0, "b": 0.5, "c": -0.25, "d": `x"yA`, "e": []any{1.0, 2.0}, "f": true, "g": false,
		"h": nil, "i": 0.001, "j": "k", "n": map[string]any{"m": []any{}}}
	if !reflect.DeepEqual(v, want) {
		t.Fatalf("got %#v\nwant %#v", v, want)
	}
	for _, bad := range []string{
		`e.exports={a:"unterminated}`,
		`e.exports={a:}`,
		`e.exports={a:1 b:2}`,
		`e.exports={a:--1}`,
		`e.exports={a:!2}`,
		`e.exports={a:undefined}`,
		`module.exports=t()`,
		`e.exports=` + strings.Repeat("[", 100) + strings.Repeat("]", 100),
	} {
		if _, err := exportedLiteral([]byte(bad), "test"); !errors.Is(err, ErrFormat) {
			t.Errorf("%.40q: %v, want ErrFormat", bad, err)
		}
	}
}

func TestSamePad(t *testing.T) {
	for _, tc := range []struct {
		in, k, s, d, out, before, after int64
	}{
		{224, 3, 2, 1, 112, 0, 1}, // TF puts the odd pixel after
		{112, 3, 1, 1, 112, 1, 1},
		{7, 1, 1, 1, 7, 0, 0},
		{5, 3, 2, 1, 3, 1, 1},
		{8, 3, 1, 2, 8, 2, 2}, // dilated: effective kernel 5
		{4, 7, 1, 1, 4, 3, 3},
	} {
		out, pad := samePad(tc.in, tc.k, tc.s, tc.d)
		if out != tc.out || pad != [2]int64{tc.before, tc.after} {
			t.Errorf("samePad(%d, k%d, s%d, d%d) = %d, %v; want %d, [%d %d]", tc.in, tc.k, tc.s, tc.d, out, pad, tc.out, tc.before, tc.after)
		}
	}
}

func TestFilterLayouts(t *testing.T) {
	// Value = its TF index, so each output position names its source.
	s := []int{2, 3, 4, 5} // kh, kw, in (or C), out (or mult)
	w := make([]float32, 2*3*4*5)
	for i := range w {
		w[i] = float32(i)
	}
	tfIndex := func(y, x, i, o int) float32 { return float32(((y*3+x)*4+i)*5 + o) }
	conv := hwioToOIHW(w, s)
	dw := depthwiseToOIHW(w, s)
	for y := range 2 {
		for x := range 3 {
			for i := range 4 {
				for o := range 5 {
					if got := conv[((o*4+i)*2+y)*3+x]; got != tfIndex(y, x, i, o) {
						t.Fatalf("conv [%d %d %d %d] = %v", o, i, y, x, got)
					}
					// depthwise: channel i, multiplier o → output channel i·5 + o
					if got := dw[((i*5+o)*2+y)*3+x]; got != tfIndex(y, x, i, o) {
						t.Fatalf("depthwise [%d %d %d] = %v", i*5+o, y, x, got)
					}
				}
			}
		}
	}
}

// weight is a uint8-quantized weight of a synthetic model.
type weight struct {
	name  string
	shape []int
	q     []byte // quantized values; value = q·scale + min
}

func (w weight) n() int {
	n := 1
	for _, d := range w.shape {
		n *= d
	}
	return n
}

// synthetic returns the model.min.js and shard module of a small graph in
// nsfwjs's form, using every op the nsfwjs graph uses.
func synthetic() (model, shard []byte) {
	const scale, min = 0.5, -1.0
	ws := []weight{
		{"mul_y", nil, []byte{6}}, // 2
		{"sub_y", nil, []byte{4}}, // 1
		{"conv_w", []int{3, 3, 2, 4}, nil},
		{"conv_b", []int{4}, nil},
		{"dw_w", []int{3, 3, 4, 1}, nil},
		{"dw_b", []int{4}, nil},
		{"fc_w", []int{4, 3}, nil},
		{"fc_b", []int{3}, nil},
	}
	var data []byte
	var specs []string
	for i, w := range ws {
		if w.q == nil {
			for j := range w.n() {
				w.q = append(w.q, byte((i*7+j*3)%9))
			}
		}
		data = append(data, w.q...)
		sh := make([]string, len(w.shape))
		for j, d := range w.shape {
			sh[j] = fmt.Sprint(d)
		}
		specs = append(specs, fmt.Sprintf(`{name:%q,shape:[%s],dtype:"float32",quantization:{min:%v,scale:%v,dtype:"uint8"}}`,
			w.name, strings.Join(sh, ","), min, scale))
	}
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	ints := func(v ...int) string {
		s := make([]string, len(v))
		for i, x := range v {
			s[i] = fmt.Sprintf("%q", fmt.Sprint(x))
		}
		return "[" + strings.Join(s, ",") + "]"
	}
	node := func(name, op string, in []string, attr string) string {
		q := make([]string, len(in))
		for i, s := range in {
			q[i] = fmt.Sprintf("%q", s)
		}
		return fmt.Sprintf(`{name:%q,op:%q,input:[%s],attr:{%s}}`, name, op, strings.Join(q, ","), attr)
	}
	convAttr := func(stride int) string {
		return fmt.Sprintf(`strides:{list:{i:%s}},padding:{s:%q},data_format:{s:%q},dilations:{list:{i:%s}},num_args:{i:"1"},fused_ops:{list:{s:[%q,%q]}}`,
			ints(1, stride, stride, 1), b64("SAME"), b64("NHWC"), ints(1, 1, 1, 1), b64("BiasAdd"), b64("Relu6"))
	}
	nodes := []string{
		node("input", "Placeholder", nil, `shape:{shape:{dim:[{size:"-1"},{size:"4"},{size:"4"},{size:"2"}]}},dtype:{type:"DT_FLOAT"}`),
	}
	for _, w := range ws {
		nodes = append(nodes, node(w.name, "Const", nil, `dtype:{type:"DT_FLOAT"}`))
	}
	nodes = append(nodes,
		node("mul", "Mul", []string{"mul_y", "input"}, ""),
		node("sub", "Sub", []string{"mul", "sub_y"}, ""),
		node("conv", "_FusedConv2D", []string{"sub", "conv_w", "conv_b"}, convAttr(2)),
		node("dw", "FusedDepthwiseConv2dNative", []string{"conv", "dw_w", "dw_b", "^conv"}, convAttr(1)),
		node("add", "AddV2", []string{"conv", "dw:0"}, ""),
		node("pool", "AvgPool", []string{"add"}, fmt.Sprintf(`ksize:{list:{i:%s}},strides:{list:{i:%s}},padding:{s:%q}`, ints(1, 2, 2, 1), ints(1, 1, 1, 1), b64("VALID"))),
		node("squeeze", "Squeeze", []string{"pool"}, `squeeze_dims:{list:{i:["1","2"]}}`),
		node("fc", "_FusedMatMul", []string{"squeeze", "fc_w", "fc_b"}, fmt.Sprintf(`transpose_a:{b:!1},transpose_b:{b:false},fused_ops:{list:{s:[%q]}}`, b64("BiasAdd"))),
		node("softmax", "Softmax", []string{"fc"}, ""),
		node("Identity", "Identity", []string{"softmax"}, ""),
	)
	model = fmt.Appendf(nil, `!function(t){"object"==typeof exports&&(module.exports=t())}(function(){return function t(e,a,l){}({1:[function(t,e,a){e.exports={format:"graph-model",convertedBy:"test",modelTopology:{node:[%s]},weightsManifest:[{paths:["group1-shard1of1"],weights:[%s]}]}},{}]},{},[1])(1)});`,
		strings.Join(nodes, ","), strings.Join(specs, ","))
	shard = fmt.Appendf(nil, `!function(i){}(function(){return function Y(m,h,Z){}({1:[function(i,m,h){m.exports=%q},{}]},{},[1])(1)});`,
		base64.StdEncoding.EncodeToString(data))
	return model, shard
}

func loadSynthetic(t testing.TB) *Graph {
	model, shard := synthetic()
	g, err := Load(model, func(p string) ([]byte, error) {
		if p != "group1-shard1of1" {
			return nil, fmt.Errorf("no shard %s", p)
		}
		return ShardFromJS(shard)
	})
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func TestLoadSynthetic(t *testing.T) {
	g := loadSynthetic(t)
	if g.Format != "graph-model" || len(g.Nodes) != 19 || len(g.Weights) != 8 {
		t.Fatalf("format %q, %d nodes, %d weights", g.Format, len(g.Nodes), len(g.Weights))
	}
	if w := g.Weights["mul_y"]; w.Float[0] != 2 {
		t.Fatalf("mul_y dequantized to %v, want 6·0.5 − 1 = 2", w.Float)
	}
	if w := g.Weights["conv_w"]; len(w.Float) != 72 || w.Float[1] != float32(float64((2*7+3)%9)*0.5-1) {
		t.Fatalf("conv_w %v", w.Float[:2])
	}
	dw := g.Node("dw")
	if !slices.Equal(dw.Inputs, []string{"conv", "dw_w", "dw_b"}) {
		t.Fatalf("dw inputs %q: the control input must go", dw.Inputs)
	}
	if a := dw.Attrs["padding"]; a.S != "SAME" {
		t.Fatalf("padding %q", a.S)
	}
	if a := dw.Attrs["fused_ops"]; !slices.Equal(a.Strings, []string{"BiasAdd", "Relu6"}) {
		t.Fatalf("fused_ops %q", a.Strings)
	}
	if a := g.Node("input").Attrs["shape"]; !slices.Equal(a.Shape, []int64{-1, 4, 4, 2}) {
		t.Fatalf("input shape %v", a.Shape)
	}
	if g.Node("add").Inputs[1] != "dw" {
		t.Fatal("the :0 suffix stayed")
	}
}

func opTypes(m *onnx.Model) []string {
	var ops []string
	for _, n := range m.Graph.Nodes {
		ops = append(ops, n.OpType)
	}
	return ops
}

func attr(n onnx.Node, name string) onnx.Attr {
	for _, a := range n.Attrs {
		if a.Name == name {
			return a
		}
	}
	return onnx.Attr{}
}

func TestConvertSynthetic(t *testing.T) {
	g := loadSynthetic(t)
	m, err := Convert(g, Options{Output: "Identity"})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"Mul", "Sub", "Transpose", "Conv", "Clip", "Conv", "Clip", "Add", "AveragePool", "Squeeze", "Gemm", "Softmax"}
	if got := opTypes(m); !slices.Equal(got, want) {
		t.Fatalf("ops %v\nwant %v", got, want)
	}
	conv := m.Graph.Nodes[3]
	if p := attr(conv, "pads").Ints; !slices.Equal(p, []int64{0, 0, 1, 1}) {
		t.Fatalf("stride-2 SAME pads %v, want [0 0 1 1]", p)
	}
	if gr := attr(m.Graph.Nodes[5], "group").I; gr != 4 {
		t.Fatalf("depthwise group %d", gr)
	}
	in, out := m.Graph.Inputs[0], m.Graph.Outputs[0]
	if in.Name != "input" || in.Dims[0].Param != "N" || in.Dims[3].Value != 2 {
		t.Fatalf("input %+v", in)
	}
	if out.Name != "features" || len(out.Dims) != 2 || out.Dims[1].Value != 3 {
		t.Fatalf("output %+v", out)
	}
	if last := m.Graph.Nodes[len(m.Graph.Nodes)-1]; last.Outputs[0] != "features" {
		t.Fatalf("last node writes %q", last.Outputs[0])
	}

	// The descriptor of an NCHW, normalised variant: no transpose, a
	// denormalising Mul and Add first.
	_, err = Convert(g, Options{Output: "squeeze", NCHW: true, Normalized: true,
		Mean: [3]float32{0.5, 0.5, 0.5}, Std: [3]float32{2, 2, 2}})
	if err == nil {
		t.Fatal("normalising a 2-channel input converted")
	}
	m2, err := Convert(g, Options{Output: "squeeze", NCHW: true, OutputName: "pooled"})
	if err != nil {
		t.Fatal(err)
	}
	want = []string{"Mul", "Sub", "Conv", "Clip", "Conv", "Clip", "Add", "AveragePool", "Squeeze"}
	if got := opTypes(m2); !slices.Equal(got, want) {
		t.Fatalf("NCHW ops %v\nwant %v", got, want)
	}
	if d := m2.Graph.Inputs[0].Dims; d[1].Value != 2 || d[2].Value != 4 {
		t.Fatalf("NCHW input dims %+v", d)
	}
	if o := m2.Graph.Outputs[0]; o.Name != "pooled" || o.Dims[1].Value != 4 {
		t.Fatalf("output %+v", o)
	}
}

func TestConvertDeterministic(t *testing.T) {
	var prev []byte
	for range 3 {
		m, err := Convert(loadSynthetic(t), Options{Output: "Identity"})
		if err != nil {
			t.Fatal(err)
		}
		b, err := m.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if prev != nil && !bytes.Equal(b, prev) {
			t.Fatal("two conversions differ")
		}
		prev = b
	}
}

func TestConvertErrors(t *testing.T) {
	g := loadSynthetic(t)
	for _, tc := range []struct {
		name, output, msg string
		edit              func(g *Graph)
	}{
		{"no such output", "nope", "not in the graph", nil},
		{"constant output", "mul_y", "does not depend on the input", nil},
		{"unsupported op", "Identity", "op Erf not supported", func(g *Graph) { g.Node("softmax").Op = "Erf" }},
		{"unsupported fused op", "Identity", "Elu not supported", func(g *Graph) {
			g.Node("conv").Attrs["fused_ops"] = Attr{Strings: []string{"BiasAdd", "Elu"}}
		}},
		{"unsupported padding", "Identity", "padding", func(g *Graph) {
			g.Node("pool").Attrs["padding"] = Attr{S: "EXPLICIT"}
		}},
		{"unknown spatial size", "Identity", "must be known", func(g *Graph) {
			g.Node("input").Attrs["shape"] = Attr{Shape: []int64{-1, -1, -1, 2}}
		}},
		{"cycle", "Identity", "cycle", func(g *Graph) { g.Node("mul").Inputs[1] = "add" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := g
			if tc.edit != nil {
				g = loadSynthetic(t)
				tc.edit(g)
			}
			_, err := Convert(g, Options{Output: tc.output})
			if err == nil || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("error %v, want one containing %q", err, tc.msg)
			}
		})
	}
}

func TestLoadErrors(t *testing.T) {
	model, shard := synthetic()
	data, err := ShardFromJS(shard)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		model []byte
		shard []byte
	}{
		{"short shard", model, data[:len(data)-1]},
		{"long shard", model, append(slices.Clone(data), 0)},
		{"not a model", []byte("hello"), data},
		{"JSON of another format", []byte(`{"format":"layers-model","modelTopology":{"node":[{"name":"a","op":"Const"}]}}`), data},
		{"no nodes", []byte(`{"format":"graph-model","modelTopology":{"node":[]}}`), data},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load(tc.model, func(string) ([]byte, error) { return tc.shard, nil })
			if !errors.Is(err, ErrFormat) {
				t.Fatalf("%v, want ErrFormat", err)
			}
		})
	}
	if _, err := ShardFromJS([]byte(`m.exports={a:1}`)); !errors.Is(err, ErrFormat) {
		t.Fatalf("an object shard: %v", err)
	}
	if _, err := ShardFromJS([]byte(`m.exports="not base64!"`)); !errors.Is(err, ErrFormat) {
		t.Fatalf("a bad base64 shard: %v", err)
	}
}

// FuzzLoad feeds arbitrary model and shard bytes to Load and whatever
// loads to Convert: errors are fine, panics are not.
func FuzzLoad(f *testing.F) {
	model, shard := synthetic()
	data, _ := ShardFromJS(shard)
	f.Add(model, data)
	f.Add([]byte(`{"format":"graph-model","modelTopology":{"node":[{"name":"input","op":"Placeholder"}]}}`), []byte{})
	f.Add([]byte(`e.exports={a:[{b:.5e3}]}`), []byte{1, 2})
	f.Fuzz(func(t *testing.T, model, shard []byte) {
		g, err := Load(model, func(string) ([]byte, error) { return shard, nil })
		if err != nil {
			return
		}
		for _, n := range g.Nodes {
			Convert(g, Options{Output: n.Name})
		}
	})
}
