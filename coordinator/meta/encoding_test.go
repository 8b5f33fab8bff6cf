package meta_test

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"

	"lookalike/coordinator/meta"
	"lookalike/ivf"
)

// randomCommands returns a seeded mix of valid and invalid commands.
func randomCommands(seed uint64, n int) []meta.Command {
	r := rand.New(rand.NewPCG(seed, 1))
	blob := make([]byte, meta.MaxChunkSize+100)
	for i := range blob {
		blob[i] = byte(r.Uint32())
	}
	ref := meta.BlobRef{Hash: meta.HashOf(blob), Size: uint64(len(blob))}
	cmds := append([]meta.Command{
		meta.RegisterNode{ID: "n1", RaftAddr: "r1"},
		meta.RegisterNode{ID: "n2", RaftAddr: "r2", HTTPAddr: "h2"},
	}, blobChunks(blob)...)
	names := []string{"a", "b", "c"}
	epoch := map[string]uint64{}
	for len(cmds) < n {
		name := names[r.IntN(len(names))]
		e := epoch[name]
		if e == 0 || r.IntN(5) == 0 {
			e = uint64(r.IntN(4))
		}
		var c meta.Command
		switch r.IntN(11) {
		case 0:
			c = meta.CreateCollection{Name: name, Dim: r.IntN(8), Metric: ivf.Metric(1 + r.IntN(3)), NList: r.IntN(8), Shards: r.IntN(3)}
			epoch[name] = 1
		case 1:
			c = meta.DropCollection{Name: name}
		case 2:
			c = meta.AllocateIDs{Collection: name, N: uint64(r.IntN(1000))}
		case 3:
			c = meta.BeginTraining{Collection: name, Epoch: e}
		case 4:
			nl := 1 + r.IntN(4)
			c = meta.CommitTraining{Collection: name, Epoch: e, Centroids: ref, NList: nl, Shards: oneShard(nl, "n1")}
			epoch[name] = e + 1
		case 5:
			c = meta.AbortTraining{Collection: name, Epoch: e}
		case 6:
			c = meta.MoveLists{Collection: name, Epoch: e, Lists: []uint32{uint32(r.IntN(3))}, To: 0}
			epoch[name] = e + 1
		case 7:
			c = meta.GCBlobs{}
		case 8:
			c = meta.RetireBuffer{Collection: name, Epoch: e}
		case 10:
			c = meta.SetReplicas{Collection: name, Buffer: r.IntN(2) == 0, Replicas: []string{"n1"}, Primary: "n1", From: []string{"n1"}}
		case 9:
			c = meta.RegisterNode{ID: fmt.Sprintf("n%d", 1+r.IntN(3)), RaftAddr: "x", State: meta.NodeState(1 + r.IntN(2))}
		}
		cmds = append(cmds, c)
	}
	return cmds
}

func applyAll(cmds []meta.Command) *meta.Table {
	tb := meta.New()
	for _, c := range cmds {
		tb, _, _ = tb.Apply(c)
	}
	return tb
}

func TestApplyDeterministic(t *testing.T) {
	for seed := uint64(0); seed < 20; seed++ {
		cmds := randomCommands(seed, 200)
		// Replica 2 sees the commands as log entries: encoded and decoded.
		var logged []meta.Command
		for _, c := range cmds {
			d, err := meta.Decode(meta.Encode(c))
			if err != nil {
				t.Fatal(err)
			}
			logged = append(logged, d)
		}
		a, _ := applyAll(cmds).MarshalBinary()
		b, _ := applyAll(logged).MarshalBinary()
		if !bytes.Equal(a, b) {
			t.Fatalf("seed %d: replicas diverged", seed)
		}
	}
}

func TestTableRoundTrip(t *testing.T) {
	for seed := uint64(0); seed < 20; seed++ {
		tb := applyAll(randomCommands(seed, 150))
		enc, err := tb.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		got, err := meta.DecodeTable(bytes.NewReader(enc))
		if err != nil {
			t.Fatal(err)
		}
		enc2, _ := got.MarshalBinary()
		if !bytes.Equal(enc, enc2) || got.Version() != tb.Version() || got.NextID() != tb.NextID() {
			t.Fatalf("seed %d: round trip differs", seed)
		}
		if !reflect.DeepEqual(tb.Collections(), got.Collections()) || !reflect.DeepEqual(tb.Nodes(), got.Nodes()) {
			t.Fatalf("seed %d: decoded values differ", seed)
		}
		// Every truncation and a flipped byte are detected.
		for _, cut := range []int{0, 5, 10, 11, len(enc) / 2, len(enc) - 1} {
			if _, err := meta.DecodeTable(bytes.NewReader(enc[:cut])); !errors.Is(err, meta.ErrCorruptTable) {
				t.Fatalf("truncated at %d: %v", cut, err)
			}
		}
		bad := bytes.Clone(enc)
		bad[len(bad)/3] ^= 0x40
		if _, err := meta.DecodeTable(bytes.NewReader(bad)); !errors.Is(err, meta.ErrCorruptTable) {
			t.Fatalf("flipped byte: %v", err)
		}
	}
}

