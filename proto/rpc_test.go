package proto

import (
	"bytes"
	"encoding/gob"
	"math"
	"reflect"
	"slices"
	"strings"
	"testing"
)

func TestPackVectorRoundTrip(t *testing.T) {
	v := []float32{0, -1.5, float32(math.Inf(1)), 3.25e-30, math.MaxFloat32}
	got, err := UnpackVector(PackVector(v))
	if err != nil || !reflect.DeepEqual(got, v) {
		t.Fatalf("round trip: %v %v", got, err)
	}
	if _, err := UnpackVector([]byte{1, 2, 3}); err == nil {
		t.Fatal("3 bytes unpacked")
	}
}

func TestVectorViewAndUnpackVectors(t *testing.T) {
	vs := [][]float32{{0, -1.5, float32(math.Inf(1))}, {}, {3.25e-30, math.MaxFloat32}, {7}}
	var packed [][]byte
	for _, v := range vs {
		if got, want := VectorView(v), PackVector(v); !bytes.Equal(got, want) {
			t.Fatalf("VectorView(%v) = %x, PackVector %x", v, got, want)
		}
		packed = append(packed, VectorView(v))
	}
	got, err := UnpackVectors(packed)
	if err != nil {
		t.Fatal(err)
	}
	for i := range vs {
		if !slices.Equal(got[i], vs[i]) || cap(got[i]) != len(vs[i]) {
			t.Fatalf("vector %d: got %v (cap %d), want %v", i, got[i], cap(got[i]), vs[i])
		}
	}
	_ = append(got[0], 99) // capped: cannot run into the next vector
	if got[2][0] != vs[2][0] {
		t.Fatal("an append to one vector wrote into the next")
	}
	if _, err := UnpackVectors([][]byte{{1, 2, 3, 4}, {1, 2, 3}}); err == nil || !strings.Contains(err.Error(), "vector 1") {
		t.Fatalf("a 3-byte vector: %v", err)
	}
}

// rpcValues are one value of every internal RPC type, for the seeds and
// the round trip.
func rpcValues() []any {
	it := RPCItem{UserID: "a", ID: 7, List: -1, Vector: PackVector([]float32{1, 2}), Meta: []byte(`{"x":1}`), Attachment: []byte{9}}
	return []any{
		&RPCWrite{Collection: "c", Epoch: 2, Version: 9, Items: []RPCItem{it}},
		&RPCWriteReply{IDs: []uint64{1, 2}, Applied: []string{"n1", "n2"}},
		&RPCWrite{Collection: "c~ids", Items: []RPCItem{it}, Dir: DirAdd, Deadline: 1 << 60},
		&RPCWriteReply{IDs: []uint64{1, 2}, Applied: []string{"n1"}, Prior: [][]byte{nil, []byte("[[3,1]]")}},
		&RPCReplicate{Collection: "c", Version: 3, From: "n1", Stream: 5, Seq: 1, Items: []RPCItem{it}},
		&RPCSearch{Collection: "c", Epoch: 2, Vector: PackVector([]float32{1}), K: 10, Lists: []int32{3}, Dists: []float32{0.5}, Buffer: true},
		&RPCSearchReply{Hits: []RPCHit{{ID: 1, Dist: 0.1, UserID: "u", Meta: []byte("{}")}}},
		&RPCGet{Collection: "c", UserID: "u", WithVector: true},
		&RPCGetReply{Found: true, Item: it},
		&RPCGet{Collection: "c~ids~0", Epoch: 4, UserID: "u", WithAttachment: true, Version: 1 << 35},
		&RPCGetReply{},
		&RPCDelete{Collection: "c", UserIDs: []string{"u"}, Keep: []uint64{4}},
		&RPCDelete{Collection: "c", Epoch: 3, UserIDs: []string{"a", "b", "c", "d", "e", "f", "g", "h", "i"}, Keep: []uint64{1, 2, 3, 4, 5, 6, 7, 8, 9},
			Applied: []bool{true, false, false, true, false, false, false, false, true}},
		&RPCDelete{Collection: "c", Epoch: 3, UserIDs: []string{"u"}, Version: 1 << 33},
		&RPCDelete{Collection: "c", UserIDs: []string{"u", "v"}, Keep: []uint64{4, 5}, Applied: []bool{false, true}, Version: 17},
		&RPCDeleteReply{Removed: 1},
		&RPCTrain{Collection: "c", NList: 8},
		&RPCTrainReply{Epoch: 3},
		&RPCCopy{Collection: "c", Begin: true, Lists: []int32{1, 2}, Items: []RPCItem{it}},
		&RPCCopy{Collection: "c", Lists: []int32{1}, Offer: []uint64{7, 9, 1 << 40}},
		&RPCCopyReply{Held: 3, Missing: []uint64{9}},
		&RPCCount{Collection: "c", Lists: []int32{0}},
		&RPCCountReply{Count: 5},
		&RPCError{Code: "invalid", Message: "m"},
	}
}

