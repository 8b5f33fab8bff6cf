package proto

import (
	"bytes"
	"encoding/gob"
	"math"
	"reflect"
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

// rpcValues are one value of every internal RPC type, for the seeds and
// the round trip.
func rpcValues() []any {
	it := RPCItem{UserID: "a", ID: 7, List: -1, Vector: PackVector([]float32{1, 2}), Meta: []byte(`{"x":1}`), Attachment: []byte{9}}
	return []any{
		&RPCWrite{Collection: "c", Epoch: 2, Version: 9, Items: []RPCItem{it}},
		&RPCWriteReply{IDs: []uint64{1, 2}},
		&RPCReplicate{Collection: "c", Version: 3, From: "n1", Stream: 5, Seq: 1, Items: []RPCItem{it}},
		&RPCSearch{Collection: "c", Epoch: 2, Vector: PackVector([]float32{1}), K: 10, Lists: []int32{3}, Dists: []float32{0.5}, Buffer: true},
		&RPCSearchReply{Hits: []RPCHit{{ID: 1, Dist: 0.1, UserID: "u", Meta: []byte("{}")}}},
		&RPCGet{Collection: "c", UserID: "u", WithVector: true},
		&RPCGetReply{Found: true, Item: it},
		&RPCDelete{Collection: "c", UserIDs: []string{"u"}, Keep: []uint64{4}},
		&RPCDeleteReply{Removed: 1},
		&RPCTrain{Collection: "c", NList: 8},
		&RPCTrainReply{Epoch: 3},
		&RPCCopy{Collection: "c", Begin: true, Lists: []int32{1, 2}, Items: []RPCItem{it}},
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
	f.Fuzz(func(t *testing.T, data []byte) {
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