func TestCommandRoundTrip(t *testing.T) {
	for _, c := range randomCommands(3, 100) {
		enc := meta.Encode(c)
		if meta.CommandType(enc[0]) != c.Type() {
			t.Fatalf("%T: type byte %d", c, enc[0])
		}
		d, err := meta.Decode(enc)
		if err != nil {
			t.Fatalf("%T: %v", c, err)
		}
		if !bytes.Equal(meta.Encode(d), enc) {
			t.Fatalf("%T: re-encoding differs", c)
		}
	}
	// Pointers encode like values.
	if !bytes.Equal(meta.Encode(&meta.DropCollection{Name: "x"}), meta.Encode(meta.DropCollection{Name: "x"})) {
		t.Fatal("pointer encoding differs")
	}
	for _, bad := range [][]byte{nil, {2}, {200, 1, '{', '}'}, {2, 9, '{', '}'}, []byte("\x02\x01{\"name\":\"x\",\"zz\":1}"), []byte("\x03\x01{\"name\":\"x\"} {}"), {5, 1, 0}} {
		if _, err := meta.Decode(bad); err == nil {
			t.Fatalf("decoded %q", bad)
		}
	}
}

func FuzzDecode(f *testing.F) {
	for _, c := range randomCommands(1, 40) {
		e := meta.Encode(c)
		if len(e) > 4096 {
			e = e[:4096]
		}
		f.Add(e)
	}
	tb0, _ := base(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := meta.Decode(b)
		if err != nil {
			return
		}
		// A decoded command re-encodes to something that decodes the same.
		e := meta.Encode(c)
		d, err := meta.Decode(e)
		if err != nil {
			t.Fatalf("re-decode: %v", err)
		}
		if !bytes.Equal(meta.Encode(d), e) {
			t.Fatal("encoding is not a fixed point")
		}
		// Apply never panics on a decoded command.
		tb0.Apply(c)
	})
}

func FuzzDecodeTable(f *testing.F) {
	enc, _ := applyAll(randomCommands(2, 60)).MarshalBinary()
	f.Add(enc)
	f.Fuzz(func(t *testing.T, b []byte) {
		tb, err := meta.DecodeTable(bytes.NewReader(b))
		if err != nil {
			return
		}
		if _, err := tb.MarshalBinary(); err != nil {
			t.Fatal(err)
		}
	})
}

// TestCreateCollectionVersions: a collection with a model hash is body
// version 2; without one it stays version 1, which old entries are, and
// both decode. A version-1 body may not carry model_hash, and no other
// command has a version 2.
func TestCreateCollectionVersions(t *testing.T) {
	hash := strings.Repeat("0123456789abcdef", 4)
	img := meta.CreateCollection{Name: "img", Dim: 1792, Metric: ivf.Cosine, Model: "mobilenet_v2_mid", ModelHash: hash}
	b := meta.Encode(img)
	if b[1] != 2 {
		t.Fatalf("body version %d with a model hash, want 2", b[1])
	}
	got, err := meta.Decode(b)
	if err != nil || !reflect.DeepEqual(got, img) {
		t.Fatalf("decode v2: %+v, %v", got, err)
	}
	if v := meta.Encode(meta.CreateCollection{Name: "v", Dim: 4, Metric: ivf.L2}); v[1] != 1 {
		t.Fatalf("body version %d without a model hash, want 1", v[1])
	}
	// An entry written before model hashes existed.
	old := append([]byte{2, 1}, `{"name":"img","dim":1792,"metric":3,"nlist":0,"replicas":0,"model":"m","shards":0}`...)
	got, err = meta.Decode(old)
	want := meta.CreateCollection{Name: "img", Dim: 1792, Metric: ivf.Cosine, Model: "m"}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("decode an old v1 entry: %+v, %v", got, err)
	}
	for name, bad := range map[string][]byte{
		"v1 with model_hash":    append([]byte{2, 1}, `{"name":"img","dim":4,"metric":3,"nlist":0,"replicas":0,"model":"m","shards":0,"model_hash":"`+hash+`"}`...),
		"v2 without model_hash": append([]byte{2, 2}, `{"name":"img","dim":4,"metric":3,"nlist":0,"replicas":0,"model":"m","shards":0}`...),
		"v2 of another type":    append([]byte{3, 2}, `{"name":"img"}`...),
		"v2 with id_directory":  append([]byte{2, 2}, `{"name":"img","dim":4,"metric":3,"nlist":0,"replicas":0,"model":"m","shards":0,"model_hash":"`+hash+`","id_directory":true}`...),
		"v3 without it":         append([]byte{2, 3}, `{"name":"img","dim":4,"metric":3,"nlist":0,"replicas":0,"model":"m","shards":0}`...),
		"v1 with id_directory":  append([]byte{2, 1}, `{"name":"img","dim":4,"metric":3,"nlist":0,"replicas":0,"shards":0,"id_directory":true}`...),
	} {
		if _, err := meta.Decode(bad); !errors.Is(err, meta.ErrCorruptCommand) {
			t.Errorf("%s: %v, want ErrCorruptCommand", name, err)
		}
	}
	// With the id directory: version 3, with or without a model hash.
	for _, cc := range []meta.CreateCollection{{Name: "v", Dim: 4, Metric: ivf.L2, IDDirectory: true}, {Name: "img", Dim: 4, Metric: ivf.Cosine, Model: "m", ModelHash: hash, IDDirectory: true}} {
		b := meta.Encode(cc)
		if b[1] != 3 {
			t.Fatalf("body version %d with the id directory, want 3", b[1])
		}
		if got, err := meta.Decode(b); err != nil || !reflect.DeepEqual(got, cc) {
			t.Fatalf("decode v3: %+v, %v", got, err)
		}
	}
	tb := must(t, meta.New(), meta.RegisterNode{ID: "n1", RaftAddr: "r1"}, img)
	c, _ := tb.Collection("img")
	if c.ModelHash != hash || c.Model != img.Model {
		t.Fatalf("collection %+v", c)
	}
	rt := snapshotRoundTrip(t, tb)
	if c2, _ := rt.Collection("img"); c2.ModelHash != hash {
		t.Fatalf("model hash after a snapshot round trip: %q", c2.ModelHash)
	}
}