func TestRPCGobRoundTrip(t *testing.T) {
	for _, v := range rpcValues() {
		var b bytes.Buffer
		if err := gob.NewEncoder(&b).Encode(v); err != nil {
			t.Fatal(err)
		}
		out := reflect.New(reflect.TypeOf(v).Elem()).Interface()
		if err := gob.NewDecoder(&b).Decode(out); err != nil {
			t.Fatalf("%T: %v", v, err)
		}
		if !reflect.DeepEqual(out, v) {
			t.Fatalf("%T: got %+v, want %+v", v, out, v)
		}
	}
}

// The binary layouts give back what they were given, nil and empty byte
// fields apart, and refuse a body cut short or with bytes left over.
func TestRPCBinaryRoundTrip(t *testing.T) {
	empty := RPCItem{UserID: "e", Vector: []byte{}, Meta: nil, Attachment: []byte{}}
	values := append(rpcValues(),
		&RPCWrite{Collection: "c", Items: []RPCItem{empty}},
		&RPCDelete{Collection: "c", Epoch: 1, UserIDs: []string{"a", "b"}},
		&RPCDelete{Collection: "c", UserIDs: []string{}, Keep: []uint64{}},
		&RPCWriteReply{IDs: []uint64{}, Applied: []string{}},
	)
	n := 0
	for _, v := range values {
		m, ok := v.(encodingBinary)
		if !ok {
			continue
		}
		n++
		b, err := m.MarshalBinary()
		if err != nil {
			t.Fatalf("%T: %v", v, err)
		}
		out := reflect.New(reflect.TypeOf(v).Elem()).Interface().(encodingBinary)
		if err := out.UnmarshalBinary(b); err != nil {
			t.Fatalf("%T: %v", v, err)
		}
		if !reflect.DeepEqual(out, v) {
			t.Fatalf("%T: got %+v, want %+v", v, out, v)
		}
		for cut := range len(b) {
			if err := out.UnmarshalBinary(b[:cut]); err == nil {
				t.Fatalf("%T: %d of %d bytes decoded", v, cut, len(b))
			}
		}
		if err := out.UnmarshalBinary(append(slices.Clone(b), 0)); err == nil {
			t.Fatalf("%T: a trailing byte decoded", v)
		}
	}
	if n < 9 {
		t.Fatalf("%d binary types, want 9", n)
	}
	if _, err := (&RPCGetReply{Item: RPCItem{UserID: "u"}}).MarshalBinary(); err == nil {
		t.Fatal("a get reply with an item and found false encoded")
	}
	if _, err := (&RPCGetReply{Found: true, Item: RPCItem{UserID: "u"}}).MarshalBinary(); err != nil {
		t.Fatal(err)
	}
	if _, err := (&RPCDelete{UserIDs: []string{"a"}, Keep: []uint64{1, 2}}).MarshalBinary(); err == nil {
		t.Fatal("a delete with more kept ids than user ids encoded")
	}
	if _, err := (&RPCDelete{UserIDs: []string{"a"}, Keep: []uint64{1}, Applied: []bool{true, true}}).MarshalBinary(); err == nil {
		t.Fatal("a delete with more applied flags than user ids encoded")
	}
}

