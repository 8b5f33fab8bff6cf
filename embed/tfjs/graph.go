package tfjs

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// ErrFormat marks input that is not a TF.js graph model this package reads.
var ErrFormat = errors.New("tfjs: malformed model")

// Graph is a TF.js graph model: its nodes (a TensorFlow GraphDef, as the
// TF.js converter writes it) and its weights, dequantized.
type Graph struct {
	Format      string // "graph-model"
	ConvertedBy string // e.g. "TensorFlow.js Converter v1.7.4r1"
	Nodes       []*Node
	Weights     map[string]*Weight // by the name of the Const node they fill

	byName map[string]*Node
}

// Node is one GraphDef node.
type Node struct {
	Name   string
	Op     string
	Inputs []string // data inputs, ":0" suffixes and control inputs removed
	Attrs  map[string]Attr
}

// Attr is a GraphDef AttrValue; only the field its kind uses is set.
// Strings arrive base64-encoded in the JSON and are decoded here.
type Attr struct {
	S       string
	I       int64
	F       float64
	B       bool
	Type    string  // "DT_FLOAT"
	Shape   []int64 // -1 for an unknown dimension
	Ints    []int64 // list.i
	Strings []string
}

// Weight is a constant tensor. Float32 weights are dequantized as TF.js
// does: value = float32(q·scale + min), the product and sum in float64.
type Weight struct {
	Name  string
	Shape []int
	Float []float32 // dtype float32
	Int   []int32   // dtype int32
}

// Node returns the node called name, or nil.
func (g *Graph) Node(name string) *Node { return g.byName[name] }

// Len is the number of elements of w's shape.
func (w *Weight) Len() int {
	n := 1
	for _, d := range w.Shape {
		n *= d
	}
	return n
}

// Load reads a TF.js graph model: modelSrc is its model.json, either as
// JSON or as a JavaScript module exporting the same object (the form
// nsfwjs ships, model.min.js); shard returns the bytes of one path of the
// weights manifest (see ShardFromJS for shards shipped as modules).
func Load(modelSrc []byte, shard func(path string) ([]byte, error)) (*Graph, error) {
	var raw []byte
	if t := bytes.TrimSpace(modelSrc); len(t) > 0 && t[0] == '{' {
		raw = t
	} else {
		v, err := exportedLiteral(modelSrc, "model")
		if err != nil {
			return nil, err
		}
		if _, ok := v.(map[string]any); !ok {
			return nil, fmt.Errorf("tfjs: model module exports a %T, want an object: %w", v, ErrFormat)
		}
		if raw, err = json.Marshal(v); err != nil {
			return nil, fmt.Errorf("tfjs: model: %v: %w", err, ErrFormat)
		}
	}
	var mj modelJSON
	if err := json.Unmarshal(raw, &mj); err != nil {
		return nil, fmt.Errorf("tfjs: model JSON: %v: %w", err, ErrFormat)
	}
	if mj.Format != "" && mj.Format != "graph-model" {
		return nil, fmt.Errorf("tfjs: format %q, want graph-model: %w", mj.Format, ErrFormat)
	}
	g := &Graph{
		Format:      mj.Format,
		ConvertedBy: mj.ConvertedBy,
		Weights:     map[string]*Weight{},
		byName:      map[string]*Node{},
	}
	for _, nj := range mj.ModelTopology.Node {
		n, err := nj.node()
		if err != nil {
			return nil, err
		}
		if g.byName[n.Name] != nil {
			return nil, fmt.Errorf("tfjs: node %q appears twice: %w", n.Name, ErrFormat)
		}
		g.byName[n.Name] = n
		g.Nodes = append(g.Nodes, n)
	}
	if len(g.Nodes) == 0 {
		return nil, fmt.Errorf("tfjs: model has no nodes: %w", ErrFormat)
	}
	for gi, group := range mj.WeightsManifest {
		var buf []byte
		for _, p := range group.Paths {
			b, err := shard(p)
			if err != nil {
				return nil, fmt.Errorf("tfjs: weights %s: %w", p, err)
			}
			buf = append(buf, b...)
		}
		rest, err := g.decodeWeights(group.Weights, buf)
		if err != nil {
			return nil, err
		}
		if len(rest) != 0 {
			return nil, fmt.Errorf("tfjs: weight group %d: %d bytes left over: %w", gi, len(rest), ErrFormat)
		}
	}
	return g, nil
}

// ShardFromJS returns the bytes of a weight shard shipped as a JavaScript
// module exporting its base64 text (nsfwjs's group1-shard1of2.min.js).
func ShardFromJS(src []byte) ([]byte, error) {
	v, err := exportedLiteral(src, "weight shard")
	if err != nil {
		return nil, err
	}
	s, ok := v.(string)
	if !ok {
		return nil, fmt.Errorf("tfjs: weight shard module exports a %T, want a base64 string: %w", v, ErrFormat)
	}
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("tfjs: weight shard: %v: %w", err, ErrFormat)
	}
	return b, nil
}

