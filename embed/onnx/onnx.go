// Package onnx writes ONNX models: the few protobuf messages of onnx.proto
// that an inference graph needs (ModelProto, GraphProto, NodeProto,
// TensorProto, AttributeProto, ValueInfoProto), encoded with protowire.
//
// It writes and does not read: ONNX Runtime is the reader. The encoding is
// deterministic: fields go out in field-number order, repeated fields in
// slice order, tensors as little-endian raw_data, so the same Model gives
// the same bytes on every run and every machine. A model's identity in
// lookalike is the SHA-256 of those bytes.
//
// Field numbers follow onnx/onnx.proto (IR version 8 and later).
package onnx

import (
	"encoding/binary"
	"fmt"
	"math"

	"google.golang.org/protobuf/encoding/protowire"
)

// IRVersion is the ONNX IR version Marshal writes when Model.IRVersion is
// zero: 8, which ONNX Runtime 1.14 and later read.
const IRVersion = 8

// DataType is TensorProto.DataType.
type DataType int32

const (
	Float DataType = 1
	Uint8 DataType = 2
	Int32 DataType = 6
	Int64 DataType = 7
)

// AttrType is AttributeProto.AttributeType.
type AttrType int32

const (
	AttrFloat   AttrType = 1
	AttrInt     AttrType = 2
	AttrString  AttrType = 3
	AttrFloats  AttrType = 6
	AttrInts    AttrType = 7
	AttrStrings AttrType = 8
)

// Model is a ModelProto with one graph and the default operator set.
type Model struct {
	IRVersion       int64  // 0: IRVersion
	Opset           int64  // version of the default ("ai.onnx") operator set, e.g. 13
	ProducerName    string // "lookalike"
	ProducerVersion string
	DocString       string
	Metadata        []Entry // metadata_props, in order
	Graph           Graph
}

// Entry is a StringStringEntryProto.
type Entry struct{ Key, Value string }

// Graph is a GraphProto. Nodes must be in topological order.
type Graph struct {
	Name         string
	Nodes        []Node
	Initializers []Tensor
	Inputs       []ValueInfo
	Outputs      []ValueInfo
	DocString    string
}

// Node is a NodeProto of the default domain.
type Node struct {
	Name    string
	OpType  string
	Inputs  []string
	Outputs []string
	Attrs   []Attr
}

// Attr is an AttributeProto; Type says which value field is set.
type Attr struct {
	Name    string
	Type    AttrType
	F       float32
	I       int64
	S       []byte
	Floats  []float32
	Ints    []int64
	Strings [][]byte
}

// AttrI, AttrF, AttrS and AttrIs build attributes.
func AttrI(name string, v int64) Attr     { return Attr{Name: name, Type: AttrInt, I: v} }
func AttrF(name string, v float32) Attr   { return Attr{Name: name, Type: AttrFloat, F: v} }
func AttrS(name, v string) Attr           { return Attr{Name: name, Type: AttrString, S: []byte(v)} }
func AttrIs(name string, v ...int64) Attr { return Attr{Name: name, Type: AttrInts, Ints: v} }

// Tensor is a TensorProto holding Float data (written as raw_data) or
// Int64 data (also raw_data). Dims empty means a scalar.
type Tensor struct {
	Name  string
	Dims  []int64
	Type  DataType // Float or Int64
	Float []float32
	Int64 []int64
}

// FloatTensor and Int64Tensor build initializers.
func FloatTensor(name string, dims []int64, v []float32) Tensor {
	return Tensor{Name: name, Dims: dims, Type: Float, Float: v}
}
func Int64Tensor(name string, dims []int64, v []int64) Tensor {
	return Tensor{Name: name, Dims: dims, Type: Int64, Int64: v}
}

// ValueInfo is a ValueInfoProto of a tensor type. A Dim with Param set is
// symbolic (a dynamic batch: Param "N").
type ValueInfo struct {
	Name string
	Type DataType
	Dims []Dim
}

// Dim is one dimension of a ValueInfo: a fixed Value or a named Param.
type Dim struct {
	Value int64
	Param string
}

// Marshal encodes m. It reports an inconsistent tensor (data length not the
// product of its dims, or an unsupported type) instead of writing it.
func (m *Model) Marshal() ([]byte, error) {
	var b []byte
	ir := m.IRVersion
	if ir == 0 {
		ir = IRVersion
	}
	b = appendVarint(b, 1, uint64(ir))
	b = appendString(b, 2, m.ProducerName)
	b = appendString(b, 3, m.ProducerVersion)
	b = appendString(b, 6, m.DocString)
	g, err := m.Graph.marshal()
	if err != nil {
		return nil, err
	}
	b = appendBytes(b, 7, g)
	// opset_import: OperatorSetIdProto{domain = 1, version = 2}; the
	// default domain is the empty string.
	var op []byte
	op = appendVarint(op, 2, uint64(m.Opset))
	b = appendBytes(b, 8, op)
	for _, e := range m.Metadata {
		var kv []byte
		kv = appendString(kv, 1, e.Key)
		kv = appendString(kv, 2, e.Value)
		b = appendBytes(b, 14, kv)
	}
	return b, nil
}