// A callee decodes whatever a peer (or anyone holding the API key) sends:
// never a panic, whatever the bytes.
func FuzzRPCDecode(f *testing.F) {
	for _, v := range rpcValues() {
		var b bytes.Buffer
		if err := gob.NewEncoder(&b).Encode(v); err != nil {
			f.Fatal(err)
		}
		f.Add(b.Bytes())
	}
	for _, v := range rpcValues() {
		if m, ok := v.(encodingBinary); ok {
			b, _ := m.MarshalBinary()
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		// The binary layouts: what decodes encodes and decodes back equal.
		for _, v := range []encodingBinary{new(RPCSearch), new(RPCSearchReply), new(RPCWrite), new(RPCWriteReply),
			new(RPCReplicate), new(RPCDelete), new(RPCDeleteReply), new(RPCGet), new(RPCGetReply)} {
			if v.UnmarshalBinary(data) != nil {
				continue
			}
			b, err := v.MarshalBinary()
			if err != nil {
				continue // lists and distances of different lengths cannot come from a decode
			}
			// Compared as bytes: a NaN distance is not equal to itself.
			again := reflect.New(reflect.TypeOf(v).Elem()).Interface().(encodingBinary)
			err = again.UnmarshalBinary(b)
			var b2 []byte
			if err == nil {
				b2, err = again.MarshalBinary()
			}
			if err != nil || !bytes.Equal(b, b2) {
				t.Fatalf("%T: %x decoded to %+v, came back as %+v (%v)", v, data, v, again, err)
			}
		}
		for _, v := range rpcValues() {
			out := reflect.New(reflect.TypeOf(v).Elem()).Interface()
			if gob.NewDecoder(bytes.NewReader(data)).Decode(out) != nil {
				continue
			}
			switch m := out.(type) {
			case *RPCWrite:
				for _, it := range m.Items {
					_, _ = UnpackVector(it.Vector)
				}
			case *RPCSearch:
				_, _ = UnpackVector(m.Vector)
			}
		}
	})
}

type encodingBinary interface {
	MarshalBinary() ([]byte, error)
	UnmarshalBinary([]byte) error
}

func TestSearchBinaryRoundTrip(t *testing.T) {
	for _, v := range []encodingBinary{
		&RPCSearch{Collection: "c", Epoch: 9, Vector: PackVector([]float32{1, -2}), K: 10, Refine: 4, Lists: []int32{3, 7}, Dists: []float32{0.5, 1.5}, Buffer: true},
		&RPCSearch{},
		&RPCSearchReply{Hits: []RPCHit{{ID: 1, Dist: 0.25, UserID: "u", Meta: []byte(`{"a":1}`)}, {ID: 2, UserID: "v", Meta: []byte{}}}},
		&RPCSearchReply{},
	} {
		b, err := v.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		out := reflect.New(reflect.TypeOf(v).Elem()).Interface().(encodingBinary)
		if err := out.UnmarshalBinary(b); err != nil {
			t.Fatalf("%T: %v", v, err)
		}
		b2, _ := out.MarshalBinary()
		if !bytes.Equal(b, b2) {
			t.Fatalf("%T: %+v came back as %+v", v, v, out)
		}
		for cut := range len(b) {
			if err := out.UnmarshalBinary(b[:cut]); err == nil && cut < len(b) {
				// A prefix may decode only if it is itself a whole value.
				if c, _ := out.MarshalBinary(); !bytes.Equal(c, b[:cut]) {
					t.Fatalf("%T: prefix of %d bytes accepted", v, cut)
				}
			}
		}
	}
}