func (g *Graph) decodeWeights(specs []weightSpec, buf []byte) ([]byte, error) {
	for _, ws := range specs {
		w := &Weight{Name: ws.Name}
		n := 1
		for _, d := range ws.Shape {
			if d < 0 || d > 1<<28 {
				return nil, fmt.Errorf("tfjs: weight %q: dimension %d: %w", ws.Name, d, ErrFormat)
			}
			w.Shape = append(w.Shape, d)
			n *= d
			if n > 1<<28 {
				return nil, fmt.Errorf("tfjs: weight %q: too large: %w", ws.Name, ErrFormat)
			}
		}
		q := ws.Quantization
		size := 4
		if q != nil {
			switch q.Dtype {
			case "uint8":
				size = 1
			case "uint16":
				size = 2
			default:
				return nil, fmt.Errorf("tfjs: weight %q: quantization %q not supported (uint8 and uint16 are)", ws.Name, q.Dtype)
			}
		}
		if len(buf) < n*size {
			return nil, fmt.Errorf("tfjs: weight %q needs %d bytes, %d left: %w", ws.Name, n*size, len(buf), ErrFormat)
		}
		b := buf[:n*size]
		buf = buf[n*size:]
		switch {
		case ws.Dtype == "float32" && q != nil:
			w.Float = make([]float32, n)
			for i := range w.Float {
				var v float64
				if size == 1 {
					v = float64(b[i])
				} else {
					v = float64(binary.LittleEndian.Uint16(b[2*i:]))
				}
				w.Float[i] = float32(v*q.Scale + q.Min)
			}
		case ws.Dtype == "float32":
			w.Float = make([]float32, n)
			for i := range w.Float {
				w.Float[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
			}
		case ws.Dtype == "int32" && q == nil:
			w.Int = make([]int32, n)
			for i := range w.Int {
				w.Int[i] = int32(binary.LittleEndian.Uint32(b[4*i:]))
			}
		default:
			return nil, fmt.Errorf("tfjs: weight %q: dtype %q not supported", ws.Name, ws.Dtype)
		}
		if g.Weights[ws.Name] != nil {
			return nil, fmt.Errorf("tfjs: weight %q appears twice: %w", ws.Name, ErrFormat)
		}
		g.Weights[ws.Name] = w
	}
	return buf, nil
}

// The JSON of model.json, as far as this package reads it.
type modelJSON struct {
	Format        string `json:"format"`
	ConvertedBy   string `json:"convertedBy"`
	ModelTopology struct {
		Node []nodeJSON `json:"node"`
	} `json:"modelTopology"`
	WeightsManifest []struct {
		Paths   []string     `json:"paths"`
		Weights []weightSpec `json:"weights"`
	} `json:"weightsManifest"`
}

type weightSpec struct {
	Name         string `json:"name"`
	Shape        []int  `json:"shape"`
	Dtype        string `json:"dtype"`
	Quantization *struct {
		Min   float64 `json:"min"`
		Scale float64 `json:"scale"`
		Dtype string  `json:"dtype"`
	} `json:"quantization"`
}

type nodeJSON struct {
	Name  string              `json:"name"`
	Op    string              `json:"op"`
	Input []string            `json:"input"`
	Attr  map[string]attrJSON `json:"attr"`
}

// jsonInt is an int64 that protobuf's JSON mapping may write as a string.
type jsonInt int64

func (j *jsonInt) UnmarshalJSON(b []byte) error {
	s := strings.Trim(string(b), `"`)
	if v, err := strconv.ParseInt(s, 10, 64); err == nil {
		*j = jsonInt(v)
		return nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f != math.Trunc(f) || math.Abs(f) > 1<<53 {
		return fmt.Errorf("not an integer: %s", b)
	}
	*j = jsonInt(f)
	return nil
}

type attrJSON struct {
	S     *string  `json:"s"`
	I     *jsonInt `json:"i"`
	F     *float64 `json:"f"`
	B     *bool    `json:"b"`
	Type  string   `json:"type"`
	Shape *struct {
		Dim []struct {
			Size jsonInt `json:"size"`
		} `json:"dim"`
	} `json:"shape"`
	List *struct {
		I []jsonInt `json:"i"`
		S []string  `json:"s"`
	} `json:"list"`
}

func (nj nodeJSON) node() (*Node, error) {
	if nj.Name == "" || nj.Op == "" {
		return nil, fmt.Errorf("tfjs: a node without name or op: %w", ErrFormat)
	}
	n := &Node{Name: nj.Name, Op: nj.Op, Attrs: map[string]Attr{}}
	for _, in := range nj.Input {
		if strings.HasPrefix(in, "^") {
			continue // control dependency: no data
		}
		in = strings.TrimSuffix(in, ":0")
		if i := strings.LastIndexByte(in, ':'); i >= 0 {
			if _, err := strconv.Atoi(in[i+1:]); err == nil {
				return nil, fmt.Errorf("tfjs: node %q reads output %s of a multi-output node; not supported", nj.Name, in)
			}
		}
		n.Inputs = append(n.Inputs, in)
	}
	for k, a := range nj.Attr {
		var v Attr
		if a.S != nil {
			s, err := base64.StdEncoding.DecodeString(*a.S)
			if err != nil {
				return nil, fmt.Errorf("tfjs: node %q attr %s: %v: %w", nj.Name, k, err, ErrFormat)
			}
			v.S = string(s)
		}
		if a.I != nil {
			v.I = int64(*a.I)
		}
		if a.F != nil {
			v.F = *a.F
		}
		if a.B != nil {
			v.B = *a.B
		}
		v.Type = a.Type
		if a.Shape != nil {
			v.Shape = []int64{}
			for _, d := range a.Shape.Dim {
				v.Shape = append(v.Shape, int64(d.Size))
			}
		}
		if a.List != nil {
			for _, i := range a.List.I {
				v.Ints = append(v.Ints, int64(i))
			}
			for _, s64 := range a.List.S {
				s, err := base64.StdEncoding.DecodeString(s64)
				if err != nil {
					return nil, fmt.Errorf("tfjs: node %q attr %s: %v: %w", nj.Name, k, err, ErrFormat)
				}
				v.Strings = append(v.Strings, string(s))
			}
		}
		n.Attrs[k] = v
	}
	return n, nil
}
