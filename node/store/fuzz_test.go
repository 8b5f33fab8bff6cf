package store

import (
	"slices"
	"testing"
)

// FuzzDecode feeds arbitrary bytes to every decoder of stored values: they
// must fail with an error, never panic, and what decodes must re-encode to
// the same bytes.
func FuzzDecode(f *testing.F) {
	it := Item{UserID: "u", ID: 3, List: 2, Vector: []float32{1, -2.5}, Meta: []byte(`{"a":1}`)}
	f.Add(encodeItem(&it))
	f.Add(encodeRecord([]Op{{Kind: OpDelete, Item: Item{UserID: "x", List: 1, ID: 2}}, {Kind: OpPut, Item: it}}))
	f.Add(encodeLoc(4, 5))
	f.Add(encodeShardState(9, 3))
	f.Add(encodeIndexPtr(&indexPtr{File: "c00000001-0000000000000002.ivf", Covered: Seqs{1: 2, 3: 4}}))
	f.Add([]byte{1, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, b []byte) {
		if it, err := decodeItem(b, 2, 3); err == nil {
			if got := encodeItem(&it); !slices.Equal(got, b) {
				t.Fatalf("item re-encodes to %x, from %x", got, b)
			}
		}
		if r, err := decodeRecord(b, 1); err == nil {
			if got := encodeRecord(r.Ops); !slices.Equal(got, b) {
				t.Fatalf("record re-encodes to %x, from %x", got, b)
			}
		}
		if l, id, err := decodeLoc(b); err == nil && !slices.Equal(encodeLoc(l, id), b) {
			t.Fatal("loc does not round-trip")
		}
		_, _ = decodeList(b)
		if last, tr, err := decodeShardState(b); err == nil && !slices.Equal(encodeShardState(last, tr), b) {
			t.Fatal("shard state does not round-trip")
		}
		if p, err := decodeIndexPtr(b); err == nil {
			_ = encodeIndexPtr(&p) // map order may differ from a non-canonical input
		}
	})
}
