package store

import (
	"slices"
	"testing"
)

// FuzzDecode feeds arbitrary bytes to every decoder of stored values: they
// must fail with an error, never panic, and what decodes must re-encode to
// bytes that decode to the same value (varints may come non-canonical).
func FuzzDecode(f *testing.F) {
	it := Item{UserID: "u", ID: 3, List: 2, Vector: []float32{1, -2.5}, Meta: []byte(`{"a":1}`)}
	f.Add(encodeItem(&it))
	f.Add(encodeRecord([]Op{{Kind: OpDelete, Item: Item{UserID: "x", List: 1, ID: 2}}, {Kind: OpPut, Item: it}}))
	f.Add(encodeLoc(4, 5))
	f.Add(encodeIDEntry(&it))
	f.Add(encodeShardState(9, 3))
	f.Add(encodeEntryValue(300, []byte(`[[4,1700000000000]]`)))
	f.Add(encodeIndexPtr(&indexPtr{File: "c00000001-0000000000000002.ivf", Covered: Seqs{1: 2, 3: 4}}))
	f.Add([]byte{1, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, b []byte) {
		if it, err := decodeItem(b, 2, 3); err == nil {
			e := encodeItem(&it)
			it2, err := decodeItem(e, 2, 3)
			if err != nil || !slices.Equal(encodeItem(&it2), e) {
				t.Fatalf("item %x re-encodes to %x: %v", b, e, err)
			}
		}
		// Without the vector: the same verdict, the same user id and metadata.
		full, errFull := decodeItem(b, 2, 3)
		if part, err := decodeItemOpt(b, 2, 3, false); (err == nil) != (errFull == nil) ||
			err == nil && (part.UserID != full.UserID || !slices.Equal(part.Meta, full.Meta) || part.Vector != nil) {
			t.Fatalf("item %x: without vector %+v %v, with %+v %v", b, part, err, full, errFull)
		}
		if r, err := decodeRecord(b, 1); err == nil {
			e := encodeRecord(r.Ops)
			r2, err := decodeRecord(e, 1)
			if err != nil || !slices.Equal(encodeRecord(r2.Ops), e) {
				t.Fatalf("record %x re-encodes to %x: %v", b, e, err)
			}
		}
		if l, id, err := decodeLoc(b); err == nil && !slices.Equal(encodeLoc(l, id), b) {
			t.Fatal("loc does not round-trip")
		}
		_, _ = decodeList(b)
		if e, err := decodeIDEntry(b); err == nil && e.named {
			// Varints may be written longer than needed: compare the
			// re-encoding with itself decoded and encoded again.
			enc := func(e idEntry) []byte {
				it := Item{List: e.list, UserID: e.userID}
				if e.hasMeta {
					it.Meta = []byte("{}")
				}
				return encodeIDEntry(&it)
			}
			e2, err := decodeIDEntry(enc(e))
			if err != nil || e2 != e || !slices.Equal(enc(e2), enc(e)) {
				t.Fatalf("id entry %x: %+v, re-encoded %+v %v", b, e, e2, err)
			}
		}
		if last, tr, err := decodeShardState(b); err == nil && !slices.Equal(encodeShardState(last, tr), b) {
			t.Fatal("shard state does not round-trip")
		}
		if id, v, err := decodeEntryValue(b); err == nil {
			// A varint may be written longer than needed: the re-encoding
			// decodes to the same id and value.
			id2, v2, err := decodeEntryValue(encodeEntryValue(id, v))
			if err != nil || id2 != id || !slices.Equal(v2, v) || id == 0 {
				t.Fatalf("entry value %x: %d %q, re-encoded %d %q %v", b, id, v, id2, v2, err)
			}
		}
		if p, err := decodeIndexPtr(b); err == nil {
			_ = encodeIndexPtr(&p) // map order may differ from a non-canonical input
		}
	})
}