func (g *Graph) marshal() ([]byte, error) {
	var b []byte
	for i := range g.Nodes {
		b = appendBytes(b, 1, g.Nodes[i].marshal())
	}
	b = appendString(b, 2, g.Name)
	for i := range g.Initializers {
		t, err := g.Initializers[i].marshal()
		if err != nil {
			return nil, err
		}
		b = appendBytes(b, 5, t)
	}
	b = appendString(b, 10, g.DocString)
	for i := range g.Inputs {
		b = appendBytes(b, 11, g.Inputs[i].marshal())
	}
	for i := range g.Outputs {
		b = appendBytes(b, 12, g.Outputs[i].marshal())
	}
	return b, nil
}

func (n *Node) marshal() []byte {
	var b []byte
	for _, s := range n.Inputs {
		b = appendBytesAlways(b, 1, []byte(s)) // "" is a meaningful absent input
	}
	for _, s := range n.Outputs {
		b = appendBytesAlways(b, 2, []byte(s))
	}
	b = appendString(b, 3, n.Name)
	b = appendString(b, 4, n.OpType)
	for i := range n.Attrs {
		b = appendBytes(b, 5, n.Attrs[i].marshal())
	}
	return b
}

func (a *Attr) marshal() []byte {
	var b []byte
	b = appendString(b, 1, a.Name)
	switch a.Type {
	case AttrFloat:
		b = protowire.AppendTag(b, 2, protowire.Fixed32Type)
		b = protowire.AppendFixed32(b, math.Float32bits(a.F))
	case AttrInt:
		b = protowire.AppendTag(b, 3, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(a.I))
	case AttrString:
		b = appendBytesAlways(b, 4, a.S)
	case AttrFloats:
		if len(a.Floats) > 0 {
			var p []byte
			for _, f := range a.Floats {
				p = protowire.AppendFixed32(p, math.Float32bits(f))
			}
			b = appendBytes(b, 7, p)
		}
	case AttrInts:
		if len(a.Ints) > 0 {
			var p []byte
			for _, v := range a.Ints {
				p = protowire.AppendVarint(p, uint64(v))
			}
			b = appendBytes(b, 8, p)
		}
	case AttrStrings:
		for _, s := range a.Strings {
			b = appendBytesAlways(b, 9, s)
		}
	}
	b = appendVarint(b, 20, uint64(a.Type))
	return b
}

func (t *Tensor) marshal() ([]byte, error) {
	n := int64(1)
	for _, d := range t.Dims {
		if d < 0 {
			return nil, fmt.Errorf("onnx: tensor %q: negative dimension %d", t.Name, d)
		}
		n *= d
	}
	var raw []byte
	switch t.Type {
	case Float:
		if int64(len(t.Float)) != n || len(t.Int64) != 0 {
			return nil, fmt.Errorf("onnx: tensor %q: %d floats for dims %v", t.Name, len(t.Float), t.Dims)
		}
		raw = make([]byte, 4*len(t.Float))
		for i, f := range t.Float {
			binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(f))
		}
	case Int64:
		if int64(len(t.Int64)) != n || len(t.Float) != 0 {
			return nil, fmt.Errorf("onnx: tensor %q: %d int64s for dims %v", t.Name, len(t.Int64), t.Dims)
		}
		raw = make([]byte, 8*len(t.Int64))
		for i, v := range t.Int64 {
			binary.LittleEndian.PutUint64(raw[8*i:], uint64(v))
		}
	default:
		return nil, fmt.Errorf("onnx: tensor %q: unsupported data type %d", t.Name, t.Type)
	}
	var b []byte
	if len(t.Dims) > 0 {
		var p []byte
		for _, d := range t.Dims {
			p = protowire.AppendVarint(p, uint64(d))
		}
		b = appendBytes(b, 1, p)
	}
	b = appendVarint(b, 2, uint64(t.Type))
	b = appendString(b, 8, t.Name)
	b = appendBytesAlways(b, 9, raw)
	return b, nil
}

func (v *ValueInfo) marshal() []byte {
	// TensorShapeProto{dim = 1: Dimension{dim_value = 1 | dim_param = 2}}
	var shape []byte
	for _, d := range v.Dims {
		var db []byte
		if d.Param != "" {
			db = appendString(db, 2, d.Param)
		} else {
			db = protowire.AppendTag(db, 1, protowire.VarintType)
			db = protowire.AppendVarint(db, uint64(d.Value))
		}
		shape = appendBytesAlways(shape, 1, db)
	}
	// TypeProto.Tensor{elem_type = 1, shape = 2}
	var tt []byte
	tt = appendVarint(tt, 1, uint64(v.Type))
	tt = appendBytesAlways(tt, 2, shape)
	// TypeProto{tensor_type = 1}
	var typ []byte
	typ = appendBytesAlways(typ, 1, tt)
	var b []byte
	b = appendString(b, 1, v.Name)
	b = appendBytesAlways(b, 2, typ)
	return b
}

// appendVarint writes a varint field unless it is zero (proto3 default).
func appendVarint(b []byte, num protowire.Number, v uint64) []byte {
	if v == 0 {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.VarintType)
	return protowire.AppendVarint(b, v)
}

// appendString writes a string field unless it is empty.
func appendString(b []byte, num protowire.Number, s string) []byte {
	if s == "" {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendString(b, s)
}

// appendBytes writes a length-delimited field unless it is empty.
func appendBytes(b []byte, num protowire.Number, v []byte) []byte {
	if len(v) == 0 {
		return b
	}
	return appendBytesAlways(b, num, v)
}

// appendBytesAlways writes a length-delimited field even when empty (an
// element of a repeated field, or a message whose presence matters).
func appendBytesAlways(b []byte, num protowire.Number, v []byte) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendBytes(b, v)
}
