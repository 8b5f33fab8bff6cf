package onnx

import (
	"bytes"
	"encoding/binary"
	"math"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
)

// field is one decoded protobuf field.
type field struct {
	num protowire.Number
	typ protowire.Type
	v   uint64 // varint and fixed32 values
	b   []byte // length-delimited values
}

// parse decodes one message level, failing t on malformed input.
func parse(t *testing.T, b []byte) []field {
	t.Helper()
	var fs []field
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			t.Fatalf("bad tag: %v", protowire.ParseError(n))
		}
		b = b[n:]
		f := field{num: num, typ: typ}
		switch typ {
		case protowire.VarintType:
			f.v, n = protowire.ConsumeVarint(b)
		case protowire.Fixed32Type:
			var v uint32
			v, n = protowire.ConsumeFixed32(b)
			f.v = uint64(v)
		case protowire.BytesType:
			f.b, n = protowire.ConsumeBytes(b)
		default:
			t.Fatalf("unexpected wire type %d", typ)
		}
		if n < 0 {
			t.Fatalf("bad field %d: %v", num, protowire.ParseError(n))
		}
		b = b[n:]
		fs = append(fs, f)
	}
	return fs
}

func get(fs []field, num protowire.Number) []field {
	var out []field
	for _, f := range fs {
		if f.num == num {
			out = append(out, f)
		}
	}
	return out
}

func tiny() *Model {
	return &Model{
		Opset:        13,
		ProducerName: "lookalike",
		Metadata:     []Entry{{"k", "v"}},
		Graph: Graph{
			Name: "g",
			Nodes: []Node{{
				Name: "scale", OpType: "Mul",
				Inputs: []string{"x", "two"}, Outputs: []string{"y"},
			}, {
				Name: "pool", OpType: "AveragePool",
				Inputs: []string{"y"}, Outputs: []string{"z"},
				Attrs: []Attr{AttrIs("kernel_shape", 2, 2), AttrI("ceil_mode", 0), AttrF("alpha", 0.5), AttrS("auto_pad", "VALID")},
			}},
			Initializers: []Tensor{FloatTensor("two", nil, []float32{2}), Int64Tensor("axes", []int64{2}, []int64{-1, 3})},
			Inputs:       []ValueInfo{{Name: "x", Type: Float, Dims: []Dim{{Param: "N"}, {Value: 4}}}},
			Outputs:      []ValueInfo{{Name: "z", Type: Float, Dims: []Dim{{Param: "N"}, {Value: 4}}}},
		},
	}
}

func TestMarshalStructure(t *testing.T) {
	b, err := tiny().Marshal()
	if err != nil {
		t.Fatal(err)
	}
	m := parse(t, b)
	if ir := get(m, 1); len(ir) != 1 || ir[0].v != IRVersion {
		t.Fatalf("ir_version: %+v", ir)
	}
	if p := get(m, 2); len(p) != 1 || string(p[0].b) != "lookalike" {
		t.Fatalf("producer_name: %+v", p)
	}
	op := get(m, 8)
	if len(op) != 1 {
		t.Fatalf("opset_import: %d entries", len(op))
	}
	if v := get(parse(t, op[0].b), 2); len(v) != 1 || v[0].v != 13 {
		t.Fatalf("opset version: %+v", v)
	}
	md := get(m, 14)
	if len(md) != 1 || string(get(parse(t, md[0].b), 1)[0].b) != "k" {
		t.Fatalf("metadata_props: %+v", md)
	}
	g := parse(t, get(m, 7)[0].b)
	nodes := get(g, 1)
	if len(nodes) != 2 {
		t.Fatalf("%d nodes, want 2", len(nodes))
	}
	n0 := parse(t, nodes[0].b)
	if in := get(n0, 1); len(in) != 2 || string(in[0].b) != "x" || string(in[1].b) != "two" {
		t.Fatalf("node inputs: %+v", in)
	}
	if op := get(n0, 4); string(op[0].b) != "Mul" {
		t.Fatalf("op_type %q", op[0].b)
	}
	attrs := get(parse(t, nodes[1].b), 5)
	if len(attrs) != 4 {
		t.Fatalf("%d attributes, want 4", len(attrs))
	}
	ks := parse(t, attrs[0].b)
	if typ := get(ks, 20); typ[0].v != uint64(AttrInts) {
		t.Fatalf("kernel_shape type %d", typ[0].v)
	}
	packed := get(ks, 8)[0].b
	if !bytes.Equal(packed, []byte{2, 2}) {
		t.Fatalf("kernel_shape packed ints % x", packed)
	}
	// An int attribute of value 0 must still carry its i field's type.
	cm := parse(t, attrs[1].b)
	if typ := get(cm, 20); typ[0].v != uint64(AttrInt) {
		t.Fatalf("ceil_mode type %+v", typ)
	}
	if f := get(parse(t, attrs[2].b), 2); math.Float32frombits(uint32(f[0].v)) != 0.5 {
		t.Fatalf("alpha %+v", f)
	}
	inits := get(g, 5)
	if len(inits) != 2 {
		t.Fatalf("%d initializers", len(inits))
	}
	two := parse(t, inits[0].b)
	if len(get(two, 1)) != 0 {
		t.Fatal("a scalar has dims")
	}
	if raw := get(two, 9)[0].b; math.Float32frombits(binary.LittleEndian.Uint32(raw)) != 2 {
		t.Fatalf("raw_data % x", raw)
	}
	axes := parse(t, inits[1].b)
	if dt := get(axes, 2); dt[0].v != uint64(Int64) {
		t.Fatalf("axes data_type %d", dt[0].v)
	}
	if raw := get(axes, 9)[0].b; int64(binary.LittleEndian.Uint64(raw)) != -1 || len(raw) != 16 {
		t.Fatalf("axes raw_data % x", raw)
	}
	in := parse(t, get(g, 11)[0].b)
	typ := parse(t, get(in, 2)[0].b)
	tt := parse(t, get(typ, 1)[0].b)
	dims := get(parse(t, get(tt, 2)[0].b), 1)
	if len(dims) != 2 {
		t.Fatalf("%d input dims", len(dims))
	}
	if p := get(parse(t, dims[0].b), 2); string(p[0].b) != "N" {
		t.Fatalf("batch dim %+v", p)
	}
	if v := get(parse(t, dims[1].b), 1); v[0].v != 4 {
		t.Fatalf("second dim %+v", v)
	}
}

func TestMarshalDeterministic(t *testing.T) {
	a, err := tiny().Marshal()
	if err != nil {
		t.Fatal(err)
	}
	b, err := tiny().Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a, b) {
		t.Fatal("two marshals of the same model differ")
	}
}

func TestMarshalRejectsInconsistentTensor(t *testing.T) {
	for _, tc := range []Tensor{
		FloatTensor("w", []int64{2, 3}, make([]float32, 5)),
		Int64Tensor("a", []int64{1}, nil),
		{Name: "u", Type: Uint8},
		FloatTensor("neg", []int64{-1}, nil),
	} {
		m := tiny()
		m.Graph.Initializers = append(m.Graph.Initializers, tc)
		if _, err := m.Marshal(); err == nil {
			t.Errorf("tensor %q: no error", tc.Name)
		}
	}
}
