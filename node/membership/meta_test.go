package membership

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func TestMetaRoundTrip(t *testing.T) {
	for _, m := range []Meta{
		{NodeID: "n1", HTTPAddr: "127.0.0.1:8081", RaftAddr: "127.0.0.1:7001"},
		{Flags: FlagVoter | FlagTLS, NodeID: "node-0a1b2c3d", HTTPAddr: "[::1]:443", RaftAddr: "10.0.0.7:7947"},
		{NodeID: strings.Repeat("a", 64), HTTPAddr: strings.Repeat("h", 200), RaftAddr: strings.Repeat("r", 200)},
	} {
		b, err := EncodeMeta(m)
		if err != nil {
			t.Fatalf("%+v: %v", m, err)
		}
		if len(b) > MaxMetaSize {
			t.Fatalf("%d bytes", len(b))
		}
		got, err := DecodeMeta(b)
		m.Version = MetaVersion
		if err != nil || got != m {
			t.Fatalf("round trip of %+v: %+v, %v", m, got, err)
		}
	}
}

func TestMetaLayout(t *testing.T) {
	b, err := EncodeMeta(Meta{Flags: FlagVoter, NodeID: "n1", HTTPAddr: "h:1", RaftAddr: "r:2"})
	if err != nil {
		t.Fatal(err)
	}
	want := []byte{1, 1, 2, 'n', '1', 3, 'h', ':', '1', 3, 'r', ':', '2'}
	if !bytes.Equal(b, want) {
		t.Fatalf("% x, want % x (docs/format/gossip.md)", b, want)
	}
	// A later version may append fields: version 1 decoders ignore them.
	got, err := DecodeMeta(append([]byte{2}, append(want[1:], 9, 9)...))
	if err != nil || got.NodeID != "n1" || got.Version != 2 {
		t.Fatalf("%+v %v", got, err)
	}
}

func TestMetaRefused(t *testing.T) {
	long := strings.Repeat("x", 255)
	if _, err := EncodeMeta(Meta{NodeID: long, HTTPAddr: long, RaftAddr: "r:1"}); !errors.Is(err, ErrMetaTooLarge) {
		t.Fatalf("2+256+256+4 bytes: %v", err)
	}
	for _, m := range []Meta{
		{HTTPAddr: "h:1", RaftAddr: "r:1"},
		{NodeID: "n", RaftAddr: "r:1"},
		{NodeID: "n", HTTPAddr: "h:1", RaftAddr: strings.Repeat("r", 256)},
	} {
		if _, err := EncodeMeta(m); !errors.Is(err, ErrBadMeta) {
			t.Fatalf("%+v: %v", m, err)
		}
	}
	good, _ := EncodeMeta(Meta{NodeID: "n1", HTTPAddr: "h:1", RaftAddr: "r:2"})
	for name, b := range map[string][]byte{
		"empty":     nil,
		"version 0": append([]byte{0}, good[1:]...),
		"truncated": good[:len(good)-1],
		"trailing":  append(append([]byte{}, good...), 0),
		"empty id":  {1, 0, 0, 3, 'h', ':', '1', 3, 'r', ':', '2'},
		"oversized": append(append([]byte{2}, good[1:]...), make([]byte, 600)...),
	} {
		if _, err := DecodeMeta(b); err == nil {
			t.Errorf("%s: decoded", name)
		}
	}
}

func FuzzDecodeMeta(f *testing.F) {
	good, _ := EncodeMeta(Meta{NodeID: "n1", HTTPAddr: "h:1", RaftAddr: "r:2"})
	f.Add(good)
	f.Add([]byte{1, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := DecodeMeta(b)
		if err != nil || m.Version != 1 {
			return
		}
		again, err := EncodeMeta(m)
		if err != nil || !bytes.Equal(again, b) {
			t.Fatalf("% x decoded to %+v, encodes to % x (%v)", b, m, again, err)
		}
	})
}

func TestParseKey(t *testing.T) {
	if k, err := ParseKey("AAECAwQFBgcICQoLDA0ODw=="); err != nil || len(k) != 16 {
		t.Fatalf("%v %v", k, err)
	}
	for _, s := range []string{"not base64!", "AAECAwQFBgc="} {
		if _, err := ParseKey(s); err == nil {
			t.Fatalf("%q accepted", s)
		}
	}
}
